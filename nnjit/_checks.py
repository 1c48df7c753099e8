"""Input checks at the module boundary: every kernel receives C-contiguous float32 or float64
arrays of the shapes it expects, so kernels never bounds-check and never read memory wrongly."""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_array(value, who, what):
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{who}: {what} must be an array, got {type(value).__name__} ({exc})") from exc


_FLOAT32, _FLOAT64 = FLOAT_DTYPES


def float_array(value, who, what="input", dtype=None):
    """value as a C-contiguous float array: in its own dtype (float32 or float64) when dtype is
    None, else cast to dtype from any floating dtype. Anything else is a TypeError."""
    if type(value) is np.ndarray and value.flags.c_contiguous:
        # the usual case, without a call into NumPy (a third of a 64x10 layer's Python time
        # went to this function and buffer); native float32/float64 dtypes are singletons
        kind = value.dtype
        if kind is dtype or dtype is None and (kind is _FLOAT32 or kind is _FLOAT64):
            return value
    array = _as_array(value, who, what)
    if dtype is None:
        if array.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{who}: {what} must be a float32 or float64 array, got dtype {array.dtype}")
    elif array.dtype.kind != "f":
        raise TypeError(f"{who}: {what} must be a floating-point array, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def require_ndim(array, ndim, who, what="input", meaning="(batch, features)"):
    if array.ndim != ndim:
        raise ValueError(f"{who}: {what} must be {ndim}-D {meaning}, got shape {array.shape}")


def require_shape(array, shape, who, what):
    if array.shape != tuple(shape):
        raise ValueError(f"{who}: {what} must have shape {tuple(shape)}, got {array.shape}")


def grad_output_array(value, shape, dtype, who):
    """gradOutput as a C-contiguous array of the computing dtype with the forward output's shape."""
    grad = float_array(value, who, "gradOutput", dtype=dtype)
    require_shape(grad, shape, who, "gradOutput (the shape of the output)")
    return grad


def apart(array, other):
    """Whether two arrays certainly do not overlap: two arrays that each own their memory do
    not, and only views need NumPy's bounds check (0.2 us)."""
    return array is not other and (array.flags.owndata and other.flags.owndata
                                   or not np.may_share_memory(array, other))


def buffer(current, shape, dtype, avoid=None):
    """Reuse ``current`` when it has this shape and dtype, is C-contiguous (a hand-set buffer
    may not be), and does not overlap ``avoid`` (the input, when a caller feeds a module its
    own output); else a new array."""
    if current is not None and current.shape == tuple(shape) and current.dtype == dtype \
            and current.flags.c_contiguous:
        # apart(current, avoid), written out: every module call passes here
        if avoid is None or avoid is not current and avoid.flags.owndata \
                and current.flags.owndata or not np.may_share_memory(current, avoid):
            return current
    return np.empty(shape, dtype=dtype)


def fits(array, buffer):
    """Whether ``array`` can go to a kernel as it is, beside ``buffer``, the last call's array
    that the kernel writes: the usual call of a layer, checked here without float_array's and
    buffer's NumPy calls (they were 0.6 of a 1.7 us forward at 64x10). True when array is an
    ndarray of buffer's shape and float dtype, both are C-contiguous, and both own their
    memory (so they cannot overlap) without being the same array."""
    if type(array) is not np.ndarray or buffer is None or array is buffer:
        return False
    dtype = buffer.dtype
    if array.dtype is not dtype or dtype is not _FLOAT32 and dtype is not _FLOAT64 \
            or array.shape != buffer.shape:
        return False
    flags, buffer_flags = array.flags, buffer.flags
    return flags.c_contiguous and flags.owndata and buffer_flags.c_contiguous \
        and buffer_flags.owndata


def probability(value, who, name="p"):
    try:
        p = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{who}: {name} must be a number in [0, 1], got {value!r}") from exc
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{who}: {name} must be in [0, 1], got {value!r}")
    return p


def finite_number(value, who, name):
    """value as a float, or an error naming the layer and its parameter: TypeError for what is
    not a number, ValueError for inf and NaN (a NaN slope would make every output it touches
    NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{who}: {name} must be a number, got {value!r}") from exc
    if not np.isfinite(number):
        raise ValueError(f"{who}: {name} must be finite, got {value!r}")
    return number


def short_number(value):
    """value as a repr shows a layer's number (``%g``), or as Python shows it when it is not a
    number (a reassigned attribute): an error message naming the layer must not fail itself."""
    try:
        return format(value, "g")
    except (TypeError, ValueError):
        return repr(value)


def positive_int(value, who, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


# NumPy's own float32 and float64 dtype objects, by any dtype equal to them. Pickling and
# copy.deepcopy make new dtype objects, equal but not these: the per-call fast paths compare
# dtypes by identity, and a model restored from a pickle or a deep copy missed every one
# (forward and backward of a 64x20 MLP: 53 against 44 us).
_NUMPYS_OWN = {dtype: dtype for dtype in FLOAT_DTYPES}


def numpys_own(value):
    """value with NumPy's own float32 or float64 dtype object where it is such a dtype, or an
    array of one, made anew (an array is copied); anything else as it is."""
    if isinstance(value, np.dtype):
        return _NUMPYS_OWN.get(value, value)
    if type(value) is np.ndarray:
        own = _NUMPYS_OWN.get(value.dtype)
        if own is not None and value.dtype is not own:
            return value.astype(own)
    return value


def param_dtype(dtype, who):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dtype}")
    return _NUMPYS_OWN[dtype]
