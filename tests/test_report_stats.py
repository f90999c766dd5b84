"""report/stats.py, report/compare.py and the speed verdicts' statistics against scipy,
statsmodels, lifelines and by hand,
on made-up numbers, the fixture results (one and two budgets per task) and the committed quick
reference results."""

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times, restricted_mean_survival_time
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import ttost_ind

from report import budgets, compare, identical, stats, tables, verdicts
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
    is exactly 1/2 (7 of the fixture's 24, e.g. 4 of 8 runs reaching by step 276); scipy's
    can too (5 of 10 runs of the quick reference's exponential at 3 epochs, by step 96), so its
    survival is compared with 1/2 to within a few ulps of 1/2."""
    results, _ = both
    for row in tables.time_to_target(results).itertuples():
        g = results.final[
            (results.final.task == row.task) & (results.final.schedule == row.schedule)
        ]
        times, hit = tables.censored_times(g, f"{row.target:g}", "step")
        times = np.where(hit, times, 10**6)  # not reached: censored after every event
        sf = sps.ecdf(sps.CensoredData(uncensored=times[hit], right=times[~hit])).sf
        below = sf.quantiles[sf.probabilities <= 0.5 + 1e-15]
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


def test_holm_matches_statsmodels():
    p = np.random.default_rng(5).uniform(0, 0.2, 12)
    np.testing.assert_allclose(compare.holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(compare.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(compare.holm([0.01, math.nan])[1])


def test_welch_tests_match_statsmodels_and_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.9, 0.01, 10), rng.normal(0.901, 0.01, 7)
    for margin in (0.002, 0.005, 0.02):
        ref = ttost_ind(x, y, -margin, margin, usevar="unequal")[0]
        assert compare.welch_tost_p(x, y, margin) == pytest.approx(ref)
    assert compare.welch_p(x, y) == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)


def test_speed_statistics_match_lifelines_and_statsmodels(both):
    """The restricted mean time to target is lifelines' restricted mean survival time of the
    Kaplan-Meier curve up to the budget; the interval of the fraction that reached it is
    statsmodels' Clopper-Pearson ("beta") interval."""
    results, _ = both
    final, ttt = results.final, tables.time_to_target(results)
    speed = verdicts.speeds(final, ttt)
    for row in speed.itertuples():
        runs = final[(final.task == row.task) & (final.schedule == row.schedule)]
        reached = runs[f"reached_{row.target:g}"].fillna(False).to_numpy(dtype=bool)
        end = runs.epochs.to_numpy(dtype=float)
        t = np.where(reached, runs[f"ttt_{row.target:g}_epoch"].to_numpy(dtype=float), end)
        km = KaplanMeierFitter().fit(t, reached)
        assert row.rmst == pytest.approx(restricted_mean_survival_time(km, t=end.max()))
        lo, hi = proportion_confint(reached.sum(), len(runs), alpha=0.05, method="beta")
        assert (row.reached_ci_lo, row.reached_ci_hi) == pytest.approx((lo, hi))


def test_the_quick_results_merge_the_schedules_their_records_say_are_one(quick):
    """The committed quick records (schema 4) carry the digests of the lr sequences their runs
    applied: every group merged applies one sequence and gets one result seed by seed, and
    the step decays of step and multistep (identical with the quick sweep's settings) fall
    within 3 epochs, where they stay one schedule apart from constant."""
    results, groups = quick
    assert identical.undigested(results.final) == 0
    assert (
        len(results.final) + sum(len(g) - 1 for gs in groups.values() for g in gs) * 10 == 680
    )  # every merged name's 10 runs are shown once
    raw = load(REFERENCE).final
    for problem, problem_groups in groups.items():
        task, epochs = results.problems[problem]
        for group in problem_groups:
            runs = raw[(raw.task == task) & (raw.epochs == epochs) & raw.schedule.isin(group)]
            per_seed = runs.groupby("seed")[["lr_digest", "test_acc"]].nunique()
            assert (per_seed == 1).all().all(), (problem, group)
    for problem in ("fmnist_mlp, 3 epochs", "mnist_logreg, 3 epochs"):
        assert ["step", "multistep"] in groups[problem]


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
    scipy, and its interval: percentiles of scipy's tau over resamples of each budget's seeds,
    drawn on their own. fmnist_mlp's order reverses; mnist_logreg's holds."""
    results, _ = prepared(BUDGETS)
    monkeypatch.setattr(stats, "RESAMPLES", 400)  # scipy's tau, one call per resample, by hand
    got = budgets.ranking(results).set_index("task")
    for task, row in got.iterrows():
        runs = results.final[results.final.task.str.startswith(f"{task}, ")]
        acc = [runs[runs.epochs == e].pivot(index="seed", columns="schedule", values="test_acc")
               for e in (1, 3)]  # fmt: skip
        assert (row.epochs_a, row.epochs_b, row.n_schedules) == (1, 3, 4)
        assert (row.n_seeds_a, row.n_seeds_b) == (8, 8)
        assert row.tau == sps.kendalltau(acc[0].mean(), acc[1].mean()).statistic
        rng = np.random.default_rng(stats.SEED)
        ia, ib = rng.integers(0, 8, (400, 8)), rng.integers(0, 8, (400, 8))
        taus = [sps.kendalltau(acc[0].iloc[i].mean(), acc[1].iloc[j].mean()).statistic
                for i, j in zip(ia, ib, strict=True)]  # fmt: skip
        assert (row.tau_ci_lo, row.tau_ci_hi) == pytest.approx(np.percentile(taus, [2.5, 97.5]))
    assert got.tau.to_dict() == pytest.approx({"fmnist_mlp": -2 / 3, "mnist_logreg": 1.0})
    assert got.loc["fmnist_mlp", "tau_ci_hi"] < 0 < got.loc["mnist_logreg", "tau_ci_lo"]
