"""``python -m nnjit {bench,train,compile,cache} ...`` (also installed as the ``nnjit``
command)."""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    commands = {"bench": "nnjit.bench", "train": "nnjit.train", "compile": "nnjit.precompile",
                "cache": "nnjit.cache"}
    if not argv or argv[0] not in commands:
        raise SystemExit(f"usage: python -m nnjit {{{','.join(commands)}}} [options]\n"
                         "  train    train an MLP or a CNN on handwritten digits (see train --help)\n"
                         "  bench    time the numba, numpy and torch paths of every op\n"
                         "  compile  compile every kernel into the cache (docs/cache.md)\n"
                         "  cache    show the compiled-kernel cache (--clear empties it)")
    import importlib
    importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
