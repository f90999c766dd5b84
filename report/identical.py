"""Schedules that are one schedule at a budget: merged, so that each is one hypothesis.

At 3 epochs ``step`` gives exactly ``multistep``'s lr sequence: two names, one experiment.
Within a task at one budget (a problem, ``budgets.py``: what is identical at 1 epoch may not
be at 3), final runs of two schedules are merged when both hold: (1) the lr (and
momentum) sequences, computed by ``benchmark.catalogue.schedules`` (no torch) from each schedule's
selected lr, parameters and budget, are identical; (2) the test accuracies are identical on
every seed. The merged schedule is named "step = multistep" and keeps the runs of its first
member. ``plateau`` (its lr follows the dev loss) and schedules that replace the optimizer
(``schedule_free``) are never merged, since their sequence does not define the run; nor is a
schedule whose sequence cannot be computed here (a user ``module:function`` that does not
import).
"""

import json
from dataclasses import replace

import pandas as pd

from benchmark.catalogue.schedules import SCHEDULES, Budget, sequences
from report.load import Results


def _signature(runs: pd.DataFrame) -> tuple | None:
    """One schedule's final runs on one task: what identifies its lr (and momentum) sequence
    and its results; None when it cannot be merged."""
    head = runs.iloc[0]
    entry = SCHEDULES.get(head.schedule)
    fixed = runs[["lr", "schedule_params", "total_steps", "epochs", "evals_per_epoch"]]
    if len(fixed.drop_duplicates()) > 1 or (entry and (entry.stateful or entry.optimizer)):
        return None
    total, epochs = int(head.total_steps), int(head.epochs)
    budget = Budget(total, total // epochs, int(head.evals_per_epoch))
    try:  # a user schedule may fail to import or to run here: then it is not merged
        seq = sequences(head.schedule, head.lr, budget, json.loads(head.schedule_params))
    except Exception:  # anything a user's function raises
        return None
    momentum = None if seq.momentum is None else seq.momentum.tobytes()
    results = tuple(runs.sort_values("seed")[["seed", "test_acc"]].itertuples(index=False))
    return seq.lr.tobytes(), momentum, results


def groups(final: pd.DataFrame) -> dict[str, list[list[str]]]:
    """Per task, the groups of two or more schedules that are one (registry order within)."""
    order = {name: i for i, name in enumerate(SCHEDULES)}
    out = {}
    for task, rows in final.groupby("task"):
        by_signature: dict[tuple, list[str]] = {}
        for schedule, runs in rows.groupby("schedule"):
            if (sig := _signature(runs)) is not None:
                by_signature.setdefault(sig, []).append(schedule)
        merged = [sorted(g, key=lambda s: (order.get(s, len(order)), s))
                  for g in by_signature.values() if len(g) > 1]  # fmt: skip
        if merged:
            out[task] = sorted(merged)
    return out


def merge(results: Results) -> tuple[Results, dict[str, list[list[str]]]]:
    """``results`` with each group's final runs shown once, as "a = b", and the groups."""
    found, final = groups(results.final), results.final
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
