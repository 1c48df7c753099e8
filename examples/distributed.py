"""Data-parallel training with nnjit.distributed (docs/distributed.md): the quick-start's
synthetic 3-class problem, each global batch split over the MPI ranks. Any number of ranks
prints the same losses as one process (to rounding):

    python examples/distributed.py
    mpiexec -n 2 python -m mpi4py examples/distributed.py

(as root, Open MPI also wants OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1).
"""
import numpy as np

import nnjit
from nnjit import distributed


def make_blobs(n, centers, rng):
    """Samples from Gaussian clouds around ``centers`` (one per class)."""
    labels = rng.integers(0, len(centers), n)
    noise = rng.standard_normal((n, centers.shape[1])) * 2
    return (centers[labels] + noise).astype(np.float32), labels


def main():
    distributed.set_rank_threads()  # one Numba and one BLAS thread per rank
    rng = np.random.default_rng(0)  # the same data and order on every rank
    np.random.seed(0)  # the same initial weights and Dropout seeds on every rank
    centers = rng.standard_normal((3, 20))
    x_train, y_train = make_blobs(6000, centers, rng)
    x_val, y_val = make_blobs(1000, centers, rng)

    model = nnjit.Sequential(
        nnjit.Linear(20, 64), nnjit.BatchNormalization(alpha=0.9, sync=True), nnjit.LeakyReLU(),
        nnjit.Dropout(0.2), nnjit.Linear(64, 3), nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    config = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    state = {}
    parallel = distributed.DataParallel(model)  # root's weights on every rank
    rank = parallel.rank

    for epoch in range(3):
        model.train()
        order = rng.permutation(len(x_train))
        loss_sum = 0.0
        for batch in np.array_split(order, len(order) // 128):
            x, y = parallel.shard_batch(x_train[batch], y_train[batch])  # this rank's rows
            model.zeroGradParameters()
            out = model.forward(x)
            loss_sum += criterion.forward(out, y) * len(x) if len(x) else 0.0
            model.backward(x, parallel.loss_gradient(criterion, out, y))
            parallel.allreduce_gradients()  # the whole batch's mean gradient on every rank
            nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
        total_loss, = parallel.sum_across_ranks([loss_sum])
        parallel.check_in_sync()
        model.evaluate()
        accuracy = (model.forward(x_val).argmax(axis=1) == y_val).mean()
        if rank == 0:
            print(f"epoch {epoch + 1}: train loss {total_loss / len(x_train):.6f}  "
                  f"validation accuracy {accuracy:.4f}  ({parallel.size} ranks)")


if __name__ == "__main__":
    main()
