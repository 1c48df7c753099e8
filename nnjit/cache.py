"""``python -m nnjit cache [--clear]``: where the compiled-kernel cache is, what it holds,
and clearing it (see docs/cache.md)."""
import argparse
import os

from .kernels import _cache


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nnjit cache", description=__doc__)
    parser.add_argument("--clear", action="store_true", help="remove every cached kernel")
    args = parser.parse_args(argv)
    base = _cache.base_folder()
    if args.clear:
        removed = _cache.clear()
        print(f"removed {removed} stamp folder(s) from {base}")
        return
    state = "on" if _cache.enabled() else "off (NNJIT_CACHE=0)" if _cache.PRIVATE_API \
        else "off (this Numba lacks what the cache needs)"
    print(f"cache: {state}")
    print(f"folder: {base}")
    print(f"current stamp: {_cache.folder()}")
    try:
        stamps = sorted(name for name in os.listdir(base) if name.startswith(_cache.STAMP_PREFIX))
    except FileNotFoundError:
        stamps = []
    for name in stamps:
        count, size = _cache.entries(os.path.join(base, name))
        current = "  (current)" if os.path.join(base, name) == _cache.folder() else ""
        print(f"  {name}: {count} entries, {size / 2**20:.1f} MB{current}")
    count, size = _cache.entries(base)
    print(f"total: {count} entries, {size / 2**20:.1f} MB in {len(stamps)} stamp folder(s)")
