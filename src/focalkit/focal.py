r"""Focal loss (seeds 000, 001, 004): cross-entropy scaled down where the model is already right.

The focal factor ``(1 − p_t)^γ`` is computed in log space, ``exp(γ·log(1 − p_t))``, from
``logsigmoid`` / ``log_softmax``: finite loss and gradient for every finite logit and every
``γ ≥ 0``, including ``0 < γ < 1`` where ``(1 − p)^γ`` has an infinite slope at ``p = 1``.
"""

from __future__ import annotations

from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid, run_softmax

__all__ = ["sigmoid_focal_loss", "softmax_focal_loss"]


def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    gamma_hard: float | None = None,
    hard_threshold: float = 0.2,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Binary / multi-label focal loss on logits (Lin et al.).

    .. math:: \ell = \alpha_t (1 - p_t)^{\gamma}\, \mathrm{BCE}(x, y),\quad
              p_t = p y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y),\quad p = \sigma(x)

    For hard labels ``BCE = −log p_t``; this is the formula of torchvision, of Keras's
    ``BinaryFocalCrossentropy(apply_class_balancing=True)`` and of the SAM-Med2D code in seed 001.
    Label smoothing ``y ← y(1−ε) + ε/2`` is applied before ``p_t`` and ``α_t``, as Keras does.

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]`` (soft labels allowed), same shape.
        alpha: weight of the positive class in ``[0, 1]``; ``None`` switches the weighting off.
        gamma: focusing parameter ``≥ 0``; ``0`` with ``alpha=None`` gives cross-entropy.
        gamma_hard, hard_threshold: an adaptive focal loss (Mukhoti et al. 2020): ``γ = gamma_hard`` where
            ``p_t < hard_threshold``, ``gamma`` elsewhere, each piece differentiated with its own γ (as the
            authors' code). Their FLSD-53, the best calibrated, is ``gamma=3, gamma_hard=5`` (threshold 0.2).
        label_smoothing: ``ε`` in ``[0, 1]``.
        sample_weight, ignore_index, reduction, normalizer: as in :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Lin et al., Focal Loss for Dense Object Detection, ICCV 2017.

    Examples:
        >>> import torch
        >>> round(sigmoid_focal_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])).item(), 4)
        0.6404
    """
    fn = "sigmoid_focal_loss"
    a = I.check_alpha_binary(fn, alpha)
    g = I.check_gamma(fn, gamma)
    gh, thr = I.check_adaptive_gamma(fn, gamma_hard, hard_threshold)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_sigmoid(inp, "focal", alpha=a, gamma=g, gamma_hard=gh, hard_threshold=thr)


def softmax_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor | None = None,
    gamma: float = 2.0,
    gamma_hard: float | None = None,
    hard_threshold: float = 0.2,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Multi-class focal loss on logits.

    .. math:: \ell_n = -\alpha_{t_n} (1 - p_{n,t_n})^{\gamma} \log p_{n,t_n},\quad p_n = \mathrm{softmax}(x_n)

    With probability targets ``q`` (or label smoothing) it is the per-class form of Keras's
    ``CategoricalFocalCrossentropy`` and MONAI's ``FocalLoss``,
    ``ℓ_n = −Σ_c w_c α_c q_{n,c} (1 − p_{n,c})^γ log p_{n,c}``, which is the line above for a one-hot ``q``.

    Args:
        logits: unnormalised class scores, classes on ``class_dim``.
        target: class ids in ``[0, C)`` or ``ignore_index``; or probabilities shaped like ``logits``.
        alpha: ``None`` (off), a scalar in ``[0, 1]`` multiplying every class, or one value in
            ``[0, 1]`` per class. (A scalar is *not* spread as ``[1−α, α, …]`` over background and
            foreground as kornia and MONAI do: pass that vector to get their weighting.)
        gamma: focusing parameter ``≥ 0``; ``0`` with ``alpha=None`` gives cross-entropy.
        gamma_hard, hard_threshold: an adaptive focal loss, as :func:`sigmoid_focal_loss`: ``γ = gamma_hard``
            for a class term whose ``p_c < hard_threshold`` (for class ids: where ``p_t`` is), else ``gamma``;
            ``gamma=3, gamma_hard=5`` is FLSD-53 (Mukhoti et al. 2020, calibration).
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer,
            class_dim: as in :func:`cross_entropy`; ``α`` is part of ``ℓ``, ``class_weight``
            also weighs the mean's denominator.

    Shape:
        logits ``(N, C, *)`` · target ``(N, *)`` or ``(N, C, *)`` · output ``(N, *)`` for ``"none"``, else ``()``

    References:
        Lin et al., Focal Loss for Dense Object Detection, ICCV 2017.

    Examples:
        >>> import torch
        >>> round(softmax_focal_loss(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])).item(), 4)
        0.0111
    """
    fn = "softmax_focal_loss"
    a = I.check_alpha_multiclass(fn, alpha)
    g = I.check_gamma(fn, gamma)
    gh, thr = I.check_adaptive_gamma(fn, gamma_hard, hard_threshold)
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    if isinstance(a, Tensor) and a.numel() != inp.num_classes:
        raise ValueError(f"{fn}: alpha must have one value per class ({inp.num_classes}); got {a.numel()}.")
    return run_softmax(inp, "focal", alpha=a, gamma=g, gamma_hard=gh, hard_threshold=thr)
