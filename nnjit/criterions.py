"""Criterions: MSECriterion, ClassNLLCriterion (probability or log-probability input),
ClassNLLCriterionUnstable, CrossEntropyCriterion. Losses are averaged over the batch."""
import numpy as np

from . import _checks
from . import kernels as K
from .module import Criterion, _calls

_INT64 = np.dtype(np.int64)
_FLOAT32, _FLOAT64 = _checks.FLOAT_DTYPES


class MSECriterion(Criterion):
    """sum((input - target)**2) / batch; input and target of the same shape (batch, ...)."""

    def _pair(self, input, target):
        x = _checks.float_array(input, self._name)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"{self._name}: input must be a non-empty batch, got shape {x.shape}")
        t = _checks.float_array(target, self._name, "target", dtype=x.dtype)
        _checks.require_shape(t, x.shape, self._name, "target (the shape of the input)")
        n = x.shape[0]
        return x.reshape(n, -1), t.reshape(n, -1)

    def updateOutput(self, input, target):
        x, t = self._pair(input, target)
        rows = self._row_loss_buffer(x.shape[0], x.dtype)
        return self._store_loss(K.mse_update_output(x, t, rows), rows)

    def updateGradInput(self, input, target):
        x, t = self._pair(input, target)
        grad_input = self._grad_input_buffer(np.shape(input), x.dtype)
        K.mse_update_grad_input(x, t, grad_input.reshape(x.shape))
        return grad_input


class _ClassCriterion(Criterion):
    """Targets as integer labels (batch,) in [0, classes) or dense (batch, classes) rows, each
    a class distribution: non-negative entries summing to 1 (one-hot, or soft labels), to
    within sqrt(eps) of the coarser of the target's and the input's dtypes (float32: 3.5e-4,
    float64: 1.5e-8). Anything else (multi-hot, rows summing to 0.8, negative entries) is a
    ValueError naming the first bad row: it is almost always a labelling bug."""

    labels_kernels = None  # (forward, backward) for labels
    dense_kernels = None  # (forward, backward) for dense targets

    def _extra(self, dtype):
        return ()

    def _target(self, target, x):
        """(labels (n,) int64, None) or (dense target (n, c) of x's dtype, its tolerance).
        Labels are range-checked by the kernels as they read them (see _check_labels)."""
        t = target if type(target) is np.ndarray else np.asarray(target)
        if t.ndim == 1:
            if t.dtype.kind not in "iu":
                raise TypeError(f"{self._name}: labels must be integers, got dtype {t.dtype}")
            if t.shape[0] != x.shape[0]:
                _checks.require_shape(t, (x.shape[0],), self._name, "labels (one per sample)")
            if t.dtype is _INT64 and t.flags.c_contiguous:
                return t, None  # without a call into NumPy: 0.2 us of a 3 us criterion call
            if t.dtype == np.uint64:  # as int64, 2**63 and up would wrap: check first
                self._check_labels(t, x.shape[1])
            return np.ascontiguousarray(t, dtype=np.int64), None
        if t.ndim == 2:
            if t.dtype.kind not in "biuf":
                raise TypeError(f"{self._name}: target must be numeric, got dtype {t.dtype}")
            _checks.require_shape(t, x.shape, self._name, "target (one row per sample)")
            precision = max(np.finfo(x.dtype).eps,
                            np.finfo(t.dtype).eps if t.dtype.kind == "f" else 0.0)
            return np.ascontiguousarray(t, dtype=x.dtype), float(np.sqrt(precision))
        raise ValueError(f"{self._name}: target must be labels (batch,) or a (batch, classes) "
                         f"array, got shape {t.shape}")

    def _check_labels(self, labels, classes):
        """Raises for a label out of [0, classes): called when a kernel flagged a row."""
        low, high = labels.min(), labels.max()
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise ValueError(f"{self._name}: labels must be in [0, {classes}), got {bad}")

    def _check_distributions(self, target_mass, target, tolerance):
        """Raises if a dense target row is not a class distribution (target_mass from the
        kernel's pass; the message is worked out from the bad row alone)."""
        row = K.first_bad_distribution(target_mass, tolerance)
        if row < 0:
            return
        values = target[row]
        if np.isnan(values).any():
            what = f"has NaN at column {int(np.argmax(np.isnan(values)))}"
        elif (values < 0).any():
            column = int(np.argmax(values < 0))
            what = f"has a negative entry {values[column]:g} at column {column}"
        else:
            what = f"sums to {values.sum(dtype=np.float64):.7g}, not 1 (tolerance {tolerance:.1e})"
        raise ValueError(f"{self._name}: dense target rows must be class distributions "
                         f"(non-negative, summing to 1), but row {row} {what}; for several "
                         "classes at once (multi-label), a per-class loss is what you want")

    def _prepare(self, input, target):
        if type(input) is np.ndarray and type(target) is np.ndarray and target.dtype is _INT64 \
                and input.ndim == 2 and target.ndim == 1 and 0 < input.shape[0] == target.shape[0] \
                and (input.dtype is _FLOAT32 or input.dtype is _FLOAT64) \
                and input.flags.c_contiguous and target.flags.c_contiguous:
            # the usual call, float rows and int64 labels as the kernels take them, checked
            # inline: the general path's calls were a quarter of a 64x10 forward (0.8 of 3.2 us)
            return input, target, None
        x = self._batch_input(input)
        t, tolerance = self._target(target, x)
        return x, t, tolerance

    def _run(self, which, x, t, tolerance, *args):
        """The forward (which=0) or backward (1) kernel of this target's form on (x, t, *args);
        a dense target is checked on the row sums the kernel's own pass wrote."""
        if tolerance is None:
            return self.labels_kernels[which](x, t, *args)
        target_mass = np.empty(x.shape[0], x.dtype)
        result = self.dense_kernels[which](x, t, *args, target_mass)
        self._check_distributions(target_mass, t, tolerance)
        return result

    def updateOutput(self, input, target):
        if type(input) is np.ndarray and type(target) is np.ndarray and target.dtype is _INT64 \
                and input.ndim == 2 and target.ndim == 1 and 0 < input.shape[0] == target.shape[0] \
                and (input.dtype is _FLOAT32 or input.dtype is _FLOAT64) \
                and input.flags.c_contiguous and target.flags.c_contiguous:
            x, t, tolerance = input, target, None  # _prepare's usual call, inline
        else:
            x, t, tolerance = self._prepare(input, target)
        # Criterion's _row_loss_buffer and _store_loss inline: with _prepare's call, a tenth of
        # a 64x10 forward (asv's call: 1.59 -> 1.46 us, docs/performance.md)
        calls = self.__dict__.get("_call_state") or _calls(self)
        n, dtype = x.shape[0], x.dtype
        rows = calls._row_loss
        if rows is None or rows.shape[0] != n or rows.dtype != dtype:
            calls._row_loss = rows = np.empty(n, dtype)
        if tolerance is None:  # labels (_run's first case, without its call: 64x10 is 2.5 us)
            loss = self.labels_kernels[0](x, t, rows, *self._extra(dtype))
        else:
            loss = self._run(0, x, t, tolerance, rows, *self._extra(dtype))
        if loss != loss:
            self._refuse_flagged(x, t, tolerance)
        rows[0] = loss  # the loss as a NumPy scalar of the dtype: see Criterion._store_loss
        calls.output = value = rows[0]
        return value

    def updateGradInput(self, input, target):
        x, t, tolerance = self._prepare(input, target)
        grad_input = self._grad_input_buffer(x.shape, x.dtype)
        if self._run(1, x, t, tolerance, grad_input, *self._extra(x.dtype)):
            self._refuse_flagged(x, t, tolerance)
        return grad_input

    def _refuse_flagged(self, x, t, tolerance):
        """Raises for the rows a kernel flagged: labels out of range, then input the form
        refuses (see ClassNLLCriterion). Forward flags with a NaN loss; a NaN loss with nothing
        flagged is the loss of NaN or infinite input, and is returned."""
        if tolerance is None:
            self._check_labels(t, x.shape[1])
        self._refuse_input(x)

    def _refuse_input(self, x):
        """Raises for input this form refuses (see ClassNLLCriterion)."""


class ClassNLLCriterion(_ClassCriterion):
    """Negative log-likelihood, -sum(target * log p) / batch.

    ``ClassNLLCriterion()`` (the seed's form) takes probabilities p (SoftMax output), clipped
    to [EPS, 1 - EPS]. ``ClassNLLCriterion(log_input=True)`` takes log-probabilities (LogSoftMax
    output), as PyTorch's NLLLoss."""

    EPS = 1e-15

    def __init__(self, log_input=False):
        super().__init__()
        self.log_input = bool(log_input)
        if self.log_input:
            self.labels_kernels = (K.nll_log_labels_update_output, K.nll_log_labels_update_grad_input)
            self.dense_kernels = (K.nll_log_update_output, K.nll_log_update_grad_input)
        else:
            self.labels_kernels = (K.nll_prob_labels_update_output, K.nll_prob_labels_update_grad_input)
            self.dense_kernels = (K.nll_prob_update_output, K.nll_prob_update_grad_input)

    # The probability form refuses negative input. Its kernels check every input in their own
    # pass (forward: a NaN loss for such a row; backward: a count), so the check costs no
    # separate scan; this raises on what they flagged.
    def _refuse_input(self, x):
        if not self.log_input and (x < 0).any():
            raise ValueError(
                f"{self._name}: input has negative values, but this form takes probabilities "
                "(SoftMax output). For log-probabilities (LogSoftMax output) use "
                "ClassNLLCriterion(log_input=True); for raw scores use CrossEntropyCriterion.")

    def _extra(self, dtype):
        return () if self.log_input else (dtype.type(self.EPS),)

    def __repr__(self):
        return f"{self._name}(log_input=True)" if self.log_input else self._name


class ClassNLLCriterionUnstable(ClassNLLCriterion):
    """The probability form of ClassNLLCriterion, under the name later versions of the
    assignment use."""

    def __init__(self):
        super().__init__(log_input=False)


class CrossEntropyCriterion(_ClassCriterion):
    """LogSoftMax and ClassNLLCriterion(log_input=True) fused: takes raw scores.

    Forward keeps each row's maximum and sum of exponentials, and backward of the same input
    reuses them (one pass over the scores instead of three); backward of another input runs
    forward first, and so does backward of an input changed in place since its forward (the
    backward pass checks each row's sum of exponentials against the kept one)."""

    _per_call = ("_row_top", "_row_total", "_forward_input")  # what backward reuses

    labels_kernels = (K.cross_entropy_labels_update_output, K.cross_entropy_labels_update_grad_input)
    dense_kernels = (K.cross_entropy_update_output, K.cross_entropy_update_grad_input)

    def updateOutput(self, input, target):
        x, t, tolerance = self._prepare(input, target)
        calls = _calls(self)
        n = x.shape[0]
        calls._row_top = row_top = _checks.buffer(calls._row_top, (n,), x.dtype)
        calls._row_total = row_total = _checks.buffer(calls._row_total, (n,), np.dtype(np.float64))
        rows = self._row_loss_buffer(n, x.dtype)
        loss = self._run(0, x, t, tolerance, rows, row_top, row_total)
        calls._forward_input = input
        if loss != loss:
            self._refuse_flagged(x, t, tolerance)
        return self._store_loss(loss, rows)

    def updateGradInput(self, input, target):
        x, t, tolerance = self._prepare(input, target)
        calls = _calls(self)
        row_top = calls._row_top
        if input is not calls._forward_input or row_top is None or row_top.dtype != x.dtype \
                or row_top.shape[0] != x.shape[0]:
            self.updateOutput(input, target)
        grad_input = self._grad_input_buffer(x.shape, x.dtype)
        if self._run(1, x, t, tolerance, calls._row_top, calls._row_total, grad_input):
            # the input was changed in place since its forward: take its statistics again
            self.updateOutput(input, target)
            self._run(1, x, t, tolerance, calls._row_top, calls._row_total, grad_input)
        return grad_input
