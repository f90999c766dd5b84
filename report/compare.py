"""The tests behind the verdicts: paired differences, equivalence, the winner's uncertainty,
and time to target. Plain arrays in, numbers out; ``verdicts.py`` turns them into words.

- ``wilcoxon_p``: two-sided Wilcoxon signed-rank on paired differences. Accuracies enter as
  counts of correct test examples (integers), so equal differences are exact ties; the p is
  exact (every sign pattern, ties and zeros included) up to ``EXACT_PAIRS`` pairs.
- ``holm``: Holm's step-down adjustment.
- ``tost_p`` / ``welch_tost_p``: two one-sided t tests (Schuirmann 1987) that a mean
  difference lies within +-margin, paired or not; ``welch_p`` the plain two-sided Welch test.
- ``seeds_needed``: how many paired seeds would likely settle an inconclusive comparison.
- ``prob_best``: how often each schedule has the highest mean when seeds are resampled.
- ``prob_improvement``: P(X > Y) + P(X = Y) / 2 over all pairs of runs.
- ``logrank``: scipy's log-rank test of two censored samples of times to target.
"""

import math

import numpy as np
from scipy import stats

from report.stats import RESAMPLES, SEED

ALPHA = 0.05  # family-wise error rate of every family of tests (Holm)
EXACT_PAIRS = 16  # up to 2^16 sign patterns enumerated; scipy's own choice above
POWER = 0.8  # the chance a comparison settles with the estimated number of seeds
MOST_SEEDS = 1000  # seeds_needed says "more than this" beyond


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
    """Two-sided Wilcoxon signed-rank p (zeros dropped, as scipy's default): 1.0 with fewer
    than two nonzero differences, NaN with no pairs."""
    d = np.asarray(diffs)
    if len(d) == 0:
        return math.nan
    d = d[d != 0]
    if len(d) < 2:  # no or one nonzero difference: either sign is as likely
        return 1.0
    if len(d) > EXACT_PAIRS:
        return float(stats.wilcoxon(d).pvalue)
    ranks = stats.rankdata(np.abs(d))  # fixed under sign flips: the statistic is vectorised

    def positive_ranks(x, axis):
        return np.sum(ranks * (x > 0), axis=axis)

    res = stats.permutation_test(
        (d,), positive_ranks, permutation_type="samples", vectorized=True, n_resamples=np.inf
    )
    return float(res.pvalue)


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p a Wilcoxon test can give with ``n_pairs`` pairs."""
    return min(1.0, 2.0 / 2**n_pairs)


def separable(n_pairs: int, comparisons: int) -> bool:
    """Whether the Wilcoxon test could reject at Holm's first step with this many pairs."""
    return smallest_p(n_pairs) * max(1, comparisons) < ALPHA


def _t_sides(diff: float, se: float, df: float, margin: float) -> float:
    """The larger of the two one-sided p's of H0: diff <= -margin and H0: diff >= margin."""
    with np.errstate(divide="ignore", invalid="ignore"):  # se = 0: t is +-inf, p is 0 or 1
        lower = stats.t.sf((diff + margin) / se, df)
        upper = stats.t.cdf((diff - margin) / se, df)
    return float(np.nan_to_num(max(lower, upper), nan=1.0))


def tost_p(diffs, margin: float) -> float:
    """Paired TOST p that the mean of ``diffs`` lies within +-margin (NaN below two pairs)."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return math.nan
    return _t_sides(d.mean(), d.std(ddof=1) / math.sqrt(len(d)), len(d) - 1, margin)


def _welch(x, y) -> tuple[float, float, float]:
    """Mean difference x - y, its standard error and Welch-Satterthwaite degrees of freedom."""
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if vx + vy else 1.0
    return float(np.mean(x) - np.mean(y)), math.sqrt(vx + vy), df


def welch_tost_p(x, y, margin: float) -> float:
    """Unpaired (Welch) TOST p that mean(x) - mean(y) lies within +-margin."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return math.nan if min(len(x), len(y)) < 2 else _t_sides(*_welch(x, y), margin)


def welch_p(x, y) -> float:
    """Two-sided Welch t test p of mean(x) = mean(y)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if min(len(x), len(y)) < 2:
        return math.nan
    diff, se, df = _welch(x, y)
    return float(2 * stats.t.sf(abs(diff) / se, df)) if se else float(diff == 0)


def seeds_needed(mean: float, sd: float, margin: float, comparisons: int) -> float:
    """Paired seeds with which a comparison whose true mean difference and sd are the observed
    ones would likely (``POWER``) settle at Holm's strictest level ALPHA / comparisons: either
    a paired t test finds the difference (and the Wilcoxon test can reach that level) or TOST
    shows equivalence. Noncentral t power; inf beyond ``MOST_SEEDS``."""
    n = np.arange(2, MOST_SEEDS + 1)
    df, alpha = n - 1, ALPHA / max(1, comparisons)
    se, m = max(sd, 1e-9 * margin) / np.sqrt(n), abs(mean)
    two, one = stats.t.ppf(1 - alpha / 2, df), stats.t.ppf(1 - alpha, df)
    differ = stats.nct.sf(two, df, m / se) + stats.nct.cdf(-two, df, m / se)
    misses = stats.nct.cdf(one, df, (margin + m) / se) + stats.nct.cdf(one, df, (margin - m) / se)
    equal = 1 - misses  # TOST power, a lower bound: 1 - P(either one-sided test fails)
    settled = ((differ >= POWER) & (2.0 / 2.0**n < alpha)) | (equal >= POWER)
    return float(n[settled][0]) if settled.any() else math.inf


def prob_best(table: np.ndarray) -> np.ndarray:
    """P(best) of each column of ``table`` (seeds x schedules): the share of seed resamples
    (rows drawn with replacement, the same rows for every column) in which the column has the
    highest mean; a tie shares the resample."""
    if len(table) == 0:  # no seed that every schedule ran
        return np.full(table.shape[1], math.nan)
    rng = np.random.default_rng(SEED)
    idx = rng.integers(0, len(table), (RESAMPLES, len(table)))
    means = table[idx].mean(axis=1)
    top = means == means.max(axis=1, keepdims=True)
    return (top / top.sum(axis=1, keepdims=True)).mean(axis=0)


def prob_improvement(x, y) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of runs (the Mann-Whitney U / (n m))."""
    x, y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def logrank(x: tuple, y: tuple) -> tuple[float, float]:
    """Log-rank test of two samples of (times, reached, end of budget): z (positive when x
    reaches the target sooner than y) and the two-sided p. A run that did not reach it is
    censored at the end of its budget (every reached time lies before)."""

    def censored(times, reached, end):
        return stats.CensoredData(uncensored=times[reached], right=end[~reached])

    res = stats.logrank(censored(*x), censored(*y))
    return float(res.statistic), float(res.pvalue)
