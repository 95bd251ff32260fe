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

from torch import Tensor

from . import _inputs as I
from .kernels import SigmoidConfig, all_reduce, ghmc_bin_weights, run_sigmoid

__all__ = ["BIN_NORMALIZATIONS", "ghmc_loss"]

BIN_NORMALIZATIONS = ("nonempty", "all")


def ghmc_loss(
    logits: Tensor,
    target: Tensor,
    *,
    bins: int = 10,
    bin_normalization: str = "nonempty",
    sample_weight: Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""GHM-C loss on logits: cross-entropy divided by the density of its gradient norm.

    .. math:: \ell_i = \beta_i\, \mathrm{BCE}(x_i, y_i),\quad
              \beta_i = \frac{N}{GD(g_i)\, n},\quad g_i = |\sigma(x_i) - y_i|

    ``GD(g)`` is the number of counted elements in ``g``'s bin (``bins`` equal bins on
    ``[0, 1]``), ``N`` the number of counted elements and ``n`` the number of non-empty bins
    (``bins`` with ``bin_normalization="all"``). ``g`` and ``β`` carry no gradient. The mean is
    ``Σ w·β·BCE / Σ w``: with 0/1 weights, the article's ``Σ β·BCE / N``. With ``sync`` the
    histogram and ``N`` are summed over the ``torch.distributed`` ranks before ``β`` is formed. ``bins=1`` gives
    cross-entropy. This function is stateless; :class:`focalkit.GHMCLoss` adds the EMA of the
    bin counts (``momentum``).

    Args:
        logits: raw scores ``x``, any shape.
        target: labels ``y`` in ``[0, 1]``, same shape.
        bins: number of bins ``≥ 1``.
        bin_normalization: ``"nonempty"`` (authors' code, default) or ``"all"`` (the paper).
        sample_weight: 0 removes an element from the histogram and from ``N``; a non-zero
            weight multiplies its loss.
        ignore_index, reduction, normalizer, sync: as in :func:`binary_cross_entropy`.

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
                 normalizer=normalizer, sync=sync)[0]


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
    sync: bool | object = False,
) -> tuple[Tensor, Tensor]:
    """The loss and the bin counts it used (the module keeps them when ``momentum > 0``).

    Two passes over the input, both chunked and free of host syncs: the histogram of ``g``
    (``bincount`` / ``scatter_add`` into ``bins`` slots, all-reduced across ranks with ``sync``), then
    the loss with each element's ``β`` gathered from its bin.
    """
    b = check_ghmc_options(fn, bins, bin_normalization)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, sync=sync)
    cfg = SigmoidConfig("ghmc", inp.reduction, inp.dtype, ignore_index=inp.ignore_index, bins=b)
    beta_bins, density, bin_index = ghmc_bin_weights(
        cfg, inp.logits, inp.target, inp.sample_weight, momentum=momentum, running_counts=running_counts,
        bin_normalization=bin_normalization, sync=(lambda t: all_reduce(t, inp.sync)[0]) if inp.sync else None)
    loss = run_sigmoid(inp, "ghmc", beta_bins=beta_bins, bin_index=bin_index, bins=b)
    return loss, density
