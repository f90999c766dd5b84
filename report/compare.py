"""The tests of the reproduction check: do two result sets agree? Plain arrays in, numbers out.

- ``welch_tost_p``: two one-sided Welch t tests (Schuirmann 1987) that the difference of two
  unpaired means lies within +-margin; ``welch_p`` the plain two-sided Welch test.
- ``holm``: Holm's step-down adjustment, over the cells of the check.
The verdicts within one result set come from comparisons with the best (``mcb.py``).
"""

import math

import numpy as np
from scipy import stats

ALPHA = 0.05  # family-wise error rate of each family of tests (Holm)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out, ok = np.full(len(p), math.nan), ~np.isnan(p)
    order = np.argsort(p[ok])
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[ok][order])
    out[np.flatnonzero(ok)[order]] = np.minimum(adjusted, 1.0)
    return out


def _t_sides(diff: float, se: float, df: float, margin: float) -> float:
    """The larger of the two one-sided p's of H0: diff <= -margin and H0: diff >= margin."""
    with np.errstate(divide="ignore", invalid="ignore"):  # se = 0: t is +-inf, p is 0 or 1
        lower = stats.t.sf((diff + margin) / se, df)
        upper = stats.t.cdf((diff - margin) / se, df)
    return float(np.nan_to_num(max(lower, upper), nan=1.0))


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
