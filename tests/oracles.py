"""The articles' formulas written out plainly, in float64, independent of the code under test.

Nothing here is clever: probabilities are formed first and logs taken of them, as the articles
write it, so these are only trusted for moderate logits (|x| ≲ 30 in float64). Each returns the
unreduced loss.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _f64(*ts: Tensor) -> list[Tensor]:
    return [t.detach().to(torch.float64) for t in ts]


def sigmoid(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def bce(x: Tensor, y: Tensor, pos_weight: float | Tensor = 1.0) -> Tensor:
    """−w₊·y·log p − (1−y)·log(1−p)."""
    p = sigmoid(x)
    return -pos_weight * y * torch.log(p) - (1 - y) * torch.log(1 - p)


def sigmoid_focal(x: Tensor, y: Tensor, alpha: float | None, gamma: float) -> Tensor:
    """α_t (1 − p_t)^γ · BCE, p_t = p·y + (1−p)(1−y) (torchvision / Keras)."""
    p = sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    loss = (1 - p_t) ** gamma * bce(x, y)
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def torchvision_focal(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss (reduction='none') as its documentation writes it."""
    p = torch.sigmoid(inputs)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def sam_med2d_focal(pred: Tensor, mask: Tensor, gamma: float = 2.0, alpha: float = 0.25) -> Tensor:
    """Seed 001 (SAM-Med2D FocalLoss.forward), transcribed: a mean over all elements."""
    p = torch.sigmoid(pred)
    num_pos = torch.sum(mask)
    num_neg = mask.numel() - num_pos
    w_pos = (1 - p) ** gamma
    w_neg = p**gamma
    loss_pos = -alpha * mask * w_pos * torch.log(p + 1e-12)
    loss_neg = -(1 - alpha) * (1 - mask) * w_neg * torch.log(1 - p + 1e-12)
    return (torch.sum(loss_pos) + torch.sum(loss_neg)) / (num_pos + num_neg + 1e-12)


def step(z: Tensor) -> Tensor:
    """θ(z): 1 for z > 0, ½ at 0, 0 below (seed 000)."""
    return (z > 0).double() + 0.5 * (z == 0).double()


def sigmoid_hard_truncation(x: Tensor, y: Tensor, m: float) -> Tensor:
    """Seed 000 element by element: −θ(m − p) log p if y = 1, −θ(p − (1−m)) log(1 − p) if y = 0."""
    out = torch.zeros_like(x)
    flat_x, flat_y, flat_o = x.reshape(-1), y.reshape(-1), out.reshape(-1)
    for i in range(flat_x.numel()):
        p = sigmoid(flat_x[i])
        if flat_y[i] == 1:
            flat_o[i] = -step(m - p) * torch.log(p)
        else:
            flat_o[i] = -step(p - (1 - m)) * torch.log(1 - p)
    return out


def sigmoid_soft_truncation(x: Tensor, y: Tensor, k: float) -> Tensor:
    """Seed 000: −σ(−Kx) log σ(x) for y = 1, −σ(Kx) log σ(−x) for y = 0 (soft y mixes the two)."""
    return -y * sigmoid(-k * x) * torch.log(sigmoid(x)) - (1 - y) * sigmoid(k * x) * torch.log(sigmoid(-x))


def softmax(x: Tensor) -> Tensor:
    e = torch.exp(x - x.max(1, keepdim=True).values)
    return e / e.sum(1, keepdim=True)


def softmax_per_class(x: Tensor, kind: str, **kw: float) -> Tensor:
    """The loss each class would get as the target, ``(N, C)``, straight from probabilities."""
    p = softmax(x)
    ce = -torch.log(p)
    if kind == "ce":
        return ce
    if kind == "focal":
        return (1 - p) ** kw["gamma"] * ce
    if kind == "hard":
        return step(kw["threshold"] - p) * ce
    if kind == "soft":
        return softmax(-kw["k"] * x) * ce
    if kind == "complement":
        return (1 - softmax(kw["k"] * x)) * ce
    raise ValueError(kind)


def softmax_loss(x: Tensor, t: Tensor, kind: str, alpha: Tensor | None = None, **kw: float) -> Tensor:
    """Class-id targets, ``x`` ``(N, C)``: a loop picking the target's term, times α_t."""
    per = softmax_per_class(x, kind, **kw)
    out = torch.zeros(x.shape[0], dtype=torch.float64)
    for n in range(x.shape[0]):
        c = int(t[n])
        out[n] = per[n, c] * (1.0 if alpha is None else alpha[c])
    return out


def ghmc_article(pred: Tensor, target: Tensor, label_weight: Tensor, bins: int = 10) -> Tensor:
    """Seed 003's GHM-C snippet, loop over bins, with the top edge nudged to include g = 1
    (as the authors' code does with ``edges[-1] += 1e-6``). Returns the reduced loss."""
    edges = torch.arange(bins + 1).double() / bins
    edges[-1] += 1e-6
    weights = torch.zeros_like(pred)
    g = torch.abs(torch.sigmoid(pred).detach() - target)
    valid = label_weight > 0
    num_labels = max(valid.double().sum().item(), 1.0)
    n = 0
    for i in range(bins):
        inds = (g >= edges[i]) & (g < edges[i + 1]) & valid
        num_in_bin = inds.sum().item()
        if num_in_bin > 0:
            weights[inds] = num_labels / num_in_bin
            n += 1
    if n > 0:
        weights = weights / n
    return torch.nn.functional.binary_cross_entropy_with_logits(pred, target, weights, reduction="sum") / num_labels


class GHMCMomentumOracle:
    """The authors' GHMC with momentum (mmdetection), transcribed as a loop over bins."""

    def __init__(self, bins: int = 10, momentum: float = 0.75) -> None:
        self.bins = bins
        self.momentum = momentum
        self.edges = torch.arange(bins + 1).double() / bins
        self.edges[-1] += 1e-6
        self.acc_sum = [0.0] * bins

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        weights = torch.zeros_like(pred)
        g = torch.abs(torch.sigmoid(pred).detach() - target)
        tot = max(float(pred.numel()), 1.0)
        n = 0
        for i in range(self.bins):
            inds = (g >= self.edges[i]) & (g < self.edges[i + 1])
            num_in_bin = inds.sum().item()
            if num_in_bin > 0:
                self.acc_sum[i] = self.momentum * self.acc_sum[i] + (1 - self.momentum) * num_in_bin
                weights[inds] = tot / self.acc_sum[i]
                n += 1
        if n > 0:
            weights = weights / n
        return torch.nn.functional.binary_cross_entropy_with_logits(pred, target, weights, reduction="sum") / tot
