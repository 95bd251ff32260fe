"""What a slice of checked input becomes before the formula, written once for every kernel.

Ignored targets read 0 and weigh 0, label smoothing moves the target, the element weight and (for
GHM-C) the bin's β multiply the loss and its gradient. These lines run on torch tensors in the
chunked kernels (:mod:`.fused`, with :class:`~.ops.TorchOps`) and on symbols when the Triton
kernels are written (:mod:`.triton_kernels`, with :class:`~.trace.TritonOps`), so both paths share
them as they share the math core.
"""

from __future__ import annotations

from typing import Any

from .._formulas import ghmc_bin_index, is_zero, sigmoid_terms, softmax_terms, softmax_terms_sparse

__all__ = ["counted", "sigmoid_prepare", "sigmoid_slice_terms", "softmax_dense_slice_terms",
           "softmax_sparse_slice_terms"]


def _is_number(v: Any) -> bool:
    return v is None or isinstance(v, (int, float))


def sigmoid_prepare(ops: Any, cfg: Any, x: Any, y_raw: Any, w: Any) -> tuple[Any, Any, Any]:
    """A slice in the compute dtype: ignored targets read 0 and carry weight 0 (``None``: all weigh 1)."""
    xc, yc = ops.cast(x, cfg.dtype), ops.cast(y_raw, cfg.dtype)
    if cfg.ignore_index is not None:
        valid = yc != cfg.ignore_index  # the converted target: Triton compares no bf16 with an integer
        yc = ops.where(valid, yc, 0.0)
        w = ops.cast(valid, cfg.dtype) if w is None else ops.where(valid, ops.cast(w, cfg.dtype), 0.0)
    elif w is not None:
        w = ops.cast(w, cfg.dtype)
    return xc, yc, w


def counted(ops: Any, xc: Any, w: Any, dtype: Any) -> Any:
    """1 where an element takes part (weight not 0), else 0: GHM-C's histogram counts these."""
    return ops.ones_like(xc) if w is None else ops.cast(w != 0.0, dtype)


def sigmoid_slice_terms(ops: Any, cfg: Any, x: Any, y_raw: Any, w: Any, pw: Any, beta_table: Any, *, order: int,
                        tiny: float, bin_index: Any = None, count_positives: bool = False) -> tuple[Any, Any, Any, Any]:
    """Loss and gradient of a sigmoid-family slice, weighted; the slice's weights (``None``: all 1); and,
    when asked, each element's share of the positives (its unsmoothed target where it is counted)."""
    xc, yc, w = sigmoid_prepare(ops, cfg, x, y_raw, w)
    beta = None
    if cfg.family == "ghmc":
        index = ghmc_bin_index(ops, xc, yc, cfg.bins) if bin_index is None else bin_index
        beta = ops.gather(beta_table, index)
        if w is not None:  # an uncounted element's β is 0
            beta = beta * counted(ops, xc, w, cfg.dtype)
    positives = None
    if count_positives:
        positives = yc if w is None else yc * counted(ops, xc, w, cfg.dtype)
    if not is_zero(cfg.label_smoothing):
        yc = yc * (1.0 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
    if not _is_number(pw):
        pw = ops.cast(pw, cfg.dtype)
    loss, grad, _ = sigmoid_terms(ops, cfg.family, xc, yc, order=order, pos_weight=pw, alpha=cfg.alpha,
                                  gamma=cfg.gamma, threshold=cfg.threshold, k=cfg.k, beta=beta, tiny=tiny,
                                  gamma_neg=cfg.gamma_neg, clip=cfg.clip, epsilon=cfg.epsilon,
                                  iou_weighted=cfg.iou_weighted, gamma_hard=cfg.gamma_hard,
                                  hard_threshold=cfg.hard_threshold)
    if w is not None:
        loss = loss * w
        grad = grad * w if grad is not None else None
    return loss, grad, w, positives


def _class_ids(ops: Any, cfg: Any, t: Any, w: Any, class_weight: Any) -> tuple[Any, Any, Any]:
    """Class ids with ``ignore_index`` read as class 0 at weight 0: the ids, the element weights, and
    the mean's weight (the element weight times the target's class weight)."""
    valid = t != cfg.ignore_index
    idx = ops.where(valid, t, 0)
    w = ops.cast(valid, cfg.dtype) if w is None else ops.where(valid, ops.cast(w, cfg.dtype), 0.0)
    den = w if class_weight is None else w * ops.gather(class_weight, idx)
    return idx, w, den


def softmax_sparse_slice_terms(ops: Any, cfg: Any, x: Any, t: Any, w: Any, class_factor: Any, class_weight: Any, *,
                               order: int) -> tuple[Any, Any, Any]:
    """A class-id slice without label smoothing: ``x`` with the classes on axis 1, ``t`` and ``w`` with that
    axis kept at size 1. Returns the weighted loss and gradient and the mean's weight (all with axis 1)."""
    xc = ops.cast(x, cfg.dtype)
    idx, w, den = _class_ids(ops, cfg, t, w, class_weight)
    qt = w if class_factor is None else w * ops.gather(class_factor, idx)  # carries the element weight too
    loss, grad = softmax_terms_sparse(ops, cfg.family, xc, idx, qt, axis=1, order=order, gamma=cfg.gamma,
                                      threshold=cfg.threshold, k=cfg.k, epsilon=cfg.epsilon,
                                      gamma_hard=cfg.gamma_hard, hard_threshold=cfg.hard_threshold)
    return loss, grad, den


def softmax_dense_slice_terms(ops: Any, cfg: Any, x: Any, t: Any, w: Any, class_factor: Any, class_weight: Any, *,
                              order: int, num_classes: int) -> tuple[Any, Any, Any]:
    """A slice with a target weight for every class: class ids with label smoothing (``t`` with axis 1 kept
    at size 1) or probabilities (``t`` shaped like ``x``). Returns the weighted loss and gradient and the
    mean's weight (``None``: every position weighs 1), with axis 1 kept."""
    xc = ops.cast(x, cfg.dtype)
    eps = cfg.label_smoothing
    if cfg.sparse:
        idx, w, den = _class_ids(ops, cfg, t, w, class_weight)
        q = ops.cast(ops.index_mask(xc, idx, 1), cfg.dtype) * (1.0 - eps) + eps / num_classes
    else:
        q = ops.cast(t, cfg.dtype)
        if not is_zero(eps):
            q = q * (1.0 - eps) + eps / num_classes
        w = None if w is None else ops.cast(w, cfg.dtype)
        den = w
    if class_factor is not None:
        q = q * ops.per_class(class_factor, xc)
    loss, grad = softmax_terms(ops, cfg.family, xc, q, axis=1, order=order, gamma=cfg.gamma, threshold=cfg.threshold,
                               k=cfg.k, keepdims=True, epsilon=cfg.epsilon, gamma_hard=cfg.gamma_hard,
                               hard_threshold=cfg.hard_threshold)
    if w is not None:
        loss = loss * w
        grad = grad * w if grad is not None else None
    return loss, grad, den
