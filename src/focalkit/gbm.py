"""Gradient-boosting objectives: focalkit's losses as ``(grad, hess)`` for XGBoost and LightGBM.

The gradient and the Hessian come from the same math core as the PyTorch and Keras faces
(:mod:`focalkit._formulas`, evaluated in float64 with NumPy): closed forms, checked in the tests
against ``torch.autograd`` first and second derivatives.

One objective object serves every calling convention::

    xgboost.train(params, dtrain, obj=focalkit.gbm.focal_objective(alpha=0.25, gamma=2.0))
    xgboost.XGBClassifier(objective=focalkit.gbm.focal_objective())
    lightgbm.train({"objective": focalkit.gbm.focal_objective(), ...}, train_set)
    lightgbm.LGBMClassifier(objective=focalkit.gbm.focal_objective())

Raw scores are margins (logits): one column for the sigmoid family, ``C`` columns for
:func:`softmax_focal_objective` (XGBoost's ``num_class``, LightGBM's ``num_class``). Sample weights
multiply the gradient and the Hessian (custom objectives in both libraries must apply them
themselves): those of the ``DMatrix`` / ``Dataset``, and the ``fit(..., sample_weight=w)`` of
``XGBClassifier`` / ``LGBMClassifier``, which reach the objective as its third argument.
:func:`predict_proba` maps raw scores to probabilities.

**Hessian floor.** A tree's leaf value is ``−Σg / Σh``; it needs ``h > 0``. The exact Hessian of
cross-entropy is positive, but that of focal loss, of the softened loss and of the hard truncation
(0 where ``λ = 0``) can be 0 or negative for some margins. Every objective therefore returns
``max(h, hess_floor)`` (default ``1e-6``): the exact Hessian wherever it is at least the floor. GHM-C
uses the cross-entropy Hessian scaled by its weights.

**Starting point.** Give ``xgboost.train`` ``base_score=0`` with a custom objective (it is then a
margin): the trees start from margin 0, as ``binary:logistic`` does with ``base_score=0.5``. (The
``XGBClassifier`` wrapper still reads ``base_score`` as a probability.) LightGBM starts
custom objectives from 0, as its ``binary`` objective does with ``boost_from_average=False``. A
start at the class prior (``log(π/(1−π))``) is usually better for rare positives: pass it as
``base_score`` / ``init_score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._formulas import ghmc_beta, ghmc_bin_index, sigmoid_terms, softmax_sparse_with_hessian, softmax_terms_sparse
from .kernels.ops import NumpyOps

__all__ = [
    "MetricValue",
    "Objective",
    "asymmetric_objective",
    "bce_objective",
    "class_balanced_sample_weight",
    "focal_objective",
    "ghmc_objective",
    "hard_truncation_objective",
    "poly1_focal_objective",
    "predict_proba",
    "quality_focal_objective",
    "soft_truncation_objective",
    "softmax_focal_objective",
    "softmax_poly1_objective",
    "varifocal_objective",
]

ops = NumpyOps


def predict_proba(raw: Any) -> np.ndarray:
    """Raw margins to probabilities: ``σ`` for one column (returned as ``(n, 2)``), softmax for ``C``."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 1 or raw.shape[-1] == 1:
        p1 = ops.sigmoid(raw.reshape(-1))
        return np.stack([1.0 - p1, p1], axis=1)
    return ops.softmax(raw, -1)


def _labels_weights(a: Any, b: Any,
                    sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """``(preds, labels, weights, sklearn_style)`` from either calling convention: ``(preds, DMatrix |
    lightgbm.Dataset)`` with the weights inside, or the wrappers' ``(y_true, y_pred[, sample_weight])``."""
    if hasattr(b, "get_label"):  # (preds, DMatrix | lightgbm.Dataset)
        if sample_weight is not None:
            raise ValueError("focalkit.gbm: with a DMatrix / Dataset the weights come from it; got sample_weight too.")
        preds, labels = np.asarray(a, dtype=np.float64), np.asarray(b.get_label(), dtype=np.float64)
        weights = b.get_weight()
        weights = None if weights is None or len(weights) == 0 else np.asarray(weights, dtype=np.float64)
        return preds, labels, weights, False
    labels = np.asarray(a, dtype=np.float64)
    weights = None
    if sample_weight is not None and np.size(sample_weight) > 0:  # LightGBM passes None, XGBoost an empty array
        weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if weights.size != labels.size:
            raise ValueError(f"focalkit.gbm: sample_weight must hold one weight per label ({labels.size}); "
                             f"got {weights.size}.")
    return np.asarray(b, dtype=np.float64), labels, weights, True


class MetricValue(float):
    """The metric's value, a ``float``; indexed or unpacked it is LightGBM's ``(name, value, False)``
    (``LGBMClassifier(eval_metric=...)`` indexes what the function returns), while XGBoost's wrapper
    and scikit-learn use the number."""

    name: str

    def __new__(cls, value: float, name: str) -> MetricValue:
        out = super().__new__(cls, value)
        out.name = name
        return out

    def _triple(self) -> tuple[str, float, bool]:
        return self.name, float(self), False

    def __getitem__(self, i: int) -> Any:
        return self._triple()[i]

    def __iter__(self) -> Any:
        return iter(self._triple())

    def __len__(self) -> int:
        return 3


class Objective:
    """A callable ``(preds, data) → (grad, hess)`` or ``(y_true, y_pred) → (grad, hess)``; also an eval metric
    through :meth:`metric`."""

    def __init__(self, family: str, *, hess_floor: float = 1e-6, name: str | None = None, **params: Any) -> None:
        self._label = name or f"{family}_objective"  # the function that made it, for messages
        if not hess_floor > 0:
            raise ValueError(f"{self._label}: hess_floor must be > 0; got {hess_floor!r}.")
        self.family = family
        self.hess_floor = float(hess_floor)
        self.params = params

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"focalkit.gbm.Objective({self.family!r}, {opts})"

    @property
    def _name(self) -> str:
        return self._label

    def check(self, raw: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Raw scores as the formula takes them, after checking the labels and the scores' width: a label
        outside [0, 1] (``{0, 3}``, ``{−1, 1}``) or a multi-class score matrix would give meaningless
        gradients."""
        finite = bool(np.all(np.isfinite(labels)))
        if labels.size and not (finite and labels.min() >= 0.0 and labels.max() <= 1.0):
            raise ValueError(f"{self._name}: labels must be in [0, 1] (0/1 or soft labels); got labels "
                             f"{_show(np.unique(labels))}. Map the classes to 0 and 1, or use "
                             "softmax_focal_objective for more than two classes.")
        if raw.size != labels.size:
            raise ValueError(f"{self._name}: predictions must hold one margin per label ({labels.size}); got "
                             f"{raw.size} values (shape {raw.shape}). For multi-class scores use "
                             "softmax_focal_objective(num_class=...).")
        return raw.reshape(labels.shape)

    # the math: subclasses of behaviour by family
    def terms(self, raw: np.ndarray, labels: np.ndarray, order: int) -> tuple[np.ndarray, Any, Any]:
        if self.family == "ghmc":
            beta = _ghmc_beta(raw, labels, int(self.params.get("bins", 10)))
            return sigmoid_terms(ops, "ghmc", raw, labels, order=order, beta=beta)
        return sigmoid_terms(ops, self.family, raw, labels, order=order, tiny=1e-300, **self.params)

    def __call__(self, a: Any, b: Any, sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(preds, DMatrix | Dataset)`` (the ``train`` APIs) or ``(y_true, y_pred, sample_weight)``: the
        scikit-learn wrappers, LightGBM's passing the weights third, XGBoost's as ``sample_weight=``."""
        preds, labels, weights, _ = _labels_weights(a, b, sample_weight)
        _, grad, hess = self.terms(self.check(preds, labels), labels, order=2)
        if type(self) is Objective:  # one margin per label: the gradient in the shape the library passed
            grad, hess = grad.reshape(preds.shape), hess.reshape(preds.shape)
        hess = np.maximum(hess, self.hess_floor)
        if weights is not None:
            w = weights.reshape(-1, *([1] * (grad.ndim - 1)))
            grad, hess = grad * w, hess * w
        return grad, hess

    def loss(self, raw: Any, labels: Any, weights: Any = None) -> float:
        labels = np.asarray(labels, dtype=np.float64)
        value = self.terms(self.check(np.asarray(raw, dtype=np.float64), labels), labels, order=0)[0]
        value = value.reshape(len(value), -1).sum(1) if value.ndim > 1 else value
        return float(np.average(value, weights=weights))

    def metric(self, name: str | None = None):
        """An evaluation function with the same loss (the weighted mean over rows) for every place these
        libraries take one: XGBoost's ``custom_metric`` (``(name, value)``), LightGBM's ``feval``
        (``(name, value, False)``), and the wrappers' ``eval_metric``, called ``(y_true, y_pred[,
        sample_weight])``, where it returns a :class:`MetricValue`: the number for XGBoost and
        scikit-learn, ``(name, value, False)`` for LightGBM."""
        label = name or f"focalkit-{self.family}"

        def evaluate(a: Any, b: Any, sample_weight: Any = None):
            preds, labels, weights, sklearn_style = _labels_weights(a, b, sample_weight)
            value = self.loss(preds, labels, weights)
            if sklearn_style:
                return MetricValue(value, label)
            if type(b).__module__.startswith("lightgbm"):
                return label, value, False
            return label, value

        evaluate.__name__ = label
        return evaluate


def _show(values: np.ndarray) -> str:
    """The distinct labels seen, a few of them."""
    shown = ", ".join(f"{v:g}" for v in values[:8])
    return "{" + shown + (", …}" if len(values) > 8 else "}")


class _SoftmaxObjective(Objective):
    def check(self, raw: np.ndarray, labels: np.ndarray) -> np.ndarray:
        num_classes = int(self.params["num_class"])
        if labels.size and not (np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
                                and labels.min() >= 0 and labels.max() < num_classes):
            raise ValueError(f"{self._name}: labels must be class ids in [0, {num_classes}) (num_class={num_classes});"
                             f" got labels {_show(np.unique(labels))}.")
        if raw.size != labels.size * num_classes:
            raise ValueError(f"{self._name}: predictions must hold num_class={num_classes} scores per label "
                             f"({labels.size} × {num_classes}); got {raw.size} values (shape {raw.shape}).")
        return raw.reshape(len(labels), num_classes)

    def terms(self, raw: np.ndarray, labels: np.ndarray, order: int) -> tuple[np.ndarray, Any, Any]:
        index = labels.astype(np.int64).reshape(-1, 1)
        alpha = self.params.get("alpha")
        qt = 1.0 if alpha is None else np.asarray(alpha, dtype=np.float64)[index]
        family = "poly" if self.family == "softmax_poly1" else "focal"
        opts = {"gamma": self.params.get("gamma", 2.0), "epsilon": self.params.get("epsilon", 1.0),
                "gamma_hard": self.params.get("gamma_hard"), "hard_threshold": self.params.get("hard_threshold", 0.2)}
        if order == 0:
            loss, _ = softmax_terms_sparse(ops, family, raw, index, qt, axis=-1, order=0, **opts)
            return loss[:, 0], None, None
        loss, grad, hess = softmax_sparse_with_hessian(ops, family, raw, index, qt, axis=-1, **opts)
        return loss[:, 0], grad, hess


def _ghmc_beta(raw: np.ndarray, labels: np.ndarray, bins: int) -> np.ndarray:
    """GHM-C weights of this boosting round (the authors' normalisation by non-empty bins)."""
    index = ghmc_bin_index(ops, raw, labels, bins)
    counts = np.bincount(index.reshape(-1), minlength=bins).astype(np.float64)
    return ghmc_beta(ops, counts, float(index.size), max(int((counts > 0).sum()), 1))[index]


def bce_objective(*, pos_weight: float | None = None, hess_floor: float = 1e-6) -> Objective:
    """Cross-entropy: the same trees as XGBoost's ``binary:logistic`` and LightGBM's ``binary``."""
    from ._inputs import check_number

    pw = None if pos_weight is None else check_number("bce_objective", "pos_weight", pos_weight, low=0.0)
    return Objective("bce", hess_floor=hess_floor, pos_weight=pw)


def focal_objective(*, alpha: float | None = 0.25, gamma: float = 2.0, gamma_hard: float | None = None,
                    hard_threshold: float = 0.2, hess_floor: float = 1e-6) -> Objective:
    """Sigmoid focal loss ``α_t (1 − p_t)^γ · BCE`` with its exact gradient and (floored) Hessian;
    ``gamma_hard``, ``hard_threshold``: the adaptive γ of :func:`focalkit.sigmoid_focal_loss` (each piece's
    own derivatives)."""
    from ._inputs import check_adaptive_gamma, check_alpha_binary, check_gamma

    fn = "focal_objective"
    extra: dict[str, Any] = {}
    gh, thr = check_adaptive_gamma(fn, gamma_hard, hard_threshold)
    if gh is not None:
        extra = {"gamma_hard": gh, "hard_threshold": thr}
    return Objective("focal", hess_floor=hess_floor, alpha=check_alpha_binary(fn, alpha), gamma=check_gamma(fn, gamma),
                     **extra)


def soft_truncation_objective(*, k: float = 1.0, hess_floor: float = 1e-6) -> Objective:
    """Softened truncation ``−y σ(−Kx) log σ(x) − (1−y) σ(Kx) log σ(−x)``."""
    from ._inputs import check_number

    return Objective("soft", hess_floor=hess_floor, k=check_number("soft_truncation_objective", "k", k, low=0.0))


def hard_truncation_objective(*, threshold: float = 0.5, hess_floor: float = 1e-6) -> Objective:
    """Hard truncation: ``λ·BCE`` with ``λ`` constant per round; where ``λ = 0`` only the floor remains."""
    from ._inputs import check_number

    m = check_number("hard_truncation_objective", "threshold", threshold, low=0.0, high=1.0, low_open=True)
    return Objective("hard", hess_floor=hess_floor, threshold=m)


def ghmc_objective(*, bins: int = 10, hess_floor: float = 1e-6) -> Objective:
    """GHM-C: each round's gradient-norm histogram weights the cross-entropy gradient and Hessian."""
    from ._inputs import check_int

    return Objective("ghmc", hess_floor=hess_floor, bins=check_int("ghmc_objective", "bins", bins, low=1))


def softmax_focal_objective(num_class: int, *, alpha: Any = None, gamma: float = 2.0, gamma_hard: float | None = None,
                            hard_threshold: float = 0.2, hess_floor: float = 1e-6) -> Objective:
    """Multi-class focal loss on ``[N, C]`` raw scores with the exact diagonal Hessian; ``gamma=0`` is
    multi-class cross-entropy (XGBoost's ``multi:softprob`` gradient); ``gamma_hard``, ``hard_threshold``:
    the adaptive γ of :func:`focalkit.softmax_focal_loss` (``gamma=3, gamma_hard=5``: FLSD-53)."""
    from ._inputs import as_class_vector, check_adaptive_gamma, check_gamma, check_int

    fn = "softmax_focal_objective"
    gh, thr = check_adaptive_gamma(fn, gamma_hard, hard_threshold)
    num_class = check_int(fn, "num_class", num_class, low=2)
    if alpha is not None and not isinstance(alpha, int | float):
        vec = as_class_vector(fn, "alpha", alpha, high=1.0)
        if vec.numel() != num_class:
            raise ValueError(f"{fn}: alpha must have one value per class ({num_class}); got {vec.numel()}.")
        alpha = np.asarray(alpha.detach().cpu() if hasattr(alpha, "detach") else alpha, dtype=np.float64)
    return _SoftmaxObjective("softmax_focal", hess_floor=hess_floor, num_class=num_class, alpha=alpha,
                             gamma=check_gamma("softmax_focal_objective", gamma),
                             **({} if gh is None else {"gamma_hard": gh, "hard_threshold": thr}))


def asymmetric_objective(*, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                         hess_floor: float = 1e-6) -> Objective:
    """Asymmetric loss (:func:`focalkit.asymmetric_loss`) with its exact gradient and (floored) Hessian; one
    margin per label, so a multi-label problem is one binary objective per label column (XGBoost's
    ``multi_strategy``, or one model per label)."""
    from ._inputs import check_asl_options

    gamma_pos, gamma_neg, clip = check_asl_options("asymmetric_objective", gamma_pos, gamma_neg, clip)
    return Objective("asl", hess_floor=hess_floor, name="asymmetric_objective", gamma=gamma_pos, gamma_neg=gamma_neg,
                     clip=clip)


def poly1_focal_objective(*, epsilon: float = 1.0, alpha: float | None = 0.25, gamma: float = 2.0,
                          hess_floor: float = 1e-6) -> Objective:
    """Poly-1 focal loss (:func:`focalkit.poly1_focal_loss`); ``gamma=0, alpha=None`` is the sigmoid poly-1
    cross-entropy ``BCE + ε(1 − p_t)``."""
    from ._inputs import check_alpha_binary, check_epsilon, check_gamma

    fn = "poly1_focal_objective"
    return Objective("polyfocal", hess_floor=hess_floor, name=fn,
                     epsilon=check_epsilon(fn, epsilon), alpha=check_alpha_binary(fn, alpha),
                     gamma=check_gamma(fn, gamma))


def softmax_poly1_objective(num_class: int, *, epsilon: float = 1.0, hess_floor: float = 1e-6) -> Objective:
    """Multi-class poly-1 cross-entropy (:func:`focalkit.poly1_cross_entropy`) on ``[N, C]`` raw scores with the
    exact diagonal Hessian; ``epsilon=0`` is ``multi:softprob``'s gradient."""
    from ._inputs import check_epsilon, check_int

    fn = "softmax_poly1_objective"
    return _SoftmaxObjective("softmax_poly1", hess_floor=hess_floor, name=fn,
                             num_class=check_int(fn, "num_class", num_class, low=2),
                             epsilon=check_epsilon(fn, epsilon))


def varifocal_objective(*, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True,
                        hess_floor: float = 1e-6) -> Objective:
    """Varifocal loss (:func:`focalkit.varifocal_loss`) on quality targets ``q ∈ [0, 1]`` as labels, with its
    closed-form gradient and (floored) Hessian."""
    from ._inputs import check_varifocal_options

    a, g, weighted = check_varifocal_options("varifocal_objective", alpha, gamma, iou_weighted)
    return Objective("varifocal", hess_floor=hess_floor, alpha=a, gamma=g, iou_weighted=weighted)


def quality_focal_objective(*, beta: float = 2.0, hess_floor: float = 1e-6) -> Objective:
    """Quality focal loss ``BCE(x, q)·|q − σ(x)|^β`` (:func:`focalkit.quality_focal_loss`) on soft labels, with
    its closed-form gradient and (floored) Hessian."""
    from ._inputs import check_qfl_beta

    return Objective("qfl", hess_floor=hess_floor, gamma=check_qfl_beta("quality_focal_objective", beta))


def class_balanced_sample_weight(labels: Any, *, beta: float = 0.9999, class_counts: Any = None) -> np.ndarray:
    """Per-row weights ``w_{y_i}`` from :func:`focalkit.class_balanced_weights` (Cui et al. 2019), for
    ``DMatrix(weight=...)``, ``lightgbm.Dataset(weight=...)`` or ``fit(sample_weight=...)``: the objectives
    multiply their gradients and Hessians by them. ``labels``: 0/1 or class ids ``0 … C−1``; ``class_counts``
    (default: counted from ``labels``) gives one count per class."""
    from .class_balance import class_balanced_weights

    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if y.size and not (np.all(np.isfinite(y)) and np.all(y == np.round(y)) and y.min() >= 0):
        raise ValueError(f"class_balanced_sample_weight: labels must be class ids 0, 1, …; got {_show(np.unique(y))}.")
    ids = y.astype(np.int64)
    counts = np.bincount(ids, minlength=2) if class_counts is None else np.asarray(class_counts, dtype=np.float64)
    if ids.size and ids.max() >= len(counts):
        raise ValueError(f"class_balanced_sample_weight: class_counts has {len(counts)} classes; labels go up to "
                         f"{ids.max()}.")
    weights = class_balanced_weights(counts.tolist(), beta=beta).double().numpy()
    return weights[ids]
