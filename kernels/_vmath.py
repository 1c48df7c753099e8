"""exp, expm1, log, log1p and a row maximum that LLVM can vectorize.

``np.exp`` inside a Numba loop is a call into libm, which LLVM cannot vectorize without a
vector math library (SVML is not available with this numba/llvmlite), so exp-heavy loops ran
one element at a time: softmax was 4-6x slower than torch. ``vexp`` is branch-free arithmetic
instead: x = n*ln2 + r with |r| <= ln2/2, exp(r) by a polynomial, and 2**n built in the
exponent bits by an integer shift (``_exponent_from_low_bits``), so a loop calling it becomes
SIMD. ``vexp_nonpositive`` is the same for x <= 0 (softmax's x - max, log-probabilities,
-|x|), 7% cheaper. ``vlog`` splits x = z * 2**k with z near 1 by integer arithmetic on the
bits and takes log(z) by a polynomial, the same way.

Accuracy is tested in tests/test_vmath.py against a float64 (float32) or exact-rounding
(float64) reference over the whole range, subnormal results, overflow, +-inf and NaN included.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
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
# For the kernels' row functions (see SHORT_ROW_MASK), under a name for use elsewhere.
inlined = _jit_poly

# Per dtype: integer width, exponent bias, mantissa bits.
_FLOAT_LAYOUT = {types.float32: (32, 127, 23), types.float64: (64, 1023, 52)}


@intrinsic
def _exponent_from_low_bits(typingctx, t):
    """The float whose exponent field is the low bits of t's mantissa (t's bits shifted left
    by the mantissa width). For t = y + 1.5 * 2**mantissa_bits, where adding the shift has
    rounded y to a whole number k with 0 < k < 2 * bias, that is 2**(k - bias): one integer
    shift instead of a float-to-int conversion, an add and a shift."""
    if t not in _FLOAT_LAYOUT:
        return None
    width, _, mantissa_bits = _FLOAT_LAYOUT[t]

    def codegen(context, builder, signature, args):
        int_type = ir.IntType(width)
        bits = builder.bitcast(args[0], int_type)
        shifted = builder.shl(bits, ir.Constant(int_type, mantissa_bits))
        return builder.bitcast(shifted, context.get_value_type(t))

    return t(t), codegen


# exp(x) = 2**n * exp(r), n = round(x / ln 2), r = x - n ln 2 with |r| <= ln2/2:
# - n comes from adding a shift constant to x / ln 2 (t below); t's low bits then hold n plus
#   the exponent bias plus an offset of +-64, and _exponent_from_low_bits turns them into
#   2**(n +- 64). Offsetting by 64 keeps that factor a normal number over the whole range:
#   results down to the smallest subnormal (n = -150 for float32) and up to overflow (n = 128)
#   need more exponents than one normal factor has. A last multiply by 2**-+64 puts the offset
#   back, exactly, or with the one correct rounding of a subnormal result.
# - ln 2 is split in a high part with few significant bits (n * LN2_HI is exact) and the rest.
# - exp(r) is SLEEF's u10 polynomial (minimax, 1 + r + r^2 (...), degree 7 for float32, 12
#   for float64): in Horner form within 0.86 ulp of exp over the whole range in both dtypes
#   (tests/test_vmath.py), against 0.93 and 0.86 for the Taylor polynomials of degree 7 and 13
#   it replaced.
_LOG2E_32, _LOG2E_64 = np.float32(1.4426950408889634), 1.4426950408889634
_LN2_HI_32, _LN2_LO_32 = np.float32(0.693359375), np.float32(-2.12194440e-4)
_LN2_HI_64, _LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_SHIFT_DOWN_32 = np.float32(1.5 * 2.0**23 + 127 + 64)  # t's low bits: n + bias + 64
_SHIFT_UP_32 = np.float32(1.5 * 2.0**23 + 127 - 64)
_SHIFT_DOWN_64 = 1.5 * 2.0**52 + 1023 + 64
_SHIFT_UP_64 = 1.5 * 2.0**52 + 1023 - 64
_DOWN_32, _UP_32 = np.float32(2.0**-64), np.float32(2.0**64)
_DOWN_64, _UP_64 = 2.0**-64, 2.0**64
# Below these, exp rounds to 0 (the clamp keeps n within the offset's range; the clamped
# result is under half the smallest subnormal, so it still rounds to 0, and -inf gives 0).
_FLOOR_32, _FLOOR_64 = np.float32(-104), -746.0
# Above these, exp overflows to inf; below _NONPOSITIVE_CEILING, n + 64 still fits.
_CEILING_32, _CEILING_64 = np.float32(89), 710.0
_NONPOSITIVE_CEILING_32, _NONPOSITIVE_CEILING_64 = np.float32(43), 43.0


@_jit_poly
def _exp_poly32(r):
    p = np.float32(0.000198527617612853646278381)
    p = p * r + np.float32(0.00139304355252534151077271)
    p = p * r + np.float32(0.00833336077630519866943359)
    p = p * r + np.float32(0.0416664853692054748535156)
    p = p * r + np.float32(0.166666671633720397949219)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1)
    return p * r + np.float32(1)


@_jit_poly
def _exp_poly64(r):
    p = 2.08860621107283687536341e-09
    p = p * r + 2.51112930892876518610661e-08
    p = p * r + 2.75573911234900471893338e-07
    p = p * r + 2.75572362911928827629423e-06
    p = p * r + 2.4801587159235472998791e-05
    p = p * r + 0.000198412698960509205564975
    p = p * r + 0.00138888888889774492207962
    p = p * r + 0.00833333333331652721664984
    p = p * r + 0.0416666666666665047591422
    p = p * r + 0.166666666666666851703837
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


# The helpers below are inlined by Numba into the _jit_exact functions that call them, and
# take their flags: "reassoc" would fold (t - shift) back into x / ln 2.
@_jit_poly
def _reduce32(x, shift):
    """(t, r) for a clamped float32 x: t holds n in its low bits, r = x - n ln 2."""
    t = x * _LOG2E_32 + shift
    n = t - shift
    return t, (x - n * _LN2_HI_32) - n * _LN2_LO_32


@_jit_poly
def _reduce64(x, shift):
    t = x * _LOG2E_64 + shift
    n = t - shift
    return t, (x - n * _LN2_HI_64) - n * _LN2_LO_64


@_jit_exact
def _vexp32(x):
    # Selects, not branches, throughout; clamps written so that NaN passes them unchanged
    # (NaN compares false) and reaches the result through r.
    x = _FLOOR_32 if x < _FLOOR_32 else x
    x = _CEILING_32 if x > _CEILING_32 else x
    up = x > np.float32(0)
    t, r = _reduce32(x, _SHIFT_UP_32 if up else _SHIFT_DOWN_32)
    return (_exp_poly32(r) * _exponent_from_low_bits(t)) * (_UP_32 if up else _DOWN_32)


@_jit_exact
def _vexp64(x):
    x = _FLOOR_64 if x < _FLOOR_64 else x
    x = _CEILING_64 if x > _CEILING_64 else x
    up = x > 0.0
    t, r = _reduce64(x, _SHIFT_UP_64 if up else _SHIFT_DOWN_64)
    return (_exp_poly64(r) * _exponent_from_low_bits(t)) * (_UP_64 if up else _DOWN_64)


@_jit_exact
def _vexp_nonpositive32(x):
    x = _FLOOR_32 if x < _FLOOR_32 else x
    x = _NONPOSITIVE_CEILING_32 if x > _NONPOSITIVE_CEILING_32 else x
    t, r = _reduce32(x, _SHIFT_DOWN_32)
    return (_exp_poly32(r) * _exponent_from_low_bits(t)) * _DOWN_32


@_jit_exact
def _vexp_nonpositive64(x):
    x = _FLOOR_64 if x < _FLOOR_64 else x
    x = _NONPOSITIVE_CEILING_64 if x > _NONPOSITIVE_CEILING_64 else x
    t, r = _reduce64(x, _SHIFT_DOWN_64)
    return (_exp_poly64(r) * _exponent_from_low_bits(t)) * _DOWN_64


@_jit_exact
def _vexp_nonpositive_float32_wide(x):
    """exp(x) to float32 accuracy, evaluated in float64 (x float64, x <= 0): the float64
    reduction with the float32 polynomial, for a result rounded once to float32 later."""
    x = _FLOOR_64 if x < _FLOOR_64 else x
    x = _NONPOSITIVE_CEILING_64 if x > _NONPOSITIVE_CEILING_64 else x
    t, r = _reduce64(x, _SHIFT_DOWN_64)
    return (_exp_poly32(r) * _exponent_from_low_bits(t)) * _DOWN_64


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


def vexp_nonpositive(x):
    """exp(x) for x <= 0, vectorizable: vexp without the choice of offset that positive
    results need. Exact to the same error up to x = 43; larger x are taken as 43."""
    return np.exp(np.minimum(x, 43))


def _overload_by_dtype(generic, for_float32, for_float64):
    """Make ``generic`` (a plain NumPy function, used outside jitted code) call for_float32 or
    for_float64 inside jitted code, inlined by Numba."""
    @overload(generic, inline="always")
    def _select(x):
        return {types.float32: for_float32, types.float64: for_float64}.get(x)


_overload_by_dtype(vexp, lambda x: _vexp32(x), lambda x: _vexp64(x))
_overload_by_dtype(vexp_nonpositive, lambda x: _vexp_nonpositive32(x),
                   lambda x: _vexp_nonpositive64(x))


def vexpm1(x):
    """exp(x) - 1, accurate near 0, vectorizable."""
    return np.expm1(x)


# The series where exp(x) - 1 would cancel (|x| < ln 2); beyond, exp(x) - 1 is within 1 ulp.
_overload_by_dtype(
    vexpm1,
    lambda x: (_expm1_series32(x) if abs(x) < np.float32(0.6931472) else _vexp32(x) - np.float32(1)),
    lambda x: (_expm1_series64(x) if abs(x) < 0.6931471805599453 else _vexp64(x) - 1.0))


def vexpm1_wide(x):
    """expm1(x) for x <= 0 (ELU's side) as float64, for results rounded once to x's dtype by
    the caller. A float32 x takes the float32 polynomials evaluated in float64: correctly
    rounded after that one rounding nearly always, at about half the cost of the float64
    polynomials. Larger x are taken as 43, as in vexp_nonpositive."""
    return np.expm1(np.minimum(np.float64(x), 43))


@_jit_poly
def _expm1_float32_wide(x):
    x = np.float64(x)
    return (_expm1_series32(x) if abs(x) < 0.6931471805599453
            else _vexp_nonpositive_float32_wide(x) - 1.0)


@_jit_poly
def _expm1_nonpositive64(x):
    return _expm1_series64(x) if abs(x) < 0.6931471805599453 else _vexp_nonpositive64(x) - 1.0


_overload_by_dtype(vexpm1_wide, lambda x: _expm1_float32_wide(x),
                   lambda x: _expm1_nonpositive64(x))


def vlog1p_unit(x):
    """log(1 + x) for x in [0, 1] (softplus's range), vectorizable."""
    return np.log1p(x)


_overload_by_dtype(vlog1p_unit, lambda x: _log1p_series32(_atanh_argument(x, np.float32(2))),
                   lambda x: _log1p_series64(_atanh_argument(x, 2.0)))


# log(x) = k ln2 + log1p(f), x = z * 2**k with z = 1 + f in [sqrt(1/2), sqrt(2)), found on x's
# bits (_split_at_sqrt_half). float32: Cephes' logf polynomial, log1p(f) = f - f^2/2 +
# f^3 P(f), no division, and k ln2 + f added with its rounding error kept (Fast2Sum) for the
# polynomial's small rest to join: 0.83 ulp at most (the plain sum: 1.52). float64: fdlibm's
# log, log1p(f) through s = f / (2 + f) and a minimax polynomial in s^2, 0.85 ulp.
# `python tools/log_timing.py`, serial, ns an entry: float32 vlog 0.51, vlog_normal 0.36, np.log
# in a Numba loop (a libm call each) 2.34, NumPy's own np.log 0.35; float64 1.13, 0.80, 3.68
# and 0.78.
_SQRT_HALF_BITS = {types.float32: 0x3f3504f3, types.float64: 0x3fe6a09e667f3bcd}


@intrinsic
def _split_at_sqrt_half(typingctx, x):
    """(z, k), both of x's type, with x = z * 2**k, z in [sqrt(1/2), sqrt(2)) and k whole, for
    a positive normal x: k is the exponent of x / sqrt(1/2), z is x with that taken out of its
    exponent field. Integer arithmetic in x's width, which Numba's typing would widen to 64."""
    if x not in _FLOAT_LAYOUT:
        return None
    width, _, mantissa_bits = _FLOAT_LAYOUT[x]

    def codegen(context, builder, signature, args):
        int_type = ir.IntType(width)
        bits = builder.bitcast(args[0], int_type)
        past_sqrt_half = builder.sub(bits, ir.Constant(int_type, _SQRT_HALF_BITS[x]))
        exponent_field = builder.and_(past_sqrt_half, ir.Constant(int_type, -1 << mantissa_bits))
        z = builder.bitcast(builder.sub(bits, exponent_field), args[0].type)
        k = builder.sitofp(builder.ashr(past_sqrt_half, ir.Constant(int_type, mantissa_bits)),
                           args[0].type)
        return context.make_tuple(builder, signature.return_type, [z, k])

    return types.UniTuple(x, 2)(x), codegen


@_jit_poly
def _log_poly32(f):
    p = np.float32(7.0376836292e-2)
    p = p * f + np.float32(-1.1514610310e-1)
    p = p * f + np.float32(1.1676998740e-1)
    p = p * f + np.float32(-1.2420140846e-1)
    p = p * f + np.float32(1.4249322787e-1)
    p = p * f + np.float32(-1.6668057665e-1)
    p = p * f + np.float32(2.0000714765e-1)
    p = p * f + np.float32(-2.4999993993e-1)
    return p * f + np.float32(3.3333331174e-1)


@_jit_poly
def _log_poly64(s2):
    """fdlibm's R(s^2) = 2 atanh(s)/s - 2, within 2**-58.45."""
    w = s2 * s2
    even = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
                                                + w * 1.531383769920937332e-01))
    odd = s2 * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                                                + w * (1.818357216161805012e-01
                                                       + w * 1.479819860511658591e-01)))
    return odd + even


# Subnormal x are scaled into the normal range first, and the scale taken off k.
_SUBNORMAL_SCALE_32, _SUBNORMAL_SHIFT_32 = np.float32(2.0**25), np.float32(25)
_SUBNORMAL_SCALE_64, _SUBNORMAL_SHIFT_64 = 2.0**54, 54.0
_TINY_32, _TINY_64 = np.float32(np.finfo(np.float32).tiny), np.finfo(np.float64).tiny


@_jit_poly
def _log_special(x, zero):
    """log(x) where x is not positive and finite: -inf for +-0, x for +inf and NaN, NaN below 0."""
    return -np.inf if x == zero else (np.nan if x < zero else x)


@_jit_poly
def _log_of_split32(z, k):
    """log(z * 2**k) for z in [sqrt(1/2), sqrt(2)), k whole (_split_at_sqrt_half)."""
    f = z - np.float32(1)  # exact
    f2 = f * f
    rest = (_log_poly32(f) * f) * f2 + k * _LN2_LO_32 - np.float32(0.5) * f2
    scaled = k * _LN2_HI_32  # exact: few bits in each
    head = scaled + f
    head_error = f - (head - scaled)  # |scaled| >= |f| unless k = 0, where it is 0
    return head + (head_error + rest)


@_jit_poly
def _log_of_split64(z, k):
    f = z - 1.0
    s = f / (2.0 + f)
    half_f2 = 0.5 * f * f
    # fdlibm's order of evaluation: the exact f and k * LN2_HI added last
    return k * _LN2_HI_64 - ((half_f2 - (s * (half_f2 + _log_poly64(s * s))
                                         + k * _LN2_LO_64)) - f)


@_jit_exact
def _vlog32(x):
    subnormal = x < _TINY_32
    z, k = _split_at_sqrt_half(x * _SUBNORMAL_SCALE_32 if subnormal else x)
    result = _log_of_split32(z, k - _SUBNORMAL_SHIFT_32 if subnormal else k)
    finite = (x > np.float32(0)) & (x < np.float32(np.inf))
    return result if finite else np.float32(_log_special(x, np.float32(0)))


@_jit_exact
def _vlog64(x):
    subnormal = x < _TINY_64
    z, k = _split_at_sqrt_half(x * _SUBNORMAL_SCALE_64 if subnormal else x)
    result = _log_of_split64(z, k - _SUBNORMAL_SHIFT_64 if subnormal else k)
    finite = (x > 0.0) & (x < np.inf)
    return result if finite else _log_special(x, 0.0)


@_jit_exact
def _vlog_normal32(x):
    z, k = _split_at_sqrt_half(x)
    return _log_of_split32(z, k) if x == x else x


@_jit_exact
def _vlog_normal64(x):
    z, k = _split_at_sqrt_half(x)
    return _log_of_split64(z, k) if x == x else x


def vlog(x):
    """log(x) for a float32 or float64 scalar, vectorizable, within 0.85 ulp, subnormal x,
    0 (-inf), inf, NaN and x < 0 (NaN) as np.log."""
    return np.log(x)


def vlog_normal(x):
    """vlog(x) for x a positive normal number or NaN (NaN out), within the same 0.85 ulp; for
    any other x the result is unspecified. Without vlog's edges, 30% cheaper (float32): for
    arguments clipped to [eps, 1 - eps] with eps normal (is_normal)."""
    return np.log(x)


def is_normal(x):
    """Whether x is at least the smallest positive normal number of its type."""
    return x >= np.finfo(np.asarray(x).dtype).tiny


_overload_by_dtype(vlog, lambda x: _vlog32(x), lambda x: _vlog64(x))
_overload_by_dtype(vlog_normal, lambda x: _vlog_normal32(x), lambda x: _vlog_normal64(x))
_overload_by_dtype(is_normal, lambda x: x >= _TINY_32, lambda x: x >= _TINY_64)


@intrinsic
def _max_ignoring_nan_operands(typingctx, a, b):
    """llvm.maxnum(a, b) with the no-NaN flag: max(a, b) for numbers; for a NaN operand the
    result is unspecified (one of the operands in practice). The flag is what lets LLVM
    vectorize a max reduction; see row_max for why that is safe there."""
    if a not in _FLOAT_LAYOUT or b != a:
        return None

    def codegen(context, builder, signature, args):
        float_type = args[0].type
        name = "llvm.maxnum.f32" if a == types.float32 else "llvm.maxnum.f64"
        maxnum = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(float_type, [float_type, float_type]), name)
        return builder.call(maxnum, args, fastmath=("nnan",))

    return a(a, b), codegen


@_jit_exact
def row_max(x, i):
    """The largest entry of row i of a 2-D array (-inf for an empty row or one of -inf).
    For a row holding a NaN the result is unspecified: callers use it only to shift rows
    whose every result then depends on all entries' exp (softmax, log-softmax and
    cross-entropy sum over the row), so one NaN makes the whole row NaN whatever the shift,
    as in torch. Vectorized, 2.4x (float32) and 1.6x (float64) faster than eight running
    maxima taken with NaN-aware compares, which LLVM leaves scalar."""
    row = x[i]
    top = x.dtype.type(-np.inf)
    for j in range(row.shape[0]):
        top = _max_ignoring_nan_operands(top, row[j])
    return top


@intrinsic
def wide_vectors(typingctx):
    """Marks the parallel variant of the kernel it is called in (called in a prange body: the
    function Numba outlines that body into) for LLVM's widest vectors, "prefer-vector-width"
    ="512". LLVM gives Intel's AVX-512 CPUs 256-bit vectors by default (the prefer-256-bit
    tuning). Where measured faster (docs/performance.md): softmax forward 15-25% at 128
    columns and up, the probability-form NLL forward, ELU and SoftPlus backward. Not taken:
    rows of 10-100 columns ran slower (16-lane steps leave them to scalar code: cross-entropy
    backward at 1024x100 32 -> 49 us), and so did LeakyReLU, the copies, ELU and SoftPlus
    forward. The serial variants, for small inputs, keep LLVM's default. No code is emitted,
    and on CPUs without 512-bit vectors the attribute changes nothing. llvmlite checks function
    attributes against a list of flag names, so the key-value one is added to the set itself."""
    def codegen(context, builder, signature, args):
        if "__numba_parfor_gufunc" in builder.function.name:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


# Short float32 rows. LLVM's vector loop over a row takes 64 float32 entries a step (4 vectors of
# 16) and leaves the rest to scalar code: 36 of a row of 100, whose exps then cost more than the
# other 64. A loop over range(c & SHORT_ROW_MASK) tells LLVM it runs fewer than 128 times, and
# it then takes 32 a step (softmax forward, 256 rows, serial: 100 columns 20.4 -> 14.6 us, 37
# columns 13.1 -> 9.1; tools/row_tail_variants.py). Where fewer than 32 entries would be left
# over, the long step is as fast or faster (64 columns 7.4 -> 8.8 us), and float64 (8 lanes)
# gains nothing, so those keep the plain loops. The kernels choose once per call and call an
# inlined row function twice, once with c & SHORT_ROW_MASK and once with c: each call site
# gets loops of its own.
SHORT_ROW_MASK = 127


@_jit_exact
def short_rows(x):
    """Whether the row kernels take their loops over range(c & SHORT_ROW_MASK) for x (n, c)."""
    c = x.shape[1]
    return x.itemsize == 4 and c <= SHORT_ROW_MASK and (c & 63) >= 32


@_jit_poly
def row_max_of(row, m):
    """row_max of row[:m], inlined into the caller (see SHORT_ROW_MASK)."""
    top = row.dtype.type(-np.inf)
    for j in range(m):
        top = _max_ignoring_nan_operands(top, row[j])
    return top


# log(sum(exp(row[:m] - top))) for log-softmax. In a confident row the sum is 1 (the maximum's
# exp) plus a small rest; summed with the 1 in it, the rest keeps only its bits above 1's ulp,
# and that rounding becomes the relative error of the output at the maximum, -log(sum). So the
# entries equal to the maximum are counted apart from the sum of the others' exps, and the two
# are joined by log_of_counted_total. Float32 confident rows then keep 1-3e-7 at every width;
# a float32 sum had 1-10e-5, 0.7-1.5x torch's error by width on one CPU (Intel, 256-bit
# vectors; worse at 31, 64 and 90 columns) and under torch's on another (Zen 4, 512-bit), so
# "no worse than torch" held on one machine only. Float64 keeps 5e-16 (summed with the 1,
# 2.8e-14 at 100 columns; torch 6.7e-15). Cost, serial, against a plain sum: float64 1-5%;
# float32 7% at 1000 columns, 16-36% at 10-300 (docs/accuracy.md).
@_jit_poly
def counted_exp_sum(row, top, m):
    """(ties, rest) over row[:m]: how many entries equal top, and the sum of the others'
    exp(x - top), both in the row's dtype (an integer count ran at 0.64x in float32). Two
    selects: 1.13-1.16x the speed of rest += e - tie * e, which LLVM's reassociation let put
    the 1 back in some lanes (float64: up to 289 ulp). Cross-entropy takes it, log-softmax
    the twin below that also stores row[j] - top."""
    zero, one = row.dtype.type(0), row.dtype.type(1)
    rest, ties = zero, zero
    for j in range(m):
        shifted = row[j] - top
        e = vexp_nonpositive(shifted)
        rest += e if shifted != zero else zero
        ties += one if shifted == zero else zero
    return ties, rest


@_jit_poly
def counted_exp_sum_storing_shifted(row, out, top, m):
    """counted_exp_sum(row, top, m), storing each row[j] - top in out[j] on the way:
    log-softmax's output, less log(sum), written by the pass that reads the row from memory,
    so the pass that subtracts log(sum) runs on the row in L1."""
    zero, one = row.dtype.type(0), row.dtype.type(1)
    rest, ties = zero, zero
    for j in range(m):
        shifted = row[j] - top
        out[j] = shifted
        e = vexp_nonpositive(shifted)
        rest += e if shifted != zero else zero
        ties += one if shifted == zero else zero
    return ties, rest


# Long rows' counted sums take whole blocks of 64 and then the block ending the row: with
# 512-bit vectors LLVM's loop takes 64 float32 entries a step and leaves the rest of a row to
# scalar code (40 of 1000).
_TAIL_BLOCK = 64


@_jit_poly
def _whole_blocks(m):
    """The entries of a row of m that whole blocks of 64 cover (all of a row under 64)."""
    return m - m % _TAIL_BLOCK if m >= _TAIL_BLOCK else m


@_jit_poly
def _counted_last_block(row, out, top, m, body, store):
    """counted_exp_sum over row[body:m], taken as the 64 entries ending the row, those before
    body weighted by 0 (views, so the loop indexes from 0: Numba's wrap-around of negative
    indices would keep it scalar; weights, as a condition on k left it scalar). store: as
    counted_exp_sum_storing_shifted, out[j] = row[j] - top, written again before body with
    the value it has."""
    zero, one = row.dtype.type(0), row.dtype.type(1)
    rest, ties = zero, zero
    first_new = _TAIL_BLOCK - (m - body)
    tail, tail_out = row[m - _TAIL_BLOCK:m], out[m - _TAIL_BLOCK:m]
    for k in range(_TAIL_BLOCK):
        shifted = tail[k] - top
        if store:
            tail_out[k] = shifted
        e = vexp_nonpositive(shifted)
        weight = one if k >= first_new else zero
        rest += (e if shifted != zero else zero) * weight
        ties += (one if shifted == zero else zero) * weight
    return ties, rest


@_jit_poly
def counted_exp_sum_in_blocks(row, top, m):
    """counted_exp_sum(row, top, m) in whole blocks of 64, then the block ending the row."""
    body = _whole_blocks(m)
    ties, rest = counted_exp_sum(row, top, body)
    if body < m:
        last_ties, last_rest = _counted_last_block(row, row, top, m, body, False)
        ties, rest = ties + last_ties, rest + last_rest
    return ties, rest


@_jit_poly
def counted_exp_sum_storing_shifted_in_blocks(row, out, top, m):
    """counted_exp_sum_storing_shifted(row, out, top, m) in whole blocks of 64, then the
    block ending the row."""
    body = _whole_blocks(m)
    ties, rest = counted_exp_sum_storing_shifted(row, out, top, body)
    if body < m:
        last_ties, last_rest = _counted_last_block(row, out, top, m, body, True)
        ties, rest = ties + last_ties, rest + last_rest
    return ties, rest


@_jit_exact
def log_of_counted_total(ties, rest):
    """log(ties + rest) as log1p((ties - 1) + rest), in float64: ties (the entries equal to the
    row maximum, a whole number >= 1) is exact, so for a confident row (ties = 1, rest small)
    this is log1p(rest), to an ulp. log(1 + rest) would carry the sum's rounding at the scale
    of 1 into a result of rest's size (float64 log-softmax at 100 columns: 2.8e-14 relative).
    A helper without "reassoc", which would regroup the sum as (ties + rest) - 1."""
    return np.log1p((np.float64(ties) - 1.0) + np.float64(rest))


@_jit_exact
def nll_term(x, top, log_total):
    """-log_softmax = (top - x) + log_total, in that order: with the kernels' "reassoc" flag
    LLVM may rewrite it as (top + log_total) - x, which rounds log_total to top's precision (a
    relative error of 0.3 in float32 log-softmax at logits of 1e4). This helper's instructions
    lack the flag; negating a (x - top) - log_total helper in a kernel is not enough, LLVM
    folds the negation in with the kernel's flags."""
    return (top - x) + log_total


def vsoftplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), vectorizable. For float32 the exp is
    float32 and the rest float64 with the float32-precision series, rounded once at the end:
    within torch's error at a quarter of the cost of float64 throughout."""
    return np.logaddexp(0, x)


@_jit_poly
def _softplus32(x):
    e = np.float64(_vexp_nonpositive32(-abs(x)))
    s = e / (2.0 + e)  # in float64 the rounding of 2 + e no longer matters here
    return np.float32(max(np.float64(x), 0.0) + _log1p_series32(s))


@_jit_poly
def _softplus64(x):
    return max(x, 0.0) + _log1p_series64(_atanh_argument(_vexp_nonpositive64(-abs(x)), 2.0))


_overload_by_dtype(vsoftplus, lambda x: _softplus32(x), lambda x: _softplus64(x))
