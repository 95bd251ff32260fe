"""``focalkit.compare.run``: the comparison protocol and its statistics around a user's own ``fit``.

::

    import focalkit.compare

    def fit(loss_fn, *, seed, lr):
        torch.manual_seed(seed)
        model = make_model()
        ...  # train with loss_fn(logits, target), choose the epoch on validation
        return {"val": (y_val, p_val), "test": (y_test, p_test)}

    summary = focalkit.compare.run(fit, losses=["ce", "focal", "ghmc"], seeds=10, out="my-report")
    for c in summary.comparisons:
        print(c["loss"], c["mean_diff"], c["ci_low"], c["ci_high"], c["verdict"])

For every loss, seed and learning rate ``fit`` trains once; per loss and seed the learning rate
with the best validation AP is kept and only its test split is scored. The paired differences
with the baseline over the seeds give the intervals and verdicts of :mod:`focalkit.compare.stats`.
The built-in tasks of ``focalkit compare`` (tables, boosted trees, scenes) are ``fit`` functions
run through this same function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .losses import LossSpec, SpecError, TrainingLoss, parse_spec
from .metrics import average_precision, best_f1_threshold, evaluate
from .results import RunResult, Summary, summarize
from .stats import ADJUSTMENTS, INTERVALS

__all__ = ["POSTHOC", "run"]

POSTHOC = "ce+posthoc-la"  # CE's own model with post-hoc logit adjustment (Menon et al. 2021), multi-class only

Fit = Callable[..., dict[str, Any]]


def _array(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value)
    except Exception as err:
        raise TypeError(f"fit returned {what} that is not an array: {type(value).__name__}.") from err


def _check_split(out: Any, key: str, num_classes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, dict) or key not in out:
        raise TypeError(f"fit({where}) must return {{'val': (y_val, p_val), 'test': (y_test, p_test)}}; got "
                        f"{type(out).__name__}" + (f" with keys {sorted(out)}" if isinstance(out, dict) else "") + ".")
    try:
        y, p = out[key]
    except (TypeError, ValueError) as err:
        raise TypeError(f"fit({where})[{key!r}] must be a pair (labels, probabilities).") from err
    y, p = _array(y, f"{key} labels"), _array(p, f"{key} probabilities").astype(np.float64)
    if y.ndim != 1:
        y = y.reshape(-1)
    shapes = f"[{len(y)}] or [{len(y)}, 2]" if num_classes == 2 else f"[{len(y)}, {num_classes}]"
    one_column = num_classes == 2 and (p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1))
    if len(p) != len(y) or not (one_column or (p.ndim == 2 and p.shape[1] == num_classes)):
        hint = (f" (num_classes={num_classes}: give num_classes={p.shape[1]} to run() for {p.shape[1]} classes)"
                if p.ndim == 2 and len(p) == len(y) and p.shape[1] > 2 and p.shape[1] != num_classes else "")
        raise ValueError(f"fit({where})[{key!r}]: expected probabilities shaped {shapes} for {len(y)} labels; got "
                         f"{list(p.shape)}{hint}.")
    if one_column:
        p1 = p.reshape(-1)
        p = np.stack([1 - p1, p1], 1)
    if not np.isfinite(p).all() or (p < -1e-9).any() or (p > 1 + 1e-9).any():
        raise ValueError(f"fit({where})[{key!r}]: probabilities must be finite and in [0, 1] (give σ or softmax "
                         "of the logits, not the logits).")
    bad = np.flatnonzero(np.abs(p.sum(1) - 1.0) > 1e-4) if not one_column else []
    if len(bad):  # [n, 2] too: two columns that are not one softmax (two sigmoids, logits) are not probabilities
        hint = " (or give p[:, 1] alone)" if num_classes == 2 else ""
        raise ValueError(f"fit({where})[{key!r}]: each row of [n, {num_classes}] probabilities must sum to 1 (softmax "
                         f"of {'two' if num_classes == 2 else num_classes} logits); row {bad[0]} sums to "
                         f"{p[bad[0]].sum():.6g}{hint}.")
    if not np.all(np.isin(y, np.arange(num_classes))):
        raise ValueError(f"fit({where})[{key!r}]: labels must be class ids in [0, {num_classes}); got values "
                         f"{np.unique(y)[:8].tolist()}.")
    if len(np.unique(y)) < 2:
        raise ValueError(f"fit({where})[{key!r}]: the labels hold a single class; AP needs both.")
    return y.astype(np.int64), np.clip(p, 0.0, 1.0)


def _one(fit: Fit, spec: LossSpec, seed: int, lrs: Sequence[float], *, dataset: str, num_classes: int,
         class_counts: np.ndarray | None, ignore_index: int | None, dense: bool, keep: bool,
         prior: np.ndarray | None) -> list[RunResult]:
    """Train ``spec`` on ``seed`` at every learning rate; keep the best on validation AP; score test once."""
    start = time.perf_counter()
    best: dict[str, Any] | None = None
    by_lr: dict[float, float] = {}
    for lr in lrs:
        loss = TrainingLoss(spec, num_classes=num_classes, class_counts=class_counts, ignore_index=ignore_index)
        where = f"loss={spec}, seed={seed}, lr={lr:g}"
        out = fit(loss, seed=seed, lr=lr)
        y_val, p_val = _check_split(out, "val", num_classes, where)
        y_test, p_test = _check_split(out, "test", num_classes, where)
        ap = average_precision(y_val, p_val)
        by_lr[float(lr)] = ap
        if best is None or ap > best["ap"] + 1e-12:
            best = {"ap": ap, "lr": float(lr), "val": (y_val, p_val), "test": (y_test, p_test), "out": out}
    if best is None:
        raise ValueError("lrs: the learning-rate grid is empty.")
    seconds = time.perf_counter() - start
    out = best["out"]

    def result(name: str, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> RunResult:
        threshold = best_f1_threshold(val[0], val[1][:, 1]) if num_classes == 2 else None
        metrics = evaluate(test[0], test[1], threshold=threshold, val=val, dense=dense)
        if out.get("metrics_fn") is not None:  # the task's own metrics of these probabilities (entity F1)
            metrics.update(out["metrics_fn"](test[0], test[1]))
        probs = test[1]
        constant = bool(np.all(np.ptp(probs, axis=0) < 1e-9))
        return RunResult(dataset=dataset, loss=name, seed=seed, lr=best["lr"], epoch=int(out.get("epoch", 0)),
                         val_ap=average_precision(*val), metrics=metrics, seconds=seconds,
                         curve=list(out.get("curve", [])) if keep else [],
                         unit=str(out.get("unit", "epoch")),
                         test_labels=test[0] if keep else None,
                         test_probs=test[1].astype(np.float32) if keep else None,
                         grad_norm_hist=list(out.get("grad_norm_hist", [])),
                         epochs_to_target=dict(out.get("epochs_to_target", {})), val_ap_by_lr=by_lr,
                         threshold=threshold, budget=int(out["budget"]) if out.get("budget") else None,
                         constant=constant)

    results = [result(str(spec), best["val"], best["test"])]
    if prior is not None:  # the same CE model, its probabilities divided by the prior (Menon et al. 2021, τ = 1)
        def adjust(p: np.ndarray) -> np.ndarray:
            q = p / prior
            return q / q.sum(1, keepdims=True)

        results.append(result(POSTHOC, (best["val"][0], adjust(best["val"][1])),
                              (best["test"][0], adjust(best["test"][1]))))
    return results


def _specs(losses: Sequence[str | LossSpec]) -> list[LossSpec]:
    if isinstance(losses, (str, LossSpec)):
        losses = [losses]
    specs = [s if isinstance(s, LossSpec) else parse_spec(str(s)) for s in losses]
    labels = [str(s) for s in specs]
    if not specs:
        raise SpecError("losses: give at least one loss besides the baseline.")
    if len(set(labels)) != len(labels):
        raise SpecError(f"--losses: each spec must appear once; got {labels}.")
    return specs


def run(fit: Fit, *, losses: Sequence[str | LossSpec], seeds: int | Sequence[int] = 10,
        lrs: Sequence[float] = (1e-3, 3e-3, 1e-2), margin: float = 0.01, baseline: str = "ce",
        out: str | Path | None = None, num_classes: int = 2, class_counts: Sequence[float] | None = None,
        interval: str = "t", adjust: str = "none", test_train_ratio: float = 1 / 3, name: str = "your task",
        dense: bool = False, ignore_index: int | None = None, posthoc: bool = True, jobs: int = 1,
        keep: bool = True, notes: Sequence[str] = (), meta: dict[str, Any] | None = None, console: Any = None,
        verbose: bool = True, description: str = "training", class_names: Sequence[str] | None = None) -> Summary:
    """Compare ``losses`` with ``baseline`` on the user's ``fit``; see the module docstring.

    Args:
        fit: ``fit(loss_fn, *, seed, lr)`` trains a fresh model with ``loss_fn(logits, target)``
            (a :class:`~focalkit.compare.losses.TrainingLoss`) and returns
            ``{"val": (y_val, p_val), "test": (y_test, p_test)}``: class ids and probabilities,
            ``[n]`` (positive class) or ``[n, 2]`` for two classes, ``[n, C]`` for ``C``. Dense outputs:
            flattened pixels, ignored ones left out. Optional keys: ``"epoch"`` (the chosen epoch),
            ``"curve"`` ([(epoch, val AP, train loss)], the loss NaN where not measured), ``"unit"``
            (what the curve counts, ``"epoch"`` unless given, e.g. ``"round"``), ``"grad_norm_hist"``,
            ``"metrics_fn"`` (``f(y_test, p_test) -> {name: value}``: more test metrics, of the names in
            ``focalkit.compare.metrics.METRICS``, called on each row's probabilities; e.g. entity F1).
        losses: specs as on the command line (``"focal:gamma=2"``); the baseline among them.
        seeds: number of paired seeds (0..N−1) or the seeds themselves; fewer than 3 give no verdict.
        lrs: the learning-rate grid, searched per loss and seed on validation AP.
        margin: the difference in AP that counts as no effect, stated before the run (> 0).
        baseline: the loss each other one is compared with.
        out: a report folder (report.md, summary.json, results.csv, plots), written atomically; a
            folder that exists must be empty or a previous focalkit report.
        num_classes: 2 for one logit (sigmoid losses), ``C`` for ``C`` logits (softmax losses).
        class_counts: training counts per class, needed by ``weighted-ce`` and ``logit-adjust``.
        interval: ``"t"`` (independent resplits) or ``"corrected"`` (Nadeau & Bengio), see
            :mod:`focalkit.compare.stats`; ``test_train_ratio`` is its ``n_test/n_train``.
        adjust: ``"none"`` (95 % for each comparison) or ``"bonferroni"`` (simultaneous).
        dense: the outputs are pixels (adds IoU; F1 is then the Dice score).
        ignore_index: passed to the losses (e.g. 255 for masks).
        posthoc: for several classes and a ``ce`` baseline, add CE's model with post-hoc logit
            adjustment by ``class_counts`` as a control row (no extra training).
        jobs: parallel processes (``fit`` must then be picklable, as a module-level function or an
            object; joblib's loky pickles closures too).
        class_names: names of the classes for the plots and the report (default ``0 .. C−1``).
        verbose: a progress bar; with ``out``, also the table and the report's path.
    Returns:
        a :class:`~focalkit.compare.results.Summary`.
    """
    if not callable(fit):
        raise TypeError(f"fit must be callable fit(loss_fn, *, seed, lr); got {type(fit).__name__}.")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: must be a positive number (the AP difference that counts as no effect); "
                         f"got {margin!r}.")
    if interval not in INTERVALS:
        raise ValueError(f"interval: expected one of {INTERVALS}; got {interval!r}.")
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"adjust: expected one of {ADJUSTMENTS}; got {adjust!r}.")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds: expected a number >= 1 or distinct seeds; got {seeds!r}.")
    lr_list = [float(v) for v in lrs]
    if not lr_list or not all(math.isfinite(v) and v > 0 for v in lr_list):
        raise ValueError(f"lrs: expected positive learning rates; got {lrs!r}.")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: expected a whole number >= 2; got {num_classes!r}.")
    try:
        specs = _specs(losses)
        labels = [str(s) for s in specs]
        if baseline not in labels:
            raise SpecError(f"baseline: {baseline!r} is not among the losses {labels}.")
        if len(labels) < 2:
            raise SpecError(f"losses: give at least one loss besides the baseline {baseline!r}.")
        counts = None if class_counts is None else np.asarray(class_counts, dtype=np.float64).reshape(-1)
        if counts is not None and len(counts) != num_classes:
            raise SpecError(f"class_counts: {len(counts)} counts for num_classes={num_classes}; give one count per "
                            f"class (and num_classes={len(counts)} for {len(counts)} classes).")
        for spec in specs:  # every option checked before any training
            TrainingLoss(spec, num_classes=num_classes, class_counts=counts, ignore_index=ignore_index)
    except SpecError as err:  # the command line's words, without its flags
        raise SpecError(str(err).replace("--losses: ", "losses: ").replace("--baseline: ", "baseline: ")) from None
    prior = None
    if posthoc and num_classes > 2 and counts is not None:
        prior = np.maximum(counts, 1) / np.maximum(counts, 1).sum()
    with_posthoc = {s: prior if (str(s) == baseline and s.name == "ce") else None for s in specs}

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True, quiet=not verbose)
    tasks = [(spec, seed) for spec in specs for seed in seed_list]
    options = {"dataset": name, "num_classes": num_classes, "class_counts": counts, "ignore_index": ignore_index,
               "dense": dense, "keep": keep}
    found: dict[tuple[str, int], list[RunResult]] = {}
    start = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not verbose) as bar:
        task_id = bar.add_task(description, total=len(tasks))
        if jobs == 1:
            stream = (_one(fit, spec, seed, lr_list, prior=with_posthoc[spec], **options) for spec, seed in tasks)
        else:
            from joblib import Parallel, delayed

            stream = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_one)(fit, spec, seed, lr_list, prior=with_posthoc[spec], **options) for spec, seed in tasks)
        for group in stream:
            found[(group[0].loss, group[0].seed)] = group
            bar.advance(task_id)
    results = [r for spec, seed in tasks for r in found[(str(spec), seed)]]
    task_words = (meta or {}).get("task", name)
    summary = summarize(results, baseline, float(margin), interval=interval, adjust=adjust,
                        test_train_ratio=test_train_ratio, task=task_words, notes=notes, class_names=class_names)
    if out is not None:
        from .report import atomic_report_dir, render_table, run_metadata, write_report

        info = run_metadata({"losses": labels, "seeds": seed_list, "lrs": lr_list, "margin": margin,
                             "baseline": baseline, "interval": interval, "adjust": adjust, **(meta or {})})
        info["seconds"] = round(time.perf_counter() - start, 1)
        with atomic_report_dir(Path(out), "out") as folder:
            write_report(folder, summary, info)
        if verbose:
            render_table(summary, console)
            console.print(f"report: {out} (report.md, forest.png, summary.json, results.csv, plots)")
    return summary
