"""Tidy tables from run records: ``runs.csv`` (one row per run) and ``curves.csv`` (one row
per dev evaluation). They are derived from ``runs/*.json`` and can always be rebuilt.

Units: accuracies are fractions in [0, 1]; times are seconds of training (evaluation
excluded); a step is one optimizer update. An empty cell is a null (NaN / NA).

runs.csv: one row per run, sorted by phase, task, schedule, lr, seed (then key). Columns:
  key                      the run's 16-hex-digit content key
  task ... precision       the spec: task, schedule, lr (peak), seed, epochs, batch_size,
                           optimizer, evals_per_epoch, phase, train_size, eval_size,
                           early_stopping (patience or empty), precision, subset
                           ("per-seed" or "first"; empty in records before protocol 2)
  schedule_params, optimizer_params   the spec's parameters as compact JSON, sorted keys
  task_kind, optimizer_family   the task's kind (convex, MLP, CNN, recurrent, ...) and the
                           optimizer's family (SGD, Adam) as the record gives them; empty
                           for schema-1 records, which lack them
  optimizer_class          the optimizer class that trained (SGD, AdamW, SGDScheduleFree, ...)
  lr_digest, momentum_digest   the digests of the lr and of a cycled momentum the run applied
                           (results/SCHEMA.md, `digests`); empty for schema-1 and -2 records,
                           and momentum_digest where the schedule leaves the momentum alone
  status                   "ok" or "diverged"
  diverged_at_step, stopped_early_at_step   the step it happened at, or empty
  steps_done, total_steps  updates made, and the budget in updates
  test_examples            test examples evaluated (test_acc x test_examples is a count)
  test_acc, test_loss, test_macro_f1, test_macro_precision, test_macro_recall,
  test_roc_auc_ovr, test_macro_ap (empty for records older than schema 4),
  test_acc_class_<i> (i = 0, 1, ...: from test_per_class_acc),
  val_acc_final, val_loss_final, val_acc_best, train_loss_final
                           the record's scalar metrics, in its order (test: the final
                           weights on test; val: the dev curve); see results/SCHEMA.md
  ttt_<T>_step, ttt_<T>_epoch, ttt_<T>_samples, ttt_<T>_wall_s
                           time to target (ttt): the first evaluation whose dev accuracy
                           reached T, in updates, epochs, training examples and seconds.
                           Empty with reached_<T> False: the run never reached T (censored).
  reached_<T>              whether the run reached T; empty when T is not a target of its task
                           (the targets of every task are present, smallest T first)
  train_s, eval_s          training and evaluation seconds in all
  engine                   "single" or "batched"
  device, device_type, git_commit, git_dirty, torch   provenance

curves.csv: one row per dev evaluation, runs in the order of runs.csv. Columns:
  key, phase, task, schedule, lr (the spec's peak lr), seed   the run
  step, epoch, samples     updates, epochs and training examples done at the evaluation
  lr_now                   the lr of the latest update (at step 0: of the first)
  train_loss               mean training loss since the previous evaluation; empty at step 0
  val_loss, val_acc        dev cross-entropy and accuracy
  wall_s                   training seconds so far
"""

import json
from pathlib import Path

import pandas as pd

from benchmark.records import record as records
from benchmark.records.atomic import write_atomic
from benchmark.records.faults import fault_point

SPEC = ("task", "schedule", "lr", "seed", "epochs", "batch_size", "optimizer")
SPEC += ("evals_per_epoch", "phase", "train_size", "eval_size", "early_stopping", "precision")
SPEC += ("subset",)
HEAD = ("key", *SPEC, "schedule_params", "optimizer_params", "task_kind", "optimizer_family")
HEAD += ("optimizer_class", "lr_digest", "momentum_digest")
HEAD += ("status", "diverged_at_step", "stopped_early_at_step", "steps_done", "total_steps")
HEAD += ("test_examples",)
TAIL = ("train_s", "eval_s", "engine", "device", "device_type", "git_commit", "git_dirty", "torch")
TTT = ("step", "epoch", "samples", "wall_s")
RUN_ID = ("phase", "task", "schedule", "lr", "seed")  # rows are sorted by these, then key
CURVE = ("step", "epoch", "samples", "lr_now", "train_loss", "val_loss", "val_acc", "wall_s")

INTS = {"seed", "epochs", "batch_size", "evals_per_epoch", "steps_done", "total_steps"}
INTS |= {"test_examples"}
INTS |= {"step", "samples"}  # curves.csv
NULLABLE_INTS = {"train_size", "eval_size", "early_stopping"}
NULLABLE_INTS |= {"diverged_at_step", "stopped_early_at_step"}
TEXT = {"key", "task", "schedule", "optimizer", "phase", "precision", "subset", "schedule_params"}
TEXT |= {"task_kind", "optimizer_family", "optimizer_class", "lr_digest", "momentum_digest"}
TEXT |= {"optimizer_params", "status", "engine", "device", "device_type", "git_commit", "torch"}


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record, columns as documented above."""
    rows = [_run_row(r) for r in records]
    seen = dict.fromkeys(c for row in rows for c in row)  # union, in first-seen order
    targets = sorted({c[len("reached_") :] for c in seen if c.startswith("reached_")}, key=float)
    ttt = [c for t in targets for c in (*(f"ttt_{t}_{k}" for k in TTT), f"reached_{t}")]
    metrics = [c for c in seen if c not in {*HEAD, *TAIL, *ttt}]
    frame = pd.DataFrame(rows, columns=[*HEAD, *metrics, *ttt, *TAIL])
    return _typed(frame).sort_values([*RUN_ID, "key"], ignore_index=True)


def _run_row(record: dict) -> dict:
    spec, budget, prov = record["spec"], record["budget"], record["provenance"]
    row = {"key": record["key"], **{k: spec.get(k) for k in SPEC}}  # subset: protocol 2 on
    for name in ("schedule_params", "optimizer_params"):
        row[name] = json.dumps(spec[name], sort_keys=True, separators=(",", ":"))
    row["task_kind"] = record.get("task", {}).get("kind")  # schema 1: absent
    row["optimizer_family"] = record["optimizer"].get("family")
    row["optimizer_class"] = record["optimizer"]["class"]
    digests = record.get("digests", {})  # schemas 1 and 2: absent
    row |= {f"{k}_digest": digests.get(k) for k in ("lr", "momentum")}
    row |= {k: record[k] for k in ("status", "diverged_at_step", "stopped_early_at_step")}
    row |= {k: budget[k] for k in ("steps_done", "total_steps", "test_examples")}
    for name, value in record["metrics"].items():
        if isinstance(value, list):  # test_per_class_acc -> test_acc_class_<i>
            stem = name.replace("per_class_", "")
            row |= {f"{stem}_class_{i}": v for i, v in enumerate(value)}
        else:
            row[name] = value
    for target, hit in record["time_to_target"].items():
        row |= {f"ttt_{target}_{k}": None if hit is None else hit[k] for k in TTT}
        row[f"reached_{target}"] = hit is not None
    row |= {k: record["timing"][k] for k in ("train_s", "eval_s")} | {"engine": record["engine"]}
    row |= {k: prov[k] for k in ("device", "device_type", "git_commit", "git_dirty", "torch")}
    return row


def curves_frame(records: list[dict]) -> pd.DataFrame:
    """One row per curve point of every record, runs in the order of ``runs_frame``."""
    rows = []
    for r in records:
        run = {"key": r["key"], **{k: r["spec"][k] for k in RUN_ID}}
        rows += [run | {k: p["lr" if k == "lr_now" else k] for k in CURVE} for p in r["curve"]]
    frame = pd.DataFrame(rows, columns=["key", *RUN_ID, *CURVE])
    return _typed(frame).sort_values([*RUN_ID, "key", "step"], ignore_index=True)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable Int64 for ints that may be null, boolean for flags, float64 for the rest."""

    def dtype(col: str) -> str | None:
        ttt_count = col.startswith("ttt_") and col.endswith(("_step", "_samples"))
        if col in NULLABLE_INTS or ttt_count:
            return "Int64"
        if col in INTS:
            return "int64"
        if col.startswith("reached_") or col == "git_dirty":
            return "boolean"
        return None if col in TEXT else "float64"

    return frame.astype({c: d for c in frame.columns if (d := dtype(c))})


def read_records(runs_dir: Path) -> tuple[list[dict], list[Path]]:
    """Every ``*.json`` record in ``runs_dir`` by name (of a schema ``record.READABLE`` lists),
    and the files that are not records."""
    found, bad = [], []
    for path in sorted(Path(runs_dir).glob("*.json")):
        try:
            record = records.read(path)
        except (OSError, ValueError):  # unreadable, not UTF-8, or not JSON (truncated)
            bad.append(path)
            continue
        if records.problem(record, path.stem, records.READABLE):
            bad.append(path)
        else:
            found.append(record)
    return found, bad


def write_tables(results_dir: Path, records: list[dict]) -> tuple[Path, Path]:
    """Write ``runs.csv`` and ``curves.csv`` into ``results_dir`` atomically; their paths."""
    runs, curves = Path(results_dir) / "runs.csv", Path(results_dir) / "curves.csv"
    write_atomic(runs, runs_frame(records).to_csv(index=False, float_format=None).encode())
    fault_point("tables")
    write_atomic(curves, curves_frame(records).to_csv(index=False, float_format=None).encode())
    return runs, curves
