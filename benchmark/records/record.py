"""The run record: its schema number, its fields, how it is checked, assembled, written, read.

The record is the contract between ``benchmark/`` (which trains) and ``report/`` (which reads
records only): results/SCHEMA.md describes every field. Both engines build it with
``assemble``; ``store``, ``tidy`` and ``report/load.py`` accept a file only when ``problem``
finds nothing wrong with it. Plain Python, no torch.

JSON has no NaN: a value that was not finite (a diverged run's loss) is ``None`` (``finite``),
and writing refuses a NaN that slipped through.
"""

import json
from pathlib import Path

import numpy as np

from benchmark.records.atomic import write_atomic
from benchmark.records.metrics import unpack_bits

SCHEMA = 4  # 4: per-example test results, average precision, curves; 3: lr/momentum digests
READABLE = (1, 2, 3, 4)  # schemas report/ reads (1 lacks `task`, 1-2 `digests`, 1-3 `test`)
FIELDS = (
    "schema", "key", "spec", "task", "status", "diverged_at_step", "stopped_early_at_step",
    "budget", "metrics", "test", "time_to_target", "curve", "digests", "optimizer", "engine",
    "timing", "provenance",
)  # fmt: skip
ADDED = {"task": 2, "digests": 3, "test": 4}  # fields newer than schema 1: the schema adding it


def problem(record, key: str | None = None, schemas=(SCHEMA,)) -> str | None:
    """Why ``record`` is not a valid record (of ``key``, when given), or None when it is."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("schema") not in schemas:
        readable = " or ".join(map(str, schemas))
        return f"schema {record.get('schema')!r}, expected {readable}"
    missing = [f for f in FIELDS if ADDED.get(f, 1) <= record["schema"] and f not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    if key is not None and record["key"] != key:
        return f"key {record['key']!r} is not {key!r}"
    return None


def assemble(
    *,
    key: str,
    spec: dict,
    task: dict,
    status: str,
    diverged_at: int | None,
    stopped_at: int | None,
    budget: dict,
    test: dict,
    curve: list[dict],
    time_to_target: dict,
    digests: dict,
    optimizer: dict,
    engine: str,
    timing: dict,
    provenance: dict,
) -> dict:
    """The record of a finished run, from what an engine measured (fields in FIELDS order).

    ``test``: ``semantics.test_metrics`` of the final weights on test (``metrics``, the
    scalars and per-class accuracies, and ``test``, the per-example results and curves);
    ``curve``: the dev evaluations (``semantics.curve_point``); the metrics' dev summary is
    read off the curve; ``digests``: ``semantics.Rules.digests``.
    """
    return {
        "schema": SCHEMA,
        "key": key,
        "spec": spec,
        "task": task,
        "status": status,
        "diverged_at_step": diverged_at,
        "stopped_early_at_step": stopped_at,
        "budget": budget,
        "metrics": {
            **{f"test_{k}": v for k, v in test["metrics"].items()},
            "val_acc_final": curve[-1]["val_acc"],
            "val_loss_final": curve[-1]["val_loss"],
            "val_acc_best": max(p["val_acc"] for p in curve),
            "train_loss_final": curve[-1]["train_loss"],
        },
        "test": test["test"],
        "time_to_target": time_to_target,
        "curve": curve,
        "digests": digests,
        "optimizer": optimizer,
        "engine": engine,
        "timing": timing,
        "provenance": provenance,
    }


def write(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (readers see no file or the whole one)."""
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    write_atomic(Path(path), text.encode())


def read(path: Path) -> dict:
    """The JSON in ``path`` (OSError, ValueError when unreadable or not JSON)."""
    return json.loads(Path(path).read_text())


def correct(record: dict) -> np.ndarray | None:
    """Which test examples the run got right (``bool[test.examples]``, in the split's order),
    or None for a record older than schema 4, which kept only the count (``test_acc``)."""
    test = record.get("test")
    return None if test is None else unpack_bits(test["correct"], test["examples"])
