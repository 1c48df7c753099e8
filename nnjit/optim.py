"""The assignment's functional optimizers: they update the parameter arrays in place.

``variables`` and ``gradients`` are what ``getParameters()`` / ``getGradParameters()`` return:
one list per layer (from a Sequential) or a flat list of arrays. ``state`` is a dict the
optimizer keeps its buffers in, keyed by the running index of each variable.
"""
import math

import numpy as np

from . import kernels as K


def _config_values(config, keys, who):
    missing = [key for key in keys if key not in config]
    if missing:
        raise KeyError(f"{who}: config is missing {', '.join(map(repr, missing))}")
    values = []
    for key in keys:
        try:
            value = float(config[key])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{who}: config[{key!r}] must be a number, got {config[key]!r}") from exc
        if not math.isfinite(value):
            raise ValueError(f"{who}: config[{key!r}] must be finite, got {value}")
        values.append(value)
    return values


def _flatten(items, flat=None):
    """The arrays of nested lists (or tuples) of arrays, in order, as one list. Appending into
    one list: a recursive generator took half of Adam's checks (3.4 of 7.2 us, MLP of 8)."""
    if flat is None:
        flat = []
    for item in items:
        if isinstance(item, (list, tuple)):
            _flatten(item, flat)
        else:
            flat.append(item)
    return flat


def _pairs(variables, gradients, who):
    """[(index, variable, gradient)] as flat views, all checked before any is updated: the
    variable updated in place, the gradient cast to its dtype."""
    variables, gradients = _flatten(variables), _flatten(gradients)
    if len(variables) != len(gradients):
        raise ValueError(f"{who}: {len(variables)} variables but {len(gradients)} gradients")
    pairs = []
    for index, (var, grad) in enumerate(zip(variables, gradients)):
        if not isinstance(var, np.ndarray) or var.dtype.kind != "f" or var.dtype.itemsize < 4:
            raise TypeError(f"{who}: variable {index} must be a float32 or float64 array, "
                            f"got {getattr(var, 'dtype', type(var).__name__)}")
        flags = var.flags
        if not (flags.c_contiguous and flags.writeable):
            raise ValueError(f"{who}: variable {index} must be a writable C-contiguous array "
                             "(it is updated in place)")
        usual = type(grad) is np.ndarray and grad.dtype is var.dtype and grad.flags.c_contiguous
        if not usual:
            grad = np.asarray(grad)
            if grad.dtype.kind != "f":
                raise TypeError(f"{who}: gradient {index} must be a float array, got {grad.dtype}")
        if grad.shape != var.shape:
            raise ValueError(f"{who}: gradient {index} has shape {grad.shape}, "
                             f"its variable {var.shape}")
        if not usual:
            grad = np.ascontiguousarray(grad, dtype=var.dtype)
        # ravel: a view of these C-contiguous arrays (the variable is updated through it), at
        # half reshape(-1)'s cost
        pairs.append((index, var.ravel(), grad.ravel()))
    return pairs


def _per_dtype(make):
    """dtype -> make(dtype.type), made once per dtype: the kernels' scalar arguments, cast for
    the first variable of each dtype (0.2 us a cast, six per Adam variable before)."""
    made = {}

    def scalars(dtype):
        values = made.get(dtype)
        if values is None:
            values = made[dtype] = make(dtype.type)
        return values
    return scalars


def _slot(store, index, like):
    buffer = store.get(index)
    if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
        buffer = store[index] = np.zeros_like(like)
    return buffer


def sgd_momentum(variables, gradients, config, state):
    """``acc = momentum * acc + learning_rate * grad; var -= acc`` for every variable;
    config: learning_rate, momentum; state['accumulated_grads'][i] holds acc."""
    learning_rate, momentum = _config_values(config, ("learning_rate", "momentum"), "sgd_momentum")
    pairs = _pairs(variables, gradients, "sgd_momentum")
    accumulated = state.setdefault("accumulated_grads", {})
    scalars = _per_dtype(lambda cast: (cast(learning_rate), cast(momentum)))
    for index, var, grad in pairs:
        K.sgd_momentum_step(var, grad, _slot(accumulated, index, var), *scalars(var.dtype))


def adam_optimizer(variables, gradients, config, state):
    """Adam with the bias correction folded into the step size:
    ``lr_t = learning_rate * sqrt(1 - beta2**t) / (1 - beta1**t)``,
    ``var -= lr_t * m / (sqrt(v) + epsilon)``; config: learning_rate, beta1, beta2, epsilon;
    state: 'm', 'v' (dicts keyed by variable index) and the step count 't'."""
    learning_rate, beta1, beta2, epsilon = _config_values(
        config, ("learning_rate", "beta1", "beta2", "epsilon"), "adam_optimizer")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"adam_optimizer: beta1 and beta2 must be in [0, 1), got {beta1}, {beta2}")
    pairs = _pairs(variables, gradients, "adam_optimizer")
    first, second = state.setdefault("m", {}), state.setdefault("v", {})
    state["t"] = state.get("t", 0) + 1
    t = state["t"]
    step_size = learning_rate * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    scalars = _per_dtype(lambda cast: (cast(step_size), cast(beta1), cast(beta2), cast(epsilon),
                                       cast(1 - beta1), cast(1 - beta2)))
    for index, var, grad in pairs:
        K.adam_step(var, grad, _slot(first, index, var), _slot(second, index, var),
                    *scalars(var.dtype))
