"""The source articles' claims, each run as an experiment with a verdict and its evidence.

1. Hard truncation needs many more iterations than its softened form (seed 000).
2. Focal loss and GHM-C help where classes are imbalanced (seeds 000, 001, 003).
3. GHM-C resists outliers (label noise) that focal loss chases (seed 003).
4. K of the softened loss and γ of focal loss play the same role (seed 000).

Verdicts: *supported*, *contradicted*, or *not shown* (the experiment could not tell). They
hold for this data, model and budget only; the report says which.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from .experiment import prepare, run_prepared
from .losses import parse_spec
from .report import atomic_report_dir, format_value, run_metadata
from .stats import mean_interval, paired_t_p

__all__ = ["CLAIMS", "ClaimResult", "k_for_gamma", "run_claims"]


@dataclass
class ClaimResult:
    number: int
    claim: str
    verdict: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _verdict_from(comparison_verdict: str, *, supported_if: str) -> str:
    if comparison_verdict == supported_if:
        return "supported"
    opposite = {"better": "worse", "worse": "better"}[supported_if]
    return "contradicted" if comparison_verdict in {opposite, "no effect"} else "not shown"


def _table_options(args: argparse.Namespace) -> argparse.Namespace:
    """The claims train neural models on tables (epochs are their currency): mlp unless --model linear."""
    model = getattr(args, "model", None)
    if model not in (None, "mlp", "linear"):
        from .data import DataError

        raise DataError(f"--model: the claims train mlp or linear models (epochs are their evidence); got {model!r}.")
    return argparse.Namespace(**{**vars(args), "model": model or "mlp"})


def claim_speed(args: argparse.Namespace, console: Console) -> ClaimResult:
    """Epochs until validation AP first reaches a target, hard vs softened, one fixed learning rate."""
    options = _table_options(args)
    targets = (0.80, 0.90)
    prepared = prepare(options, data_spec="digits:8@1:20", patience=10**9, eval_every=1, keep_curves=False,
                       targets=targets)
    lr = (args.lrs or (3e-3,))[0]
    prepared.lrs = (lr,)
    epochs = prepared.fit.protocol.max_epochs
    summary = run_prepared(prepared, ["hard", "soft"], baseline="hard", jobs=args.jobs, console=console,
                           description="claim 1: speed", keep=False)
    results = summary.results
    evidence: dict[str, Any] = {"data": prepared.data.name, "lr": lr, "max_epochs": epochs, "targets": targets}
    missing = epochs + 1  # a target never reached counts as one epoch past the budget
    verdicts = []
    for target in targets:
        hard = np.array([r.epochs_to_target.get(target, missing) for r in results if r.loss == "hard"])
        soft = np.array([r.epochs_to_target.get(target, missing) for r in results if r.loss == "soft"])
        diff = hard - soft
        low, high = mean_interval(diff)
        p = paired_t_p(diff)
        evidence[f"val AP >= {target}"] = {"hard_epochs": hard.tolist(), "soft_epochs": soft.tolist(),
                                          "mean_extra_epochs_for_hard": float(diff.mean()), "ci95": [low, high],
                                          "t_test_p": p}
        verdicts.append("supported" if low > 0 else "contradicted" if high < 0 else "not shown")
    verdict = "supported" if all(v == "supported" for v in verdicts) else (
        "contradicted" if "contradicted" in verdicts else "not shown")
    first = evidence[f"val AP >= {targets[-1]}"]
    summary_text = (f"to reach validation AP {targets[-1]}, hard truncation took {np.median(first['hard_epochs']):.0f} "
                    f"epochs (median) against {np.median(first['soft_epochs']):.0f} for the softened loss; "
                    f"extra epochs {first['mean_extra_epochs_for_hard']:+.1f} [{first['ci95'][0]:+.1f}, "
                    f"{first['ci95'][1]:+.1f}], p = {first['t_test_p']:.3f}")
    return ClaimResult(1, "Hard truncation needs many more iterations than its softened form", verdict, summary_text,
                       evidence)


def claim_imbalance(args: argparse.Namespace, console: Console) -> ClaimResult:
    """Focal loss and GHM-C against CE on test AP: tables at a mild and a strong imbalance, and dense scenes."""
    evidence: dict[str, Any] = {}
    verdicts = []
    options = _table_options(args)
    for spec, model in (("digits:8@1:10", options.model), ("digits:8@1:50", options.model), ("scenes", "fcn")):
        prepared = prepare(options, data_spec=spec, model=model)
        summary = run_prepared(prepared, ["ce", "focal", "ghmc"], baseline="ce", margin=0.01, jobs=args.jobs,
                               console=console, description=f"claim 2: {spec}", keep=False)
        evidence[prepared.data.name] = {c["loss"]: c for c in summary.comparisons}
        verdicts += [_verdict_from(c["verdict"], supported_if="better") for c in summary.comparisons]
    # supported: some comparison better and none equivalent or worse; contradicted: most of them
    # equivalent or worse; anything else is not shown
    if "supported" in verdicts and "contradicted" not in verdicts:
        verdict = "supported"
    elif verdicts.count("contradicted") > len(verdicts) / 2:
        verdict = "contradicted"
    else:
        verdict = "not shown"
    parts = [f"{name}: " + ", ".join(f"{loss} {c['mean_diff']:+.3f} AP ({c['verdict']})" for loss, c in comp.items())
             for name, comp in evidence.items()]
    return ClaimResult(2, "Focal loss and GHM-C help where classes are imbalanced", verdict, "; ".join(parts),
                       evidence)


def claim_noise(args: argparse.Namespace, console: Console) -> ClaimResult:
    """GHM-C against focal loss with 20% of the training labels flipped (test labels clean)."""
    options = _table_options(args)
    evidence: dict[str, Any] = {"data": "digits:8@1:10"}
    diffs = {}
    for noise in (0.0, 0.2):
        prepared = prepare(options, data_spec="digits:8@1:10", noise=noise)
        summary = run_prepared(prepared, ["focal", "ghmc"], baseline="focal", margin=0.01, jobs=args.jobs,
                               console=console, description=f"claim 3: noise {noise:.0%}", keep=False)
        evidence[f"noise {noise:.0%}"] = summary.comparisons[0]
        ap = {loss: np.array([r.metrics["ap"] for r in summary.results if r.loss == loss])
              for loss in ("focal", "ghmc")}
        diffs[noise] = ap["ghmc"] - ap["focal"]
    noisy = evidence["noise 20%"]
    verdict = _verdict_from(noisy["verdict"], supported_if="better")
    gain = diffs[0.2] - diffs[0.0]  # does GHM-C's edge over focal grow with noise?
    low, high = mean_interval(gain)
    evidence["noise makes GHM-C gain"] = {"mean": float(gain.mean()), "ci95": [low, high], "t_test_p": paired_t_p(gain)}
    summary_text = (f"with 20% flipped training labels, GHM-C − focal = {noisy['mean_diff']:+.3f} AP "
                    f"[{format_value(noisy['ci_low'])}, {format_value(noisy['ci_high'])}] ({noisy['verdict']}); clean: "
                    f"{evidence['noise 0%']['mean_diff']:+.3f}; change with noise {gain.mean():+.3f} "
                    f"[{low:+.3f}, {high:+.3f}]")
    return ClaimResult(3, "GHM-C resists outliers (label noise) that focal loss chases", verdict, summary_text,
                       evidence)


def k_for_gamma(gamma: float, *, p_easy: float = 0.9) -> tuple[float, float]:
    """The K whose softened weight σ(−Kx) equals focal's σ(−x)^γ for an easy positive (p = ``p_easy``),
    and the largest gap between the two weight curves on the easy side (x ≥ 0).

    Closed form: ``K = logit(1 − (1 − p)^γ) / logit(p)``. Both weights down-weight easy examples
    and tend to 1 on hard ones; for large x they decay as ``e^{−Kx}`` and ``e^{−γx}``.
    """
    p = torch.tensor(p_easy, dtype=torch.float64)
    k = float(torch.logit(1 - (1 - p) ** gamma) / torch.logit(p))
    x = torch.linspace(0, 10, 1001, dtype=torch.float64)
    gap = float((torch.sigmoid(-k * x) - torch.sigmoid(-x) ** gamma).abs().max())
    return k, gap


def claim_k_gamma(args: argparse.Namespace, console: Console) -> ClaimResult:
    """Match K to γ on an easy example, then train both: equal test AP within the margin supports the claim."""
    gammas = [0.5, 1.0, 2.0, 3.0, 4.0]
    fits = {g: k_for_gamma(g) for g in gammas}
    k2 = fits[2.0][0]
    prepared = prepare(_table_options(args), data_spec="digits:8@1:20")
    specs = [parse_spec("focal:gamma=2,alpha=none"), parse_spec(f"soft:k={k2:.3f}")]
    summary = run_prepared(prepared, specs, baseline=str(specs[0]), margin=0.01, jobs=args.jobs, console=console,
                           description="claim 4: K vs gamma", keep=False)
    comp = summary.comparisons[0]
    evidence = {"best_k_per_gamma": {str(g): {"k": k, "rms_gap": gap} for g, (k, gap) in fits.items()},
                "matched_at": "p = 0.9", "data": prepared.data.name, "soft_vs_focal": comp}
    verdict = {"no effect": "supported", "better": "contradicted", "worse": "contradicted"}.get(comp["verdict"],
                                                                                               "not shown")
    text = ("K matching γ at p = 0.9: " + ", ".join(f"{g:g}→{fits[g][0]:.2f}" for g in gammas)
            + f" (largest weight gap on easy examples {max(v[1] for v in fits.values()):.3f}); trained, softened "
            f"K={k2:.2f} − focal γ=2 = {format_value(comp['mean_diff'])} AP [{format_value(comp['ci_low'])}, "
            f"{format_value(comp['ci_high'])}] ({comp['verdict']})")
    return ClaimResult(4, "K of the softened loss and γ of focal loss play the same role", verdict, text, evidence)


CLAIMS = [claim_speed, claim_imbalance, claim_noise, claim_k_gamma]


def run_claims(args: argparse.Namespace) -> int:
    import sys

    console = Console(width=None if sys.stdout.isatty() else 120)
    results = []
    for claim in CLAIMS:
        results.append(claim(args, console))
    table = Table(title="The articles' claims, tested here (this data, model and budget only)")
    for name in ("#", "claim", "verdict", "evidence"):
        table.add_column(name, overflow="fold")
    colours = {"supported": "green", "contradicted": "red"}
    for r in results:
        table.add_row(str(r.number), r.claim, f"[{colours.get(r.verdict.split()[0], 'yellow')}]{r.verdict}[/]",
                      r.summary)
    console.print(table)
    meta = run_metadata({k: str(v) for k, v in vars(args).items()})
    with atomic_report_dir(args.out) as folder:
        (folder / "claims.json").write_text(json.dumps({"claims": [asdict(r) for r in results], **meta}, indent=2,
                                                       default=str))
        lines = ["# focalkit claims", "", "| # | claim | verdict | evidence |", "|---|---|---|---|"]
        lines += [f"| {r.number} | {r.claim} | {r.verdict} | {r.summary} |" for r in results]
        lines += ["", "Verdicts hold for this data, model and budget only. Evidence in claims.json.", ""]
        (folder / "claims.md").write_text("\n".join(lines))
    console.print(f"report: {args.out}/ (claims.md, claims.json)")
    return 0

