"""The report's estimates, each a small function of plain arrays or one tidy DataFrame.

- ``mean_ci``: Student's t interval of a mean. ``coverage`` measures by simulation how often it
  covers the true mean at n runs, for normal and for skewed (exponential) data; the report
  prints what it measured. (A percentile bootstrap covered ~89% and ~81% at n = 10.)
- ``iqm``: the interquartile mean, exactly the mean of the middle 50% of the runs: a run that
  straddles a quartile counts with the fraction of it inside (at n = 10 the 3rd and 8th runs
  count half). ``scipy.stats.trim_mean(x, 0.25)``, which rliable uses, trims whole runs: 20%
  at n = 10; the two agree when n is a multiple of 4.
- ``kaplan_meier`` / ``km_median``: time to target with censoring. A run that never reached
  the target is censored, never imputed. The survival product is exact (fractions), so a
  median where S falls to exactly 1/2 is not lost to rounding; pointwise CIs use Greenwood's
  variance on the log(-log) scale; the median's CI is where those bands cross 0.5 (Brookmeyer
  and Crowley 1982), so it can be open-ended ("not reached").
- ``profile_ratios`` / ``performance_profile``: Dolan and More (2002) profiles across tasks;
  ``ranks`` and ``friedman`` (tasks as blocks, a permutation p; descriptive: tasks are few
  and not a sample of any population of problems).
- ``kendall_tau`` / ``rank_agreement``: Kendall's tau-b between two budgets' orders of the
  schedules (``scipy.stats.kendalltau``), with a percentile interval over resamples of each
  budget's seeds; ``kendall_tau`` is scipy's tau-b, vectorised over the resamples.
- ``robustness``: from the tune runs, the contiguous range of grid lrs around the schedule's
  best whose mean dev accuracy is within ``ROBUST_POINTS`` of the best.
"""

import math
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # confidence level of every interval
SEED = 20261124  # every resampling and simulation: the same results give the same numbers
RESAMPLES = 9_999  # permutations and bootstrap resamples (p resolution 1e-4)
ROBUST_POINTS = 0.005  # dev accuracy within 0.5 points of the best counts as "as good"
COVERAGE_N = (5, 10, 20)  # run counts at which the report states its intervals' coverage
DISTRIBUTIONS = {  # data for the coverage simulation, each with mean 1
    "normal": lambda rng, size: rng.normal(1.0, 1.0, size),
    "skewed (exponential)": lambda rng, size: rng.exponential(1.0, size),
}


def mean_ci(values, level: float = LEVEL) -> tuple:
    """Student's t interval of the mean along the last axis (NaN below two values)."""
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    if n < 2:
        nan = np.full(x.shape[:-1], math.nan)
        return nan, nan
    half = stats.t.ppf((1 + level) / 2, n - 1) * x.std(axis=-1, ddof=1) / math.sqrt(n)
    return x.mean(axis=-1) - half, x.mean(axis=-1) + half


def coverage(n: int, distribution: str, reps: int = 20_000, level: float = LEVEL) -> float:
    """The fraction of ``reps`` simulated samples of ``n`` runs whose ``mean_ci`` holds the
    true mean (1 for every entry of ``DISTRIBUTIONS``)."""
    draws = DISTRIBUTIONS[distribution](np.random.default_rng(SEED), (reps, n))
    lo, hi = mean_ci(draws, level)
    return float(np.mean((lo <= 1.0) & (hi >= 1.0)))


def iqm(values) -> float:
    """Interquartile mean: each sorted run i of n covers [i/n, (i+1)/n] of the distribution and
    weighs what of that lies in [1/4, 3/4]."""
    x = np.sort(np.asarray(values, dtype=float))
    edges = np.arange(len(x) + 1) / len(x)
    inside = np.clip(np.minimum(edges[1:], 0.75) - np.maximum(edges[:-1], 0.25), 0, None)
    return float(np.dot(x, inside) / 0.5)


def describe(values) -> dict:
    """n, mean, std (n-1), ci_lo, ci_hi (t interval) and iqm of ``values``."""
    x = np.asarray(values, dtype=float)
    lo, hi = mean_ci(x)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
    return {"n": len(x), "mean": float(np.mean(x)), "std": std, "ci_lo": float(lo),
            "ci_hi": float(hi), "iqm": iqm(x)}  # fmt: skip


def _km_steps(t: np.ndarray, hit: np.ndarray):
    """(time, at risk, events, exact survival) at each time a run reached the target."""
    surv = Fraction(1)
    for time in np.unique(t[hit]):
        at_risk, events = int(np.sum(t >= time)), int(np.sum((t == time) & hit))
        surv *= Fraction(at_risk - events, at_risk)
        yield time, at_risk, events, surv


def kaplan_meier(times, reached, level: float = LEVEL) -> pd.DataFrame:
    """The survival curve S(t) = P(target not yet reached at t) at each event time.

    ``times``: when each run reached the target or, when it did not, when it was censored.
    Columns: time, at_risk, events, survival, lo, hi (log-log bands). Where S falls to 0 the
    band is [0, 0] when all n runs having reached by then bounds the median (2^-n below the
    band's tail, n >= 6 at 95%), else [0, 1]; with fewer than two runs the bands are NaN.
    """
    t, hit = np.asarray(times, dtype=float), np.asarray(reached, dtype=bool)
    tail, z = (1 - level) / 2, stats.norm.ppf((1 + level) / 2)
    rows, greenwood = [], 0.0
    for time, at_risk, events, exact in _km_steps(t, hit):
        surv = float(exact)
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
    """Median time to target (the first time exact S <= 1/2) and its CI; inf where the curve
    or a band never falls to 0.5 (NaN bounds with fewer than two runs)."""
    t, hit = np.asarray(times, dtype=float), np.asarray(reached, dtype=bool)
    median = next((time for time, *_, s in _km_steps(t, hit) if s <= Fraction(1, 2)), math.inf)
    if len(t) < 2:
        return float(median), math.nan, math.nan
    km = kaplan_meier(t, hit, level)

    def first_below(col: str) -> float:
        below = km.time[km[col] <= 0.5]
        return float(below.iloc[0]) if len(below) else math.inf

    return float(median), first_below("lo"), first_below("hi")


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
    """Friedman chi-square (scipy) and its permutation p (ranks shuffled within each task; exact
    when there are at most ``RESAMPLES`` shufflings), schedules and tasks used: the schedules
    run on every task. None below 3 schedules or 2 tasks. The chi-square's asymptotic p is not
    given: with few tasks as blocks it can be off by orders of magnitude."""
    complete = scores.dropna(axis=1)
    if complete.shape[1] < 3 or complete.shape[0] < 2:
        return None
    chi2 = stats.friedmanchisquare(*complete.T.to_numpy()).statistic
    in_task = complete.rank(axis=1).to_numpy().T  # schedules x tasks

    def agreement(*schedules, axis):  # sum of squared rank sums: chi-square up to constants
        return sum(np.sum(r, axis=axis) ** 2 for r in schedules)

    res = stats.permutation_test(
        tuple(in_task), agreement, permutation_type="samples", vectorized=True,
        n_resamples=RESAMPLES, alternative="greater", rng=np.random.default_rng(SEED),
    )  # fmt: skip
    return float(chi2), float(res.pvalue), complete.shape[1], complete.shape[0]


def kendall_tau(x, y) -> np.ndarray:
    """Kendall's tau-b of ``x`` and ``y`` along the last axis, vectorised over the leading
    ones (``scipy.stats.kendalltau`` of each row); NaN where either has no untied pair."""
    i, j = np.triu_indices(np.shape(x)[-1], 1)  # every pair of schedules
    dx = np.sign(np.take(x, i, -1) - np.take(x, j, -1))
    dy = np.sign(np.take(y, i, -1) - np.take(y, j, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(dx * dy, -1) / np.sqrt(np.sum(dx != 0, -1) * np.sum(dy != 0, -1))


def rank_agreement(a, b, level: float = LEVEL) -> tuple[float, float, float]:
    """Kendall's tau between the column means of ``a`` and ``b`` (seeds x schedules, the same
    schedules in the same columns), and its percentile interval over ``RESAMPLES`` resamples
    of the seeds, each budget's drawn on its own: a seed's runs at two budgets are different
    runs (their accuracies at 1 and 3 epochs correlated at -0.01 in the quick reference)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    tau = stats.kendalltau(a.mean(axis=0), b.mean(axis=0)).statistic
    rng = np.random.default_rng(SEED)
    ia, ib = (rng.integers(0, len(x), (RESAMPLES, len(x))) for x in (a, b))
    taus = kendall_tau(a[ia].mean(axis=1), b[ib].mean(axis=1))
    if np.isnan(taus).all():
        return float(tau), math.nan, math.nan
    lo, hi = np.nanpercentile(taus, [50 * (1 - level), 50 * (1 + level)])
    return float(tau), float(lo), float(hi)


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
