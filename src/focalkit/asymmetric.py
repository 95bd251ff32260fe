r"""Asymmetric loss (ASL, Ridnik et al. 2021): focusing and a probability shift for the negatives only.

Multi-label training sees many more negatives than positives per sample; ASL focuses the negatives
harder than the positives (``γ₋ > γ₊``) and shifts their probability down by ``clip``, so that a negative
already below ``clip`` adds neither loss nor gradient ("hard thresholding" of easy negatives), while a
mislabelled negative with a high score is weighed less than by focal loss.
"""

from __future__ import annotations

from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid

__all__ = ["asymmetric_loss"]


def asymmetric_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Asymmetric loss for multi-label (and binary) classification on logits.

    .. math:: \ell = -y\,(1-p)^{\gamma_+}\log p \;-\; (1-y)\,p_m^{\gamma_-}\log(1-p_m),\qquad
              p = \sigma(x),\quad p_m = \max(p - c, 0)

    This is timm's and the authors' ``AsymmetricLossMultiLabel`` for 0/1 labels (their negative
    probability ``min(1 − p + c, 1)`` is ``1 − p_m``), written in log space: ``−log p = softplus(−x)``
    and ``−log(1 − p_m) = −log1p(−p_m)`` (``softplus(x)`` when ``c = 0``), so no ``eps`` clamp is needed
    (theirs, ``1e-8``, caps each term at 18.4) and the loss is exact for every finite logit. A negative
    whose ``p ≤ c`` adds no loss and no gradient. Soft labels weigh each term by its own factor (the
    paper's formula); the authors' code raises a single factor to ``γ₊ y + γ₋ (1 − y)`` instead, which
    agrees with this for 0/1 labels only. The factors are differentiated through (the authors'
    ``disable_torch_grad_focal_loss=False``). The authors' code sums (``−loss.sum()``): pass
    ``reduction="sum"`` for their scale; the default is the mean over the elements.

    With ``gamma_pos = gamma_neg = 0`` and ``clip = 0`` it is :func:`binary_cross_entropy`; with
    ``gamma_pos = gamma_neg = γ`` and ``clip = 0``, :func:`sigmoid_focal_loss` with ``alpha=None``.

    Args:
        logits: raw scores ``x``, any shape (``[N, C]`` for ``C`` labels per sample).
        target: labels ``y`` in ``[0, 1]``, same shape.
        gamma_pos: ``γ₊ ≥ 0``, focusing of the positives (the paper: 0).
        gamma_neg: ``γ₋ ≥ 0``, focusing of the negatives (the paper: 4).
        clip: the shift ``c`` in ``[0, 1)`` of the negatives' probability (the paper: 0.05).
        label_smoothing, sample_weight, ignore_index, reduction, normalizer, sync: as in
            :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Ridnik et al., Asymmetric Loss For Multi-Label Classification, ICCV 2021.

    Examples:
        >>> import torch
        >>> x, y = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, 0.0]])
        >>> round(asymmetric_loss(x, y, reduction="sum").item(), 4)
        0.2187
    """
    fn = "asymmetric_loss"
    gp, gn, c = I.check_asl_options(fn, gamma_pos, gamma_neg, clip)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_sigmoid(inp, "asl", gamma=gp, gamma_neg=gn, clip=c)
