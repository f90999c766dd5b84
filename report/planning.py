"""Dunnett's critical values, and how many seeds a sweep needs to resolve a margin.

- ``dunnett_critical``: the 1 - alpha quantile of the largest of m comparisons with a control
  (one-sided t, or |t| when two-sided) at equal group sizes (correlation 1/2), by quadrature:
  deterministic, where ``scipy.stats.dunnett`` (its kept peer in the tests) integrates the
  multivariate t by randomised quasi-Monte Carlo.
- ``pairwise_critical``: the critical value of all pairwise comparisons of k schedules, each
  studentized by its own SD (seeds - 1 df each, as ``mcb`` does), by simulation; the floor of
  ``mcb``'s critical values.
- ``seeds_to_plan``: a planning figure, not post-hoc power: the seeds per schedule with which a
  schedule exactly as good as the best would be called within the margin with the chance
  ``POWER``, at the SD of paired differences measured on earlier results and at that SD's upper
  confidence limit; the two numbers are the range to plan within.
"""

import functools
import math

import numpy as np
from scipy import optimize, special, stats

from report.stats import LEVEL, SEED

ALPHA = round(1 - LEVEL, 12)  # family-wise error rate of one problem's comparisons with the best
POWER = 0.8  # the chance that a planned sweep resolves the margin
MOST_SEEDS = 1000  # seeds_to_plan says inf beyond
SIMULATED = 20_000  # draws behind pairwise_critical: its 95% quantile to ~1%
SIMULATED_SEEDS = 40  # pairwise_critical simulates up to this many seeds
NODES = 128  # Gauss quadrature nodes per axis: critical values to ~1e-6


def _cdf(c: float, m: int, df: float, sides: int) -> float:
    """P(all m of Z_j = (U_j - U_0) / (sqrt(2) S) lie below c; within +-c when two-sided) for
    iid standard normal U and S^2 = chi2(df) / df (S = 1 at df inf): the equicorrelated (1/2)
    t, integrated over the control's U_0 (Gauss-Hermite) and over S (Gauss-Legendre on its
    quantiles)."""
    u, wu = np.polynomial.hermite_e.hermegauss(NODES)
    if math.isinf(df):
        s, ws = np.ones(1), np.ones(1)
    else:
        p, ws = np.polynomial.legendre.leggauss(NODES)
        s, ws = stats.chi.ppf((p + 1) / 2, df, scale=1 / math.sqrt(df)), ws / 2
    edge = math.sqrt(2) * c * s[:, None]
    inside = special.ndtr(edge + u) - (special.ndtr(-edge + u) if sides == 2 else 0.0)
    return float(ws @ inside**m @ wu / math.sqrt(2 * math.pi))


@functools.cache
def dunnett_critical(m: int, df: float, alpha: float = ALPHA, sides: int = 2) -> float:
    """Dunnett's critical value for ``m`` comparisons with a control at equal group sizes:
    the largest t (``sides`` 1) or |t| (``sides`` 2) of m statistics with correlation 1/2 and
    a common variance estimate with ``df`` degrees of freedom (``math.inf``: known variance)
    stays below it with probability 1 - ``alpha``."""
    if m == 1:
        return float(stats.t.isf(alpha / sides, df))
    return float(optimize.brentq(lambda c: _cdf(c, m, df, sides) - (1 - alpha), 0.5, 20, xtol=1e-8))


def t_critical(k: int, df, alpha: float = ALPHA) -> np.ndarray:
    """The critical value of all pairwise comparisons of k schedules at ``df`` degrees of
    freedom per comparison: the per-comparison level of the normal value (the studentized
    range at infinite df, over sqrt 2: the largest |Z_i - Z_j| / sqrt 2 of k iid normals),
    taken to a t with ``df`` (what ``mcb`` does to its bootstrap values; see there)."""
    return stats.t.isf(stats.norm.sf(_range(k, alpha)), np.asarray(df, dtype=float))


@functools.cache
def _range(k: int, alpha: float) -> float:
    """The largest |Z_i - Z_j| / sqrt 2 of k iid standard normals stays below it with
    probability 1 - alpha (scipy's studentized range at infinite df: ~4 ms a call)."""
    return float(stats.studentized_range.isf(alpha, k, math.inf) / math.sqrt(2))


@functools.cache
def _pairwise(k: int, alpha: float) -> np.ndarray:
    """``pairwise_critical`` at 1 .. ``SIMULATED_SEEDS`` seeds (NaN at 1), from one
    simulation: every seed count is a prefix of the same draws."""
    rng = np.random.default_rng(SEED)
    n = np.arange(1, SIMULATED_SEEDS + 1)
    i, j = np.triu_indices(k, 1)
    top = []
    for _ in range(SIMULATED // 1000):  # 1,000 draws at a time bound the memory
        x = rng.standard_normal((1000, k, SIMULATED_SEEDS))
        d = x[:, i] - x[:, j]
        s1, s2 = np.cumsum(d, -1), np.cumsum(d**2, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(s1) / np.sqrt(n * (s2 - s1**2 / n) / (n - 1))
        top.append(t.max(1))
    return np.quantile(np.concatenate(top), 1 - alpha, axis=0)


def pairwise_critical(k: int, seeds, alpha: float = ALPHA):
    """The two-sided critical value of all k (k - 1) / 2 paired comparisons of k schedules,
    each t statistic studentized by its own pairs' SD (``seeds`` - 1 df) under equal normal
    schedules: the floor of ``mcb``'s critical values. Simulated (``SIMULATED`` draws, seed
    ``SEED``) up to ``SIMULATED_SEEDS`` seeds; beyond, ``t_critical`` (within ~1% there).
    ``seeds`` may be an array (one value each)."""
    n = np.asarray(seeds).astype(int)  # counts, though a plan gives them as floats
    simulated = _pairwise(k, alpha)[np.minimum(n, SIMULATED_SEEDS) - 1]
    return np.where(n <= SIMULATED_SEEDS, simulated, t_critical(k, np.maximum(n - 1, 1), alpha))


def sd_upper(sd: float, df: int, level: float = LEVEL) -> float:
    """One-sided upper ``level`` confidence limit of a normal SD estimated with ``df`` degrees
    of freedom: sd * sqrt(df / chi2_{1-level}(df))."""
    return float(sd * math.sqrt(df / stats.chi2.ppf(1 - level, df)))


def seeds_to_plan(
    sd: float, df: int, margin: float, schedules: int, test_set_se: float = 0.0,
    power: float = POWER, alpha: float = ALPHA, level: float = LEVEL,
) -> tuple[float, float]:  # fmt: skip
    """Seeds per schedule for a sweep of ``schedules`` schedules to resolve ``margin``
    (fraction): the smallest n with (q_n + t_power(n - 1)) * se_n <= margin, where
    se_n = sqrt(sd^2 / n + test_set_se^2) is the standard error of a paired difference of
    means and q_n the floor of ``mcb``'s critical values (``pairwise_critical``). Then a
    schedule exactly as good as the best has its lower bound above -margin (is called within
    the margin) with the chance ``power``, and by symmetry one a margin behind is called worse
    as often; the selection inside ``mcb`` makes the real chances a little lower: a floor.

    ``sd``: the SD of paired differences of run accuracies between schedules, from earlier
    results with ``df`` degrees of freedom (``MCB.seed_sd`` and seeds - 1); ``test_set_se``:
    what the fixed test set adds (``MCB.test_set_se``), which more seeds do not reduce.
    Returns (n at ``sd``, n at its upper ``level`` confidence limit ``sd_upper``): the plan's
    range, inf where more than ``MOST_SEEDS`` (or no number of seeds) would do."""

    def needed(s: float) -> float:
        n = np.arange(2, MOST_SEEDS + 1)
        se = np.sqrt(s**2 / n + test_set_se**2)
        q = pairwise_critical(schedules, n, alpha)
        ok = (q + stats.t.ppf(power, n - 1)) * se <= margin
        return float(n[ok][0]) if ok.any() else math.inf

    return needed(sd), needed(sd_upper(sd, df, level))
