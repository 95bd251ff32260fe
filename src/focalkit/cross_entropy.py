r"""Cross-entropy, the baseline every other family modulates (seed 004).

Sigmoid (binary / multi-label) and softmax (multi-class) forms, both on logits, both with label
smoothing as Keras and PyTorch define it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _inputs as I
from .kernels import run_sigmoid, run_softmax

__all__ = ["binary_cross_entropy", "cross_entropy"]


def binary_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    pos_weight: Tensor | float | None = None,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Binary / multi-label cross-entropy on logits.

    .. math:: \ell = -w_{+}\, y \log \sigma(x) - (1 - y) \log \sigma(-x),
              \qquad y \leftarrow y(1-\varepsilon) + \varepsilon/2

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]`` (soft labels allowed; int and bool accepted), same shape.
        pos_weight: ``w₊``, weight of the positive term, broadcastable to ``logits`` exactly as in
            :func:`torch.nn.functional.binary_cross_entropy_with_logits` (a ``[C]`` vector
            lines up with the *last* dimension).
        label_smoothing: ``ε`` in ``[0, 1]``; targets move towards ½.
        sample_weight: per-element weight broadcastable to ``logits``; 0 masks an element out.
        ignore_index: target value that marks "no label" (e.g. 255 in a mask); such elements
            count nowhere and hold 0 in the ``"none"`` output.
        reduction: ``"mean"`` (``Σ w·ℓ / Σ w`` over counted elements), ``"sum"`` or ``"none"``.
        normalizer: replaces the mean's denominator: a number or 0-d tensor (e.g. the number of
            positive anchors), ``"positives"`` (the sum of the unsmoothed targets over counted
            elements) or ``"valid"`` (their weight); the two names divide by ``max(count, 1)``.
        sync: with ``torch.distributed`` initialised, ``True`` (default group) or a process group
            makes DDP's gradient averaging give the gradient of the whole batch's loss, for every
            reduction: the mean's count is all-reduced across the ``R`` ranks and the sum divided by
            ``count / R``; ``"sum"`` is multiplied by ``R``; a given ``normalizer`` is taken as the whole
            batch's (e.g. an all-reduced ``num_pos``) and the sum divided by ``normalizer / R``.
            Averaged over the ranks, the returned value is the whole batch's loss. Refused with
            ``"none"``; every rank must pass the same ``sync``. See the README.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Seed 004 (Keras ``binary_crossentropy``); :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    Examples:
        >>> import torch
        >>> round(binary_cross_entropy(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])).item(), 4)
        1.41
    """
    fn = "binary_cross_entropy"
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    pw = None if pos_weight is None else _check_pos_weight(fn, pos_weight, inp.logits)
    return run_sigmoid(inp, "bce", pos_weight=pw)


def _check_pos_weight(fn: str, pos_weight: Tensor | float, logits: Tensor) -> Tensor | float:
    if not isinstance(pos_weight, Tensor):
        return I.check_number(fn, "pos_weight", pos_weight, low=0.0)
    I.check_device(fn, "pos_weight", pos_weight, logits)
    try:
        shape = torch.broadcast_shapes(pos_weight.shape, logits.shape)
    except RuntimeError:
        shape = None
    if shape != logits.shape:
        raise ValueError(
            f"{fn}: pos_weight must broadcast to logits {tuple(logits.shape)} (a [C] vector lines up "
            f"with the last dimension); got {tuple(pos_weight.shape)}."
        )
    I.check_nonnegative(fn, "pos_weight", pos_weight)
    return pos_weight


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Multi-class cross-entropy on logits, equal to :func:`torch.nn.functional.cross_entropy`.

    .. math:: \ell_n = -\sum_c w_c\, q_{n,c} \log \mathrm{softmax}(x_n)_c,
              \qquad q \leftarrow q(1-\varepsilon) + \varepsilon/C

    with ``q`` the one-hot of the class id or the given probabilities.

    Args:
        logits: unnormalised class scores, classes on ``class_dim`` (1 by default).
        target: class ids in ``[0, C)`` or ``ignore_index`` (integer ``(N, *)``); or
            probabilities shaped like ``logits`` (float, soft and mixup targets).
        class_weight: ``w``, one non-negative weight per class.
        ignore_index: class id that counts nowhere (class-id targets only).
        label_smoothing: ``ε`` in ``[0, 1]``.
        sample_weight: per-element weight broadcastable to ``(N, *)``; 0 masks an element out.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. As in PyTorch, ``"mean"`` divides class-id
            losses by ``Σ sample_weight·w_target`` and probability-target losses by ``Σ sample_weight``.
        normalizer: replaces the mean's denominator: a number, a 0-d tensor or ``"valid"``.
        sync: the gradient of the whole batch's loss under DDP (``True`` or a group), as in
            :func:`binary_cross_entropy`.
        class_dim: the class axis; ``-1`` takes a ``[B, T, C]`` sequence as it is.

    Shape:
        logits ``(N, C, *)`` · target ``(N, *)`` or ``(N, C, *)`` · output ``(N, *)`` for ``"none"``, else ``()``

    Examples:
        >>> import torch
        >>> round(cross_entropy(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])).item(), 4)
        0.2413
    """
    fn = "cross_entropy"
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    return run_softmax(inp, "ce")
