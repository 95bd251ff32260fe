"""Tables: an MLP (or a linear model) trained with each loss; the ``fit`` of :class:`TabularTask`.

The protocol, the same for every loss:

- stratified train / validation / test split per seed (60 / 20 / 20);
- missing features imputed with the train median, features standardised on train only;
- the output bias starts at the log class prior (every loss starts from the same model);
- AdamW over mini-batches (decoupled weight decay 0.01: an L2 term added to the gradient, as in
  Adam's ``weight_decay``, would regularise a loss with small gradients, like focal loss's, more than
  cross-entropy), early stopping on validation AP: the epoch with the best validation AP
  is kept (:func:`focalkit.compare.run` then keeps the best learning rate of the grid);
- the test split is scored once, with that model; the F1 threshold is chosen on validation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..data import Dataset
from ..losses import TrainingLoss
from ..metrics import average_precision
from .loop import train_epoch

__all__ = ["Protocol", "Split", "TabularTask", "check_splittable", "prepare_split"]


@dataclass(frozen=True)
class Protocol:
    model: str = "mlp"  # "linear" or "mlp"
    hidden: int = 64
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    max_epochs: int = 150
    eval_every: int = 5
    patience: int = 40
    batch_size: int = 128
    weight_decay: float = 1e-2  # AdamW's, decoupled from the loss's scale
    noise: float = 0.0  # fraction of training labels flipped
    device: str = "cpu"
    keep_curves: bool = True


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray
    class_counts: np.ndarray


def check_splittable(data: Dataset, seeds: list[int]) -> None:
    """Raise :class:`DataError` before any training if a stratified 60/20/20 split of ``data`` is impossible
    for one of ``seeds`` (too few rows of some class)."""
    from ..data import DataError

    counts = np.bincount(data.labels, minlength=data.num_classes)
    idx = np.arange(len(data.labels))
    for seed in seeds:
        try:
            _, rest = train_test_split(idx, test_size=0.4, stratify=data.labels, random_state=seed)
            train_test_split(rest, test_size=0.5, stratify=data.labels[rest], random_state=seed)
        except ValueError as err:
            if len(counts) <= 12:
                per_class = f"per class {counts.tolist()}"
            else:
                per_class = (f"{len(counts):,} classes, {int((counts < 5).sum()):,} of them with fewer than 5 rows, "
                             f"the smallest {int(counts.min())}")
            raise DataError(f"--data: {len(idx):,} rows ({per_class}) are too few for a stratified "
                            "60/20/20 split: every class needs at least 5 rows, more for a meaningful test.") from err


def prepare_split(data: Dataset, seed: int, *, noise: float = 0.0) -> Split:
    idx = np.arange(len(data.labels))
    train, rest = train_test_split(idx, test_size=0.4, stratify=data.labels, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=data.labels[rest], random_state=seed)
    x = data.features
    median = np.nanmedian(x[train], axis=0)
    median = np.where(np.isnan(median), 0.0, median)
    x = np.where(np.isnan(x), median, x)
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    y_train = data.labels[train].copy()
    if noise > 0:
        rng = np.random.default_rng(10_000 + seed)
        flip = rng.random(len(y_train)) < noise
        shift = rng.integers(1, data.num_classes, size=len(y_train))
        y_train[flip] = (y_train[flip] + shift[flip]) % data.num_classes
    def as_t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32)
    counts = np.bincount(data.labels[train], minlength=data.num_classes).astype(np.float64)
    return Split(as_t(x[train]), torch.tensor(y_train), as_t(x[val]), data.labels[val], as_t(x[test]),
                 data.labels[test], counts)


def _model(protocol: Protocol, d: int, outputs: int, prior: np.ndarray) -> torch.nn.Module:
    if protocol.model == "linear":
        model = torch.nn.Sequential(torch.nn.Linear(d, outputs))
    else:
        model = torch.nn.Sequential(torch.nn.Linear(d, protocol.hidden), torch.nn.ReLU(),
                                    torch.nn.Linear(protocol.hidden, outputs))
    last = model[-1]
    with torch.no_grad():
        prior = np.clip(prior, 1e-6, 1.0)
        if outputs == 1:
            last.bias.fill_(float(np.log(prior[1] / prior[0])))
        else:
            last.bias.copy_(torch.tensor(np.log(prior), dtype=torch.float32))
    return model


def _probs(model: torch.nn.Module, x: torch.Tensor, binary: bool) -> np.ndarray:
    with torch.no_grad():
        out = model(x)
        if binary:
            p1 = torch.sigmoid(out.squeeze(-1)).double().cpu().numpy()
            return np.stack([1 - p1, p1], 1)
        return torch.softmax(out.double(), 1).cpu().numpy()


def _train(loss_fn: TrainingLoss, split: Split, num_classes: int, lr: float, seed: int, protocol: Protocol,
           targets: tuple[float, ...]) -> dict:
    binary = num_classes == 2
    device = torch.device(protocol.device)
    torch.manual_seed(seed)
    model = _model(protocol, split.x_train.shape[1], 1 if binary else num_classes,
                   split.class_counts / split.class_counts.sum()).to(device)
    ghm = loss_fn.ghm
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=protocol.weight_decay)
    x, y = split.x_train.to(device), split.y_train.to(device)
    x_val = split.x_val.to(device)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    best = {"ap": -1.0, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    curve: list[tuple[int, float, float]] = []
    hist: list[tuple[int, list[float]]] = []
    reached: dict[float, int] = {}
    since_best = 0
    for epoch in range(1, protocol.max_epochs + 1):
        order = torch.randperm(n, generator=gen).to(device)
        train_loss = train_epoch(model, opt, loss_fn, x, y, order, protocol.batch_size)
        if epoch % protocol.eval_every and epoch != protocol.max_epochs:
            continue
        model.eval()
        ap = average_precision(split.y_val, _probs(model, x_val, binary))
        curve.append((epoch, ap, train_loss))
        for target in targets:
            if ap >= target and target not in reached:
                reached[target] = epoch
        if ghm is not None:
            with torch.no_grad():
                g = (torch.sigmoid(model(x).squeeze(-1)) - y.float()).abs().cpu()
            hist.append((epoch, torch.histc(g, bins=ghm.bins, min=0, max=1).tolist()))
        if ap > best["ap"] + 1e-9:
            best = {"ap": ap, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            since_best = 0
        else:
            since_best += protocol.eval_every
            if since_best >= protocol.patience:
                break
    model.load_state_dict(best["state"])
    model.eval()
    return {"model": model, "ap": best["ap"], "epoch": best["epoch"], "curve": curve, "hist": hist,
            "reached": reached}


@dataclass
class TabularTask:
    """``fit(loss_fn, *, seed, lr)`` for :func:`focalkit.compare.run`: one model on one seed's split."""

    data: Dataset
    protocol: Protocol = field(default_factory=Protocol)
    targets: tuple[float, ...] = ()  # validation APs whose first epoch is recorded (claim 1)

    @property
    def description(self) -> str:
        p = self.protocol
        model = "linear model" if p.model == "linear" else f"MLP (one hidden layer of {p.hidden} ReLU units)"
        return (f"{model}, AdamW, batch {p.batch_size}, up to {p.max_epochs} epochs with early stopping on validation "
                f"AP (checked every {p.eval_every} epochs, patience {p.patience}), stratified 60/20/20 split per seed"
                + (f", {p.noise:.0%} of training labels flipped" if p.noise else ""))

    def __call__(self, loss_fn: TrainingLoss, *, seed: int, lr: float) -> dict:
        torch.set_num_threads(1)
        split = prepare_split(self.data, seed, noise=self.protocol.noise)
        binary = self.data.num_classes == 2
        trained = _train(loss_fn, split, self.data.num_classes, lr, seed, self.protocol, self.targets)
        model = trained["model"]
        device = next(model.parameters()).device
        return {"val": (split.y_val, _probs(model, split.x_val.to(device), binary)),
                "test": (split.y_test, _probs(model, split.x_test.to(device), binary)),
                "epoch": trained["epoch"], "curve": trained["curve"] if self.protocol.keep_curves else [],
                "grad_norm_hist": trained["hist"], "epochs_to_target": trained["reached"],
                "budget": self.protocol.max_epochs}
