"""The one place for the kernels' compile flags and parallel thresholds."""

# Kernels use error_model="numpy" (division by zero gives inf/NaN, no per-division check).
# LLVM fast-math flags for every kernel. Never "nnan" or "ninf": softmax, log-softmax and NLL
# must keep inf and NaN semantics (a row of -inf gives NaN, log(0) gives -inf).
# "reassoc" lets LLVM vectorize sums and maxima; "contract" allows FMA.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Below this many elements a kernel runs its serial variant: a parallel launch costs
# microseconds, more than the whole op at small sizes.
PARALLEL_MIN_ELEMENTS = 32768

# Feature columns handled together by batch reductions (batch norm, scaling, bias gradient):
# a block of columns is read row after row, so memory is read in order.
COLUMN_BLOCK = 64
