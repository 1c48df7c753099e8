"""A second process for a first ``nnjit train``: it compiles the model's forward kernels into
the kernel cache while the training process compiles the backward ones, so a cold start
takes about the longer half instead of the sum (compiling is single-threaded, and Numba
compiles one function at a time per process). The training process then loads the forward
kernels from the cache. The model is rebuilt here from its recipe (build arguments, JSON) and
the inputs come in an .npz: nothing is unpickled."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


class ForwardCompiler:
    """Starts the helper on the model ``recipe`` describes (see train.build), to run forward
    on each of ``train_inputs`` in training mode and ``eval_inputs`` in evaluation mode."""

    def __init__(self, recipe, train_inputs, eval_inputs):
        self._folder = tempfile.TemporaryDirectory(prefix="nnjit-compile-")
        try:
            with open(os.path.join(self._folder.name, "recipe.json"), "w") as file:
                json.dump(recipe, file)
            arrays = {f"train_{i}": x for i, x in enumerate(train_inputs)}
            arrays.update({f"eval_{i}": x for i, x in enumerate(eval_inputs)})
            np.savez(os.path.join(self._folder.name, "inputs.npz"), **arrays)
            # the package this process runs, even if it came from sys.path edits
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
            self._process = subprocess.Popen(
                [sys.executable, "-m", "nnjit._compile_helper", self._folder.name],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env)
        except BaseException:
            self._folder.cleanup()
            raise

    def finish(self, wait):
        """Let the helper finish (``wait``) or stop it; either way reap it and remove its
        files. Returns its exit status (negative: stopped by that signal)."""
        try:
            if not wait:
                self._process.terminate()
            return self._process.wait()
        except BaseException:  # interrupted while waiting: do not leave it running
            self._process.kill()
            self._process.wait()
            raise
        finally:
            self._folder.cleanup()


def _inputs(arrays, kind):
    count = sum(name.startswith(f"{kind}_") for name in arrays.files)
    return [arrays[f"{kind}_{i}"] for i in range(count)]


def main(folder):
    from .train import build
    with open(os.path.join(folder, "recipe.json")) as file:
        model = build(json.load(file))
    with np.load(os.path.join(folder, "inputs.npz")) as arrays:
        train_inputs, eval_inputs = _inputs(arrays, "train"), _inputs(arrays, "eval")
    model.train()
    for x in train_inputs:
        model.forward(x)
    model.evaluate()
    for x in eval_inputs:
        model.forward(x)


if __name__ == "__main__":
    main(sys.argv[1])
