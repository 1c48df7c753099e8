"""Batch normalization over axis 0 of a (batch, features) array, and channel-wise scaling.

Statistics are per feature column: tasks of ROW_CHUNK whole rows write partial column sums,
added in a fixed order (see row_chunk). Forward: each task finds its rows' mean and sum of
squared deviations in float64 (see _chunk_mean_m2), combined by Chan et al.'s pairwise formula. The
saved mean and inverse std are float64 whatever the input's dtype: x - mean then loses nothing
to the mean's rounding (a float32 mean is off by up to half an ulp of the column's offset).
"""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_REDUCTION, PARALLEL_MIN_STREAMING
from ._jit import (add_partials, float64_column_sums, jit, kernel, n_row_chunks, ordered_jit,
                   row_chunk, zeroed, zeroed3)


@ordered_jit
def _two_sum(a, b):
    """(a + b rounded, its rounding error), exactly (Knuth)."""
    total = a + b
    part = total - a
    return total, (a - (total - part)) + (b - part)


@ordered_jit
def _chunk_mean_m2(x, start, stop, mean, m2, scratch):
    """mean (c,) and m2 (c,) [OUT], float64: the column means of rows start..stop of x and
    their sums of squared deviations; scratch (c,) float64. In float64, as numpy's path (a
    float32 sum of a 32-row batch was off by 1e-6, ten times numpy's mean), and in the order
    written (ordered_jit: reassociation would undo the compensation below).
    One pass over d = x - shift keeps sum(d) and sum(d**2); m2 = sum(d**2) - sum(d)**2 / count.
    float32 input: shift = the chunk's first row, so d is exact in float64, and the
    cancellation in m2 costs log10(1 + (mean - first)**2 / variance) of float64's 16 digits,
    where float32 needs 8; mean = shift + sum(d) / count.
    float64 input: shift = the mean, summed first with Knuth's two-sum compensation, so it
    is the correctly rounded mean of the rows (as accurate as numpy's or more)."""
    c = x.shape[1]
    count = stop - start
    shift = mean
    if x.itemsize == 4:
        for j in range(c):
            shift[j] = x[start, j]
    else:
        compensation = scratch
        shift[:] = 0
        compensation[:] = 0
        for i in range(start, stop):
            for j in range(c):
                shift[j], error = _two_sum(shift[j], x[i, j])
                compensation[j] += error
        for j in range(c):
            shift[j] = (shift[j] + compensation[j]) / count
    deviation_sum = scratch
    deviation_sum[:] = 0
    m2[:] = 0
    # four rows at a time: the accumulators' loads and stores, not the arithmetic, bound this
    # loop (measured 1.6 -> 0.8 ms serial for 4096x1024 float32)
    i = start
    while i + 4 <= stop:
        for j in range(c):
            d0 = np.float64(x[i, j]) - shift[j]
            d1 = np.float64(x[i + 1, j]) - shift[j]
            d2 = np.float64(x[i + 2, j]) - shift[j]
            d3 = np.float64(x[i + 3, j]) - shift[j]
            deviation_sum[j] += (d0 + d1) + (d2 + d3)
            m2[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        i += 4
    for i in range(i, stop):
        for j in range(c):
            d = np.float64(x[i, j]) - shift[j]
            deviation_sum[j] += d
            m2[j] += d * d
    for j in range(c):
        m2[j] = max(m2[j] - deviation_sum[j] * deviation_sum[j] / count, 0.0)
        if x.itemsize == 4:
            mean[j] = shift[j] + deviation_sum[j] / count


@ordered_jit
def _combine_chunks(chunk_mean, chunk_m2, n):
    """(mean, biased variance) float64 (c,) of all rows from the tasks' (mean, M2): Chan et
    al.'s update, chunk after chunk in a fixed order. A batch of one chunk keeps that chunk's
    statistics exactly (the weight n_b / total is then 1)."""
    chunks, c = chunk_mean.shape
    statistics = np.zeros((2, c))
    mean, m2 = statistics[0], statistics[1]
    for chunk in range(chunks):
        start, stop = row_chunk(chunk, n)
        n_a, n_b = start, stop - start
        weight, cross = n_b / stop, n_a * (n_b / stop)
        for j in range(c):
            delta = chunk_mean[chunk, j] - mean[j]
            mean[j] += delta * weight
            m2[j] += chunk_m2[chunk, j] + delta * delta * cross
    for j in range(c):
        m2[j] /= n
    return mean, m2


@jit
def _split_mean(save_mean, save_invstd, like):
    """(terms, low): terms (3, c) in like's dtype holds high, the mean rounded to that dtype,
    invstd, and offset = -low * invstd; low (c,) float64 is the mean's rest. x - high is
    exact when x is near the mean (Sterbenz), so the elementwise passes run at the dtype's
    full SIMD width and still take x - mean to float64's accuracy (a float32 mean at an
    offset of 1e4 is off by up to 5e-4). One allocation each: they cost at 64x10."""
    c = save_mean.shape[0]
    terms, low = np.empty((3, c), like.dtype), np.empty(c)
    for j in range(c):
        terms[0, j] = save_mean[j]
        low[j] = save_mean[j] - np.float64(terms[0, j])
        terms[1, j] = save_invstd[j]
        terms[2, j] = -low[j] * save_invstd[j]
    return terms, low


@jit
def _grad_terms(sum_g, sum_g_centered, low, save_invstd, n, like):
    """(slope, bias) (c,) in like's dtype from the column sums of g and g * (x - high) (see
    batch_norm_update_grad_input), computed in float64."""
    c = low.shape[0]
    slope, bias = np.empty(c, like.dtype), np.empty(c, like.dtype)
    for j in range(c):
        invstd = save_invstd[j]
        mean_g = sum_g[j] / n
        mean_g_xhat = invstd * (sum_g_centered[j] / n - low[j] * mean_g)
        slope64 = invstd * invstd * mean_g_xhat
        slope[j] = slope64
        bias[j] = slope64 * low[j] - invstd * mean_g
    return slope, bias


# The elementwise passes below take whole arrays and a range of rows: a call per row, on row
# views, cost 1.5 us more at 64x10 (reference counting of the views).
@ordered_jit
def _normalize_rows(x, out, start, stop, high, invstd, offset):
    """out = (x - mean) * invstd as (x - high) * invstd + offset, offset = -low * invstd, rows
    start..stop. Ordered: reassociation could make it x * invstd - high * invstd, which cancels."""
    if x.itemsize == 8:  # low is 0: no offset
        for i in range(start, stop):
            for j in range(x.shape[1]):
                out[i, j] = (x[i, j] - high[j]) * invstd[j]
        return
    for i in range(start, stop):
        for j in range(x.shape[1]):
            out[i, j] = (x[i, j] - high[j]) * invstd[j] + offset[j]


@kernel(parallel_min=PARALLEL_MIN_STREAMING)  # measured: pays off from ~130k-180k elements
def batch_norm_update_output(input, output, moving_mean, moving_variance, save_mean,
                             save_invstd, alpha, eps, training):
    """input (n, c); output [OUT] (n, c) = (input - mean) * invstd;
    moving_mean, moving_variance (c,) updated in place in training as
    alpha * moving + (1 - alpha) * batch statistic (biased variance);
    save_mean, save_invstd [OUT] (c,) float64, the statistics used, for backward;
    alpha, eps scalars; training: batch statistics if True, moving ones if False."""
    n, c = input.shape
    dtype = input.dtype.type
    if training:
        chunks = n_row_chunks(n)
        per_chunk = np.empty((3, chunks, c))  # mean, m2, scratch
        for chunk in prange(chunks):
            start, stop = row_chunk(chunk, n)
            _chunk_mean_m2(input, start, stop, per_chunk[0, chunk], per_chunk[1, chunk],
                           per_chunk[2, chunk])
        mean, variance = _combine_chunks(per_chunk[0], per_chunk[1], n)
        for j in range(c):
            save_mean[j] = mean[j]
            save_invstd[j] = 1.0 / np.sqrt(variance[j] + eps)
            moving_mean[j] = alpha * moving_mean[j] + (1 - alpha) * save_mean[j]
            moving_variance[j] = dtype(alpha * moving_variance[j] + (1 - alpha) * variance[j])
    else:
        for j in range(c):
            save_mean[j] = moving_mean[j]
            save_invstd[j] = 1.0 / np.sqrt(np.float64(moving_variance[j]) + eps)
    terms, _ = _split_mean(save_mean, save_invstd, input)
    for chunk in prange(n_row_chunks(n)):
        start, stop = row_chunk(chunk, n)
        _normalize_rows(input, output, start, stop, terms[0], terms[1], terms[2])


@batch_norm_update_output.numpy_twin
def batch_norm_update_output_numpy(input, output, moving_mean, moving_variance, save_mean,
                                   save_invstd, alpha, eps, training):
    if training:
        mean = input.mean(axis=0, dtype=np.float64)
        variance = ((input - mean) ** 2).mean(axis=0)
        save_mean[...] = mean
        save_invstd[...] = 1.0 / np.sqrt(variance + eps)
        moving_mean[...] = alpha * moving_mean + (1 - alpha) * save_mean
        moving_variance[...] = alpha * moving_variance + (1 - alpha) * variance
    else:
        save_mean[...] = moving_mean
        save_invstd[...] = 1.0 / np.sqrt(moving_variance.astype(np.float64) + eps)
    np.subtract(input, save_mean, out=output)
    output *= save_invstd


@ordered_jit
def _accumulate_rows(x, g, start, stop, high, sums, chunk):
    """sums[chunk, 0] += g, sums[chunk, 1] += g * (x - high) over rows start..stop (see
    batch_norm_update_grad_input)."""
    sum_g, sum_g_centered = sums[chunk, 0], sums[chunk, 1]
    for i in range(start, stop):
        for j in range(x.shape[1]):
            sum_g[j] += g[i, j]
            sum_g_centered[j] += g[i, j] * (x[i, j] - high[j])


@ordered_jit
def _grad_rows(x, g, out, start, stop, high, invstd, slope, bias):
    """out = invstd * g - slope * (x - high) + bias over rows start..stop."""
    for i in range(start, stop):
        for j in range(x.shape[1]):
            out[i, j] = invstd[j] * g[i, j] - slope[j] * (x[i, j] - high[j]) + bias[j]


@kernel(parallel_min=PARALLEL_MIN_STREAMING)  # measured: pays off below 128k elements
def batch_norm_update_grad_input(input, grad_output, grad_input, save_mean, save_invstd,
                                 training):
    """input (n, c); grad_output (n, c); grad_input [OUT] (n, c); save_mean, save_invstd (c,)
    float64 from forward. Training: invstd * (g - mean(g) - xhat * mean(g * xhat)) per column,
    xhat = (input - mean) * invstd; evaluation: g * invstd.

    With mean = high + low (see _split_mean), per column mean(g * xhat) = invstd *
    (mean(g * (x - high)) - low * mean(g)), and the gradient is
    invstd * g - slope * (x - high) + bias, slope = invstd**2 * mean(g * xhat),
    bias = slope * low - invstd * mean(g): three operations an element in each pass."""
    n, c = input.shape
    terms, low = _split_mean(save_mean, save_invstd, input)
    high, invstd = terms[0], terms[1]
    if not training:
        for i in prange(n):
            for j in range(c):
                grad_input[i, j] = grad_output[i, j] * invstd[j]
        return
    chunks = n_row_chunks(n)
    # partial sums of 64 rows in the input's dtype (full SIMD width, no conversions),
    # combined across chunks in float64: partial[chunk] holds sum(g) and sum(g * (x - high))
    partial = zeroed3(chunks, 2, c, input)
    for chunk in prange(chunks):
        start, stop = row_chunk(chunk, n)
        _accumulate_rows(input, grad_output, start, stop, high, partial, chunk)
    slope, bias = _grad_terms(float64_column_sums(partial[:, 0]),
                              float64_column_sums(partial[:, 1]), low, save_invstd, n, input)
    for chunk in prange(chunks):
        start, stop = row_chunk(chunk, n)
        _grad_rows(input, grad_output, grad_input, start, stop, high, invstd, slope, bias)


@batch_norm_update_grad_input.numpy_twin
def batch_norm_update_grad_input_numpy(input, grad_output, grad_input, save_mean, save_invstd,
                                       training):
    if not training:
        np.multiply(grad_output, save_invstd, out=grad_input)
        return
    xhat = (input - save_mean) * save_invstd
    n = max(input.shape[0], 1)
    mean_g = grad_output.sum(axis=0, dtype=np.float64) / n
    mean_g_xhat = (grad_output * xhat).sum(axis=0, dtype=np.float64) / n
    grad_input[...] = save_invstd * (grad_output - mean_g - xhat * mean_g_xhat)


# Synchronized batch normalization (nnjit.distributed): the statistics and the gradient's
# column sums of the whole global batch are combined across ranks between these passes.
@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def batch_norm_statistics(input, statistics):
    """input (n, c); statistics [OUT] (2, c) float64: the columns' mean and biased variance
    over the n rows, as batch_norm_update_output computes them (zeros when n is 0)."""
    n, c = input.shape
    if n == 0:
        statistics[:] = 0
        return
    chunks = n_row_chunks(n)
    per_chunk = np.empty((3, chunks, c))  # mean, m2, scratch
    for chunk in prange(chunks):
        start, stop = row_chunk(chunk, n)
        _chunk_mean_m2(input, start, stop, per_chunk[0, chunk], per_chunk[1, chunk],
                       per_chunk[2, chunk])
    mean, variance = _combine_chunks(per_chunk[0], per_chunk[1], n)
    statistics[0] = mean
    statistics[1] = variance


@batch_norm_statistics.numpy_twin
def batch_norm_statistics_numpy(input, statistics):
    if input.shape[0] == 0:
        statistics[...] = 0
        return
    statistics[0] = input.mean(axis=0, dtype=np.float64)
    statistics[1] = ((input - statistics[0]) ** 2).mean(axis=0)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def batch_norm_normalize(input, output, save_mean, save_invstd):
    """input (n, c); output [OUT] (n, c) = (input - save_mean) * save_invstd, the float64
    statistics (c,) applied as batch_norm_update_output applies them."""
    terms, _ = _split_mean(save_mean, save_invstd, input)
    for chunk in prange(n_row_chunks(input.shape[0])):
        start, stop = row_chunk(chunk, input.shape[0])
        _normalize_rows(input, output, start, stop, terms[0], terms[1], terms[2])


@batch_norm_normalize.numpy_twin
def batch_norm_normalize_numpy(input, output, save_mean, save_invstd):
    np.subtract(input, save_mean, out=output)
    output *= save_invstd


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def batch_norm_grad_sums(input, grad_output, save_mean, save_invstd, sums):
    """input, grad_output (n, c); sums [OUT] (2, c) float64: the column sums of g and of
    g * (input - high), high = save_mean rounded to input's dtype (see
    batch_norm_update_grad_input): this rank's share of the whole batch's sums."""
    n, c = input.shape
    terms, _ = _split_mean(save_mean, save_invstd, input)
    chunks = n_row_chunks(n)
    partial = zeroed3(chunks, 2, c, input)
    for chunk in prange(chunks):
        start, stop = row_chunk(chunk, n)
        _accumulate_rows(input, grad_output, start, stop, terms[0], partial, chunk)
    sums[0] = float64_column_sums(partial[:, 0])
    sums[1] = float64_column_sums(partial[:, 1])


@batch_norm_grad_sums.numpy_twin
def batch_norm_grad_sums_numpy(input, grad_output, save_mean, save_invstd, sums):
    high = save_mean.astype(input.dtype)
    sums[0] = grad_output.sum(axis=0, dtype=np.float64)
    sums[1] = (grad_output * (input - high)).sum(axis=0, dtype=np.float64)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def batch_norm_grad_apply(input, grad_output, grad_input, save_mean, save_invstd, sums, count):
    """grad_input [OUT] (n, c) of batch normalization in training, from the column sums
    (2, c) float64 of batch_norm_grad_sums over all ``count`` rows of the batch."""
    n, c = input.shape
    terms, low = _split_mean(save_mean, save_invstd, input)
    slope, bias = _grad_terms(sums[0], sums[1], low, save_invstd, count, input)
    for chunk in prange(n_row_chunks(n)):
        start, stop = row_chunk(chunk, n)
        _grad_rows(input, grad_output, grad_input, start, stop, terms[0], terms[1], slope, bias)


@batch_norm_grad_apply.numpy_twin
def batch_norm_grad_apply_numpy(input, grad_output, grad_input, save_mean, save_invstd, sums,
                                count):
    high = save_mean.astype(input.dtype).astype(np.float64)
    low = save_mean - high
    mean_g = sums[0] / count
    mean_g_xhat = save_invstd * (sums[1] / count - low * mean_g)
    xhat = (input - save_mean) * save_invstd
    grad_input[...] = save_invstd * (grad_output - mean_g - xhat * mean_g_xhat)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def channelwise_scaling_update_output(input, output, gamma, beta):
    """input (n, c); output [OUT] (n, c) = input * gamma + beta; gamma, beta (c,)."""
    n, c = input.shape
    for i in prange(n):
        for j in range(c):
            output[i, j] = input[i, j] * gamma[j] + beta[j]


@channelwise_scaling_update_output.numpy_twin
def channelwise_scaling_update_output_numpy(input, output, gamma, beta):
    np.multiply(input, gamma, out=output)
    output += beta


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def channelwise_scaling_update_grad_input(grad_output, grad_input, gamma):
    """grad_output (n, c); grad_input [OUT] (n, c) = grad_output * gamma; gamma (c,)."""
    n, c = grad_output.shape
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = grad_output[i, j] * gamma[j]


@channelwise_scaling_update_grad_input.numpy_twin
def channelwise_scaling_update_grad_input_numpy(grad_output, grad_input, gamma):
    np.multiply(grad_output, gamma, out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_REDUCTION)
def channelwise_scaling_acc_grad_parameters(input, grad_output, grad_gamma, grad_beta):
    """input (n, c); grad_output (n, c); grad_gamma, grad_beta [OUT] (c,) accumulate
    sum(grad_output * input) and sum(grad_output) over the batch."""
    n, c = input.shape
    chunks = n_row_chunks(n)
    partial_gamma, partial_beta = zeroed(chunks, c, grad_gamma), zeroed(chunks, c, grad_gamma)
    for chunk in prange(chunks):
        start, stop = row_chunk(chunk, n)
        acc_gamma, acc_beta = partial_gamma[chunk], partial_beta[chunk]
        for i in range(start, stop):
            x, g = input[i], grad_output[i]
            for j in range(c):
                acc_gamma[j] += g[j] * x[j]
                acc_beta[j] += g[j]
    add_partials(partial_gamma, grad_gamma)
    add_partials(partial_beta, grad_beta)


@channelwise_scaling_acc_grad_parameters.numpy_twin
def channelwise_scaling_acc_grad_parameters_numpy(input, grad_output, grad_gamma, grad_beta):
    grad_gamma += np.einsum("ij,ij->j", grad_output, input)
    grad_beta += grad_output.sum(axis=0)
