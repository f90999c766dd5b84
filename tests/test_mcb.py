"""report/mcb.py, report/planning.py and report/mcb_sim.py: comparisons with the best against
scipy's Dunnett test, statsmodels and scipy's bootstrap, brute force on tiny inputs, and their
error rates by simulation where the truth is known."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.formula.api import ols

from report import mcb, mcb_sim, planning

ALPHA = planning.ALPHA


def slack(problems: int, rate: float = ALPHA) -> float:
    """Three Monte-Carlo standard errors of a rate measured over ``problems`` problems."""
    return 3 * math.sqrt(rate * (1 - rate) / problems)


def one_way(k: int, n: int, shift=0.0, seed: int = 0) -> np.ndarray:
    """k schedules x n independent runs, SD 1, schedule i shifted by shift[i]."""
    return np.random.default_rng(seed).normal(0, 1, (k, n)) + np.broadcast_to(shift, k)[:, None]


def scipy_critical(x: np.ndarray, alternative: str) -> float:
    """The critical value behind scipy.stats.dunnett's interval, schedule 0 the control."""
    res = sps.dunnett(*x[1:], control=x[0], alternative=alternative, rng=np.random.default_rng(1))
    low = res.confidence_interval(1 - ALPHA).low
    n = x.shape[1]
    se = math.sqrt(np.mean(x.var(axis=1, ddof=1)) * 2 / n)
    return float(np.mean((x[1:].mean(1) - x[0].mean() - low) / se))


@pytest.mark.parametrize(("k", "n", "alternative"), [(5, 6, "greater"), (13, 10, "two-sided")])
def test_dunnett_critical_is_scipys(k, n, alternative):
    sides = 1 if alternative == "greater" else 2
    ours = planning.dunnett_critical(k - 1, k * (n - 1), ALPHA, sides)
    assert ours == pytest.approx(scipy_critical(one_way(k, n), alternative), rel=3e-3)
    assert planning.dunnett_critical(1, 7, ALPHA, 2) == pytest.approx(sps.t.isf(ALPHA / 2, 7))
    assert planning.dunnett_critical(12, math.inf) < planning.dunnett_critical(12, 108)


@pytest.mark.parametrize("shift", [0.0, [3.0, 0, 0, 0]], ids=["mixed", "one ahead"])
def test_hsu_constrained_intervals_are_hsus_formula_on_scipys_dunnett(shift):
    """Hsu (1996): D+_i = (min_j upper bound of mu_i - mu_j, i the control)^+, G = {D+ > 0},
    D-_i = 0 if G = {i}, else min over j in G of the lower bound of mu_i - mu_j (j the
    control); the one-sided bounds from scipy.stats.dunnett, each schedule the control in turn.
    ``bounds`` with one-sided comparisons gives the same."""
    x = one_way(4, 8, shift, seed=3)
    k, n = x.shape

    def lows(control):  # lower bounds of mu_j - mu_control for j != control
        others = [x[j] for j in range(k) if j != control]
        res = sps.dunnett(*others, control=x[control], alternative="greater",
                          rng=np.random.default_rng(1))  # fmt: skip
        return dict(zip([j for j in range(k) if j != control], res.confidence_interval().low,
                        strict=True))  # fmt: skip

    low = {c: lows(c) for c in range(k)}
    plus = np.array([max(0.0, min(-low[i][j] for j in low[i])) for i in range(k)])
    g = set(np.flatnonzero(plus > 0))
    minus = [0.0 if g == {i} else min(low[j][i] for j in g - {i}) for i in range(k)]

    se = math.sqrt(np.mean(x.var(axis=1, ddof=1)) * 2 / n)
    half = np.full((k, k), planning.dunnett_critical(k - 1, k * (n - 1), ALPHA, 1) * se)
    diff = x.mean(1)[:, None] - x.mean(1)[None, :]
    lower, upper, possibly = mcb.bounds(diff, np.full((k, k), np.inf), half)
    assert upper == pytest.approx(plus, abs=2e-3)
    assert lower == pytest.approx(minus, abs=2e-3)
    assert set(np.flatnonzero(possibly)) == g
    if shift:
        assert g == {0}
        assert lower[0] == 0
        assert (upper[1:] == 0).all()


def test_bounds_are_the_range_over_the_union_by_brute_force():
    """k = 3: every mu on a grid (mu_0 = 0) where some c is a best and c's comparisons hold;
    the intervals are the range of theta over them."""
    rng = np.random.default_rng(5)
    diff = mcb._pairwise(np.array([0.0, 0.3, -0.5]))
    below, above = rng.uniform(0.4, 1.0, (2, 3, 3))
    grid = np.linspace(-3, 3, 601)
    mu = np.stack(np.broadcast_arrays(0.0, grid[:, None], grid[None, :]), -1).reshape(-1, 3)
    d = mu[:, :, None] - mu[:, None, :]  # mu_c - mu_j
    off = ~np.eye(3, dtype=bool)
    inside = np.zeros(len(mu), dtype=bool)
    for c in range(3):
        best = (d[:, c, :] >= 0).all(1)
        hold = ((d[:, c] >= diff[c] - below[c]) & (d[:, c] <= diff[c] + above[c]))[:, off[c]]
        inside |= best & hold.all(1)
    theta = np.where(off, d, np.inf).min(-1)[inside]
    lower, upper, _ = mcb.bounds(diff, below, above)
    assert lower == pytest.approx(theta.min(0), abs=0.011)  # the grid's step is 0.01
    assert upper == pytest.approx(theta.max(0), abs=0.011)


def test_hsu_pools_the_two_way_residual_as_statsmodels_does():
    rng = np.random.default_rng(2)
    acc = 0.9 + rng.normal(0, 0.005, (6, 10)) + rng.normal(0, 0.01, (1, 10))  # seed effects
    frame = pd.DataFrame([(s, r, acc[s, r]) for s in range(6) for r in range(10)],
                         columns=["schedule", "seed", "acc"])  # fmt: skip
    mse = ols("acc ~ C(schedule) + C(seed)", frame).fit().mse_resid
    diff = mcb._pairwise(acc.mean(1))
    for sides in (1, 2):
        crit = planning.dunnett_critical(5, 45, ALPHA, sides)
        half = np.full((6, 6), crit * math.sqrt(2 * mse / 10))
        below = half if sides == 2 else np.full((6, 6), np.inf)
        expected = mcb.bounds(diff, below, half)[:2]
        assert np.stack(mcb.hsu(acc, sides=sides)) == pytest.approx(np.stack(expected))
    batch = mcb.hsu(np.stack([acc, acc[::-1]]), sides=2)  # leading axes are problems
    assert batch[0][1] == pytest.approx(mcb.hsu(acc[::-1], sides=2)[0])


def test_variances_by_brute_force():
    """``paired``: var of paired differences / n; ``test_set_variance``: the two-way ANOVA of
    one pair's per-example differences (seeds x examples), written out."""
    rng = np.random.default_rng(4)
    correct = rng.random((3, 5, 40)) < rng.uniform(0.6, 0.95, (3, 1, 40))
    acc = correct.mean(-1)
    diff, var = mcb.paired(acc)
    assert diff[0, 1] == pytest.approx(acc[0].mean() - acc[1].mean())
    assert var[0, 1] == pytest.approx(np.var(acc[0] - acc[1], ddof=1) / 5)
    y = correct[0].astype(float) - correct[1]
    n, m = y.shape
    rows, cols, grand = y.mean(1, keepdims=True), y.mean(0, keepdims=True), y.mean()
    ms_examples = n * np.sum((cols - grand) ** 2) / (m - 1)
    ms_residual = np.sum((y - rows - cols + grand) ** 2) / ((n - 1) * (m - 1))
    expected = max(ms_examples - ms_residual, 0) / (n * m)
    assert mcb.test_set_variance(correct)[0, 1] == pytest.approx(expected)
    assert np.diagonal(mcb.test_set_variance(correct)) == pytest.approx(0, abs=1e-15)


def test_seed_resampling_is_scipys_bootstrap():
    acc = one_way(2, 10, [0.5, 0.0], seed=6)
    means = mcb.resampled_means(acc)
    ref = sps.bootstrap((acc[0] - acc[1],), np.mean, n_resamples=mcb.RESAMPLES,
                        rng=np.random.default_rng(0))  # fmt: skip
    assert np.std(means[:, 0] - means[:, 1], ddof=1) == pytest.approx(ref.standard_error, rel=0.06)
    assert means.mean(0) == pytest.approx(acc.mean(1), abs=0.02)


def test_selection_frequency_by_hand_and_never_one():
    top = [[2.0, 1.0, 0.0]] * 6 + [[0.0, 2.0, 1.0]] * 2 + [[0.0, 1.0, 2.0], [1.0, 2.0, 2.0]]
    assert mcb.selection_frequency(np.array(top)) == pytest.approx([0.6, 0.25, 0.15])
    ahead = mcb.selection_frequency(mcb.resampled_means(one_way(3, 10, [10, 0, 0])))
    assert ahead == pytest.approx([1 - 1 / mcb.RESAMPLES, 1 / mcb.RESAMPLES, 1 / mcb.RESAMPLES])


def test_verdicts_are_exclusive_exhaustive_and_follow_the_rule():
    margin = 0.5
    points = [-2.0, -0.5, -0.3, 0.0, 0.4]
    pairs = [(lo, hi) for lo, hi in itertools.product(points, points) if lo <= hi]
    lower, upper = np.array(pairs).T
    got = mcb.verdicts(lower, upper, margin)
    expected = {
        (-2.0, -2.0): mcb.WORSE_BEYOND, (-2.0, -0.5): mcb.WORSE, (-2.0, -0.3): mcb.WORSE,
        (-0.3, -0.3): mcb.WORSE_WITHIN, (-0.5, -0.3): mcb.WORSE,
        (-0.3, 0.0): mcb.WITHIN, (-0.3, 0.4): mcb.WITHIN, (0.0, 0.4): mcb.WITHIN,
        (-0.5, 0.0): mcb.POSSIBLY_BEST, (-2.0, 0.4): mcb.POSSIBLY_BEST, (0.4, 0.4): mcb.BEST,
    }  # fmt: skip
    for pair, verdict in expected.items():
        assert got[pairs.index(pair)] == verdict, pair
    assert set(got) <= set(mcb.VERDICTS)


def test_mcb_is_reproducible_and_vectorised():
    acc = 0.9 + one_way(5, 10, [4.0, 0, 0, 0, -4.0], seed=8) * 0.005  # 2 points apart
    one, again = mcb.mcb(acc), mcb.mcb(acc)
    assert np.array_equal(one.lower, again.lower)
    assert np.array_equal(one.upper, again.upper)
    both = mcb.mcb(np.stack([acc, acc[::-1]]))
    assert both.lower[1] == pytest.approx(mcb.mcb(acc[::-1]).lower)
    others = [np.delete(acc.mean(1), i).max() for i in range(5)]
    assert one.estimate == pytest.approx(acc.mean(1) - others)
    assert (one.lower <= one.estimate).all()
    assert (one.estimate <= one.upper).all()
    assert list(mcb.verdicts(one.lower, one.upper, 0.005)[[0, 4]]) == [mcb.BEST, mcb.WORSE_BEYOND]
    assert list(one.possibly_best) == [True, False, False, False, False]
    twin = mcb.mcb(np.vstack([acc, acc[1:2]]))  # identical schedules: their difference is known
    assert twin.lower[1] == twin.lower[5]
    with pytest.raises(ValueError, match="accuracy"):
        mcb.mcb(acc, np.ones((*acc.shape, 3), dtype=bool))


def test_resolvable_margin_is_the_half_width_against_the_best():
    acc = 0.9 + one_way(4, 10, [4.0, 0, 0, 0], seed=9) * 0.005
    res = mcb.mcb(acc)
    diff, var = mcb.paired(acc)
    q = mcb.critical(diff, mcb.resampled_means(acc), 10)
    assert np.ndim(q) == 0  # one value for all pairs
    assert res.resolvable == pytest.approx(np.median(q * np.sqrt(var[0, 1:])))
    assert res.resolvable > 0.005  # 10 seeds of SD 0.5 points cannot resolve 0.5 points
    twice = mcb.mcb(np.concatenate([acc, acc + 1e-4], axis=1))  # more seeds: a finer margin
    assert twice.resolvable < res.resolvable
    assert res.seed_sd == pytest.approx(np.median(np.sqrt(var[0, 1:] * 10)))
    assert res.test_set_se == 0


def test_pairwise_critical_lies_between_the_studentized_range_and_bonferroni():
    """13 schedules, 78 pairs: above the normal studentized range taken to a t with 9 df (each
    comparison's own SD adds to it), below Bonferroni over the 78 pairs; far out, the range."""
    q = planning.pairwise_critical(13, 10)
    assert planning.t_critical(13, 9) < q < sps.t.isf(ALPHA / (2 * 78), 9)
    far = planning.pairwise_critical(13, planning.SIMULATED_SEEDS + 1)
    assert far == pytest.approx(planning.t_critical(13, planning.SIMULATED_SEEDS))
    near = planning.pairwise_critical(13, planning.SIMULATED_SEEDS)  # simulated
    assert near == pytest.approx(far, rel=0.02)


def test_seeds_to_plan_is_the_smallest_n_and_a_range():
    sd, margin = 0.007, 0.005
    point, upper = planning.seeds_to_plan(sd, 9, margin, 13)
    assert point < upper < math.inf
    assert planning.sd_upper(sd, 9) == pytest.approx(sd * math.sqrt(9 / sps.chi2.ppf(ALPHA, 9)))

    def enough(n, s):
        q = planning.pairwise_critical(13, n) + sps.t.ppf(planning.POWER, n - 1)
        return q * s / math.sqrt(n) <= margin

    assert enough(point, sd)
    assert not enough(point - 1, sd)
    high = planning.sd_upper(sd, 9)
    assert enough(upper, high)
    assert not enough(upper - 1, high)
    assert planning.seeds_to_plan(sd, 9, margin, 13, test_set_se=0.002) == (math.inf, math.inf)


def test_complete_null_calls_nothing_better_or_worse():
    """13 equal schedules, 10 seeds, run SD 0.5 points: the fraction of problems with a best
    or worse verdict (the rate the methods text cites, computed here)."""
    rate = mcb_sim.null_error_rate()
    assert rate <= ALPHA + slack(2000)
    assert rate == mcb_sim.MEASURED["null_rate"]  # what the report's methods text says


def test_complete_null_with_a_test_set_calls_nothing_better_or_worse():
    rate = mcb_sim.null_error_rate(problems=200, examples=100)
    assert rate <= ALPHA + slack(200)
    assert rate == mcb_sim.MEASURED["null_examples_rate"]


def test_speed_verdicts_under_a_complete_null_call_at_most_alpha():
    """Times to target on a coarse grid with many ties, the same for every schedule."""
    rate = mcb_sim.speed_null_rate()
    assert rate <= ALPHA + slack(500)
    assert rate == mcb_sim.MEASURED["speed_null_rate"]


def test_the_selection_frequency_is_no_probability_of_being_best():
    median = mcb_sim.null_pick_frequency()
    assert median > 3 / 13  # the truth: 1/13 each
    assert round(median, 2) == mcb_sim.MEASURED["pick_median"]


def test_one_schedule_ahead_covers_and_is_called_best():
    """The least favourable case for coverage: one control's comparisons carry every interval.
    A schedule 4 run SDs ahead is called best."""
    covered, power = mcb_sim.one_ahead()
    assert covered >= 1 - ALPHA - slack(2000)
    assert covered == mcb_sim.MEASURED["coverage"]
    assert power >= 0.99


def test_a_quiet_leader_still_covers():
    """Unequal variances: the leader's runs vary a tenth as much as the others', so its
    comparisons are nearly independent and need the largest critical value."""
    covered, _ = mcb_sim.one_ahead(ahead=0.03, problems=1000, leader_scale=0.1)
    assert covered >= 1 - ALPHA - slack(1000)


def test_the_test_set_is_needed_for_coverage():
    """Each schedule has its own luck on each example: one test set of 100 examples favours
    some schedule, so intervals over seeds only miss the population's truth."""
    covered, _ = mcb_sim.one_ahead(ahead=0.12, problems=200, examples=100)
    fixed, _ = mcb_sim.one_ahead(ahead=0.12, problems=200, examples=100, test_set=False)
    assert covered >= 1 - ALPHA - slack(200)
    assert fixed < 1 - ALPHA - slack(200)
