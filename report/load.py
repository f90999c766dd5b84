"""Read a results folder's run records into DataFrames, skipping what is not a valid record.

The record (``benchmark/records/record.py``) is documented field by field in ``results/SCHEMA.md``;
the columns of ``runs`` and ``curves`` are those of ``runs.csv`` and ``curves.csv``
(``benchmark/records/tidy.py``), rebuilt here from the records so the report never trusts a stale
CSV. A file that cannot be read, or is no record of a schema ``record.READABLE`` lists, is
skipped with a warning that names it; a diverged run is a valid record and is kept.
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.records import record as records
from benchmark.records.tidy import curves_frame, runs_frame

ONE_OFF = ("one-off", "single")  # a run outside a sweep ("single" before December 2026)


class SkippedRecord(UserWarning):
    """A file in runs/ that is not a valid record; the report leaves it out."""


@dataclass
class Results:
    folder: Path
    runs: pd.DataFrame  # one row per valid record, both phases (runs.csv's columns)
    curves: pd.DataFrame  # one row per dev evaluation (curves.csv's columns)
    provenance: pd.DataFrame  # one row per record: key + every provenance field
    sweep: dict  # sweep.json (the protocol that produced the runs); {} when absent
    skipped: list[tuple[str, str]]  # (file name, why) of files in runs/ that are not records
    failed: list[dict]  # failed/<key>.json of runs that crashed and have no record
    examples: dict[str, dict] = field(default_factory=dict)  # key: the record's `test` (4+)
    problems: dict[str, tuple[str, int]] = field(default_factory=dict)  # budgets.split
    derived_targets: dict[str, list[float]] = field(default_factory=dict)  # reachable_targets

    @property
    def final(self) -> pd.DataFrame:
        """The final-phase runs (one-off CLI runs count as final when there are no others)."""
        final = self.runs[self.runs.phase == "final"]
        return final if len(final) else self.runs[self.runs.phase.isin(ONE_OFF)]

    @property
    def tune(self) -> pd.DataFrame:
        return self.runs[self.runs.phase == "tune"]

    def task_of(self, problem: str) -> str:
        """The task of a problem ("mnist_logreg, 3 epochs" -> "mnist_logreg"; see budgets.py)."""
        return self.problems.get(problem, (problem, 0))[0]

    def targets(self, task: str) -> list[str]:
        """The task's dev-accuracy targets as in the column names ("0.97"), easy to hard."""
        rows = self.runs[self.runs.task == task]
        cols = [c for c in rows if c.startswith("reached_") and rows[c].notna().any()]
        return sorted((c.removeprefix("reached_") for c in cols), key=float)


def load(folder: Path) -> Results:
    """Every valid record under ``folder/runs``; raises FileNotFoundError when there is none."""
    folder = Path(folder)
    records, skipped = [], []
    for path in sorted((folder / "runs").glob("*.json")):
        record, why = _read(path)
        if why:
            skipped.append((path.name, why))
            warnings.warn(f"skipped {path}: {why}", SkippedRecord, stacklevel=2)
        else:
            records.append(record)
    if not records:
        raise FileNotFoundError(f"no run records in {folder / 'runs'}")
    if not any(r["spec"]["phase"] in ("final", *ONE_OFF) for r in records):
        raise FileNotFoundError(f"no final runs in {folder / 'runs'} yet, only tuning runs")
    keys = {r["key"] for r in records}
    prov = pd.DataFrame([{"key": r["key"], **r["provenance"]} for r in records])
    return Results(
        folder=folder,
        runs=runs_frame(records),
        curves=curves_frame(records),
        provenance=prov,
        sweep=_json(folder / "sweep.json") or {},
        skipped=skipped,
        failed=[
            f
            for p in sorted((folder / "failed").glob("*.json"))
            if (f := _json(p)) and f.get("key") not in keys
        ],
        examples={r["key"]: r["test"] for r in records if "test" in r},
    )


PERF_FIELDS = ("device", "threads", "tasks")  # results/SCHEMA.md, "Perf files"
PERF_TASK = ("task", "steps", "floor_run_samples_per_s", "measurements")


def load_perf(folder: Path) -> pd.DataFrame:
    """Every perf file in ``folder`` (results/perf/<device>.json) as one row per measurement:
    device, threads, task, steps, floor_run_samples_per_s, method, runs, seconds,
    run_samples_per_s. A file that is not a perf file is skipped with a warning; no folder
    gives an empty frame."""
    rows = []
    for path in sorted(Path(folder).glob("*.json")):
        perf = _json(path)
        tasks = perf.get("tasks") if perf else None
        ok = perf and all(f in perf for f in PERF_FIELDS) and isinstance(tasks, list)
        if not ok or not all(isinstance(t, dict) and all(f in t for f in PERF_TASK) for t in tasks):
            warnings.warn(f"skipped {path}: not a perf file", SkippedRecord, stacklevel=2)
            continue
        head = {"device": perf["device"], "threads": perf["threads"]}
        for task in tasks:
            about = {k: task[k] for k in PERF_TASK[:-1]}
            rows += [head | about | m for m in task["measurements"]]
    return pd.DataFrame(rows)


def _read(path: Path) -> tuple[dict | None, str | None]:
    """The record, or why the file is not one."""
    try:
        record = records.read(path)
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON (truncated)
        return None, f"not a JSON record ({type(err).__name__})"
    why = records.problem(record, schemas=records.READABLE)
    return (None, why) if why else (record, None)


def _json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
