r"""GHM-C, the gradient harmonizing classification loss (seed 003; Li et al., AAAI 2019).

Each element's cross-entropy is scaled by the inverse density of its gradient norm
``g = |σ(x) − y|``: the many easy examples (``g ≈ 0``) and the many outliers (``g ≈ 1``) are
down-weighted together, unlike focal loss, which up-weights the outliers.

Known ambiguity: the paper writes ``β = N / GD(g)`` with ``GD = count · bins`` (dividing by *all*
bins), while the authors' code (mmdetection's ``GHMC``, and seed 003) divides by the number of
*non-empty* bins of the batch. The default follows the code; ``bin_normalization="all"`` gives
the paper's form. The two differ by the constant factor ``bins / non-empty bins`` of a batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _inputs as I
from .cross_entropy import sigmoid_bce_terms

__all__ = ["BIN_NORMALIZATIONS", "ghmc_loss", "ghmc_weights"]

BIN_NORMALIZATIONS = ("nonempty", "all")


def ghmc_weights(
    grad_norm: Tensor,
    counted: Tensor,
    bins: int,
    *,
    momentum: float = 0.0,
    running_counts: Tensor | None = None,
    bin_normalization: str = "nonempty",
) -> tuple[Tensor, Tensor]:
    """GHM-C weights ``β`` and the bin counts they were computed from, without host syncs.

    Args:
        grad_norm: ``g`` in ``[0, 1]``, any shape.
        counted: same shape, 1 where the element takes part (not ignored, non-zero weight), else 0.
        bins: number of equal bins on ``[0, 1]``; the top edge includes 1.
        momentum: EMA factor ``m``; with ``m > 0`` the density is the running count
            ``acc ← m·acc + (1−m)·count``, updated only for the bins that are non-empty now.
        running_counts: ``acc`` before this batch (``[bins]``), needed when ``momentum > 0``.
        bin_normalization: ``"nonempty"`` (the authors' code) or ``"all"`` (the paper).

    Returns:
        ``β`` (0 where not counted) and the counts used as density: this batch's counts, or the
        updated running counts when ``momentum > 0``.
    """
    dtype = grad_norm.dtype
    inner_edges = torch.arange(1, bins, dtype=dtype, device=grad_norm.device) / bins
    index = torch.bucketize(grad_norm, inner_edges, right=True)  # the article's g >= edge[i] test
    counts = torch.zeros(bins, dtype=dtype, device=grad_norm.device)
    counts.scatter_add_(0, index.reshape(-1), counted.reshape(-1).to(dtype))
    density = counts
    if momentum > 0:
        if running_counts is None:
            raise ValueError("ghmc_weights: momentum > 0 needs running_counts; got None.")
        previous = running_counts.to(dtype)
        density = torch.where(counts > 0, momentum * previous + (1.0 - momentum) * counts, previous)
    if bin_normalization == "nonempty":
        divisor = (counts > 0).sum().to(dtype).clamp_min(1.0)
    else:
        divisor = torch.tensor(float(bins), dtype=dtype, device=grad_norm.device)
    n_valid = counted.to(dtype).sum()
    per_element = density[index]
    is_counted = (counted != 0) & (per_element > 0)
    beta = torch.where(is_counted, n_valid / torch.where(is_counted, per_element, 1.0) / divisor, 0.0)
    return beta, density


def ghmc_loss(
    logits: Tensor,
    target: Tensor,
    *,
    bins: int = 10,
    bin_normalization: str = "nonempty",
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | None = None,
) -> Tensor:
    r"""GHM-C loss on logits: cross-entropy divided by the density of its gradient norm.

    .. math:: \ell_i = \beta_i\, \mathrm{BCE}(x_i, y_i),\quad
              \beta_i = \frac{N}{GD(g_i)\, n},\quad g_i = |\sigma(x_i) - y_i|

    ``GD(g)`` is the number of counted elements in ``g``'s bin (``bins`` equal bins on
    ``[0, 1]``), ``N`` the number of counted elements and ``n`` the number of non-empty bins
    (``bins`` with ``bin_normalization="all"``). ``g`` and ``β`` carry no gradient. The mean is
    ``Σ w·β·BCE / Σ w``: with 0/1 weights, the article's ``Σ β·BCE / N``. ``bins=1`` gives
    cross-entropy. This function is stateless; :class:`focalkit.GHMCLoss` adds the EMA of the
    bin counts (``momentum``).

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]``, same shape.
        bins: number of bins ``≥ 1``.
        bin_normalization: ``"nonempty"`` (authors' code, default) or ``"all"`` (the paper).
        sample_weight: 0 removes an element from the histogram and from ``N``; a non-zero
            weight multiplies its loss.
        ignore_index, reduction, normalizer: as in :func:`binary_cross_entropy`.

    Shape:
        logits ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Li, Liu, Wang, Gradient Harmonized Single-stage Detector, AAAI 2019 (seed 003).

    Examples:
        >>> import torch
        >>> round(ghmc_loss(torch.tensor([0.0, 2.0, -3.0]), torch.tensor([1.0, 0.0, 0.0])).item(), 4)
        0.9562
    """
    return _ghmc("ghmc_loss", logits, target, bins=bins, bin_normalization=bin_normalization,
                 sample_weight=sample_weight, ignore_index=ignore_index, reduction=reduction,
                 normalizer=normalizer)[0]


def check_ghmc_options(fn: str, bins: object, bin_normalization: object) -> int:
    b = I.check_int(fn, "bins", bins, low=1)
    if bin_normalization not in BIN_NORMALIZATIONS:
        raise ValueError(f"{fn}: bin_normalization must be one of 'nonempty', 'all'; got {bin_normalization!r}.")
    return b


def _ghmc(
    fn: str,
    logits: Tensor,
    target: Tensor,
    *,
    bins: int,
    bin_normalization: str,
    sample_weight: Tensor | None,
    ignore_index: int | None,
    reduction: str,
    normalizer: float | Tensor | None,
    momentum: float = 0.0,
    running_counts: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The loss and the bin counts it used (the module keeps them when ``momentum > 0``)."""
    I.check_reduction(fn, reduction)
    b = check_ghmc_options(fn, bins, bin_normalization)
    ignore = I.check_optional_int(fn, "ignore_index", ignore_index)
    norm = I.check_normalizer(fn, normalizer, reduction)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore)
    x, y = inp.logits, inp.target
    with torch.no_grad():
        grad_norm = (torch.sigmoid(x) - y).abs()
        counted = torch.ones_like(x) if inp.weight is None else (inp.weight != 0).to(x.dtype)
        beta, density = ghmc_weights(grad_norm, counted, b, momentum=momentum, running_counts=running_counts,
                                     bin_normalization=bin_normalization)
    pos, neg = sigmoid_bce_terms(x)
    loss = beta * (y * pos + (1.0 - y) * neg)
    return I.finish_sigmoid(inp, loss, reduction=reduction, normalizer=norm), density
