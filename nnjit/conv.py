"""Conv2d, MaxPool2d and AvgPool2d over (batch, channels, height, width) input."""
import numpy as np

from . import _checks
from . import kernels as K
from .linear import _Parameter
from .module import Module


def _pair(value, who, name, allow_zero=False):
    """An int or a pair of ints as (h, w), each positive (or >= 0 with allow_zero)."""
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair) or min(pair) < (0 if allow_zero else 1):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{who}: {name} must be a {bound} int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _output_size(size, kernel, stride, pad, who, shape):
    padded = size + 2 * pad
    if padded < kernel:
        raise ValueError(f"{who}: the kernel ({kernel}) is larger than the padded input "
                         f"({size} + 2*{pad}) of input shape {shape}")
    return (padded - kernel) // stride + 1


def _image_batch(module, input, dtype=None):
    x = _checks.float_array(input, module._name, dtype=dtype)
    _checks.require_ndim(x, 4, module._name, meaning="(batch, channels, height, width)")
    return x


class Conv2d(Module):
    """``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=None, bias=True)``:
    (batch, in, h, w) -> (batch, out, h', w'), cross-correlation as torch's conv2d. ``padding``
    None means kernel_size // 2 ("same" for odd kernels, as the assignment assumes); also an
    int, a pair, "same" (odd kernels, stride 1) or "valid". ``W`` (out, in, kh, kw) as torch's,
    ``b`` (out,), both uniform in +-1/sqrt(in*kh*kw). Computes in its parameters' dtype."""

    # the BLAS path's scratch buffers, the columns forward keeps for the weight gradient of
    # the same input object, and the stride-1 path's padded planes
    _per_call = ("_columns", "_gathered", "_kept_columns", "_columns_input", "_padded_input",
                 "_padded_grad")

    KEEP_COLUMNS_MAX_BYTES = 64 << 20

    W = _Parameter()
    b = _Parameter()
    gradW = _Parameter()
    gradb = _Parameter()

    _state_names = ("W", "b")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None,
                 bias=True, dtype=np.float32):
        super().__init__()
        who = "Conv2d"
        in_channels = _checks.positive_int(in_channels, who, "in_channels")
        out_channels = _checks.positive_int(out_channels, who, "out_channels")
        self.kernel_size = _pair(kernel_size, who, "kernel_size")
        self.stride = _pair(stride, who, "stride")
        self.padding = self._padding(padding)
        self.dtype = _checks.param_dtype(dtype, who)
        self.has_bias = bool(bias)
        kh, kw = self.kernel_size
        shape = (out_channels, in_channels, kh, kw)
        self._shapes = {"W": shape, "b": (out_channels,), "gradW": shape, "gradb": (out_channels,)}
        stdv = 1.0 / np.sqrt(in_channels * kh * kw)
        self.W = np.random.uniform(-stdv, stdv, size=shape)
        self.b = np.random.uniform(-stdv, stdv, size=out_channels) if bias else np.zeros(out_channels)
        self.gradW = np.zeros(shape)
        self.gradb = np.zeros(out_channels)

    def _padding(self, padding):
        kh, kw = self.kernel_size
        if padding is None:
            return kh // 2, kw // 2
        if isinstance(padding, str):
            if padding == "valid":
                return 0, 0
            if padding == "same":
                if kh % 2 == 0 or kw % 2 == 0 or self.stride != (1, 1):
                    raise ValueError(f"Conv2d: padding='same' needs an odd kernel and stride 1, "
                                     f"got kernel_size {self.kernel_size}, stride {self.stride}")
                return kh // 2, kw // 2
            raise ValueError(f"Conv2d: padding must be None, an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
        return _pair(padding, "Conv2d", "padding", allow_zero=True)

    @property
    def in_channels(self):
        return self._shapes["W"][1]

    @property
    def out_channels(self):
        return self._shapes["W"][0]

    def _input(self, input):
        x = _image_batch(self, input, self.dtype)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name}: input has {x.shape[1]} channels, the layer takes "
                             f"{self.in_channels} (input shape {x.shape})")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh = _output_size(x.shape[2], kh, sh, ph, self._name, x.shape)
        ow = _output_size(x.shape[3], kw, sw, pw, self._name, x.shape)
        return x, (x.shape[0], self.out_channels, oh, ow)

    def _geometry(self):
        return (*self.stride, *self.padding)

    def _path(self, out_shape):
        """"small" (float64 sums, for the shapes people test with), "wide" (stride 1),
        "direct" (a small receptive field) or "gemm" (columns and BLAS); see kernels/conv.py."""
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        field = self.in_channels * kh * kw
        if field * out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] <= K.SMALL_MAX_WORK:
            return "small"
        if self.stride == (1, 1) and ph < kh and pw < kw and field <= K.WIDE_MAX_FIELD:
            return "wide"
        return "direct" if field <= K.DIRECT_MAX_FIELD else "gemm"

    def _padded(self, name, channels_shape, pad_h, pad_w):
        """The stride-1 path's 1-D buffer ``name`` for planes of (n, channels, h, w)
        padded by (pad_h, pad_w)."""
        size = K.wide_padded_size(*channels_shape, pad_h, pad_w)
        buffer = _checks.buffer(getattr(self, name), (size,), self.dtype)
        setattr(self, name, buffer)
        return buffer

    def _scratch(self, out_shape):
        """The BLAS path's buffers, sized for out_shape's positions."""
        field = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        positions = out_shape[2] * out_shape[3]
        chunk = min(K.chunk_images(field, positions, self.dtype.itemsize), out_shape[0])
        self._columns = _checks.buffer(self._columns, (field, chunk * positions), self.dtype)
        self._gathered = _checks.buffer(self._gathered, (self.out_channels, chunk * positions),
                                        self.dtype)
        return self._columns, self._gathered

    def _kept_shape(self, out_shape):
        """(chunks, K, chunk * positions): every chunk's columns, as forward keeps them."""
        field, chunk_width = self._columns.shape if self._columns is not None else (0, 0)
        positions = out_shape[2] * out_shape[3]
        chunks = -(-out_shape[0] * positions // max(chunk_width, 1))
        return chunks, field, chunk_width

    def _keep_columns(self, out_shape):
        """In training, the buffer forward keeps its columns in (backward's weight gradient of
        the same input then skips im2col: the issue's "reuse forward's columns"), unless they
        would take more than KEEP_COLUMNS_MAX_BYTES; else None."""
        shape = self._kept_shape(out_shape)
        if not self.training or np.prod(shape) * self.dtype.itemsize > self.KEEP_COLUMNS_MAX_BYTES:
            self._kept_columns = None
            return None
        self._kept_columns = _checks.buffer(self._kept_columns, shape, self.dtype)
        return self._kept_columns

    def updateOutput(self, input):
        x, out_shape = self._input(input)
        out = self._output_buffer(out_shape, self.dtype, x)
        path = self._path(out_shape)
        self._columns_input = None
        if path == "small":
            K.conv2d_small_update_output(x, self.W, self.b, out, *self._geometry())
        elif path == "wide":
            K.conv2d_wide_update_output(x, self.W, self.b, out, *self.padding,
                                        self._padded("_padded_input", x.shape, *self.padding))
        elif path == "direct":
            K.conv2d_direct_update_output(x, self.W, self.b, out, *self._geometry())
        else:
            columns, product = self._scratch(out_shape)
            kept = self._keep_columns(out_shape)
            K.conv2d_gemm_update_output(x, self.W, self.b, out, *self._geometry(),
                                        columns if kept is None else kept, product)
            # the NumPy twin leaves the columns unwritten: a backward on the Numba backend
            # after a forward on NumPy must build its own
            if kept is not None and K.get_backend() == "numba":
                self._columns_input = input
        return out

    def updateGradInput(self, input, gradOutput):
        x, out_shape = self._input(input)
        g = _checks.grad_output_array(gradOutput, out_shape, self.dtype, self._name)
        grad_input = self._grad_input_buffer(x.shape, self.dtype, g)
        path = self._path(out_shape)
        if path == "small":
            K.conv2d_small_update_grad_input(g, self.W, grad_input, *self._geometry())
        elif path == "wide":
            (kh, kw), (ph, pw) = self.kernel_size, self.padding
            padded = self._padded("_padded_grad", g.shape, kh - 1 - ph, kw - 1 - pw)
            K.conv2d_wide_update_grad_input(g, self.W, grad_input, ph, pw, padded)
        elif path == "direct":
            K.conv2d_direct_update_grad_input(g, self.W, grad_input, *self._geometry())
        else:
            K.conv2d_gemm_update_grad_input(g, self.W, grad_input, *self._geometry(),
                                            *self._scratch(out_shape))
        return grad_input

    def accGradParameters(self, input, gradOutput):
        x, out_shape = self._input(input)
        g = _checks.grad_output_array(gradOutput, out_shape, self.dtype, self._name)
        path = self._path(out_shape)
        if path == "wide":  # the bias gradient too, from the same pass over gradOutput
            K.conv2d_wide_acc_grad_parameters(x, g, self.gradW, self.gradb, self.has_bias,
                                              *self.padding,
                                              self._padded("_padded_input", x.shape, *self.padding))
            return
        if path != "gemm":
            K.conv2d_direct_acc_grad_weight(x, g, self.gradW, *self._geometry())
        else:
            columns, gathered = self._scratch(out_shape)
            kept = self._kept_columns
            # forward's columns, if they are of this very input object (as SoftMax reuses its
            # output): an input changed in place since its forward is the caller's business
            if input is not self._columns_input or kept is None \
                    or kept.shape != self._kept_shape(out_shape):
                kept = None
            K.conv2d_gemm_acc_grad_weight(x, g, self.gradW, *self._geometry(),
                                          columns if kept is None else kept, gathered)
        if self.has_bias:
            K.conv2d_acc_grad_bias(g, self.gradb)

    def getParameters(self):
        return [self.W, self.b]

    def getGradParameters(self):
        return [self.gradW, self.gradb]

    def __repr__(self):
        kh, kw = self.kernel_size
        extra = "" if self.stride == (1, 1) else f", stride={self.stride}"
        return (f"Conv2d({self.in_channels} -> {self.out_channels}, {kh}x{kw}{extra}, "
                f"padding={self.padding})")


class _Pool2d(Module):
    """Window geometry shared by the pooling layers: kernel_size, stride (kernel_size by
    default), padding (at most half the kernel), floor mode; computes in the input's dtype."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        who = self._name
        self.kernel_size = _pair(kernel_size, who, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, who, "stride")
        self.padding = _pair(padding, who, "padding", allow_zero=True)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{who}: padding {self.padding} must be at most half the "
                             f"kernel size {self.kernel_size}")

    def _input(self, input):
        x = _image_batch(self, input)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh = _output_size(x.shape[2], kh, sh, ph, self._name, x.shape)
        ow = _output_size(x.shape[3], kw, sw, pw, self._name, x.shape)
        return x, (x.shape[0], x.shape[1], oh, ow)

    def __repr__(self):
        return f"{self._name}({self.kernel_size}, stride={self.stride}, padding={self.padding})"


class MaxPool2d(_Pool2d):
    """``MaxPool2d(kernel_size, stride=None, padding=0)``: the maximum of each window, stride
    kernel_size by default, floor mode. Backward routes each gradient to its window's argmax
    (``max_indices``, flat positions in the input plane), adding where windows overlap. Ties,
    NaN and all -inf windows as torch's CPU kernel. Computes in the input's dtype."""

    _per_call = ("max_indices", "_forward_input")

    def updateOutput(self, input):
        x, out_shape = self._input(input)
        out = self._output_buffer(out_shape, x.dtype, x)
        self.max_indices = _checks.buffer(self.max_indices, out_shape, np.dtype(np.int64))
        K.max_pool2d_update_output(x, out, self.max_indices, *self.kernel_size, *self.stride,
                                   *self.padding)
        self._forward_input = input
        return out

    def updateGradInput(self, input, gradOutput):
        x, out_shape = self._input(input)
        if input is not self._forward_input or self.max_indices.shape != out_shape:
            self.updateOutput(input)  # backward of another input than the last forward's
        g = _checks.grad_output_array(gradOutput, out_shape, x.dtype, self._name)
        grad_input = self._grad_input_buffer(x.shape, x.dtype, g)
        K.max_pool2d_update_grad_input(g, self.max_indices, grad_input)
        return grad_input


class AvgPool2d(_Pool2d):
    """``AvgPool2d(kernel_size, stride=None, padding=0)``: the mean of each window, stride
    kernel_size by default, floor mode; padding counts as zeros in the mean (torch's default
    count_include_pad=True). Sums in float64. Computes in the input's dtype."""

    def updateOutput(self, input):
        x, out_shape = self._input(input)
        out = self._output_buffer(out_shape, x.dtype, x)
        K.avg_pool2d_update_output(x, out, *self.kernel_size, *self.stride, *self.padding)
        return out

    def updateGradInput(self, input, gradOutput):
        x, out_shape = self._input(input)
        g = _checks.grad_output_array(gradOutput, out_shape, x.dtype, self._name)
        grad_input = self._grad_input_buffer(x.shape, x.dtype, g)
        K.avg_pool2d_update_grad_input(g, grad_input, *self.kernel_size, *self.stride,
                                       *self.padding)
        return grad_input
