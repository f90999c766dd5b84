"""Atomic writes: readers see the old file or the whole new one, never a part.

The bytes go to a temporary file in the same folder, named ``.<name>.<host>-<pid>.tmp`` so a
sweep can tell a dead writer's leftover (``store.Store.create``); it is flushed and fsynced,
renamed into place (atomic on POSIX), and the folder is fsynced so the rename lasts.
"""

import os
import socket
from pathlib import Path

from benchmark.records.faults import fault_point

HOST = socket.gethostname().replace(".", "_")  # in temporary names: no dots, one field


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
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
