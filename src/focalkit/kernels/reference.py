"""What both kinds of kernel share: the loss options, the reduction's scale, and the reference losses.

The chunked kernels (:mod:`.fused`) and the Triton kernels (:mod:`.triton_kernels`) both import
from here; neither imports the other at import time. The references evaluate the same slice code
(:mod:`.slices` over :mod:`focalkit._formulas`) on whole tensors through plain autograd: second
derivatives, gradients for targets and weights, ``torch.func``, and cross-checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .ops import TINY, TorchOps
from .slices import sigmoid_slice_terms, softmax_dense_slice_terms, softmax_sparse_slice_terms

__all__ = ["SigmoidConfig", "SoftmaxConfig", "all_reduce", "grad_through_formula", "sigmoid_reference",
           "softmax_reference"]


@dataclass(frozen=True)
class SigmoidConfig:
    family: str
    reduction: str
    dtype: torch.dtype
    alpha: float | None = None
    gamma: float = 2.0
    threshold: float = 0.5
    k: float = 1.0
    label_smoothing: float = 0.0
    ignore_index: int | None = None
    bins: int = 1
    sync: Any = None  # None/False: local; True: the default process group; or a ProcessGroup
    gamma_neg: float = 4.0  # ASL's γ₋ (``gamma`` is its γ₊)
    clip: float = 0.0  # ASL's probability shift
    epsilon: float = 0.0  # poly-1's ε
    iou_weighted: bool = True  # VFL: positives weighed by their target (else by 1)
    gamma_hard: float | None = None  # adaptive focal loss: γ where p_t < hard_threshold
    hard_threshold: float = 0.2


def _flat(t: Tensor | None, shape: torch.Size) -> Tensor | None:
    """A weight broadcast to ``shape`` and flattened (a copy only when it is really broadcast)."""
    if t is None:
        return None
    return t.expand(shape).reshape(-1)


def _sigmoid_chunk(cfg: SigmoidConfig, x: Tensor, y_raw: Tensor, w: Tensor | None, pw: Tensor | float | None,
                   beta_bins: Tensor | None, order: int, count_positives: bool = False,
                   bin_index: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Loss (weighted), gradient (weighted), the weight of one slice, and (when asked) its positives: the
    sum of the unsmoothed targets over counted elements."""
    loss, grad, w, positives = sigmoid_slice_terms(TorchOps, cfg, x, y_raw, w, pw, beta_bins, order=order,
                                                   tiny=TINY[cfg.dtype], bin_index=bin_index,
                                                   count_positives=count_positives)
    return loss, grad, w, None if positives is None else positives.sum()


def grad_through_formula(value_of: Callable[[Tensor], Tensor], x: Tensor, gout: Tensor, *,
                         create_graph: bool) -> Tensor:
    """``gout`` times the gradient of ``value_of(x)``, by autograd over the same formula: second derivatives
    (``create_graph``, on ``x``'s own graph) and the Triton kernels' fallback (on a detached ``x``)."""
    with torch.enable_grad():
        xr = x if create_graph else x.detach().requires_grad_(True)
        value = value_of(xr)
    (g,) = torch.autograd.grad(value, xr, gout, create_graph=create_graph)
    return g


def _group(sync: Any) -> Any:
    """The process group ``sync`` names, or ``False`` when off or when no group is initialised."""
    import torch.distributed as dist

    if not sync or not dist.is_available() or not dist.is_initialized():
        return False
    return None if sync is True else sync


def all_reduce(t: Tensor, sync: Any) -> tuple[Tensor, int]:
    """Sum ``t`` over the ranks of ``sync``'s group; ``(t, 1)`` when off or when no group is initialised."""
    import torch.distributed as dist

    group = _group(sync)
    if group is False:
        return t, 1
    t = t.clone()
    dist.all_reduce(t, group=group)
    return t, dist.get_world_size(group)


def world_size(sync: Any) -> int:
    """``R``, the number of ranks ``sync`` spans (1 when off or when no group is initialised)."""
    import torch.distributed as dist

    group = _group(sync)
    return 1 if group is False else dist.get_world_size(group)


def _reduce_scale(reduction: str, count: Tensor, normalizer: float | Tensor | str | None, sync: Any = None,
                  positives: Tensor | None = None) -> Tensor:
    """The factor the summed loss is multiplied by.

    ``"mean"`` divides by the counted weight; ``normalizer="valid"`` / ``"positives"`` by
    ``max(count, 1)``. With ``sync`` every reduction is scaled so that DDP's average of the ranks'
    gradients is the gradient of the loss of the whole batch: the count is the sum over ranks and the
    divisor is ``count / R``; ``"sum"`` is multiplied by ``R``; a given normaliser (a number or a
    tensor) is the whole batch's and the divisor is ``normalizer / R``.
    """
    if reduction == "sum":
        return torch.full_like(count, float(world_size(sync)))
    if isinstance(normalizer, str):
        den, world = all_reduce(positives if normalizer == "positives" else count, sync)  # type: ignore[arg-type]
        return world / torch.clamp_min(den, 1.0)
    if isinstance(normalizer, Tensor):
        # with value checks a normaliser <= 0 raised before; unchecked or compiled it counts as 1, so that
        # an image without objects gives the summed loss, never inf (recommended: normalizer="positives")
        den = normalizer.to(device=count.device, dtype=count.dtype)
        return world_size(sync) / torch.where(den > 0, den, torch.ones_like(den))
    if normalizer is not None:  # a Python number, checked > 0: filled on the device, no host-to-device copy
        return torch.full_like(count, world_size(sync) / normalizer)
    den, world = all_reduce(count, sync)
    return world / torch.where(den > 0, den, torch.ones_like(den))


def sigmoid_reference(cfg: SigmoidConfig, x: Tensor, y: Tensor, weight: Tensor | None, pos_weight: Any,
                      beta_bins: Tensor | None, normalizer: float | Tensor | str | None,
                      out_dtype: torch.dtype, bin_index: Tensor | None = None) -> Tensor:
    """The same loss through plain autograd (whole tensors): second derivatives and cross-checks."""
    w = None if weight is None else weight.expand(x.shape)
    pw = pos_weight.expand(x.shape) if isinstance(pos_weight, Tensor) else pos_weight
    loss, _, w, positives = _sigmoid_chunk(cfg, x, y, w, pw, beta_bins, order=0,
                                           count_positives=normalizer == "positives",
                                           bin_index=None if bin_index is None else bin_index.view(x.shape))
    if cfg.reduction == "none":
        return loss.to(out_dtype)
    count = w.sum() if w is not None else torch.tensor(float(loss.numel()), dtype=loss.dtype, device=loss.device)
    return (loss.sum() * _reduce_scale(cfg.reduction, count, normalizer, cfg.sync, positives)).to(out_dtype)


@dataclass(frozen=True)
class SoftmaxConfig:
    family: str  # ce, focal, hard, soft, complement, poly
    reduction: str
    dtype: torch.dtype
    gamma: float = 2.0
    threshold: float = 0.5
    k: float = 1.0
    label_smoothing: float = 0.0
    ignore_index: int = -100
    sparse: bool = True
    sync: Any = None
    epsilon: float = 0.0  # poly-1's ε
    gamma_hard: float | None = None  # adaptive focal loss: γ where p_t < hard_threshold
    hard_threshold: float = 0.2


def _softmax_chunk(cfg: SoftmaxConfig, x: Tensor, t: Tensor, w: Tensor | None, class_factor: Tensor | None,
                   class_weight: Tensor | None, order: int) -> tuple[Tensor, Tensor | None, Tensor]:
    """One slice ``x`` ``(n, C, s)``: weighted loss ``(n, s)``, weighted gradient, and the mean's weight."""
    xc = x.to(cfg.dtype)
    t = t.unsqueeze(1) if cfg.sparse else t
    w = None if w is None else w.unsqueeze(1)
    if cfg.sparse and not cfg.label_smoothing:  # only the target's weight is needed; it carries the element weight
        loss, grad, den = softmax_sparse_slice_terms(TorchOps, cfg, xc, t, w, class_factor, class_weight, order=order)
    else:
        loss, grad, den = softmax_dense_slice_terms(TorchOps, cfg, xc, t, w, class_factor, class_weight, order=order,
                                                    num_classes=xc.shape[1])
        if den is None:
            den = torch.ones_like(loss)
    return loss.squeeze(1), grad, den.squeeze(1)


def softmax_reference(cfg: SoftmaxConfig, x: Tensor, t: Tensor, weight: Tensor | None, class_factor: Tensor | None,
                      class_weight: Tensor | None, normalizer: float | Tensor | str | None,
                      out_dtype: torch.dtype) -> Tensor:
    """The same loss through plain autograd (whole tensors)."""
    shape = x.shape
    n, c = shape[0], shape[1]
    s = math.prod(shape[2:])  # 0 for an empty [N, C, 0]
    w = None if weight is None else weight.expand(shape[:1] + shape[2:]).reshape(n, s)
    loss, _, den = _softmax_chunk(cfg, x.reshape(n, c, s), t.reshape(n, s) if cfg.sparse else t.reshape(n, c, s),
                                  w, class_factor, class_weight, order=0)
    if cfg.reduction == "none":
        return loss.reshape(shape[:1] + shape[2:]).to(out_dtype)
    return (loss.sum() * _reduce_scale(cfg.reduction, den.sum(), normalizer, cfg.sync)).to(out_dtype)
