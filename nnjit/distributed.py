"""Data-parallel training over MPI (mpi4py, imported here only, when first needed).

Every rank holds the whole model and takes a contiguous shard of each global batch; the ranks'
gradients are combined so that N ranks at global batch B make the update one process makes at
batch B. Dropout drops, on every rank, exactly the elements one process would drop for the same
global batch; ``BatchNormalization(sync=True)`` normalizes by the whole batch's statistics.

    from nnjit import distributed
    parallel = distributed.DataParallel(model)       # root's parameters on every rank
    for xb, yb in global_batches:                    # the same batches, in the same order, everywhere
        x, y = parallel.shard_batch(xb, yb)          # this rank's rows (possibly none)
        model.zeroGradParameters()
        output = model.forward(x)
        loss = criterion.forward(output, y) if len(x) else 0.0   # this rank's rows' mean
        model.backward(x, parallel.loss_gradient(criterion, output, y))
        parallel.allreduce_gradients()               # the whole batch's mean gradient
        adam_optimizer(...)                          # the same step on every rank

Run it with ``mpiexec -n 4 python -m mpi4py your_script.py``: ``-m mpi4py`` turns an exception in
one rank into the end of the job instead of a hang. See docs/distributed.md.
"""
import hashlib
import os
import warnings

import numpy as np

from .dropout import Dropout
from .normalization import BatchNormalization
from .optim import _flatten


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("nnjit.distributed needs mpi4py and an MPI library: "
                          "pip install 'nnjit[mpi]'") from exc
    except RuntimeError as exc:  # mpi4py without an MPI library to load
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportError(f"nnjit.distributed: mpi4py found no MPI library ({first_line}): "
                          "pip install 'nnjit[mpi]' for Open MPI from PyPI, or load your "
                          "system's MPI (see docs/distributed.md)") from exc
    return MPI


def world(comm=None):
    """``comm``, or MPI's COMM_WORLD when it is None."""
    return _mpi().COMM_WORLD if comm is None else comm


def shard_range(n_rows, size, rank):
    """(start, stop): rank's contiguous rows of a batch of n_rows split over size ranks, the
    first ``n_rows % size`` ranks taking one row more (sizes differ by at most one; ranks past
    n_rows get none)."""
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"shard_range: rank {rank} is not one of {size} ranks")
    if n_rows < 0:
        raise ValueError(f"shard_range: a batch cannot have {n_rows} rows")
    base, extra = divmod(n_rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_rank_threads(threads=None):
    """Give this rank ``threads`` Numba and BLAS threads; None: one each (ranks share the
    machine's cores), except where the environment set them (NUMBA_NUM_THREADS for Numba;
    OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or MKL_NUM_THREADS for BLAS). Limiting BLAS after
    NumPy's import needs threadpoolctl (in the ``mpi`` extra); without it, a warning.
    Returns the BLAS thread counts in force, or None if unknown."""
    import numba
    if threads is not None or "NUMBA_NUM_THREADS" not in os.environ:
        numba.set_num_threads(threads or 1)
    blas = threads or (None if any(v in os.environ for v in THREAD_VARIABLES) else 1)
    try:
        import threadpoolctl
    except ImportError:
        if blas is not None:
            warnings.warn("threadpoolctl is not installed, so BLAS keeps its default threads "
                          "(one per core, in every rank): pip install 'nnjit[mpi]' or set "
                          "OMP_NUM_THREADS", RuntimeWarning, stacklevel=2)
        return None
    if blas is not None:
        threadpoolctl.threadpool_limits(blas, user_api="blas")
    return sorted({pool["num_threads"] for pool in threadpoolctl.threadpool_info()
                   if pool["user_api"] == "blas"})


class Shard:
    """Rows ``start:stop`` of a global batch of ``total`` rows, this rank's part; the layers
    whose math spans the batch (Dropout, BatchNormalization) read it."""

    def __init__(self, comm, start, stop, total):
        self.comm, self.start, self.stop, self.total = comm, start, stop, total

    @property
    def rows(self):
        return self.stop - self.start

    @property
    def share(self):
        """This rank's fraction of the global batch (its weight in the gradient)."""
        return self.rows / self.total if self.total else 0.0

    def check_rows(self, n_rows, who):
        if n_rows != self.rows:
            raise ValueError(f"{who}: input has {n_rows} rows, but this rank's shard of the "
                             f"global batch is rows {self.start}:{self.stop} of {self.total}")

    def _gather(self, array):
        """Every rank's float64 copy of array, stacked in rank order."""
        array = np.ascontiguousarray(array, dtype=np.float64)
        gathered = np.empty((self.comm.Get_size(),) + array.shape)
        self.comm.Allgather(array, gathered)
        return gathered

    def sum_across_ranks(self, array):
        """The sum over ranks of a float64 array, added in rank order: the same bits on
        every rank (an Allreduce's order is the library's choice)."""
        gathered = self._gather(array)
        total = gathered[0].copy()
        for part in gathered[1:]:
            total += part
        return total

    def combine_statistics(self, local, who):
        """(mean, biased variance) float64 (c,) of the whole global batch from every rank's
        (2, c) mean and variance of its rows (its shard's rows: see check_rows), combined in
        rank order (Chan et al.)."""
        gathered = self._gather(local)
        size = gathered.shape[0]
        if self.total == 0:
            raise ValueError(f"{who}: batch statistics of an empty batch are undefined")
        mean, m2, count = np.zeros(local.shape[1]), np.zeros(local.shape[1]), 0
        for rank in range(size):
            start, stop = shard_range(self.total, size, rank)
            n_b = stop - start
            if n_b == 0:
                continue
            total = count + n_b
            delta = gathered[rank, 0] - mean
            mean += delta * (n_b / total)
            m2 += gathered[rank, 1] * n_b + delta * delta * (count * (n_b / total))
            count = total
        return mean, m2 / count

    # a copy of a model (nnjit train's warm-up step) trains in the same job; a pickle of one
    # does not carry the communicator
    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_no_shard, ())


def _no_shard():
    return None


class SelfComm:
    """A communicator of one rank, without MPI: enough of mpi4py's for a Shard (a single
    process running the synchronized code paths: nnjit compile, tests)."""

    def Get_size(self):
        return 1

    def Get_rank(self):
        return 0

    def Allgather(self, send, receive):
        receive[0] = send


def modules(model):
    """model and every module inside it, depth first."""
    yield model
    for child in getattr(model, "modules", ()):
        yield from modules(child)


def _batch_norms(model):
    return [m for m in modules(model) if isinstance(m, BatchNormalization)]


def _state_arrays(model):
    """Parameters, then BatchNormalization's moving statistics (None before its first batch)."""
    arrays = list(_flatten(model.getParameters()))
    for layer in _batch_norms(model):
        arrays += [layer.moving_mean, layer.moving_variance]
    return arrays


def _describe(array):
    return None if array is None else (array.shape, array.dtype.str)


def broadcast_parameters(model, comm=None, root=0):
    """Copy root's parameters and BatchNormalization moving statistics to every rank, in
    place (a rank whose statistics do not exist yet, or differ in shape, gets new arrays;
    statistics root does not have yet are dropped). Every rank must hold a model of the same
    architecture; if any differs, every rank raises ValueError (none is left waiting)."""
    comm = world(comm)
    parameters = list(_flatten(model.getParameters()))
    layers = _batch_norms(model)
    mine = ([_describe(a) for a in parameters], len(layers))
    descriptions = comm.allgather(mine)
    for rank, description in enumerate(descriptions):
        if description != descriptions[root]:
            raise ValueError(f"broadcast_parameters: rank {rank}'s model differs from rank "
                             f"{root}'s: {_first_difference(description, descriptions[root])}")
    statistics = comm.bcast([_describe(layer.moving_mean) for layer in layers], root=root)
    for layer, description in zip(layers, statistics):
        if description is None:
            layer.moving_mean = layer.moving_variance = None
        elif _describe(layer.moving_mean) != description \
                or _describe(layer.moving_variance) != description:
            shape, dtype = description
            layer.moving_mean, layer.moving_variance = np.empty(shape, dtype), np.empty(shape, dtype)
    for array in (a for a in _state_arrays(model) if a is not None):
        if not (array.flags.c_contiguous and array.flags.writeable):
            raise ValueError("broadcast_parameters: a parameter array is not contiguous and "
                             "writable")
        comm.Bcast(array, root=root)


def _first_difference(mine, roots):
    (arrays, layers), (root_arrays, root_layers) = mine, roots
    if layers != root_layers:
        return f"{layers} BatchNormalization layers against {root_layers}"
    if len(arrays) != len(root_arrays):
        return f"{len(arrays)} parameter arrays against {len(root_arrays)}"
    for index, (a, b) in enumerate(zip(arrays, root_arrays)):
        if a != b:
            return f"parameter array {index} is {a}, root's is {b}"
    return "?"


def allreduce_gradients(model, comm=None, share=None):
    """Replace every rank's gradients, in place, by the sum over ranks of ``share *
    gradient``. With each rank's mean gradient over its rows and its share of the global batch
    (its rows / the batch's rows), that is the whole batch's mean gradient; ``share=None`` weighs
    the ranks equally (1 / ranks); ``share=1`` sums gradients that are weighted already
    (DataParallel.loss_gradient). One in-place Allreduce per array: packing the 784-256-256-10
    MLP's gradients into one buffer first cost more (0.37-0.41 ms a step) than the six calls
    (0.28-0.29 ms) on 2 ranks here."""
    comm = world(comm)
    MPI = _mpi()
    share = 1.0 / comm.Get_size() if share is None else float(share)
    for grad in _flatten(model.getGradParameters()):
        if not (grad.flags.c_contiguous and grad.flags.writeable):
            raise ValueError("allreduce_gradients: a gradient array is not contiguous and writable")
        if share != 1.0:
            grad *= grad.dtype.type(share)
        comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)


def average_moving_statistics(model, comm=None):
    """Average the unsynchronized BatchNormalization layers' moving statistics over the ranks
    (each rank's follow its own shards); synchronized layers are equal on every rank already.
    Call it before evaluating or saving."""
    comm = world(comm)
    for layer in _batch_norms(model):
        if layer.sync or layer.moving_mean is None:
            continue
        for name in ("moving_mean", "moving_variance"):
            values = np.array(getattr(layer, name), dtype=np.float64)
            comm.Allreduce(_mpi().IN_PLACE, values, op=_mpi().SUM)
            getattr(layer, name)[...] = values / comm.Get_size()


def sum_across_ranks(values, comm=None):
    """A float64 array of the sums over ranks of ``values`` (numbers: losses, counts)."""
    values = np.array(values, dtype=np.float64)
    world(comm).Allreduce(_mpi().IN_PLACE, values, op=_mpi().SUM)
    return values


def checksum(model):
    """A hash of the model's parameters and moving statistics (bytes, dtypes and shapes)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in _state_arrays(model):
        if array is not None:
            digest.update(repr(_describe(array)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class RanksDivergedError(RuntimeError):
    """The ranks' models are no longer the same."""


def check_in_sync(model, comm=None):
    """Raise RanksDivergedError on every rank when the ranks' parameters differ."""
    sums = world(comm).allgather(checksum(model))
    if len(set(sums)) > 1:
        differing = [rank for rank, s in enumerate(sums) if s != sums[0]]
        raise RanksDivergedError(f"the ranks' parameters differ: rank(s) {differing} hold "
                                 f"other values than rank 0 (checksums {sums})")


class DataParallel:
    """``DataParallel(model, comm=None, root=0)``: data-parallel training of ``model`` on this
    rank; creating it broadcasts root's parameters to every rank."""

    def __init__(self, model, comm=None, root=0):
        self.model = model
        self.comm = world(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.shard = None
        self._weighted = False
        self._layers = [m for m in modules(model) if isinstance(m, (Dropout, BatchNormalization))]
        broadcast_parameters(model, self.comm, root)

    def shard_batch(self, *arrays):
        """This rank's rows of a global batch (every array's, cut alike; one array if one was
        given). Every rank must call it with the same global batch size; the Dropout and
        BatchNormalization layers follow the shard until the next call."""
        if not arrays:
            raise TypeError("shard_batch: give at least one array")
        total = len(arrays[0])
        for array in arrays[1:]:
            if len(array) != total:
                raise ValueError(f"shard_batch: arrays of {total} and {len(array)} rows")
        start, stop = shard_range(total, self.size, self.rank)
        self.shard = Shard(self.comm, start, stop, total)
        self._weighted = False
        for layer in self._layers:
            layer._shard = self.shard
        parts = tuple(array[start:stop] for array in arrays)
        return parts[0] if len(parts) == 1 else parts

    def loss_gradient(self, criterion, output, target):
        """``criterion.backward(output, target)`` weighted by this rank's share of the global
        batch: each row's gradient is then the one a single process computes for the whole
        batch's mean loss. Feed it to ``model.backward``, then call allreduce_gradients.
        An empty shard gives zeros of output's shape (its rank still joins every collective).
        Needed with BatchNormalization(sync=True), whose backward sums the rows' gradients
        across ranks."""
        self._require_shard("loss_gradient")
        if len(output) == 0:
            grad = np.zeros_like(output)
        else:
            grad = criterion.backward(output, target) * output.dtype.type(self.shard.share)
        self._weighted = True
        return grad

    def allreduce_gradients(self):
        """The whole global batch's mean gradient on every rank: the sum over ranks of the
        gradients of loss_gradient, or of each rank's mean gradient weighted by its share."""
        self._require_shard("allreduce_gradients")
        if not self._weighted and any(layer.sync for layer in self._batch_norms()):
            raise RuntimeError("allreduce_gradients: with BatchNormalization(sync=True) the "
                               "loss gradient must be weighted before backward: use "
                               "DataParallel.loss_gradient instead of criterion.backward")
        allreduce_gradients(self.model, self.comm, 1.0 if self._weighted else self.shard.share)

    def _require_shard(self, who):
        if self.shard is None:
            raise RuntimeError(f"{who}: call shard_batch first")

    def _batch_norms(self):
        return [layer for layer in self._layers if isinstance(layer, BatchNormalization)]

    def sum_across_ranks(self, values):
        return sum_across_ranks(values, self.comm)

    def average_moving_statistics(self):
        average_moving_statistics(self.model, self.comm)

    def check_in_sync(self):
        check_in_sync(self.model, self.comm)

    def detach(self):
        """Return the layers to single-process behaviour."""
        for layer in self._layers:
            layer._shard = None
        self.shard = None
