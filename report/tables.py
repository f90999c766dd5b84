"""The cited tables: each a DataFrame with a stable ID, a caption that carries its n and the
environment, and CSV / LaTeX / Markdown files.

A table's ID is a hash of its definition (name, columns, the statistics' constants), of the
sorted keys of the runs it summarises and of its numbers as printed (``printed``: 4 decimals,
exact decimal rounding, report/numbers.py): the same table regenerated from the same records
keeps its ID on any machine and any day, though another CPU may move a statistic by its last
bit; one more run, a changed statistic, or a rerun whose numbers differ in a printed digit
gives a new ID.
"""

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from benchmark.records import metrics
from benchmark.records.tidy import TTT
from report import mcb, planning, stats
from report.identical import merged_away
from report.load import Results
from report.numbers import canonical, fixed

UNITS = ("step", "epoch", "wall_s")  # time-to-target units: updates, epochs, training seconds
REACH_QUANTILE = 0.25  # an added target: 3 in 4 final runs reached it at their best
PLACES = 4  # decimals of a printed table (Markdown, LaTeX) and of the numbers its ID hashes


class Interval(NamedTuple):
    lo: float
    hi: float


def _pair(col: str, cols: list[str], end: str = "_lo") -> bool:
    """Whether ``col`` is the ``end`` half of a ``<x>_lo`` / ``<x>_hi`` pair in ``cols``."""
    other = {"_lo": "_hi", "_hi": "_lo"}[end]
    return col.endswith(end) and col[: -len(end)] + other in cols


@dataclass
class Table:
    name: str  # file stem and anchor: tables/<name>.csv
    title: str
    frame: pd.DataFrame
    keys: list[str]  # the runs it summarises
    environment: str
    id: str = field(init=False)

    def __post_init__(self):
        constants = (planning.ALPHA, planning.POWER, stats.LEVEL, stats.SEED, stats.RESAMPLES,
                     mcb.RESAMPLES, stats.ROBUST_POINTS)  # fmt: skip
        definition = f"{self.name}|{list(self.frame.columns)}|{constants}|"
        numbers = printed(self.frame).to_csv(index=False)  # last bits never reach the print
        digest = hashlib.sha256((definition + ",".join(sorted(self.keys)) + numbers).encode())
        self.id = f"T-{digest.hexdigest()[:8]}"

    @property
    def caption(self) -> str:
        return f"Table {self.id}: {self.title}. n = {len(self.keys)} runs; {self.environment}."

    @property
    def columns(self) -> list[str]:
        """Column names for reading: a ``<x>_lo`` / ``<x>_hi`` pair is one interval ``<x>_ci``."""
        cols = list(self.frame.columns)

        def name(c: str) -> str:
            return c if not _pair(c, cols) else c[:-3] if c.endswith("ci_lo") else c[:-3] + "_ci"

        return [name(c) for c in cols if not _pair(c, cols, "_hi")]

    @property
    def rows(self) -> list[list]:
        """Rows for reading, matching ``columns``: an interval is one ``Interval`` cell."""
        cols = list(self.frame.columns)
        out = []
        for rec in self.frame.astype(object).to_dict("records"):
            out.append(
                [
                    Interval(rec[c], rec[c[:-3] + "_hi"]) if _pair(c, cols) else rec[c]
                    for c in cols
                    if not _pair(c, cols, "_hi")
                ]
            )
        return out

    def write(self, folder: Path) -> list[Path]:
        """tables/<ID>.csv (10 decimals: the same bytes on any machine), .md and .tex (as
        printed)."""
        folder.mkdir(parents=True, exist_ok=True)
        shown = printed(self.frame)
        paths = [folder / f"{self.id}.{ext}" for ext in ("csv", "md", "tex")]
        self.frame.astype(object).map(_canonical).to_csv(paths[0], index=False)
        paths[1].write_text(f"{self.caption}\n\n{markdown(shown)}")
        latex = shown.to_latex(
            index=False, caption=latex_escape(self.caption), label=self.id, na_rep="--", escape=True
        )
        paths[2].write_text(latex)
        return paths


def printed(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as it is read: every float with ``PLACES`` decimals (exact decimal rounding),
    missing values as None."""

    def cell(value):
        if isinstance(value, float | np.floating) and not isinstance(value, bool):
            return None if math.isnan(value) else fixed(value, PLACES)
        return value

    return frame.astype(object).map(cell)


def _canonical(value):
    return canonical(value) if isinstance(value, float | np.floating) else value


def latex_escape(text: str) -> str:
    """Text for a LaTeX caption: the characters LaTeX treats as commands, escaped."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}"}  # fmt: skip
    return "".join(special.get(c, c) for c in text)


def environment(results: Results, keys) -> str:
    """Where the runs were made: devices, engines, torch and commits (dirty ones marked)."""
    prov = results.provenance[results.provenance.key.isin(set(keys))]
    if prov.empty:
        return "environment: unknown"
    commits = sorted(
        {
            c[:10] + ("+dirty" if d else "")
            for c, d in zip(
                prov.git_commit.fillna("no-git"), prov.git_dirty.fillna(False), strict=True
            )
        }
    )
    devices = sorted(prov.device.astype(str).unique())
    threads = sorted(prov.get("cpu_threads", pd.Series(dtype=float)).dropna().astype(int).unique())
    parts = [f"device {', '.join(devices)}"]
    if (prov.device_type == "cpu").any() and threads:
        parts.append(f"{'/'.join(map(str, threads))} torch thread(s)")
    parts += [f"torch {', '.join(sorted(prov.torch.unique()))}", f"commit {', '.join(commits)}"]
    return "environment: " + "; ".join(parts)


def reachable_targets(results: Results) -> Results:
    """Add a target to each task whose own targets fewer than half its final runs reached.

    A short budget (the quick sweep) can leave a task's targets out of reach, and then time to
    target compares nothing. The added target is the ``REACH_QUANTILE`` quantile of the final
    runs' best dev accuracy, rounded down to 0.5 points, one per problem (task x budget) that
    needs it; time to it is read off the curve of every run of the task, at every budget, as
    the engine reads its own targets (``benchmark.records.metrics.time_to_target``).
    """
    final, added = results.final, {}
    for problem, g in final.groupby("task"):
        easiest = results.targets(problem)[0]
        if g[f"reached_{easiest}"].fillna(False).mean() >= 0.5:
            continue
        best = g.val_acc_best.quantile(REACH_QUANTILE, interpolation="lower")  # an actual run's
        target = round(math.floor(round(best / 0.005, 6)) * 0.005, 4)
        added.setdefault(results.task_of(problem), set()).add(target)
    runs = results.runs.copy()
    for task, targets in added.items():
        curves = results.curves[results.curves.task.map(results.task_of) == task]
        for target in sorted(targets):
            runs = _add_target(runs, curves, target)
    derived = {task: sorted(targets) for task, targets in sorted(added.items())}
    return replace(results, runs=runs, derived_targets=derived)


def _add_target(runs: pd.DataFrame, curves: pd.DataFrame, target: float) -> pd.DataFrame:
    """``runs`` with reached_<target> and ttt_<target>_<unit> read off ``curves`` for their runs."""
    key = f"{target:g}"
    hits = {k: metrics.time_to_target(c.to_dict("records"), [target])[key]
            for k, c in curves.groupby("key")}  # fmt: skip
    mine = runs.key.isin(hits)
    if f"reached_{key}" not in runs:  # another task may have this target already
        runs[f"reached_{key}"] = pd.array([pd.NA] * len(runs), dtype="boolean")
        runs[[f"ttt_{key}_{u}" for u in TTT]] = math.nan
    runs.loc[mine, f"reached_{key}"] = [hits[k] is not None for k in runs.key[mine]]
    for unit in TTT:
        runs.loc[mine, f"ttt_{key}_{unit}"] = [
            hits[k][unit] if hits[k] else math.nan for k in runs.key[mine]
        ]
    return runs


def accuracy(final: pd.DataFrame) -> pd.DataFrame:
    """Final test accuracy per task x schedule (diverged runs included); error is 1 - it."""
    rows = []
    for (task, schedule), g in final.groupby(["task", "schedule"]):
        acc = stats.describe(g.test_acc)
        rows.append(
            {
                "task": task,
                "schedule": schedule,
                "lr": g.lr.iloc[0] if g.lr.nunique() == 1 else math.nan,  # one lr per cell
                "n": acc["n"],
                "n_diverged": int((g.status == "diverged").sum()),
                **{f"acc_{k}": v for k, v in acc.items() if k != "n"},
            }
        )
    return pd.DataFrame(rows)


def censored_times(runs: pd.DataFrame, target: str, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Each run's time to ``target`` in ``unit`` and whether it reached it. A run that did not
    (its budget ran out, or it diverged) never will: it is censored at infinity, so it stays at
    risk at every time another run reached the target, and its own time is never imputed."""
    reached = runs[f"reached_{target}"].fillna(False).to_numpy(dtype=bool)
    hit = runs[f"ttt_{target}_{unit}"].astype(float).to_numpy()
    return np.where(reached, hit, math.inf), reached


def time_to_target(results: Results) -> pd.DataFrame:
    """Per task x target x schedule: n, n_reached, frac_reached and the Kaplan-Meier median
    with its CI in each unit (inf: not reached by half the runs / the band never crosses)."""
    rows = []
    for (task, schedule), g in results.final.groupby(["task", "schedule"]):
        for target in results.targets(task):
            row = {"task": task, "target": float(target), "schedule": schedule, "n": len(g)}
            row["n_reached"] = int(g[f"reached_{target}"].fillna(False).sum())
            row["frac_reached"] = row["n_reached"] / len(g)
            for unit in UNITS:
                median = stats.km_median(*censored_times(g, target, unit))
                row |= dict(
                    zip((f"{unit}_median", f"{unit}_lo", f"{unit}_hi"), median, strict=True)
                )
            rows.append(row)
    return pd.DataFrame(rows).sort_values(["task", "target", "schedule"], ignore_index=True)


def scores(final: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy, tasks x schedules."""
    return final.pivot_table(index="task", columns="schedule", values="test_acc", aggfunc="mean")


def _members(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (index: problems, columns: schedules) with a merged schedule's column ("a = b")
    repeated under each of its names."""
    names = {c: c.split(" = ") for c in frame.columns}
    return pd.concat({m: frame[c] for c, ms in names.items() for m in ms}, axis=1)


def ranks(final: pd.DataFrame, task_of) -> pd.DataFrame:
    """Each schedule's rank on mean test accuracy per problem (1 = best; among the problem's
    distinct schedules, a merged one's rank under each of its names) and its mean rank over
    tasks (``task_of``: a problem's task), each task's budgets averaged first: tasks as blocks."""
    by_problem = _members(stats.ranks(scores(final)))
    frame = by_problem.T
    frame.columns = [f"rank_{t}" for t in frame.columns]
    frame["mean_rank"] = by_problem.groupby(task_of).mean().mean()
    return frame.sort_values("mean_rank").rename_axis("schedule").reset_index()


def task_scores(final: pd.DataFrame, task_of) -> pd.DataFrame:
    """Mean test accuracy, tasks x distinct schedules: each task's budgets averaged; a name that
    was merged into another's at some budget ("a = b": b) left out, so each counts once."""
    per_problem = scores(final)
    later = merged_away(per_problem.columns)
    members = _members(per_problem)
    return members.drop(columns=sorted(later & set(members.columns))).groupby(task_of).mean()


def sensitivity(tune: pd.DataFrame) -> pd.DataFrame:
    """Dev accuracy at the end of the budget against lr, mean over tuning seeds."""
    grouped = tune.groupby(["task", "schedule", "lr"])
    return grouped.agg(
        n=("seed", "size"),
        n_diverged=("status", lambda s: (s == "diverged").sum()),
        dev_acc_mean=("val_acc_final", "mean"),
        dev_acc_std=("val_acc_final", "std"),
    ).reset_index()


def grid_edges(final: pd.DataFrame, tune: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(schedule, task) -> "high" or "low" where the final runs' lr is the largest or smallest
    lr its tuning tried (of two or more): a better lr may lie outside what was tried. The
    protocol extends the grid past such an edge, so one left is at the extension's bound. A
    merged schedule ("a = b") is judged by a's tuning, whose runs it keeps."""
    tried = tune.groupby(["schedule", "task"]).lr.agg(["min", "max", "nunique"])
    edges = {}
    for (schedule, task), lr in final.groupby(["schedule", "task"]).lr.first().items():
        first = schedule.split(" = ")[0]
        if (first, task) not in tried.index:
            continue
        low, high, n = tried.loc[(first, task)]
        edge = "high" if lr >= high else "low" if lr <= low else ""
        if edge and n > 1:
            edges[schedule, task] = edge
    return edges


def headline_target(ttt: pd.DataFrame, task: str) -> float:
    """The hardest target that at least half of the task's final runs reached (else the easiest)."""
    rows = ttt[ttt.task == task]
    totals = rows.groupby("target")[["n_reached", "n"]].sum()
    reached = totals.n_reached / totals.n
    hard = reached[reached >= 0.5]
    return float(hard.index.max() if len(hard) else reached.index.min())


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; empty cells for nulls."""
    cells = frame.astype(object).where(frame.notna(), "")
    lines = [list(frame.columns), ["---"] * frame.shape[1], *cells.astype(str).to_numpy().tolist()]
    return "".join(f"| {' | '.join(map(str, line))} |\n" for line in lines)
