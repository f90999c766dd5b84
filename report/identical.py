"""Schedules that are one schedule at a budget: merged, so that each is one hypothesis.

At 3 epochs ``step`` applies exactly ``multistep``'s lr sequence: two names, one experiment.
Within a task at one budget (a problem, ``budgets.py``: what is identical at 1 epoch may not
be at 3), final runs of two schedules are merged when, seed by seed, the records say the same:
the digests of the lr and momentum each run applied (``digests`` in the record, so a plateau
run that never cut is constant's), the optimizer (name, class, settings; a schedule that
replaces the optimizer trains another class) and the test accuracy. The merged schedule is
named "step = multistep", members in the sweep's order, and keeps the runs of its first.
Only the records are read: no registry, no schedule code. Runs of schema 2 or older carry no
digests and are never merged (``undigested`` counts them for the report's words).
"""

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from report.load import Results

# what must be equal on every seed; the digests identify the sequences applied, step by step
SAME = ("lr_digest", "momentum_digest", "optimizer", "optimizer_class", "optimizer_params")


def _signature(runs: pd.DataFrame) -> tuple | None:
    """One schedule's final runs on one problem: seed by seed, what they applied and reached;
    None when a run has no digests (schema 2 or older)."""
    if runs.lr_digest.isna().any():
        return None
    runs = runs.assign(momentum_digest=runs.momentum_digest.fillna("none"))
    return tuple(runs.sort_values("seed")[["seed", *SAME, "test_acc"]].itertuples(index=False))


def merged_away(labels) -> set[str]:
    """The names that ``labels`` (schedules as the report shows them) merge into another's:
    "b" and "c" of "a = b = c". Left out, each distinct schedule counts once."""
    return {name for label in labels for name in label.split(" = ")[1:]}


def undigested(final: pd.DataFrame) -> int:
    """Final runs whose records carry no digests, so that their schedules cannot be merged."""
    return int(final.lr_digest.isna().sum())


def groups(final: pd.DataFrame, order: Sequence[str] = ()) -> dict[str, list[list[str]]]:
    """Per task, the groups of two or more schedules that are one (``order``'s order within,
    then by name)."""
    rank = {name: i for i, name in enumerate(order)}
    out = {}
    for task, rows in final.groupby("task"):
        by_signature: dict[tuple, list[str]] = {}
        for schedule, runs in rows.groupby("schedule"):
            if (sig := _signature(runs)) is not None:
                by_signature.setdefault(sig, []).append(schedule)
        merged = [sorted(g, key=lambda s: (rank.get(s, len(rank)), s))
                  for g in by_signature.values() if len(g) > 1]  # fmt: skip
        if merged:
            out[task] = sorted(merged)
    return out


def merge(results: Results) -> tuple[Results, dict[str, list[list[str]]]]:
    """``results`` with each group's final runs shown once, as "a = b", and the groups (members
    in the order of the sweep file's schedules)."""
    found, final = groups(results.final, results.sweep.get("schedules", [])), results.final
    label, drop = {}, set()
    for task, task_groups in found.items():
        for group in task_groups:
            mine = final[(final.task == task) & final.schedule.isin(group)]
            label |= dict.fromkeys(mine.key[mine.schedule == group[0]], " = ".join(group))
            drop |= set(mine.key[mine.schedule != group[0]])

    def relabel(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[~frame.key.isin(drop)]
        return frame.assign(schedule=frame.key.map(lambda k: label.get(k)).fillna(frame.schedule))

    return replace(results, runs=relabel(results.runs), curves=relabel(results.curves)), found
