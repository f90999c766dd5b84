"""What a run measures: classification metrics from logits, which test examples it got
right, and time to each target.

Plain NumPy (and SciPy's log-softmax) on host arrays, so the batched engine and the tests
share it. A value that is not finite (a diverged run's loss) becomes ``None``: JSON has no
NaN, and the tables then count it as missing, never as a number.
"""

import base64
import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import log_softmax

# the recall / false-positive-rate points of the record's macro curves: 21 points (every 5%)
# draw a curve and keep both at ~0.7 KB a record; i / 20 is the double nearest each decimal,
# so the record writes 0.15 (linspace's is 0.15000000000000002)
CURVE_GRID = np.arange(21) / 20
CURVE_DECIMALS = 6  # a curve's values in the record: a figure needs no more


def finite(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite."""
    value = float(value)
    return value if np.isfinite(value) else None


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    """Loss, accuracy, macro F1 / precision / recall, one-vs-rest ROC-AUC and average
    precision, per-class accuracy, and the macro ROC and precision-recall ``curves``.

    ``logits`` is ``[N, classes]``, ``labels`` ``[N]`` integers. Precision of a class never
    predicted is 0 (scikit-learn's ``zero_division=0``); ROC-AUC, average precision and the
    curves are macro means over the classes with positives and negatives (``_one_vs_rest``),
    ROC-AUC by the Mann-Whitney rank statistic (ties count a half).
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
    ranked = [c for c in range(classes) if 0 < support[c] < len(labels)]
    aucs = [_auc(log_p[:, c], labels == c) for c in ranked]
    curves = [_one_vs_rest(log_p[:, c], labels == c) for c in ranked]
    finite_curves = bool(curves) and np.isfinite(log_p).all()
    return {
        "loss": finite(-log_p[np.arange(len(labels)), labels].mean()),
        "acc": float(hits.sum() / len(labels)),
        "macro_f1": float(f1[present].mean()),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "roc_auc_ovr": finite(np.mean(aucs)) if aucs else None,
        "macro_ap": float(np.mean([c[0] for c in curves])) if finite_curves else None,
        "per_class_acc": [finite(r) if p else None for r, p in zip(recall, present, strict=True)],
        "curves": {
            "grid": CURVE_GRID.tolist(),
            "roc_tpr": _macro([c[1] for c in curves]) if finite_curves else None,
            "pr_precision": _macro([c[2] for c in curves]) if finite_curves else None,
        },
    }


def _one_vs_rest(score: np.ndarray, positive: np.ndarray) -> tuple:
    """One class's average precision, and its ROC and precision-recall curves at ``CURVE_GRID``.

    Thresholds are the distinct scores, highest first (tied examples enter together).
    Average precision is scikit-learn's: the sum over thresholds of the recall gained times
    the precision there. The curves are scikit-learn's ``roc_curve`` and
    ``precision_recall_curve`` (with its point of precision 1 at recall 0) read at the grid:
    the ROC curve linearly between its points (at a vertical step, its top), as ``np.interp``
    reads it; the precision-recall curve as the interpolated precision, the highest at any
    recall at least the grid's (PASCAL VOC), which needs no choice of where a step falls.
    """
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    last = np.r_[np.flatnonzero(ordered[1:] != ordered[:-1]), len(score) - 1]  # each tie's end
    tp = np.cumsum(positive[order])[last]
    fp = (last + 1) - tp
    precision, recall = tp / (last + 1), tp / tp[-1]
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    roc = np.interp(CURVE_GRID, np.r_[0.0, fp / fp[-1]], np.r_[0.0, recall])
    best_after = np.maximum.accumulate(np.r_[1.0, precision][::-1])[::-1]  # at recall >= r
    pr = best_after[np.searchsorted(np.r_[0.0, recall], CURVE_GRID, side="left")]
    return ap, roc, pr


def _macro(curves: list[np.ndarray]) -> list[float]:
    """The classes' curves averaged point by point, rounded to ``CURVE_DECIMALS``."""
    return np.round(np.mean(curves, axis=0), CURVE_DECIMALS).tolist()


def per_example(logits: np.ndarray, labels: np.ndarray, split: str = "test") -> dict:
    """Which of the evaluated examples (the first ``len(labels)`` of ``split``) the run got
    right, packed (``pack_bits``), with a digest of their labels (16 hex digits of SHA-256 over
    them as little-endian int64): two records with equal ``split``, ``examples`` and
    ``labels_digest`` were scored on the same examples, so they pair example by example."""
    labels = np.asarray(labels)
    correct = np.asarray(logits).argmax(axis=1) == labels  # classification_metrics' prediction
    return {
        "split": split,
        "examples": len(labels),
        "labels_digest": hashlib.sha256(labels.astype("<i8").tobytes()).hexdigest()[:16],
        "correct": pack_bits(correct),
    }


def pack_bits(flags: np.ndarray) -> str:
    """Booleans as base64 text of their bits, 8 a byte, the first in the lowest bit
    (``np.packbits(..., bitorder="little")``): 10,000 flags in 1,668 characters."""
    return base64.b64encode(np.packbits(flags, bitorder="little").tobytes()).decode("ascii")


def unpack_bits(text: str, count: int) -> np.ndarray:
    """The ``count`` booleans ``pack_bits`` wrote as ``text``."""
    packed = np.frombuffer(base64.b64decode(text), np.uint8)
    return np.unpackbits(packed, count=count, bitorder="little").astype(bool)


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
