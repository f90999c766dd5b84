"""Comparisons with the best (issue 26): for one problem (task x budget), simultaneous intervals
for each schedule's mean minus the best mean of the others, the verdicts they support and the
selection frequency that replaces P(best). Plain arrays in, arrays out; every function takes
leading batch axes, so a simulation runs many problems in one call.

Data: ``acc[..., schedule, seed]``, test accuracies (fractions), the same seeds for every
schedule (paired); optionally ``correct[..., schedule, seed, example]`` (bool), the same test
examples for every run, so that the intervals also cover the choice of test set.

- What is compared: theta_i = mu_i - max_{j != i} mu_j, positive for a schedule ahead of every
  other, minus its gap to the best for the others, 0 for schedules tied at the top. Picking the
  best on the same runs and testing the others against it is select-then-test (issue 26).
  Bootstrapping the plug-in estimate with the pick redone in each resample is no cure: the
  bootstrap of a maximum of means is inconsistent where means tie (Andrews 2000), which is the
  null itself; the estimate is biased there (a schedule's gap to the best of 12 equal others
  is -1.6 standard errors of a mean on average).
- How: Edwards and Hsu (1983). Were the true best c known, comparisons with c as the control
  (Dunnett) would bound every mu_c - mu_j at once. It is not, so each interval is the range of
  theta_i over every parameter under which some schedule c is a best and c's comparisons
  hold (``bounds``): no pick inside resamples. With one-sided comparisons this is Hsu's
  (1984) constrained MCB (``hsu``, the normal-theory peer): its intervals always contain 0.
  With two-sided comparisons (``mcb``) bounds can leave 0, so "best" and "worse" are claims
  that a complete null makes false (``report/mcb_sim.py`` measures how often).
- Which comparisons must hold: all pairwise ones, not only the true best's. With the best's
  alone, one schedule whose runs vary widely (a diverged seed; plateau at a high lr on
  mnist_logreg, 3 epochs of the quick reference, SD 7 points) stays a possible best and its
  wide comparisons reach every other interval up to 0: every schedule "possibly best", even
  one 2 points behind another on every seed. Where every pairwise comparison holds, theta_i =
  min_j (mu_i - mu_j) also lies within [min_j lo_ij, min_j hi_ij], and ``mcb`` intersects
  the two: simultaneous coverage at 1 - alpha for a critical value that is larger (all
  k (k - 1) / 2 pairs rather than k - 1 per control: ~3.5 against ~3.0 at 13 schedules).
- The critical value (``critical``) is the larger of two. A max-statistic bootstrap: seeds
  and, given ``correct``, test examples resampled independently (a crossed design's
  pigeonhole bootstrap; the same examples for every run), the largest standardized deviation
  of any pairwise difference from its estimate; it knows the comparisons' correlations,
  unequal variances and the test set's share. With 10 seeds it cannot know the tails of a t
  statistic with 9 df (a bootstrap of 10 seeds sees 10 values), so its per-comparison level
  is taken to a t; and even so it falls short where each comparison is studentized by its own
  9-df SD, so the value that is exact for equal normal schedules (``pairwise_critical``) is
  its floor (without such a floor the coverage with one schedule far ahead was 0.93). Each
  comparison keeps its own SD, not a pooled one (``hsu``): the run SDs of paired differences
  differ between schedules (0.39 to 1.0 points among close competitors).
- The smallest margin a problem can show (``MCB.resolvable``): the median half-width of the
  comparisons with the observed best. A schedule exactly as good as the best has its lower
  bound below minus that half the time, so a smaller margin can seldom be shown even for it;
  the report says when the chosen margin is below it.
"""

from typing import NamedTuple

import numpy as np
from scipy import stats

from report.planning import ALPHA, dunnett_critical, pairwise_critical
from report.stats import SEED

RESAMPLES = 1_999  # hierarchical bootstrap resamples per problem (a 95% quantile from 2,000)
BEST = "best"
POSSIBLY_BEST = "possibly best"
WITHIN = "within the margin of the best"
WORSE_WITHIN = "worse by less than the margin"
WORSE = "worse"  # behind the best, by how much not resolved (the interval straddles -margin)
WORSE_BEYOND = "worse beyond the margin"
VERDICTS = (BEST, POSSIBLY_BEST, WITHIN, WORSE_WITHIN, WORSE, WORSE_BEYOND)


class MCB(NamedTuple):
    """``mcb``'s result for problems [...] of k schedules (fractions of accuracy)."""

    estimate: np.ndarray  # [..., k] mean_i - max_{j != i} mean_j
    lower: np.ndarray  # [..., k] simultaneous lower bound of theta_i
    upper: np.ndarray  # [..., k] simultaneous upper bound of theta_i
    possibly_best: np.ndarray  # [..., k] bool: upper >= 0, the intervals allow it to be a best
    selected: np.ndarray  # [..., k] selection frequency (``selection_frequency``)
    # [...] medians over the comparisons with the observed best (``with_best``):
    resolvable: np.ndarray  # their half-widths: the smallest margin the problem can show
    seed_sd: np.ndarray  # the SD of their paired run differences (for ``seeds_to_plan``)
    test_set_se: np.ndarray  # what the test set adds to their standard errors (idem)


def paired(acc) -> tuple[np.ndarray, np.ndarray]:
    """diff[..., c, j] = mean_c - mean_j and its variance over seeds, var(acc_c - acc_j) / n
    (ddof 1): paired, so what a seed does to every schedule alike cancels."""
    a = np.asarray(acc, dtype=float)
    n = a.shape[-1]
    mean = a.mean(-1)
    resid = a - mean[..., None]
    return _pairwise(mean), _pair_ss(resid) / (n - 1) / n


def _pairwise(mean: np.ndarray) -> np.ndarray:
    return mean[..., :, None] - mean[..., None, :]


def _pair_ss(u: np.ndarray) -> np.ndarray:
    """sum_l (u_c,l - u_j,l)^2 for every pair of rows c, j (from the Gram matrix; at least 0,
    which rounding could otherwise miss for identical rows)."""
    gram = u @ np.swapaxes(u, -1, -2)
    sq = np.diagonal(gram, axis1=-2, axis2=-1)
    return np.maximum(sq[..., :, None] + sq[..., None, :] - 2 * gram, 0)


def test_set_variance(correct) -> np.ndarray:
    """What a finite test set adds to the variance of each paired difference of means, from
    the crossed random-effects model of the per-example differences y_c - y_j (seeds x
    examples): Var = (MS_seeds + MS_examples - MS_residual) / (n M), of which MS_seeds / (n M)
    is ``paired``'s variance; the rest, (MS_examples - MS_residual) / (n M), clipped at 0."""
    y = np.asarray(correct, dtype=float)
    n, m = y.shape[-2:]
    grand = y.mean((-2, -1))[..., None]
    ss_seeds = m * _pair_ss(y.mean(-1) - grand)
    ss_examples = n * _pair_ss(y.mean(-2) - grand)
    ss_total = _pair_ss((y - grand[..., None]).reshape(*y.shape[:-2], n * m))
    ms_residual = (ss_total - ss_seeds - ss_examples) / ((n - 1) * (m - 1))
    return np.maximum(ss_examples / (m - 1) - ms_residual, 0) / (n * m)


def resampled_means(acc, correct=None, resamples: int = RESAMPLES) -> np.ndarray:
    """Schedule means [..., B, k] over B resamples (seed ``SEED``): seeds drawn with
    replacement and, given ``correct``, test examples drawn independently, the same draw for
    every run (they share the test set), each run's accuracy recomputed on them."""
    rng = np.random.default_rng(SEED)
    n = np.shape(acc)[-1]
    seeds = rng.multinomial(n, np.full(n, 1 / n), resamples) / n  # [B, n] weights
    if correct is None:
        return np.einsum("bs,...ks->...bk", seeds, np.asarray(acc, dtype=float))
    m = np.shape(correct)[-1]
    examples = rng.multinomial(m, np.full(m, 1 / m), resamples) / m  # [B, M]
    runs = np.asarray(correct, dtype=float) @ examples.T  # [..., k, n, B]
    return np.einsum("bs,...ksb->...bk", seeds, runs)


def critical(diff, means, seeds: int, alpha: float = ALPHA) -> np.ndarray:
    """Two-sided critical value of all pairwise comparisons of a problem [...]: the 1 - alpha
    quantile over the resampled ``means`` [..., B, k] of max_{c != j} |resampled diff_cj -
    diff_cj| / sd_cj, sd_cj the SD of the resampled diff_cj (the bootstrap gives the shape and
    dependence; the scale comes from ``paired`` and ``test_set_variance``, which the pigeonhole
    bootstrap overstates by the run x example noise counted twice), taken to a t with
    ``seeds`` - 1 df at the same per-comparison level; never below ``pairwise_critical``, the
    exact value for equal normal schedules. A pair with no variance (identical runs) is known
    exactly. In float32: the deviations are ~1e-3 and exact to ~1e-7, and the arrays are
    B k^2 per problem."""
    dev = _pairwise(means.astype(np.float32)) - diff[..., None, :, :].astype(np.float32)
    centred = means - means.mean(-2, keepdims=True)
    var = _pair_ss(np.swapaxes(centred, -1, -2)) / means.shape[-2]  # of each resampled diff
    # a resampled difference with an SD under 1e-9 (a millionth of a test example at most) is
    # no difference: rounding, between identical runs
    inverse = np.divide(1, np.sqrt(var), out=np.zeros_like(var), where=var > 1e-18)
    z = (np.abs(dev) * inverse[..., None, :, :].astype(np.float32)).max((-2, -1))
    boot = stats.t.isf(stats.norm.sf(np.quantile(z, 1 - alpha, axis=-1)), seeds - 1)
    return np.maximum(boot, pairwise_critical(diff.shape[-1], seeds, alpha))


def bounds(diff, below, above) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edwards-Hsu intervals of theta_i = mu_i - max_{j != i} mu_j from comparisons with each
    control c: mu_c - mu_j in [diff_cj - below_cj, diff_cj + above_cj] (arrays [..., k, k];
    ``below`` inf for one-sided comparisons). The interval is the range of theta_i over the
    union, over c, of {c is a best, c's comparisons hold}, which is empty unless every
    diff_cj + above_cj >= 0 (c in G). There theta_c = min_j (mu_c - mu_j) in
    [max(0, min_j(diff_cj - below_cj)), min_j(diff_cj + above_cj)] and, for i != c,
    theta_i = mu_i - mu_c in [diff_ic - above_ci, min(0, diff_ic + below_ci)].
    Returns lower, upper [..., k] and G [..., k]."""
    off = ~np.eye(diff.shape[-1], dtype=bool)
    own_hi = np.where(off, diff + above, np.inf).min(-1)
    own_lo = np.maximum(0, np.where(off, diff - below, np.inf).min(-1))
    g = own_hi >= 0
    other = g[..., None, :] & off  # [i, c]: c in G, c != i
    lo = np.where(other, diff - np.swapaxes(above, -1, -2), np.inf).min(-1)
    hi = np.where(other, np.minimum(0, diff + np.swapaxes(below, -1, -2)), -np.inf).max(-1)
    lower = np.minimum(np.where(g, own_lo, np.inf), lo)
    return lower, np.maximum(np.where(g, own_hi, -np.inf), hi), g


def selection_frequency(means) -> np.ndarray:
    """How often each schedule has the top mean over the resampled ``means`` [..., B, k] (a
    tie shares the resample), kept within [1/B, 1 - 1/B]: B resamples cannot tell "always"
    from "all but once in B", so 1 - 1/B reads "at least". Not a probability of being best:
    under a complete null of 13 schedules the pick gets a median of 0.40, not 1/13
    (``mcb_sim.null_pick_frequency``); the possibly-best set carries the message."""
    b = means.shape[-2]
    top = means == means.max(-1, keepdims=True)
    return np.clip((top / top.sum(-1, keepdims=True)).mean(-2), 1 / b, 1 - 1 / b)


def with_best(diff, x) -> np.ndarray:
    """The median [...] over the others of ``x``[..., b, j], b the observed best (diff_bj >= 0
    for every j): what a comparison with the best typically has."""
    k = diff.shape[-1]
    best = np.argmax(diff.min(-1), -1)[..., None, None]
    row = np.take_along_axis(x, np.broadcast_to(best, (*x.shape[:-2], 1, k)), -2)[..., 0, :]
    return np.nanmedian(np.where(np.arange(k) != best[..., 0], row, np.nan), -1)


def mcb(acc, correct=None, alpha: float = ALPHA, resamples: int = RESAMPLES) -> MCB:
    """Multiple comparisons with the best of one problem, or of problems [...]: ``acc``
    [..., k, n] (fractions), ``correct`` [..., k, n, M] per-example results or None (then the
    test set counts as fixed). Intervals hold simultaneously for the k schedules with
    probability at least 1 - ``alpha``: every one holds whenever all pairwise comparisons do
    (see the module's docstring). Given ``correct``, ``acc`` must be its runs' accuracies."""
    acc = np.asarray(acc, dtype=float)
    if correct is not None and not np.allclose(acc, np.mean(correct, -1), rtol=0, atol=1e-9):
        raise ValueError("acc is not the accuracy of correct's runs")
    seeds = acc.shape[-1]
    diff, var = paired(acc)
    seed_var = var
    if correct is not None:
        var = var + test_set_variance(correct)
    means = resampled_means(acc, correct, resamples)
    half = critical(diff, means, seeds, alpha)[..., None, None] * np.sqrt(var)
    lower, upper, _ = bounds(diff, half, half)
    off = ~np.eye(acc.shape[-2], dtype=bool)
    # theta_i = min_j (mu_i - mu_j) lies within [min_j lo_ij, min_j hi_ij] of every pair's
    upper = np.minimum(upper, np.where(off, diff + half, np.inf).min(-1))
    lower = np.minimum(np.maximum(lower, np.where(off, diff - half, np.inf).min(-1)), upper)
    return MCB(
        estimate=np.where(off, diff, np.inf).min(-1), lower=lower, upper=upper,
        possibly_best=upper >= 0, selected=selection_frequency(means),
        resolvable=with_best(diff, half), seed_sd=with_best(diff, np.sqrt(seed_var * seeds)),
        test_set_se=with_best(diff, np.sqrt(var - seed_var)),
    )  # fmt: skip


def hsu(acc, alpha: float = ALPHA, sides: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Hsu's normal-theory MCB intervals (lower, upper [..., k]) under the two-way model
    (schedule and seed effects, one residual variance, (k - 1)(n - 1) df): Dunnett's
    critical value for k - 1 comparisons with correlation 1/2, one-sided (``sides`` 1:
    Hsu's constrained intervals, which contain 0) or two-sided (as ``mcb``)."""
    a = np.asarray(acc, dtype=float)
    k, n = a.shape[-2:]
    grand = a.mean((-2, -1))[..., None, None]
    resid = a - a.mean(-1, keepdims=True) - a.mean(-2, keepdims=True) + grand
    df = (k - 1) * (n - 1)
    se = np.sqrt(2 * np.sum(resid**2, (-2, -1)) / df / n)[..., None, None]
    half = np.broadcast_to(dunnett_critical(k - 1, df, alpha, sides) * se, (*a.shape[:-1], k))
    diff = _pairwise(a.mean(-1))
    return bounds(diff, np.full_like(half, np.inf) if sides == 1 else half, half)[:2]


def verdicts(lower, upper, margin: float) -> np.ndarray:
    """One verdict per interval of theta (``margin`` a fraction), the first rule that holds:
    lower > 0: ``BEST`` (ahead of every other); upper < -margin: ``WORSE_BEYOND``;
    upper < 0: ``WORSE_WITHIN`` when lower > -margin, else ``WORSE`` (behind, by how much not
    resolved); lower > -margin: ``WITHIN`` (cannot be told from the best, and no more than
    the margin behind it); else ``POSSIBLY_BEST`` (cannot be told from the best). Exclusive
    and exhaustive; each verdict's claim (theta > 0; theta < -margin; -margin < theta < 0;
    theta < 0; theta > -margin; none) follows from the interval, so all of one problem's
    claims hold together whenever its intervals do."""
    lo, hi = np.asarray(lower), np.asarray(upper)
    rules = [lo > 0, hi < -margin, hi < 0, lo > -margin]
    worse = np.where(lo > -margin, WORSE_WITHIN, WORSE)
    return np.select(rules, [BEST, WORSE_BEYOND, worse, WITHIN], POSSIBLY_BEST)
