"""The backend switch: which path ("numba" or "numpy") every kernel call takes. It lives with
the kernels (Kernel.__call__ reads it on every call); nnjit re-exports it as nnjit.set_backend,
nnjit.backend, nnjit.get_backend and nnjit.BACKENDS.

The global choice comes from ``NNJIT_BACKEND`` (default "numba") and ``set_backend``;
``with backend(name):`` overrides it for the current thread (or asyncio task) only, so one
thread comparing paths never changes what another thread computes.
"""
import contextlib
import contextvars
import os

BACKENDS = ("numba", "numpy")


def _checked(name):
    if name not in BACKENDS:
        raise ValueError(f"nnjit backend must be one of {BACKENDS}, got {name!r}")
    return name


_global_backend = _checked(os.environ.get("NNJIT_BACKEND", "numba").strip().lower() or "numba")
_local_backend = contextvars.ContextVar("nnjit_backend", default=None)


def get_backend():
    """The backend in force here: the innermost ``with backend(...)``, else the global one."""
    return _local_backend.get() or _global_backend


def set_backend(name):
    """Set the global backend for every module: "numba" (default) or "numpy"."""
    global _global_backend
    _global_backend = _checked(name)


@contextlib.contextmanager
def backend(name):
    """Run a block on one backend: ``with nnjit.backend("numpy"): model.forward(x)``."""
    token = _local_backend.set(_checked(name))
    try:
        yield name
    finally:
        _local_backend.reset(token)
