"""One optimizer step over the parameters of the 784-256-256-10 MLP."""
import numpy as np

import nnjit

from .common import (BACKENDS, DTYPES, Benchmark, built_once, nnjit_mlp, select_backend,
                     torch_mlp)

CONFIGS = {
    "sgd_momentum": {"learning_rate": 1e-3, "momentum": 0.9},
    "adam_optimizer": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
}


class OptimizerStep(Benchmark):
    params = [list(CONFIGS), DTYPES, BACKENDS]
    param_names = ["optimizer", "dtype", "backend"]

    @built_once
    def setup(self, optimizer, dtype, backend):
        torch = select_backend(backend)
        rng = np.random.default_rng(0)
        config = CONFIGS[optimizer]
        if torch is None:
            model = nnjit_mlp(dtype)
            variables, gradients = model.getParameters(), model.getGradParameters()
            for layer_gradients in gradients:
                for grad in layer_gradients:
                    grad[...] = rng.standard_normal(grad.shape)
            step, state = getattr(nnjit, optimizer), {}
            self.step = lambda: step(variables, gradients, config, state)
        else:
            params = list(torch_mlp(torch, dtype).parameters())
            for p in params:
                p.grad = torch.from_numpy(rng.standard_normal(tuple(p.shape))).to(p.dtype)
            if optimizer == "sgd_momentum":
                torch_optimizer = torch.optim.SGD(params, lr=config["learning_rate"],
                                                  momentum=config["momentum"])
            else:  # fused: one pass per parameter, like nnjit's kernel
                torch_optimizer = torch.optim.Adam(
                    params, lr=config["learning_rate"], betas=(config["beta1"], config["beta2"]),
                    eps=config["epsilon"], fused=True)
            self.step = torch_optimizer.step
        self.step()

    def time_step(self, *params):
        self.step()
