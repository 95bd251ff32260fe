r"""Losses that re-balance by the training class counts (issue 13, first part).

- :func:`class_balanced_weights`: the weights of Cui et al. 2019, ``w_c = (1 − β)/(1 − β^{n_c})``
  (the inverse "effective number" of samples), normalised to sum to ``C``; pass them as
  ``class_weight``, ``pos_weight`` or a per-class ``alpha``.
- :func:`logit_adjusted_cross_entropy` (Menon et al. 2021): ``CE(x + τ log π)``.
- :func:`balanced_softmax_loss` (Ren et al. 2020): ``CE(x + log n)``, the same with ``τ = 1`` and
  ``π ∝ n``.
- :func:`ldam_loss` (Cao et al. 2019): ``CE(s · (x − m_t e_t))``, a margin ``m_c ∝ n_c^{−1/4}`` taken
  off the true class's logit.

The last three are cross-entropy of moved logits: they take every option of
:func:`focalkit.cross_entropy` (every layout, ``class_weight``, ``ignore_index``, ``label_smoothing``,
``sample_weight``, the reductions, ``normalizer``, ``sync``) and run through its kernels on the moved
logits, which cost one logits-sized tensor more than cross-entropy. The model is scored without the
move: at test time ``softmax(x)`` is the balanced prediction (Menon et al.'s "loss correction").
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from . import _inputs as I
from ._inputs import SoftmaxInputs
from .kernels import run_softmax

__all__ = ["balanced_softmax_loss", "class_balanced_weights", "ldam_loss", "ldam_margins",
           "logit_adjusted_cross_entropy"]


def _counts(fn: str, name: str, value: object) -> Tensor:
    """Per-class counts as a float64 vector, every one finite and > 0 (always checked: a few numbers)."""
    if value is None:
        raise TypeError(f"{fn}: {name} is required: the training examples per class, one number per class.")
    vec = I.as_class_vector(fn, name, value)
    if vec.numel() < 2:
        raise ValueError(f"{fn}: {name} must hold one value per class (at least 2); got {vec.numel()}.")
    vec = vec.detach().to(torch.float64)
    if isinstance(value, Tensor):  # a value check (a device sync; off under torch.compile and torch.func)
        if not I._checks_values(vec):
            return vec
        lo, hi = float(vec.min()), float(vec.max())
    else:  # numbers given on the host: read there, always
        lo, hi = min(float(v) for v in value), max(float(v) for v in value)  # type: ignore[union-attr]
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0:
        raise ValueError(f"{fn}: {name} must be finite and > 0 for every class (a class with no training "
                         f"example has no finite {'weight' if 'weights' in fn else 'shift'}: count it as 1 or "
                         f"leave the class out); got values in [{lo:g}, {hi:g}].")
    return vec


def _per_class(fn: str, name: str, vec: Tensor, inp: SoftmaxInputs) -> Tensor:
    """``vec`` on the logits' device and compute dtype, shaped to broadcast along the class axis (axis 1)."""
    c = inp.logits.shape[1]
    if vec.numel() != c:
        raise ValueError(f"{fn}: {name} must have one value per class ({c}); got {vec.numel()}.")
    shape = (1, c) + (1,) * (inp.logits.ndim - 2)
    return vec.to(device=inp.logits.device, dtype=inp.dtype).view(shape)


def _ce_of(inp: SoftmaxInputs, moved: Tensor) -> Tensor:
    return run_softmax(dataclasses.replace(inp, logits=moved), "ce")


def class_balanced_weights(class_counts: object, *, beta: float = 0.9999) -> Tensor:
    r"""Class-balanced weights of Cui et al. 2019, normalised to sum to the number of classes.

    .. math:: w_c = \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad w \leftarrow C\, w / \textstyle\sum_c w_c

    ``β = 0`` gives equal weights; ``β → 1`` the inverse class frequency (the paper uses 0.9–0.9999;
    the larger the data set, the nearer 1).

    Args:
        class_counts: training examples per class ``n_c`` (a sequence or 1-D tensor, each > 0; need not be
            integers).
        beta: ``β`` in ``[0, 1)``.

    Returns:
        A ``[C]`` tensor: float64 on the counts' device for a float64 tensor, else the default dtype.
        Use it as ``class_weight=`` of the softmax losses, or as ``pos_weight`` / a per-class ``alpha``.

    Examples:
        >>> [round(w, 3) for w in class_balanced_weights([900, 90, 10], beta=0.99).tolist()]
        [0.228, 0.384, 2.388]
    """
    fn = "class_balanced_weights"
    beta = I.check_number(fn, "beta", beta, low=0.0, high=1.0, high_open=True)
    counts = _counts(fn, "class_counts", class_counts)
    # 1 − β^n as −expm1(n log β): exact for β near 1 and small n; β = 0 gives log β = −inf and w = 1
    weights = (1.0 - beta) / -torch.expm1(counts * torch.log(torch.tensor(beta, dtype=torch.float64)))
    weights = weights * (counts.numel() / weights.sum())
    given = class_counts if isinstance(class_counts, Tensor) else None
    dtype = torch.float64 if given is not None and given.dtype == torch.float64 else torch.get_default_dtype()
    return weights.to(dtype=dtype, device=given.device if given is not None else None)


def _check_prior(fn: str, value: object) -> Tensor:
    prior = _counts(fn, "class_prior", value)
    if isinstance(value, Tensor) and not I._checks_values(prior):
        return prior
    total = float(prior.sum()) if isinstance(value, Tensor) else math.fsum(float(v) for v in value)  # type: ignore
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"{fn}: class_prior must sum to 1 (within 1e-3); got {total:.6g}. From counts: "
                         "counts / counts.sum(), or balanced_softmax_loss(class_counts=counts).")
    return prior


def logit_adjusted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    class_prior: object,
    tau: float = 1.0,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Logit-adjusted cross-entropy (Menon et al. 2021): cross-entropy of the logits moved by the log prior.

    .. math:: \ell = \mathrm{CE}(x + \tau \log \pi,\ y)

    Rare classes get their logits lowered during training, so the model must raise them more: at test
    time ``softmax(x)`` (without the move) is the balanced prediction.

    Args:
        logits, target: as :func:`focalkit.cross_entropy` (class ids or probabilities).
        class_prior: ``π``, the training class frequencies, each > 0, summing to 1 (within 1e-3).
        tau: ``τ ≥ 0``; 1 is the paper's choice, 0 gives cross-entropy.
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer, class_dim, sync:
            as :func:`focalkit.cross_entropy`.

    Shape:
        as :func:`focalkit.cross_entropy`.

    Examples:
        >>> import torch
        >>> x, t = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])
        >>> round(logit_adjusted_cross_entropy(x, t, class_prior=[0.8, 0.1, 0.1]).item(), 4)
        0.0335
    """
    fn = "logit_adjusted_cross_entropy"
    tau = I.check_number(fn, "tau", tau, low=0.0)
    prior = _check_prior(fn, class_prior)
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    shift = _per_class(fn, "class_prior", tau * torch.log(prior), inp)
    return _ce_of(inp, inp.logits + shift)


def balanced_softmax_loss(
    logits: Tensor,
    target: Tensor,
    *,
    class_counts: object,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Balanced softmax (Ren et al. 2020): cross-entropy of the logits moved by the log class counts.

    .. math:: \ell = \mathrm{CE}(x + \log n,\ y) = -\log \frac{n_y e^{x_y}}{\sum_c n_c e^{x_c}}

    the same as :func:`logit_adjusted_cross_entropy` with ``τ = 1`` and ``π = n / Σn``; equal counts give
    cross-entropy.

    Args:
        logits, target: as :func:`focalkit.cross_entropy` (class ids or probabilities).
        class_counts: ``n``, training examples per class, each > 0.
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer, class_dim, sync:
            as :func:`focalkit.cross_entropy`.

    Shape:
        as :func:`focalkit.cross_entropy`.

    Examples:
        >>> import torch
        >>> x, t = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([1])
        >>> round(balanced_softmax_loss(x, t, class_counts=[800, 100, 100]).item(), 4)
        5.113
    """
    fn = "balanced_softmax_loss"
    counts = _counts(fn, "class_counts", class_counts)
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    shift = _per_class(fn, "class_counts", torch.log(counts / counts.sum()), inp)
    return _ce_of(inp, inp.logits + shift)


def ldam_margins(class_counts: object, *, max_margin: float = 0.5) -> Tensor:
    r"""LDAM's per-class margins: ``m_c ∝ n_c^{−1/4}``, scaled so that the rarest class's is ``max_margin``.

    Examples:
        >>> [round(m, 4) for m in ldam_margins([10000, 100, 1]).tolist()]
        [0.05, 0.1581, 0.5]
    """
    fn = "ldam_margins"
    max_margin = I.check_number(fn, "max_margin", max_margin, low=0.0)
    counts = _counts(fn, "class_counts", class_counts)
    margins = counts ** -0.25
    return margins * (max_margin / margins.max())


def ldam_loss(
    logits: Tensor,
    target: Tensor,
    *,
    class_counts: object,
    max_margin: float = 0.5,
    scale: float = 30.0,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    class_dim: int = 1,
    sync: bool | object = False,
) -> Tensor:
    r"""Label-distribution-aware margin loss (Cao et al. 2019), as the authors' code computes it.

    .. math:: \ell = \mathrm{CE}\big(s\,(x - m_y e_y),\ y\big), \qquad
              m_c = \text{max\_margin} \cdot \frac{n_c^{-1/4}}{\max_k n_k^{-1/4}}

    The true class's logit must beat the others by its margin, larger for rarer classes. The
    authors train it on normalised features and weights (cosine logits in ``[−1, 1]``), hence the
    scale ``s``; with raw logits a smaller ``scale`` (or 1) fits. ``max_margin = 0`` gives
    ``CE(s·x)``. Their deferred re-weighting (DRW) is ``class_weight=class_balanced_weights(counts)``
    from a later epoch on.

    Args:
        logits: as :func:`focalkit.cross_entropy`.
        target: class ids (the margin is the true class's; probabilities are refused).
        class_counts: ``n``, training examples per class, each > 0.
        max_margin: the rarest class's margin, ``≥ 0`` (the paper's 0.5).
        scale: ``s > 0`` (the paper's 30).
        class_weight, ignore_index, label_smoothing, sample_weight, reduction, normalizer, class_dim, sync:
            as :func:`focalkit.cross_entropy`.

    Shape:
        logits ``(N, C, *)`` · target ``(N, *)`` · output ``(N, *)`` for ``"none"``, else ``()``

    Examples:
        >>> import torch
        >>> x, t = torch.tensor([[0.9, -0.2, 0.1]]), torch.tensor([2])
        >>> round(ldam_loss(x, t, class_counts=[800, 100, 10]).item(), 4)
        39.0
    """
    fn = "ldam_loss"
    scale = I.check_number(fn, "scale", scale, low=0.0, low_open=True)
    margins = ldam_margins(class_counts, max_margin=max_margin)
    inp = I.softmax_inputs(fn, logits, target, class_weight=class_weight, ignore_index=ignore_index,
                           sample_weight=sample_weight, class_dim=class_dim, reduction=reduction,
                           normalizer=normalizer, label_smoothing=label_smoothing, sync=sync)
    if not inp.sparse:
        raise TypeError(f"{fn}: target must hold class ids (the margin is the true class's); got probabilities "
                        f"of dtype {inp.target.dtype}.")
    m = _per_class(fn, "class_counts", margins, inp).reshape(-1)
    index = torch.where(inp.target == inp.ignore_index, 0, inp.target).unsqueeze(1)  # ignored rows: any class
    x = inp.logits.to(inp.dtype)
    moved = x.scatter_add(1, index, -m[index])
    return _ce_of(inp, moved * scale)
