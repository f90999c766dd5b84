"""benchmark.records.metrics against scikit-learn, and its handling of a diverged run's logits."""

import numpy as np
import pytest
import scipy.stats as sps
from scipy.special import log_softmax
from sklearn import metrics as sk

from benchmark.records import metrics
from benchmark.records import record as records
from benchmark.records.metrics import CURVE_GRID, classification_metrics, finite, per_example


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 500)
    logits = rng.normal(size=(500, 10)) + 2.0 * np.eye(10)[labels] * rng.random((500, 1))
    logits[:5] = logits[5]  # some tied scores
    out = classification_metrics(logits, labels, 10)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = logits.argmax(axis=1)
    assert out["acc"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert out["loss"] == pytest.approx(sk.log_loss(labels, probs, labels=range(10)))
    assert out["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    assert out["macro_precision"] == pytest.approx(
        sk.precision_score(labels, predicted, average="macro", zero_division=0)
    )
    assert out["macro_recall"] == pytest.approx(sk.recall_score(labels, predicted, average="macro"))
    assert out["roc_auc_ovr"] == pytest.approx(sk.roc_auc_score(labels, probs, multi_class="ovr"))
    per_class = sk.confusion_matrix(labels, predicted).diagonal() / np.bincount(labels)
    assert out["per_class_acc"] == pytest.approx(per_class)


def scores(seed: int, n: int = 500, decimals: int | None = None):
    """Labels, logits (many tied where rounded to ``decimals``) and, for scikit-learn, one-hot
    labels and the log-softmax scores the metrics rank (the softmax's order, but with the
    same float ties: rows that differ by a permutation can round apart in one and not the
    other), of 10 classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    logits = rng.normal(size=(n, 10)) + 2.0 * np.eye(10)[labels] * rng.random((n, 1))
    logits = logits if decimals is None else np.round(logits, decimals)
    return labels, logits, np.eye(10)[labels], log_softmax(logits, axis=1)


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, None), (2, 1), (3, 0)])
def test_average_precision_and_curves_match_scikit_learn(seed, decimals):
    labels, logits, onehot, score = scores(seed, decimals=decimals)
    out = classification_metrics(logits, labels, 10)
    ap = sk.average_precision_score(onehot, score, average="macro")
    assert out["macro_ap"] == pytest.approx(ap, rel=1e-12)
    roc, pr = [], []
    for c in range(10):
        fpr, tpr, _ = sk.roc_curve(onehot[:, c], score[:, c], drop_intermediate=False)
        roc.append(np.interp(CURVE_GRID, fpr, tpr))
        precision, recall, _ = sk.precision_recall_curve(onehot[:, c], score[:, c])
        pr.append([precision[recall >= r].max() for r in CURVE_GRID])  # interpolated
    curves = out["curves"]
    assert curves["grid"] == CURVE_GRID.tolist()
    np.testing.assert_allclose(curves["roc_tpr"], np.mean(roc, axis=0), atol=1e-6)
    np.testing.assert_allclose(curves["pr_precision"], np.mean(pr, axis=0), atol=1e-6)
    assert np.all(np.diff(curves["roc_tpr"]) >= 0)
    assert np.all(np.diff(curves["pr_precision"]) <= 0)


def test_a_perfect_ranking_has_unit_average_precision_and_corner_curves():
    labels = np.arange(40) % 4
    out = classification_metrics(np.eye(4)[labels] * 3.0, labels, 4)
    assert out["macro_ap"] == 1.0
    assert out["curves"]["roc_tpr"] == [1.0] * len(CURVE_GRID)
    assert out["curves"]["pr_precision"] == [1.0] * len(CURVE_GRID)


def test_per_example_bits_round_trip_and_name_the_examples():
    labels, logits, _, _ = scores(4, n=1001)
    out = per_example(logits, labels)
    right = logits.argmax(axis=1) == labels
    assert (out["split"], out["examples"]) == ("test", 1001)
    assert len(out["correct"]) == 4 * -(-126 // 3)  # 1001 bits in 126 bytes, base64
    np.testing.assert_array_equal(records.correct({"test": out}), right)
    assert right.mean() == classification_metrics(logits, labels, 10)["acc"]
    assert per_example(logits[:-1], labels[:-1])["labels_digest"] != out["labels_digest"]
    assert per_example(-logits, labels)["labels_digest"] == out["labels_digest"]
    first = np.zeros(9, bool)
    first[0] = True
    assert metrics.pack_bits(first) == "AQA="  # bit 0 is the lowest bit of byte 0


def test_a_class_never_predicted_and_one_absent():
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(4)[[0, 0, 0, 1, 1, 1]] * 5.0  # class 2 never predicted, class 3 absent
    out = classification_metrics(logits, labels, 4)
    assert out["per_class_acc"] == [1.0, 0.5, 0.0, None]
    assert out["macro_precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert out["macro_recall"] == pytest.approx(0.5)


def test_diverged_logits_give_nulls_not_nan():
    labels = np.arange(10)
    out = classification_metrics(np.full((10, 10), np.nan), labels, 10)
    assert out["loss"] is None
    assert out["roc_auc_ovr"] is None
    assert out["macro_ap"] is None
    assert out["curves"]["roc_tpr"] is None
    assert out["curves"]["pr_precision"] is None
    assert 0.0 <= out["acc"] <= 1.0
    assert finite(float("inf")) is None
    assert finite(np.float32(0.5)) == 0.5


def test_average_ranks_match_scipy():
    rng = np.random.default_rng(3)
    for x in (rng.normal(size=50), rng.integers(0, 5, 40).astype(float), np.ones(3), np.ones(1)):
        np.testing.assert_array_equal(metrics.average_ranks(x), sps.rankdata(x))
