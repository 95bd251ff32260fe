r"""GHM-C and GHM-R, the gradient harmonizing losses (seed 003; Li et al., AAAI 2019).

Each element's cross-entropy is scaled by the inverse density of its gradient norm
``g = |σ(x) − y|``: the many easy examples (``g ≈ 0``) and the many outliers (``g ≈ 1``) are
down-weighted together, unlike focal loss, which up-weights the outliers.

Known ambiguity: the paper writes ``β = N / GD(g)`` with ``GD = count · bins`` (dividing by *all*
bins), while the authors' code (mmdetection's ``GHMC``, and seed 003) divides by the number of
*non-empty* bins of the batch. The default follows the code; ``bin_normalization="all"`` gives
the paper's form. The two differ by the constant factor ``bins / non-empty bins`` of a batch.

GHM-R does the same for box regression: the "authentic smooth L1" ``√(d² + μ²) − μ`` divided by the
density of its gradient norm ``|d| / √(d² + μ²)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor

from . import _inputs as I
from ._formulas import ghmc_beta, ghmr_terms
from .kernels import SigmoidConfig, all_reduce, ghmc_bin_weights, reduce_scale, run_sigmoid
from .kernels.ops import TorchOps

__all__ = ["BIN_NORMALIZATIONS", "RunningCounts", "ghmc_loss", "ghmr_loss"]

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


def ghmr_loss(
    pred: Tensor,
    target: Tensor,
    *,
    mu: float = 0.02,
    bins: int = 10,
    bin_normalization: str = "nonempty",
    sample_weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: float | Tensor | str | None = None,
    sync: bool | object = False,
) -> Tensor:
    r"""GHM-R loss: the authentic smooth L1 of a box regression divided by the density of its gradient norm.

    .. math:: \ell_i = \beta_i\,\bigl(\sqrt{d_i^2 + \mu^2} - \mu\bigr),\quad d_i = \mathrm{pred}_i - \mathrm{target}_i,
              \quad \beta_i = \frac{N}{GD(g_i)\, n},\quad g_i = \frac{|d_i|}{\sqrt{d_i^2 + \mu^2}}

    ``ASL1 = √(d² + μ²) − μ`` is about ``d² / 2μ`` near 0 and ``|d| − μ`` far from it, with a gradient of norm
    ``g ∈ [0, 1)``. ``GD(g)`` is the number of counted elements in ``g``'s bin (``bins`` equal bins on
    ``[0, 1]``), ``N`` the number of counted elements and ``n`` the number of non-empty bins (``bins``
    with ``bin_normalization="all"``); ``g`` and ``β`` carry no gradient. This is mmdetection's ``GHMR``
    (with ``momentum=0``; :class:`focalkit.GHMRLoss` adds its running counts): its ``Σ β·ASL1 / N`` is
    the mean here for 0/1 weights. ASL1 is formed as ``|d| · |d| / (√(d² + μ²) + μ)``: no cancellation for
    small ``d`` (where ``√(d² + μ²) − μ`` loses every digit) and no overflow of ``d²`` for large ones.

    Args:
        pred: regression outputs (box deltas), any shape, e.g. ``[N, 4]``.
        target: regression targets, same shape.
        mu: ``μ > 0``, the smoothing of the L1 loss (mmdetection: 0.02).
        bins: number of bins ``≥ 1`` (``bins=1``: plain ASL1).
        bin_normalization: ``"nonempty"`` (the authors' code, default) or ``"all"`` (the paper).
        sample_weight: broadcast to ``pred``'s shape; 0 removes an element from the histogram and from
            ``N`` (mmdetection's ``label_weight = 0``); a non-zero weight multiplies its loss.
        reduction: ``"mean"`` (``Σ w·ℓ / Σ w``), ``"sum"`` or ``"none"``.
        normalizer: with ``"mean"``, a number or 1-element tensor divides the sum instead (mmdetection's
            ``avg_factor``), or ``"valid"``: the number of counted elements.
        sync: ``True`` or a process group: the histogram and ``N`` are summed over the ``torch.distributed``
            ranks before ``β`` is formed, and the reduction is scaled for DDP's average (as
            :func:`binary_cross_entropy`).

    Shape:
        pred ``(*)`` · target ``(*)`` · output ``(*)`` for ``"none"``, else ``()``

    References:
        Li, Liu, Wang, Gradient Harmonized Single-stage Detector, AAAI 2019 (seed 003).

    Examples:
        >>> import torch
        >>> d = torch.tensor([[0.01, -0.5, 2.0, 0.0]])
        >>> round(ghmr_loss(d, torch.zeros(1, 4)).item(), 4)
        0.4109
    """
    return _ghmr("ghmr_loss", pred, target, mu=mu, bins=bins, bin_normalization=bin_normalization,
                 sample_weight=sample_weight, reduction=reduction, normalizer=normalizer, sync=sync)


def check_ghmr_options(fn: str, mu: object, bins: object, bin_normalization: object) -> tuple[float, int]:
    return I.check_number(fn, "mu", mu, low=0.0, low_open=True), check_ghmc_options(fn, bins, bin_normalization)


def _ghmr(
    fn: str,
    pred: Tensor,
    target: Tensor,
    *,
    mu: float,
    bins: int,
    bin_normalization: str,
    sample_weight: Tensor | None,
    reduction: str,
    normalizer: float | Tensor | str | None,
    density_of: Callable[[Tensor], Tensor] | None = None,
    sync: bool | object = False,
) -> Tensor:
    """The loss; ``density_of`` as in :func:`_ghmc`. The histogram is a ``scatter_add`` into ``bins`` slots (no
    host sync, no loop over bins); the loss is plain autograd over :func:`focalkit._formulas.ghmr_terms`."""
    m, b = check_ghmr_options(fn, mu, bins, bin_normalization)
    reduction = I.check_reduction(fn, reduction)
    norm = I.check_normalizer(fn, normalizer, reduction, positives=False)
    group = I.check_sync(fn, sync, reduction, per_element=True)
    x = I.check_logits(fn, pred, name="pred")
    y = I.check_tensor(fn, "target", target, x)
    if not y.dtype.is_floating_point:
        raise TypeError(f"{fn}: target must be a floating-point tensor; got {y.dtype}.")
    if y.shape != x.shape:
        raise ValueError(f"{fn}: pred and target must have the same shape; got pred {tuple(x.shape)}, "
                         f"target {tuple(y.shape)}.")
    if I._checks_values(y) and not bool(torch.isfinite(y).all()):
        raise ValueError(f"{fn}: target must be finite; got NaN or Inf values.")
    w = I.check_sample_weight(fn, sample_weight, x.shape, x)
    dtype, out_dtype = I.compute_dtype(x.dtype), I.output_dtype(x)
    d = x.to(dtype) - y.to(dtype)
    w = None if w is None else w.to(dtype).expand(x.shape)
    asl1, g = ghmr_terms(TorchOps, d, m)
    with torch.no_grad():
        # counted in float64: a float32 scatter_add stops counting at 2**24 (16,777,216 + 1 = 16,777,216)
        counted = torch.ones_like(d, dtype=torch.float64) if w is None else (w > 0).to(torch.float64)
        index = TorchOps.to_bin(g.detach() * b, b).reshape(-1)
        counts = torch.zeros(b, dtype=torch.float64, device=d.device).scatter_add_(0, index, counted.reshape(-1))
        n_local = n_valid = counted.sum()
        if group is not False:
            counts, n_valid = all_reduce(counts, group)[0], all_reduce(n_local, group)[0]
        density = counts if density_of is None else density_of(counts)
        if bin_normalization == "nonempty":
            divisor = (counts > 0).sum().to(torch.float64).clamp_min(1.0)
        else:
            divisor = torch.full((), float(b), dtype=torch.float64, device=d.device)
        beta = ghmc_beta(TorchOps, density, n_valid, divisor).to(dtype).gather(0, index).view(d.shape)
    weight = beta if w is None else beta * w
    loss = weight * asl1
    if reduction == "none":
        return loss.to(out_dtype)
    count = n_local.to(dtype) if w is None or norm == "valid" else w.sum()  # this rank's: reduce_scale sums it
    return (loss.sum() * reduce_scale(reduction, count, norm, group)).to(out_dtype)


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

    def __init__(self, owner: str = "GHMCLoss") -> None:
        self.owner = owner
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
            f"{self.owner}: a forward recomputed during backward (activation checkpointing) matches none of the "
            f"last {self.KEEP} training forwards, so the running counts it used are unknown. Call the loss "
            "outside the checkpointed function, or use momentum=0.")
