"""The one place for the kernels' compile flags and parallel thresholds."""

# Kernels use error_model="numpy" (division by zero gives inf/NaN, no per-division check).
# LLVM fast-math flags for every kernel. Never "nnan" or "ninf": softmax, log-softmax and NLL
# must keep inf and NaN semantics (a row of -inf gives NaN, log(0) gives -inf).
# "reassoc" lets LLVM vectorize sums and maxima; "contract" allows FMA.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# For sums whose order is their accuracy (batch statistics: "reassoc" would undo a compensated
# sum, "arcp" turns x / n into x * (1 / n), one more rounding). Loops across columns still
# vectorize without them.
FASTMATH_ORDERED = FASTMATH - {"reassoc", "arcp"}

# Below a kernel's threshold (in elements) it runs its serial variant: a parallel launch
# costs microseconds, more than the whole op at small sizes. Measured on 2 cores (serial vs
# parallel variant, float32, 2 threads; the crossover is where the ratio passes 1):
# exp-heavy kernels pay off from ~16k elements, the default class (dropout's hash, Adam)
# from ~50k, streaming elementwise kernels (one read, one write) from ~130k, and batch
# reductions (partial sums, then a serial combine) from ~260k; batch norm, whose output pass
# is elementwise, from the streaming threshold.
PARALLEL_MIN_EXP = 16384
PARALLEL_MIN_ELEMENTS = 65536
PARALLEL_MIN_STREAMING = 131072
PARALLEL_MIN_REDUCTION = 262144
# Gathers of one element per row (NLL forward with labels): labels, and input bytes (see
# nll._gather_work).
PARALLEL_MIN_GATHER = 4096
GATHER_MIN_BYTES = 16 * 2**20

# Batch reductions (batch norm, scaling and bias gradients) give each task this many rows;
# tasks write partial column sums that are then added in a fixed order, so the result does
# not depend on the thread count. Whole rows, because walking a block of columns down a
# 4096-row batch crosses a page per row (measured 4-10x slower than whole rows).
ROW_CHUNK = 64

# Rows of at least this many columns go to kernels of their own, compiled for 512-bit vectors
# (kernel(long_rows=...), _jit.py); shorter rows ran slower with them.
LONG_ROW = 512
