"""What the neural tasks share: the 60/20/20 split by whether an example holds the rare class, and the
training epoch (shuffled mini-batches, one optimiser step each)."""

from __future__ import annotations

import numpy as np
import torch

from ..losses import TrainingLoss

__all__ = ["split_by_presence", "train_epoch"]


def split_by_presence(has: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices (60 / 20 / 20) of the examples, stratified by ``has`` (1 where an
    example holds the rare class: an object pixel, an entity), unstratified when either group has fewer
    than 5 examples."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(has))
    stratify = has if np.bincount(has, minlength=2).min() >= 5 else None
    train, rest = train_test_split(idx, test_size=0.4, stratify=stratify, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=None if stratify is None else has[rest],
                                 random_state=seed)
    return train, val, test


def train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, loss_fn: TrainingLoss, x: torch.Tensor,
                y: torch.Tensor, order: torch.Tensor, batch_size: int) -> float:
    """One pass over ``x[order]`` in batches of ``batch_size``; the mean training loss per example."""
    model.train()
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(batch)
    return total / max(len(order), 1)
