"""What a comparison produces: one :class:`RunResult` per (loss, seed), and the :class:`Summary`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import LOWER_IS_BETTER, METRICS
from .stats import compare_paired

__all__ = ["PRIMARY", "RunResult", "Summary", "summarize"]

PRIMARY = "ap"


@dataclass
class RunResult:
    """One loss on one seed, at the learning rate chosen on validation AP."""

    dataset: str
    loss: str
    seed: int
    lr: float
    epoch: int
    val_ap: float
    metrics: dict[str, float]
    seconds: float
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (epoch, val AP, train loss), chosen lr
    unit: str = "epoch"  # what the curve's first column counts (boosted trees: "round")
    test_labels: np.ndarray | None = None
    test_probs: np.ndarray | None = None
    grad_norm_hist: list[tuple[int, list[float]]] = field(default_factory=list)  # GHM-C runs: (epoch, counts)
    epochs_to_target: dict[float, int] = field(default_factory=dict)
    val_ap_by_lr: dict[float, float] = field(default_factory=dict)
    threshold: float | None = None
    budget: int | None = None  # the most epochs (or rounds) the fit allowed, if it said
    constant: bool = False  # the model's test probabilities do not vary: it learned nothing


@dataclass
class Summary:
    """The comparison: per-loss means, the paired comparisons with the baseline, and every run.

    ``comparisons`` holds one dict per loss other than the baseline, with ``loss``, ``n``,
    ``mean_diff``, ``ci_low``, ``ci_high``, ``level``, ``p_value``, ``p_holm``, ``verdict`` and
    ``reason`` (the same dicts as ``summary.json``).
    """

    dataset: str
    baseline: str
    margin: float
    seeds: list[int]
    metrics: dict[str, dict[str, dict[str, float]]]
    comparisons: list[dict[str, Any]]
    interval: str = "t"
    adjust: str = "none"
    level: float = 0.95
    primary_metric: str = PRIMARY
    metric_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    task: str = ""
    warnings: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """``summary.json``'s content (without the per-run results)."""
        return {"dataset": self.dataset, "task": self.task, "baseline": self.baseline,
                "primary_metric": self.primary_metric, "margin": self.margin, "seeds": self.seeds,
                "interval": self.interval, "adjust": self.adjust, "level": self.level,
                "interval_method": interval_words(self), "metric_names": self.metric_names, "notes": self.notes,
                "warnings": self.warnings, "class_names": self.class_names, "metrics": self.metrics,
                "comparisons": self.comparisons}

    def verdict(self, loss: str) -> str:
        return next(c["verdict"] for c in self.comparisons if c["loss"] == loss)


def interval_words(summary: Summary) -> str:
    method = ("paired t interval over seeds (independent resplits)" if summary.interval == "t" else
              "Nadeau-Bengio corrected resampled t interval (s·√(1/n + n_test/n_train))")
    level = f"{100 * (1 - (1 - summary.level) / max(len(summary.comparisons), 1)):.4g} % each (Bonferroni: " \
            f"{summary.level:.0%} for all {len(summary.comparisons)} together)" if summary.adjust == "bonferroni" \
        else f"{summary.level:.0%} for each comparison (not adjusted for their number)"
    return f"{method}, {level}"


def summarize(results: Sequence[RunResult], baseline: str, margin: float, *, interval: str = "t",
              adjust: str = "none", level: float = 0.95, test_train_ratio: float = 1 / 3, task: str = "",
              notes: Sequence[str] = (), class_names: Sequence[str] | None = None) -> Summary:
    """Per loss: mean ± sd of every metric; per loss ≠ baseline: the paired comparison on AP."""
    losses = list(dict.fromkeys(r.loss for r in results))
    seeds = sorted({r.seed for r in results})
    present = {m for r in results for m in r.metrics}
    names = [m for m in METRICS if m in present]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for loss in losses:
        rows = [r for r in results if r.loss == loss]
        table[loss] = {m: _mean_sd([r.metrics.get(m, float("nan")) for r in rows]) for m in names}
        table[loss]["chosen_lr"] = {"median": float(np.median([r.lr for r in rows]))}
        table[loss]["chosen_epoch"] = {"median": float(np.median([r.epoch for r in rows]))}
    by_key = {(r.loss, r.seed): r.metrics[PRIMARY] for r in results}
    scores = {loss: np.array([by_key[(loss, s)] for s in seeds]) for loss in losses}
    comparisons = compare_paired(scores, baseline, margin=margin, higher_is_better=PRIMARY not in LOWER_IS_BETTER,
                                 level=level, interval=interval, adjust=adjust, test_train_ratio=test_train_ratio)
    warnings = []
    for loss in losses:
        rows = [r for r in results if r.loss == loss]
        flat = [r.seed for r in rows if r.constant]
        if flat:
            warnings.append(f"{loss}: the model's test predictions are constant on {len(flat)} of {len(rows)} seeds "
                            "(it learned nothing there; its scores are those of a constant model)")
        capped = [r.seed for r in rows if r.budget and r.epoch >= r.budget]
        if len(capped) * 2 > len(rows):
            warnings.append(f"{loss}: the best epoch (or round) was the last allowed on {len(capped)} of {len(rows)} "
                            "seeds; a larger budget (--epochs) might change its result")
    num_classes = results[0].test_probs.shape[1] if results and results[0].test_probs is not None else None
    names_given = list(class_names) if class_names is not None else (
        [str(k) for k in range(num_classes)] if num_classes else [])
    return Summary(dataset=results[0].dataset if results else "", baseline=baseline, margin=margin, seeds=seeds,
                   metrics=table, comparisons=[c.as_dict() for c in comparisons], interval=interval, adjust=adjust,
                   level=level, metric_names=names, notes=list(notes), task=task, warnings=warnings,
                   class_names=names_given, results=list(results))


def _mean_sd(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
