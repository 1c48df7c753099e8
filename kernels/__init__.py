"""nnjit's math: every op as a Numba kernel next to its NumPy twin.

Calling a kernel (``softmax_update_output(x, out)``) follows the backend in force;
``kernel.numba`` and ``kernel.numpy`` force one path. ``ALL_KERNELS`` maps names to kernels.
"""
from ._dispatch import BACKENDS, backend, get_backend, set_backend
from ._jit import ALL_KERNELS, Kernel
from .activations import (elu_update_grad_input, elu_update_output,
                          leaky_relu_update_grad_input, leaky_relu_update_output,
                          relu_update_grad_input, relu_update_output,
                          softplus_update_grad_input, softplus_update_output)
from .batchnorm import (batch_norm_grad_apply, batch_norm_grad_sums, batch_norm_normalize,
                        batch_norm_statistics, batch_norm_update_grad_input,
                        batch_norm_update_output,
                        channelwise_scaling_acc_grad_parameters,
                        channelwise_scaling_update_grad_input,
                        channelwise_scaling_update_output)
from .conv import (CHUNK_BYTES, DIRECT_MAX_FIELD, SMALL_MAX_WORK, WIDE_MAX_FIELD,
                   chunk_images,
                   conv2d_acc_grad_bias, conv2d_small_update_grad_input,
                   conv2d_small_update_output,
                   conv2d_direct_acc_grad_weight, conv2d_direct_update_grad_input,
                   conv2d_direct_update_output, conv2d_gemm_acc_grad_weight,
                   conv2d_gemm_update_grad_input, conv2d_gemm_update_output,
                   conv2d_wide_acc_grad_parameters, conv2d_wide_update_grad_input,
                   conv2d_wide_update_output, wide_padded_size,
                   avg_pool2d_update_grad_input, avg_pool2d_update_output,
                   max_pool2d_update_grad_input, max_pool2d_update_output)
from .dropout import (dropout_update_grad_input, dropout_update_output, drop_threshold,
                      leaky_relu_dropout_update_grad_input, leaky_relu_dropout_update_output,
                      shifted_seed)
from .linear import (bias_acc_grad, bias_add, linear_acc_grad_parameters,
                     linear_acc_grad_parameters_in_place, linear_first_grad_parameters,
                     linear_update_output)
from .mse import mse_update_grad_input, mse_update_output
from .nll import (cross_entropy_labels_long_rows_update_output,
                  cross_entropy_labels_update_grad_input, cross_entropy_labels_update_output,
                  cross_entropy_update_grad_input, cross_entropy_update_output,
                  first_bad_distribution,
                  nll_log_labels_update_grad_input, nll_log_labels_update_output,
                  nll_log_update_grad_input, nll_log_update_output,
                  nll_prob_labels_update_grad_input, nll_prob_labels_update_output,
                  nll_prob_update_grad_input, nll_prob_update_output)
from .optim import adam_step, sgd_momentum_step, zero_fill
from .softmax import (log_softmax_long_rows_update_output, log_softmax_update_grad_input,
                      log_softmax_update_output, softmax_update_grad_input,
                      softmax_update_output)

__all__ = sorted(ALL_KERNELS) + ["ALL_KERNELS", "Kernel", "drop_threshold", "shifted_seed",
                                 "BACKENDS", "backend", "get_backend", "set_backend",
                                 "linear_acc_grad_parameters_in_place", "CHUNK_BYTES",
                                 "DIRECT_MAX_FIELD", "SMALL_MAX_WORK", "WIDE_MAX_FIELD",
                                 "chunk_images", "wide_padded_size"]
