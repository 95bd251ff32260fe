r"""Losses for quality targets (dense detection): varifocal loss and quality focal loss.

A one-stage detector scores each anchor (or point) per class; instead of a 0/1 label, the positive's
target is the quality of its box, ``q ∈ (0, 1]`` (the IoU of the predicted box with its ground truth),
and every other entry is ``q = 0``. The class score then ranks boxes by how well they are localised.
Both losses are the cross-entropy with the soft target ``q``, focused in two ways:

- varifocal loss (VFNet) focuses the negatives only, as focal loss does, and weighs each positive by its
  own ``q`` so that well-localised boxes count most;
- quality focal loss (GFL) focuses every entry by its distance ``|σ(x) − q|^β`` from its target.
"""

from __future__ import annotations

from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid

__all__ = ["quality_focal_loss", "varifocal_loss"]


def varifocal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Varifocal loss on logits, with quality (IoU-aware) targets.

    .. math:: \ell = \begin{cases} q\,\mathrm{BCE}(x, q) & q > 0 \\ \alpha\, p^{\gamma}\,\mathrm{BCE}(x, 0) & q = 0
              \end{cases},\qquad p = \sigma(x),\quad
              \mathrm{BCE}(x, q) = -q \log p - (1 - q)\log(1 - p)

    mmdetection's ``varifocal_loss`` (its ``focal_weight = q·[q > 0] + α|p − q|^γ·[q ≤ 0]``), in log space:
    ``−log p = softplus(−x)`` and ``−log(1 − p) = softplus(x)``, exact for every finite logit. The weights are
    differentiated through, as there (no ``detach``). With ``iou_weighted=False`` the positives weigh 1
    instead of ``q``. For 0/1 targets the positives' term is BCE and the negatives' is ``α`` times focal
    loss's negative term.

    The detectors divide the summed loss by their number of positive anchors: pass that count as
    ``normalizer`` with ``reduction="mean"`` (``normalizer="positives"`` divides by ``Σq`` instead, the
    counted targets' sum).

    Args:
        logits: raw scores ``x``, any shape (``[N, C]`` for anchors × classes).
        target: quality targets ``q`` in ``[0, 1]``, same shape: the IoU for an anchor's class, 0 elsewhere.
        alpha: ``α ≥ 0``, the negatives' weight (VFNet: 0.75).
        gamma: ``γ ≥ 0``, the negatives' focusing (VFNet: 2).
        iou_weighted: weigh the positives by ``q`` (VFNet's default), else by 1.
        sample_weight, ignore_index, reduction, normalizer, sync: as in :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Zhang et al., VarifocalNet: An IoU-aware Dense Object Detector, CVPR 2021.

    Examples:
        >>> import torch
        >>> x, q = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[0.8, 0.0, 0.0]])
        >>> round(varifocal_loss(x, q, reduction="sum").item(), 4)
        0.695
    """
    fn = "varifocal_loss"
    a, g, weighted = I.check_varifocal_options(fn, alpha, gamma, iou_weighted)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, sync=sync)
    return run_sigmoid(inp, "varifocal", alpha=a, gamma=g, iou_weighted=weighted)


def quality_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    beta: float = 2.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Quality focal loss (GFL) on logits, with quality targets.

    .. math:: \ell = \mathrm{BCE}(x, q)\,\lvert q - \sigma(x)\rvert^{\beta}

    mmdetection's ``quality_focal_loss_tensor_target`` (and ``quality_focal_loss`` with the target given as
    class and score: the score at its class, 0 elsewhere), in log space; ``σ(x) − q`` is formed as
    ``(1 − q)σ(x) − qσ(−x)``, with no cancellation where ``σ(x)`` rounds to 1. The factor is
    differentiated through, as there. ``beta = 0`` is :func:`binary_cross_entropy`; for 0/1 targets it is
    :func:`sigmoid_focal_loss` with ``alpha=None`` and ``gamma = beta``. ``0 < beta < 1`` is refused: the
    factor's slope is infinite where ``σ(x) = q``.

    Args:
        logits: raw scores ``x``, any shape.
        target: quality targets ``q`` in ``[0, 1]``, same shape.
        beta: ``β``, 0 or ``≥ 1`` (GFL: 2).
        sample_weight, ignore_index, reduction, normalizer, sync: as in :func:`binary_cross_entropy` (the
            detectors' normaliser, their number of positives, as for :func:`varifocal_loss`).

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Li et al., Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for Dense
        Object Detection, NeurIPS 2020.

    Examples:
        >>> import torch
        >>> x, q = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[0.8, 0.0, 0.0]])
        >>> round(quality_focal_loss(x, q, reduction="sum").item(), 4)
        0.3817
    """
    fn = "quality_focal_loss"
    b = I.check_qfl_beta(fn, beta)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, sync=sync)
    return run_sigmoid(inp, "qfl", gamma=b)
