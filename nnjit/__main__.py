"""``python -m nnjit bench ...``"""
import sys

from .bench import main as bench_main

COMMANDS = {"bench": bench_main}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(f"usage: python -m nnjit {{{','.join(COMMANDS)}}} [options]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
