"""``nnjit.save`` / ``nnjit.load``: a model's weights, batch-norm statistics and optimizer state
in one ``.npz`` file, read back with ``allow_pickle=False``.

Keys: ``model/<path>/<name>`` for each array of each module (``<path>`` is the child index in
Sequential containers, ``2.0`` for a nested one), ``optimizer/<slot>/<index>`` for the
optimizer's per-variable buffers and ``optimizer/t`` for Adam's step count, ``format``.
Loading checks every key, shape and dtype against the model before it writes anything, and
writes into the existing arrays, so optimizers and other references stay valid.
"""
import contextlib
import os
import secrets
import stat
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from .containers import Sequential
from .module import Module
from .optim import _flatten

FORMAT = "nnjit-1"
# optimizer/<slot>/<index>: the per-parameter buffers of each optimizer, and which optimizer
# the slot belongs to; Adam also keeps optimizer/t, its step count.
OPTIMIZER_SLOTS = {"m": "adam_optimizer", "v": "adam_optimizer",
                   "accumulated_grads": "sgd_momentum"}
_MAX_DEFLATE_RATIO = 1100  # deflate expands at most ~1032 times


class StateFileError(ValueError):
    """The file cannot be read, or does not match the model."""


def _module_arrays(module, path, width=None):
    """(key, owner, attribute name or parameter index, array or None, expected shape or None)
    for each array the module keeps: the attributes a layer names in ``_state_names`` (None
    for statistics not created yet, whose shape is (width,) when the layer's neighbours fix
    it), else its getParameters() in order."""
    if isinstance(module, Sequential):
        children = list(module)
        for index, child in enumerate(children):
            yield from _module_arrays(child, f"{path}{index}." if path else f"{index}.",
                                      _neighbour_width(children, index))
        return
    where = f"model/{path.rstrip('.') or 'root'}"
    names = getattr(module, "_state_names", None)
    if names:
        for name in names:
            array = getattr(module, name)
            shape = array.shape if array is not None else None if width is None else (width,)
            yield f"{where}/{name}", module, name, array, shape
    else:
        for index, array in enumerate(module.getParameters()):
            yield f"{where}/param{index}", module, index, array, array.shape


def _neighbour_width(children, index):
    """The feature width at children[index], a module that keeps its input's width, from the
    nearest module after it (or else before it) that fixes a width, looking only through
    modules that keep the width; None if nothing fixes it."""
    if not children[index]._keeps_width:
        return None
    for neighbours, side in ((children[index + 1:], 0), (children[index - 1::-1] if index else [], 1)):
        for module in neighbours:
            widths = module._widths()
            if widths is not None:
                return widths[side]
            if not module._keeps_width:
                break
    return None


def _flat_parameters(model):
    return list(_flatten(model.getParameters()))


def save(path, model, optimizer_state=None):
    """Write ``model``'s arrays (and ``optimizer_state``, the dict an nnjit optimizer fills)
    to ``path`` (.npz). The file is written whole or not at all, even across a power cut: the
    data go to ``.<name>.partial-<random>`` beside it, are flushed to disk, then renamed over
    ``path``. An existing file keeps its permissions; a new one gets the usual ones (umask)."""
    if not isinstance(model, Module):
        raise TypeError(f"nnjit.save: expected a Module, got {type(model).__name__}")
    arrays = {"format": np.array(FORMAT)}
    for key, _, _, array, _ in _module_arrays(model, ""):
        if array is not None:  # BatchNormalization before its first batch has no statistics
            arrays[key] = np.asarray(array)
    for slot, value in (optimizer_state or {}).items():
        if isinstance(value, dict):
            for index, array in value.items():
                arrays[f"optimizer/{slot}/{int(index)}"] = np.asarray(array)
        else:
            arrays[f"optimizer/{slot}"] = np.asarray(value)
    path = os.fspath(path)
    handle, temporary = _create_partial(path)
    folder = os.path.dirname(temporary)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Makes the rename itself durable (where the platform allows opening a folder)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _create_partial(path):
    """(open handle, name) of a new ``.<name>.partial-<random>`` beside path, after checking
    that path can be written: not a folder, in an existing folder, not a read-only file.
    Raises OSError naming the path or folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a file name")
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no folder {folder} for {path}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"{path} is not writable")
    temporary = os.path.join(folder, f".{name}.partial-{secrets.token_hex(4)}")
    try:  # 0o666 through the umask, as open() would create the file
        return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
    except OSError as exc:
        raise type(exc)(f"cannot write in {folder} ({exc.strerror or exc})") from None


def check_writable(path):
    """Raises OSError (naming the path) unless ``save`` can write ``path``: a file (or no
    file yet) in an existing folder where a new file can be created. Leaves nothing behind."""
    handle, temporary = _create_partial(os.fspath(path))
    os.close(handle)
    os.unlink(temporary)


class _Archive:
    """The members of an .npz, each read only when asked for, after its .npy header (shape,
    dtype) has been checked against what the caller expects and against the member's size:
    a header claiming gigabytes over a small body is refused before anything is allocated."""

    def __init__(self, path):
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self.archive_size = os.path.getsize(path)
        self.members = {}
        self._headers = {}  # key -> (shape, dtype), each member's header read once
        for info in self.zip.infolist():
            if info.filename.endswith(".npy"):
                self.members[info.filename[:-4]] = info

    def close(self):
        self.zip.close()

    def header(self, key):
        """(shape, dtype) from member key's .npy header; raises StateFileError."""
        if key not in self._headers:
            self._headers[key] = self._checked_header(key)
        return self._headers[key]

    def _checked_header(self, key):
        info = self.members[key]
        with self.zip.open(info) as member:
            shape, dtype, offset = self._header(member, key)
        data_size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        stored = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
            else info.compress_size * _MAX_DEFLATE_RATIO
        if offset + data_size != info.file_size or info.file_size > max(stored, 0) \
                or info.compress_size > self.archive_size:
            raise StateFileError(f"{key}: its header declares {dtype} {shape} "
                                 f"({data_size} bytes), the member holds {info.file_size - offset}")
        return shape, dtype

    @staticmethod
    def _header(member, key):
        try:
            version = npy_format.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(member)
            else:
                raise ValueError(f".npy version {version} is not supported")
        except (ValueError, EOFError, SyntaxError, TypeError) as exc:
            raise StateFileError(f"{key}: not an .npy array ({exc})") from None
        if dtype.hasobject or fortran:
            raise StateFileError(f"{key}: holds {'objects' if dtype.hasobject else 'a Fortran-order array'}, "
                                 "which nnjit never writes")
        return shape, dtype, member.tell()

    def read(self, key):
        """The array of member key (its header already checked); the member's CRC is checked."""
        with self.zip.open(self.members[key]) as member:
            array = npy_format.read_array(member, allow_pickle=False)
            if member.read(1):
                raise StateFileError(f"{key}: data after the array")
        return array


def load(path, model):
    """Read ``path`` (written by ``nnjit.save``) into ``model``'s arrays in place. Returns the
    optimizer state saved with it (a dict to pass to the optimizer; empty if none).

    Refuses, changing nothing, a file whose keys, shapes or dtypes do not match the model, or
    whose optimizer state is incomplete, of the wrong shapes or not finite. Reads only the
    members the model and the optimizer state need, each after its header was checked, so
    memory stays within the size of the model's own arrays whatever the file holds."""
    if not isinstance(model, Module):
        raise TypeError(f"nnjit.load: expected a Module, got {type(model).__name__}")
    path = os.fspath(path)
    try:
        archive = _Archive(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise StateFileError(f"nnjit.load: {path} is not a readable .npz file ({exc})") from None
    try:
        return _load(archive, path, model)
    except StateFileError as exc:
        if str(exc).startswith("nnjit.load:"):
            raise
        raise StateFileError(f"nnjit.load: {path}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise StateFileError(f"nnjit.load: {path} is corrupt ({type(exc).__name__}: {exc})") from None
    finally:
        archive.close()


def _load(archive, path, model):
    for key in archive.members:  # headers only (small): objects or lying sizes anywhere refuse
        archive.header(key)
    if "format" not in archive.members:
        raise StateFileError(f"nnjit.load: {path} is not an nnjit state file (no '{FORMAT}' mark)")
    shape, dtype = archive.header("format")
    if shape != () or dtype.kind != "U" or str(archive.read("format")) != FORMAT:
        raise StateFileError(f"nnjit.load: {path} is not an nnjit state file (no '{FORMAT}' mark)")
    plan, problems, expected = [], [], set()
    for key, owner, name, array, want_shape in _module_arrays(model, ""):
        expected.add(key)
        if key not in archive.members:
            if array is not None:
                problems.append(f"{key} is missing from the file")
            continue
        shape, dtype = archive.header(key)
        if array is None:  # statistics the model has not created yet
            if len(shape) != 1 or dtype.kind != "f" or dtype.itemsize not in (4, 8) \
                    or want_shape is not None and shape != want_shape:
                wanted = f"float {want_shape}" if want_shape else "a 1-D float array"
                problems.append(f"{key}: the file has {dtype} {shape}, the model needs {wanted}")
                continue
        elif shape != array.shape or dtype != array.dtype:
            problems.append(f"{key}: the file has {dtype} {shape}, the model "
                            f"{array.dtype} {array.shape}")
            continue
        plan.append((key, owner, name, array))
    extra = sorted(k for k in archive.members if k.startswith("model/") and k not in expected)
    problems += [f"{key} is in the file but not in the model" for key in extra]
    parameters = _flat_parameters(model)
    optimizer_keys = _optimizer_plan(archive, parameters, problems)
    if problems:
        raise StateFileError(f"nnjit.load: {path} does not match {model!r}:\n  "
                             + "\n  ".join(problems))
    values = {key: archive.read(key) for key, _, _, _ in plan}
    statistics = [values[key] for key, owner, name, array in plan if array is None and
                  name in ("moving_mean", "moving_variance")]
    if len({v.shape for v in statistics}) > 1:
        raise StateFileError(f"nnjit.load: {path}: moving statistics of different lengths")
    state = _read_optimizer_state(archive, optimizer_keys, parameters)
    for key, owner, name, array in plan:  # everything read and checked: now write
        if array is None:
            setattr(owner, name, values[key].copy())
        else:
            np.copyto(array, values[key])
    return state


def _optimizer_plan(archive, parameters, problems):
    """The optimizer members to read: {key: (slot, index or None)}, after checking their keys
    and headers; appends what is wrong to problems."""
    plan, slots = {}, {}
    for key in sorted(k for k in archive.members if k.startswith("optimizer/")):
        parts = key.split("/")
        if parts == ["optimizer", "t"]:
            shape, dtype = archive.header(key)
            if shape != () or dtype.kind not in "iu":
                problems.append(f"{key}: the step count must be an integer, got {dtype} {shape}")
            else:
                plan[key] = ("t", None)
            continue
        if len(parts) != 3 or parts[1] not in OPTIMIZER_SLOTS \
                or not parts[2].isdigit() or not parts[2].isascii():
            problems.append(f"{key}: not an optimizer buffer nnjit knows (optimizer/<slot>/<index>,"
                            f" slots {', '.join(OPTIMIZER_SLOTS)}; or optimizer/t)")
            continue
        slot, index = parts[1], int(parts[2])
        if index >= len(parameters):
            problems.append(f"{key}: the model has {len(parameters)} parameters")
            continue
        shape, dtype = archive.header(key)
        parameter = parameters[index]
        if shape != (parameter.size,) or dtype != parameter.dtype:
            problems.append(f"{key}: {dtype} {shape} does not fit the model's parameter {index} "
                            f"({parameter.dtype}, {parameter.size} values, kept flat)")
            continue
        plan[key] = (slot, index)
        slots.setdefault(slot, set()).add(index)
    for slot, indices in slots.items():
        missing = sorted(set(range(len(parameters))) - indices)
        if missing:
            problems.append(f"optimizer/{slot}: no buffer for parameter(s) {missing[:5]}: "
                            "the optimizer state must cover every parameter")
    adam = {"m", "v", "t"} & ({slot for slot, _ in plan.values()})
    if adam and adam != {"m", "v", "t"}:
        problems.append(f"optimizer: Adam's state needs m, v and t; the file has "
                        f"{', '.join(sorted(adam))}")
    return plan


def _read_optimizer_state(archive, plan, parameters):
    state = {}
    for key, (slot, index) in plan.items():
        value = archive.read(key)
        if slot == "t":
            if value < 0:
                raise StateFileError(f"{key}: the step count must be 0 or more, got {value}")
            state["t"] = int(value)
            continue
        if not np.isfinite(value).all():
            raise StateFileError(f"{key}: holds NaN or infinite values")
        if slot == "v" and (value < 0).any():
            raise StateFileError(f"{key}: Adam's second moments must be non-negative")
        state.setdefault(slot, {})[index] = value
    return state
