r"""Region losses for segmentation: Dice, Tversky, focal Tversky, and Dice + focal.

A pixel-wise loss (cross-entropy, focal loss) averages over pixels, so a structure that covers 0.1 % of
an image weighs 0.1 % of the loss. A region loss instead scores the overlap of the predicted and the true
mask of each class in each image, so a small structure counts as much as a large one. For each sample
``b`` and class ``c`` the sums run over the spatial positions (and over the batch too with ``batch=True``):

.. math:: \mathrm{tp} = \sum w\,p\,y,\qquad \mathrm{fp} = \sum w\,p\,(1 - y),\qquad
          \mathrm{fn} = \sum w\,(1 - p)\,y,

with ``p`` the predicted probability (``σ(x)``, or the softmax over the classes), ``y`` the target (0/1,
or soft) and ``w`` the ``sample_weight`` (0 at ``ignore_index`` positions). The Tversky index is
``TI = (tp + s_n) / (tp + α·fp + β·fn + s_d)`` and the losses are, per sample and class,

- Dice: ``1 − (2·tp + s_n) / (Σp + Σy + s_d)`` (Tversky with ``α = β = ½``; Milletari et al. 2016);
- Tversky: ``1 − TI`` (``α`` weighs false positives, ``β`` false negatives; Salehi et al. 2017);
- focal Tversky: ``(1 − TI)^γ`` (Abraham & Khan 2019; ``γ < 1`` keeps pushing classes already fairly well
  segmented);

then ``class_weight`` multiplies each class's loss and ``"mean"`` averages over samples and classes
(MONAI's ``DiceLoss`` / ``TverskyLoss`` conventions, ``smooth_nr = smooth_dr = 1e-5``).
:func:`dice_focal_loss` adds a focal loss to the Dice loss. Each is computed in float32 (float64 stays
float64) from the logits: the probabilities and their complements come from the logits directly, and the
losses from ``fp`` and ``fn`` without the cancellation of ``1 − ratio``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _inputs as I
from ._formulas import leader_rest, tversky_terms
from .focal import sigmoid_focal_loss, softmax_focal_loss
from .kernels import all_reduce, reduce_scale
from .kernels.ops import TorchOps
from .kernels.reference import world_size

__all__ = ["dice_focal_loss", "dice_loss", "focal_tversky_loss", "tversky_loss"]

ACTIVATIONS = ("sigmoid", "softmax")


def dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    activation: str = "sigmoid",
    include_background: bool = True,
    batch: bool = False,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    class_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Dice loss on logits, per sample and class, for segmentation masks.

    .. math:: \ell_{b,c} = 1 - \frac{2\sum p\,y + s_n}{\sum p + \sum y + s_d}

    summed over the spatial positions of sample ``b`` (and over the batch with ``batch=True``), ``p`` the
    sigmoid or the softmax of the logits. The same as MONAI's ``DiceLoss(sigmoid=True)`` and
    ``DiceLoss(softmax=True, to_onehot_y=True)`` (class-id targets; ``include_background``, ``batch``,
    ``weight``, ``ignore_index`` as there). A class absent from a sample and predicted absent scores
    ``(s_d − s_n) / s_d`` (0 by default); one absent but predicted scores near 1.

    Args:
        logits: ``(B, C, *spatial)`` raw scores, the classes on dim 1. ``(N, C)`` rows (no spatial axes)
            need ``batch=True``: the sums then run over the rows (a differentiable F1 per class).
        target: ``"sigmoid"``: 0/1 (or soft, in ``[0, 1]``) of the logits' shape. ``"softmax"``: integer
            class ids ``(B, *spatial)`` (MONAI's ``(B, 1, *spatial)`` label maps too), or probabilities of the
            logits' shape (one-hot or soft; a position whose target sums to 0 is left out).
        activation: ``"sigmoid"`` (independent classes, multi-label or binary masks) or ``"softmax"``
            (mutually exclusive classes).
        include_background: ``False`` leaves class 0 out of the loss (after the softmax). Needs ``C ≥ 2``.
        batch: sum over the batch as well: one score per class for the whole batch (MONAI's ``batch=True``);
            steadier when most images lack a class.
        smooth_nr, smooth_dr: added to the numerator and the denominator; ``0 ≤ smooth_nr ≤ smooth_dr`` and
            ``smooth_dr > 0`` (so that the loss lies in ``[0, 1]`` and an empty class is never ``0/0``).
        class_weight: ``(C,)`` (``(C − 1,)`` without background), ``≥ 0``: multiplies each class's loss.
        sample_weight: ``≥ 0``, broadcastable to the per-position shape (``"softmax"`` with class ids:
            ``(B, *spatial)``; else the logits' shape): weighs each position inside the sums.
        ignore_index: positions whose target equals it are left out of every sum, their gradient exactly 0.
            ``"sigmoid"``: per element (``None``: none); ``"softmax"`` with class ids: per position (``None``
            means ``-100``, as :func:`focalkit.cross_entropy`).
        reduction: ``"mean"`` (over samples and classes), ``"sum"``, or ``"none"``: the ``(B, C)`` losses
            (``(C,)`` with ``batch=True``).
        normalizer: with ``"mean"``, divide the sum of the ``(B, C)`` losses by this (number or 1-element
            tensor) instead of their count.
        sync: ``True`` or a process group. ``batch=False``: the count is summed over the ranks, and the loss
            scaled for DDP's average, as :func:`focalkit.binary_cross_entropy`. ``batch=True``: the sums
            ``tp, fp, fn`` are summed over the ranks, so every rank scores the whole batch, and the gradient
            is scaled so that DDP's average is the gradient of that score.

    Shape:
        logits ``(B, C, *)`` · output ``(B, C)`` (``(C,)`` with ``batch=True``) for ``"none"``, else ``()``

    References:
        Milletari, Navab, Ahmadi, V-Net, 3DV 2016.

    Examples:
        >>> import torch
        >>> x = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
        >>> y = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(dice_loss(x, y).item(), 6)
        0.307576
    """
    return _region("dice_loss", logits, target, alpha=0.5, beta=0.5, gamma=1.0, dice=True,
                   activation=activation, include_background=include_background, batch=batch,
                   smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                   sample_weight=sample_weight, ignore_index=ignore_index, reduction=reduction,
                   normalizer=normalizer, sync=sync)


def tversky_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    activation: str = "sigmoid",
    include_background: bool = True,
    batch: bool = False,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    class_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Tversky loss on logits: Dice with separate weights on false positives and false negatives.

    .. math:: \ell_{b,c} = 1 - \frac{\mathrm{tp} + s_n}{\mathrm{tp} + \alpha\,\mathrm{fp} + \beta\,\mathrm{fn} + s_d}

    ``β > α`` penalises missed pixels more than false alarms: recall over precision, for small lesions.
    MONAI's ``TverskyLoss`` (``alpha`` on false positives, ``beta`` on false negatives). ``α = β = ½`` is
    :func:`dice_loss` with both smoothing terms doubled; ``α = β = 1`` is the Jaccard (IoU) loss. The other
    arguments are :func:`dice_loss`'s.

    Args:
        alpha, beta: ``≥ 0``, not both 0.

    References:
        Salehi, Erdogmus, Gholipour, Tversky loss function for image segmentation using 3D fully
        convolutional deep networks, MLMI 2017.

    Examples:
        >>> import torch
        >>> x = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
        >>> y = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(tversky_loss(x, y, alpha=0.3, beta=0.7, smooth_nr=1e-6, smooth_dr=1e-6).item(), 4)
        0.3589
    """
    return _region("tversky_loss", logits, target, alpha=alpha, beta=beta, gamma=1.0, dice=False,
                   activation=activation, include_background=include_background, batch=batch,
                   smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                   sample_weight=sample_weight, ignore_index=ignore_index, reduction=reduction,
                   normalizer=normalizer, sync=sync)


def focal_tversky_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 0.75,
    activation: str = "sigmoid",
    include_background: bool = True,
    batch: bool = False,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    class_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""Focal Tversky loss on logits: the Tversky loss of each sample and class raised to ``γ``.

    .. math:: \ell_{b,c} = \left(1 - \frac{\mathrm{tp} + s_n}{\mathrm{tp} + \alpha\,\mathrm{fp} +
              \beta\,\mathrm{fn} + s_d}\right)^{\gamma}

    The defaults are the authors' code (``gamma = 0.75``, i.e. the paper's ``1/γ`` with ``γ = 4/3``; 0.7 on
    false negatives and 0.3 on false positives, which the paper writes as its ``α = 0.7`` on ``fn``): with
    ``γ < 1`` a class already fairly well segmented keeps a large gradient, so training keeps working on
    the hard small structures. ``γ = 1`` is :func:`tversky_loss`. At a loss of exactly 0 the gradient is 0.
    The other arguments are :func:`tversky_loss`'s.

    Args:
        gamma: ``> 0``.

    References:
        Abraham, Khan, A novel focal Tversky loss function with improved attention U-Net for lesion
        segmentation, ISBI 2019.

    Examples:
        >>> import torch
        >>> x = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
        >>> y = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(focal_tversky_loss(x, y).item(), 4)
        0.4637
    """
    return _region("focal_tversky_loss", logits, target, alpha=alpha, beta=beta, gamma=gamma, dice=False,
                   activation=activation, include_background=include_background, batch=batch,
                   smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                   sample_weight=sample_weight, ignore_index=ignore_index, reduction=reduction,
                   normalizer=normalizer, sync=sync)


def dice_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    activation: str = "sigmoid",
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    include_background: bool = True,
    batch: bool = False,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    class_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    sync: bool | object = False,
) -> Tensor:
    r"""Dice loss plus focal loss: ``λ_dice · dice_loss + λ_focal · focal``.

    The Dice term is :func:`dice_loss`; the focal term is, for ``"sigmoid"``,
    :func:`focalkit.sigmoid_focal_loss` (``gamma``, ``alpha`` on the positives, ``None``: no α) averaged
    over every element, and for ``"softmax"`` :func:`focalkit.softmax_focal_loss` averaged over the
    positions. ``class_weight`` multiplies each class's Dice and focal terms (for the softmax focal term,
    the terms of the positions of that class); ``include_background=False`` leaves class 0 out of both;
    ``sample_weight`` and ``ignore_index`` apply to both; the focal mean counts every valid element
    (weights scale it, they do not renormalise it). With ``"sigmoid"`` this is MONAI's
    ``DiceFocalLoss(sigmoid=True)``; MONAI's ``softmax=True`` keeps a sigmoid focal term on the one-hot
    channels, here the focal term follows the activation. Only ``reduction="mean"``: the two terms live on
    different axes (samples × classes, and positions), so neither ``"sum"`` nor ``"none"`` has one meaning.

    Args:
        gamma: ``≥ 0``, the focal term's focusing parameter.
        alpha: the focal term's α (``"softmax"``: a scalar or one value per class).
        lambda_dice, lambda_focal: ``≥ 0``, the terms' weights.

    References:
        Zhu et al., AnatomyNet, Medical Physics 2019 (Dice + focal for small organs).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
        >>> y = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(dice_focal_loss(x, y).item(), 4)
        0.5
    """
    fn = "dice_focal_loss"
    lam_d = I.check_number(fn, "lambda_dice", lambda_dice, low=0.0)
    lam_f = I.check_number(fn, "lambda_focal", lambda_focal, low=0.0)
    if I.check_reduction(fn, reduction) != "mean":
        raise ValueError(f"{fn}: reduction must be 'mean' (the Dice and focal terms are reduced over different "
                         f"axes); got {reduction!r}. For per-class values call dice_loss(reduction='none').")
    act = _check_activation(fn, activation)
    dice = _region(fn, logits, target, alpha=0.5, beta=0.5, gamma=1.0, dice=True, activation=act,
                   include_background=include_background, batch=batch, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                   class_weight=class_weight, sample_weight=sample_weight, ignore_index=ignore_index,
                   reduction="mean", normalizer=None, sync=sync)
    group = I.check_sync(fn, sync, "mean")
    x, num_classes = logits, logits.shape[1]  # checked by _region
    cw = I.as_class_vector(fn, "class_weight", class_weight)
    if act == "sigmoid":
        y, w = target, sample_weight
        if not include_background:
            x, y = x[:, 1:], y[:, 1:]
            if isinstance(w, Tensor) and w.ndim == logits.ndim and w.shape[1] > 1:
                w = w[:, 1:]
        if cw is not None:
            along = cw.to(device=x.device, dtype=I.compute_dtype(x.dtype)).reshape(1, -1, *([1] * (x.ndim - 2)))
            w = along if w is None else w * along
        valid = _valid_count(y if ignore_index is None else y != ignore_index, group)
        focal = sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, sample_weight=w, ignore_index=ignore_index,
                                   normalizer=valid, sync=sync)
    else:
        if not include_background:
            head = torch.zeros(1, dtype=torch.float64)
            cw = torch.cat([head, torch.ones(num_classes - 1, dtype=torch.float64) if cw is None else cw.double()])
        y = _label_map(target, logits)
        ii = -100 if ignore_index is None else ignore_index
        valid = _valid_count(y.sum(1) > 0 if y.dtype.is_floating_point else y != ii, group)
        focal = softmax_focal_loss(x, y, alpha=alpha, gamma=gamma, class_weight=cw, sample_weight=sample_weight,
                                   ignore_index=ii, normalizer=valid, sync=sync)
    return lam_d * dice + lam_f * focal.to(dice.dtype)


# ----------------------------------------------------------------------------------------------


def _check_activation(fn: str, activation: object) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"{fn}: activation must be 'sigmoid' or 'softmax'; got {activation!r}.")
    return activation  # type: ignore[return-value]


def _check_smooth(fn: str, smooth_nr: object, smooth_dr: object) -> tuple[float, float]:
    s_d = I.check_number(fn, "smooth_dr", smooth_dr, low=0.0, low_open=True)
    s_n = I.check_number(fn, "smooth_nr", smooth_nr, low=0.0)
    if s_n > s_d:
        raise ValueError(f"{fn}: smooth_nr must be <= smooth_dr (else a perfect empty prediction scores below 0); "
                         f"got smooth_nr={s_n:g}, smooth_dr={s_d:g}.")
    return s_n, s_d


def _label_map(target: object, logits: Tensor) -> object:
    """MONAI's ``(B, 1, *spatial)`` class-id map as focalkit's ``(B, *spatial)``."""
    if (isinstance(target, Tensor) and not target.dtype.is_floating_point and target.ndim == logits.ndim
            and logits.ndim > 2 and target.shape[1] == 1):
        return target[:, 0]
    return target


def _valid_count(kept: Tensor, group: object) -> Tensor:
    """The number of counted elements (summed over the ranks under ``sync``), at least 1: the focal term's
    mean divides by it, so that weights scale the loss instead of renormalising it."""
    count = kept.sum() if kept.dtype == torch.bool else torch.tensor(float(kept.numel()), device=kept.device)
    count = count.to(torch.float64 if kept.dtype == torch.float64 else torch.float32)
    if group is not False:
        count, _ = all_reduce(count, group)
    return count.clamp_min(1.0)


def _leading_ones(t: Tensor, ndim: int) -> Tensor:
    """``t`` viewed with ``ndim`` dimensions (a broadcastable weight's missing leading ones made explicit)."""
    return t.reshape((1,) * (ndim - t.ndim) + tuple(t.shape))


def _region_sums(fn: str, logits: Tensor, target: Tensor, *, activation: str, include_background: bool,
                 batch: bool, sample_weight: object, ignore_index: object, reduction: str
                 ) -> tuple[Tensor, Tensor, Tensor, torch.dtype, int]:
    """``tp, fp, fn`` of shape ``(B, C)`` (``(C,)`` with ``batch``), the output dtype and ``C``."""
    if activation == "sigmoid":
        inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                               reduction=reduction)
        x, dtype = inp.logits, inp.dtype
        if x.ndim < 2:
            raise ValueError(f"{fn}: logits must be (B, C, *spatial); got shape {tuple(x.shape)}. For one "
                             "binary mask use logits[None, None].")
        xc = x.to(dtype)
        p, q = torch.sigmoid(xc), torch.sigmoid(-xc)
        y = inp.target.to(dtype)
        w = None if inp.sample_weight is None else _leading_ones(inp.sample_weight.to(dtype), x.ndim)
        if inp.ignore_index is not None:
            keep = inp.target != inp.ignore_index
            y = y.masked_fill(~keep, 0.0)
            w = keep.to(dtype) if w is None else w * keep
    else:
        ii = -100 if ignore_index is None else ignore_index
        inp = I.softmax_inputs(fn, logits, _label_map(target, logits), ignore_index=ii,
                               sample_weight=sample_weight, reduction=reduction)
        x, dtype = inp.logits, inp.dtype
        xc = x.to(dtype)
        # shifted to a maximum of 0 *with* the max's gradient: the leader's e is then exactly 1 for autograd
        # too, which leader_rest's R = Σ_{c≠top} e_c (the leader's 1 − p as R / S, exact) relies on
        z = xc - xc.amax(1, keepdim=True)
        e = torch.exp(z)
        rest, total = leader_rest(TorchOps, e, 1)
        p = e / total
        q = torch.where(z == 0, rest / total, 1.0 - p)  # 1 − p; the others' p ≤ ½ loses nothing
        w = None if inp.sample_weight is None else _leading_ones(inp.sample_weight.to(dtype), x.ndim - 1).unsqueeze(1)
        if inp.sparse:
            keep = inp.target != inp.ignore_index
            y = torch.nn.functional.one_hot(inp.target.masked_fill(~keep, 0), x.shape[1]).movedim(-1, 1).to(dtype)
            mask = keep.unsqueeze(1).to(dtype)
        else:
            y = inp.target.to(dtype)
            mask = (y.sum(1, keepdim=True) > 0).to(dtype)  # a position whose target sums to 0 adds nothing
        w = mask if w is None else w * mask
    num_classes = x.shape[1]
    if x.ndim == 2 and not batch:
        raise ValueError(f"{fn}: logits {tuple(x.shape)} have no spatial axes to sum over; pass batch=True to "
                         "sum over the rows (one score per class), or give logits (B, C, *spatial).")
    if not include_background:
        if num_classes < 2:
            raise ValueError(f"{fn}: include_background=False drops class 0 and needs at least 2 classes; "
                             f"got {num_classes}.")
        p, q, y = p[:, 1:], q[:, 1:], y[:, 1:]
        if w is not None and w.shape[1] > 1:
            w = w[:, 1:]
        num_classes -= 1
    if w is not None:
        p, q = p * w, q * w
    axes = ([0] if batch else []) + list(range(2, x.ndim))
    tp = (p * y).sum(axes)
    fp = (p * (1.0 - y)).sum(axes)
    fn_ = (q * y).sum(axes)
    return tp, fp, fn_, inp.out_dtype, num_classes


def _region(fn: str, logits: Tensor, target: Tensor, *, alpha: float, beta: float, gamma: float, dice: bool,
            activation: object, include_background: object, batch: object, smooth_nr: object, smooth_dr: object,
            class_weight: object, sample_weight: object, ignore_index: object, reduction: object,
            normalizer: object, sync: object) -> Tensor:
    act = _check_activation(fn, activation)
    reduction = I.check_reduction(fn, reduction)
    batch = I.check_bool(fn, "batch", batch)
    include_background = I.check_bool(fn, "include_background", include_background)
    s_n, s_d = _check_smooth(fn, smooth_nr, smooth_dr)
    if not dice:
        alpha = I.check_number(fn, "alpha", alpha, low=0.0)
        beta = I.check_number(fn, "beta", beta, low=0.0)
        if alpha == 0 and beta == 0:
            raise ValueError(f"{fn}: alpha and beta must not both be 0 (the loss would be 0 whatever the "
                             "prediction).")
        gamma = I.check_number(fn, "gamma", gamma, low=0.0, low_open=True)
    norm = I.check_normalizer(fn, normalizer, reduction, positives=False)
    if isinstance(norm, str):
        raise ValueError(f"{fn}: normalizer must be a number or a 1-element tensor; got {norm!r}.")
    group = I.check_sync(fn, sync, reduction, per_element=batch)
    tp, fp, fn_, out_dtype, num_classes = _region_sums(
        fn, logits, target, activation=act, include_background=include_background, batch=batch,
        sample_weight=sample_weight, ignore_index=ignore_index, reduction=reduction)
    cw = I.as_class_vector(fn, "class_weight", class_weight)
    if cw is not None and cw.numel() != num_classes:
        extra = " (class 0 left out: include_background=False)" if not include_background else ""
        raise ValueError(f"{fn}: class_weight must have one value per class scored ({num_classes}{extra}); "
                         f"got {cw.numel()}.")
    gathered = batch and group is not False and world_size(group) > 1
    if gathered:
        # every rank scores the whole batch: the ranks' sums (no gradient) replace the local ones' values
        local = torch.stack([tp, fp, fn_])
        whole, _ = all_reduce(local.detach(), group)
        tp, fp, fn_ = (local + (whole - local.detach())).unbind(0)
    if dice:
        loss = tversky_terms(tp, fp, fn_, alpha=0.5, beta=0.5, smooth_nr=s_n / 2, smooth_dr=s_d / 2)
    else:
        loss = tversky_terms(tp, fp, fn_, alpha=alpha, beta=beta, smooth_nr=s_n, smooth_dr=s_d)
    if gamma != 1.0:
        positive = loss > 0
        loss = torch.where(positive, torch.where(positive, loss, torch.ones_like(loss)) ** gamma,
                           torch.zeros_like(loss))
    if cw is not None:
        loss = loss * cw.to(device=loss.device, dtype=loss.dtype)
    if reduction == "none":
        out = loss
    else:
        count = torch.full((), float(loss.numel()), dtype=loss.dtype, device=loss.device)
        out = loss.sum() * reduce_scale(reduction, count, norm, None if gathered else group)
    if gathered:
        # DDP averages the ranks' gradients; each rank's holds its own part of the whole-batch score's
        r = world_size(group)
        out = out * r - out.detach() * (r - 1)
    return out.to(out_dtype)
