"""The training epoch both neural tasks run: shuffled mini-batches, one optimiser step each."""

from __future__ import annotations

import torch

from ..losses import TrainingLoss

__all__ = ["train_epoch"]


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
