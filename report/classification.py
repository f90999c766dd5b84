"""Every test metric the records hold, per problem and schedule, and the test-set curves of
each schedule's median run.

The metrics are the records' (``benchmark/records/metrics.py``): accuracy, macro F1, precision
and recall of the predicted classes, and the one-vs-rest ROC-AUC and average precision of the
softmax scores, macro-averaged. Each is summarised by its mean over the final runs with a
Student's t interval (``stats.mean_ci``), over the runs where it is defined: a diverged run's
scores are not finite, so it has no ROC-AUC or average precision (``n_scored`` counts the
runs that have them), and records older than schema 4 hold no average precision and no
curves (``unsupported`` counts them for the report's words).

A schedule's curves are those of its median run by test accuracy (the lower median, an actual
run: a mean of curves would be no run's, and the median is not moved by one diverged seed).
"""

import math

import numpy as np
import pandas as pd

from report import stats
from report.load import Results

METRICS = {  # column prefix in the table: the runs' column (runs.csv)
    "acc": "test_acc",
    "f1": "test_macro_f1",
    "precision": "test_macro_precision",
    "recall": "test_macro_recall",
    "roc_auc": "test_roc_auc_ovr",
    "ap": "test_macro_ap",
}


def table(final: pd.DataFrame) -> pd.DataFrame:
    """Per task x schedule: n, n_scored (runs with a ROC-AUC), and each of ``METRICS``' mean
    with its t interval (``<m>``, ``<m>_lo``, ``<m>_hi``: short names, so that the table of
    six intervals fits a page)."""
    final = final.assign(**{c: final.get(c, math.nan) for c in METRICS.values()})
    rows = []
    for (task, schedule), g in final.groupby(["task", "schedule"]):
        row = {"task": task, "schedule": schedule, "n": len(g)}
        row["n_scored"] = int(g.test_roc_auc_ovr.notna().sum())
        for name, column in METRICS.items():
            values = g[column].dropna().to_numpy(dtype=float)
            lo, hi = stats.mean_ci(values)
            mean = float(values.mean()) if len(values) else math.nan
            row |= {name: mean, f"{name}_lo": float(lo), f"{name}_hi": float(hi)}
        rows.append(row)
    return pd.DataFrame(rows)


def unsupported(final: pd.DataFrame, results: Results) -> int:
    """Final runs whose records hold no per-example results (schema 3 or older)."""
    return int((~final.key.isin(results.examples)).sum())


def median_runs(final: pd.DataFrame) -> pd.DataFrame:
    """Each task x schedule's median run by test accuracy (the lower median; ties by seed):
    task, schedule, key, seed, test_acc, test_roc_auc_ovr, test_macro_ap."""
    final = final.assign(test_macro_ap=final.get("test_macro_ap", math.nan))
    ordered = final.sort_values(["task", "schedule", "test_acc", "seed"], ignore_index=True)
    by = ordered.groupby(["task", "schedule"])
    picked = ordered[by.cumcount() == (by.task.transform("size") - 1) // 2]
    columns = ["task", "schedule", "key", "seed", "test_acc", "test_roc_auc_ovr", "test_macro_ap"]
    return picked[columns].reset_index(drop=True)


def curves(final: pd.DataFrame, results: Results, task: str) -> dict[str, dict]:
    """One task's median runs' curves by schedule: grid, roc_tpr, pr_precision (numpy), and
    the run's roc_auc, ap and seed; a run without curves (an older record, or diverged
    scores) is left out."""
    medians = median_runs(final[final.task == task])
    out = {}
    for run in medians.itertuples(index=False):
        drawn = results.examples.get(run.key, {}).get("curves")
        if drawn and drawn["roc_tpr"] is not None:
            out[run.schedule] = {k: np.asarray(v, float) for k, v in drawn.items()}
            out[run.schedule] |= {"roc_auc": run.test_roc_auc_ovr, "ap": run.test_macro_ap,
                                  "seed": run.seed}  # fmt: skip
    return out
