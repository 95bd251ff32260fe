"""Paired statistics over replicates: can a loss be told apart from the baseline, and by how much?

A replicate is one seed: a fresh stratified 60/20/20 resplit of the data and a fresh
initialisation, shared by every loss (so the losses are paired). For each loss and the primary
metric the paired differences ``d_s = m_loss(s) − m_base(s)`` give

- the mean difference and a **t interval** ``d̄ ± t_{n−1, 1−a/2} · s_d / √n`` at level 95 %
  (``interval="t"``): the interval for the mean difference *over resplits and initialisations of
  this data set*; the replicates are then independent draws, and the interval is exact for
  normal differences (its coverage is tested by simulation in the suite, for normal and skewed
  differences);
- or, with ``interval="corrected"``, Nadeau & Bengio's (2003) corrected resampled t,
  ``s_d · √(1/n + n_test/n_train)``: wider, an approximate interval for a *new data set of the same
  size* from the same source (the resplits share most of their training rows, which the plain t
  ignores for that question);
- with ``adjust="bonferroni"`` every interval is at level ``1 − 0.05/m`` for ``m`` comparisons, so
  that all hold together (simultaneous); the printed interval is then that adjusted one;
- a paired t-test p-value and its Holm-adjusted value across the ``m`` comparisons (information:
  the verdicts read the interval only).

The verdict reads the printed interval against the margin ``δ`` stated before the run:

- **better**: the whole interval above ``+δ``; **worse**: the whole interval below ``−δ``
  (for a metric where lower is better, the other way round);
- **no effect**: the whole interval inside ``[−δ, +δ]``;
- **inconclusive**: anything else (the data do not decide at this margin);
- **no verdict**: fewer than :data:`MIN_REPLICATES` replicates (no interval is given).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "INTERVALS",
    "MIN_REPLICATES",
    "Comparison",
    "compare_paired",
    "holm",
    "mean_interval",
    "paired_t_p",
    "verdict",
]

MIN_REPLICATES = 3
INTERVALS = ("t", "corrected")
ADJUSTMENTS = ("none", "bonferroni")


@dataclass
class Comparison:
    loss: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    level: float
    p_value: float
    p_holm: float
    verdict: str
    reason: str

    def as_dict(self) -> dict[str, float | str | int | None]:
        """JSON-ready: NaN (no interval) becomes ``None``."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def mean_interval(diffs: np.ndarray, *, level: float = 0.95, interval: str = "t",
                  test_train_ratio: float = 1 / 3) -> tuple[float, float]:
    """The interval of the mean of ``diffs`` (see the module docstring); NaN with fewer than 2 values."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}; got {interval!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}.")
    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n < 2:
        return float("nan"), float("nan")
    sd = float(d.std(ddof=1))
    factor = 1 / n + (test_train_ratio if interval == "corrected" else 0.0)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd * math.sqrt(factor)
    mean = float(d.mean())
    return mean - half, mean + half


def paired_t_p(diffs: np.ndarray, *, interval: str = "t", test_train_ratio: float = 1 / 3) -> float:
    """Two-sided p-value of mean difference 0, with the same standard error as :func:`mean_interval`."""
    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n < 2:
        return float("nan")
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    factor = 1 / n + (test_train_ratio if interval == "corrected" else 0.0)
    t = mean / (sd * math.sqrt(factor))
    return float(2 * sps.t.sf(abs(t), n - 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (monotone, capped at 1); NaN stays NaN."""
    values = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    adjusted = np.full(len(values), np.nan)
    m = len(finite)
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(values[finite])]):
        running = max(running, (m - rank) * values[i])
        adjusted[i] = min(running, 1.0)
    return adjusted.tolist()


def verdict(ci_low: float, ci_high: float, margin: float, *, n: int,
            higher_is_better: bool = True) -> tuple[str, str]:
    """``(verdict, reason)`` from the printed interval and the margin (see the module docstring)."""
    if margin <= 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a positive number; got {margin}.")
    if n < MIN_REPLICATES or not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "no verdict", f"{n} replicate(s): at least {MIN_REPLICATES} are needed for an interval and a verdict"
    if ci_low > margin:
        side = "better" if higher_is_better else "worse"
        return side, f"the whole interval lies above +{margin:g}"
    if ci_high < -margin:
        side = "worse" if higher_is_better else "better"
        return side, f"the whole interval lies below −{margin:g}"
    if -margin <= ci_low and ci_high <= margin:
        return "no effect", f"the whole interval lies inside ±{margin:g}"
    if ci_low > 0 or ci_high < 0:
        return "inconclusive", f"the interval excludes 0 but reaches inside ±{margin:g}"
    return "inconclusive", f"the interval straddles the margin ±{margin:g}"


def compare_paired(scores: dict[str, np.ndarray], baseline: str, *, margin: float, higher_is_better: bool = True,
                   level: float = 0.95, interval: str = "t", adjust: str = "none",
                   test_train_ratio: float = 1 / 3) -> list[Comparison]:
    """Compare each loss's per-replicate scores (same replicate order) with the baseline's."""
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {ADJUSTMENTS}; got {adjust!r}.")
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not among the scores {list(scores)}.")
    verdict(0.0, 0.0, margin, n=MIN_REPLICATES)  # the margin's check, before anything else
    base = np.asarray(scores[baseline], dtype=np.float64)
    others = [name for name in scores if name != baseline]
    diffs = {name: np.asarray(scores[name], dtype=np.float64) - base for name in others}
    raw = [paired_t_p(diffs[name], interval=interval, test_train_ratio=test_train_ratio) for name in others]
    adjusted = holm(raw) if raw else []
    each = 1 - (1 - level) / len(others) if adjust == "bonferroni" and others else level
    out = []
    for name, p, p_adj in zip(others, raw, adjusted, strict=True):
        d = diffs[name]
        low, high = mean_interval(d, level=each, interval=interval, test_train_ratio=test_train_ratio)
        if len(d) < MIN_REPLICATES:  # an interval from 2 replicates is not worth printing
            low = high = float("nan")
        word, reason = verdict(low, high, margin, n=len(d), higher_is_better=higher_is_better)
        out.append(Comparison(name, len(d), float(d.mean()) if len(d) else float("nan"), low, high, each, p, p_adj,
                              word, reason))
    return out
