"""``nn.Module`` faces of the losses: each holds its options and makes one call into the functional.

Options are checked at construction with the functional's own checks; tensors (``pos_weight``,
``class_weight``, a per-class ``alpha``, GHM-C's running counts) are buffers, so they follow
``.to(device)`` and ``state_dict``. ``forward(logits, target, sample_weight=None, normalizer=None)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from . import _inputs as I
from . import class_balance as cb
from .asymmetric import asymmetric_loss
from .cross_entropy import binary_cross_entropy, cross_entropy
from .dice import _check_activation, _check_smooth, dice_focal_loss, dice_loss, focal_tversky_loss, tversky_loss
from .focal import sigmoid_focal_loss, softmax_focal_loss
from .ghm import RunningCounts, _ghmc, _ghmr, check_ghmc_options, check_ghmr_options
from .hard_truncation import sigmoid_hard_truncation_loss, softmax_hard_truncation_loss
from .poly import poly1_cross_entropy, poly1_focal_loss
from .quality import quality_focal_loss, varifocal_loss
from .soft_truncation import WEIGHTINGS, sigmoid_soft_truncation_loss, softmax_soft_truncation_loss

__all__ = [
    "AsymmetricLoss",
    "BalancedSoftmaxLoss",
    "BinaryCrossEntropyLoss",
    "CrossEntropyLoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalTverskyLoss",
    "GHMCLoss",
    "GHMRLoss",
    "LDAMLoss",
    "LogitAdjustedCrossEntropyLoss",
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "QualityFocalLoss",
    "SigmoidFocalLoss",
    "SigmoidHardTruncationLoss",
    "SigmoidSoftTruncationLoss",
    "SoftmaxFocalLoss",
    "SoftmaxHardTruncationLoss",
    "SoftmaxSoftTruncationLoss",
    "TverskyLoss",
    "VarifocalLoss",
]


class _Loss(nn.Module):
    """Common part: reduction checked at construction, options kept for ``extra_repr``."""

    _function: Any = None
    _sync_per_element = False  # the elements' losses depend on the whole batch (GHM-C's histogram)

    def __init__(self, reduction: str, sync: object = False, **options: Any) -> None:
        super().__init__()
        self.reduction = I.check_reduction(type(self).__name__, reduction)
        self._options = {**options, "sync": I.check_sync(type(self).__name__, sync, self.reduction,
                                                                  self._sync_per_element)}

    def _register_vector(self, name: str, value: object, *, high: float | None = None) -> None:
        vec = I.as_class_vector(type(self).__name__, name, value, high=high)
        self.register_buffer(name, vec)

    def _kwargs(self) -> dict[str, Any]:
        return dict(self._options)

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None,
                normalizer: float | Tensor | str | None = None) -> Tensor:
        return type(self)._function(logits, target, sample_weight=sample_weight, reduction=self.reduction,
                                    normalizer=normalizer, **self._kwargs())

    def extra_repr(self) -> str:
        """Every option the call receives (α, ``pos_weight`` and ``class_weight`` included), ``None`` ones left out."""

        def show(v: Any) -> str:
            if isinstance(v, Tensor):
                return repr([round(float(a), 6) for a in v.reshape(-1)]) if v.numel() <= 8 else f"<{tuple(v.shape)}>"
            return repr(v)

        options = {k: v for k, v in self._kwargs().items() if v is not None and k != "running_counts"}
        return ", ".join(f"{k}={show(v)}" for k, v in {**options, "reduction": self.reduction}.items())


class BinaryCrossEntropyLoss(_Loss):
    """Module face of :func:`focalkit.binary_cross_entropy`."""

    _function = staticmethod(binary_cross_entropy)

    def __init__(self, *, pos_weight: Tensor | float | None = None, label_smoothing: float = 0.0,
                 ignore_index: int | None = None, reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))
        if isinstance(pos_weight, Tensor):
            I.check_nonnegative(name, "pos_weight", pos_weight)
            self.register_buffer("pos_weight", pos_weight.clone())
        else:
            self.pos_weight = None if pos_weight is None else I.check_number(name, "pos_weight", pos_weight, low=0.0)

    def _kwargs(self) -> dict[str, Any]:
        return {**self._options, "pos_weight": self.pos_weight}


class _SoftmaxLoss(_Loss):
    """Softmax family: ``class_weight`` as a buffer, ``ignore_index``, ``label_smoothing``, ``class_dim``."""

    def __init__(self, reduction: str, *, class_weight: object, ignore_index: int, label_smoothing: float,
                 class_dim: int, **options: Any) -> None:
        name = type(self).__name__
        super().__init__(reduction, ignore_index=I.check_int(name, "ignore_index", ignore_index),
                         label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         class_dim=I.check_int(name, "class_dim", class_dim), **options)
        self._register_vector("class_weight", class_weight)

    def _kwargs(self) -> dict[str, Any]:
        return {**self._options, "class_weight": self.class_weight}


class CrossEntropyLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.cross_entropy`."""

    _function = staticmethod(cross_entropy)

    def __init__(self, *, class_weight: Tensor | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, class_dim: int = 1, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim)


class LogitAdjustedCrossEntropyLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.logit_adjusted_cross_entropy`; ``class_prior`` is a buffer."""

    _function = staticmethod(cb.logit_adjusted_cross_entropy)

    def __init__(self, *, class_prior: object, tau: float = 1.0, class_weight: Tensor | None = None,
                 ignore_index: int = -100, label_smoothing: float = 0.0, class_dim: int = 1,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim,
                         tau=I.check_number(name, "tau", tau, low=0.0))
        self.register_buffer("class_prior", cb._check_prior(name, class_prior))

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "class_prior": self.class_prior}


class BalancedSoftmaxLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.balanced_softmax_loss`; ``class_counts`` is a buffer."""

    _function = staticmethod(cb.balanced_softmax_loss)

    def __init__(self, *, class_counts: object, class_weight: Tensor | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, class_dim: int = 1, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim)
        self.register_buffer("class_counts", cb._counts(type(self).__name__, "class_counts", class_counts))

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "class_counts": self.class_counts}


class LDAMLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.ldam_loss`; ``class_counts`` is a buffer."""

    _function = staticmethod(cb.ldam_loss)

    def __init__(self, *, class_counts: object, max_margin: float = 0.5, scale: float = 30.0,
                 class_weight: Tensor | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
                 class_dim: int = 1, reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim,
                         max_margin=I.check_number(name, "max_margin", max_margin, low=0.0),
                         scale=I.check_number(name, "scale", scale, low=0.0, low_open=True))
        self.register_buffer("class_counts", cb._counts(name, "class_counts", class_counts))

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "class_counts": self.class_counts}


class SigmoidFocalLoss(_Loss):
    """Module face of :func:`focalkit.sigmoid_focal_loss`."""

    _function = staticmethod(sigmoid_focal_loss)

    def __init__(self, *, alpha: float | None = 0.25, gamma: float = 2.0, gamma_hard: float | None = None,
                 hard_threshold: float = 0.2, label_smoothing: float = 0.0, ignore_index: int | None = None,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        gh, thr = I.check_adaptive_gamma(name, gamma_hard, hard_threshold)
        super().__init__(reduction, sync=sync,
                         alpha=I.check_alpha_binary(name, alpha), gamma=I.check_gamma(name, gamma),
                         gamma_hard=gh, hard_threshold=thr,
                         label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class SoftmaxFocalLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.softmax_focal_loss`; a per-class ``alpha`` is a buffer."""

    _function = staticmethod(softmax_focal_loss)

    def __init__(self, *, alpha: float | Tensor | None = None, gamma: float = 2.0, gamma_hard: float | None = None,
                 hard_threshold: float = 0.2, class_weight: Tensor | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, class_dim: int = 1, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        name = type(self).__name__
        gh, thr = I.check_adaptive_gamma(name, gamma_hard, hard_threshold)
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim, gamma=I.check_gamma(name, gamma),
                         gamma_hard=gh, hard_threshold=thr)
        checked = I.check_alpha_multiclass(name, alpha)
        if isinstance(checked, Tensor):
            self.register_buffer("alpha", checked)
        else:
            self.alpha = checked

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "alpha": self.alpha}


class AsymmetricLoss(_Loss):
    """Module face of :func:`focalkit.asymmetric_loss`."""

    _function = staticmethod(asymmetric_loss)

    def __init__(self, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 label_smoothing: float = 0.0, ignore_index: int | None = None, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        name = type(self).__name__
        gamma_pos, gamma_neg, clip = I.check_asl_options(name, gamma_pos, gamma_neg, clip)
        super().__init__(reduction, sync=sync, gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip,
                         label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class Poly1FocalLoss(_Loss):
    """Module face of :func:`focalkit.poly1_focal_loss`."""

    _function = staticmethod(poly1_focal_loss)

    def __init__(self, *, epsilon: float = 1.0, alpha: float | None = 0.25, gamma: float = 2.0,
                 label_smoothing: float = 0.0, ignore_index: int | None = None, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, epsilon=I.check_epsilon(name, epsilon),
                         alpha=I.check_alpha_binary(name, alpha), gamma=I.check_gamma(name, gamma),
                         label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class VarifocalLoss(_Loss):
    """Module face of :func:`focalkit.varifocal_loss`."""

    _function = staticmethod(varifocal_loss)

    def __init__(self, *, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True,
                 ignore_index: int | None = None, reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        alpha, gamma, iou_weighted = I.check_varifocal_options(name, alpha, gamma, iou_weighted)
        super().__init__(reduction, sync=sync, alpha=alpha, gamma=gamma, iou_weighted=iou_weighted,
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class QualityFocalLoss(_Loss):
    """Module face of :func:`focalkit.quality_focal_loss`."""

    _function = staticmethod(quality_focal_loss)

    def __init__(self, *, beta: float = 2.0, ignore_index: int | None = None, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, beta=I.check_qfl_beta(name, beta),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class Poly1CrossEntropyLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.poly1_cross_entropy`."""

    _function = staticmethod(poly1_cross_entropy)

    def __init__(self, *, epsilon: float = 1.0, class_weight: Tensor | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, class_dim: int = 1, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim,
                         epsilon=I.check_epsilon(type(self).__name__, epsilon))


class SigmoidHardTruncationLoss(_Loss):
    """Module face of :func:`focalkit.sigmoid_hard_truncation_loss`."""

    _function = staticmethod(sigmoid_hard_truncation_loss)

    def __init__(self, *, threshold: float = 0.5, label_smoothing: float = 0.0, ignore_index: int | None = None,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync,
                         threshold=I.check_number(name, "threshold", threshold, low=0.0, high=1.0, low_open=True),
                         label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class SoftmaxHardTruncationLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.softmax_hard_truncation_loss`."""

    _function = staticmethod(softmax_hard_truncation_loss)

    def __init__(self, *, threshold: float = 0.5, class_weight: Tensor | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, class_dim: int = 1, reduction: str = "mean",
                 sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim,
                         threshold=I.check_number(name, "threshold", threshold, low=0.0, high=1.0, low_open=True))


class SigmoidSoftTruncationLoss(_Loss):
    """Module face of :func:`focalkit.sigmoid_soft_truncation_loss`."""

    _function = staticmethod(sigmoid_soft_truncation_loss)

    def __init__(self, *, k: float = 1.0, label_smoothing: float = 0.0, ignore_index: int | None = None,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, k=I.check_number(name, "k", k, low=0.0),
                         label_smoothing=I.check_label_smoothing(name, label_smoothing),
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))


class SoftmaxSoftTruncationLoss(_SoftmaxLoss):
    """Module face of :func:`focalkit.softmax_soft_truncation_loss`."""

    _function = staticmethod(softmax_soft_truncation_loss)

    def __init__(self, *, k: float = 1.0, weighting: str = "softmax", class_weight: Tensor | None = None,
                 ignore_index: int = -100, label_smoothing: float = 0.0, class_dim: int = 1,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        if weighting not in WEIGHTINGS:
            raise ValueError(f"{name}: weighting must be one of 'softmax', 'complement'; got {weighting!r}.")
        super().__init__(reduction, sync=sync, class_weight=class_weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, class_dim=class_dim,
                         k=I.check_number(name, "k", k, low=0.0), weighting=weighting)


class _HistogramLoss(_Loss):
    """GHM-C's and GHM-R's common part: the running bin counts (buffer ``running_counts``) stay float32."""

    _sync_per_element = True
    running_counts: Tensor

    def _apply(self, fn: Any, recurse: bool = True) -> _HistogramLoss:
        """``.to(device)`` moves the running counts; ``.half()`` / ``.bfloat16()`` / ``.double()`` (as
        ``model.half()`` does to a model holding the loss) leave them in float32: in float16 a bin of more
        than 65,504 elements would be ``inf`` and its gradient 0."""
        counts = self.running_counts
        super()._apply(fn, recurse)
        if self.running_counts.dtype != counts.dtype:
            self.running_counts = counts.to(device=self.running_counts.device)
        self._running.clear()  # recorded densities live on the old device
        return self


class GHMCLoss(_HistogramLoss):
    """Module face of :func:`focalkit.ghmc_loss`, with the EMA of the bin counts.

    With ``momentum > 0`` the running count of each bin (buffer ``running_counts``, starting at
    0) is updated as in the authors' code, ``acc ← m·acc + (1−m)·count`` for the bins that are
    non-empty in the batch, and ``β = N / acc[bin] / n``. The state changes only in training
    mode (``module.train()``, the default): evaluation leaves it as it is. Under activation checkpointing
    (``torch.utils.checkpoint``, either mode) the recomputed forward uses the counts the first forward used
    and updates nothing: gradients and state are those of a run without checkpointing. The counts stay
    float32 through ``module.half()`` / ``.bfloat16()`` (a float16 count overflows at 65,504).

    With ``sync=True`` (or a process group) the bin counts and ``N`` are all-reduced across
    ``torch.distributed`` ranks before ``β`` is formed, so every rank uses the global histogram and
    the running counts stay identical on all ranks (DDP's buffer broadcast then changes nothing).
    """

    _sync_per_element = True

    def __init__(self, *, bins: int = 10, momentum: float = 0.0, bin_normalization: str = "nonempty",
                 ignore_index: int | None = None, reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, bins=check_ghmc_options(name, bins, bin_normalization),
                         momentum=I.check_number(name, "momentum", momentum, low=0.0, high=1.0, high_open=True),
                         bin_normalization=bin_normalization,
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index))
        # float32 whatever the module's dtype (see _apply); counts of float64 logits are formed in float64
        self.register_buffer("running_counts", torch.zeros(self._options["bins"], dtype=torch.float32))
        self._running = RunningCounts()

    @property
    def bins(self) -> int:
        return self._options["bins"]

    @property
    def momentum(self) -> float:
        return self._options["momentum"]

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None,
                normalizer: float | Tensor | str | None = None) -> Tensor:
        opts = self._options
        density_of = None
        if opts["momentum"] > 0:  # the state changes in training only, and never in a checkpoint's recompute
            density_of = self._running.density_of(self.running_counts, opts["momentum"], update=self.training)
        return _ghmc(type(self).__name__, logits, target, bins=opts["bins"],
                     bin_normalization=opts["bin_normalization"], sample_weight=sample_weight,
                     ignore_index=opts["ignore_index"], reduction=self.reduction, normalizer=normalizer,
                     density_of=density_of, sync=opts["sync"])


class GHMRLoss(_HistogramLoss):
    """Module face of :func:`focalkit.ghmr_loss`, with the EMA of the bin counts (mmdetection's ``GHMR``
    ``momentum``).

    ``forward(pred, target, sample_weight=None, normalizer=None)``. The running counts (buffer
    ``running_counts``) behave as :class:`GHMCLoss`'s: updated for the bins non-empty in the batch in training
    mode only, float32 through ``.half()``, exact under activation checkpointing, all-reduced with ``sync``.
    """

    _sync_per_element = True

    def __init__(self, *, mu: float = 0.02, bins: int = 10, momentum: float = 0.0,
                 bin_normalization: str = "nonempty", reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        mu, bins = check_ghmr_options(name, mu, bins, bin_normalization)
        super().__init__(reduction, sync=sync, mu=mu, bins=bins,
                         momentum=I.check_number(name, "momentum", momentum, low=0.0, high=1.0, high_open=True),
                         bin_normalization=bin_normalization)
        self.register_buffer("running_counts", torch.zeros(bins, dtype=torch.float32))
        self._running = RunningCounts(name)

    def forward(self, pred: Tensor, target: Tensor, sample_weight: Tensor | None = None,
                normalizer: float | Tensor | str | None = None) -> Tensor:
        opts = self._options
        density_of = None
        if opts["momentum"] > 0:
            density_of = self._running.density_of(self.running_counts, opts["momentum"], update=self.training)
        return _ghmr(type(self).__name__, pred, target, mu=opts["mu"], bins=opts["bins"],
                     bin_normalization=opts["bin_normalization"], sample_weight=sample_weight,
                     reduction=self.reduction, normalizer=normalizer, density_of=density_of, sync=opts["sync"])



class _RegionLoss(_Loss):
    """Region (Dice-type) losses: ``activation``, ``include_background``, ``batch``, the smoothing terms,
    ``class_weight`` as a buffer, ``ignore_index``."""

    def __init__(self, reduction: str, *, activation: str, include_background: bool, batch: bool, smooth_nr: float,
                 smooth_dr: float, class_weight: object, ignore_index: int | None, **options: Any) -> None:
        name = type(self).__name__
        s_n, s_d = _check_smooth(name, smooth_nr, smooth_dr)
        self._sync_per_element = I.check_bool(name, "batch", batch)  # per-class scores of the whole batch
        super().__init__(reduction, activation=_check_activation(name, activation),
                         include_background=I.check_bool(name, "include_background", include_background),
                         batch=batch, smooth_nr=s_n, smooth_dr=s_d,
                         ignore_index=I.check_optional_int(name, "ignore_index", ignore_index), **options)
        self._register_vector("class_weight", class_weight)

    def _kwargs(self) -> dict[str, Any]:
        return {**self._options, "class_weight": self.class_weight}


class DiceLoss(_RegionLoss):
    """Module face of :func:`focalkit.dice_loss`."""

    _function = staticmethod(dice_loss)

    def __init__(self, *, activation: str = "sigmoid", include_background: bool = True, batch: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, class_weight: Tensor | None = None,
                 ignore_index: int | None = None, reduction: str = "mean", sync: bool | object = False) -> None:
        super().__init__(reduction, sync=sync, activation=activation, include_background=include_background,
                         batch=batch, smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                         ignore_index=ignore_index)


class TverskyLoss(_RegionLoss):
    """Module face of :func:`focalkit.tversky_loss`."""

    _function = staticmethod(tversky_loss)

    def __init__(self, *, alpha: float = 0.5, beta: float = 0.5, activation: str = "sigmoid",
                 include_background: bool = True, batch: bool = False, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, class_weight: Tensor | None = None, ignore_index: int | None = None,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, activation=activation, include_background=include_background,
                         batch=batch, smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                         ignore_index=ignore_index, alpha=I.check_number(name, "alpha", alpha, low=0.0),
                         beta=I.check_number(name, "beta", beta, low=0.0))


class FocalTverskyLoss(_RegionLoss):
    """Module face of :func:`focalkit.focal_tversky_loss`."""

    _function = staticmethod(focal_tversky_loss)

    def __init__(self, *, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75, activation: str = "sigmoid",
                 include_background: bool = True, batch: bool = False, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, class_weight: Tensor | None = None, ignore_index: int | None = None,
                 reduction: str = "mean", sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__(reduction, sync=sync, activation=activation, include_background=include_background,
                         batch=batch, smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                         ignore_index=ignore_index, alpha=I.check_number(name, "alpha", alpha, low=0.0),
                         beta=I.check_number(name, "beta", beta, low=0.0),
                         gamma=I.check_number(name, "gamma", gamma, low=0.0, low_open=True))


class DiceFocalLoss(_RegionLoss):
    """Module face of :func:`focalkit.dice_focal_loss` (``reduction="mean"`` only); a per-class ``alpha`` is
    a buffer. ``forward(logits, target, sample_weight=None)``."""

    _function = staticmethod(dice_focal_loss)

    def __init__(self, *, activation: str = "sigmoid", gamma: float = 2.0, alpha: float | Tensor | None = None,
                 lambda_dice: float = 1.0, lambda_focal: float = 1.0, include_background: bool = True,
                 batch: bool = False, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 class_weight: Tensor | None = None, ignore_index: int | None = None,
                 sync: bool | object = False) -> None:
        name = type(self).__name__
        super().__init__("mean", sync=sync, activation=activation, include_background=include_background,
                         batch=batch, smooth_nr=smooth_nr, smooth_dr=smooth_dr, class_weight=class_weight,
                         ignore_index=ignore_index, gamma=I.check_gamma(name, gamma),
                         lambda_dice=I.check_number(name, "lambda_dice", lambda_dice, low=0.0),
                         lambda_focal=I.check_number(name, "lambda_focal", lambda_focal, low=0.0))
        checked = (I.check_alpha_binary(name, alpha) if activation == "sigmoid"
                   else I.check_alpha_multiclass(name, alpha))
        if isinstance(checked, Tensor):
            self.register_buffer("alpha", checked)
        else:
            self.alpha = checked

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "alpha": self.alpha}

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        return dice_focal_loss(logits, target, sample_weight=sample_weight, **self._kwargs())
