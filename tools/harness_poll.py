"""The asv suite's MLP training step timed the way `asv run` times it, with and without the
waiting parent asv puts beside it.

asv's fork server forks a child per benchmark and waits for it with waitpid(WNOHANG) and
time.sleep(0.001) in a loop (asv_runner/server.py): a process waking 1000 times a second.
This runs the benchmark through asv_runner in forked children (asv's own timing: setup hooks,
warm-up, single-call samples), the parent either blocking in waitpid or polling as asv's
server does, in turn, and prints each child's median sample. A second table splits nnjit's
step into its phases under both parents.

    python tools/harness_poll.py [--rounds 3]      # from the repository root; needs torch
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asv_runner.discovery import get_benchmark_from_name  # noqa: E402

import nnjit  # noqa: E402
from benchmarks.bench_training import ADAM, BATCH  # noqa: E402
from benchmarks.common import (MLP_SIZES, import_torch, nnjit_mlp, random_batch,  # noqa: E402
                               random_labels)

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")
# MLPTrainingStep's parameter combinations, in asv's order: dtype x (numba, numpy, torch)
CASES = {("float32", "numba"): 0, ("float32", "torch"): 2,
         ("float64", "numba"): 3, ("float64", "torch"): 5}


def _wait(pid, poll):
    if not poll:
        os.waitpid(pid, 0)
        return
    pause = 1e-15  # asv_runner's server loop
    while os.waitpid(pid, os.WNOHANG)[0] == 0:
        pause *= 10
        time.sleep(min(pause, 0.001))


def _in_child(work, poll):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    _wait(pid, poll)
    with os.fdopen(read) as pipe:
        return json.loads(pipe.read())


def _asv_sample_ms(index):
    def run():
        benchmark = get_benchmark_from_name(
            BENCHMARKS, f"bench_training.MLPTrainingStep.time_step-{index}", extra_params={})
        benchmark.set_cache(None)
        benchmark.do_setup()
        return statistics.median(benchmark.do_run()["samples"]) * 1e3
    return run


def _phases_us(dtype="float32", steps=1500):
    def run():
        model, criterion, state = nnjit_mlp(dtype), nnjit.ClassNLLCriterion(log_input=True), {}
        model.train()
        model.input_gradient = False
        x = random_batch((BATCH, MLP_SIZES[0]), dtype, scale=1.0)
        labels = random_labels(BATCH, MLP_SIZES[-1])
        names = ("zeroGradParameters", "forward", "criterion", "backward", "adam", "step")
        times = {name: [] for name in names}
        clock = time.perf_counter
        for step in range(steps):
            t0 = clock()
            model.zeroGradParameters()
            t1 = clock()
            output = model.forward(x)
            t2 = clock()
            criterion.forward(output, labels)
            gradient = criterion.backward(output, labels)
            t3 = clock()
            model.backward(x, gradient)
            t4 = clock()
            nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), ADAM, state)
            t5 = clock()
            if step >= 100:
                for name, spent in zip(names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
                                               t5 - t0)):
                    times[name].append(spent)
        return {name: statistics.median(v) * 1e6 for name, v in times.items()}
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import_torch()  # the torch rows: refuse here, not in a forked child
    samples = {}
    for _ in range(args.rounds):
        for poll in (False, True):
            for case, index in CASES.items():
                samples.setdefault((case, poll), []).append(
                    _in_child(_asv_sample_ms(index), poll))
    print(f"asv's timing of MLPTrainingStep.time_step, ms (median of {args.rounds} children):")
    for dtype in ("float32", "float64"):
        cells = []
        for poll in (False, True):
            nnjit_ms = statistics.median(samples[(dtype, "numba"), poll])
            torch_ms = statistics.median(samples[(dtype, "torch"), poll])
            parent = "polling parent" if poll else "blocking parent"
            cells.append(f"{parent}: nnjit {nnjit_ms:.3f}, torch {torch_ms:.3f}, "
                         f"torch/nnjit {torch_ms / nnjit_ms:.2f}")
        print(f"  {dtype}: " + "; ".join(cells))
    print("nnjit's float32 step by phase, us (medians of 1400 steps, one child each):")
    for _ in range(max(1, args.rounds - 1)):
        for poll in (False, True):
            phases = _in_child(_phases_us(), poll)
            parent = "polling " if poll else "blocking"
            print(f"  {parent}: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))


if __name__ == "__main__":
    main()
