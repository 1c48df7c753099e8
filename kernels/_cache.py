"""nnjit's on-disk cache of compiled kernels: a second process loads machine code instead of
compiling it.

Numba's own ``cache=True`` is not safe for nnjit: its stamp is the source file of the cached
function only (edit a helper in _vmath.py and kernels elsewhere load stale code), its index key
has no compile options (the serial and parallel variants of one body share an entry), index
updates take no lock, and a truncated index crashes. This cache is attached to every dispatcher
that _jit.py creates, and differs in four ways:

- one folder per *stamp*: a hash of every .py file of the kernels package, the Python, NumPy,
  Numba and llvmlite versions, the Numba settings that change generated code, and the CPU name
  and features. Any change gives a fresh, empty folder; the last few are kept, older ones pruned.
- the index key is Numba's (signature, target, bytecode) plus the variant: parallel or serial,
  fastmath flags, error model; the variant is also in the file names.
- saves run under an exclusive lock on the folder; a corrupt or truncated index or data file
  is a miss, recompiled and rewritten, never an error.
- the folder is ``NNJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/nnjit``, else ``~/.cache/nnjit``,
  never the install tree. ``NNJIT_CACHE=0`` turns the cache off. If the folder cannot be
  written, kernels compile as before, after one warning.

Every use of Numba's private caching API is in this module. ``PRIVATE_API`` is False when the
installed Numba lacks what it needs; nnjit then runs uncached (tests/test_cache.py fails loudly
so that a Numba upgrade cannot silently turn the cache off).
"""
import contextlib
import hashlib
import os
import shutil
import sys
import threading
import warnings

import llvmlite
import numba
import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: saves are not locked across processes
    fcntl = None

try:
    from numba.core import caching as _caching
    from numba.core import config as _numba_config

    PRIVATE_API = all((
        hasattr(_caching, "FunctionCache"), hasattr(_caching, "CompileResultCacheImpl"),
        hasattr(_caching, "IndexDataCacheFile"), hasattr(_caching, "_CacheLocator"),
        hasattr(_caching.Cache, "_index_key"), hasattr(_caching.IndexDataCacheFile, "_load_index"),
    ))
except ImportError:  # pragma: no cover - a Numba without numba.core.caching
    _caching, _numba_config, PRIVATE_API = None, None, False

STAMP_PREFIX = "k-"
KEEP_STAMPS = 4  # stamp folders kept (the current one and the newest others)
# Numba settings that change the machine code (read once, at import, as Numba does).
CODEGEN_SETTINGS = ("OPT", "LOOP_VECTORIZE", "SLP_VECTORIZE", "BOUNDSCHECK", "DEBUGINFO_DEFAULT",
                    "CPU_NAME", "CPU_FEATURES", "ENABLE_AVX", "FASTMATH", "DISABLE_JIT")

# Counts since the process started, for tests and `python -m nnjit cache`.
STATS = {"hits": 0, "misses": 0, "saves": 0, "corrupt": 0}
_state_lock = threading.Lock()
_unwritable_warned = False
_saves_disabled = False
_pruned = False


def enabled():
    return PRIVATE_API and os.environ.get("NNJIT_CACHE", "1").strip().lower() not in (
        "0", "no", "off", "false")


def base_folder():
    """The folder holding one subfolder per stamp."""
    explicit = os.environ.get("NNJIT_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(root), "nnjit")


def _kernel_sources():
    package = os.path.dirname(os.path.abspath(__file__))
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, package), path


def _cpu():
    import llvmlite.binding as llvm

    name = _numba_config.CPU_NAME or llvm.get_host_cpu_name()
    features = _numba_config.CPU_FEATURES
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    return name, features


def compute_stamp():
    """The hash that names the current stamp folder (see the module docstring)."""
    digest = hashlib.sha256()
    for relative, path in _kernel_sources():
        digest.update(relative.encode() + b"\0")
        with open(path, "rb") as source:
            digest.update(hashlib.sha256(source.read()).digest())
    settings = {name: str(getattr(_numba_config, name, None)) for name in CODEGEN_SETTINGS}
    facts = (sys.version, sys.platform, np.__version__, numba.__version__, llvmlite.__version__,
             sorted(settings.items()), _cpu())
    digest.update(repr(facts).encode())
    return digest.hexdigest()[:24]


_stamp = None


def stamp():
    global _stamp
    if _stamp is None:
        _stamp = compute_stamp()
    return _stamp


def folder():
    """This process's cache folder: the base folder's subfolder for the current stamp."""
    return os.path.join(base_folder(), STAMP_PREFIX + stamp())


def writable():
    """Whether this process can save entries: no save has failed, and its folder exists or can
    be made and is writable."""
    if _saves_disabled:
        return False
    path = folder()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on path/.lock for the duration (a no-op where fcntl is missing)."""
    if fcntl is None:
        yield
        return
    handle = os.open(os.path.join(path, ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _prune_old_stamps(base, current):
    """Removes stamp folders beyond the KEEP_STAMPS newest (by last use), never current."""
    try:
        entries = [os.path.join(base, name) for name in os.listdir(base)
                   if name.startswith(STAMP_PREFIX)]
        entries = [path for path in entries if os.path.isdir(path) and path != current]
        entries.sort(key=os.path.getmtime, reverse=True)
    except OSError:
        return
    for stale in entries[KEEP_STAMPS - 1:]:
        shutil.rmtree(stale, ignore_errors=True)


def _warn_unwritable(path, exc):
    global _unwritable_warned, _saves_disabled
    with _state_lock:
        _saves_disabled = True
        if _unwritable_warned:
            return
        _unwritable_warned = True
    warnings.warn(f"nnjit: cannot write the kernel cache in {path} ({exc}); kernels will "
                  "compile in every new process. Set NNJIT_CACHE_DIR to a writable folder, or "
                  "NNJIT_CACHE=0 to turn the cache off.", RuntimeWarning, stacklevel=2)


if PRIVATE_API:
    class _Locator(_caching._CacheLocator):
        """Places a function's entries in the stamp folder; never chosen by Numba itself."""

        def __init__(self, py_func, variant_tag):
            self._py_file = py_func.__code__.co_filename
            self._lineno = py_func.__code__.co_firstlineno
            self._variant_tag = variant_tag

        def ensure_cache_path(self):
            global _pruned
            path = folder()
            os.makedirs(path, exist_ok=True)
            if not _pruned:
                _pruned = True
                os.utime(path)  # "last used", for pruning
                _prune_old_stamps(os.path.dirname(path), path)

        def get_cache_path(self):
            return folder()

        def get_source_stamp(self):
            return stamp()

        def get_disambiguator(self):
            return f"{self._lineno}-{self._variant_tag}"

        @classmethod
        def from_function(cls, py_func, py_file):
            return None

    class _Impl(_caching.CompileResultCacheImpl):
        def __init__(self, py_func, locator):  # the locator is given, not searched for
            self._lineno = py_func.__code__.co_firstlineno
            self._locator = locator
            module = py_func.__module__.rsplit(".", 1)[-1]
            fullname = f"{module}.{py_func.__qualname__}"
            self._filename_base = self.get_filename_base(fullname, getattr(sys, "abiflags", ""))

    class _IndexDataFile(_caching.IndexDataCacheFile):
        def _load_index(self):
            try:
                return super()._load_index()
            except FileNotFoundError:
                return {}
            except Exception:  # truncated or corrupt: a miss; the next save rewrites it
                STATS["corrupt"] += 1
                return {}

        def _load_data(self, name):
            try:
                return super()._load_data(name)
            except FileNotFoundError:
                raise
            except Exception as exc:  # truncated or corrupt data file
                STATS["corrupt"] += 1
                raise OSError(f"corrupt cache entry {name}") from exc

    class NnjitCache(_caching.FunctionCache):
        """The cache of one dispatcher (one variant of one Python function)."""

        def __init__(self, py_func, variant):
            self._name = repr(py_func)
            self._py_func = py_func
            self._variant = variant
            tag = hashlib.sha256(repr(variant).encode()).hexdigest()[:8]
            self._impl = _Impl(py_func, _Locator(py_func, tag))
            self._cache_path = self._impl.locator.get_cache_path()
            self._cache_file = _IndexDataFile(cache_path=self._cache_path,
                                              filename_base=self._impl.filename_base,
                                              source_stamp=stamp())
            self.enable()

        def _index_key(self, sig, codegen):
            return super()._index_key(sig, codegen) + (self._variant,)

        def load_overload(self, sig, target_context):
            # (Numba's load_overload first refreshes the target context: 0.3 s once per
            # process, most of a warm first step; skipping it crashed the loaded code.)
            try:
                result = super().load_overload(sig, target_context)
            except Exception:  # a corrupt entry that unpickled into nonsense: recompile
                STATS["corrupt"] += 1
                result = None
            STATS["hits" if result is not None else "misses"] += 1
            return result

        def save_overload(self, sig, data):
            if _saves_disabled:
                return
            path = self._cache_path
            try:
                self._impl.locator.ensure_cache_path()
                with _locked(path):
                    super().save_overload(sig, data)
                STATS["saves"] += 1
            except OSError as exc:
                _warn_unwritable(path, exc)


def attach(dispatcher, variant):
    """Gives dispatcher (made by numba.njit) nnjit's cache; variant: the compile options that
    distinguish it from other dispatchers of the same Python function."""
    if enabled():
        dispatcher._cache = NnjitCache(dispatcher.py_func, variant)
    return dispatcher


def entries(path=None):
    """(file count, total bytes) of the cache folders under the base folder (or path)."""
    path = path or base_folder()
    count = size = 0
    for root, _, files in os.walk(path):
        for name in files:
            if name.endswith((".nbi", ".nbc")):
                count += 1
                with contextlib.suppress(OSError):
                    size += os.path.getsize(os.path.join(root, name))
    return count, size


def clear():
    """Removes every stamp folder under the base folder; returns how many."""
    base = base_folder()
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(base):
            if name.startswith(STAMP_PREFIX):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                removed += 1
    return removed
