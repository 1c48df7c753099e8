"""The IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/), plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the data, big-endian, row-major.
"""
import gzip
import math
import os
import zlib

import numpy as np

_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

# (role, file name stem): the four files of MNIST, and of Fashion-MNIST, which uses the same.
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


class IDXError(ValueError):
    """An IDX file that is corrupt, truncated or does not fit its partner file."""


# Deflate cannot expand data more than about 1032 times: a .gz whose header declares more data
# than that is refused before anything is decompressed.
_MAX_GZIP_RATIO = 1100
_MAX_DIMENSIONS = 32  # NumPy 1.x's limit
_CHUNK = 1 << 24  # decompressed in 16 MB pieces, straight into the array


def _read_exactly(stream, size, name, what):
    data = stream.read(size)
    if len(data) < size:
        raise IDXError(f"{name}: truncated {what} ({len(data)} of {size} bytes)")
    return data


def read_idx(path):
    """The array stored in IDX file ``path`` (``.gz`` is decompressed), in native byte order.

    Memory is bounded by the file itself: the header is read first and at most the data it
    declares (plus one byte, to detect trailing data) is read or decompressed; a plain file
    whose size disagrees with its header, or a .gz declaring more than deflate can hold, is
    refused before any data is read. Corrupt, truncated or inconsistent files raise IDXError;
    a missing or unreadable file raises the OSError."""
    name = os.fspath(path)
    gzipped = name.endswith(".gz")
    try:
        with open(name, "rb") as raw_file:
            file_size = os.fstat(raw_file.fileno()).st_size
            stream = gzip.GzipFile(fileobj=raw_file, mode="rb") if gzipped else raw_file
            return _read_stream(stream, name, file_size, gzipped)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IDXError(f"{name}: cannot be decompressed ({exc})") from exc


def _read_stream(stream, name, file_size, gzipped):
    magic = stream.read(4)
    if len(magic) < 4:
        raise IDXError(f"{name}: {len(magic)} bytes, too short for an IDX header")
    zero1, zero2, type_code, ndim = magic
    if zero1 or zero2 or type_code not in _TYPES:
        raise IDXError(f"{name}: not an IDX file (magic number {magic.hex()})")
    if not 1 <= ndim <= _MAX_DIMENSIONS:
        raise IDXError(f"{name}: an IDX file with {ndim} dimensions (nnjit reads 1 to "
                       f"{_MAX_DIMENSIONS})")
    header = 4 + 4 * ndim
    dims = _read_exactly(stream, 4 * ndim, name, f"header of {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(dims, ">u4"))
    dtype = _TYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no wrap-around
    if not gzipped and file_size - header != expected:
        what = "truncated" if file_size - header < expected else \
            f"{file_size - header - expected} bytes after the data"
        raise IDXError(f"{name}: {what}: shape {shape} needs {expected} bytes of data, the "
                       f"file has {file_size - header}")
    if gzipped and expected > _MAX_GZIP_RATIO * max(file_size, 1):
        raise IDXError(f"{name}: its header declares shape {shape} ({expected} bytes), more "
                       f"than a .gz of {file_size} bytes can hold")
    data = np.empty(expected, np.uint8)  # pages are only committed as the data arrives
    view, filled = memoryview(data), 0
    while filled < expected:
        got = stream.readinto(view[filled:filled + _CHUNK])
        if not got:
            raise IDXError(f"{name}: truncated: shape {shape} needs {expected} bytes of data, "
                           f"the file has {filled}")
        filled += got
    if stream.read(1):
        raise IDXError(f"{name}: more data after the {expected} bytes of shape {shape}")
    return data.view(dtype).reshape(shape).astype(dtype.newbyteorder("="))


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
    if len(images) == 0:
        raise IDXError(f"{images_path}: holds no images")
    if len(images) != len(labels):
        raise IDXError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of "
                       f"{images_path}")
    pixels = images.reshape(len(images), -1).astype(np.float32)
    pixels /= np.float32(255)  # in float32: a float64 temporary would be 8 bytes per pixel
    return pixels, labels.astype(np.int64)


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
