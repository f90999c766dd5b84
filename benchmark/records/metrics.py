"""What a run measures: classification metrics from logits, and time to each target.

Plain NumPy (and SciPy's log-softmax) on host arrays, so the batched engine and the tests
share it. A value that is not finite (a diverged run's loss) becomes ``None``: JSON has no
NaN, and the tables then count it as missing, never as a number.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import log_softmax


def finite(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite."""
    value = float(value)
    return value if np.isfinite(value) else None


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    """Loss, accuracy, macro F1 / precision / recall, one-vs-rest ROC-AUC, per-class accuracy.

    ``logits`` is ``[N, classes]``, ``labels`` ``[N]`` integers. Precision of a class never
    predicted is 0 (scikit-learn's ``zero_division=0``); ROC-AUC is the macro mean over the
    classes present, each by the Mann-Whitney rank statistic (ties count a half).
    """
    logits = np.asarray(logits, np.float64)
    log_p = log_softmax(logits, axis=1)
    predicted = logits.argmax(axis=1)
    confusion = np.zeros((classes, classes), np.int64)  # rows: true class, columns: predicted
    np.add.at(confusion, (labels, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    support, predicted_count = confusion.sum(axis=1), confusion.sum(axis=0)
    recall = np.divide(hits, support, out=np.zeros(classes), where=support > 0)
    precision = np.divide(hits, predicted_count, out=np.zeros(classes), where=predicted_count > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(classes), where=both > 0)
    present = support > 0
    # one-vs-rest AUC needs positives and negatives: classes absent or alone are left out
    aucs = [_auc(log_p[:, c], labels == c) for c in range(classes) if 0 < support[c] < len(labels)]
    return {
        "loss": finite(-log_p[np.arange(len(labels)), labels].mean()),
        "acc": float(hits.sum() / len(labels)),
        "macro_f1": float(f1[present].mean()),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "roc_auc_ovr": finite(np.mean(aucs)) if aucs else None,
        "per_class_acc": [finite(r) if p else None for r, p in zip(recall, present, strict=True)],
    }


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC of ``score`` for the ``positive`` examples (NaN when a score is not finite)."""
    if not np.isfinite(score).all():
        return np.nan
    n_pos, n_neg = positive.sum(), (~positive).sum()
    ranks = average_ranks(score)  # a tie counts a half
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank (``scipy.stats.rankdata``'s default; here in
    NumPy because importing scipy.stats costs every training process ~1.5 s)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])  # where each run of ties begins
    ends = np.r_[starts[1:], len(xs)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def time_to_target(curve: Sequence[Mapping], targets: Sequence[float]) -> dict:
    """For each target, the first evaluation whose dev accuracy reaches it, or None.

    Keys are the targets as text ("0.97"); values give the evaluation's step, epoch, samples
    and training seconds. None means the run never reached the target (censored, not missing).
    """
    out = {}
    for target in targets:
        hit = next((p for p in curve if (p["val_acc"] or 0.0) >= target), None)
        keys = ("step", "epoch", "samples", "wall_s")
        out[f"{target:g}"] = None if hit is None else {k: hit[k] for k in keys}
    return out
