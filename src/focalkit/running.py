r"""A running normaliser for detection losses: the exponential moving average of the number of positives.

A one-stage detector's classification loss is summed over every anchor and divided by the number of
positive (foreground) anchors. That count jumps from batch to batch (one image with a crowd, the next with
one object), and the loss scale jumps with it. detectron2's RetinaNet and FCOS divide instead by a running
mean of the count, ``n̄ ← m·n̄ + (1 − m)·max(n, 1)`` with ``m = 0.9`` from ``n̄ = 100``:

.. code-block:: python

    positives = focalkit.RunningPositives(momentum=0.9, sync=True)
    loss = focalkit.sigmoid_focal_loss(logits, target, normalizer=positives(target), sync=True)

Under ``sync`` the count is summed over the ``torch.distributed`` ranks before the average, so every rank
holds the same state and the whole batch's normaliser (detectron2 averages each rank's own count); pass
the same ``sync`` to the loss, which then scales for DDP's average as with any given normaliser.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _inputs as I
from .ghm import RunningCounts
from .kernels import all_reduce

__all__ = ["RunningPositives"]


class RunningPositives(nn.Module):
    r"""The running number of positives, ``n̄ ← m·n̄ + (1 − m)·max(n, 1)``, to pass as a loss's ``normalizer``.

    ``n`` is the batch's positives: the sum of the targets (0/1, or soft scores such as varifocal's IoU
    targets) over the counted elements (``target != ignore_index``, and ``sample_weight > 0`` where given),
    summed over the ranks with ``sync``. A training call (``module.train()``, the default) updates the state;
    in eval mode the value is formed from the state without changing it. The state is a float32 buffer
    (``state_dict``, ``.to(device)``); a forward recomputed by activation checkpointing reuses the value of
    its original call and leaves the state alone, as :class:`focalkit.GHMCLoss`'s running counts.

    Args:
        momentum: ``m`` in ``[0, 1)``; 0 gives the batch's own ``max(n, 1)``.
        initial: ``n̄`` before the first batch, ``> 0`` (detectron2: 100).
        ignore_index: target value of elements that are not counted.
        sync: ``True`` or a process group: the count is summed over its ranks.

    Returns:
        A 0-d float32 tensor without gradient, on the target's device, ``≥ min(1, initial)``.

    Examples:
        >>> import torch
        >>> positives = RunningPositives(momentum=0.9, initial=100.0)
        >>> target = torch.zeros(2, 100, 3)
        >>> target[0, :4, 0] = 1.0
        >>> round(float(positives(target)), 4)  # 0.9 · 100 + 0.1 · 4
        90.4
        >>> round(float(positives(target)), 4)  # 0.9 · 90.4 + 0.1 · 4
        81.76
    """

    def __init__(self, momentum: float = 0.9, initial: float = 100.0, *, ignore_index: int | None = None,
                 sync: bool | object = False) -> None:
        super().__init__()
        name = type(self).__name__
        self.momentum = I.check_number(name, "momentum", momentum, low=0.0, high=1.0, high_open=True)
        initial = I.check_number(name, "initial", initial, low=0.0, low_open=True)
        self.ignore_index = I.check_optional_int(name, "ignore_index", ignore_index)
        self.sync = I.check_sync(name, sync)
        self.register_buffer("value", torch.tensor(initial, dtype=torch.float32))
        self._records = RunningCounts(name)

    def forward(self, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        y = I.check_tensor(name, "target", target)
        if y.dtype.is_complex:
            raise TypeError(f"{name}: target must be a real, integer or bool tensor; got {y.dtype}.")
        with torch.no_grad():
            y = y.detach()
            counted = torch.ones_like(y, dtype=torch.bool) if self.ignore_index is None else y != self.ignore_index
            if sample_weight is not None:
                w = I.check_sample_weight(name, sample_weight, y.shape, y)
                counted = counted & (w.detach() > 0)
            n = torch.where(counted, y.to(torch.float32), 0.0).sum().reshape(1)
            if self.sync is not False:
                n, _ = all_reduce(n, self.sync)
            n = n.clamp_min(1.0)
            state = self.value.view(1)
            density = self._records.density_of(state, self.momentum, update=self.training)
            return density(n).reshape(()).to(device=y.device)

    def extra_repr(self) -> str:
        return (f"momentum={self.momentum}, value={float(self.value):.6g}, ignore_index={self.ignore_index}, "
                f"sync={self.sync}")
