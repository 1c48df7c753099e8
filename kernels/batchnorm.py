"""Batch normalization over axis 0 of a (batch, features) array, and channel-wise scaling.

Statistics are per feature column: tasks of ROW_CHUNK whole rows write partial column sums,
added in a fixed order (see row_chunk). Forward: each task finds its rows' mean and sum of
squared deviations (see _chunk_mean_m2), combined in float64 by Chan et al.'s formula.
"""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_REDUCTION, PARALLEL_MIN_STREAMING
from ._jit import (add_partials, float64_column_sums, jit, kernel, n_row_chunks, row_chunk,
                   zeroed)


@jit
def _chunk_mean_m2(x, start, stop, total, center, mean, m2):
    """mean (c,) and m2 (c,) [OUT], float64: the column means of rows start..stop of x and
    their sums of squared deviations. Sums run in x's dtype (full SIMD width) over values
    shifted by the chunk's first row, then by the chunk mean rounded to x's dtype, so a
    constant column gives exactly its value and 0 (its normalized output is then 0, not
    -1.5e-5 as with a plain float32 sum); total and center are scratch (c,) in x's dtype."""
    c = x.shape[1]
    first = x[start]
    total[:] = 0
    for i in range(start + 1, stop):
        row = x[i]
        for j in range(c):
            total[j] += row[j] - first[j]
    count = stop - start
    for j in range(c):
        mean[j] = np.float64(first[j]) + np.float64(total[j]) / count
        center[j] = mean[j]
        total[j] = 0
    for i in range(start, stop):
        row = x[i]
        for j in range(c):
            d = row[j] - center[j]
            total[j] += d * d
    for j in range(c):
        offset = mean[j] - np.float64(center[j])  # the sums are about center, not the mean
        m2[j] = max(np.float64(total[j]) - count * offset * offset, 0.0)


@jit
def _combine_chunks(chunk_mean, chunk_m2, n):
    """(mean, biased variance) float64 (c,) of all rows from the tasks' (mean, M2): Chan et
    al.'s combine, in a fixed order."""
    chunks, c = chunk_mean.shape
    mean, variance = np.zeros(c), np.zeros(c)
    for chunk in range(chunks):
        start, stop = row_chunk(chunk, n)
        for j in range(c):
            mean[j] += (stop - start) * chunk_mean[chunk, j]
    for j in range(c):
        mean[j] /= n
    for chunk in range(chunks):
        start, stop = row_chunk(chunk, n)
        for j in range(c):
            shift = chunk_mean[chunk, j] - mean[j]
            variance[j] += chunk_m2[chunk, j] + (stop - start) * shift * shift
    for j in range(c):
        variance[j] /= n
    return mean, variance


@kernel(parallel_min=PARALLEL_MIN_STREAMING)  # measured: pays off from ~130k-180k elements
def batch_norm_update_output(input, output, moving_mean, moving_variance, save_mean,
                             save_invstd, alpha, eps, training):
    """input (n, c); output [OUT] (n, c) = (input - mean) * invstd;
    moving_mean, moving_variance (c,) updated in place in training as
    alpha * moving + (1 - alpha) * batch statistic (biased variance);
    save_mean, save_invstd [OUT] (c,) the statistics used, for backward;
    alpha, eps scalars; training: batch statistics if True, moving ones if False."""
    n, c = input.shape
    dtype = input.dtype.type
    if training:
        chunks = n_row_chunks(n)
        chunk_mean, chunk_m2 = np.empty((chunks, c)), np.empty((chunks, c))
        scratch = np.empty((chunks, 2, c), input.dtype)
        for chunk in prange(chunks):
            start, stop = row_chunk(chunk, n)
            _chunk_mean_m2(input, start, stop, scratch[chunk, 0], scratch[chunk, 1],
                           chunk_mean[chunk], chunk_m2[chunk])
        mean, variance = _combine_chunks(chunk_mean, chunk_m2, n)
        for j in range(c):
            save_mean[j] = mean[j]
            save_invstd[j] = 1.0 / np.sqrt(variance[j] + eps)
            moving_mean[j] = alpha * moving_mean[j] + (1 - alpha) * save_mean[j]
            moving_variance[j] = dtype(alpha * moving_variance[j] + (1 - alpha) * variance[j])
    else:
        for j in range(c):
            save_mean[j] = moving_mean[j]
            save_invstd[j] = 1.0 / np.sqrt(np.float64(moving_variance[j]) + eps)
    for i in prange(n):
        x, out = input[i], output[i]
        for j in range(c):
            out[j] = (x[j] - save_mean[j]) * save_invstd[j]


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


@kernel(parallel_min=PARALLEL_MIN_STREAMING)  # measured: pays off below 128k elements
def batch_norm_update_grad_input(input, grad_output, grad_input, save_mean, save_invstd,
                                 training):
    """input (n, c); grad_output (n, c); grad_input [OUT] (n, c); save_mean, save_invstd (c,)
    from forward. Training: invstd * (g - mean(g) - xhat * mean(g * xhat)) per column, with
    xhat = (input - mean) * invstd; evaluation: g * invstd."""
    n, c = input.shape
    if training:
        chunks = n_row_chunks(n)
        # partial sums of 64 rows in the input's dtype (full SIMD width, no conversions),
        # combined across chunks in float64
        partial_g, partial_g_xhat = zeroed(chunks, c, input), zeroed(chunks, c, input)
        for chunk in prange(chunks):
            start, stop = row_chunk(chunk, n)
            acc_g, acc_g_xhat = partial_g[chunk], partial_g_xhat[chunk]
            for i in range(start, stop):
                x, g = input[i], grad_output[i]
                for j in range(c):
                    acc_g[j] += g[j]
                    acc_g_xhat[j] += g[j] * ((x[j] - save_mean[j]) * save_invstd[j])
        mean_g, mean_g_xhat = float64_column_sums(partial_g), float64_column_sums(partial_g_xhat)
        for j in range(c):
            mean_g[j] /= n
            mean_g_xhat[j] /= n
        for i in prange(n):
            x, g, out = input[i], grad_output[i], grad_input[i]
            for j in range(c):
                xhat = (x[j] - save_mean[j]) * save_invstd[j]
                out[j] = save_invstd[j] * (g[j] - mean_g[j] - xhat * mean_g_xhat[j])
    else:
        for i in prange(n):
            for j in range(c):
                grad_input[i, j] = grad_output[i, j] * save_invstd[j]


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
