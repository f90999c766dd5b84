"""The verdicts a reader acts on, per problem (task x budget), from comparisons with the best
(``mcb.py``): every schedule's mean minus the best mean of the others, with intervals that hold
for all schedules of the problem at once, and the words they support. Identical schedules are
merged before (``identical.py``), so each schedule below is one distinct hypothesis.

Final test accuracy (paired by seed; resampled over seeds and, where the records keep which
test examples each run got right, over test examples too):
- "best": ahead of every other schedule; "possibly best": cannot be told from the best;
  "within the margin of the best": cannot be told from it and at most the margin behind;
  "worse by less than the margin", "worse beyond the margin" (``mcb.verdicts``);
  "n/a": fewer than two schedules or two seeds that every schedule ran.
- ``Resolution``: the smallest margin the problem can show at its n and test set, and the
  seeds a sweep would need to resolve the chosen margin (``planning.seeds_to_plan``).
Time to the task's headline target: the restricted mean time to target, in epochs (a run that
never reached it counts as the whole budget, the restriction: the same for every run of the
problem), compared with the best the same way, paired by seed, no margin:
- "fastest": sooner than every other; "possibly fastest": cannot be told from the fastest;
  "slower": later than the fastest; "none": no run reached the target.
"""

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from benchmark.records.metrics import unpack_bits
from report import mcb, planning, stats
from report.tables import censored_times, headline_target

MARGIN = 0.005  # default margin: 0.5 accuracy points (sweep.json can set it)
N_A = "n/a"
GOOD = (mcb.BEST, mcb.POSSIBLY_BEST, mcb.WITHIN)  # as good as the best, for a reader's purpose
FASTEST, POSSIBLY_FASTEST, SLOWER, NONE = "fastest", "possibly fastest", "slower", "none"


def margin(sweep: dict) -> float:
    """The margin in accuracy (a fraction): sweep.json's report.equivalence_margin, else
    ``MARGIN``. Raises ValueError unless it is a number in (0, 1)."""
    value = (sweep.get("report") or {}).get("equivalence_margin", MARGIN)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"sweep.json: report.equivalence_margin must be in (0, 1), not {value!r}")
    return float(value)


class Problem(NamedTuple):
    """One problem's final runs as arrays: the schedules, the seeds every one of them ran."""

    schedules: list[str]
    seeds: list[int]
    acc: np.ndarray  # [schedule, seed] test accuracy
    correct: np.ndarray | None  # [schedule, seed, example] or None (``why``)
    why: str  # "" when ``correct`` is there, else why the test set counts as fixed


def problem(runs: pd.DataFrame, examples: dict[str, dict]) -> Problem:
    """``runs`` (one problem's final runs) on the seeds every schedule ran; per-example results
    from ``examples`` (``Results.examples``) where every run has them on one test set."""
    keys = runs.pivot_table(index="schedule", columns="seed", values="key", aggfunc="first")
    keys = keys.dropna(axis=1)
    acc = runs.pivot_table(index="schedule", columns="seed", values="test_acc", aggfunc="first")
    acc = acc.loc[keys.index, keys.columns].to_numpy(dtype=float)
    tests = [examples.get(k) for k in keys.to_numpy().ravel()]
    correct, why = None, ""
    if any(t is None for t in tests):
        why = "records before schema 4 keep no per-example results"
    elif len({(t["split"], t["examples"], t["labels_digest"]) for t in tests}) > 1:
        why = "the runs were tested on different examples"
    elif tests:
        bits = [unpack_bits(t["correct"], t["examples"]) for t in tests]
        correct = np.stack(bits).reshape(*acc.shape, -1)
        if not np.allclose(correct.mean(-1), acc, rtol=0, atol=1e-9):
            correct, why = None, "the records' accuracies disagree with their per-example results"
    return Problem(list(keys.index), [int(s) for s in keys.columns], acc, correct, why)


def accuracy(final: pd.DataFrame, examples: dict, margin: float):
    """Per problem of ``final``: (the verdict table, one row per schedule; the resolution
    table, one row per problem). Verdicts: task, schedule, n_seeds, acc_mean, gap (mean minus
    the best mean of the others) with its simultaneous 95% interval, top_share (the share of
    resamples in which it has the top mean, within [1/B, 1 - 1/B]: not a probability of being
    best), verdict. Resolution: ``_resolution``'s columns."""
    rows, resolution = [], []
    for task, runs in final.groupby("task"):
        p = problem(runs, examples)
        k, n = p.acc.shape
        out = pd.DataFrame({"task": task, "schedule": p.schedules, "n_seeds": n,
                            "acc_mean": p.acc.mean(1) if n else math.nan})  # fmt: skip
        if k < 2 or n < 2:
            nan = dict.fromkeys(["gap", "gap_ci_lo", "gap_ci_hi", "top_share"], math.nan)
            rows.append(out.assign(**nan, verdict=N_A))
            resolution.append(_resolution(task, p, None, margin))
            continue
        res = mcb.mcb(p.acc, p.correct)
        words = mcb.verdicts(res.lower, res.upper, margin)
        rows.append(out.assign(gap=res.estimate, gap_ci_lo=res.lower, gap_ci_hi=res.upper,
                               top_share=res.selected, verdict=words))  # fmt: skip
        resolution.append(_resolution(task, p, res, margin))
    return pd.concat(rows, ignore_index=True), pd.DataFrame(resolution)


def _resolution(task: str, p: Problem, res: mcb.MCB | None, margin: float) -> dict:
    """task, schedules, n_seeds, n_examples (0: the test set counts as fixed), seed_sd (SD of
    a run's paired difference with the best), test_set_se (what the test set adds to the SE of
    a difference of means), resolvable (the smallest margin this problem can show), margin,
    below (margin < resolvable), seeds_plan_lo / _hi (``planning.seeds_to_plan``)."""
    k, n = p.acc.shape
    row = {"task": task, "schedules": k, "n_seeds": n,
           "n_examples": 0 if p.correct is None else p.correct.shape[-1]}  # fmt: skip
    values = dict.fromkeys(["seed_sd", "test_set_se", "resolvable"], math.nan)
    plan = (math.nan, math.nan)
    if res is not None:
        values = {"seed_sd": float(res.seed_sd), "test_set_se": float(res.test_set_se),
                  "resolvable": float(res.resolvable)}  # fmt: skip
        plan = planning.seeds_to_plan(res.seed_sd, n - 1, margin, k, res.test_set_se)
    return row | values | {"margin": margin, "below": values["resolvable"] > margin,
                           "seeds_plan_lo": plan[0], "seeds_plan_hi": plan[1]}  # fmt: skip


def times(runs: pd.DataFrame, target: str) -> pd.DataFrame:
    """Epochs to ``target`` (as in the column names, "0.9") per schedule x seed, restricted at
    the budget: a run that never reached it counts as its whole budget."""
    t = np.minimum(censored_times(runs, target, "epoch")[0], runs.epochs.to_numpy(dtype=float))
    return runs.assign(t=t).pivot_table(index="schedule", columns="seed", values="t")


def speed(runs: pd.DataFrame, target: float) -> pd.DataFrame:
    """One problem's final ``runs`` at dev-accuracy ``target``: task, target, schedule, n,
    n_reached, reached (the fraction, with its exact Clopper-Pearson 95% interval), rmst (the
    restricted mean epochs to the target, with its 95% t interval), gap (rmst minus the
    smallest rmst of the others, with its simultaneous 95% interval on the seeds every
    schedule ran) and the verdict."""
    label = f"{target:g}"
    rows = []
    for schedule, g in runs.groupby("schedule"):
        hits = int(g[f"reached_{label}"].fillna(False).astype(bool).sum())
        ci = scipy_stats.binomtest(hits, len(g)).proportion_ci(confidence_level=stats.LEVEL)
        t = times(g, label).to_numpy().ravel()
        lo, hi = stats.mean_ci(t)
        rows.append({"task": runs.task.iloc[0], "target": target, "schedule": schedule,
                     "n": len(g), "n_reached": hits, "reached": hits / len(g),
                     "reached_ci_lo": ci.low, "reached_ci_hi": ci.high, "rmst": t.mean(),
                     "rmst_ci_lo": lo, "rmst_ci_hi": hi})  # fmt: skip
    out = pd.DataFrame(rows).assign(gap=math.nan, gap_ci_lo=math.nan, gap_ci_hi=math.nan)
    table = times(runs, label).dropna(axis=1)
    if out.n_reached.sum() == 0 or table.shape[0] < 2 or table.shape[1] < 2:
        return out.assign(verdict=NONE if out.n_reached.sum() == 0 else N_A)
    res = mcb.mcb(-table.to_numpy())  # sooner is better: the best is the fastest
    at = out.schedule.map({s: i for i, s in enumerate(table.index)}).to_numpy()
    out["gap"], out["gap_ci_lo"], out["gap_ci_hi"] = (
        -res.estimate[at],
        -res.upper[at],
        -res.lower[at],
    )
    words = np.select([res.lower > 0, res.upper < 0], [FASTEST, SLOWER], POSSIBLY_FASTEST)
    return out.assign(verdict=words[at])


def speeds(final: pd.DataFrame, ttt: pd.DataFrame) -> pd.DataFrame:
    """``speed`` of every problem of ``final`` at its headline target (``tables.time_to_target``'s
    ``ttt`` gives the targets: ``tables.headline_target``)."""
    return pd.concat(
        [speed(final[final.task == t], headline_target(ttt, t)) for t in sorted(ttt.task.unique())],
        ignore_index=True,
    )


def matrix(acc: pd.DataFrame, speed: pd.DataFrame) -> pd.DataFrame:
    """task, schedule, accuracy (the verdict), gap with its interval, target, speed: the verdict
    matrix in long form."""
    cols = ["task", "schedule", "verdict", "gap", "gap_ci_lo", "gap_ci_hi"]
    words = acc[cols].rename(columns={"verdict": "accuracy"})
    fast = speed.rename(columns={"verdict": "speed"})[["task", "schedule", "target", "speed"]]
    return words.merge(fast, on=["task", "schedule"], how="left").fillna({"speed": "-"})
