"""Run records on disk: one JSON file per finished run, written atomically.

A record file exists if and only if its run finished (DESIGN.md): it is written to a temporary
file, flushed and renamed into place. JSON has no NaN: a non-finite value in a record is a bug
(the engine writes ``null``), so writing refuses it.
"""

import json
from pathlib import Path

from benchmark.idx import write_atomic


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (readers see no file or the whole one)."""
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    write_atomic(Path(path), text.encode())


def read_record(path: Path) -> dict:
    return json.loads(Path(path).read_text())
