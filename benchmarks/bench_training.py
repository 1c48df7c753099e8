"""One whole training step of the 784-256-256-10 MLP (Linear, LeakyReLU, Dropout, LogSoftMax,
NLL, Adam) at batch 128: what a user's training loop pays per batch."""
import numpy as np

import nnjit

from .common import (BACKENDS, DTYPES, MLP_SIZES, Benchmark, built_once, nnjit_mlp,
                     random_batch, random_labels, select_backend, torch_mlp)

BATCH = 128
ADAM = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


class MLPTrainingStep(Benchmark):
    params = [DTYPES, BACKENDS]
    param_names = ["dtype", "backend"]

    @built_once
    def setup(self, dtype, backend):
        torch = select_backend(backend)
        x = random_batch((BATCH, MLP_SIZES[0]), dtype, scale=1.0)
        labels = random_labels(BATCH, MLP_SIZES[-1])
        self.step = self._torch_step(torch, x, labels, dtype) if torch else \
            self._nnjit_step(x, labels, dtype)
        self.step()

    @staticmethod
    def _nnjit_step(x, labels, dtype):
        model, criterion, state = nnjit_mlp(dtype), nnjit.ClassNLLCriterion(log_input=True), {}
        model.train()
        model.input_gradient = False  # x is data, as torch's tensor without requires_grad

        def step():
            model.zeroGradParameters()
            output = model.forward(x)
            criterion.forward(output, labels)
            model.backward(x, criterion.backward(output, labels))
            nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), ADAM, state)
        return step

    @staticmethod
    def _torch_step(torch, x, labels, dtype):
        model = torch_mlp(torch, dtype).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=ADAM["learning_rate"],
                                     betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["epsilon"],
                                     fused=True)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)

        def step():
            optimizer.zero_grad()
            torch.nn.functional.nll_loss(model(tx), tl).backward()
            optimizer.step()
        return step

    def time_step(self, *params):
        self.step()

    def peakmem_hundred_steps(self, *params):
        for _ in range(100):
            self.step()
