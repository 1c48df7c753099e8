"""exp, expm1, log1p and a row maximum that LLVM can vectorize.

``np.exp`` inside a Numba loop is a call into libm, which LLVM cannot vectorize without a
vector math library (SVML is not available with this numba/llvmlite), so exp-heavy loops ran
one element at a time: softmax was 4-6x slower than torch. ``vexp`` is branch-free arithmetic
instead: x = n*ln2 + r with |r| <= ln2/2, exp(r) by a Taylor polynomial, and 2**n built from
the exponent bits by an integer bit-cast (``_exp2_whole``), so a loop calling it becomes SIMD.

Accuracy is tested in tests/test_vmath.py against a float64 (float32) or exact-rounding
(float64) reference over the whole range, subnormal results, overflow, +-inf and NaN included.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

# Two kinds of helper, because LLVM only vectorizes a loop once every call in it is inlined:
# - _jit_exact: compiled on its own with only "contract" (FMA), for the steps whose rounding
#   order matters ("reassoc" would fold (x - n*hi) - n*lo into x - n*(hi+lo) and lose the
#   exact range reduction). Flags are per instruction, so they survive LLVM's inlining; these
#   are kept small enough for LLVM to inline them.
# - _jit_poly: polynomials, inlined by Numba into the caller and compiled with its flags
#   (any order of evaluation is fine). Left to LLVM, expm1 was too big to inline and its loop
#   ran 18x slower than exp's.
_jit_exact = numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
_jit_poly = numba.njit(inline="always")

# Per dtype: integer width, exponent bias, mantissa bits.
_FLOAT_LAYOUT = {types.float32: (32, 127, 23), types.float64: (64, 1023, 52)}


@intrinsic
def _exp2_whole(typingctx, n):
    """2**n for a float n holding a whole number in [1 - bias, bias], from the exponent bits.
    The caller clamps n, so the float-to-int conversion never sees NaN or an out-of-range
    value."""
    if n not in _FLOAT_LAYOUT:
        return None
    width, bias, mantissa_bits = _FLOAT_LAYOUT[n]

    def codegen(context, builder, signature, args):
        int_type = ir.IntType(width)
        whole = builder.fptosi(args[0], int_type)
        biased = builder.add(whole, ir.Constant(int_type, bias))
        bits = builder.shl(biased, ir.Constant(int_type, mantissa_bits))
        return builder.bitcast(bits, context.get_value_type(n))

    return n(n), codegen


# ln 2 split in a high part with few significant bits (n * LN2_HI is exact) and the rest.
_LN2_HI_32, _LN2_LO_32 = np.float32(0.693359375), np.float32(-2.12194440e-4)
_LN2_HI_64, _LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10


@_jit_exact
def _vexp32(x):
    # Selects, not branches, throughout: NaN compares false, so it flows through to the result.
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    n = n if n > np.float32(-160) else np.float32(-160)
    n = n if n < np.float32(160) else np.float32(160)
    r = (x - n * _LN2_HI_32) - n * _LN2_LO_32
    half = np.floor(n * np.float32(0.5))
    # Taylor to degree 7: truncation error < 6e-9 relative for |r| <= ln2/2 (0.1 ulp).
    p = np.float32(1 / 5040)
    p = p * r + np.float32(1 / 720)
    p = p * r + np.float32(1 / 120)
    p = p * r + np.float32(1 / 24)
    p = p * r + np.float32(1 / 6)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1)
    p = p * r + np.float32(1)
    # 2**n as two normal factors, so results near overflow and subnormal results come out
    # right (one rounding, in the last multiply).
    result = (p * _exp2_whole(half)) * _exp2_whole(n - half)
    result = np.float32(0) if x < np.float32(-110) else result  # exp(-inf) = 0, not -inf * 0
    return np.float32(np.inf) if x > np.float32(100) else result


@_jit_exact
def _vexp64(x):
    n = np.floor(x * 1.4426950408889634 + 0.5)
    n = n if n > -1100.0 else -1100.0
    n = n if n < 1100.0 else 1100.0
    r = (x - n * _LN2_HI_64) - n * _LN2_LO_64
    half = np.floor(n * 0.5)
    # Taylor to degree 13: truncation error < 2e-16 relative for |r| <= ln2/2.
    p = 1 / 6227020800
    p = p * r + 1 / 479001600
    p = p * r + 1 / 39916800
    p = p * r + 1 / 3628800
    p = p * r + 1 / 362880
    p = p * r + 1 / 40320
    p = p * r + 1 / 5040
    p = p * r + 1 / 720
    p = p * r + 1 / 120
    p = p * r + 1 / 24
    p = p * r + 1 / 6
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    result = (p * _exp2_whole(half)) * _exp2_whole(n - half)
    result = 0.0 if x < -750.0 else result
    return np.inf if x > 710.0 else result


@_jit_poly
def _expm1_series32(x):
    """expm1 by its Taylor series to degree 10: truncation < 1e-8 relative for |x| < ln 2."""
    q = np.float32(1 / 39916800)
    q = q * x + np.float32(1 / 3628800)
    q = q * x + np.float32(1 / 362880)
    q = q * x + np.float32(1 / 40320)
    q = q * x + np.float32(1 / 5040)
    q = q * x + np.float32(1 / 720)
    q = q * x + np.float32(1 / 120)
    q = q * x + np.float32(1 / 24)
    q = q * x + np.float32(1 / 6)
    q = q * x + np.float32(1 / 2)
    return x + (x * x) * q  # x itself exact, only the smaller term rounded


@_jit_poly
def _expm1_series64(x):
    """Degree 17: truncation < 2e-17 relative for |x| < ln 2."""
    q = 1 / 355687428096000
    q = q * x + 1 / 20922789888000
    q = q * x + 1 / 1307674368000
    q = q * x + 1 / 87178291200
    q = q * x + 1 / 6227020800
    q = q * x + 1 / 479001600
    q = q * x + 1 / 39916800
    q = q * x + 1 / 3628800
    q = q * x + 1 / 362880
    q = q * x + 1 / 40320
    q = q * x + 1 / 5040
    q = q * x + 1 / 720
    q = q * x + 1 / 120
    q = q * x + 1 / 24
    q = q * x + 1 / 6
    q = q * x + 1 / 2
    return x + (x * x) * q


@_jit_exact
def _atanh_argument(y, two):
    """s = y / (2 + y), with the rounding error of 2 + y (exact by Fast2Sum) corrected for;
    log1p(y) = 2 atanh(s). ``two`` is 2 in y's type."""
    d = two + y
    s = y / d
    return s - s * (((two - d) + y) / d)


@_jit_poly
def _log1p_series32(s):
    """2 atanh(s) for s in [0, 1/3]: the odd series converges by 1/9 per term; 9 terms reach
    float32 precision."""
    s2 = s * s
    tail = np.float32(1 / 17)
    tail = tail * s2 + np.float32(1 / 15)
    tail = tail * s2 + np.float32(1 / 13)
    tail = tail * s2 + np.float32(1 / 11)
    tail = tail * s2 + np.float32(1 / 9)
    tail = tail * s2 + np.float32(1 / 7)
    tail = tail * s2 + np.float32(1 / 5)
    tail = tail * s2 + np.float32(1 / 3)
    two_s = s + s
    return two_s + two_s * s2 * tail  # the small tail added last: its rounding hardly counts


@_jit_poly
def _log1p_series64(s):
    """17 terms for float64."""
    s2 = s * s
    tail = 1 / 35
    tail = tail * s2 + 1 / 33
    tail = tail * s2 + 1 / 31
    tail = tail * s2 + 1 / 29
    tail = tail * s2 + 1 / 27
    tail = tail * s2 + 1 / 25
    tail = tail * s2 + 1 / 23
    tail = tail * s2 + 1 / 21
    tail = tail * s2 + 1 / 19
    tail = tail * s2 + 1 / 17
    tail = tail * s2 + 1 / 15
    tail = tail * s2 + 1 / 13
    tail = tail * s2 + 1 / 11
    tail = tail * s2 + 1 / 9
    tail = tail * s2 + 1 / 7
    tail = tail * s2 + 1 / 5
    tail = tail * s2 + 1 / 3
    two_s = s + s
    return two_s + two_s * s2 * tail


def vexp(x):
    """exp(x) for a float32 or float64 scalar, vectorizable; see the module docstring."""
    return np.exp(x)


def _overload_by_dtype(generic, for_float32, for_float64):
    """Make ``generic`` (a plain NumPy function, used outside jitted code) call for_float32 or
    for_float64 inside jitted code, inlined by Numba."""
    @overload(generic, inline="always")
    def _select(x):
        return {types.float32: for_float32, types.float64: for_float64}.get(x)


_overload_by_dtype(vexp, lambda x: _vexp32(x), lambda x: _vexp64(x))


def vexpm1(x):
    """exp(x) - 1, accurate near 0, vectorizable."""
    return np.expm1(x)


# The series where exp(x) - 1 would cancel (|x| < ln 2); beyond, exp(x) - 1 is within 1 ulp.
_overload_by_dtype(
    vexpm1,
    lambda x: (_expm1_series32(x) if abs(x) < np.float32(0.6931472) else _vexp32(x) - np.float32(1)),
    lambda x: (_expm1_series64(x) if abs(x) < 0.6931471805599453 else _vexp64(x) - 1.0))


def vexpm1_wide(x):
    """expm1(x) as float64, for results rounded once to x's dtype by the caller. A float32 x
    takes the float32 polynomials evaluated in float64: correctly rounded after that one
    rounding nearly always, at about half the cost of the float64 polynomials."""
    return np.expm1(np.float64(x))


@_jit_poly
def _expm1_float32_wide(x):
    x = np.float64(x)
    return _expm1_series32(x) if abs(x) < 0.6931471805599453 else _vexp32(x) - 1.0


_overload_by_dtype(vexpm1_wide, lambda x: _expm1_float32_wide(x), lambda x: vexpm1(x))


def vlog1p_unit(x):
    """log(1 + x) for x in [0, 1] (softplus's range), vectorizable."""
    return np.log1p(x)


_overload_by_dtype(vlog1p_unit, lambda x: _log1p_series32(_atanh_argument(x, np.float32(2))),
                   lambda x: _log1p_series64(_atanh_argument(x, 2.0)))


@_jit_exact
def row_max(x, i):
    """The largest entry of row i of a 2-D array, ignoring NaN (-inf for an all-NaN row; the
    NaN still reaches the result through exp). LLVM will not vectorize a max reduction
    without the no-NaN flag, so eight independent running maxima stand in for the SIMD lanes
    (3.6x faster than one running max on 256x1000 float32)."""
    row = x[i]
    c = row.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x.dtype.type(-np.inf)
    stop = c - c % 8
    for j in range(0, stop, 8):
        v = row[j]
        m0 = v if v > m0 else m0
        v = row[j + 1]
        m1 = v if v > m1 else m1
        v = row[j + 2]
        m2 = v if v > m2 else m2
        v = row[j + 3]
        m3 = v if v > m3 else m3
        v = row[j + 4]
        m4 = v if v > m4 else m4
        v = row[j + 5]
        m5 = v if v > m5 else m5
        v = row[j + 6]
        m6 = v if v > m6 else m6
        v = row[j + 7]
        m7 = v if v > m7 else m7
    for j in range(stop, c):
        v = row[j]
        m0 = v if v > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@_jit_exact
def minus_both(x, top, log_total):
    """(x - top) - log_total, in that order: with the kernels' "reassoc" flag LLVM may rewrite
    it as x - (top + log_total), which rounds log_total to top's precision (a relative error
    of 0.3 in float32 log-softmax at logits of 1e4). This helper's instructions lack the flag."""
    return (x - top) - log_total


@_jit_exact
def nll_term(x, top, log_total):
    """-log_softmax = (top - x) + log_total, in that order (see minus_both). Negating
    minus_both in a kernel is not enough: LLVM folds the negation in with the kernel's flags."""
    return (top - x) + log_total


def vsoftplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), vectorizable. For float32 the exp is
    float32 and the rest float64 with the float32-precision series, rounded once at the end:
    within torch's error at a quarter of the cost of float64 throughout."""
    return np.logaddexp(0, x)


@_jit_poly
def _softplus32(x):
    e = np.float64(_vexp32(-abs(x)))
    s = e / (2.0 + e)  # in float64 the rounding of 2 + e no longer matters here
    return np.float32(max(np.float64(x), 0.0) + _log1p_series32(s))


@_jit_poly
def _softplus64(x):
    return max(x, 0.0) + _log1p_series64(_atanh_argument(_vexp64(-abs(x)), 2.0))


_overload_by_dtype(vsoftplus, lambda x: _softplus32(x), lambda x: _softplus64(x))
