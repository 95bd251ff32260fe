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
    "temperature_scale",
]

METRICS = ["ap", "roc_auc", "f1", "entity_f1", "iou", "balanced_accuracy", "minority_recall", "brier", "log_loss",
           "ece", "ece_ts"]
LOWER_IS_BETTER = {"brier", "log_loss", "ece", "ece_ts"}
DESCRIPTIONS = {
    "ap": "average precision (positive class; macro one-vs-rest for several classes)",
    "roc_auc": "ROC-AUC",
    "f1": "F1 at the validation-chosen threshold (pixels: the Dice score)",
    "entity_f1": "entity-level F1 (seqeval: type and both ends right; argmax tags)",
    "iou": "IoU (Jaccard) at the same threshold (pixels only)",
    "balanced_accuracy": "balanced accuracy (mean per-class recall)",
    "minority_recall": "recall of the positive (or rarest) class",
    "brier": "Brier score",
    "log_loss": "log-loss",
    "ece": "expected calibration error, 15 bins, top label",
    "ece_ts": "ECE after temperature scaling fitted on validation (Guo et al. 2017)",
}


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


def _logits(probs: np.ndarray) -> np.ndarray:
    """Log-probabilities (several classes) or the logit of class 1 (two), from clean probabilities."""
    probs = _clean(probs)
    if probs.shape[1] == 2:
        return np.log(probs[:, 1]) - np.log(probs[:, 0])
    return np.log(probs)


def _scaled(z: np.ndarray, t: float) -> np.ndarray:
    from scipy.special import expit, softmax

    if z.ndim == 1:
        p1 = expit(z / t)
        return np.stack([1 - p1, p1], 1)
    return softmax(z / t, axis=1)


def temperature_scale(y_val: np.ndarray, p_val: np.ndarray, p_test: np.ndarray) -> tuple[np.ndarray, float]:
    """Test probabilities after temperature scaling, and the temperature ``T``.

    ``T`` minimises the validation log-loss of ``softmax(z / T)`` (``σ(z / T)`` for two classes),
    ``z`` the logits recovered from the probabilities, over ``T`` in ``[0.05, 20]``.
    """
    from scipy.optimize import minimize_scalar

    z_val, z_test = _logits(p_val), _logits(p_test)
    labels = list(range(p_val.shape[1]))

    def nll(log_t: float) -> float:
        return float(skm.log_loss(y_val, _clean(_scaled(z_val, float(np.exp(log_t)))), labels=labels))

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    t = float(np.exp(best.x))
    return _scaled(z_test, t), t


def evaluate(y: np.ndarray, probs: np.ndarray, *, threshold: float | None = None,
             val: tuple[np.ndarray, np.ndarray] | None = None, dense: bool = False) -> dict[str, float]:
    """Metrics for class ids ``y`` and probabilities ``probs`` ``(n, C)``.

    Two classes: AP and ROC-AUC of the positive class (1), F1 and recall of class 1 at
    ``threshold``. More classes: macro one-vs-rest AP and ROC-AUC, macro F1 of the argmax, recall
    of the rarest class. Brier is the mean squared error of the probability vector (halved for two
    classes, so it is the usual binary Brier score); ECE is on the top-label confidence. With
    ``val = (y_val, p_val)`` also ``ece_ts``, the ECE after temperature scaling fitted on validation;
    with ``dense`` (pixels) also ``iou`` at ``threshold`` (``f1`` is then the Dice score).
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
        balanced = skm.balanced_accuracy_score(y, pred) if len(np.unique(y)) == 2 else float("nan")
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
        balanced = skm.balanced_accuracy_score(y, pred)
    out = {
        "ap": average_precision(y, probs),
        "roc_auc": float(auc),
        "f1": float(f1),
        "minority_recall": float(minority),
        "brier": brier,
        "log_loss": float(skm.log_loss(y, probs, labels=list(range(c)))),
        "balanced_accuracy": float(balanced),
        "ece": expected_calibration_error(probs.max(1), (probs.argmax(1) == y).astype(float)),
    }
    if dense and c == 2:
        out["iou"] = float(f1 / (2 - f1)) if f1 > 0 else 0.0
    if val is not None:
        scaled, _ = temperature_scale(val[0], val[1], probs)
        scaled = _clean(scaled)
        out["ece_ts"] = expected_calibration_error(scaled.max(1), (scaled.argmax(1) == y).astype(float))
    return {m: out[m] for m in METRICS if m in out}
