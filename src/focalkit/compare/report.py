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

from .metrics import DESCRIPTIONS, LOWER_IS_BETTER
from .results import RunResult, Summary, interval_words

__all__ = ["MARKER", "ReportDirError", "atomic_report_dir", "check_report_dir", "format_value", "render_table",
           "write_report"]

COLOURS = {"better": "green", "worse": "red", "no effect": "yellow", "inconclusive": "dim", "no verdict": "dim"}
SHORT = {"ap": "AP", "roc_auc": "ROC-AUC", "f1": "F1", "entity_f1": "entity F1", "iou": "IoU",
         "balanced_accuracy": "bal. acc.",
         "minority_recall": "min. recall", "brier": "Brier ↓", "log_loss": "log-loss ↓", "ece": "ECE ↓",
         "ece_ts": "ECE (TS) ↓"}


def format_value(value: float | None, spec: str = "+.3f") -> str:
    """A number as the tables print it; "—" where there is none (no interval below 3 seeds)."""
    return "—" if value is None or not np.isfinite(value) else format(value, spec)


def _interval(c: dict[str, Any]) -> str:
    return f"{format_value(c['mean_diff'])} [{format_value(c['ci_low'])}, {format_value(c['ci_high'])}]"


def _level_words(summary: Summary) -> str:
    if not summary.comparisons:
        return "95%"
    level = summary.comparisons[0]["level"]
    return f"{100 * level:.4g}%" + (" (Bonferroni)" if summary.adjust == "bonferroni" else "")


def _column_groups(widths: Sequence[int], first: int, room: int) -> list[list[int]]:
    """Indices of the columns, in groups whose tables fit ``room`` characters beside the first column."""
    groups: list[list[int]] = [[]]
    used = first + 4  # the first column's cell and the table's two edges
    for i, w in enumerate(widths):
        if groups[-1] and used + w + 3 > room:
            groups.append([])
            used = first + 4
        groups[-1].append(i)
        used += w + 3
    return groups


def render_table(summary: Summary, console: Console) -> None:
    """Two tables that fit the terminal: the verdicts on the primary metric, then the other metrics.

    No number is cut short: on a narrow terminal the loss names fold onto a second line and the other
    metrics are split over as many tables as the width needs.
    """
    comps = {c["loss"]: c for c in summary.comparisons}
    kind = "t" if summary.interval == "t" else "corrected t"
    caption = f"Δ vs {summary.baseline}: {_level_words(summary)} {kind} interval; margin ±{summary.margin:g}"
    main = Table(title=f"{summary.dataset}: test AP over {len(summary.seeds)} paired seeds", title_justify="left",
                 caption=caption, caption_justify="left", pad_edge=False)
    main.add_column("loss", overflow="fold")
    for name in ("AP mean ± sd", "Δ AP [interval]", "p (Holm)", "verdict"):
        main.add_column(name, no_wrap=True)
    for loss, stats in summary.metrics.items():
        c = comps.get(loss)
        main.add_row(
            loss, f"{stats['ap']['mean']:.3f} ± {stats['ap']['sd']:.3f}",
            _interval(c) if c else "baseline",
            f"{format_value(c['p_value'], '.3f')} ({format_value(c['p_holm'], '.3f')})" if c else "",
            f"[{COLOURS[c['verdict']]}]{c['verdict']}[/]" if c else "",
        )
    console.print(main)
    others = [m for m in summary.metric_names if m != "ap"]
    cells = {loss: [format_value(stats[m]["mean"], ".3f") for m in others] for loss, stats in summary.metrics.items()}
    widths = [max([len(SHORT[m])] + [len(row[i]) for row in cells.values()]) for i, m in enumerate(others)]
    first = min(max(len(loss) for loss in cells), 24)
    groups = _column_groups(widths, first, console.width)
    for k, group in enumerate(groups):
        part = f" ({k + 1} of {len(groups)})" if len(groups) > 1 else ""
        other = Table(title=f"other test metrics{part}", title_justify="left",
                      caption="means; ↓ lower is better; TS: after temperature scaling on validation"
                      if k == len(groups) - 1 else None, caption_justify="left")
        other.add_column("loss", overflow="fold")
        for i in group:
            other.add_column(SHORT[others[i]], no_wrap=True, justify="right")
        for loss, row in cells.items():
            other.add_row(loss, *(row[i] for i in group))
        console.print(other)
    undecided = [c for c in summary.comparisons if c["verdict"] == "no verdict"]
    if undecided:
        console.print(f"[bold]no verdict[/]: {undecided[0]['reason']}.")
    for warning in summary.warnings:
        console.print(f"[bold yellow]warning[/]: {warning}.")


def markdown(summary: Summary, meta: dict[str, Any]) -> str:
    comps = {c["loss"]: c for c in summary.comparisons}
    names = summary.metric_names
    lines = [f"# focalkit compare — {summary.dataset}", ""]
    if summary.task:
        lines += [f"Task: {summary.task}.", ""]
    lines += [f"Seeds: {summary.seeds}. Primary metric: test average precision. Baseline: `{summary.baseline}`. "
              f"Margin for 'no effect', stated before the run: ±{summary.margin:g} AP. Interval: "
              f"{interval_words(summary)}.", ""]
    if summary.notes:
        lines += ["Data:", ""] + [f"- {n}" for n in summary.notes] + [""]
    if summary.warnings:
        lines += ["Warnings:", ""] + [f"- {w}." for w in summary.warnings] + [""]
    lines += ["![paired differences](forest.png)", "",
              "| loss | AP | Δ AP vs baseline [interval] | t-test p (Holm) | verdict | why | " +
              " | ".join(SHORT[m] for m in names[1:]) + " |",
              "|---" * (6 + len(names) - 1) + "|"]
    for loss, stats in summary.metrics.items():
        c = comps.get(loss)
        diff = _interval(c) if c else "—"
        p = f"{format_value(c['p_value'], '.3f')} ({format_value(c['p_holm'], '.3f')})" if c else "—"
        cells = [f"{format_value(stats[m]['mean'], '.3f')} ± {format_value(stats[m]['sd'], '.3f')}" for m in names]
        lines.append(f"| {loss} | {cells[0]} | {diff} | {p} | {c['verdict'] if c else 'baseline'} | "
                     f"{c['reason'] if c else ''} | " + " | ".join(cells[1:]) + " |")
    lines += ["", "## What this says", "", _plain_words(summary), "",
              "## Protocol", "",
              "Each seed is a replicate: a fresh split (or the task's own split) and a fresh initialisation, shared "
              "by every loss, so the losses are paired. Each loss gets its own learning rate (grid) and stopping "
              "point, both chosen on validation AP; the test split is scored once, with that model. The F1 "
              "threshold is chosen on validation.", "",
              "Verdicts read the printed interval against the margin: *better* when the whole interval lies above "
              "+margin, *worse* when it lies below −margin, *no effect* when it lies inside ±margin, *inconclusive* "
              "otherwise; fewer than 3 seeds give *no verdict*. The t-test p-values (Holm-adjusted across the "
              "comparisons) are information; the verdicts do not use them.", "",
              "Metrics: " + "; ".join(f"{SHORT[m]}: {DESCRIPTIONS[m]}" for m in names) + ". "
              + ("↓ marks metrics where lower is better (" + ", ".join(sorted(LOWER_IS_BETTER & set(names))) + ")."),
              "", "## Run", "", "```json", json.dumps(meta, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def _plain_words(summary: Summary) -> str:
    comps = summary.comparisons
    groups = {v: [c["loss"] for c in comps if c["verdict"] == v] for v in COLOURS}
    parts = []
    if groups["better"]:
        parts.append(f"Better than {summary.baseline} on test AP by more than {summary.margin:g}: "
                     f"{', '.join(groups['better'])}.")
    else:
        parts.append(f"No loss beat {summary.baseline} on test AP by more than the margin with this data and "
                     "this many seeds.")
    if groups["worse"]:
        parts.append(f"Worse by more than {summary.margin:g}: {', '.join(groups['worse'])}.")
    if groups["no effect"]:
        parts.append(f"Equivalent within ±{summary.margin:g} AP: {', '.join(groups['no effect'])}.")
    if groups["inconclusive"]:
        parts.append(f"Inconclusive ({', '.join(groups['inconclusive'])}): the interval reaches across the margin; "
                     "more seeds or more data would be needed to decide.")
    if groups["no verdict"]:
        parts.append(f"No verdict ({', '.join(groups['no verdict'])}): fewer than 3 seeds.")
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
                listed = sorted(present)
                shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
                raise ReportDirError(f"{flag}: {str(out)!r} is a folder with files in it ({shown}) that is not a "
                                     "focalkit report; focalkit does not replace it. Give a new or empty folder.")
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


def write_report(folder: Path, summary: Summary, meta: dict[str, Any]) -> None:
    results: Sequence[RunResult] = summary.results
    names = summary.metric_names
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "loss", "seed", "metric", "value", "lr", "epoch"])
        for r in results:
            for m in names:
                if m in r.metrics:
                    writer.writerow([r.dataset, r.loss, r.seed, m, f"{r.metrics[m]:.6g}", r.lr, r.epoch])
    (folder / "summary.json").write_text(json.dumps({**summary.as_dict(), **meta}, indent=2, default=str))
    (folder / "report.md").write_text(markdown(summary, meta))
    from . import plots

    plots.forest(summary, folder / "forest.png")
    if any(r.test_probs is not None for r in results):
        plots.pr_curves(results, folder / "pr_curves.png", class_names=summary.class_names)
        plots.reliability(results, folder / "reliability.png", unit="pixels" if "iou" in names else "rows")
    if any(r.curve for r in results):
        plots.training_curves(results, folder / "training_curves.png")
    if any(r.grad_norm_hist for r in results):
        plots.grad_norm_histograms(results, folder / "ghm_grad_norms.png")
    plots.all_curves(folder)
