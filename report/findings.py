"""The answer: a verdict per task x schedule, sentences that carry their numbers, guidance by
kind of task, and the reproduction check. Every rule is stated where it is applied, and the
report prints the rules beside the results.

Verdicts on final accuracy: "best" (highest mean test accuracy), "tied" (Holm-adjusted paired
Wilcoxon p >= ALPHA against the best), "worse" (p < ALPHA), "n/a" (too few paired seeds for the
test to separate any schedule from the best: ``separable``).
On time to target (the task's headline target, in epochs): "best" (smallest Kaplan-Meier
median; ties go to the larger fraction reached, then the name), "tied" (its median is reached
and its CI overlaps the best's), "worse" (its CI lies above the best's, or fewer than half its
runs reached the target), "none" (no schedule's median reached the target), "n/a" (one seed).
"""

import math

import pandas as pd

from benchmark.tasks import TASKS
from report import stats
from report.tables import REACH_QUANTILE, headline_target

OPTIMIZER_FAMILY = {"sgd": "SGD", "adam": "Adam", "adamw": "Adam"}
TEST = f"two-sided Wilcoxon signed-rank on paired seeds, Holm-corrected, alpha = {stats.ALPHA:g}"


def separable(n_pairs: int, comparisons: int) -> bool:
    """Whether the paired test could reject with this many pairs against Holm's first step."""
    return stats.smallest_p(n_pairs) * max(1, comparisons) < stats.ALPHA


def accuracy_verdicts(paired: pd.DataFrame) -> pd.Series:
    """Verdicts of one or more tasks' rows of ``tables.paired``."""
    comparisons = paired.groupby("task").schedule.transform("size") - 1

    def verdict(row) -> str:
        if row.schedule == row.best:
            return "best"
        if not separable(row.n_pairs, comparisons[row.name]):
            return "n/a"
        return "tied" if row.tied else "worse"

    return paired.apply(verdict, axis=1)


def by_speed(rows: pd.DataFrame) -> pd.DataFrame:
    """One task's time-to-target rows at one target, fastest first (the verdicts' order)."""
    return rows.sort_values(
        ["epoch_median", "frac_reached", "schedule"], ascending=[True, False, True]
    )


def speed_verdicts(rows: pd.DataFrame) -> pd.Series:
    """Verdicts of one task's rows at one target (see the module docstring)."""
    if rows.n.max() < 2:
        return pd.Series("n/a", index=rows.index)
    best = by_speed(rows).iloc[0]
    if math.isinf(best.epoch_median):
        return pd.Series("none", index=rows.index)

    def verdict(row) -> str:
        if row.name == best.name:
            return "best"
        overlap = row.epoch_lo <= best.epoch_hi and best.epoch_lo <= row.epoch_hi
        return "tied" if overlap and math.isfinite(row.epoch_median) else "worse"

    return rows.apply(verdict, axis=1)


def matrix(paired: pd.DataFrame, ttt: pd.DataFrame) -> pd.DataFrame:
    """task, schedule, accuracy, target, speed: the recommendation matrix in long form."""
    acc = paired.assign(accuracy=accuracy_verdicts(paired))[["task", "schedule", "accuracy"]]
    parts = []
    for task in acc.task.unique():
        rows = ttt[(ttt.task == task) & (ttt.target == headline_target(ttt, task))]
        parts.append(
            rows.assign(speed=speed_verdicts(rows))[["task", "schedule", "target", "speed"]]
        )
    out = acc.merge(pd.concat(parts), on=["task", "schedule"], how="left")
    return out.fillna({"speed": "-"})


def _names(items) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"


def task_sentences(
    task: str,
    acc: pd.DataFrame,
    paired: pd.DataFrame,
    ttt: pd.DataFrame,
    verdicts: pd.DataFrame,
    derived: dict[str, float],
) -> list[str]:
    """What the results say about one task, each claim with its n, estimate and interval.

    ``derived``: targets the report added (``tables.reachable_targets``), by task."""
    a, p, v = (f[f.task == task] for f in (acc, paired, verdicts))
    out = _accuracy_sentences(a, p, v) + _speed_sentences(ttt[ttt.task == task], v, derived)
    diverged = a[a.n_diverged > 0]
    if len(diverged):
        runs = (f"{r.schedule} {int(r.n_diverged)} of {int(r.n)}" for r in diverged.itertuples())
        out.append(f"Diverged runs (counted in every number above): {_names(runs)}.")
    return out


def _accuracy_sentences(a: pd.DataFrame, p: pd.DataFrame, v: pd.DataFrame) -> list[str]:
    best = a.loc[a.acc_mean.idxmax()]
    n, level = int(best.n), f"{100 * stats.LEVEL:g}% CI"
    ci = "no CI: one run" if n < 2 else f"{level} {best.acc_ci_lo:.4f} to {best.acc_ci_hi:.4f}"
    out = [
        f"{best.schedule} had the highest mean test accuracy, {best.acc_mean:.4f} ({ci}, "
        f"n = {n} runs, one per seed, lr {best.lr:.3g})."
    ]
    n_pairs, comparisons = int(p.n_pairs.max()), len(p) - 1
    if not separable(n_pairs, comparisons):
        floor = stats.smallest_p(n_pairs)
        out.append(
            f"With n = {n_pairs} paired seeds the smallest p the {TEST} test can give is "
            f"{floor:.3g} before the correction for {comparisons} comparisons, so no schedule "
            "can be separated from the best at this n: more seeds are needed."
        )
        return out
    tied, worse = v[v.accuracy == "tied"].schedule, v[v.accuracy == "worse"].schedule
    return [
        *out,
        f"Tied with it ({TEST}, n = {n_pairs} pairs): {_names(tied)}. "
        f"Clearly worse: {_names(worse)}.",
    ]


def _speed_sentences(ttt: pd.DataFrame, v: pd.DataFrame, derived: dict[str, float]) -> list[str]:
    task = ttt.task.iloc[0]
    target = v.target.dropna().iloc[0]  # the headline target ``matrix`` chose
    out = []
    if derived.get(task) == target:
        own = sorted(set(ttt.target) - {target})
        out.append(
            f"Fewer than half the runs reached the task's own targets ({_names(map(str, own))}) "
            f"within this budget, so time to target is measured to {target:g}, a target the "
            f"report added: the {100 * REACH_QUANTILE:g}th percentile of the runs' best dev "
            "accuracy, rounded down to 0.5 points."
        )
    rows = ttt[ttt.target == target]
    fastest = by_speed(rows).iloc[0]
    if math.isinf(fastest.epoch_median):
        reached = f"{int(rows.n_reached.sum())} of {int(rows.n.sum())} runs reached it"
        return [*out, f"No schedule reached dev accuracy {target:g} in half its runs: {reached}."]
    hi = "not reached" if math.isinf(fastest.epoch_hi) else f"{fastest.epoch_hi:.2f}"
    ci = (
        "no CI: one run"
        if math.isnan(fastest.epoch_lo)
        else f"{100 * stats.LEVEL:g}% CI {fastest.epoch_lo:.2f} to {hi}"
    )
    out.append(
        f"{fastest.schedule} reached dev accuracy {target:g} fastest: median "
        f"{fastest.epoch_median:.2f} epochs ({ci}), "
        f"{int(fastest.n_reached)} of {int(fastest.n)} runs reached it."
    )
    speed = v.set_index("schedule").speed
    out.append(
        f"Tied with it on speed (median reached, 95% CIs overlap): "
        f"{_names(speed.index[speed == 'tied'])}. Slower (CIs apart, or fewer than half the "
        f"runs reached {target:g}): {_names(speed.index[speed == 'worse'])}."
    )
    return out


def kind_of(task: str) -> tuple[str, str]:
    """(kind, optimizer family) of a registered task; ("other", "") when it is unknown here."""
    t = TASKS.get(task)
    return (t.kind, OPTIMIZER_FAMILY.get(t.optimizer, t.optimizer)) if t else ("other", "")


def guidance(verdicts: pd.DataFrame) -> list[str]:
    """The schedules best or tied on every task, overall and per kind of task."""
    kinds = [" with ".join(filter(None, kind_of(t))) for t in verdicts.task]
    groups = [("On every task", verdicts)] if verdicts.task.nunique() > 1 else []
    groups += list(verdicts.assign(kind=kinds).groupby("kind"))
    return [_always_good(name, g) for name, g in groups]


def _always_good(name: str, g: pd.DataFrame) -> str:
    tasks = sorted(g.task.unique())

    def always(column: str) -> str:
        good = g[g[column].isin(["best", "tied"])].groupby("schedule").task.nunique()
        return _names(sorted(good[good == len(tasks)].index))

    accuracy = always("accuracy")
    if (g.accuracy == "n/a").any():
        accuracy = "undetermined (too few seeds for the paired test)"
    scope = (
        f"{len(tasks)} tasks" if len(tasks) > 1 else "one task: a finding about it, not the kind"
    )
    return (
        f"{name} ({_names(tasks)}; {scope}): best or tied on final accuracy: {accuracy}; "
        f"best or tied on time to target: {always('speed')}."
    )


def reproduction(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two accuracy tables (``tables.accuracy``) side by side: agree when the 95% CIs overlap."""
    cols = ["task", "schedule", "lr", "n", "acc_mean", "acc_ci_lo", "acc_ci_hi"]
    both = a[cols].merge(b[cols], on=["task", "schedule"], how="outer", suffixes=("_a", "_b"))
    overlap = (both.acc_ci_lo_a <= both.acc_ci_hi_b) & (both.acc_ci_lo_b <= both.acc_ci_hi_a)
    both["same_lr"] = both.lr_a == both.lr_b
    both["agree"] = overlap.where(both.acc_ci_lo_a.notna() & both.acc_ci_lo_b.notna())
    return both
