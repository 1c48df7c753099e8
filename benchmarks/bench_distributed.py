"""Data-parallel training (nnjit.distributed) on 2 MPI ranks started with mpiexec: the
gradient Allreduce of the 784-256-256-10 MLP (1.08 MB of float32), and a whole training step
at global batch 128 and 512, in milliseconds (medians over the ranks' slowest). Skipped where
mpiexec or mpi4py is missing (pip install 'nnjit[mpi]')."""
import json
import os
import shutil
import subprocess
import sys

RANKS = 2

PROGRAM = """
import json, statistics, time
import numba, numpy as np, threadpoolctl
import nnjit
from nnjit import distributed
from nnjit.train import train_step
from mpi4py import MPI
numba.set_num_threads(1)
threadpoolctl.threadpool_limits(1, user_api="blas")
comm = MPI.COMM_WORLD
np.random.seed(0)
model = nnjit.Sequential(nnjit.Linear(784, 256), nnjit.ReLU(), nnjit.Linear(256, 256),
                         nnjit.ReLU(), nnjit.Linear(256, 10), nnjit.LogSoftMax())
criterion = nnjit.ClassNLLCriterion(log_input=True)
parallel = distributed.DataParallel(model, comm)
config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
state, results, rng = {}, {}, np.random.default_rng(1)
for batch in (128, 512):
    x, y = rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)
    times = []
    for i in range(70):
        comm.Barrier()
        start = time.perf_counter()
        train_step(model, criterion, x, y, nnjit.adam_optimizer, config, state, parallel)
        times.append(time.perf_counter() - start)
    results[f"step_{batch}"] = comm.allreduce(statistics.median(times[10:]), op=MPI.MAX)
times = []
for i in range(210):
    comm.Barrier()
    start = time.perf_counter()
    parallel.allreduce_gradients()
    times.append(time.perf_counter() - start)
results["allreduce"] = comm.allreduce(statistics.median(times[10:]), op=MPI.MAX)
if comm.Get_rank() == 0:
    print(json.dumps(results))
"""


def _command():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                           + os.environ.get("PATH", ""))
    if mpiexec is None:
        return None
    command = [mpiexec, "-n", str(RANKS)]
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True)
    if "open mpi" in (version.stdout + version.stderr).lower():
        command.append("--oversubscribe")
    return command + [sys.executable, "-m", "mpi4py", "-c", PROGRAM]


class DataParallelMLP:
    """One mpiexec run per sample, read by the three track_ methods (asv calls setup before each)."""
    timeout = 300
    unit = "ms"

    def setup(self):
        command = _command()
        if command is None:
            raise NotImplementedError("mpiexec or mpi4py is not installed")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        self.results = json.loads(done.stdout.strip().splitlines()[-1])

    def track_gradient_allreduce(self):
        return self.results["allreduce"] * 1e3
    track_gradient_allreduce.unit = "ms"

    def track_step_global_batch_128(self):
        return self.results["step_128"] * 1e3
    track_step_global_batch_128.unit = "ms"

    def track_step_global_batch_512(self):
        return self.results["step_512"] * 1e3
    track_step_global_batch_512.unit = "ms"
