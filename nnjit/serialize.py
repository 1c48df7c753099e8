"""``nnjit.save`` / ``nnjit.load``: a model's weights, batch-norm statistics and optimizer state
in one ``.npz`` file, read back with ``allow_pickle=False``.

Keys: ``model/<path>/<name>`` for each array of each module (``<path>`` is the child index in
Sequential containers, ``2.0`` for a nested one), ``optimizer/<slot>/<index>`` for the
optimizer's per-variable buffers and ``optimizer/t`` for Adam's step count, ``format``.
Loading checks every key, shape and dtype against the model before it writes anything, and
writes into the existing arrays, so optimizers and other references stay valid.
"""
import os
import tempfile

import numpy as np

from .containers import Sequential
from .module import Module
from .optim import _flatten

FORMAT = "nnjit-1"


class StateFileError(ValueError):
    """The file cannot be read, or does not match the model."""


def _module_arrays(module, path):
    """(key, owner, attribute name or parameter index, array or None) for each array the
    module keeps: the attributes a layer names in ``_state_names`` (None for statistics not
    created yet), else its getParameters() in order."""
    if isinstance(module, Sequential):
        for index, child in enumerate(module):
            yield from _module_arrays(child, f"{path}{index}." if path else f"{index}.")
        return
    where = f"model/{path.rstrip('.') or 'root'}"
    names = getattr(module, "_state_names", None)
    if names:
        for name in names:
            yield f"{where}/{name}", module, name, getattr(module, name)
    else:
        for index, array in enumerate(module.getParameters()):
            yield f"{where}/param{index}", module, index, array


def _flat_parameters(model):
    return list(_flatten(model.getParameters()))


def save(path, model, optimizer_state=None):
    """Write ``model``'s arrays (and ``optimizer_state``, the dict an nnjit optimizer fills)
    to ``path`` (.npz). The file is written whole or not at all."""
    if not isinstance(model, Module):
        raise TypeError(f"nnjit.save: expected a Module, got {type(model).__name__}")
    arrays = {"format": np.array(FORMAT)}
    for key, _, _, array in _module_arrays(model, ""):
        if array is not None:  # BatchNormalization before its first batch has no statistics
            arrays[key] = np.asarray(array)
    for slot, value in (optimizer_state or {}).items():
        if isinstance(value, dict):
            for index, array in value.items():
                arrays[f"optimizer/{slot}/{int(index)}"] = np.asarray(array)
        else:
            arrays[f"optimizer/{slot}"] = np.asarray(value)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".npz", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise StateFileError(f"nnjit.load: {path} is not a readable .npz file ({exc})") from exc


def load(path, model):
    """Read ``path`` (written by ``nnjit.save``) into ``model``'s arrays in place. Returns the
    optimizer state saved with it (a dict to pass to the optimizer; empty if none). Refuses,
    changing nothing, a file whose keys, shapes or dtypes do not match the model."""
    if not isinstance(model, Module):
        raise TypeError(f"nnjit.load: expected a Module, got {type(model).__name__}")
    data = _read(path)
    if str(data.pop("format", "")) != FORMAT:
        raise StateFileError(f"nnjit.load: {path} is not an nnjit state file (no '{FORMAT}' mark)")
    plan, problems = [], []
    expected = set()
    for key, owner, name, array in _module_arrays(model, ""):
        expected.add(key)
        if key not in data:
            if array is not None:
                problems.append(f"{key} is missing from the file")
            continue
        saved = data[key]
        if array is None:  # statistics the model has not created yet: shape from the file
            if saved.ndim != 1 or saved.dtype.kind != "f":
                problems.append(f"{key}: expected a 1-D float array, got {saved.dtype} {saved.shape}")
        elif saved.shape != array.shape or saved.dtype != array.dtype:
            problems.append(f"{key}: the file has {saved.dtype} {saved.shape}, the model "
                            f"{array.dtype} {array.shape}")
        plan.append((owner, name, array, saved))
    extra = sorted(k for k in data if k.startswith("model/") and k not in expected)
    problems += [f"{key} is in the file but not in the model" for key in extra]
    optimizer_state = _optimizer_state(data, _flat_parameters(model), problems)
    if problems:
        raise StateFileError(f"nnjit.load: {path} does not match {model!r}:\n  "
                             + "\n  ".join(problems))
    for owner, name, array, saved in plan:
        if array is None:
            setattr(owner, name, saved.copy())
        else:
            np.copyto(array, saved)
    return optimizer_state


def _optimizer_state(data, parameters, problems):
    state = {}
    for key, value in data.items():
        if not key.startswith("optimizer/"):
            continue
        parts = key.split("/")
        if len(parts) == 2:
            state[parts[1]] = value.item() if value.ndim == 0 else value
            continue
        slot, index = parts[1], int(parts[2])
        if index >= len(parameters) or value.size != parameters[index].size \
                or value.dtype != parameters[index].dtype:
            problems.append(f"{key}: {value.dtype} {value.shape} does not fit the model's "
                            f"parameter {index}")
            continue
        state.setdefault(slot, {})[index] = value.copy()
    return state
