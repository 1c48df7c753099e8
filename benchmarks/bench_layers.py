"""Forward and backward of every kernel-backed layer, per shape, dtype and backend.

torch runs the equivalent torch.nn layer the way training uses it: forward with autograd
recording, backward through autograd (input and parameter gradients)."""
import numpy as np

import nnjit

from .common import (BACKENDS, DTYPES, LARGE_SHAPE, SHAPES, Benchmark, built_once,
                     random_batch, select_backend, torch_dtype)

NNJIT_LAYERS = {
    "Linear": lambda features, dtype: nnjit.Linear(features, features, dtype=dtype),
    "SoftMax": lambda features, dtype: nnjit.SoftMax(),
    "LogSoftMax": lambda features, dtype: nnjit.LogSoftMax(),
    "ReLU": lambda features, dtype: nnjit.ReLU(),
    "LeakyReLU": lambda features, dtype: nnjit.LeakyReLU(0.03),
    "ELU": lambda features, dtype: nnjit.ELU(1.0),
    "SoftPlus": lambda features, dtype: nnjit.SoftPlus(),
    "Dropout": lambda features, dtype: nnjit.Dropout(0.5, seed=0),
    "BatchNormalization": lambda features, dtype: nnjit.BatchNormalization(0.9),
    "ChannelwiseScaling": lambda features, dtype: nnjit.ChannelwiseScaling(features, dtype=dtype),
}


def torch_layer(torch, name, features):
    nn = torch.nn
    if name == "ChannelwiseScaling":
        class Scaling(nn.Module):
            def __init__(self):
                super().__init__()
                self.gamma = nn.Parameter(torch.ones(features))
                self.beta = nn.Parameter(torch.zeros(features))

            def forward(self, x):
                return torch.addcmul(self.beta, x, self.gamma)
        return Scaling()
    return {
        "Linear": lambda: nn.Linear(features, features),
        "SoftMax": lambda: nn.Softmax(dim=1),
        "LogSoftMax": lambda: nn.LogSoftmax(dim=1),
        "ReLU": nn.ReLU,
        "LeakyReLU": lambda: nn.LeakyReLU(0.03),
        "ELU": lambda: nn.ELU(1.0),
        "SoftPlus": nn.Softplus,
        "Dropout": lambda: nn.Dropout(0.5),
        "BatchNormalization": lambda: nn.BatchNorm1d(features, momentum=0.1, affine=False),
    }[name]()


class _LayerPass(Benchmark):
    """Builds ``self.forward`` and ``self.backward`` (no-argument callables) for one layer
    and runs both once, so compilation and buffer allocation stay out of the timings."""

    def _build(self, layer, shape, dtype, backend):
        self._build_pass(lambda: NNJIT_LAYERS[layer](shape[1], dtype),
                         lambda torch: torch_layer(torch, layer, shape[1]),
                         random_batch(shape, dtype), backend)

    def _build_pass(self, make_nnjit, make_torch, x, backend):
        """make_nnjit(): the nnjit module; make_torch(torch): the torch one; x: the input.
        gradOutput is random, of the output's shape."""
        torch = select_backend(backend)
        dtype = x.dtype.name
        if torch is None:
            module = make_nnjit()
            module.train()
            grad_output = random_batch(module.forward(x).shape, dtype, seed=1, scale=1.0)
            self.forward = lambda: module.forward(x)
            self.backward = lambda: module.backward(x, grad_output)
        else:
            module = make_torch(torch).to(torch_dtype(torch, dtype)).train()
            tx = torch.from_numpy(x).requires_grad_()
            self.forward = lambda: module(tx)
            recorded = module(tx)
            tg = torch.from_numpy(random_batch(tuple(recorded.shape), dtype, seed=1, scale=1.0))
            self.backward = lambda: recorded.backward(tg, retain_graph=True)
        self.forward()
        self.backward()
        self.backward()


class Layers(_LayerPass):
    params = [list(NNJIT_LAYERS), SHAPES, DTYPES, BACKENDS]
    param_names = ["layer", "shape", "dtype", "backend"]

    @built_once
    def setup(self, layer, shape, dtype, backend):
        self._build(layer, shape, dtype, backend)

    def time_forward(self, *params):
        self.forward()

    def time_backward(self, *params):
        self.backward()


class LayersPeakMemory(_LayerPass):
    """Peak RSS over ten forward/backward passes at the large shape: with buffers reused, it
    stays at one pass's footprint however many passes run."""
    params = [list(NNJIT_LAYERS), DTYPES, BACKENDS]
    param_names = ["layer", "dtype", "backend"]

    @built_once
    def setup(self, layer, dtype, backend):
        self._build(layer, LARGE_SHAPE, dtype, backend)

    def peakmem_forward_backward(self, *params):
        for _ in range(10):
            self.forward()
            self.backward()


# Image layers at issue 14's shapes (batch 64): input shape and the layer in both libraries.
IMAGE_LAYERS = {
    "Conv2d 1->16 28x28": ((64, 1, 28, 28), lambda dtype: nnjit.Conv2d(1, 16, 3, dtype=dtype),
                           lambda nn: nn.Conv2d(1, 16, 3, padding=1)),
    "Conv2d 16->32 14x14": ((64, 16, 14, 14), lambda dtype: nnjit.Conv2d(16, 32, 3, dtype=dtype),
                            lambda nn: nn.Conv2d(16, 32, 3, padding=1)),
    "MaxPool2d(2) 16x28x28": ((64, 16, 28, 28), lambda dtype: nnjit.MaxPool2d(2),
                              lambda nn: nn.MaxPool2d(2)),
}


class ImageLayers(_LayerPass):
    """Forward and backward (input and parameter gradients) of Conv2d and MaxPool2d."""
    params = [list(IMAGE_LAYERS), DTYPES, BACKENDS]
    param_names = ["layer", "dtype", "backend"]

    @built_once
    def setup(self, layer, dtype, backend):
        shape, make_nnjit, make_torch = IMAGE_LAYERS[layer]
        self._build_pass(lambda: make_nnjit(dtype), lambda torch: make_torch(torch.nn),
                         random_batch(shape, dtype, scale=1.0), backend)

    def time_forward(self, *params):
        self.forward()

    def time_backward(self, *params):
        self.backward()
