"""Numerically stable pieces shared by the loss families (log space throughout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def heaviside(z: Tensor) -> Tensor:
    """The unit step θ with θ(0) = ½, as seed 000 defines it."""
    return torch.heaviside(z, torch.full((), 0.5, dtype=z.dtype, device=z.device))


def sigmoid_log_one_minus_pt(logits: Tensor, target: Tensor) -> Tensor:
    r"""``log(1 − p_t)`` for the sigmoid family, with ``1 − p_t = y·σ(−x) + (1−y)·σ(x)``.

    Hard labels take ``log σ(∓x)`` directly; soft labels ``logaddexp(log y + log σ(−x),
    log(1−y) + log σ(x))``. Every branch is finite, so the loss, its gradient and its second
    derivative stay finite for every finite ``x``, also where ``σ(±x)`` underflows to 0.
    """
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    hard = torch.where(target > 0.5, log_1mp, log_p)
    soft = (target > 0) & (target < 1)
    y = torch.where(soft, target, 0.5)
    mixed = torch.logaddexp(torch.log(y) + log_1mp, torch.log1p(-y) + log_p)
    return torch.where(soft, mixed, hard)


def log_one_minus_softmax(logits: Tensor, log_probs: Tensor) -> Tensor:
    r"""``log(1 − softmax(x)_c)`` for every class ``c`` (classes on dim 1).

    For the leading class this is ``logsumexp_{c'≠c} x_{c'} − logsumexp(x)``, exact even when
    that class holds all the mass in floating point; every other class has ``p_c ≤ ½``, where
    ``log1p(−p_c)`` is accurate.
    """
    top = logits.argmax(1, keepdim=True)
    is_top = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
    lse = torch.logsumexp(logits, 1, keepdim=True)
    lead = torch.logsumexp(logits.masked_fill(is_top, float("-inf")), 1, keepdim=True) - lse
    safe = log_probs.masked_fill(is_top, -1.0)  # keeps the unused branch's gradient finite
    return torch.where(is_top, lead, torch.log1p(-safe.exp()))


def focal_factor(log_one_minus_p: Tensor, gamma: float) -> Tensor:
    """``(1 − p)^γ`` from ``log(1 − p)``: ``exp(γ·log(1 − p))``, finite gradient for every γ ≥ 0."""
    if gamma == 0:
        return torch.ones_like(log_one_minus_p)
    return torch.exp(gamma * log_one_minus_p)
