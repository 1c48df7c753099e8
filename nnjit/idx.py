"""The IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/), plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the data, big-endian, row-major.
"""
import gzip
import os

import numpy as np

_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

# (role, file name stem): the four files of MNIST, and of Fashion-MNIST, which uses the same.
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


class IDXError(ValueError):
    """An IDX file that is corrupt, truncated or does not fit its partner file."""


def read_idx(path):
    """The array stored in IDX file ``path`` (``.gz`` is decompressed), in native byte order."""
    name = os.fspath(path)
    try:
        if name.endswith(".gz"):
            with gzip.open(name, "rb") as stream:
                raw = stream.read()
        else:
            with open(name, "rb") as stream:
                raw = stream.read()
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise IDXError(f"{name}: cannot be decompressed ({exc})") from exc
    if len(raw) < 4:
        raise IDXError(f"{name}: {len(raw)} bytes, too short for an IDX header")
    zero1, zero2, type_code, ndim = raw[:4]
    if zero1 or zero2 or type_code not in _TYPES:
        raise IDXError(f"{name}: not an IDX file (magic number {raw[:4].hex()})")
    if ndim == 0:
        raise IDXError(f"{name}: an IDX file with 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{name}: truncated header ({len(raw)} bytes, {header} needed for "
                       f"{ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = _TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise IDXError(f"{name}: truncated: shape {shape} needs {expected} bytes of data, "
                       f"the file has {found}")
    if found > expected:
        raise IDXError(f"{name}: {found - expected} bytes after the data of shape {shape}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder, stem):
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                      stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{folder}: no {stem} file (plain or .gz)")


def _images_and_labels(images_path, labels_path):
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(f"{images_path}: expected uint8 images (count, rows, columns), got "
                       f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IDXError(f"{labels_path}: expected uint8 labels (count,), got "
                       f"{labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of "
                       f"{images_path}")
    return (images.reshape(len(images), -1) / np.float32(255)).astype(np.float32), \
        labels.astype(np.int64)


def load_mnist(folder):
    """(x_train, y_train, x_test, y_test) from the four MNIST files in ``folder``: images
    flattened and scaled to [0, 1] (float32), labels int64."""
    paths = {role: _find(folder, stem) for role, stem in MNIST_FILES.items()}
    x_train, y_train = _images_and_labels(paths["train_images"], paths["train_labels"])
    x_test, y_test = _images_and_labels(paths["test_images"], paths["test_labels"])
    if x_train.shape[1] != x_test.shape[1]:
        raise IDXError(f"{paths['test_images']}: images of {x_test.shape[1]} pixels, the "
                       f"training images have {x_train.shape[1]}")
    return x_train, y_train, x_test, y_test


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in .gz); for tests and tools."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _TYPES.items()}
    code = codes[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as out:
        out.write(data)
