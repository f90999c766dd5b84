"""report/stats.py and report/compare.py against scipy, statsmodels, lifelines and by hand,
on made-up numbers, the fixture results (one and two budgets per task) and the committed quick
reference results."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from report import budgets, compare, identical, stats, tables
from report.load import load
from testkit import TESTS

REFERENCE = TESTS.parent / "results" / "reference" / "quick"
FIXTURE = TESTS / "fixtures" / "report_results"
BUDGETS = TESTS / "fixtures" / "report_budgets"


def prepared(folder):
    """A results folder as the report reads it: one problem per task and budget, identical
    schedules merged, targets added."""
    merged, groups = identical.merge(budgets.split(load(folder)))
    return tables.reachable_targets(merged), groups


@pytest.fixture(scope="module")
def quick():
    """The committed quick sweep: (results, merged groups)."""
    return prepared(REFERENCE)


@pytest.fixture(scope="module", params=[REFERENCE, FIXTURE, BUDGETS],
                ids=["quick", "fixture", "budgets"])  # fmt: skip
def both(request, quick):
    """The committed quick sweep, then the report's fixture results (one, then two budgets)."""
    return quick if request.param == REFERENCE else prepared(request.param)


def test_mean_ci_is_scipys_t_interval():
    x = np.array([0.91, 0.93, 0.92, 0.95, 0.90, 0.94, 0.92])
    ref = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    assert stats.mean_ci(x) == pytest.approx((ref.low, ref.high))
    assert all(math.isnan(v) for v in stats.mean_ci([0.9]))
    lo, hi = stats.mean_ci(np.array([x, x + 1]))  # vectorised along the last axis
    assert hi - lo == pytest.approx([ref.high - ref.low] * 2)


def test_mean_ci_covers_at_small_n():
    """By simulation (what the report's methods text prints): the t interval is exact on normal
    data; on skewed data it covers less, nearer 95% as n grows (the percentile bootstrap it
    replaced covered ~89% and ~81% at n = 10)."""
    normal = [stats.coverage(n, "normal") for n in stats.COVERAGE_N]
    skewed = [stats.coverage(n, "skewed (exponential)") for n in stats.COVERAGE_N]
    assert normal == pytest.approx([0.95] * 3, abs=0.005)
    assert 0.87 < skewed[0] < skewed[1] < skewed[2] < 0.95


def test_iqm_is_the_exact_middle_half():
    x = np.array([1, 2, 3, 4, 100, 5, 6, 7], dtype=float)
    assert stats.iqm(x) == pytest.approx(4.5)  # n = 8: runs 3..6, as trim_mean
    assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))
    ten = np.arange(1.0, 11.0) ** 2  # 1, 4, ..., 100: runs 3 and 8 count half
    assert stats.iqm(ten) == pytest.approx((0.5 * 9 + 16 + 25 + 36 + 49 + 0.5 * 64) / 5)
    assert stats.iqm(ten) != pytest.approx(sps.trim_mean(ten, 0.25))  # which trims 20%
    assert stats.iqm([3.0]) == 3.0
    assert stats.iqm([1.0, 2.0]) == 1.5


def test_describe():
    d = stats.describe([1, 2, 3, 4, 100, 5, 6, 7])
    assert (d["n"], d["mean"], d["iqm"]) == (8, pytest.approx(16.0), pytest.approx(4.5))
    assert d["std"] == pytest.approx(np.std([1, 2, 3, 4, 100, 5, 6, 7], ddof=1))
    one = stats.describe([0.9])
    assert one["n"] == 1
    assert math.isnan(one["std"])
    assert math.isnan(one["ci_lo"])


def test_kaplan_meier_matches_scipy_ecdf_with_censoring():
    times = [1, 2, 2, 3, 4, 5, 6]
    reached = [1, 1, 0, 1, 0, 1, 0]
    km = stats.kaplan_meier(times, reached)
    ref = sps.ecdf(sps.CensoredData(uncensored=[1, 2, 3, 5], right=[2, 4, 6]))
    ci = ref.sf.confidence_interval(method="log-log")
    at = np.searchsorted(ref.sf.quantiles, km.time)
    np.testing.assert_allclose(km.survival, ref.sf.probabilities[at])
    np.testing.assert_allclose(km.lo, ci.low.probabilities[at])
    np.testing.assert_allclose(km.hi, ci.high.probabilities[at])


def test_km_median_by_hand():
    assert stats.km_median([1, 2, 3, 4, 5], [1] * 5)[0] == 3  # S = .8 .6 .4 .2 0
    assert stats.km_median([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])[0] == 3  # S(3) = .6 / 2
    assert stats.km_median([1, 2, 9, 9, 9], [1, 1, 0, 0, 0])[0] == math.inf  # never imputed
    assert stats.km_median([3] * 6, [1] * 6) == (3, 3, 3)  # 2^-6 < 0.025 bounds the band
    assert stats.km_median([3] * 5, [1] * 5) == (3, 3, math.inf)
    one = stats.km_median([3], [1])
    assert one[0] == 3
    assert math.isnan(one[1])
    # S(4) = 9/10 * 6/9 * 5/6 = 1/2 exactly; the float product is 0.5000000000000001
    times, reached = [6, 3, 4, 7, 5, 1, 3, 3, 5, 6], [1, 1, 1, 0, 1, 1, 1, 1, 1, 0]
    assert stats.km_median(times, reached)[0] == 4
    assert KaplanMeierFitter().fit(times, reached).median_survival_time_ == 4


def test_km_medians_agree_with_scipy_and_their_cis_with_lifelines(both):
    """Every task x schedule x target, in steps: the median against scipy.stats.ecdf (the first
    time S <= 1/2), its CI against lifelines (log-log Greenwood bands where they cross 0.5).
    lifelines' own median is not the reference: its float product lands just above 1/2 where S
    is exactly 1/2 (7 of the fixture's 24, e.g. 4 of 8 runs reaching by step 276)."""
    results, _ = both
    for row in tables.time_to_target(results).itertuples():
        g = results.final[
            (results.final.task == row.task) & (results.final.schedule == row.schedule)
        ]
        times, hit = tables.censored_times(g, f"{row.target:g}", "step")
        times = np.where(hit, times, 10**6)  # not reached: censored after every event
        sf = sps.ecdf(sps.CensoredData(uncensored=times[hit], right=times[~hit])).sf
        below = sf.quantiles[sf.probabilities <= 0.5]
        assert row.step_median == (below[0] if len(below) else math.inf), row
        fit = KaplanMeierFitter().fit(times, hit)
        ci = median_survival_times(fit.confidence_interval_).iloc[0]
        assert (row.step_lo, row.step_hi) == pytest.approx(tuple(ci)), row


def test_the_median_a_float_product_got_wrong():
    """Ten runs reach the target 1, 2, 1, 1 at a time at steps 1-4, then one at step 5: S falls
    to exactly 1/2 at step 4, where the running float product reads 0.5000000000000001 (the
    quick sweep of an earlier commit hit this: a median of 217 steps for 198)."""
    times = np.array([1, 2, 2, 3, 4, 5, math.inf, math.inf, math.inf, math.inf])
    product = (1 - 1 / 10) * (1 - 2 / 9) * (1 - 1 / 7) * (1 - 1 / 6)
    assert product > 0.5  # what a float product would compare
    assert stats.km_median(times, np.isfinite(times))[0] == 4


def test_holm_matches_statsmodels(both):
    paired = tables.paired(both[0].final, 0.005)
    for _, g in paired.dropna(subset=["p"]).groupby("task"):
        for p, adjusted in (("p", "p_holm"), ("p_equiv", "p_equiv_holm")):
            ref = multipletests(g[p], method="holm")[1]
            np.testing.assert_allclose(g[adjusted], ref)
    np.testing.assert_allclose(compare.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(compare.holm([0.01, math.nan])[1])


def _exact_wilcoxon(d: np.ndarray) -> float:
    """Every sign pattern of the nonzero differences, by brute force."""
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    signs = np.array(list(itertools.product([0, 1], repeat=len(d))))
    sums = signs @ ranks
    observed = ranks[d > 0].sum()
    tail = min(observed, ranks.sum() - observed)
    return float(np.mean(np.minimum(sums, ranks.sum() - sums) <= tail + 1e-9))


def test_wilcoxon_is_exact_on_counts_with_ties(both):
    """On paired differences of correct test examples (ties and zeros included) the p is the
    exact one; scipy agrees where it is exact too."""
    runs = tables.correct(both[0].final)
    for _, g in runs.groupby("task"):
        table = g.pivot(index="seed", columns="schedule", values="correct")
        best = table.mean().idxmax()
        for name in table.columns.drop(best):
            d = (table[name] - table[best]).to_numpy()
            assert compare.wilcoxon_p(d) == pytest.approx(_exact_wilcoxon(d)), name
    tied = np.array([3, -2, 5, 5, 0, 7, 3, 3, 1, -1])
    assert compare.wilcoxon_p(tied) == pytest.approx(sps.wilcoxon(tied).pvalue)
    assert compare.wilcoxon_p(np.zeros(5)) == 1.0
    assert compare.smallest_p(10) == pytest.approx(sps.wilcoxon(np.arange(1, 11)).pvalue)


def test_tost_matches_statsmodels():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.9, 0.01, 10), rng.normal(0.901, 0.01, 10)
    for margin in (0.002, 0.005, 0.02):
        ref = ttost_paired(x, y, -margin, margin)[0]
        assert compare.tost_p(x - y, margin) == pytest.approx(ref)
        ref = ttost_ind(x, y[:7], -margin, margin, usevar="unequal")[0]
        assert compare.welch_tost_p(x, y[:7], margin) == pytest.approx(ref)
    assert compare.welch_p(x, y) == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)
    assert compare.tost_p([2, 2, 2], 5) == 0.0  # no spread: the difference is the mean
    assert compare.tost_p([6, 6, 6], 5) == 1.0


def test_seeds_needed_matches_statsmodels_power_and_simulation():
    """Far outside the margin only the difference test can settle: statsmodels' power solver;
    inside it, TOST: a simulation at the estimated n settles at least ~80% of the time."""
    m = 19  # comparisons: alpha / 19 at Holm's first step
    n = compare.seeds_needed(3.0, 2.0, 0.5, m)
    ref = TTestPower().solve_power(effect_size=1.5, alpha=0.05 / m, power=compare.POWER)
    assert n == math.ceil(ref)
    n = int(compare.seeds_needed(0.5, 2.0, 2.5, m))
    d = np.random.default_rng(2).normal(0.5, 2.0, (4000, n))
    se = d.std(axis=1, ddof=1) / math.sqrt(n)
    crit = sps.t.ppf(1 - 0.05 / m, n - 1)
    shown = ((d.mean(axis=1) + 2.5) / se > crit) & ((d.mean(axis=1) - 2.5) / se < -crit)
    assert 0.78 < shown.mean() < 0.9
    assert compare.seeds_needed(0.0, 1.0, 1e-6, m) == math.inf


def test_prob_best_by_hand():
    table = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 1.0], [3.0, 2.0, 2.0]])
    np.testing.assert_allclose(compare.prob_best(table), [1, 0, 0])
    np.testing.assert_allclose(compare.prob_best(table[:, 1:]), [0.5, 0.5])  # a tie shares
    swap = np.array([[1.0, 0.0], [0.0, 1.0]])  # equal means on both seeds: ties or one each
    assert compare.prob_best(swap).sum() == pytest.approx(1)


def test_probability_of_improvement_by_hand():
    assert compare.prob_improvement([1, 2], [1.5, 2]) == pytest.approx(0.375)


def test_logrank_matches_lifelines(quick):
    results, _ = quick
    g = results.final[results.final.task == "fmnist_mlp, 3 epochs"]

    def sample(schedule):
        runs = g[g.schedule == schedule]
        hit = runs["reached_0.78"].fillna(False).to_numpy(dtype=bool)
        return runs["ttt_0.78_epoch"].to_numpy(dtype=float), hit, runs.epochs.to_numpy(float)

    for a, b in (("cosine", "wsd"), ("exponential", "schedule_free"), ("step", "cosine")):
        z, p = compare.logrank(sample(a), sample(b))
        (ta, ha, ea), (tb, hb, eb) = sample(a), sample(b)
        ref = logrank_test(np.where(ha, ta, ea), np.where(hb, tb, eb), ha, hb)
        assert p == pytest.approx(ref.p_value)
        assert z**2 == pytest.approx(ref.test_statistic)
        assert z < 0  # each is slower than the second


def test_the_quick_results_have_no_digests_so_nothing_is_merged(quick):
    """The committed quick records are schema 2: they do not say which sequences their runs
    applied, so no schedule is merged (step = multistep at 3 epochs stays two hypotheses)."""
    results, groups = quick
    assert groups == {}
    assert identical.undigested(results.final) == len(results.final) == 680


def test_performance_profile_by_hand():
    costs = pd.DataFrame({"a": [1.0, 4.0, np.nan], "b": [2.0, 2.0, 3.0]})
    ratios = stats.profile_ratios(costs)
    np.testing.assert_allclose(ratios.a, [1, 2, math.inf])
    np.testing.assert_allclose(ratios.b, [2, 1, 1])
    prof = stats.performance_profile(ratios, [1, 2, 10])
    np.testing.assert_allclose(prof.a, [1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(prof.b, [2 / 3, 1, 1])


def test_ranks_and_friedman_permutation_p():
    scores = pd.DataFrame({"a": [0.9, 0.8, 0.95], "b": [0.8, 0.8, 0.90], "c": [0.7, 0.6, 0.99]})
    ranks = stats.ranks(scores).mean()
    assert ranks["a"] == pytest.approx((1 + 1.5 + 2) / 3)
    chi2, p, k, n = stats.friedman(scores)
    assert (k, n) == (3, 3)
    assert chi2 == pytest.approx(sps.friedmanchisquare(scores.a, scores.b, scores.c).statistic)
    # 3! ^ 3 = 216 shufflings within tasks: exact, and scipy's own statistic gives the same p
    ref = sps.permutation_test(
        tuple(scores.to_numpy().T),
        lambda *s: sps.friedmanchisquare(*s).statistic,
        permutation_type="samples",
        alternative="greater",
    )
    assert p == pytest.approx(ref.pvalue)
    assert stats.friedman(scores[["a", "b"]]) is None


def test_robustness_width_and_grid_edge():
    sens = pd.DataFrame(
        {"task": "t", "schedule": "s", "lr": [0.01, 0.03, 0.1, 0.3],
         "dev_acc_mean": [0.90, 0.952, 0.955, 0.93]}
    )  # fmt: skip
    row = stats.robustness(sens).iloc[0]
    assert (row.best_lr, row.lr_from, row.lr_to) == (0.1, 0.03, 0.1)
    assert row.width == pytest.approx(0.1 / 0.03)
    assert not row.at_grid_edge
    dip = stats.robustness(sens.assign(dev_acc_mean=[0.953, 0.90, 0.955, 0.93])).iloc[0]
    assert dip.lr_from == dip.lr_to == 0.1  # 0.01 is as good but not contiguous with 0.1
    edge = stats.robustness(sens.assign(dev_acc_mean=[0.96, 0.95, 0.9, 0.8])).iloc[0]
    assert edge.at_grid_edge
    assert edge.best_lr == 0.01


def test_kendall_tau_is_scipys_tau_b():
    """Vectorised over resamples, ties included (equal means are exact ties)."""
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 4, (300, 6)).astype(float), rng.integers(0, 4, (300, 6)).astype(float)
    ref = [sps.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(stats.kendall_tau(x, y), ref)
    assert math.isnan(stats.kendall_tau(np.ones(4), np.arange(4.0)))  # no untied pair in x


def test_rank_agreement_on_the_budget_fixture(monkeypatch):
    """Kendall's tau between the budgets' mean test accuracies, from the runs by hand with
    scipy, and its interval: percentiles of scipy's tau over the same resamples of the seeds,
    drawn alike at both budgets. fmnist_mlp's order reverses; mnist_logreg's holds."""
    results, _ = prepared(BUDGETS)
    monkeypatch.setattr(stats, "RESAMPLES", 400)  # scipy's tau, one call per resample, by hand
    got = budgets.ranking(results).set_index("task")
    for task, row in got.iterrows():
        runs = results.final[results.final.task.str.startswith(f"{task}, ")]
        acc = [runs[runs.epochs == e].pivot(index="seed", columns="schedule", values="test_acc")
               for e in (1, 3)]  # fmt: skip
        assert (row.epochs_a, row.epochs_b, row.n_schedules, row.n_seeds) == (1, 3, 4, 8)
        assert row.tau == sps.kendalltau(acc[0].mean(), acc[1].mean()).statistic
        idx = np.random.default_rng(stats.SEED).integers(0, 8, (400, 8))
        taus = [sps.kendalltau(acc[0].iloc[i].mean(), acc[1].iloc[i].mean()).statistic
                for i in idx]  # fmt: skip
        assert (row.tau_ci_lo, row.tau_ci_hi) == pytest.approx(np.percentile(taus, [2.5, 97.5]))
    assert got.tau.to_dict() == pytest.approx({"fmnist_mlp": -2 / 3, "mnist_logreg": 1.0})
    assert got.loc["fmnist_mlp", "tau_ci_hi"] < 0 < got.loc["mnist_logreg", "tau_ci_lo"]
