"""report/stats.py against scipy and hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from report import stats


def test_bootstrap_ci_two_values_is_their_range_and_matches_scipy():
    # resampling {a, b}: mean a with prob 1/4, (a+b)/2 with 1/2, b with 1/4 -> 2.5%/97.5% = a, b
    assert stats.bootstrap_ci([0.90, 0.94]) == pytest.approx((0.90, 0.94))
    x = np.array([0.91, 0.93, 0.92, 0.95, 0.90, 0.94, 0.92])
    ref = sps.bootstrap(
        (x,), np.mean, method="percentile", n_resamples=10_000, rng=np.random.default_rng(0)
    ).confidence_interval
    lo, hi = stats.bootstrap_ci(x)
    assert lo == pytest.approx(ref.low, abs=1e-3)
    assert hi == pytest.approx(ref.high, abs=1e-3)
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x)  # fixed seed
    assert all(math.isnan(v) for v in stats.bootstrap_ci([0.9]))


def test_describe_and_iqm():
    d = stats.describe([1, 2, 3, 4, 100, 5, 6, 7])
    assert d["n"] == 8
    assert d["mean"] == pytest.approx(16.0)
    assert d["std"] == pytest.approx(np.std([1, 2, 3, 4, 100, 5, 6, 7], ddof=1))
    assert d["iqm"] == pytest.approx(4.5)  # middle half of 1..7,100: 3, 4, 5, 6
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
    # all reached at 1..5: S = .8 .6 .4 .2 0 -> median 3
    assert stats.km_median([1, 2, 3, 4, 5], [1] * 5)[0] == 3
    # S(1) = 4/5, S(2) = .8 * 3/4 = .6, censored at 2, S(3) = .6 * 1/2 = .3 -> median 3
    assert stats.km_median([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])[0] == 3
    # 2 of 5 reached: S never falls to 0.5 -> not reached (inf), never imputed
    assert stats.km_median([1, 2, 9, 9, 9], [1, 1, 0, 0, 0])[0] == math.inf
    # every run at the same time: 6 runs bound the median (2^-6 < 0.025), 5 do not
    assert stats.km_median([3] * 6, [1] * 6) == (3, 3, 3)
    assert stats.km_median([3] * 5, [1] * 5) == (3, 3, math.inf)
    one = stats.km_median([3], [1])
    assert one[0] == 3
    assert math.isnan(one[1])
    assert math.isnan(one[2])
    med, lo, hi = stats.km_median([1, 2, 3, 4, 5, 6, 7, 8], [1] * 8)
    assert lo <= med <= hi
    assert med == 4


def test_holm_by_hand():
    # sorted .005 .01 .03 .04 times 4 3 2 1 = .02 .03 .06 .04 -> running max .02 .03 .06 .06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9])[1] == 1.0
    out = stats.holm([0.01, math.nan])
    assert out[0] == pytest.approx(0.01)
    assert math.isnan(out[1])


def test_wilcoxon_p_and_smallest_p_agree_with_scipy():
    d = [0.01, 0.02, -0.005, 0.03, 0.015, 0.025]
    assert stats.wilcoxon_p(d) == pytest.approx(sps.wilcoxon(d).pvalue)
    assert stats.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    for n in (3, 5, 8):
        assert stats.smallest_p(n) == pytest.approx(sps.wilcoxon(np.arange(1, n + 1)).pvalue)


def test_probability_of_improvement_by_hand():
    # pairs: 1>1.5 no, 1>2 no, 2>1.5 yes, 2=2 half -> 1.5 / 4
    assert stats.prob_improvement([1, 2], [1.5, 2]) == pytest.approx(0.375)
    assert stats.prob_improvement_ci([3, 3, 3], [1, 1, 1]) == (1.0, 1.0)


def test_paired_vs_best_separates_a_consistent_loser():
    rng = np.random.default_rng(0)
    seeds = np.arange(10)
    base = rng.normal(0.95, 0.002, 10)
    frame = pd.concat(
        [
            pd.DataFrame({"schedule": "good", "seed": seeds, "test_acc": base + 0.010}),
            pd.DataFrame(
                {
                    "schedule": "close",
                    "seed": seeds,
                    "test_acc": base + 0.010 + rng.normal(0, 0.001, 10),
                }
            ),
            pd.DataFrame({"schedule": "bad", "seed": seeds, "test_acc": base}),
        ]
    )
    out = stats.paired_vs_best(frame).set_index("schedule")
    best = out.best.iloc[0]
    assert best in {"good", "close"}
    assert out.loc[best, "tied"]
    assert not out.loc["bad", "tied"]  # 10 of 10 seeds worse: p = 2/1024, Holm x2 < 0.05
    assert out.loc["bad", "p"] == pytest.approx(2 / 1024)
    assert out.loc["bad", "p_holm"] == pytest.approx(2 * 2 / 1024)
    assert out.loc["bad", "mean_diff"] < 0
    assert out.loc["bad", "pi"] < 0.1
    assert (out.n_pairs == 10).all()


def test_performance_profile_by_hand():
    costs = pd.DataFrame({"a": [1.0, 4.0, np.nan], "b": [2.0, 2.0, 3.0]})
    ratios = stats.profile_ratios(costs)
    np.testing.assert_allclose(ratios.a, [1, 2, math.inf])
    np.testing.assert_allclose(ratios.b, [2, 1, 1])
    prof = stats.performance_profile(ratios, [1, 2, 10])
    np.testing.assert_allclose(prof.a, [1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(prof.b, [2 / 3, 1, 1])


def test_ranks_and_friedman():
    scores = pd.DataFrame({"a": [0.9, 0.8, 0.95], "b": [0.8, 0.8, 0.90], "c": [0.7, 0.6, 0.99]})
    ranks = stats.ranks(scores).mean()
    assert ranks["a"] == pytest.approx((1 + 1.5 + 2) / 3)
    assert ranks["c"] == pytest.approx((3 + 3 + 1) / 3)
    chi2, p, k, n = stats.friedman(scores)
    assert (k, n) == (3, 3)
    ref = sps.friedmanchisquare(scores.a, scores.b, scores.c)
    assert (chi2, p) == pytest.approx((ref.statistic, ref.pvalue))
    assert stats.friedman(scores[["a", "b"]]) is None


def test_robustness_width_and_grid_edge():
    sens = pd.DataFrame(
        {
            "task": "t",
            "schedule": "s",
            "lr": [0.01, 0.03, 0.1, 0.3],
            "dev_acc_mean": [0.90, 0.952, 0.955, 0.93],
        }
    )
    row = stats.robustness(sens).iloc[0]
    assert row.best_lr == 0.1
    assert row.lr_from == 0.03
    assert row.lr_to == 0.1
    assert row.width == pytest.approx(0.1 / 0.03)
    assert not row.at_grid_edge
    dip = stats.robustness(sens.assign(dev_acc_mean=[0.953, 0.90, 0.955, 0.93])).iloc[0]
    assert dip.lr_from == dip.lr_to == 0.1  # 0.01 is as good but not contiguous with 0.1
    edge = stats.robustness(sens.assign(dev_acc_mean=[0.96, 0.95, 0.9, 0.8])).iloc[0]
    assert edge.at_grid_edge
    assert edge.best_lr == 0.01
