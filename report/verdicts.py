"""The verdicts a reader acts on: every schedule against its task's best, in words, from the
tests of ``compare.py``. Identical schedules are merged before (``identical.py``), so each
test below is one distinct hypothesis.

Final test accuracy (paired by seed, on counts of correct test examples):
- "best": the highest mean; "best, uncertain" when it has the highest mean in fewer than
  ``BEST_SURE`` of seed resamples (``p_best``): another schedule could well be the best.
- "equivalent": TOST shows the mean paired difference within +-margin (Holm over the task's
  other schedules, alpha ``ALPHA``). It stands even when the Wilcoxon test also finds the
  difference: a difference shown smaller than the margin is one a reader need not act on.
- "worse" ("better"): the Wilcoxon signed-rank test, Holm-adjusted, finds a difference and
  equivalence is not shown.
- "inconclusive": neither; ``seeds_needed`` estimates how many seeds would likely settle it.
- "n/a": fewer than two paired seeds.
Time to the task's headline target (Kaplan-Meier, epochs):
- "best": the smallest median, shared by every schedule with that median (a tie is a tie).
- "worse" ("better"): the log-rank test against each schedule tied for fastest (the largest
  p of those), Holm-adjusted, finds a difference.
- "inconclusive": not found; "none": no schedule's median reached the target; "n/a": one run.
"""

import math

import numpy as np
import pandas as pd

from report import compare, stats
from report.compare import ALPHA

MARGIN = 0.005  # default equivalence margin: 0.5 accuracy points (sweep.json can set it)
BEST_SURE = 0.9  # a best with a smaller P(best) is "best, uncertain"
GOOD = ("best", "best, uncertain", "equivalent")  # as good as the best, for a reader's purpose


def margin(sweep: dict) -> float:
    """The equivalence margin in accuracy (a fraction): sweep.json's report.equivalence_margin,
    else ``MARGIN``. Raises ValueError unless it is a number in (0, 1)."""
    value = (sweep.get("report") or {}).get("equivalence_margin", MARGIN)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"sweep.json: report.equivalence_margin must be in (0, 1), not {value!r}")
    return float(value)


def accuracy(runs: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One task's final runs (schedule, seed, correct, n_test) against its best schedule.

    Columns: schedule, best, n_pairs, mean_diff (accuracy, schedule - best) with its 95% t
    interval, p (Wilcoxon), p_holm, p_equiv (TOST), p_equiv_holm, p_best, pi (P(schedule >
    best) over pairs of runs), verdict, seeds_needed (inconclusive only), margin.
    """
    n_test = int(runs.n_test.max())
    table = runs.pivot_table(index="seed", columns="schedule", values="correct", aggfunc="first")
    best = table.mean().idxmax()
    p_best = compare.prob_best(table.dropna().to_numpy())
    rows = []
    for name, chance in zip(table.columns, p_best, strict=True):
        pair = table[list(dict.fromkeys([name, best]))].dropna()
        d = (pair[name] - pair[best]).to_numpy()
        lo, hi = stats.mean_ci(d)
        rows.append({"schedule": name, "best": best, "n_pairs": len(d),
                     "mean_diff": d.mean() / n_test, "diff_ci_lo": lo / n_test,
                     "diff_ci_hi": hi / n_test, "p": compare.wilcoxon_p(d),
                     "p_equiv": compare.tost_p(d, margin * n_test), "p_best": chance,
                     "pi": compare.prob_improvement(pair[name], pair[best]),
                     "sd": np.std(d, ddof=1) if len(d) > 1 else math.nan})  # fmt: skip
    out = pd.DataFrame(rows)
    rest, m = out.schedule != best, len(out) - 1
    out.loc[~rest, ["p", "p_equiv"]] = math.nan  # the best is not compared with itself
    out["p_holm"] = out["p_equiv_holm"] = math.nan
    out.loc[rest, "p_holm"] = compare.holm(out.p[rest])
    out.loc[rest, "p_equiv_holm"] = compare.holm(out.p_equiv[rest])
    out["verdict"] = out.apply(_accuracy_word, axis=1)
    out["seeds_needed"] = [
        compare.seeds_needed(r.mean_diff * n_test, r.sd, margin * n_test, m)
        if r.verdict == "inconclusive" else math.nan
        for r in out.itertuples()
    ]  # fmt: skip
    cols = ["schedule", "best", "n_pairs", "mean_diff", "diff_ci_lo", "diff_ci_hi", "p"]
    cols += ["p_holm", "p_equiv", "p_equiv_holm", "p_best", "pi", "verdict", "seeds_needed"]
    return out[cols].assign(margin=margin)


def _accuracy_word(row) -> str:
    if row.schedule == row.best:
        return "best" if row.p_best >= BEST_SURE else "best, uncertain"
    if row.n_pairs < 2:
        return "n/a"
    if row.p_equiv_holm < ALPHA:
        return "equivalent"
    if row.p_holm < ALPHA:
        return "worse" if row.mean_diff < 0 else "better"
    return "inconclusive"


def speed(rows: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One task's time-to-target rows at its headline target (``tables.time_to_target``) with
    z, p (log-rank against the fastest), p_holm and the verdict; ``runs``: its final runs."""
    target = f"{rows.target.iloc[0]:g}"
    fastest = rows.epoch_median == rows.epoch_median.min()
    out = rows.assign(z=math.nan, p=math.nan, p_holm=math.nan)
    if rows.n.max() < 2 or math.isinf(rows.epoch_median.min()):
        return out.assign(verdict="n/a" if rows.n.max() < 2 else "none")

    def sample(schedule: str) -> tuple:
        g = runs[runs.schedule == schedule]
        reached = g[f"reached_{target}"].fillna(False).to_numpy(dtype=bool)
        return g[f"ttt_{target}_epoch"].to_numpy(dtype=float), reached, g.epochs.to_numpy(float)

    for i in out.index[~fastest]:
        tests = [compare.logrank(sample(out.schedule[i]), sample(f)) for f in out.schedule[fastest]]
        out.loc[i, ["z", "p"]] = max(tests, key=lambda t: t[1])  # the least significant
    out.loc[~fastest, "p_holm"] = compare.holm(out.p[~fastest])
    words = np.where(out.p_holm < ALPHA, np.where(out.z < 0, "worse", "better"), "inconclusive")
    return out.assign(verdict=np.where(fastest, "best", words))


def matrix(paired: pd.DataFrame, speed: pd.DataFrame) -> pd.DataFrame:
    """task, schedule, accuracy, p_best, target, speed: the verdict matrix in long form."""
    acc = paired.rename(columns={"verdict": "accuracy"})[["task", "schedule", "accuracy", "p_best"]]
    fast = speed.rename(columns={"verdict": "speed"})[["task", "schedule", "target", "speed"]]
    return acc.merge(fast, on=["task", "schedule"], how="left").fillna({"speed": "-"})
