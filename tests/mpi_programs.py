"""Programs that tests/test_distributed.py runs under mpiexec (``python -m mpi4py
tests/mpi_programs.py NAME ARGS...``); each rank asserts, and rank 0 prints what the test reads."""
import json
import os
import signal
import sys

import numpy as np

import nnjit
from nnjit import distributed
from nnjit.optim import _flatten


def history(path, *train_args):
    """nnjit train's per-epoch history as JSON in path (rank 0); single process without
    --distributed."""
    from nnjit import train
    args = train.parser().parse_args(list(train_args))
    comm = train._start_distributed(args) if args.distributed else None
    with open(os.devnull, "w") as quiet:
        result = train.train(args, out=quiet, comm=comm)
    if comm is None or comm.Get_rank() == 0:
        with open(path, "w") as stream:
            json.dump(result, stream)


def _mlp(seed, sync=False, dtype=np.float64):
    np.random.seed(seed)
    return nnjit.Sequential(nnjit.Linear(6, 5, dtype=dtype), nnjit.BatchNormalization(0.5, sync=sync),
                            nnjit.ReLU(), nnjit.Dropout(0.4), nnjit.Linear(5, 3, dtype=dtype),
                            nnjit.LogSoftMax())


def api():
    """The API's promises, each rank checking them; prints OK lines on rank 0."""
    comm = distributed.world()
    rank, size = comm.Get_rank(), comm.Get_size()
    done = []

    # broadcast_parameters: every rank ends with root's weights and moving statistics
    model = _mlp(seed=rank)
    model.forward(np.random.default_rng(rank).standard_normal((4, 6)))  # rank-own statistics
    parallel = distributed.DataParallel(model, comm)
    sums = comm.allgather(distributed.checksum(model))
    assert len(set(sums)) == 1, sums
    root_model = _mlp(seed=0)
    root_model.forward(np.random.default_rng(0).standard_normal((4, 6)))
    assert distributed.checksum(root_model) == sums[0]
    # statistics only some ranks have: root's decide
    for root_has in (True, False):
        model = _mlp(seed=rank)
        if (rank == 0) == root_has:
            model.forward(np.random.default_rng(rank).standard_normal((4, 6)))
        distributed.broadcast_parameters(model, comm)
        assert (model[1].moving_mean is not None) == root_has
        sums = comm.allgather(distributed.checksum(model))
        assert len(set(sums)) == 1, sums
    done.append("broadcast_parameters")

    # one global batch: the gradients after allreduce equal one process's on the whole batch,
    # with Dropout and synchronized BatchNormalization, also for an empty shard
    for batch in (7, size - 1, 1):
        if batch < 1:
            continue
        rng = np.random.default_rng(batch)
        x, y = rng.standard_normal((batch, 6)), rng.integers(0, 3, batch)
        single = _mlp(seed=5, sync=True)
        criterion = nnjit.ClassNLLCriterion(log_input=True)
        np.random.seed(11)
        out = single.forward(x)
        criterion.forward(out, y)
        single.backward(x, criterion.backward(out, y))
        model = _mlp(seed=5, sync=True)
        parallel = distributed.DataParallel(model, comm)
        np.random.seed(11)
        xs, ys = parallel.shard_batch(x, y)
        out_local = model.forward(xs)
        np.testing.assert_allclose(out_local, out[parallel.shard.start:parallel.shard.stop],
                                   rtol=1e-12, atol=1e-12)
        model.backward(xs, parallel.loss_gradient(criterion, out_local, ys))
        parallel.allreduce_gradients()
        for got, want in zip(_flatten(model.getGradParameters()),
                             _flatten(single.getGradParameters())):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(model[1].moving_variance, single[1].moving_variance, rtol=1e-12)
    done.append("gradients equal one process's, empty shards included")

    # without loss_gradient, synchronized BatchNormalization refuses the allreduce
    parallel.shard_batch(x, y)
    try:
        parallel.allreduce_gradients()
    except RuntimeError as exc:
        assert "loss_gradient" in str(exc)
    else:
        raise AssertionError("allreduce_gradients accepted unweighted gradients")
    done.append("unweighted gradients refused")

    # a shard's rows are checked
    parallel.shard_batch(np.zeros((10, 6)))
    model.train()
    try:
        model.forward(np.zeros((11, 6)))
    except ValueError as exc:
        assert "shard" in str(exc), exc
    else:
        raise AssertionError("a forward of other rows than the shard's was accepted")
    done.append("rows checked against the shard")

    # unsynchronized statistics: the moving statistics averaged over ranks
    model = _mlp(seed=3)
    parallel = distributed.DataParallel(model, comm)
    x = np.random.default_rng(rank).standard_normal((5, 6)) + rank
    model.forward(parallel.shard_batch(np.repeat(x, size, axis=0)))
    means = comm.allgather(model[1].moving_mean.copy())
    parallel.average_moving_statistics()
    np.testing.assert_allclose(model[1].moving_mean, np.mean(means, axis=0), rtol=1e-12)
    done.append("moving statistics averaged")

    # equal weights (share=None) and the loss and accuracy sums
    model = _mlp(seed=4)
    for grad in _flatten(model.getGradParameters()):
        grad[...] = rank + 1
    distributed.allreduce_gradients(model, comm)
    for grad in _flatten(model.getGradParameters()):
        np.testing.assert_allclose(grad, (size + 1) / 2)
    assert distributed.sum_across_ranks([rank, 1.5], comm).tolist() == [size * (size - 1) / 2,
                                                                         1.5 * size]
    done.append("equal weights, sums across ranks")

    # diverged ranks are caught on every rank
    model = _mlp(seed=6)
    if rank == size - 1:
        model[0].W[0, 0] += 1e-9
    try:
        distributed.check_in_sync(model, comm)
    except distributed.RanksDivergedError as exc:
        assert f"[{size - 1}]" in str(exc), exc
    else:
        raise AssertionError("diverged parameters went unnoticed")
    done.append("divergence detected")

    # a different architecture on one rank: every rank raises, none waits
    model = _mlp(seed=7) if rank else nnjit.Sequential(nnjit.Linear(6, 3))
    try:
        distributed.broadcast_parameters(model, comm)
    except ValueError as exc:
        assert "differs" in str(exc)
    else:
        raise AssertionError("a model of another architecture was accepted")
    done.append("architecture mismatch refused on every rank")
    if rank == 0:
        for name in done:
            print("OK", name)


def fail(how):
    """Rank 1 fails while the others wait in a collective."""
    comm = distributed.world()
    if comm.Get_rank() == 1:
        if how == "raise":
            raise ValueError("rank one gives up here")
        os.kill(os.getpid(), signal.SIGKILL)
    comm.Barrier()


def predict(path, data_path):
    """Rank 0: predictions of a saved model, with nnjit train's architecture, on the digits'
    validation split, written to data_path."""
    from nnjit import train
    args = train.parser().parse_args(["--hidden", "32", "--sync-batchnorm", "--dropout", "0.2"])
    _, _, x_val, _ = train.load_digits_split()
    model = train.build_model(64, 10, args.hidden, args.activation, True, args.dropout,
                              np.dtype(np.float32), sync=True)
    nnjit.load(path, model)
    model.evaluate()
    np.save(data_path, model.forward(x_val))


if __name__ == "__main__":
    {"history": history, "api": api, "fail": fail, "predict": predict}[sys.argv[1]](*sys.argv[2:])
