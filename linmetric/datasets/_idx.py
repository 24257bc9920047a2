"""Reader and writer for the IDX format of the MNIST family of data sets.

An IDX file is a 4-byte magic number (two zero bytes, a type code and the
number of dimensions), one big-endian 32-bit size per dimension, then the
values in row-major order. Files ending in ``.gz`` are read and written
through gzip.
"""

import gzip
import os

import numpy as np

# IDX type code -> big-endian NumPy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


def _open(path, mode):
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, mode)
    return open(path, mode)


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a NumPy array.

    Parameters
    ----------
    path : str or path-like
        The file to read. A name ending in ``.gz`` is decompressed on the fly.

    Returns
    -------
    array : ndarray
        The values, in native byte order, with the shape stored in the header
        (for example ``(60000, 28, 28)`` uint8 for MNIST training images).

    Raises
    ------
    ValueError
        If the header is malformed or the file is shorter or longer than the
        header announces.

    References
    ----------
    .. [1] Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of
       handwritten digits", file formats section.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from linmetric.datasets import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "labels-idx1-ubyte")
    ...     write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    ...     read_idx(path)
    array([3, 1, 4], dtype=uint8)
    """
    with _open(path, "rb") as stream:
        data = stream.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{os.fspath(path)!r} is not an IDX file: it must start with two zero "
            f"bytes, got {data[:4]!r}."
        )
    type_code, n_dims = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(
            f"{os.fspath(path)!r} has IDX type code 0x{type_code:02x}; the known "
            f"codes are {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}."
        )
    header_size = 4 + 4 * n_dims
    if len(data) < header_size:
        raise ValueError(
            f"{os.fspath(path)!r} is truncated: its header announces {n_dims} "
            f"dimensions but the file has only {len(data)} bytes."
        )
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", n_dims, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = header_size + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(
            f"{os.fspath(path)!r} has {len(data)} bytes but its header (shape "
            f"{shape}, {dtype.name}) requires exactly {expected}; the file is "
            "truncated or corrupt."
        )
    values = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write an array to an IDX file (gzipped when the name ends in ``.gz``).

    Parameters
    ----------
    path : str or path-like
        The file to write.
    array : array-like
        Values of dtype uint8, int8, int16, int32, float32 or float64.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from linmetric.datasets import read_idx, write_idx
    >>> images = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "images-idx3-ubyte.gz")
    ...     write_idx(path, images)
    ...     bool(np.array_equal(read_idx(path), images))
    True
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(
            f"array has dtype {array.dtype}; IDX stores only uint8, int8, int16, "
            "int32, float32 and float64."
        )
    code = _IDX_CODES[native]
    header = (
        bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    )
    with _open(path, "wb") as stream:
        stream.write(header)
        stream.write(np.ascontiguousarray(array, _IDX_DTYPES[code]).tobytes())
