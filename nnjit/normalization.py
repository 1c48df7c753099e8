"""BatchNormalization (without affine parameters, as in the seed) and ChannelwiseScaling."""
import numpy as np

from . import _checks
from . import kernels as K
from .linear import _Parameter
from .module import Module

_STATISTICS_DTYPE = np.dtype(np.float64)


class BatchNormalization(Module):
    """Normalizes each feature over the batch: (x - mean) / sqrt(var + EPS) with the batch's
    mean and biased variance in training, the moving ones in evaluation. In training,
    ``moving = alpha * moving + (1 - alpha) * batch`` (moving statistics start at 0 and 1, as
    in torch). Computes in the input's dtype.

    ``sync=True`` matters only in data-parallel training (nnjit.distributed): the batch
    statistics and the gradient's column sums are then those of the whole global batch, combined
    across ranks, so N ranks compute exactly what one process computes. Without it each rank
    normalizes by its own shard's statistics (as Horovod and PyTorch DDP do)."""

    _per_call = ("_save_mean", "_save_invstd", "_forward_input", "_forward_key")

    EPS = 1e-3
    sync = False
    _shard = None
    _state_names = ("moving_mean", "moving_variance")  # what nnjit.save writes
    _keeps_width = True

    def _widths(self):
        return None if self.moving_mean is None else (self.moving_mean.shape[0],) * 2

    def __init__(self, alpha=0.0, sync=False):
        super().__init__()
        self.alpha = _checks.probability(alpha, "BatchNormalization", "alpha")
        if not isinstance(sync, (bool, np.bool_)):
            raise TypeError(f"BatchNormalization: sync must be True or False, got {sync!r}")
        self.sync = bool(sync)
        self._shard = None  # this rank's part of the global batch (nnjit.distributed)
        self.moving_mean = None
        self.moving_variance = None
        self._save_mean = None
        self._save_invstd = None
        self._forward_input = None
        self._forward_key = None  # (training, dtype, shape) of the last forward

    def _input(self, input):
        x = _checks.float_array(input, self._name)
        _checks.require_ndim(x, 2, self._name)
        return x

    def _moving_statistics(self, n_features, dtype):
        if self.moving_mean is None:
            self.moving_mean = np.zeros(n_features, dtype=dtype)
            self.moving_variance = np.ones(n_features, dtype=dtype)
        for name in ("moving_mean", "moving_variance"):
            stat = getattr(self, name)
            if stat.shape != (n_features,):
                raise ValueError(f"{self._name}: input has {n_features} features but {name} "
                                 f"has shape {stat.shape}")
            if stat.dtype != dtype or not stat.flags.c_contiguous or not stat.flags.writeable:
                setattr(self, name, np.array(stat, dtype=dtype))

    def _distributed(self, x):
        """This rank's shard when training data-parallel, checked against the input; else None."""
        shard = self._shard
        if shard is None or not self.training:
            return None
        shard.check_rows(x.shape[0], self._name)
        return shard

    def _run_forward(self, x, alpha):
        shard = self._distributed(x)
        if self.training and x.shape[0] == 0 and shard is None:
            raise ValueError(f"{self._name}: batch statistics of an empty batch are undefined")
        self._moving_statistics(x.shape[1], x.dtype)
        # float64 whatever x's dtype: see kernels/batchnorm.py
        self._save_mean = _checks.buffer(self._save_mean, (x.shape[1],), _STATISTICS_DTYPE)
        self._save_invstd = _checks.buffer(self._save_invstd, (x.shape[1],), _STATISTICS_DTYPE)
        out = self._output_buffer(x.shape, x.dtype, x)
        if shard is not None and self.sync:
            self._synchronized_forward(x, out, alpha, shard)
        elif x.shape[0] > 0 or not self.training:
            K.batch_norm_update_output(x, out, self.moving_mean, self.moving_variance,
                                       self._save_mean, self._save_invstd, alpha,
                                       float(self.EPS), self.training)
        # else: a rank's empty shard, unsynchronized: no statistics, nothing to normalize
        self._forward_key = (self.training, x.dtype, x.shape)
        return out

    def _synchronized_forward(self, x, out, alpha, shard):
        local = np.empty((2, x.shape[1]))
        K.batch_norm_statistics(x, local)
        mean, variance = shard.combine_statistics(local, self._name)
        self._save_mean[...] = mean
        self._save_invstd[...] = 1.0 / np.sqrt(variance + float(self.EPS))
        self.moving_mean[...] = alpha * self.moving_mean + (1 - alpha) * mean
        self.moving_variance[...] = alpha * self.moving_variance + (1 - alpha) * variance
        K.batch_norm_normalize(x, out, self._save_mean, self._save_invstd)

    def updateOutput(self, input):
        alpha = _checks.probability(self.alpha, self._name, "alpha")
        out = self._run_forward(self._input(input), alpha)
        self._forward_input = input
        return out

    def updateGradInput(self, input, gradOutput):
        x = self._input(input)
        g = _checks.grad_output_array(gradOutput, x.shape, x.dtype, self._name)
        if input is not self._forward_input or self._forward_key != (self.training, x.dtype, x.shape):
            # Statistics of this input, leaving the moving ones as they are (alpha = 1).
            self._run_forward(x, 1.0)
            self._forward_input = input
        grad_input = self._grad_input_buffer(x.shape, x.dtype, g)
        shard = self._distributed(x)
        if shard is not None and self.sync:
            sums = np.empty((2, x.shape[1]))
            K.batch_norm_grad_sums(x, g, self._save_mean, self._save_invstd, sums)
            sums = shard.sum_across_ranks(sums)
            K.batch_norm_grad_apply(x, g, grad_input, self._save_mean, self._save_invstd, sums,
                                    shard.total)
        elif x.shape[0] > 0:
            K.batch_norm_update_grad_input(x, g, grad_input, self._save_mean, self._save_invstd,
                                           self.training)
        return grad_input

    def __repr__(self):
        sync = ", sync=True" if self.sync else ""
        return f"BatchNormalization(alpha={self.alpha:g}{sync})"


class ChannelwiseScaling(Module):
    """``ChannelwiseScaling(n_out)``: output = input * gamma + beta per feature, gamma and
    beta uniform in +-1/sqrt(n_out). Computes in its parameters' dtype (float32 unless
    ``dtype=``)."""

    gamma = _Parameter()
    beta = _Parameter()
    gradGamma = _Parameter()
    gradBeta = _Parameter()

    _state_names = ("gamma", "beta")  # what nnjit.save writes
    _keeps_width = True

    def _widths(self):
        return self.n_out, self.n_out

    def __init__(self, n_out, dtype=np.float32):
        super().__init__()
        n_out = _checks.positive_int(n_out, "ChannelwiseScaling", "n_out")
        self.dtype = _checks.param_dtype(dtype, "ChannelwiseScaling")
        self._shapes = dict.fromkeys(("gamma", "beta", "gradGamma", "gradBeta"), (n_out,))
        stdv = 1.0 / np.sqrt(n_out)
        self.gamma = np.random.uniform(-stdv, stdv, size=n_out)
        self.beta = np.random.uniform(-stdv, stdv, size=n_out)
        self.gradGamma = np.zeros(n_out)
        self.gradBeta = np.zeros(n_out)

    @property
    def n_out(self):
        return self._shapes["gamma"][0]

    def _input(self, input):
        x = _checks.float_array(input, self._name, dtype=self.dtype)
        _checks.require_ndim(x, 2, self._name)
        if x.shape[1] != self.n_out:
            raise ValueError(f"{self._name}: input must have {self.n_out} features, got shape {x.shape}")
        return x

    def updateOutput(self, input):
        x = self._input(input)
        out = self._output_buffer(x.shape, self.dtype, x)
        K.channelwise_scaling_update_output(x, out, self.gamma, self.beta)
        return out

    def updateGradInput(self, input, gradOutput):
        x = self._input(input)
        g = _checks.grad_output_array(gradOutput, x.shape, self.dtype, self._name)
        grad_input = self._grad_input_buffer(x.shape, self.dtype, g)
        K.channelwise_scaling_update_grad_input(g, grad_input, self.gamma)
        return grad_input

    def accGradParameters(self, input, gradOutput):
        x = self._input(input)
        g = _checks.grad_output_array(gradOutput, x.shape, self.dtype, self._name)
        K.channelwise_scaling_acc_grad_parameters(x, g, self.gradGamma, self.gradBeta)

    def getParameters(self):
        return [self.gamma, self.beta]

    def getGradParameters(self):
        return [self.gradGamma, self.gradBeta]

    def __repr__(self):
        return f"ChannelwiseScaling({self.n_out})"
