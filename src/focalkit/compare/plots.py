"""PNG figures: what a person looks at after a comparison, and the analytic curves of the losses.

The analytic curves are computed with focalkit's own losses (and autograd for the gradients),
so they show what the library computes, not a second transcription of the formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

import focalkit as fk

from .train import RunResult

__all__ = ["all_curves", "grad_norm_histograms", "pr_curves", "reliability", "training_curves"]


def _losses(results: Sequence[RunResult]) -> list[str]:
    return list(dict.fromkeys(r.loss for r in results))


def _pooled(results: Sequence[RunResult], loss: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in results if r.loss == loss and r.test_probs is not None]
    return np.concatenate([r.test_labels for r in rows]), np.concatenate([r.test_probs for r in rows])


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pr_curves(results: Sequence[RunResult], path: Path) -> None:
    """Precision–recall of the positive (binary) or rarest (multi-class) class, test sets pooled over seeds."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for loss in _losses(results):
        y, p = _pooled(results, loss)
        cls = 1 if p.shape[1] == 2 else int(np.argmin(np.bincount(y, minlength=p.shape[1])))
        precision, recall, _ = precision_recall_curve(y == cls, p[:, cls])
        ax.plot(recall, precision, label=loss, lw=1.4)
    ax.set(xlabel="recall", ylabel="precision", title="Precision–recall (test, pooled over seeds)", xlim=(0, 1),
           ylim=(0, 1.02))
    ax.legend(fontsize=8)
    _save(fig, path)


def reliability(results: Sequence[RunResult], path: Path, bins: int = 10) -> None:
    """Top-label confidence against accuracy, equal-width bins, test sets pooled over seeds."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    edges = np.linspace(0, 1, bins + 1)
    for loss in _losses(results):
        y, p = _pooled(results, loss)
        conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
        index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            sel = index == b
            if sel.sum() >= 5:
                xs.append(conf[sel].mean())
                ys.append(correct[sel].mean())
        ax.plot(xs, ys, marker="o", ms=3, label=loss, lw=1.2)
    ax.set(xlabel="confidence", ylabel="accuracy", title="Reliability (test, pooled over seeds)", xlim=(0, 1),
           ylim=(0, 1.02))
    ax.legend(fontsize=8)
    _save(fig, path)


def training_curves(results: Sequence[RunResult], path: Path) -> None:
    """Validation AP and training loss against epochs, at each loss's chosen learning rate, first seed."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    first = min(r.seed for r in results)
    for loss in _losses(results):
        run = next(r for r in results if r.loss == loss and r.seed == first)
        if not run.curve:
            continue
        epochs, ap, train = zip(*run.curve, strict=True)
        ax1.plot(epochs, ap, label=loss, lw=1.2)
        ax2.plot(epochs, train, label=loss, lw=1.2)
    ax1.set(xlabel="epoch", ylabel="validation AP", title=f"Validation AP (seed {first})")
    ax2.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss (each its own scale)")
    ax1.legend(fontsize=8)
    _save(fig, path)


def grad_norm_histograms(results: Sequence[RunResult], path: Path) -> None:
    """GHM-C runs: the histogram of g = |p − y| on the training set as training goes on."""
    runs = [r for r in results if r.grad_norm_hist]
    run = min(runs, key=lambda r: r.seed)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    snapshots = run.grad_norm_hist
    picks = sorted({0, len(snapshots) // 3, 2 * len(snapshots) // 3, len(snapshots) - 1})
    cmap = plt.get_cmap("viridis")
    for i, k in enumerate(picks):
        epoch, counts = snapshots[k]
        centres = (np.arange(len(counts)) + 0.5) / len(counts)
        ax.plot(centres, np.maximum(counts, 0.5), marker="o", ms=3, color=cmap(i / max(len(picks) - 1, 1)),
                label=f"epoch {epoch}")
    ax.set(xlabel="gradient norm g = |p − y|", ylabel="training examples", yscale="log",
           title=f"GHM-C: gradient-norm density ({run.loss}, seed {run.seed})")
    ax.legend(fontsize=8)
    _save(fig, path)


# ---------------------------------------------------------------------------------------------- analytic


def _positive_loss(fn, p_t: torch.Tensor, **options) -> tuple[np.ndarray, np.ndarray]:
    """Loss and dℓ/dx of a positive label at probabilities ``p_t`` (x = logit(p_t))."""
    x = torch.logit(p_t.double()).requires_grad_(True)
    loss = fn(x, torch.ones_like(x), reduction="none", **options)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach().numpy(), grad.numpy()


def loss_vs_pt(path: Path, gammas: Sequence[float] = (0, 0.5, 1, 2, 5)) -> None:
    """The focal paper's first figure: loss against the probability of the true class."""
    p = torch.linspace(0.001, 0.999, 400)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for g in gammas:
        loss, _ = _positive_loss(fk.sigmoid_focal_loss, p, alpha=None, gamma=float(g))
        ax.plot(p, loss, label=f"γ = {g:g}" + (" (CE)" if g == 0 else ""))
    ax.set(xlabel="probability of ground truth class p_t", ylabel="loss", ylim=(0, 5), title="Focal loss")
    ax.legend()
    _save(fig, path)


def weight_curves(path: Path, ks: Sequence[float] = (0.5, 1, 2, 4), gammas: Sequence[float] = (0.5, 1, 2, 4)) -> None:
    """The modulating weights against the logit of a positive: σ(−Kx) of the softened loss, (1−p)^γ of focal."""
    x = torch.linspace(-6, 6, 400)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k in ks:
        ax.plot(x, torch.sigmoid(-k * x), label=f"softened σ(−{k:g}x)")
    for g in gammas:
        ax.plot(x, torch.sigmoid(-x) ** g, ls="--", label=f"focal (1−p)^{g:g}")
    ax.set(xlabel="logit x of a positive", ylabel="weight on −log p", title="K and γ both steepen the weight")
    ax.legend(fontsize=8)
    _save(fig, path)


def gradient_curves(path: Path) -> None:
    """dℓ/dx of a positive for CE, focal, softened and hard truncation."""
    p = torch.linspace(0.001, 0.999, 400)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    curves = [("CE", fk.binary_cross_entropy, {}), ("focal γ=2", fk.sigmoid_focal_loss, {"alpha": None}),
              ("softened K=1", fk.sigmoid_soft_truncation_loss, {"k": 1.0}),
              ("softened K=4", fk.sigmoid_soft_truncation_loss, {"k": 4.0}),
              ("hard m=0.5", fk.sigmoid_hard_truncation_loss, {})]
    for name, fn, opts in curves:
        _, grad = _positive_loss(fn, p, **opts)
        ax.plot(p, grad, label=name)
    ax.set(xlabel="p of a positive", ylabel="dℓ/dx", title="Gradient with respect to the logit")
    ax.legend(fontsize=8)
    _save(fig, path)


def ghm_weights(path: Path, counts: Sequence[float] | None = None) -> None:
    """GHM-C weights β = N / (count · n) for a gradient-norm histogram (default: a typical U shape)."""
    if counts is None:
        centres = (np.arange(10) + 0.5) / 10
        counts = np.round(2000 * np.exp(-centres * 12) + 150 * np.exp((centres - 1) * 6) + 5)
    counts = np.asarray(counts, dtype=float)
    bins = len(counts)
    g = torch.tensor((np.arange(bins) + 0.5) / bins).repeat_interleave(torch.tensor(counts.astype(int)))
    y = torch.ones_like(g, dtype=torch.float64)
    x = torch.logit(1 - g)  # a positive with p = 1 − g has gradient norm g
    loss = fk.ghmc_loss(x, y, bins=bins, reduction="none")
    beta = (loss / fk.binary_cross_entropy(x, y, reduction="none")).numpy()
    centres = (np.arange(bins) + 0.5) / bins
    per_bin = [beta[(g.numpy() > c - 0.5 / bins) & (g.numpy() < c + 0.5 / bins)][0] for c in centres]
    fig, ax1 = plt.subplots(figsize=(6.5, 4.5))
    ax1.bar(centres, counts, width=0.8 / bins, color="lightgrey", label="examples per bin")
    ax1.set(xlabel="gradient norm g", ylabel="examples", yscale="log")
    ax2 = ax1.twinx()
    ax2.plot(centres, per_bin, color="C3", marker="o", label="GHM-C weight β")
    ax2.set(ylabel="β")
    ax1.set_title("GHM-C down-weights both the easy (g≈0) and the outliers (g≈1)")
    _save(fig, path)


def all_curves(folder: Path) -> list[Path]:
    paths = [folder / "curve_loss_vs_pt.png", folder / "curve_weights_k_vs_gamma.png",
             folder / "curve_gradients.png", folder / "curve_ghm_weights.png"]
    loss_vs_pt(paths[0])
    weight_curves(paths[1])
    gradient_curves(paths[2])
    ghm_weights(paths[3])
    return paths
