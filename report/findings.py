"""The answer in sentences: a one-line takeaway per task, the details that carry their
numbers, guidance by kind of task, and the reproduction check. The verdicts themselves and
their rules are in ``verdicts.py``; the report prints the rules beside the results. A task's
kind and its optimizer's family come from the run records (``task.kind``,
``optimizer.family``), so a plugin's task of a new kind is grouped as its records say.
"""

import math

import numpy as np
import pandas as pd

from report import compare, mcb
from report.compare import ALPHA
from report.numbers import fixed
from report.tables import REACH_QUANTILE
from report.verdicts import FASTEST, GOOD, N_A, NONE, POSSIBLY_FASTEST, SLOWER


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


def _points(value: float) -> str:
    return f"{fixed(100 * value, 2, sign=True)}"


def _gap(r) -> str:
    """A schedule's gap to the best of the others with its simultaneous interval, in points."""
    return f"{_points(r.gap)} points [{_points(r.gap_ci_lo)}, {_points(r.gap_ci_hi)}]"


def _evidence(res) -> str:
    """ "n = 10 seeds x 2,000 test examples" (or "n = 10 seeds, test set fixed")."""
    examples = f" x {res.n_examples:,} test examples" if res.n_examples else ", test set fixed"
    return f"n = {plural(int(res.n_seeds), 'seed')}{examples}"


def possibly_best(v: pd.DataFrame) -> list[str]:
    """The schedules of a verdict table (one problem) whose intervals reach 0, so that any may
    be the best: best, possibly best, within the margin (``GOOD``)."""
    return list(v.schedule[v.verdict.isin(GOOD)])


def _who(v: pd.DataFrame) -> str:
    """ "cosine is best, ..." or "possibly best: a, b (2 of 13 schedules)"."""
    best = v.schedule[v.verdict == mcb.BEST]
    if len(best):
        return f"{best.iloc[0]} is best, ahead of every other schedule"
    return (
        f"possibly best: {name_list(possibly_best(v))} ({len(possibly_best(v))} of "
        f"{plural(len(v), 'schedule')}; none shown ahead of all)"
    )


def takeaway(task: str, verdicts_: pd.DataFrame, resolution: pd.DataFrame, speed) -> str:
    """One line for page 1: who may be the best, what is within the margin, how many are
    worse, the smallest margin the problem can resolve, and who reached the target first."""
    v, res = verdicts_[verdicts_.task == task], resolution[resolution.task == task].iloc[0]
    if (v.verdict == N_A).all():
        return f"no comparison ({_evidence(res)}); {_fastest(speed[speed.task == task])}."
    within = v.schedule[v.verdict == mcb.WITHIN]
    worse = v.verdict.isin([mcb.WORSE_WITHIN, mcb.WORSE, mcb.WORSE_BEYOND]).sum()
    return (
        f"{_who(v)}; of them shown within {fixed(100 * res.margin, 2)} points of the best: "
        f"{name_list(within)}; worse: {worse} ({_evidence(res)}; {_resolves(res)}); "
        f"{_fastest(speed[speed.task == task])}."
    )


def _resolves(res) -> str:
    if math.isnan(res.resolvable):
        return "no margin resolvable"
    below = ", below the margin" if res.below else ""
    return f"resolves {fixed(100 * res.resolvable, 2)} points{below}"


def _fastest(s: pd.DataFrame) -> str:
    """Who reached the headline target first: "fastest to dev accuracy 0.9: a" or "possibly"."""
    target = f"dev accuracy {s.target.iloc[0]:g}"
    if (s.verdict == NONE).all():
        return f"no run reached {target}"
    top = s.schedule[s.verdict == FASTEST]
    if len(top):
        return f"fastest to {target}: {top.iloc[0]}"
    maybe = s.schedule[s.verdict == POSSIBLY_FASTEST]
    names = name_list(maybe) if len(maybe) < 4 else f"any of {len(maybe)} schedules"
    return f"possibly fastest to {target}: {names}"


def task_sentences(task, acc, verdicts_, resolution, speed, merged, added) -> list[str]:
    """What the results say about one problem, each claim with its n, estimate and interval.

    ``merged``: the problem's identical schedules; ``added``: targets the report added to it."""
    v, s, a = (f[f.task == task] for f in (verdicts_, speed, acc))
    res = resolution[resolution.task == task].iloc[0]
    out = _accuracy_sentences(v, a, res) + _speed_sentences(s, added)
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


def _accuracy_sentences(v: pd.DataFrame, a: pd.DataFrame, res) -> list[str]:
    if (v.verdict == N_A).all():
        return [f"No comparison with the best: it needs two schedules and two seeds that "
                f"every schedule ran ({_evidence(res)})."]  # fmt: skip
    means = a.set_index("schedule").acc_mean

    def listed(*words: str) -> str:
        rows = v[v.verdict.isin(words)].sort_values("gap", ascending=False)
        return name_list(f"{r.schedule} ({fixed(means[r.schedule], 4)}; {_gap(r)})"
                         for r in rows.itertuples())  # fmt: skip

    margin = fixed(100 * res.margin, 2)
    out = [
        f"Test accuracy, each schedule's mean and its gap to the best mean of the others with "
        f"its simultaneous 95% interval ({_evidence(res)}): {_who(v)}.",
        f"Best: {listed(mcb.BEST)}. Possibly best and within {margin} points of the best: "
        f"{listed(mcb.WITHIN)}. Possibly best, not shown within the margin: "
        f"{listed(mcb.POSSIBLY_BEST)}.",
        f"Worse by less than {margin} points: {listed(mcb.WORSE_WITHIN)}. Worse, by how much "
        f"not resolved: {listed(mcb.WORSE)}. Worse beyond the margin: "
        f"{name_list(v.schedule[v.verdict == mcb.WORSE_BEYOND])}.",
        _plan(res),
    ]
    return out


def _plan(res) -> str:
    """The smallest margin the problem resolves, and the seeds to plan for the chosen one."""
    margin = f"{fixed(100 * res.margin, 2)} points"
    said = (
        f"At this n the problem resolves margins down to about {fixed(100 * res.resolvable, 2)} "
        "points (the median half-width of the comparisons with the best)"
    )
    if res.below:
        said += f"; the chosen margin, {margin}, is below it, so a schedule as good as the best "
        said += "is seldom shown within it"
    if math.isinf(res.seeds_plan_lo):
        plan = "no number of seeds would resolve it on this test set (a larger one would)"
    else:
        hi = "more than 1,000" if math.isinf(res.seeds_plan_hi) else f"{res.seeds_plan_hi:.0f}"
        plan = f"{res.seeds_plan_lo:.0f} to {hi} seeds per schedule would resolve it"
    return (
        f"{said}. To resolve {margin}: {plan} (at the SD of paired run differences, "
        f"{fixed(100 * res.seed_sd, 2)} points, and at its upper 95% confidence limit)."
    )


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
    reached = f"{int(s.n_reached.sum())} of {int(s.n.sum())} runs reached it"
    if (s.verdict == NONE).all():
        return [*out, f"No run reached dev accuracy {target:g}."]

    def listed(*words: str) -> str:
        rows = s[s.verdict.isin(words)].sort_values("rmst")
        return name_list(
            f"{r.schedule} ({fixed(r.rmst, 2)} epochs, {r.n_reached} of {r.n} reached)"
            for r in rows.itertuples()
        )

    return [
        *out,
        f"Time to dev accuracy {target:g} ({reached}; restricted mean epochs, a run that never "
        f"reached it counted at the end of its budget; compared with the fastest, paired by "
        f"seed, simultaneous 95% intervals): fastest or possibly fastest: "
        f"{listed(FASTEST, POSSIBLY_FASTEST)}; slower: {listed(SLOWER)}.",
    ]


def guidance(matrix: pd.DataFrame, kinds: dict[str, str | None], task_of) -> list[str]:
    """The schedules as good as the best (best, possibly best or within the margin) on every
    task (at every budget), overall and per kind of task; ``kinds`` and ``task_of`` give a
    problem's kind and task (``Results.task_of``)."""
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
        f"{name} ({listed}; {scope}): as good as the best on final accuracy (best, possibly "
        f"best or within the margin): {always('accuracy', GOOD)}; fastest or possibly fastest "
        f"to the target: {always('speed', (FASTEST, POSSIBLY_FASTEST))}."
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
