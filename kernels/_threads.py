"""Where Numba's TBB workers run: off the CPU of the thread that launches the kernels.

Numba's TBB layer builds a new task arena for every parallel launch, and its workers sleep
between launches. Linux may wake a worker on the CPU of the thread that launched the kernel,
and then keeps it there: measured on a 2-vCPU KVM machine, for stretches of seconds the worker
ran its half of a 1 MB pass after the caller instead of beside it (`sched_getcpu` in both
halves), and the pass took its serial time or more. So at the first parallel launch of a
process (and of a forked child), nnjit restricts each TBB worker to the process's CPUs minus
the one the launching thread is on. The launching thread itself is left alone. When the
machine moves it onto the workers' CPU (another process ran on its own for a while), it would
stay there, alone between launches, so every eighth parallel launch from that thread checks
its CPU (0.1 us) and, if it moved there, moves the workers off it.

Only where it can help and cannot oversubscribe: Linux, Numba's TBB layer, at least two Numba
threads and no more Numba threads than usable CPUs. ``NNJIT_BIND_WORKERS=0`` turns it off.
"""
import ctypes
import os
import sys
import threading

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _cache

# libc's gettid and sched_yield, registered under names of our own so that compiled (and
# cached) code finds them by name in every process, never by an address baked in.
_SYMBOLS = {"nnjit_gettid": "gettid", "nnjit_sched_yield": "sched_yield"}
_PATIENCE = 20000  # sched_yield calls a thread waits for the others: about 10-20 ms


def _register_symbols():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        functions = {ours: getattr(libc, theirs) for ours, theirs in _SYMBOLS.items()}
        sched_getcpu = libc.sched_getcpu
    except (OSError, AttributeError):  # glibc before 2.30 has no gettid
        return None
    for ours, function in functions.items():
        llvm.add_symbol(ours, ctypes.cast(function, ctypes.c_void_p).value)
    sched_getcpu.restype, sched_getcpu.argtypes = ctypes.c_int, []
    return sched_getcpu


_sched_getcpu = _register_symbols()


def _int_call(name):
    @intrinsic
    def call(typingctx):
        def codegen(context, builder, signature, args):
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), name)
            return builder.sext(builder.call(function, []), ir.IntType(64))
        return types.int64(), codegen
    return call


_gettid = _int_call("nnjit_gettid")
_sched_yield = _int_call("nnjit_sched_yield")


def _thread_ids(ids, patience):
    """ids (threads + 1,) zeros: ids[slot] = the native id of the thread in arena slot
    ``slot``. Each thread waits (yielding its CPU, which a worker woken on it needs) until every
    slot is filled, so none takes two slots; the first to run out of patience sets ids[-1] and
    the others stop waiting too."""
    threads = ids.shape[0] - 1
    for _ in prange(threads):
        ids[numba.get_thread_id()] = _gettid()
        waited = 0
        while waited < patience:
            filled = 0
            for slot in range(threads):
                filled += ids[slot] != 0
            if filled == threads or ids[threads] != 0:
                break
            _sched_yield()  # an opaque call: the loads above are made again after it
            waited += 1
        if waited == patience:
            ids[threads] = 1


_thread_ids_parallel = _cache.attach(numba.njit(parallel=True, nogil=True)(_thread_ids),
                                     (True, (), "python", True))

_state_lock = threading.Lock()
_binding = {"state": "not yet"}
_bound = None  # (the bound thread's ident, its worker ids, usable CPUs) once bound
_FOLLOW_EVERY = 8
_countdown = _FOLLOW_EVERY


def enabled():
    return os.environ.get("NNJIT_BIND_WORKERS", "1").strip().lower() not in (
        "0", "no", "off", "false")


def binding():
    """What the binding did: {"state": "bound", "cpu": the launching thread's CPU, "workers":
    {native id: CPUs}, "moves": times the workers were moved since} or {"state": why not}."""
    return dict(_binding)


def _why_not(layer, threads, usable):
    if not enabled():
        return "off (NNJIT_BIND_WORKERS)"
    if _sched_getcpu is None:
        return "not on this platform"
    if layer != "tbb":
        return f"not needed under the {layer} layer"
    if threads < 2 or len(usable) < 2:
        return "one thread or one usable CPU"
    if threads > len(usable):
        return "more Numba threads than usable CPUs"
    return None


def _move_workers(cpu):
    """Restricts the workers to the usable CPUs but ``cpu``; returns {id: CPUs} of those moved."""
    _, workers, usable = _bound
    others = sorted(usable - {cpu})
    moved = {}
    for tid in workers:
        try:
            os.sched_setaffinity(tid, others)
            moved[tid] = others
        except OSError:  # the thread ended, or the process may not set it
            pass
    return moved


def bind_workers(layer):
    """Restricts Numba's TBB workers to the usable CPUs but the calling thread's (see the
    module docstring). Called once per process by the first parallel launch; never raises:
    binding is for speed only, and a failure leaves the workers where they were."""
    global _binding
    try:
        _bind_workers(layer)
    except Exception as error:  # noqa: BLE001 - reported by binding()
        _binding = {"state": f"failed ({type(error).__name__}: {error})"}


def _bind_workers(layer):
    global _binding, _bound
    with _state_lock:
        threads = numba.config.NUMBA_NUM_THREADS
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        reason = _why_not(layer, threads, usable)
        if reason:
            _binding = {"state": reason}
            return
        ids = np.zeros(threads + 1, np.int64)
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)  # every worker, whatever the caller set
        try:
            _thread_ids_parallel(ids, _PATIENCE)
        finally:
            numba.set_num_threads(previous)
        me = threading.get_native_id()
        workers = list(dict.fromkeys(int(t) for t in ids[:threads] if t and t != me))
        _bound = (threading.get_ident(), workers, set(usable))
        cpu = _sched_getcpu()
        _binding = {"state": "bound", "cpu": cpu, "workers": _move_workers(cpu), "moves": 0}


def follow_caller():
    """Called by every parallel launch: once bound, every eighth one from the bound thread
    moves the workers off its CPU if it is on theirs now."""
    global _countdown
    _countdown -= 1
    if _countdown > 0:
        return
    _countdown = _FOLLOW_EVERY
    if _bound is None or threading.get_ident() != _bound[0]:
        return
    cpu = _sched_getcpu()
    if cpu != _binding.get("cpu"):
        with _state_lock:
            moves = _binding.get("moves", 0) + 1
            _binding.update(cpu=cpu, workers=_move_workers(cpu), moves=moves)


def forget():
    """After fork: the child's TBB starts new workers, to bind again at its first launch."""
    global _binding, _bound, _state_lock
    _state_lock = threading.Lock()
    _binding, _bound = {"state": "not yet"}, None
