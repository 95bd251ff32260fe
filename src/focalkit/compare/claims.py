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

from .data import load_dataset
from .losses import parse_spec
from .report import atomic_report_dir, run_metadata
from .runner import run_grid
from .stats import bootstrap_ci, compare_paired, wilcoxon_p

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


def claim_speed(args: argparse.Namespace, console: Console) -> ClaimResult:
    """Epochs until validation AP first reaches a target, hard vs softened, one fixed learning rate."""
    from ..cli import protocol_from, seeds_from

    data = load_dataset("digits:8@1:20")
    epochs = args.epochs or (60 if args.quick else 150)
    lr = (args.lrs or (3e-3,))[0]
    protocol = protocol_from(args, lrs=(lr,), patience=10**9, eval_every=1, keep_curves=False)
    seeds = seeds_from(args)
    targets = (0.80, 0.90)
    results = run_grid(data, [parse_spec("hard"), parse_spec("soft")], seeds, protocol, jobs=args.jobs,
                       console=console, description="claim 1: speed", targets=targets)
    evidence: dict[str, Any] = {"data": data.name, "lr": lr, "max_epochs": epochs, "targets": targets}
    missing = epochs + 1  # a target never reached counts as one epoch past the budget
    verdicts = []
    for target in targets:
        hard = np.array([r.epochs_to_target.get(target, missing) for r in results if r.loss == "hard"])
        soft = np.array([r.epochs_to_target.get(target, missing) for r in results if r.loss == "soft"])
        diff = hard - soft
        low, high = bootstrap_ci(diff)
        p = wilcoxon_p(diff)
        evidence[f"val AP >= {target}"] = {"hard_epochs": hard.tolist(), "soft_epochs": soft.tolist(),
                                          "mean_extra_epochs_for_hard": float(diff.mean()), "ci95": [low, high],
                                          "wilcoxon_p": p}
        verdicts.append("supported" if low > 0 and p < 0.05 else "contradicted" if high < 0 and p < 0.05
                        else "not shown")
    verdict = "supported" if all(v == "supported" for v in verdicts) else (
        "contradicted" if "contradicted" in verdicts else "not shown")
    first = evidence[f"val AP >= {targets[-1]}"]
    summary = (f"to reach validation AP {targets[-1]}, hard truncation took {np.median(first['hard_epochs']):.0f} "
               f"epochs (median) against {np.median(first['soft_epochs']):.0f} for the softened loss; "
               f"extra epochs {first['mean_extra_epochs_for_hard']:+.1f} [{first['ci95'][0]:+.1f}, "
               f"{first['ci95'][1]:+.1f}], p = {first['wilcoxon_p']:.3f}")
    return ClaimResult(1, "Hard truncation needs many more iterations than its softened form", verdict, summary,
                       evidence)


def claim_imbalance(args: argparse.Namespace, console: Console) -> ClaimResult:
    """Focal loss and GHM-C against CE on test AP, at a mild and a strong imbalance."""
    from ..cli import protocol_from, seeds_from

    evidence: dict[str, Any] = {}
    verdicts = []
    seeds = seeds_from(args)
    specs = [parse_spec("ce"), parse_spec("focal"), parse_spec("ghmc")]
    for ratio in (10, 50):
        data = load_dataset(f"digits:8@1:{ratio}")
        results = run_grid(data, specs, seeds, protocol_from(args), jobs=args.jobs, console=console,
                           description=f"claim 2: 1:{ratio}")
        scores = {s: np.array([r.metrics["ap"] for r in results if r.loss == s]) for s in ("ce", "focal", "ghmc")}
        comps = compare_paired(scores, "ce", margin=0.01)
        evidence[data.name] = {c.loss: c.as_dict() for c in comps}
        verdicts += [_verdict_from(c.verdict, supported_if="better") for c in comps]
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
    from ..cli import protocol_from, seeds_from

    data = load_dataset("digits:8@1:10")
    seeds = seeds_from(args)
    evidence: dict[str, Any] = {"data": data.name}
    specs = [parse_spec("focal"), parse_spec("ghmc")]
    diffs = {}
    for noise in (0.0, 0.2):
        results = run_grid(data, specs, seeds, protocol_from(args, noise=noise), jobs=args.jobs, console=console,
                           description=f"claim 3: noise {noise:.0%}")
        scores = {s: np.array([r.metrics["ap"] for r in results if r.loss == s]) for s in ("focal", "ghmc")}
        comp = compare_paired(scores, "focal", margin=0.01)[0]
        evidence[f"noise {noise:.0%}"] = comp.as_dict()
        diffs[noise] = scores["ghmc"] - scores["focal"]
    noisy = evidence["noise 20%"]
    verdict = _verdict_from(noisy["verdict"], supported_if="better")
    gain = diffs[0.2] - diffs[0.0]  # does GHM-C's edge over focal grow with noise?
    low, high = bootstrap_ci(gain)
    evidence["noise makes GHM-C gain"] = {"mean": float(gain.mean()), "ci95": [low, high], "wilcoxon_p":
                                         wilcoxon_p(gain)}
    summary = (f"with 20% flipped training labels, GHM-C − focal = {noisy['mean_diff']:+.3f} AP "
               f"[{noisy['ci_low']:+.3f}, {noisy['ci_high']:+.3f}] ({noisy['verdict']}); clean: "
               f"{evidence['noise 0%']['mean_diff']:+.3f}; change with noise {gain.mean():+.3f} "
               f"[{low:+.3f}, {high:+.3f}]")
    return ClaimResult(3, "GHM-C resists outliers (label noise) that focal loss chases", verdict, summary, evidence)


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
    from ..cli import protocol_from, seeds_from

    gammas = [0.5, 1.0, 2.0, 3.0, 4.0]
    fits = {g: k_for_gamma(g) for g in gammas}
    k2 = fits[2.0][0]
    data = load_dataset("digits:8@1:20")
    specs = [parse_spec("focal:gamma=2,alpha=none"), parse_spec(f"soft:k={k2:.3f}")]
    results = run_grid(data, specs, seeds_from(args), protocol_from(args), jobs=args.jobs, console=console,
                       description="claim 4: K vs gamma")
    scores = {str(s): np.array([r.metrics["ap"] for r in results if r.loss == str(s)]) for s in specs}
    comp = compare_paired(scores, str(specs[0]), margin=0.01)[0]
    evidence = {"best_k_per_gamma": {str(g): {"k": k, "rms_gap": gap} for g, (k, gap) in fits.items()},
                "matched_at": "p = 0.9", "data": data.name, "soft_vs_focal": comp.as_dict()}
    verdict = {"no effect": "supported", "better": "contradicted", "worse": "contradicted"}.get(comp.verdict,
                                                                                            "not shown")
    summary = ("K matching γ at p = 0.9: " + ", ".join(f"{g:g}→{fits[g][0]:.2f}" for g in gammas)
               + f" (largest weight gap on easy examples {max(v[1] for v in fits.values()):.3f}); trained, softened "
               f"K={k2:.2f} − focal γ=2 = {comp.mean_diff:+.3f} AP [{comp.ci_low:+.3f}, {comp.ci_high:+.3f}] "
               f"({comp.verdict})")
    return ClaimResult(4, "K of the softened loss and γ of focal loss play the same role", verdict, summary, evidence)


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

