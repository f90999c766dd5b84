"""The answer: a verdict per task x schedule, sentences that carry their numbers, guidance by
kind of task, and the reproduction check. Every rule is stated where it is applied, and the
report prints the rules beside the results.

Verdicts on final accuracy: "best" (highest mean test accuracy), "tied" (Holm-adjusted paired
Wilcoxon p >= ALPHA against the best), "worse" (p < ALPHA), "n/a" (fewer than two paired seeds).
On time to target (the task's headline target, in epochs): "best" (smallest Kaplan-Meier
median; ties go to the larger fraction reached), "tied" (its median is reached and its CI
overlaps the best's), "worse" (otherwise), "none" (no schedule's median reached the target),
"n/a" (one seed).
"""

import math

import pandas as pd

from benchmark.tasks import TASKS
from report import stats
from report.tables import headline_target

OPTIMIZER_FAMILY = {"sgd": "SGD", "adam": "Adam", "adamw": "Adam"}


def accuracy_verdicts(paired: pd.DataFrame) -> pd.Series:
    def verdict(row) -> str:
        if row.schedule == row.best:
            return "best"
        if row.n_pairs < 2:
            return "n/a"
        return "tied" if row.tied else "worse"

    return paired.apply(verdict, axis=1)


def speed_verdicts(ttt: pd.DataFrame) -> pd.Series:
    """Verdicts of one task's rows at one target (see the module docstring)."""
    ranked = ttt.sort_values(
        ["epoch_median", "frac_reached", "schedule"], ascending=[True, False, True]
    )
    best = ranked.iloc[0]
    if math.isinf(best.epoch_median):
        return pd.Series("none", index=ttt.index)
    if ttt.n.max() < 2:
        return pd.Series("n/a", index=ttt.index)

    def verdict(row) -> str:
        if row.name == best.name:
            return "best"
        overlap = row.epoch_lo <= best.epoch_hi and best.epoch_lo <= row.epoch_hi
        return "tied" if overlap and math.isfinite(row.epoch_median) else "worse"

    return ttt.apply(verdict, axis=1)


def matrix(paired: pd.DataFrame, ttt: pd.DataFrame) -> pd.DataFrame:
    """task, schedule, accuracy, target, speed: the recommendation matrix in long form."""
    acc = paired.assign(accuracy=accuracy_verdicts(paired))[["task", "schedule", "accuracy"]]
    parts = []
    for task in acc.task.unique():
        rows = ttt[(ttt.task == task) & (ttt.target == headline_target(ttt, task))]
        parts.append(
            rows.assign(speed=speed_verdicts(rows))[["task", "schedule", "target", "speed"]]
        )
    return acc.merge(pd.concat(parts), on=["task", "schedule"], how="left")


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
    best = a.loc[a.acc_mean.idxmax()]
    n = int(best.n)
    ci = "no CI: a single seed" if n < 2 else f"95% CI {best.acc_ci_lo:.4f} to {best.acc_ci_hi:.4f}"
    out = [
        f"{best.schedule} had the highest mean test accuracy, {best.acc_mean:.4f} ({ci}, "
        f"n = {n} seeds, lr {best.lr:.3g})."
    ]
    n_pairs = int(p.n_pairs.max())
    tied, worse = v[v.accuracy == "tied"].schedule, v[v.accuracy == "worse"].schedule
    test = "two-sided Wilcoxon signed-rank on paired seeds, Holm-corrected, alpha = 0.05"
    if n_pairs < 2:
        out.append("With one seed there is no paired test: no schedule is ranked against another.")
    else:
        out.append(
            f"Tied with it ({test}, n = {n_pairs} pairs): {_names(tied)}. "
            f"Clearly worse: {_names(worse)}."
        )
        floor = stats.smallest_p(n_pairs)
        if floor * max(1, len(p) - 1) >= stats.ALPHA:
            out.append(
                f"With n = {n_pairs} pairs the smallest p this test can give is "
                f"{floor:.3g} (before Holm's correction for {len(p) - 1} comparisons), "
                "so no schedule can be separated from the best at this n; more seeds "
                "would be needed."
            )
    target = headline_target(ttt, task)
    if derived.get(task) == target:
        own = sorted(set(ttt[ttt.task == task].target) - {target})
        out.append(
            f"Fewer than half the runs reached the task's own targets ({_names(map(str, own))}) "
            f"within this budget, so time to target is measured to {target:g}, a target the "
            "report added (3 in 4 runs reached it at their best)."
        )
    rows = ttt[(ttt.task == task) & (ttt.target == target)]
    fastest = rows.sort_values(["epoch_median", "frac_reached"], ascending=[True, False]).iloc[0]
    if math.isinf(fastest.epoch_median):
        out.append(
            f"No schedule reached dev accuracy {target:g} in half its runs: "
            f"{int(rows.n_reached.sum())} of {int(rows.n.sum())} runs reached it."
        )
    else:
        hi = "not reached" if math.isinf(fastest.epoch_hi) else f"{fastest.epoch_hi:.2f}"
        out.append(
            f"{fastest.schedule} reached dev accuracy {target:g} fastest: median "
            f"{fastest.epoch_median:.2f} epochs (95% CI {fastest.epoch_lo:.2f} to {hi}), "
            f"{int(fastest.n_reached)} of {int(fastest.n)} runs reached it."
        )
        speed = v.set_index("schedule").speed
        out.append(
            f"Tied with it on speed (the 95% CIs of the medians overlap): "
            f"{_names(speed.index[speed == 'tied'])}. Clearly slower: "
            f"{_names(speed.index[speed == 'worse'])}."
        )
        slow = rows[rows.frac_reached < 0.5].schedule
        if len(slow):
            out.append(f"Fewer than half the runs reached {target:g} with: {_names(slow)}.")
    diverged = a[a.n_diverged > 0]
    if len(diverged):
        out.append(
            "Diverged runs (counted in every number above): "
            + _names(
                f"{r.schedule} {int(r.n_diverged)} of {int(r.n)}" for r in diverged.itertuples()
            )
            + "."
        )
    return out


def kind_of(task: str) -> tuple[str, str]:
    """(kind, optimizer family) of a registered task; ("other", "") when it is unknown here."""
    t = TASKS.get(task)
    return (t.kind, OPTIMIZER_FAMILY.get(t.optimizer, t.optimizer)) if t else ("other", "")


def guidance(verdicts: pd.DataFrame) -> list[str]:
    """Per kind of task: the schedules that were best or tied on every task of that kind."""
    out = []
    groups = verdicts.assign(kind=[" with ".join(filter(None, kind_of(t))) for t in verdicts.task])
    for kind, g in groups.groupby("kind"):
        tasks = sorted(g.task.unique())
        good = g[g.accuracy.isin(["best", "tied"])].groupby("schedule").task.nunique()
        always = sorted(good[good == len(tasks)].index)
        fast = g[g.speed.isin(["best", "tied"])].groupby("schedule").task.nunique()
        quick = sorted(fast[fast == len(tasks)].index)
        scope = (
            f"{len(tasks)} tasks"
            if len(tasks) > 1
            else "one task, so this describes that task, not the kind"
        )
        out.append(
            f"{kind} ({_names(tasks)}; {scope}): best or tied on final accuracy on every "
            f"task: {_names(always)}; best or tied on time to target: {_names(quick)}."
        )
    return out


def reproduction(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two accuracy tables (``tables.accuracy``) side by side: agree when the 95% CIs overlap."""
    cols = ["task", "schedule", "lr", "n", "acc_mean", "acc_ci_lo", "acc_ci_hi"]
    both = a[cols].merge(b[cols], on=["task", "schedule"], how="outer", suffixes=("_a", "_b"))
    overlap = (both.acc_ci_lo_a <= both.acc_ci_hi_b) & (both.acc_ci_lo_b <= both.acc_ci_hi_a)
    both["same_lr"] = both.lr_a == both.lr_b
    both["agree"] = overlap.where(both.acc_ci_lo_a.notna() & both.acc_ci_lo_b.notna())
    return both
