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
import matplotlib.ticker
import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

import focalkit as fk

from .results import RunResult, Summary

__all__ = ["all_curves", "forest", "grad_norm_histograms", "pr_curves", "reliability", "training_curves"]

VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "no effect": "tab:olive", "inconclusive": "grey",
                   "no verdict": "grey"}


def _losses(results: Sequence[RunResult]) -> list[str]:
    return list(dict.fromkeys(r.loss for r in results))


def _pooled(results: Sequence[RunResult], loss: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in results if r.loss == loss and r.test_probs is not None]
    return np.concatenate([r.test_labels for r in rows]), np.concatenate([r.test_probs for r in rows])


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _legend_outside(ax: plt.Axes, **kwargs) -> None:
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def forest(summary: Summary, path: Path) -> None:
    """Each loss's paired difference in test AP with its interval, the ±margin band and the verdict."""
    comps = summary.comparisons
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(len(comps), 1) + 1.6))
    m = summary.margin
    ax.axvspan(-m, m, color="gold", alpha=0.25, lw=0)
    ax.axvline(0, color="black", lw=0.8)
    for i, c in enumerate(comps):
        y = len(comps) - 1 - i
        colour = VERDICT_COLOURS[c["verdict"]]
        low, high, mean = c["ci_low"], c["ci_high"], c["mean_diff"]
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
            ax.plot([low, low], [y - 0.15, y + 0.15], color=colour, lw=1.5)
            ax.plot([high, high], [y - 0.15, y + 0.15], color=colour, lw=1.5)
        if mean is not None:
            ax.plot(mean, y, "o", color=colour, ms=6)
        ax.annotate(c["verdict"], xy=(1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=9,
                    color=colour, fontweight="bold")
    ax.set_yticks(range(len(comps)), [c["loss"] for c in reversed(comps)])
    ax.set_ylim(-0.7, len(comps) - 0.3)
    ax.set_xlabel(f"test AP − {summary.baseline} (paired over {len(summary.seeds)} seeds); shaded: ±margin {m:g}, "
                  "no effect")
    level = comps[0]["level"] if comps else 0.95
    ax.set_title(f"{summary.dataset}: difference from {summary.baseline}, {100 * level:.4g}% intervals", fontsize=10)
    _save(fig, path)


def pr_curves(results: Sequence[RunResult], path: Path, max_panels: int = 10,
              class_names: Sequence[str] | None = None) -> None:
    """Precision–recall on test, pooled over seeds: the positive class, or one panel per class (named)."""
    losses = _losses(results)
    y0, p0 = _pooled(results, losses[0])
    classes = [1] if p0.shape[1] == 2 else list(range(p0.shape[1]))[:max_panels]
    cols = min(len(classes), 5)
    rows = (len(classes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 2.2 if len(classes) > 1 else 7.5, 3.1 * rows + 0.4),
                             squeeze=False)
    for k, cls in enumerate(classes):
        ax = axes[k // cols][k % cols]
        for i, loss in enumerate(losses):
            y, p = _pooled(results, loss)
            if (y == cls).any():
                precision, recall, _ = precision_recall_curve(y == cls, p[:, cls])
                ax.plot(recall, precision, label=loss, lw=1.3, color=f"C{i % 10}")
        base = float(np.mean(y0 == cls))
        ax.axhline(base, color="grey", lw=0.8, ls=":")
        label = class_names[cls] if class_names and cls < len(class_names) else str(cls)
        name = f"positive class {label!r}" if p0.shape[1] == 2 else f"class {label!r}"
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
               title=f"{name}: {int((y0 == cls).sum()):,} test examples of it, pooled")
        ax.title.set_fontsize(9)
    for k in range(len(classes), rows * cols):
        axes[k // cols][k % cols].axis("off")
    _legend_outside(axes[0][cols - 1])
    fig.suptitle("Precision–recall on test, pooled over seeds (dotted: the class's share)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def reliability(results: Sequence[RunResult], path: Path, bins: int = 10, unit: str = "rows") -> None:
    """Top-label confidence against accuracy (equal-width bins, test pooled over seeds), and each bin's count.

    ``unit`` names what is counted: ``"rows"`` of a table, ``"pixels"`` of masks.
    """
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for i, loss in enumerate(_losses(results)):
        y, p = _pooled(results, loss)
        conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
        index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
        counts = np.bincount(index, minlength=bins)
        xs = [conf[index == b].mean() for b in range(bins) if counts[b] >= 5]
        ys = [correct[index == b].mean() for b in range(bins) if counts[b] >= 5]
        ax.plot(xs, ys, marker="o", ms=3, label=loss, lw=1.2, color=f"C{i % 10}")
        shown = counts > 0
        axn.plot(centres[shown], counts[shown], marker="o", ms=3, lw=1, color=f"C{i % 10}")
    ax.set(ylabel="accuracy", title=f"Reliability (test, pooled over seeds; bins with ≥ 5 {unit})", xlim=(0, 1),
           ylim=(0, 1.02))
    axn.set(xlabel="top-label confidence", ylabel=f"{unit} per bin", yscale="log")
    _legend_outside(ax)
    fig.tight_layout()
    _save(fig, path)


def training_curves(results: Sequence[RunResult], path: Path, floor: float = 1e-6) -> None:
    """Validation AP and training loss against epochs (or rounds), at each loss's chosen learning rate, first seed.

    The training-loss panel is left out when no run measured its training loss (all NaN).
    """
    first = min(r.seed for r in results)
    runs = {loss: run for loss in _losses(results)
            if (run := next((r for r in results if r.loss == loss and r.seed == first and r.curve), None))}
    curves = {loss: tuple(np.asarray(v, dtype=float) for v in zip(*run.curve, strict=True))
              for loss, run in runs.items()}
    measured = any(np.isfinite(train).any() for _, _, train in curves.values())
    units = {run.unit for run in runs.values()}
    unit = units.pop() if len(units) == 1 else "epoch or round"
    fig, axes = plt.subplots(1, 2 if measured else 1, figsize=(12 if measured else 7.5, 4.5), squeeze=False)
    ax1 = axes[0][0]
    clipped = False
    colours = {loss: f"C{i % 10}" for i, loss in enumerate(_losses(results))}
    for loss, (steps, ap, train) in curves.items():
        ax1.plot(steps, ap, label=loss, lw=1.2, color=colours[loss])
        if measured:
            clipped |= bool((train < floor).any())
            axes[0][1].plot(steps, np.maximum(train, floor), label=loss, lw=1.2, color=colours[loss])
    ax1.set(xlabel=unit, ylabel="validation AP", title=f"Validation AP (seed {first})")
    if measured:
        ax2 = axes[0][1]
        note = f" (values below {floor:g} drawn at {floor:g})" if clipped else ""
        ax2.set(xlabel=unit, ylabel="training loss", yscale="log",
                title="Training loss (log axis; the losses' scales differ)" + note)
        ax2.title.set_fontsize(9)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    _legend_outside(axes[0][-1])
    fig.tight_layout()
    _save(fig, path)


def grad_norm_histograms(results: Sequence[RunResult], path: Path) -> None:
    """GHM-C runs: the histogram of g = |p − y| on the training set as training goes on, one panel per epoch."""
    runs = [r for r in results if r.grad_norm_hist]
    run = min(runs, key=lambda r: r.seed)
    snapshots = run.grad_norm_hist
    picks = sorted({0, len(snapshots) // 3, 2 * len(snapshots) // 3, len(snapshots) - 1})
    fig, axes = plt.subplots(1, len(picks), figsize=(3.0 * len(picks) + 0.5, 3.4), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], picks, strict=True):
        epoch, counts = snapshots[k]
        counts = np.asarray(counts, dtype=float)
        width = 1.0 / len(counts)
        centres = (np.arange(len(counts)) + 0.5) * width
        full = counts > 0  # empty bins are not drawn (a log axis has no 0)
        ax.bar(centres[full], counts[full], width=0.9 * width, color="tab:blue")
        ax.set(xlabel="g = |p − y|", yscale="log", xlim=(0, 1), title=f"epoch {epoch}")
    axes[0][0].set_ylabel("training examples")
    fig.suptitle(f"GHM-C: gradient-norm density during training ({run.loss}, seed {run.seed}; empty bins not drawn)",
                 fontsize=10)
    fig.tight_layout()
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


def successor_weights(path: Path) -> None:
    """What each loss does to cross-entropy, ``ℓ / BCE`` against the model's ``p``, for a positive (left) and
    a negative (right): focal loss, ASL (the paper's γ₊ = 0, γ₋ = 4, clip 0.05) and poly-1 (ε = 1, and −1)."""
    p = torch.linspace(0.001, 0.999, 500, dtype=torch.float64)
    x = torch.logit(p)
    curves = [("focal γ=2", fk.sigmoid_focal_loss, {"alpha": None, "gamma": 2.0}),
              ("ASL γ₊=0 γ₋=4 clip 0.05", fk.asymmetric_loss, {}),
              ("ASL γ₊=1 γ₋=4 clip 0.05", fk.asymmetric_loss, {"gamma_pos": 1.0}),
              ("poly-1 ε=1", fk.poly1_focal_loss, {"alpha": None, "gamma": 0.0, "epsilon": 1.0}),
              ("poly-1 ε=−1", fk.poly1_focal_loss, {"alpha": None, "gamma": 0.0, "epsilon": -1.0})]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, label, title in [(axes[0], 1.0, "a positive (y = 1)"), (axes[1], 0.0, "a negative (y = 0)")]:
        y = torch.full_like(x, label)
        bce = fk.binary_cross_entropy(x, y, reduction="none")
        for name, fn, opts in curves:
            ax.plot(p, fn(x, y, reduction="none", **opts) / bce, label=name)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="model's p = σ(x)", title=title, ylim=(0, 2))
    axes[0].set_ylabel("loss / cross-entropy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(curves), fontsize=8)
    fig.suptitle("ASL keeps cross-entropy for positives and silences easy negatives; poly-1 (ε > 0) "
                 "keeps pushing where p_t → 1")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, path)


def all_curves(folder: Path) -> list[Path]:
    paths = [folder / "curve_loss_vs_pt.png", folder / "curve_weights_k_vs_gamma.png",
             folder / "curve_gradients.png", folder / "curve_ghm_weights.png",
             folder / "curve_asl_poly_weights.png"]
    loss_vs_pt(paths[0])
    weight_curves(paths[1])
    gradient_curves(paths[2])
    ghm_weights(paths[3])
    successor_weights(paths[4])
    return paths
