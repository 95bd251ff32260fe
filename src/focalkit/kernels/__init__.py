"""Kernels that evaluate the math core fast: fused, chunked autograd Functions on any device.

The loss modules call :func:`run_sigmoid` / :func:`run_softmax` with checked inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._inputs import SigmoidInputs, SoftmaxInputs
from .fused import SigmoidConfig, SoftmaxConfig, all_reduce, ghmc_bin_weights, sigmoid_loss, softmax_loss
from .reference import _reduce_scale as reduce_scale

__all__ = ["SigmoidConfig", "SoftmaxConfig", "all_reduce", "ghmc_bin_weights", "reduce_scale", "run_sigmoid",
           "run_softmax"]


def run_sigmoid(inp: SigmoidInputs, family: str, *, pos_weight: Tensor | float | None = None,
                beta_bins: Tensor | None = None, bin_index: Tensor | None = None, **params: Any) -> Tensor:
    cfg = SigmoidConfig(family, inp.reduction, inp.dtype, ignore_index=inp.ignore_index,
                        label_smoothing=inp.label_smoothing, sync=inp.sync, **params)
    return sigmoid_loss(cfg, inp.logits, inp.target, weight=inp.sample_weight, pos_weight=pos_weight,
                        beta_bins=beta_bins, bin_index=bin_index, normalizer=inp.normalizer,
                        out_dtype=inp.out_dtype)


def run_softmax(inp: SoftmaxInputs, family: str, *, alpha: float | Tensor | None = None, **params: Any) -> Tensor:
    """``alpha`` (scalar or per class) and the class weights both scale the per-class target weights."""
    factor = inp.class_weight
    if isinstance(alpha, Tensor):
        alpha = alpha.to(device=inp.logits.device, dtype=inp.dtype)
        factor = alpha if factor is None else factor * alpha
    elif alpha is not None:
        factor = _full(inp, alpha) if factor is None else factor * alpha
    cfg = SoftmaxConfig(family, inp.reduction, inp.dtype, ignore_index=inp.ignore_index, sparse=inp.sparse,
                        label_smoothing=inp.label_smoothing, sync=inp.sync, **params)
    loss = softmax_loss(cfg, inp.logits, inp.target, weight=inp.sample_weight, class_factor=factor,
                        class_weight=inp.class_weight, normalizer=inp.normalizer, out_dtype=inp.out_dtype)
    return loss.reshape(inp.out_shape) if inp.out_shape is not None and inp.reduction == "none" else loss


def _full(inp: SoftmaxInputs, value: float) -> Tensor:
    return torch.full((inp.num_classes,), value, dtype=inp.dtype, device=inp.logits.device)
