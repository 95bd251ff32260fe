r"""Softened truncation (seed 000): the step ``θ`` of hard truncation replaced by ``σ(K·)``.

The weight is differentiated through; that is the point of softening. With ``K = 1`` the
sigmoid form equals focal loss with ``γ = 1`` (and no ``α``).
"""

from __future__ import annotations

from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid, run_softmax

__all__ = ["sigmoid_soft_truncation_loss", "softmax_soft_truncation_loss"]

WEIGHTINGS = ("softmax", "complement")


def sigmoid_soft_truncation_loss(
    logits: Tensor,
    target: Tensor,
    *,
    k: float = 1.0,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Binary / multi-label softened-truncation loss on logits.

    .. math:: \ell = -y\,\sigma(-Kx)\log\sigma(x) - (1-y)\,\sigma(Kx)\log\sigma(-x)

    ``K → ∞`` gives hard truncation at ``m = ½``; ``K = 0`` gives half the cross-entropy.

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]``, same shape.
        k: sharpness ``K ≥ 0`` of the soft step (1 to 2 in the article's replies).
        label_smoothing, sample_weight, ignore_index, reduction, normalizer: as in :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Su Jianlin, From hard truncation and softening of the loss to focal loss, 2017 (seed 000).

    Examples:
        >>> import torch
        >>> round(sigmoid_soft_truncation_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])).item(), 4)
        1.11
    """
    fn = "sigmoid_soft_truncation_loss"
    kk = I.check_number(fn, "k", k, low=0.0)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_sigmoid(inp, "soft", k=kk)


def softmax_soft_truncation_loss(
    logits: Tensor,
    target: Tensor,
    *,
    k: float = 1.0,
    weighting: str = "softmax",
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Multi-class softened-truncation loss on logits.

    .. math:: \ell_n = -s_{n,t_n} \log \mathrm{softmax}(x_n)_{t_n},\qquad
              s_n = \mathrm{softmax}(-K x_n) \text{ ("softmax", as written)}\ \text{or}\
              s_n = 1 - \mathrm{softmax}(K x_n) \text{ ("complement")}

    The article writes ``softmax(−Kx)_t``; a reader found it near 0 at the start of training
    and proposed ``1 − softmax(Kx)_t``, which with ``K = 1`` is focal loss with ``γ = 1``.
    Probability targets take the per-class form ``ℓ_n = −Σ_c w_c q_{n,c} s_{n,c} log p_{n,c}``.

    Args:
        logits: unnormalised class scores, classes on ``class_dim``.
        target: class ids or probabilities, as in :func:`cross_entropy`.
        k: sharpness ``K ≥ 0``.
        weighting: ``"softmax"`` (the article) or ``"complement"`` (the reader's variant).
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer,
            class_dim: as in :func:`cross_entropy`.

    Shape:
        logits ``(N, C, *)`` · target ``(N, *)`` or ``(N, C, *)`` · output ``(N, *)`` for ``"none"``, else ``()``

    Examples:
        >>> import torch
        >>> x, t = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])
        >>> round(softmax_soft_truncation_loss(x, t).item(), 4)
        0.0094
        >>> round(softmax_soft_truncation_loss(x, t, weighting="complement").item(), 4)
        0.0517
    """
    fn = "softmax_soft_truncation_loss"
    kk = I.check_number(fn, "k", k, low=0.0)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"{fn}: weighting must be one of 'softmax', 'complement'; got {weighting!r}.")
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    family = "soft" if weighting == "softmax" else "complement"
    return run_softmax(inp, family, k=kk)
