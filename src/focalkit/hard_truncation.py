r"""Hard truncation (seed 000): cross-entropy switched off where the prediction is good enough.

``λ`` is piecewise constant, so it carries no gradient: this is the loss the article shows to
need many more iterations than its softened form.
"""

from __future__ import annotations

from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid, run_softmax

__all__ = ["sigmoid_hard_truncation_loss", "softmax_hard_truncation_loss"]


def sigmoid_hard_truncation_loss(
    logits: Tensor,
    target: Tensor,
    *,
    threshold: float = 0.5,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Binary / multi-label hard-truncated cross-entropy on logits.

    .. math:: \ell = -y\,\theta(m - p)\log p - (1-y)\,\theta(p - (1-m))\log(1-p),\quad p = \sigma(x)

    with ``θ`` the unit step, ``θ(0) = ½`` as the article defines it, and ``m`` the threshold:
    a positive with ``p > m`` or a negative with ``p < 1 − m`` contributes nothing.
    ``m = 1`` gives cross-entropy everywhere except the ``½`` at ``p ∈ {0, 1}``.

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]``, same shape.
        threshold: ``m`` in ``(0, 1]`` (0.5 in the article, 0.6 in its predecessor).
        label_smoothing, sample_weight, ignore_index, reduction, normalizer: as in :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Su Jianlin, From hard truncation and softening of the loss to focal loss, 2017 (seed 000).

    Examples:
        >>> import torch
        >>> sigmoid_hard_truncation_loss(torch.tensor([3.0, -3.0]), torch.tensor([1.0, 0.0])).item()
        0.0
    """
    fn = "sigmoid_hard_truncation_loss"
    m = I.check_number(fn, "threshold", threshold, low=0.0, high=1.0, low_open=True)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_sigmoid(inp, "hard", threshold=m)


def softmax_hard_truncation_loss(
    logits: Tensor,
    target: Tensor,
    *,
    threshold: float = 0.5,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Multi-class hard-truncated cross-entropy on logits.

    .. math:: \ell_n = -\theta(m - p_{n,t_n}) \log p_{n,t_n},\quad p_n = \mathrm{softmax}(x_n)

    Probability targets take the per-class form ``ℓ_n = −Σ_c w_c q_{n,c} θ(m − p_{n,c}) log p_{n,c}``.

    Args:
        logits: unnormalised class scores, classes on ``class_dim``.
        target: class ids or probabilities, as in :func:`cross_entropy`.
        threshold: ``m`` in ``(0, 1]``; a sample whose target probability exceeds it is skipped.
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer,
            class_dim: as in :func:`cross_entropy`.

    Shape:
        logits ``(N, C, *)`` · target ``(N, *)`` or ``(N, C, *)`` · output ``(N, *)`` for ``"none"``, else ``()``

    Examples:
        >>> import torch
        >>> softmax_hard_truncation_loss(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])).item()
        0.0
    """
    fn = "softmax_hard_truncation_loss"
    m = I.check_number(fn, "threshold", threshold, low=0.0, high=1.0, low_open=True)
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_softmax(inp, "hard", threshold=m)
