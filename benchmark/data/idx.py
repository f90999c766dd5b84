"""The IDX file format of MNIST-family datasets, for unsigned-byte arrays.

An IDX file is a 4-byte magic number (0, 0, type 0x08 = unsigned byte, number of dimensions),
one big-endian uint32 per dimension, then the payload in C order. Format:
http://yann.lecun.com/exdb/mnist/ (section "the IDX file format").
"""

import numpy as np

UBYTE = 0x08


def header_size(ndim: int) -> int:
    """Bytes before the payload: the magic number and one uint32 per dimension."""
    return 4 + 4 * ndim


def file_size(shape: tuple[int, ...]) -> int:
    """Bytes of the IDX file of a uint8 array of ``shape``."""
    return header_size(len(shape)) + int(np.prod(shape))


def encode(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX encoding here is for uint8 arrays, got {array.dtype}")
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return bytes([0, 0, UBYTE, array.ndim]) + dims + np.ascontiguousarray(array).tobytes()


def decode(data: bytes) -> np.ndarray:
    """The uint8 array in IDX bytes; ValueError says what is malformed."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an IDX file (bad magic number)")
    if data[2] != UBYTE:
        raise ValueError(f"IDX element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    if len(data) < header_size(ndim):
        raise ValueError("truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size(ndim) + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, np.uint8, offset=header_size(ndim)).reshape(shape)
