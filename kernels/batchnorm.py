"""Batch normalization over axis 0 of a (batch, features) array, and channel-wise scaling.

Statistics are per feature column, computed over blocks of columns (see column_block).
Batch statistics accumulate in float64, as torch does.
"""
import numpy as np
from numba import prange

from ._jit import column_block, kernel, n_column_blocks


@kernel()
def batch_norm_update_output(input, output, moving_mean, moving_variance, save_mean,
                             save_invstd, alpha, eps, training):
    """input (n, c); output [OUT] (n, c) = (input - mean) * invstd;
    moving_mean, moving_variance (c,) updated in place in training as
    alpha * moving + (1 - alpha) * batch statistic (biased variance);
    save_mean, save_invstd [OUT] (c,) the statistics used, for backward;
    alpha, eps scalars; training: batch statistics if True, moving ones if False."""
    n, c = input.shape
    dtype = input.dtype.type
    for block in prange(n_column_blocks(c)):
        start, stop = column_block(block, c)
        if training:
            acc = np.zeros(stop - start)
            for i in range(n):
                for j in range(start, stop):
                    acc[j - start] += input[i, j]
            for j in range(start, stop):
                save_mean[j] = acc[j - start] / n
                acc[j - start] = 0.0
            for i in range(n):
                for j in range(start, stop):
                    d = np.float64(input[i, j]) - np.float64(save_mean[j])
                    acc[j - start] += d * d
            for j in range(start, stop):
                variance = acc[j - start] / n
                save_invstd[j] = 1.0 / np.sqrt(variance + eps)
                moving_mean[j] = alpha * moving_mean[j] + (1 - alpha) * save_mean[j]
                moving_variance[j] = dtype(alpha * moving_variance[j] + (1 - alpha) * variance)
        else:
            for j in range(start, stop):
                save_mean[j] = moving_mean[j]
                save_invstd[j] = 1.0 / np.sqrt(np.float64(moving_variance[j]) + eps)
        for i in range(n):
            for j in range(start, stop):
                output[i, j] = (input[i, j] - save_mean[j]) * save_invstd[j]


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


@kernel()
def batch_norm_update_grad_input(input, grad_output, grad_input, save_mean, save_invstd,
                                 training):
    """input (n, c); grad_output (n, c); grad_input [OUT] (n, c); save_mean, save_invstd (c,)
    from forward. Training: invstd * (g - mean(g) - xhat * mean(g * xhat)) per column, with
    xhat = (input - mean) * invstd; evaluation: g * invstd."""
    n, c = input.shape
    for block in prange(n_column_blocks(c)):
        start, stop = column_block(block, c)
        if training:
            sum_g = np.zeros(stop - start)
            sum_g_xhat = np.zeros(stop - start)
            for i in range(n):
                for j in range(start, stop):
                    g = np.float64(grad_output[i, j])
                    sum_g[j - start] += g
                    sum_g_xhat[j - start] += g * ((input[i, j] - save_mean[j]) * save_invstd[j])
            for j in range(start, stop):
                sum_g[j - start] /= n
                sum_g_xhat[j - start] /= n
            for i in range(n):
                for j in range(start, stop):
                    xhat = (input[i, j] - save_mean[j]) * save_invstd[j]
                    grad_input[i, j] = save_invstd[j] * (
                        grad_output[i, j] - sum_g[j - start] - xhat * sum_g_xhat[j - start])
        else:
            for i in range(n):
                for j in range(start, stop):
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


@kernel()
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


@kernel()
def channelwise_scaling_update_grad_input(grad_output, grad_input, gamma):
    """grad_output (n, c); grad_input [OUT] (n, c) = grad_output * gamma; gamma (c,)."""
    n, c = grad_output.shape
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = grad_output[i, j] * gamma[j]


@channelwise_scaling_update_grad_input.numpy_twin
def channelwise_scaling_update_grad_input_numpy(grad_output, grad_input, gamma):
    np.multiply(grad_output, gamma, out=grad_input)


@kernel()
def channelwise_scaling_acc_grad_parameters(input, grad_output, grad_gamma, grad_beta):
    """input (n, c); grad_output (n, c); grad_gamma, grad_beta [OUT] (c,) accumulate
    sum(grad_output * input) and sum(grad_output) over the batch."""
    n, c = input.shape
    for block in prange(n_column_blocks(c)):
        start, stop = column_block(block, c)
        for i in range(n):
            for j in range(start, stop):
                grad_gamma[j] += grad_output[i, j] * input[i, j]
                grad_beta[j] += grad_output[i, j]


@channelwise_scaling_acc_grad_parameters.numpy_twin
def channelwise_scaling_acc_grad_parameters_numpy(input, grad_output, grad_gamma, grad_beta):
    grad_gamma += np.einsum("ij,ij->j", grad_output, input)
    grad_beta += grad_output.sum(axis=0)
