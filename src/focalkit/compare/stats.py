"""Paired statistics over seeds: can a loss be told apart from the baseline, and by how much?

For each loss and the primary metric: the paired differences ``d_s = m_loss(s) − m_base(s)``
over seeds ``s``, their mean and a percentile-bootstrap 95% interval, a two-sided Wilcoxon
signed-rank p-value, Holm-corrected across the losses compared, and a verdict against a margin
``δ`` stated up front:

- **better** / **worse**: the interval excludes 0 on that side and the Holm-adjusted p < 0.05;
- **no effect**: the whole interval lies inside ``[−δ, δ]`` (equivalent within the margin);
- **inconclusive**: anything else (too much spread to say), and always with fewer than 5 seeds,
  where a bootstrap interval is too narrow to trust.

With ``n`` seeds the smallest two-sided Wilcoxon p is ``2 / 2ⁿ``: 5 seeds can never reach
0.05, which is why the default runs 10.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

__all__ = ["Comparison", "bootstrap_ci", "compare_paired", "holm", "verdict"]


@dataclass
class Comparison:
    loss: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    verdict: str

    def as_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def bootstrap_ci(
    diffs: np.ndarray, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs``."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(diffs, size=(resamples, len(diffs)), replace=True).mean(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def wilcoxon_p(diffs: np.ndarray) -> float:
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) == 0 or np.allclose(diffs, 0.0):
        return 1.0
    return float(sps.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (monotone, capped at 1)."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p_values[i])
        adjusted[i] = min(running, 1.0)
    return adjusted.tolist()


MIN_SEEDS = 5


def verdict(ci_low: float, ci_high: float, p_holm: float, margin: float, *, n: int, alpha: float = 0.05,
            higher_is_better: bool = True) -> str:
    if n < MIN_SEEDS or not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "inconclusive"
    if ci_low > 0 and p_holm < alpha:
        return "better" if higher_is_better else "worse"
    if ci_high < 0 and p_holm < alpha:
        return "worse" if higher_is_better else "better"
    if -margin <= ci_low and ci_high <= margin:
        return "no effect"
    return "inconclusive"


def compare_paired(scores: dict[str, np.ndarray], baseline: str, *, margin: float, higher_is_better: bool = True,
                   seed: int = 0) -> list[Comparison]:
    """Compare each loss's per-seed scores (same seed order) with the baseline's."""
    base = np.asarray(scores[baseline], dtype=float)
    others = [name for name in scores if name != baseline]
    diffs = {name: np.asarray(scores[name], dtype=float) - base for name in others}
    raw = [wilcoxon_p(diffs[name]) for name in others]
    adjusted = holm(raw) if raw else []
    out = []
    for name, p, p_adj in zip(others, raw, adjusted, strict=True):
        d = diffs[name]
        low, high = bootstrap_ci(d, seed=seed)
        out.append(Comparison(name, len(d), float(d.mean()), low, high, p, p_adj,
                              verdict(low, high, p_adj, margin, n=len(d), higher_is_better=higher_is_better)))
    return out
