"""The comparison's summary, terminal table, report folder and plots.

The folder is written into a temporary sibling and moved into place at the end, so an
interrupted run leaves no half-written report, and a rerun replaces the old one whole. Only a folder
focalkit wrote (marked with ``.focalkit-report``, holding nothing else) is ever replaced.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from .metrics import METRICS
from .stats import compare_paired
from .train import RunResult

__all__ = ["MARKER", "ReportDirError", "atomic_report_dir", "check_report_dir", "render_table", "summarize",
           "write_report"]

PRIMARY = "ap"


def summarize(results: Sequence[RunResult], baseline: str, margin: float) -> dict[str, Any]:
    """Per loss: mean ± sd of every metric; per loss ≠ baseline: the paired comparison on AP."""
    losses = list(dict.fromkeys(r.loss for r in results))
    seeds = sorted({r.seed for r in results})
    table: dict[str, dict[str, dict[str, float]]] = {}
    for loss in losses:
        rows = [r for r in results if r.loss == loss]
        table[loss] = {m: _mean_sd([r.metrics[m] for r in rows]) for m in METRICS}
        table[loss]["chosen_lr"] = {"median": float(np.median([r.lr for r in rows]))}
        table[loss]["chosen_epoch"] = {"median": float(np.median([r.epoch for r in rows]))}
    scores = {loss: np.array([_metric(results, loss, s, PRIMARY) for s in seeds]) for loss in losses}
    comparisons = compare_paired(scores, baseline, margin=margin) if baseline in scores else []
    return {
        "dataset": results[0].dataset if results else "",
        "baseline": baseline,
        "primary_metric": PRIMARY,
        "margin": margin,
        "seeds": seeds,
        "metrics": table,
        "comparisons": [c.as_dict() for c in comparisons],
    }


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def _metric(results: Sequence[RunResult], loss: str, seed: int, metric: str) -> float:
    return next(r.metrics[metric] for r in results if r.loss == loss and r.seed == seed)


def render_table(summary: dict[str, Any], console: Console) -> None:
    """Two tables that fit a terminal: the verdicts on the primary metric, then the other metrics."""
    comps = {c["loss"]: c for c in summary["comparisons"]}
    colours = {"better": "green", "worse": "red", "no effect": "yellow", "inconclusive": "dim"}
    main = Table(title=f"{summary['dataset']}: test AP over {len(summary['seeds'])} paired seeds; Δ vs "
                       f"{summary['baseline']} with bootstrap 95% CI, Wilcoxon p (Holm), margin ±{summary['margin']:g}")
    for name in ("loss", "AP mean ± sd", "Δ AP [95% CI]", "p (Holm)", "verdict"):
        main.add_column(name, no_wrap=True)
    for loss, stats in summary["metrics"].items():
        c = comps.get(loss)
        main.add_row(
            loss, f"{stats['ap']['mean']:.3f} ± {stats['ap']['sd']:.3f}",
            f"{c['mean_diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if c else "baseline",
            f"{c['p_value']:.3f} ({c['p_holm']:.3f})" if c else "",
            f"[{colours[c['verdict']]}]{c['verdict']}[/]" if c else "",
        )
    console.print(main)
    other = Table(title="other test metrics (means; ↓ lower is better)")
    other.add_column("loss", no_wrap=True)
    short = {"roc_auc": "ROC-AUC", "f1": "F1", "minority_recall": "min. recall", "brier": "Brier ↓",
             "log_loss": "log-loss ↓", "ece": "ECE ↓"}
    for m in METRICS[1:]:
        other.add_column(short[m], no_wrap=True, justify="right")
    for loss, stats in summary["metrics"].items():
        other.add_row(loss, *(f"{stats[m]['mean']:.3f}" for m in METRICS[1:]))
    console.print(other)


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    comps = {c["loss"]: c for c in summary["comparisons"]}
    lines = [f"# focalkit compare — {summary['dataset']}", "",
             f"Seeds: {summary['seeds']}. Primary metric: test average precision. Baseline: "
             f"`{summary['baseline']}`. Margin for 'no effect': ±{summary['margin']:g} AP.", "",
             "| loss | AP | Δ AP vs baseline [95% CI] | Wilcoxon p (Holm) | verdict | " +
             " | ".join(METRICS[1:]) + " |",
             "|---" * (5 + len(METRICS) - 1) + "|"]
    for loss, stats in summary["metrics"].items():
        c = comps.get(loss)
        diff = f"{c['mean_diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if c else "—"
        p = f"{c['p_value']:.3f} ({c['p_holm']:.3f})" if c else "—"
        cells = [f"{stats[m]['mean']:.3f} ± {stats[m]['sd']:.3f}" for m in METRICS]
        lines.append(f"| {loss} | {cells[0]} | {diff} | {p} | {c['verdict'] if c else 'baseline'} | "
                     + " | ".join(cells[1:]) + " |")
    verdicts = [c["verdict"] for c in summary["comparisons"]]
    lines += ["", "## What this says", "",
              _plain_words(summary, verdicts), "",
              "## Protocol", "",
              "Stratified 60/20/20 split per seed; features standardised on train; output bias at the class prior; "
              "each loss gets its own learning rate (grid) and stopping epoch, both chosen on validation AP; the "
              "test split is scored once. Verdicts: *better*/*worse* need the bootstrap interval to exclude 0 and "
              "Holm-adjusted Wilcoxon p < 0.05; *no effect* needs the whole interval inside the margin; otherwise "
              "*inconclusive*.", "",
              "## Run", "", "```json", json.dumps(meta, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def _plain_words(summary: dict[str, Any], verdicts: list[str]) -> str:
    comps = summary["comparisons"]
    better = [c["loss"] for c in comps if c["verdict"] == "better"]
    worse = [c["loss"] for c in comps if c["verdict"] == "worse"]
    same = [c["loss"] for c in comps if c["verdict"] == "no effect"]
    parts = []
    if better:
        parts.append(f"Better than {summary['baseline']} on test AP: {', '.join(better)}.")
    else:
        parts.append(f"No loss beat {summary['baseline']} on test AP with this data and this many seeds.")
    if worse:
        parts.append(f"Worse: {', '.join(worse)}.")
    if same:
        parts.append(f"Equivalent within ±{summary['margin']:g} AP: {', '.join(same)}.")
    undecided = len(verdicts) - len(better) - len(worse) - len(same)
    if undecided:
        parts.append(f"{undecided} comparison(s) inconclusive: the interval is wider than the margin; more seeds "
                     "or more data would be needed to decide.")
    return " ".join(parts)


MARKER = ".focalkit-report"  # written last into every report folder: the list of files focalkit wrote there


class ReportDirError(ValueError):
    """An ``--out`` that focalkit must not write to; the command line turns it into exit code 2."""


def check_report_dir(out: Path, flag: str = "--out") -> Path:
    """``out`` resolved, if focalkit may write its report there, else :class:`ReportDirError`.

    Allowed: a path that does not exist yet (its parent writable), an empty folder, or a previous
    focalkit report (marked by :data:`MARKER`) that holds nothing but the files focalkit wrote.
    Refused: a file, a folder with anything else in it, the current folder or one above it.
    Checked before any work starts, and again just before the folder is replaced.
    """
    path = Path(out).expanduser()
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ReportDirError(f"{flag}: {str(out)!r} is the current folder or one above it; give a new folder, "
                             "e.g. --out focalkit-report.")
    if resolved.exists() or resolved.is_symlink():
        if not resolved.is_dir():
            raise ReportDirError(f"{flag}: {str(out)!r} is a file, not a folder; focalkit does not replace files. "
                                 "Give a new folder name.")
        present = {str(p.relative_to(resolved)) for p in resolved.rglob("*")}  # subfolders' contents too
        if present:
            written = _written_files(resolved)
            if written is not None:  # with the folders that hold them
                written |= {str(parent) for f in written for parent in Path(f).parents if str(parent) != "."}
            if written is None:
                raise ReportDirError(f"{flag}: {str(out)!r} is a folder with files in it that is not a focalkit "
                                     "report; focalkit does not replace it. Give a new or empty folder.")
            extra = sorted(present - written - {MARKER})
            if extra:
                shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
                raise ReportDirError(f"{flag}: the previous report {str(out)!r} holds files focalkit did not write "
                                     f"({shown}); move them, or give another folder.")
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ReportDirError(f"{flag}: {str(parent)!r} is a file, so {str(out)!r} cannot be a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportDirError(f"{flag}: cannot write into {str(parent)!r} (permission denied).")
    return resolved


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _written_files(folder: Path) -> set[str] | None:
    """The files a previous report lists in its marker; ``None`` when there is no readable marker."""
    try:
        data = json.loads((folder / MARKER).read_text())
        return {str(f) for f in data["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def atomic_report_dir(out: Path, flag: str = "--out"):
    """A context manager yielding a temporary folder beside ``out`` that becomes ``out`` on success.

    The folder is checked with :func:`check_report_dir` before and after the work; a previous report
    is replaced whole (renamed aside, the new one renamed in, then the old one removed); on failure
    the temporary folder is removed and ``out`` is untouched.
    """
    import contextlib

    @contextlib.contextmanager
    def manager():
        target = check_report_dir(out, flag)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            mode = target.stat().st_mode & 0o7777 if target.is_dir() else 0o777 & ~_umask()
            tmp.chmod(mode)  # mkdtemp makes 0700: the report gets the folder's mode, or the usual one
        except OSError as err:
            raise ReportDirError(f"{flag}: cannot create a folder beside {str(out)!r}: {err.strerror or err}.") from err
        try:
            yield tmp
            files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
            (tmp / MARKER).write_text(json.dumps({"tool": "focalkit", "files": files}, indent=1))
            check_report_dir(out, flag)  # nothing new appeared there while we worked
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "report")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    return manager()


def run_metadata(options: dict[str, Any]) -> dict[str, Any]:
    import sklearn
    import torch

    import focalkit

    return {
        "options": options,
        "versions": {"focalkit": focalkit.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "python": platform.python_version()},
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
    }


def write_report(folder: Path, results: Sequence[RunResult], summary: dict[str, Any], meta: dict[str, Any]) -> None:
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "loss", "seed", "metric", "value", "lr", "epoch"])
        for r in results:
            for m in METRICS:
                writer.writerow([r.dataset, r.loss, r.seed, m, f"{r.metrics[m]:.6g}", r.lr, r.epoch])
    (folder / "summary.json").write_text(json.dumps({**summary, **meta}, indent=2, default=str))
    (folder / "report.md").write_text(markdown(summary, meta))
    from . import plots

    plots.pr_curves(results, folder / "pr_curves.png")
    plots.reliability(results, folder / "reliability.png")
    plots.training_curves(results, folder / "training_curves.png")
    if any(r.grad_norm_hist for r in results):
        plots.grad_norm_histograms(results, folder / "ghm_grad_norms.png")
    plots.all_curves(folder)
