"""benchmark.records.metrics against scikit-learn, and its handling of a diverged run's logits."""

import numpy as np
import pytest
import scipy.stats as sps
from sklearn import metrics as sk

from benchmark.records import metrics
from benchmark.records.metrics import classification_metrics, finite


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
    assert 0.0 <= out["acc"] <= 1.0
    assert finite(float("inf")) is None
    assert finite(np.float32(0.5)) == 0.5


def test_average_ranks_match_scipy():
    rng = np.random.default_rng(3)
    for x in (rng.normal(size=50), rng.integers(0, 5, 40).astype(float), np.ones(3), np.ones(1)):
        np.testing.assert_array_equal(metrics.average_ranks(x), sps.rankdata(x))
