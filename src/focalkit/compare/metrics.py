"""Test metrics, from scikit-learn where it has them. Higher is better unless ``LOWER_IS_BETTER``."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "average_precision",
    "best_f1_threshold",
    "evaluate",
    "expected_calibration_error",
]

METRICS = ["ap", "roc_auc", "f1", "minority_recall", "brier", "log_loss", "ece"]
LOWER_IS_BETTER = {"brier", "log_loss", "ece"}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Σ_b (n_b/n)·|accuracy_b − confidence_b| over equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = index == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold that maximises F1 of the positive class (chosen on validation)."""
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))]) if len(thresholds) else 0.5


def _clean(probs: np.ndarray) -> np.ndarray:
    """Probabilities kept off 0 (log-loss) and renormalised; every metric reads these."""
    probs = np.clip(probs, 1e-12, 1.0)
    return probs / probs.sum(1, keepdims=True)


def average_precision(y: np.ndarray, probs: np.ndarray) -> float:
    """AP of the positive class (two classes) or macro one-vs-rest AP over the classes present."""
    probs = _clean(probs)
    if probs.shape[1] == 2:
        return float(skm.average_precision_score(y, probs[:, 1]))
    return float(np.mean([skm.average_precision_score(y == k, probs[:, k]) for k in np.unique(y)]))


def evaluate(y: np.ndarray, probs: np.ndarray, *, threshold: float | None = None) -> dict[str, float]:
    """Metrics for class ids ``y`` and probabilities ``probs`` ``(n, C)``.

    Two classes: AP and ROC-AUC of the positive class (1), F1 and recall of class 1 at
    ``threshold``. More classes: macro one-vs-rest AP and ROC-AUC, macro F1 of the argmax, recall
    of the rarest class. Brier is the mean squared error of the probability vector (halved for two
    classes, so it is the usual binary Brier score); ECE is on the top-label confidence.
    """
    _n, c = probs.shape
    probs = _clean(probs)
    onehot = np.eye(c)[y]
    if c == 2:
        p1 = probs[:, 1]
        pred = (p1 >= (0.5 if threshold is None else threshold)).astype(int)
        auc = skm.roc_auc_score(y, p1) if len(np.unique(y)) == 2 else float("nan")
        f1 = skm.f1_score(y, pred, zero_division=0.0)
        minority = skm.recall_score(y, pred, zero_division=0.0)
        brier = float(np.mean((p1 - y) ** 2))
    else:
        present = np.unique(y)
        pred = probs.argmax(1)
        auc = skm.roc_auc_score(y, probs, multi_class="ovr", labels=list(range(c))) if len(present) == c else float(
            "nan")
        f1 = skm.f1_score(y, pred, average="macro", zero_division=0.0)
        counts = np.bincount(y, minlength=c)
        rare = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        minority = float(np.mean(pred[y == rare] == rare))
        brier = float(np.mean(np.sum((probs - onehot) ** 2, 1)))
    return {
        "ap": average_precision(y, probs),
        "roc_auc": float(auc),
        "f1": float(f1),
        "minority_recall": float(minority),
        "brier": brier,
        "log_loss": float(skm.log_loss(y, probs, labels=list(range(c)))),
        "ece": expected_calibration_error(probs.max(1), (probs.argmax(1) == y).astype(float)),
    }
