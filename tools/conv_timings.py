"""Conv2d and MaxPool2d through the module API against torch (2 threads, batch 64, float32),
at issue 14's shapes: L1 = 1->16 channels, 28x28, k=3, padding 1; L2 = 16->32 channels, 14x14;
MaxPool2d(2) over 64x16x28x28; and the whole conv1-pool1-conv2-pool2 forward+backward. Last,
the floor under L1 forward: writing its 3.2 MB output once (np.copyto, and a 2-thread fill).

    python tools/conv_timings.py        # needs torch==2.13.0; medians of 30 calls, ms
"""
import numba
import numpy as np
import torch
import torch.nn.functional as F

import nnjit
from _timing import median_seconds


def median_ms(call, calls=30):
    return median_seconds(call, calls, warmup=3) * 1e3


def row(name, ours, theirs):
    print(f"{name:34s} nnjit {ours:8.3f} ms  torch {theirs:8.3f} ms  torch/nnjit {theirs / ours:5.2f}",
          flush=True)


def conv_layer(name, rng, c_in, c_out, side):
    x = rng.standard_normal((64, c_in, side, side)).astype(np.float32)
    conv = nnjit.Conv2d(c_in, c_out, 3)
    g = rng.standard_normal(conv.forward(x).shape).astype(np.float32)
    tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, conv.W, conv.b, g))

    def torch_forward():
        with torch.no_grad():
            F.conv2d(tx, tw, tb, padding=1)

    def torch_backward():  # the input, weight and bias gradients, as autograd asks for them
        torch.ops.aten.convolution_backward(tg, tx, tw, [c_out], [1, 1], [1, 1], [1, 1], False,
                                            [0, 0], 1, [True, True, True])

    def ours_backward():
        conv.backward(x, g)
    row(f"{name} forward", median_ms(lambda: conv.forward(x)), median_ms(torch_forward))
    conv.forward(x)
    row(f"{name} backward", median_ms(ours_backward), median_ms(torch_backward))


def pooling(rng):
    x = rng.standard_normal((64, 16, 28, 28)).astype(np.float32)
    pool = nnjit.MaxPool2d(2)
    g = rng.standard_normal(pool.forward(x).shape).astype(np.float32)
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)
    _, indices = F.max_pool2d(tx, 2, return_indices=True)
    row("MaxPool2d forward", median_ms(lambda: pool.forward(x)), median_ms(lambda: F.max_pool2d(tx, 2)))
    pool.forward(x)
    row("MaxPool2d backward", median_ms(lambda: pool.backward(x, g)),
        median_ms(lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            tg, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, indices)))


def whole_stack(rng):
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    model = nnjit.Sequential(nnjit.Conv2d(1, 16, 3), nnjit.MaxPool2d(2),
                             nnjit.Conv2d(16, 32, 3), nnjit.MaxPool2d(2))
    g = rng.standard_normal(model.forward(x).shape).astype(np.float32)
    layers = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.MaxPool2d(2),
                                 torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.MaxPool2d(2))
    tx, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)

    def ours():
        model.forward(x)
        model.backward(x, g)

    def theirs():
        layers(tx).backward(tg)
    row("conv1-pool1-conv2-pool2 fwd+bwd", median_ms(ours), median_ms(theirs))


@numba.njit(parallel=True)
def _fill(out, value):
    for i in numba.prange(out.size):
        out[i] = value


def output_floor():
    out = np.empty(64 * 16 * 28 * 28, np.float32)
    source = np.ones_like(out)
    _fill(out, 0.0)
    print(f"L1 output, 3.2 MB written once: np.copyto {median_ms(lambda: np.copyto(out, source)):.3f} ms, "
          f"2-thread fill {median_ms(lambda: _fill(out, 1.0)):.3f} ms")


def main():
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    conv_layer("Conv2d L1", rng, 1, 16, 28)
    conv_layer("Conv2d L2", rng, 16, 32, 14)
    pooling(rng)
    whole_stack(rng)
    output_floor()


if __name__ == "__main__":
    main()
