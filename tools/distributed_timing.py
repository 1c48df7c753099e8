"""Data-parallel throughput: the 784-256-256-10 MLP (float32, Adam) trained on synthetic
MNIST-sized batches by one process (1 and 2 threads) and by N MPI ranks (1 thread each),
side by side in one run, in alternating rounds; prints samples/s, the ratio to the best single
process and the gradient Allreduce's share of a step.

    python tools/distributed_timing.py [--ranks 2] [--batches 128 512] [--rounds 3]

Needs mpi4py and an MPI library (pip install 'nnjit[mpi]'); as root, OpenMPI also needs
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numba
import numpy as np
import threadpoolctl

import nnjit
from nnjit.train import train_step

STEPS = 60  # timed steps of one measurement (after 10 untimed ones)


def _model(seed=0):
    np.random.seed(seed)
    return nnjit.Sequential(nnjit.Linear(784, 256), nnjit.ReLU(), nnjit.Linear(256, 256),
                            nnjit.ReLU(), nnjit.Linear(256, 10), nnjit.LogSoftMax())


def measure(batch, parallel_factory=None):
    """(median seconds per step, median seconds of the gradient allreduce per step)."""
    rng = np.random.default_rng(1)
    x = rng.random((batch * 8, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch * 8)
    model, criterion = _model(), nnjit.ClassNLLCriterion(log_input=True)
    parallel = parallel_factory(model) if parallel_factory else None
    allreduce_seconds = []
    if parallel is not None:  # time the allreduce inside the step
        allreduce = parallel.allreduce_gradients

        def timed():
            start = time.perf_counter()
            allreduce()
            allreduce_seconds.append(time.perf_counter() - start)
        parallel.allreduce_gradients = timed
    config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    state, steps = {}, []
    for i in range(10 + STEPS):
        if parallel is not None:
            parallel.comm.Barrier()
        start = time.perf_counter()
        first = (i % 8) * batch
        train_step(model, criterion, x[first:first + batch], y[first:first + batch],
                   nnjit.adam_optimizer, config, state, parallel)
        steps.append(time.perf_counter() - start)
    steps = steps[10:]
    if parallel is None:
        return statistics.median(steps), 0.0
    # a step ends when the slowest rank is done: the ranks' mean step time, combined by max
    step = parallel.comm.allreduce(statistics.median(steps), op=_max_op())
    return step, parallel.comm.allreduce(statistics.median(allreduce_seconds[10:]), op=_max_op())


def _max_op():
    from mpi4py import MPI
    return MPI.MAX


def worker(batches):
    """Runs in every rank under mpiexec: one Numba and one BLAS thread each."""
    from nnjit import distributed
    numba.set_num_threads(1)
    threadpoolctl.threadpool_limits(1, user_api="blas")
    comm = distributed.world()
    results = {b: measure(b, lambda model: distributed.DataParallel(model, comm)) for b in batches}
    if comm.Get_rank() == 0:
        print(json.dumps(results))


def single(batch, threads):
    numba.set_num_threads(threads)
    with threadpoolctl.threadpool_limits(threads, user_api="blas"):
        return measure(batch)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.batches)
        return
    mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    command = [mpiexec, "-n", str(args.ranks)]
    if args.ranks > os.cpu_count():
        command.append("--oversubscribe")
    command += [sys.executable, "-m", "mpi4py", os.path.abspath(__file__), "--worker",
                "--batches", *map(str, args.batches)]
    rows = {b: {"1 thread": [], f"{os.cpu_count()} threads": [], "mpi": [], "allreduce": []}
            for b in args.batches}
    for _ in range(args.rounds):
        for b in args.batches:
            rows[b]["1 thread"].append(single(b, 1))
            rows[b][f"{os.cpu_count()} threads"].append(single(b, os.cpu_count()))
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True,
                                           timeout=600).stdout.strip().splitlines()[-1])
        for b in args.batches:
            step, allreduce = result[str(b)]
            rows[b]["mpi"].append(step)
            rows[b]["allreduce"].append(allreduce)
    print(f"784-256-256-10 MLP, float32, Adam; medians of {args.rounds} rounds of {STEPS} steps; "
          f"samples/s")
    for b, row in rows.items():
        median = {k: statistics.median(v) for k, v in row.items()}
        best = min(median["1 thread"], median[f"{os.cpu_count()} threads"])
        print(f"global batch {b:>5}: 1 process 1 thread {b / median['1 thread']:>9,.0f}  "
              f"1 process {os.cpu_count()} threads {b / median[f'{os.cpu_count()} threads']:>9,.0f}  "
              f"{args.ranks} ranks {b / median['mpi']:>9,.0f}  "
              f"ratio to the best single process {best / median['mpi']:.2f}  "
              f"allreduce {median['allreduce'] * 1e3:.3f} ms = "
              f"{100 * median['allreduce'] / median['mpi']:.1f}% of a step")


if __name__ == "__main__":
    main()
