r"""Poly-1 losses (Leng et al. 2022): cross-entropy or focal loss plus ``ε`` times the first term of its
Taylor series in ``1 − p_t``.

Cross-entropy is ``−log p_t = Σ_j (1 − p_t)^j / j``; PolyLoss reweights the leading term, and the
paper finds one coefficient enough. ``ε(1 − p_t)`` adds a constant slope ``−ε`` in ``p_t`` to
cross-entropy's ``−1/p_t``, so it matters most where that slope is smallest, near ``p_t = 1``: ``ε > 0``
keeps pushing examples that are already mostly right towards certainty (the paper: ImageNet), ``ε < 0``
eases off there (the paper: detection, where the easy examples are many).
"""

from __future__ import annotations

from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid, run_softmax

__all__ = ["poly1_cross_entropy", "poly1_focal_loss"]


def poly1_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Multi-class poly-1 cross-entropy on logits.

    .. math:: \ell_n = -\log p_{n,t_n} + \varepsilon\,(1 - p_{n,t_n}),\qquad p_n = \mathrm{softmax}(x_n)

    With probability targets ``q`` (or label smoothing) ``p_t = Σ_c q_c p_c`` as in the paper's code and
    optax's ``poly_loss_cross_entropy``: ``ℓ_n = −Σ_c q_c log p_c + ε (1 − Σ_c q_c p_c)``; class weights
    multiply each class's share of both terms (``w_t · ℓ_n`` for a class id). ``1 − p_t`` is taken from the
    sum of the other classes' ``exp``, so it keeps its relative precision where ``p_t`` rounds to 1.
    ``epsilon = 0`` is :func:`cross_entropy`.

    Args:
        logits: unnormalised class scores, classes on ``class_dim``.
        target: class ids or probabilities, as in :func:`cross_entropy`.
        epsilon: ``ε ≥ −1`` (``ε < −1`` would make the loss grow with ``p_t``); optax suggests 2 for ImageNet
            classification and −1 for detection and instance segmentation, and a search on the task.
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer, class_dim, sync:
            as in :func:`cross_entropy`.

    Shape:
        logits ``(N, C, *)`` · target ``(N, *)`` or ``(N, C, *)`` · output ``(N, *)`` for ``"none"``, else ``()``

    References:
        Leng et al., PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions, ICLR 2022.

    Examples:
        >>> import torch
        >>> round(poly1_cross_entropy(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])).item(), 4)
        0.4557
    """
    fn = "poly1_cross_entropy"
    eps = I.check_epsilon(fn, epsilon)
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_softmax(inp, "poly", epsilon=eps)


def poly1_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Binary / multi-label poly-1 focal loss on logits.

    .. math:: \ell = \alpha_t (1 - p_t)^{\gamma}\,\mathrm{BCE}(x, y) + \varepsilon\,(1 - p_t)^{\gamma + 1},\qquad
              p_t = p y + (1-p)(1-y),\quad p = \sigma(x)

    The paper's code: ``α_t`` weighs the focal term only. ``epsilon = 0`` is :func:`sigmoid_focal_loss`;
    ``gamma = 0`` with ``alpha=None`` is the sigmoid poly-1 cross-entropy ``BCE + ε (1 − p_t)``. With
    ``ε < 0`` and ``α < 1`` the loss can dip below 0 for confident right answers (``α_t (1−p_t)^γ BCE``
    is about ``α_t (1−p_t)^{γ+1}`` there); its gradient still points the right way.

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]``, same shape.
        epsilon: ``ε ≥ −1`` (the paper: −1 … 1 for detection).
        alpha, gamma, label_smoothing: as in :func:`sigmoid_focal_loss`.
        sample_weight, ignore_index, reduction, normalizer, sync: as in :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Leng et al., PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions, ICLR 2022.

    Examples:
        >>> import torch
        >>> round(poly1_focal_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])).item(), 4)
        1.0446
    """
    fn = "poly1_focal_loss"
    eps = I.check_epsilon(fn, epsilon)
    a = I.check_alpha_binary(fn, alpha)
    g = I.check_gamma(fn, gamma)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_sigmoid(inp, "polyfocal", alpha=a, gamma=g, epsilon=eps)
