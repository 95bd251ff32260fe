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

from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor

from . import _inputs as I
from .kernels import SigmoidConfig, all_reduce, ghmc_bin_weights, run_sigmoid

__all__ = ["BIN_NORMALIZATIONS", "RunningCounts", "ghmc_loss"]

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
    histogram and ``N`` are summed over the ``torch.distributed`` ranks before ``β`` is formed (so ``sync``
    matters with ``reduction="none"`` too). ``bins=1`` gives
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
                 normalizer=normalizer, sync=sync)


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
    density_of: Callable[[Tensor], Tensor] | None = None,
    sync: bool | object = False,
) -> Tensor:
    """The loss; ``density_of`` maps the batch's bin counts to the density β is formed from (the module's
    running counts, :class:`RunningCounts`), ``None`` for the batch's own.

    Two passes over the input, both chunked and free of host syncs: the histogram of ``g``
    (``bincount`` / ``scatter_add`` into ``bins`` slots, all-reduced across ranks with ``sync``), then
    the loss with each element's ``β`` gathered from its bin.
    """
    b = check_ghmc_options(fn, bins, bin_normalization)
    inp = I.sigmoid_inputs(fn, logits, target, sample_weight=sample_weight, ignore_index=ignore_index,
                           reduction=reduction, normalizer=normalizer, sync=sync, sync_per_element=True)
    cfg = SigmoidConfig("ghmc", inp.reduction, inp.dtype, ignore_index=inp.ignore_index, bins=b)
    beta_bins, _, bin_index = ghmc_bin_weights(
        cfg, inp.logits, inp.target, inp.sample_weight, density_of=density_of, bin_normalization=bin_normalization,
        sync=(lambda t: all_reduce(t, inp.sync)[0]) if inp.sync else None)
    return run_sigmoid(inp, "ghmc", beta_bins=beta_bins, bin_index=bin_index, bins=b)


def in_backward() -> bool:
    """Whether this code runs inside the autograd engine's backward pass. A loss's forward runs there only
    when activation checkpointing recomputes it: ``torch.utils.checkpoint`` recomputes inside backward in
    both of its modes (``use_reentrant=True`` from its ``backward``, ``False`` from the unpack hook)."""
    return torch._C._current_graph_task_id() != -1


class RunningCounts:
    """The EMA of GHM-C's bin counts, ``acc ← m·acc + (1−m)·count`` for the bins non-empty in the batch.

    Exact under activation checkpointing: a training forward updates the counts and records the density it
    formed β from, keyed by the batch's counts; the same forward recomputed during backward (found by
    :func:`in_backward`) takes the recorded density and leaves the counts alone, so the gradient and the
    state are those of a run without checkpointing, in both of ``torch.utils.checkpoint``'s modes. A
    recompute that matches no record (its forward was more than ``KEEP`` training calls ago) is refused.
    """

    KEEP = 256  # training forwards remembered for their recompute: a few per step cover any model

    def __init__(self) -> None:
        self.records: deque[list] = deque(maxlen=self.KEEP)  # [batch counts, density, replayed]

    def clear(self) -> None:
        self.records.clear()

    def density_of(self, buffer: Tensor, momentum: float, *, update: bool) -> Callable[[Tensor], Tensor]:
        """The map from a batch's counts to the density for this call; with ``update`` (a training forward)
        it also stores the new counts in ``buffer``, unless this is a recompute."""
        if update and in_backward():
            return self._replay

        def density(counts: Tensor) -> Tensor:
            previous = buffer.to(device=counts.device, dtype=counts.dtype)
            d = torch.where(counts > 0, momentum * previous + (1.0 - momentum) * counts, previous)
            if update:
                self.records.append([counts.clone(), d, False])
                buffer.copy_(d)
            return d

        return density

    def _replay(self, counts: Tensor) -> Tensor:
        # newest first, records not yet replayed first: backward recomputes in the reverse order of the forwards
        for replayed in (False, True):
            for record in reversed(self.records):
                if record[2] == replayed and record[0].shape == counts.shape and torch.equal(record[0], counts):
                    record[2] = True
                    return record[1].to(counts.dtype)
        raise RuntimeError(
            "GHMCLoss: a forward recomputed during backward (activation checkpointing) matches none of the "
            f"last {self.KEEP} training forwards, so the running counts it used are unknown. Call the loss "
            "outside the checkpointed function, or use momentum=0.")
