"""Negative log-likelihood in its three forms, each with integer labels or dense targets.

- probability form (the seed's ClassNLLCriterion): input p from SoftMax, clipped to
  [eps, 1 - eps]; loss = -sum(target * log(p)) / n, gradient -target / clip(p) / n.
- log form (PyTorch's NLLLoss): input log p from LogSoftMax; loss = -sum(target * log p) / n,
  gradient -target / n.
- cross-entropy (Torch7's CrossEntropyCriterion): raw scores x, LogSoftMax fused in:
  loss = sum(target * (logsumexp(x) - x)) / n, gradient (sum(target) * softmax(x) - target) / n.

Forward kernels write one loss per row into ``row_loss`` [BUFFER] and return the mean: the rows
run in parallel and the sum is serial, so the loss is the same whatever the thread count.
Dense targets skip zero entries, so a -inf log-probability where the target is 0 costs nothing;
a NaN input entry makes its row's loss NaN wherever it is (the labels kernels of the log form
read only the labelled entry, as torch's nll_loss).
Labels kernels check each label against [0, c) as they read it (the module does not scan the
labels first: two reductions cost more than the whole op at small sizes): a row with a label
out of range reads and writes nothing, forward gives it a NaN loss and backward counts it in
what it returns; the module then finds the bad label and raises.
Dense kernels also write each target row's sum into ``target_mass`` [OUT] (n,), NaN for a row
with a negative entry, in the same pass: the module checks that the rows are distributions
without reading the targets again (see first_bad_distribution).
"""
import numpy as np
from numba import prange

from ._config import (GATHER_MIN_BYTES, PARALLEL_MIN_EXP, PARALLEL_MIN_GATHER,
                      PARALLEL_MIN_STREAMING)
from ._jit import Kernel, jit, kernel, n_row_chunks, row_chunk
from ._vmath import (SHORT_ROW_MASK, counted_exp_sum, counted_exp_sum_in_blocks, inlined,
                     is_normal, log_of_counted_total, nll_term, row_max, row_max_of, short_rows,
                     vexp_nonpositive, vlog, vlog_normal, wide_vectors)


def _mean(row_loss):
    return row_loss.sum() / row_loss.dtype.type(max(row_loss.shape[0], 1))


_mean_jit = jit(_mean)


@inlined
def _below_zero(x, zero, one):
    """one if x < 0 (NaN and -0.0 are not), else zero: the kernels count negative entries in
    the array's dtype, so the count takes float lanes of the array's width. Counted as int64
    (x < 0 summed), it took 64-bit lanes: the dense NLL forward at 256x1000 float32 ran 1.6x
    slower. A float count only ever needs to tell zero from more."""
    return one if x < zero else zero


@inlined
def _mass_term(t, zero, nan):
    """t's share of its row's target_mass: t, or NaN where t < 0 (or is NaN), so that one
    running sum both adds a target row up and flags a row with a negative entry. A count of
    negatives beside the sum, a running sum of its own, made the loops slower (with the NaN
    check folded into its select, the log form's dense forward at 8192x10 float32 went from
    54-56 to 40-41 us, module API)."""
    return t if t >= zero else nan


@inlined
def _below_zero_or_nan(x, zero, one):
    """one if x < 0 or x is NaN, else zero (see _below_zero): the probability form's forward
    flags such a row with a NaN loss, so a NaN probability is never skipped as the term of
    a zero target. Two compares, as written: `zero if x >= zero else one` ran 8-17% slower
    (serial, 256x1000, scratch)."""
    return one if (x < zero) | (x != x) else zero


@inlined
def _nonzero(x, zero, one):
    """one if x != 0 (NaN is), else zero; counted in the dtype, as _below_zero."""
    return one if x != zero else zero


# Entries per block of the probability form's scan for non-zero targets (nll_prob_update_output)
_TERM_BLOCK = 64


@inlined
def _log_term(t, p, eps, one, zero, eps_normal):
    """t * log(p clipped to [eps, 1 - eps]), or 0 where t is 0, whatever p is there.
    eps_normal: eps is a normal number (the criterion's 1e-15 is) and at most 1 - eps, so the
    clipped p is a normal number too, or NaN, and vlog_normal takes it, 30% faster than vlog
    (float32). The test is loop-invariant, and LLVM makes a loop for each side."""
    clipped = min(max(p, eps), one - eps)
    log = vlog_normal(clipped) if eps_normal else vlog(clipped)
    return t * log if t != zero else zero


@inlined
def _row_log_terms(target_row, input_row, eps, one, zero, eps_normal):
    """sum of _log_term over a row, with the choice of log taken once for the row: inside
    the loop, as _log_term takes it, LLVM does not split the loop in two here (the row took
    117 against 67 us at 256x1000 float32, scratch)."""
    total = zero
    if eps_normal:
        for j in range(target_row.shape[0]):
            total += _log_term(target_row[j], input_row[j], eps, one, zero, True)
    else:
        for j in range(target_row.shape[0]):
            total += _log_term(target_row[j], input_row[j], eps, one, zero, False)
    return total


@jit
def _first_bad_distribution(target_mass, tolerance):
    for i in range(target_mass.shape[0]):
        if not abs(target_mass[i] - 1) <= tolerance:
            return i
    return -1


first_bad_distribution = Kernel(  # O(n) and a loop that may stop early: serial only
    "first_bad_distribution", _first_bad_distribution,
    """target_mass (n,) from a dense kernel; tolerance scalar. Returns the first row whose
    target is not a class distribution (a negative entry, a sum off 1 by more than the
    tolerance, NaN), or -1.""")


@first_bad_distribution.numpy_twin
def first_bad_distribution_numpy(target_mass, tolerance):
    bad = ~(np.abs(target_mass - 1) <= tolerance)
    return int(np.argmax(bad)) if bad.any() else -1


@jit
def _label_in_range(label, classes):
    return 0 <= label < classes


def _safe_labels_numpy(labels, classes):
    """(labels with out-of-range ones replaced by 0, mask of those rows or None)."""
    bad = (labels < 0) | (labels >= classes)
    if not bad.any():
        return labels, None
    return np.where(bad, 0, labels), bad


def _labelled_cells_numpy(labels, classes):
    """(rows, columns, mask of bad rows or None): the (row, label) cells of the rows whose
    label is in range, for the twins' backward scatters."""
    safe, bad = _safe_labels_numpy(labels, classes)
    rows = np.arange(labels.shape[0]) if bad is None else np.flatnonzero(~bad)
    return rows, safe[rows], bad


def _mass_numpy(target, target_mass):
    """The NumPy twins' target_mass: row sums, NaN where a row has a negative entry."""
    target.sum(axis=1, out=target_mass)
    target_mass[(target < 0).any(axis=1)] = np.nan


# ---------------------------------------------------------------- probability form, labels
# The probability form refuses negative input (log-probabilities or raw scores passed by
# mistake). Its kernels check every input in the pass they make anyway: forward marks a row
# with a negative entry with a NaN loss, backward returns how many rows have one, and the
# module raises. A separate scan cost as much as the whole NumPy path. Forward marks a row
# with a NaN entry too, wherever it is, and the module returns that NaN loss: a NaN input
# never becomes a number.
@jit
def _count_negative_or_nan(x):
    """How many entries of the 1-D x are negative or NaN (-0.0 is not). A function of its
    own: written out in a parallel kernel's task, the loop ran 1.5-2.5x slower (scratch)."""
    zero, one = x.dtype.type(0), x.dtype.type(1)
    flagged = zero
    for k in range(x.shape[0]):
        flagged += _below_zero_or_nan(x[k], zero, one)
    return flagged


def _rows_with_negatives_numpy(x):
    return x.min(axis=1) < 0


def _rows_with_negatives_or_nan_numpy(x):
    return ~(x.min(axis=1) >= 0)  # the minimum of a row with a NaN is NaN


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_prob_labels_update_output(input, labels, row_loss, eps):
    """input (n, c) probabilities; labels (n,) int64; row_loss [BUFFER] (n,), NaN for a row
    with a negative input or a label out of [0, c); eps clip bound. Returns the mean loss."""
    n, c = input.shape
    zero, one = input.dtype.type(0), input.dtype.type(1)
    for chunk in prange(n_row_chunks(n)):
        start, stop = row_chunk(chunk, n)
        # Rows of a few columns took a loop each for the check, and a scalar log each: the
        # check runs over the task's rows as one flat array (rows are looked at one by one
        # only if it flags something), and the logs over the gathered entries in one loop
        # (ClassNLLCriterion forward, 4096x10 float32: 30 -> 13 us)
        rows = input[start:stop]
        flagged = _count_negative_or_nan(rows.reshape(rows.size))
        for i in range(start, stop):
            label = labels[i]
            if _label_in_range(label, c) and (flagged == zero or _count_negative_or_nan(input[i]) == 0):
                row_loss[i] = min(max(input[i, label], eps), one - eps)
            else:
                row_loss[i] = np.nan
        picked = row_loss[start:stop]
        for k in range(picked.shape[0]):
            picked[k] = -vlog(picked[k])
    return _mean_jit(row_loss)


@nll_prob_labels_update_output.numpy_twin
def nll_prob_labels_update_output_numpy(input, labels, row_loss, eps):
    safe, bad = _safe_labels_numpy(labels, input.shape[1])
    picked = input[np.arange(input.shape[0]), safe]
    np.negative(np.log(np.clip(picked, eps, 1 - eps)), out=row_loss)
    row_loss[_rows_with_negatives_or_nan_numpy(input)] = np.nan
    if bad is not None:
        row_loss[bad] = np.nan
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_prob_labels_update_grad_input(input, labels, grad_input, eps):
    """input (n, c) probabilities; labels (n,); grad_input [OUT] (n, c); eps clip bound.
    Returns how many rows have a negative input or a label out of range."""
    n, c = input.shape
    one = input.dtype.type(1)
    scale = -one / input.dtype.type(n)
    bad_rows = 0
    zero = input.dtype.type(0)
    for i in prange(n):
        negatives = zero
        for j in range(c):  # the check and the zeros in one pass (4096x1024 float32: 0.6x the time)
            negatives += _below_zero(input[i, j], zero, one)
            grad_input[i, j] = 0
        label = labels[i]
        if _label_in_range(label, c):
            grad_input[i, label] = scale / min(max(input[i, label], eps), one - eps)
            bad_rows += negatives > 0
        else:
            bad_rows += 1
    return bad_rows


@nll_prob_labels_update_grad_input.numpy_twin
def nll_prob_labels_update_grad_input_numpy(input, labels, grad_input, eps):
    n = input.shape[0]
    rows, columns, bad = _labelled_cells_numpy(labels, input.shape[1])
    grad_input.fill(0)
    grad_input[rows, columns] = -1 / np.clip(input[rows, columns], eps, 1 - eps) / n
    flagged = _rows_with_negatives_numpy(input)
    if bad is not None:
        flagged |= bad
    return int(np.count_nonzero(flagged))


# ---------------------------------------------------------------- probability form, dense
@kernel()
def nll_prob_update_output(input, target, row_loss, eps, target_mass):
    """input (n, c) probabilities; target (n, c); row_loss [BUFFER] (n,); eps clip bound;
    target_mass [OUT] (n,) (see above). Returns the mean loss."""
    n, c = input.shape
    one = input.dtype.type(1)
    zero, nan = input.dtype.type(0), input.dtype.type(np.nan)
    eps_normal = is_normal(eps) and eps <= one - eps  # every clipped p normal, or NaN
    for i in prange(n):
        wide_vectors()
        total, mass, flagged_inputs = zero, zero, zero
        nonzero, column_sum = zero, zero
        # Two copies of the checks' loop: only a row that is one block uses the non-zero count
        # and column sum (one loop taking a constant flag, inlined at two calls, took the
        # kernel at 64x10 float32 from 1.34 to 1.39 us, scratch)
        if c <= _TERM_BLOCK:
            for j in range(c):  # vectorized: the checks, and where the non-zero targets are
                t = target[i, j]
                mass += _mass_term(t, zero, nan)
                flagged_inputs += _below_zero_or_nan(input[i, j], zero, one)
                t_nonzero = _nonzero(t, zero, one)
                nonzero += t_nonzero
                column_sum += t_nonzero * input.dtype.type(j)  # a whole number: exact
            # A one-hot row takes its one log alone (64x10: 1.35 us the kernel, against 1.79
            # taking all ten)
            if nonzero == one:
                j = int(column_sum)
                total = _log_term(target[i, j], input[i, j], eps, one, zero, eps_normal)
            elif nonzero != zero:
                for j in range(c):
                    total += _log_term(target[i, j], input[i, j], eps, one, zero, eps_normal)
        else:
            for j in range(c):  # vectorized: the checks
                mass += _mass_term(target[i, j], zero, nan)
                flagged_inputs += _below_zero_or_nan(input[i, j], zero, one)
            # The terms, kept apart (in one loop LLVM took the log of every entry, 4x slower),
            # in blocks: a vectorized scan tells which hold a non-zero target, and only those
            # take the vectorized loop of logs. One-hot rows of 1000 take one block in 16 (the
            # logs cost 0.5 ns an entry, float32, the scan a tenth of that). A row whose first
            # block is all non-zero (soft labels) takes its logs in one loop over the row
            # instead: blocks cost it 35% more (the end of every block, a vector sum per block;
            # ClassNLLCriterion forward, soft targets, 256x1000 float32: 101-107 -> 86-89 us,
            # docs/performance.md).
            first_block = target[i, :_TERM_BLOCK]
            for j in range(_TERM_BLOCK):
                nonzero += _nonzero(first_block[j], zero, one)
            if nonzero == input.dtype.type(_TERM_BLOCK):
                total = _row_log_terms(target[i], input[i], eps, one, zero, eps_normal)
            else:
                for start in range(0, c, _TERM_BLOCK):
                    # views, so the loops index from 0: indexing the row at start + j, Numba's
                    # wrap-around of negative indices kept the logs' loop scalar (2.2x slower)
                    target_block = target[i, start:start + _TERM_BLOCK]
                    input_block = input[i, start:start + _TERM_BLOCK]
                    if start != 0:  # the first block's count is taken above
                        nonzero = zero
                        for j in range(target_block.shape[0]):
                            nonzero += _nonzero(target_block[j], zero, one)
                    if nonzero != zero:
                        for j in range(target_block.shape[0]):
                            total += _log_term(target_block[j], input_block[j], eps, one, zero,
                                               eps_normal)
        row_loss[i] = -total if flagged_inputs == 0 else np.nan
        target_mass[i] = mass
    return _mean_jit(row_loss)


@nll_prob_update_output.numpy_twin
def nll_prob_update_output_numpy(input, target, row_loss, eps, target_mass):
    terms = target * np.log(np.clip(input, eps, 1 - eps))
    np.negative(terms.sum(axis=1), out=row_loss)
    row_loss[_rows_with_negatives_or_nan_numpy(input)] = np.nan
    _mass_numpy(target, target_mass)
    return _mean(row_loss)


@kernel()
def nll_prob_update_grad_input(input, target, grad_input, eps, target_mass):
    """input (n, c) probabilities; target (n, c); grad_input [OUT] (n, c); eps clip bound;
    target_mass [OUT] (n,). Returns how many rows of input have a negative entry."""
    n, c = input.shape
    one = input.dtype.type(1)
    scale = -one / input.dtype.type(n)
    negative_rows = 0
    zero, nan = input.dtype.type(0), input.dtype.type(np.nan)
    for i in prange(n):
        mass, negative_inputs = zero, zero
        for j in range(c):
            t, p = target[i, j], input[i, j]
            mass += _mass_term(t, zero, nan)
            negative_inputs += _below_zero(p, zero, one)
            grad_input[i, j] = scale * t / min(max(p, eps), one - eps)
        target_mass[i] = mass
        negative_rows += negative_inputs > 0
    return negative_rows


@nll_prob_update_grad_input.numpy_twin
def nll_prob_update_grad_input_numpy(input, target, grad_input, eps, target_mass):
    np.divide(target, np.clip(input, eps, 1 - eps), out=grad_input)
    grad_input *= -1 / max(input.shape[0], 1)
    _mass_numpy(target, target_mass)
    return int(np.count_nonzero(_rows_with_negatives_numpy(input)))


# ---------------------------------------------------------------- log form, labels
def _gather_work(args):
    """The labels forward reads one element per row. In parallel it pays off only when the
    rows span more pages than a core's TLB maps (16 MB: 4096 pages of 4 KB, over Zen 4's
    3072 entries), so that the serial gather misses it on every row, and there are at least
    PARALLEL_MIN_GATHER labels. float64 (us, serial/parallel): 4096x1024 12.2/7.5, 8192x512
    27.8/16.2, 4096x768 10.3/7.4; 2048x1024 (16 MB, 2048 labels) 2.4/4.9, 8192x128 (8 MB)
    7.4/12.9. float32: 32768x128 43.8/22.5, 4096x768 (12 MB) 5.0/6.3."""
    input, labels = args[0], args[1]
    return labels.size if input.nbytes >= GATHER_MIN_BYTES else 0


@kernel(size_arg=_gather_work, parallel_min=PARALLEL_MIN_GATHER)
def nll_log_labels_update_output(input, labels, row_loss):
    """input (n, c) log-probabilities; labels (n,) int64; row_loss [BUFFER] (n,), NaN for a
    label out of [0, c). Returns the mean loss."""
    n, c = input.shape
    for i in prange(n):
        label = labels[i]
        row_loss[i] = -input[i, label] if _label_in_range(label, c) else np.nan
    return _mean_jit(row_loss)


@nll_log_labels_update_output.numpy_twin
def nll_log_labels_update_output_numpy(input, labels, row_loss):
    safe, bad = _safe_labels_numpy(labels, input.shape[1])
    np.negative(input[np.arange(input.shape[0]), safe], out=row_loss)
    if bad is not None:
        row_loss[bad] = np.nan
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_log_labels_update_grad_input(input, labels, grad_input):
    """input (n, c); labels (n,); grad_input [OUT] (n, c) = -onehot(labels) / n. Returns
    how many labels are out of range (their rows left zero)."""
    n, c = input.shape
    scale = -input.dtype.type(1) / input.dtype.type(n)
    bad_rows = 0
    for chunk in prange(n_row_chunks(n)):
        start, stop = row_chunk(chunk, n)
        grad_input[start:stop] = 0  # one memset per task: 15% faster than one per row
        for i in range(start, stop):
            label = labels[i]
            if _label_in_range(label, c):
                grad_input[i, label] = scale
            else:
                bad_rows += 1
    return bad_rows


@nll_log_labels_update_grad_input.numpy_twin
def nll_log_labels_update_grad_input_numpy(input, labels, grad_input):
    rows, columns, bad = _labelled_cells_numpy(labels, input.shape[1])
    grad_input.fill(0)
    grad_input[rows, columns] = -1 / max(input.shape[0], 1)
    return 0 if bad is None else int(np.count_nonzero(bad))


# ---------------------------------------------------------------- log form, dense
@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_log_update_output(input, target, row_loss, target_mass):
    """input (n, c) log-probabilities; target (n, c); row_loss [BUFFER] (n,);
    target_mass [OUT] (n,). Returns the mean loss."""
    n, c = input.shape
    zero, nan = input.dtype.type(0), input.dtype.type(np.nan)
    for i in prange(n):
        total, mass = zero, zero
        for j in range(c):
            t, x = target[i, j], input[i, j]
            mass += _mass_term(t, zero, nan)
            # A zero target skips its term (log p = -inf there costs nothing) unless x is NaN:
            # then 0 * NaN makes the row's loss NaN. A select: with x loaded above, an if
            # around the sum left the loop scalar (7x); a NaN count beside it, a running sum
            # of its own, cost 1.5-2x at 10-100 columns (scratch).
            total += t * x if (t != zero) | (x != x) else zero
        row_loss[i] = -total
        target_mass[i] = mass
    return _mean_jit(row_loss)


@nll_log_update_output.numpy_twin
@np.errstate(invalid="ignore")
def nll_log_update_output_numpy(input, target, row_loss, target_mass):
    terms = np.where(target != 0, target * input, 0)
    np.negative(terms.sum(axis=1), out=row_loss)
    row_loss[np.isnan(input).any(axis=1)] = np.nan
    _mass_numpy(target, target_mass)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_log_update_grad_input(input, target, grad_input, target_mass):
    """input (n, c); target (n, c); grad_input [OUT] (n, c) = -target / n;
    target_mass [OUT] (n,)."""
    n, c = input.shape
    scale = -input.dtype.type(1) / input.dtype.type(n)
    zero, nan = input.dtype.type(0), input.dtype.type(np.nan)
    for i in prange(n):
        mass = zero
        for j in range(c):
            t = target[i, j]
            mass += _mass_term(t, zero, nan)
            grad_input[i, j] = scale * t
        target_mass[i] = mass


@nll_log_update_grad_input.numpy_twin
def nll_log_update_grad_input_numpy(input, target, grad_input, target_mass):
    np.multiply(target, -1 / max(input.shape[0], 1), out=grad_input)
    _mass_numpy(target, target_mass)


# ---------------------------------------------------------------- cross-entropy
# Forward keeps each row's maximum and sum(exp(x - max)) ([BUFFER]s row_top (n,) of the
# input's dtype, row_total (n,) float64); backward takes them, so the gradient costs one pass
# over the row (exp, scale, write) instead of three (maximum, exp and sum, rescale), as
# Torch7's CrossEntropyCriterion reuses its LogSoftMax output.
# logsumexp(x) = top + log(total), kept as two numbers: a loss term is taken as
# (top - x) + log(total), see nll_term.
@inlined
def _row_top_total(row, m):
    """(max of row[:m], sum(exp(row[:m] - max)), log of that sum), the sum in float64, so a
    float32 loss is rounded once, at the end. Inlined into the kernels, which call it with
    m = c, and with m = c & SHORT_ROW_MASK for short float32 rows (see _vmath.py)."""
    top = row_max_of(row, m)
    total = 0.0
    for j in range(m):
        total += np.float64(vexp_nonpositive(row[j] - top))
    return top, total, np.log(total)


@jit
def _row_top_total_counted(x, i):
    """_row_top_total for the rows _counts_ties picks. A confident row's loss is log(total),
    total = 1 + rest with rest small; summed with the maximum's 1 in it, rest keeps only its
    bits above 1's ulp (float32, torch: up to 7e-4 relative error; float64: up to 8.6x torch's
    at 10 columns). So the entries equal to the maximum are counted apart from the sum of the
    other exps (_vmath.counted_exp_sum), and the log taken as log1p((count - 1) + rest)."""
    top = row_max(x, i)
    ties, rest = counted_exp_sum(x[i], top, x.shape[1])
    return top, np.float64(ties) + np.float64(rest), log_of_counted_total(ties, rest)


@jit
def _counts_ties(x):
    """Whether the kernels take _row_top_total_counted: float64 rows, and float32 rows of 128
    columns or more. Shorter float32 rows are mostly LLVM's scalar remainder, where counting
    cost more than a float64 sum, accurate enough for a float32 loss (a row of 10: 1.35
    against 1.13 us per 64 rows; of 100: 5.39 against 4.99)."""
    return x.itemsize == 8 or x.shape[1] >= 128


def _top_total_numpy(x, row_top, row_total):
    """Fills row_top and row_total; returns top (n, 1) and log_total (n, 1)."""
    x.max(axis=1, out=row_top)
    top = row_top[:, None]
    np.sum(np.exp(x - top), axis=1, out=row_total)
    return top, np.log(row_total)[:, None]


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_labels_long_rows_update_output(input, labels, row_loss, row_top, row_total):
    """cross_entropy_labels_update_output, run in place of its parallel variant for rows of
    LONG_ROW or more columns: 512-bit vectors, and the exps' loop in whole blocks of 64 (see
    softmax.log_softmax_long_rows_update_output); the counted sum at every width."""
    n, c = input.shape
    for i in prange(n):
        wide_vectors()
        row = input[i]
        top = row_max_of(row, c)
        ties, rest = counted_exp_sum_in_blocks(row, top, c)
        row_top[i], row_total[i] = top, np.float64(ties) + np.float64(rest)
        label = labels[i]
        if _label_in_range(label, c):
            row_loss[i] = nll_term(np.float64(row[label]), np.float64(top),
                                   log_of_counted_total(ties, rest))
        else:
            row_loss[i] = np.nan
    return _mean_jit(row_loss)


@kernel(parallel_min=PARALLEL_MIN_EXP, long_rows=cross_entropy_labels_long_rows_update_output)
def cross_entropy_labels_update_output(input, labels, row_loss, row_top, row_total):
    """input (n, c) raw scores; labels (n,) int64; row_loss, row_top, row_total [BUFFER] (n,)
    (see above), row_loss NaN for a label out of [0, c). Returns the mean of
    logsumexp(x) - x[label]."""
    n, c = input.shape
    counted, short = _counts_ties(input), short_rows(input)
    for i in prange(n):
        if counted:
            top, total, log_total = _row_top_total_counted(input, i)
        elif short:
            top, total, log_total = _row_top_total(input[i], c & SHORT_ROW_MASK)
        else:
            top, total, log_total = _row_top_total(input[i], c)
        row_top[i], row_total[i] = top, total
        label = labels[i]
        if _label_in_range(label, c):
            row_loss[i] = nll_term(np.float64(input[i, label]), np.float64(top), log_total)
        else:
            row_loss[i] = np.nan
    return _mean_jit(row_loss)


@cross_entropy_labels_update_output.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_labels_update_output_numpy(input, labels, row_loss, row_top, row_total):
    top, log_total = _top_total_numpy(input, row_top, row_total)
    safe, bad = _safe_labels_numpy(labels, input.shape[1])
    picked = input[np.arange(input.shape[0]), safe]
    np.add(top[:, 0] - picked, log_total[:, 0], out=row_loss)
    if bad is not None:
        row_loss[bad] = np.nan
    return _mean(row_loss)


cross_entropy_labels_long_rows_update_output.numpy_twin(cross_entropy_labels_update_output.numpy)


def _stale_tolerance(c, dtype_eps):
    """Relative tolerance between row_total and a sum of c exps taken again in the input's
    dtype: twice the rounding bound of a sum split over LLVM's 64 running partial sums
    (float32, c = 1000: 5.6e-6). A kept total off by less than this scales the gradient row
    by less than this."""
    return (c / 32 + 16) * dtype_eps


_stale_tolerance_jit = jit(_stale_tolerance)


@jit
def _statistics_stale(check, total, tolerance):
    """True when check, this input's sum of exp(x - top), is not row_total to within the
    tolerance, or either is NaN: the row statistics came from other values (the input was
    changed in place since its forward)."""
    return not (abs(np.float64(check) - total) <= tolerance * total)


@np.errstate(invalid="ignore", over="ignore")
def _scaled_softmax_numpy(x, row_top, row_total, scale, out):
    """out = scale * softmax(x) from the kept statistics, scale (n, 1) or a number. Returns how
    many rows' statistics do not match x, checked on the exps computed for out (see
    _statistics_stale)."""
    np.subtract(x, row_top[:, None], out=out)
    np.exp(out, out=out)
    check = out.sum(axis=1, dtype=np.float64)
    tolerance = _stale_tolerance(x.shape[1], np.finfo(x.dtype).eps)
    out *= (scale / row_total[:, None]).astype(x.dtype)
    return ~(np.abs(check - row_total) <= tolerance * row_total)


@jit
def _labelled_gradient(x, top, total, inv_n):
    """(p - 1) / n at a row's label, p = exp(x - top) / total, in float64: the caller rounds
    it once, as it stores it. Where the row is confident, p - 1 cancels; taken as p / n - 1 / n
    in x's dtype, p's two extra roundings (the factor, the product) left up to 1.1e-4 relative
    error on confident float32 rows, against 2.8e-7 this way (docs/accuracy.md)."""
    p = np.float64(vexp_nonpositive(x - top)) / total
    return (p - 1.0) * np.float64(inv_n)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_labels_update_grad_input(input, labels, row_top, row_total, grad_input):
    """input (n, c) raw scores; labels (n,); row_top, row_total (n,) from the forward of this
    input; grad_input [OUT] (n, c) = (softmax(input) - onehot(labels)) / n. Returns how many
    rows' statistics do not match input (see _statistics_stale) or have a label out of range
    (left unlabelled): 0, or run forward again, which flags the label."""
    n, c = input.shape
    inv_n = input.dtype.type(1) / input.dtype.type(n)
    tolerance = _stale_tolerance_jit(c, np.finfo(input.dtype).eps)
    stale = 0
    for i in prange(n):
        top, total = row_top[i], row_total[i]
        factor = input.dtype.type(np.float64(inv_n) / total)
        check = input.dtype.type(0)  # in the input's dtype: a float64 sum cost 25% more time
        for j in range(c):
            e = vexp_nonpositive(input[i, j] - top)
            check += e
            grad_input[i, j] = e * factor
        label = labels[i]
        in_range = _label_in_range(label, c)
        if in_range:
            grad_input[i, label] = _labelled_gradient(input[i, label], top, total, inv_n)
        if not in_range or _statistics_stale(check, total, tolerance):
            stale += 1
    return stale


@cross_entropy_labels_update_grad_input.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_labels_update_grad_input_numpy(input, labels, row_top, row_total, grad_input):
    n = input.shape[0]
    inv_n = input.dtype.type(1) / input.dtype.type(max(n, 1))
    stale = _scaled_softmax_numpy(input, row_top, row_total, np.float64(inv_n), grad_input)
    rows, columns, bad = _labelled_cells_numpy(labels, input.shape[1])
    labelled = np.exp(input[rows, columns] - row_top[rows]).astype(np.float64) / row_total[rows]
    grad_input[rows, columns] = (labelled - 1.0) * np.float64(inv_n)
    if bad is not None:
        stale |= bad
    return int(np.count_nonzero(stale))


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_update_output(input, target, row_loss, row_top, row_total, target_mass):
    """input (n, c) raw scores; target (n, c); row_loss, row_top, row_total [BUFFER] (n,);
    target_mass [OUT] (n,). Returns the mean of sum(target * (logsumexp(x) - x))."""
    n, c = input.shape
    counted, short = _counts_ties(input), short_rows(input)
    zero = input.dtype.type(0)
    for i in prange(n):
        if counted:
            top, total, log_total = _row_top_total_counted(input, i)
        elif short:
            top, total, log_total = _row_top_total(input[i], c & SHORT_ROW_MASK)
        else:
            top, total, log_total = _row_top_total(input[i], c)
        row_top[i], row_total[i] = top, total
        # loss = sum(t * (top - x)) + mass * log_total: every term is >= 0, so taking
        # log_total out of the sum costs no accuracy, and the loop over the row, a select in
        # float64 throughout (the mass too: a float32 sum beside it kept the loop slow), runs
        # vectorized (256x1000 float32, module API: 96-98 -> 91-92 us)
        top64, shifted, mass = np.float64(top), 0.0, 0.0
        for j in range(c):
            t = target[i, j]
            t64 = np.float64(t)
            mass += _mass_term(t64, 0.0, np.nan)
            shifted += t64 * (top64 - np.float64(input[i, j])) if t != zero else 0.0
        row_loss[i] = shifted + mass * log_total
        target_mass[i] = mass
    return _mean_jit(row_loss)


@cross_entropy_update_output.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_update_output_numpy(input, target, row_loss, row_top, row_total, target_mass):
    top, log_total = _top_total_numpy(input, row_top, row_total)
    terms = np.where(target != 0, -target * ((input - top) - log_total), 0)
    np.sum(terms, axis=1, out=row_loss)
    _mass_numpy(target, target_mass)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_update_grad_input(input, target, row_top, row_total, grad_input, target_mass):
    """input (n, c) raw scores; target (n, c); row_top, row_total (n,) from the forward of
    this input; grad_input [OUT] (n, c) = (sum(target) * softmax(input) - target) / n per row;
    target_mass [OUT] (n,). Returns how many rows' statistics do not match input, as the
    labels form."""
    n, c = input.shape
    inv_n = input.dtype.type(1) / input.dtype.type(n)
    tolerance = _stale_tolerance_jit(c, np.finfo(input.dtype).eps)
    stale = 0
    zero, nan = input.dtype.type(0), input.dtype.type(np.nan)
    for i in prange(n):
        mass = zero
        for j in range(c):
            mass += _mass_term(target[i, j], zero, nan)
        target_mass[i] = mass
        top, total = row_top[i], row_total[i]
        factor = input.dtype.type(np.float64(mass * inv_n) / total)
        check = input.dtype.type(0)
        for j in range(c):
            e = vexp_nonpositive(input[i, j] - top)
            check += e
            grad_input[i, j] = e * factor - target[i, j] * inv_n
        if _statistics_stale(check, total, tolerance):
            stale += 1
    return stale


@cross_entropy_update_grad_input.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_update_grad_input_numpy(input, target, row_top, row_total, grad_input,
                                          target_mass):
    inv_n = input.dtype.type(1) / input.dtype.type(max(input.shape[0], 1))
    mass = target.sum(axis=1, keepdims=True)
    stale = _scaled_softmax_numpy(input, row_top, row_total, mass * np.float64(inv_n), grad_input)
    grad_input -= target * inv_n
    _mass_numpy(target, target_mass)
    return int(np.count_nonzero(stale))
