"""The IDX file format of MNIST-family datasets, for unsigned-byte arrays, and atomic writes.

An IDX file is a 4-byte magic number (0, 0, type 0x08 = unsigned byte, number of dimensions),
one big-endian uint32 per dimension, then the payload in C order. Format:
http://yann.lecun.com/exdb/mnist/ (section "the IDX file format").
"""

import os
import socket
from pathlib import Path

import numpy as np

from benchmark.faults import fault_point

UBYTE = 0x08


HOST = socket.gethostname().replace(".", "_")  # in temporary names: no dots, one field


def header_size(ndim: int) -> int:
    """Bytes before the payload: the magic number and one uint32 per dimension."""
    return 4 + 4 * ndim


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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, and the
    file is renamed into place (atomic on POSIX); the folder is fsynced so the rename lasts.
    """
    # host and pid in the name: a sweep can tell a dead writer's leftover (store.py)
    tmp = path.with_name(f".{path.name}.{HOST}-{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fault_point("write")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make renames into ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
