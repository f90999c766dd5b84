"""The report's statistics, each a small function of plain arrays or one tidy DataFrame.

- ``describe``: n, mean, std, 95% percentile-bootstrap CI of the mean (fixed seed), and the
  interquartile mean (IQM: the mean of the middle 50%, robust to one bad seed; Agarwal et al.
  2021).
- ``kaplan_meier`` / ``km_median``: time to target with censoring. A run that never reached
  the target is censored at the end of its budget; its time is never imputed. Pointwise CIs
  use Greenwood's variance on the log(-log) scale; the median's CI is where those bands cross
  0.5 (Brookmeyer and Crowley 1982), so it can be open-ended ("not reached").
- ``paired_vs_best``: within a task, every schedule against the best one on the same seeds:
  two-sided Wilcoxon signed-rank, Holm's step-down correction, and the probability of
  improvement P(X > Y) with a paired bootstrap CI. A schedule is tied with the best when its
  Holm-adjusted p is at least ``ALPHA``.
- ``profile_ratios`` / ``performance_profile``: Dolan and More (2002) profiles across tasks;
  ``ranks`` and ``friedman`` (exploratory: tasks are few and not a random sample).
- ``robustness``: from the tune runs, the contiguous range of grid lrs around the schedule's
  best whose mean dev accuracy is within ``ROBUST_POINTS`` of the best.
"""

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05  # family-wise error rate for "tied with the best"
LEVEL = 0.95  # confidence level of every interval
BOOTSTRAP_SEED = 20261124  # fixed: the same results give the same intervals
BOOTSTRAP_SAMPLES = 10_000
ROBUST_POINTS = 0.005  # accuracy within 0.5 points of the best counts as "as good"


def bootstrap_ci(values, statistic=np.mean, level: float = LEVEL) -> tuple[float, float]:
    """Percentile-bootstrap CI of ``statistic`` (NaN, NaN below two values)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = statistic(x[rng.integers(0, len(x), (BOOTSTRAP_SAMPLES, len(x)))], axis=1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def iqm(values) -> float:
    """Interquartile mean: the mean after trimming 25% from each end."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def describe(values) -> dict:
    """n, mean, std (n-1), ci_lo, ci_hi (bootstrap) and iqm of ``values``."""
    x = np.asarray(values, dtype=float)
    lo, hi = bootstrap_ci(x)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
    return {
        "n": len(x),
        "mean": float(np.mean(x)),
        "std": std,
        "ci_lo": lo,
        "ci_hi": hi,
        "iqm": iqm(x),
    }


def kaplan_meier(times, reached, level: float = LEVEL) -> pd.DataFrame:
    """The survival curve S(t) = P(target not yet reached at t) at each event time.

    ``times``: when each run reached the target or, when it did not, when it was censored.
    Columns: time, at_risk, events, survival, lo, hi (log-log bands). Where S falls to 0 the
    band is [0, 0] when all n runs having reached by then bounds the median (2^-n below the
    band's tail, n >= 6 at 95%), else [0, 1]; with fewer than two runs the bands are NaN.
    """
    t, hit = np.asarray(times, dtype=float), np.asarray(reached, dtype=bool)
    tail = (1 - level) / 2
    z = stats.norm.ppf((1 + level) / 2)
    rows, surv, greenwood = [], 1.0, 0.0
    for time in np.unique(t[hit]):
        at_risk, events = int(np.sum(t >= time)), int(np.sum((t == time) & hit))
        surv *= 1 - events / at_risk
        if events < at_risk:
            greenwood += events / (at_risk * (at_risk - events))
        if len(t) < 2:
            lo = hi = math.nan
        elif 0 < surv < 1:
            half = z * math.sqrt(greenwood) / abs(math.log(surv))
            lo, hi = surv ** math.exp(half), surv ** math.exp(-half)
        else:
            lo, hi = 0.0, 0.0 if 0.5 ** len(t) <= tail else 1.0  # S = 0: every run reached
        rows.append((time, at_risk, events, surv, lo, hi))
    frame = pd.DataFrame(rows, columns=["time", "at_risk", "events", "survival", "lo", "hi"])
    return frame.astype({"at_risk": int, "events": int} | dict.fromkeys(frame.columns[3:], float))


def km_median(times, reached, level: float = LEVEL) -> tuple[float, float, float]:
    """Median time to target and its CI; inf where the curve or a band never falls to 0.5
    (NaN bounds with fewer than two runs)."""
    km = kaplan_meier(times, reached, level)

    def first_below(col: str) -> float:
        below = km.time[km[col] <= 0.5]
        return float(below.iloc[0]) if len(below) else math.inf

    if len(np.asarray(times)) < 2:
        return first_below("survival"), math.nan, math.nan
    return first_below("survival"), first_below("lo"), first_below("hi")


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out, ok = np.full(len(p), math.nan), ~np.isnan(p)
    order = np.argsort(p[ok])
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[ok][order])
    out[np.flatnonzero(ok)[order]] = np.minimum(adjusted, 1.0)
    return out


def wilcoxon_p(diffs) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (exact when scipy can: no ties).

    1.0 when every difference is zero; NaN with no pairs.
    """
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        return math.nan
    if not np.any(d):
        return 1.0
    with warnings.catch_warnings():  # the normal approximation warns at small n; it is used
        warnings.simplefilter("ignore", UserWarning)  # only when zeros or ties rule out exact
        return float(stats.wilcoxon(d).pvalue)


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p an exact Wilcoxon test can give with ``n_pairs`` pairs."""
    return min(1.0, 2.0 / 2**n_pairs)


def prob_improvement(x, y) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of runs (the Mann-Whitney U / (n m))."""
    x, y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def prob_improvement_ci(x, y, level: float = LEVEL) -> tuple[float, float]:
    """Bootstrap CI of ``prob_improvement``; x and y paired by seed, resampled together."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(x), (BOOTSTRAP_SAMPLES, len(x)))
    xs, ys = x[idx][:, :, None], y[idx][:, None, :]
    draws = np.mean((xs > ys) + 0.5 * (xs == ys), axis=(1, 2))
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_vs_best(runs: pd.DataFrame, value: str = "test_acc") -> pd.DataFrame:
    """One task's runs (schedule, seed, ``value``): each schedule against the best mean.

    Columns: schedule, best, n_pairs, mean_diff (schedule - best), p, p_holm, tied,
    pi (P(schedule > best)), pi_lo, pi_hi. The best has p = 1 and tied True.
    """
    table = runs.pivot_table(index="seed", columns="schedule", values=value, aggfunc="mean")
    best = table.mean().idxmax()
    rows = []
    for name in table.columns:
        pair = table[[name, best]].dropna()
        x, y = pair[name].to_numpy(), pair[best].to_numpy()
        p = 1.0 if name == best else wilcoxon_p(x - y)
        rows.append(
            {
                "schedule": name,
                "best": best,
                "n_pairs": len(pair),
                "mean_diff": float(np.mean(x - y)),
                "p": p,
                "pi": prob_improvement(x, y),
                **dict(zip(("pi_lo", "pi_hi"), prob_improvement_ci(x, y), strict=True)),
            }
        )
    out = pd.DataFrame(rows)
    others = out.schedule != best
    out["p_holm"] = 1.0
    out.loc[others, "p_holm"] = holm(out.loc[others, "p"])
    out["tied"] = out.p_holm >= ALPHA
    cols = ["schedule", "best", "n_pairs", "mean_diff", "p", "p_holm", "tied"]
    return out[[*cols, "pi", "pi_lo", "pi_hi"]]


def profile_ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """Performance ratios: each problem's (row's) cost over its best; inf where unsolved."""
    c = costs.astype(float).where(costs.notna(), math.inf)
    return c.div(c.min(axis=1), axis=0)


def performance_profile(ratios: pd.DataFrame, taus) -> pd.DataFrame:
    """rho_s(tau): the fraction of problems where schedule s is within a factor tau of the best."""
    return pd.DataFrame(
        {s: [(ratios[s] <= t).mean() for t in taus] for s in ratios},
        index=pd.Index(taus, name="tau"),
    )


def ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Each column's rank within each row (task), 1 = the highest score; ties averaged."""
    return scores.rank(axis=1, ascending=False, method="average")


def friedman(scores: pd.DataFrame) -> tuple[float, float, int, int] | None:
    """Friedman chi-square, p, schedules and tasks (blocks) used: those run on every task;
    None below 3 schedules or 2 tasks."""
    complete = scores.dropna(axis=1)
    if complete.shape[1] < 3 or complete.shape[0] < 2:
        return None
    res = stats.friedmanchisquare(*(complete[c].to_numpy() for c in complete))
    return float(res.statistic), float(res.pvalue), complete.shape[1], complete.shape[0]


def robustness(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Per task x schedule from (task, schedule, lr, dev_acc_mean): best_lr, best_dev_acc,
    lr_from .. lr_to (the contiguous grid lrs within ``ROBUST_POINTS`` of the best), width
    (lr_to / lr_from),
    n_lrs (grid points) and at_grid_edge (the best lr is the grid's smallest or largest)."""
    rows = []
    for (task, schedule), g in sensitivity.groupby(["task", "schedule"], sort=False):
        g = g.sort_values("lr")
        best = g.loc[g.dev_acc_mean.idxmax()]
        good = (g.dev_acc_mean >= best.dev_acc_mean - ROBUST_POINTS - 1e-12).to_numpy()
        run = np.cumsum(~good)  # the contiguous run of good lrs around the best one
        near = g.lr[(run == run[g.index.get_loc(best.name)]) & good]
        rows.append(
            {
                "task": task,
                "schedule": schedule,
                "best_lr": best.lr,
                "best_dev_acc": best.dev_acc_mean,
                "lr_from": near.min(),
                "lr_to": near.max(),
                "width": near.max() / near.min(),
                "n_lrs": len(g),
                "at_grid_edge": len(g) > 1 and best.lr in (g.lr.min(), g.lr.max()),
            }
        )
    return pd.DataFrame(rows)
