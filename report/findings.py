"""The answer in sentences: a one-line takeaway per task, the details that carry their
numbers, guidance by kind of task, and the reproduction check. The verdicts themselves and
their rules are in ``verdicts.py``; the report prints the rules beside the results. A task's
kind and its optimizer's family come from the run records (``task.kind``,
``optimizer.family``), so a plugin's task of a new kind is grouped as its records say.
"""

import math

import numpy as np
import pandas as pd

from report import compare, stats
from report.compare import ALPHA
from report.numbers import fixed, percent, significant
from report.tables import REACH_QUANTILE
from report.verdicts import GOOD


def kinds(runs: pd.DataFrame) -> dict[str, str | None]:
    """Each task's kind with its optimizer family, as its records give them ("convex with
    SGD"); None where they do not give the kind (schema-1 records)."""
    first, out = runs.groupby("task")[["task_kind", "optimizer_family"]].first(), {}
    for task, kind, family in first.itertuples():
        with_family = f"{kind} with {family}" if isinstance(family, str) else kind
        out[task] = with_family if isinstance(kind, str) else None  # NaN: not in the record
    return out


def plural(n: int, word: str) -> str:
    """ "1 task", "2 tasks"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def name_list(items) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"


def _points(diff: float) -> str:
    return f"{fixed(100 * diff, 2, sign=True)} points"


def _fastest(speed: pd.DataFrame) -> str:
    """Who reached the headline target first, with the median: "cosine and x (median ...)"."""
    top = speed[speed.verdict == "best"]
    if top.empty:
        return f"no schedule's median reached dev accuracy {speed.target.iloc[0]:g}"
    names = " and ".join(top.schedule) if len(top) < 3 else f"{len(top)} schedules"
    return (
        f"fastest to dev accuracy {top.target.iloc[0]:g}: {names} "
        f"(median {fixed(top.epoch_median.iloc[0], 2)} epochs)"
    )


def takeaway(task: str, acc: pd.DataFrame, paired: pd.DataFrame, speed: pd.DataFrame) -> str:
    """One line for page 1: the best with its numbers and certainty, what is equivalent to it,
    and what reached the target first."""
    p, s = paired[paired.task == task], speed[speed.task == task]
    best = p[p.verdict.str.startswith("best")].iloc[0]
    a = acc[(acc.task == task) & (acc.schedule == best.schedule)].iloc[0]
    ci = (
        ""
        if math.isnan(a.acc_ci_lo)
        else f", 95% CI {fixed(a.acc_ci_lo, 4)} to {fixed(a.acc_ci_hi, 4)}"
    )
    sure = f"best in {percent(best.p_best)} of seed resamples"
    equiv = p[p.verdict == "equivalent"].schedule
    return (
        f"{best.schedule} has the highest mean test accuracy, {fixed(a.acc_mean, 4)} "
        f"(n = {int(a.n)}"
        f"{ci}; {sure}); equivalent within ±{100 * best.margin:g} points: {name_list(equiv)}; "
        f"{_fastest(s)}."
    )


def task_sentences(task, acc, paired, speed, merged: list[list[str]], added) -> list[str]:
    """What the results say about one task, each claim with its n, estimate and interval.

    ``merged``: the task's identical schedules; ``added``: targets the report added to it."""
    p, s, a = (f[f.task == task] for f in (paired, speed, acc))
    out = _accuracy_sentences(p, a) + _speed_sentences(s, added)
    if merged:
        out.append(
            f"{' and '.join(' = '.join(g) for g in merged)} at this budget: identical lr "
            "sequences and results on every seed, so one schedule and one hypothesis each."
        )
    diverged = a[a.n_diverged > 0]
    if len(diverged):
        runs = (f"{r.schedule} {int(r.n_diverged)} of {int(r.n)}" for r in diverged.itertuples())
        out.append(f"Diverged runs (counted in every number above): {name_list(runs)}.")
    return out


def _accuracy_sentences(p: pd.DataFrame, a: pd.DataFrame) -> list[str]:
    best = p[p.verdict.str.startswith("best")].iloc[0]
    top = a[a.schedule == best.schedule].iloc[0]
    n, margin, m = int(top.n), 100 * best.margin, len(p) - 1
    ci = (
        "no CI: one run"
        if n < 2
        else f"95% CI {fixed(top.acc_ci_lo, 4)} to {fixed(top.acc_ci_hi, 4)}"
    )
    uncertain = ", so which schedule is best is uncertain" if best.verdict != "best" else ""
    out = [
        f"{best.schedule} had the highest mean test accuracy, {fixed(top.acc_mean, 4)} ({ci}, "
        f"n = {n} runs, one per seed, lr {significant(top.lr, 3)}); it has the highest mean in "
        f"{percent(best.p_best)} of {stats.RESAMPLES:,} resamples of the seeds{uncertain}."
    ]
    n_pairs = int(p.n_pairs.max())
    if not compare.separable(n_pairs, m):
        out.append(
            f"With n = {n_pairs} paired seeds the Wilcoxon test cannot reach Holm's level for "
            f"{m} comparisons (its smallest p is {significant(compare.smallest_p(n_pairs), 3)}), "
            "so no schedule can be found worse at this n."
        )

    def listed(verdict: str, extra=lambda r: "") -> str:
        rows = p[p.verdict == verdict]
        return name_list(
            f"{r.schedule} ({_points(r.mean_diff)}{extra(r)})" for r in rows.itertuples()
        )

    def needed(r) -> str:
        return "; more than 1,000 seeds" if math.isinf(r.seeds_needed) else (
            f"; ~{fixed(r.seeds_needed, 0)} seeds would likely settle it")  # fmt: skip

    return [
        *out,
        f"Equivalent to it within ±{margin:g} points (paired TOST, Holm, alpha {ALPHA:g}): "
        f"{listed('equivalent')}.",
        f"Worse (paired Wilcoxon signed-rank on correct test examples, Holm): {listed('worse')}.",
        f"Inconclusive, neither shown different nor equivalent: {listed('inconclusive', needed)}.",
    ]


def _speed_sentences(s: pd.DataFrame, added) -> list[str]:
    target = s.target.iloc[0]
    out = []
    if target in added:
        out.append(
            f"Fewer than half the runs reached the task's own targets within this budget, so "
            f"time to target is measured to {target:g}, a target the report added: the "
            f"{100 * REACH_QUANTILE:g}th percentile of the runs' best dev accuracy, rounded "
            "down to 0.5 points."
        )
    top = s[s.verdict == "best"]
    if top.empty:
        reached = f"{int(s.n_reached.sum())} of {int(s.n.sum())} runs reached it"
        return [*out, f"No schedule reached dev accuracy {target:g} in half its runs: {reached}."]
    f = top.iloc[0]
    hi = "not reached" if math.isinf(f.epoch_hi) else f"{fixed(f.epoch_hi, 2)}"
    ci = "no CI: one run" if math.isnan(f.epoch_lo) else f"95% CI {fixed(f.epoch_lo, 2)} to {hi}"
    out.append(
        f"{name_list(top.schedule)} reached dev accuracy {target:g} fastest: Kaplan-Meier median "
        f"{fixed(f.epoch_median, 2)} epochs ({ci}" + (", each" if len(top) > 1 else "") + ")."
    )
    return [
        *out,
        f"Slower (log-rank test against the fastest, Holm, alpha {ALPHA:g}): "
        f"{name_list(s.schedule[s.verdict == 'worse'])}. Not found slower: "
        f"{name_list(s.schedule[s.verdict.isin(['inconclusive', 'better'])])}.",
    ]


def guidance(matrix: pd.DataFrame, kinds: dict[str, str | None], task_of) -> list[str]:
    """The schedules best or equivalent on every task (at every budget), overall and per kind
    of task; ``kinds`` and ``task_of`` give a problem's kind and task (``Results.task_of``)."""
    groups = [("On every task", matrix)] if matrix.task.nunique() > 1 else []
    groups += list(matrix.assign(kind=matrix.task.map(kinds)).groupby("kind"))  # None: left out
    unknown = sorted(t for t in matrix.task.unique() if kinds[t] is None)
    said = [f"Kind not in the records (schema 1): {name_list(unknown)}."] if unknown else []
    return [_always_good(name, g, task_of) for name, g in groups] + said


def _always_good(name: str, g: pd.DataFrame, task_of) -> str:
    problems = sorted(g.task.unique())
    n_tasks = len({task_of(p) for p in problems})

    def always(column: str, good) -> str:
        hits = g[g[column].isin(good)].groupby("schedule").task.nunique()
        return name_list(sorted(hits[hits == len(problems)].index))

    scope = (
        "one task: a finding about it, not the kind" if n_tasks == 1 else plural(n_tasks, "task")
    )
    if len(problems) > n_tasks:
        scope += f", {len(problems)} task x budget problems"
    listed = ("; " if any(", " in p for p in problems) else ", ").join(problems)
    return (
        f"{name} ({listed}; {scope}): best or equivalent on final accuracy: "
        f"{always('accuracy', GOOD)}; fastest to the target: {always('speed', ('best',))}."
    )


def reproduction(a: pd.DataFrame, b: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Two sets of final runs (task, schedule, lr, test_acc), cell by cell: "agree" when a Welch
    TOST shows the means within +-margin, else "differ" when a Welch t test finds them
    different (both Holm over the cells), else "inconclusive"; "n/a" below two runs a side."""
    rows = []
    for (task, schedule), x in a.groupby(["task", "schedule"]):
        y = b[(b.task == task) & (b.schedule == schedule)]
        rows.append({"task": task, "schedule": schedule, "lr_a": x.lr.iloc[0],
                     "lr_b": y.lr.iloc[0] if len(y) else math.nan, "n_a": len(x), "n_b": len(y),
                     "acc_mean_a": x.test_acc.mean(), "acc_mean_b": y.test_acc.mean(),
                     "p_differ": compare.welch_p(x.test_acc, y.test_acc),
                     "p_equiv": compare.welch_tost_p(x.test_acc, y.test_acc, margin)})  # fmt: skip
    out = pd.DataFrame(rows)
    out["p_differ"], out["p_equiv"] = compare.holm(out.p_differ), compare.holm(out.p_equiv)
    settled = [out[["n_a", "n_b"]].min(axis=1) < 2, out.p_equiv < ALPHA, out.p_differ < ALPHA]
    out["agreement"] = np.select(settled, ["n/a", "agree", "differ"], "inconclusive")
    return out.assign(margin=margin)
