"""From options (the command line's, or claims') to a built-in task run through :func:`focalkit.compare.run`.

Imported by the command line and by :mod:`.claims`; imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import run
from .data import DataError, load_dataset
from .losses import LossSpec, parse_spec
from .results import Summary

__all__ = ["MODELS", "Prepared", "lrs_for", "prepare", "run_prepared", "seeds_for"]

MODELS = ("mlp", "linear", "xgboost", "lightgbm", "fcn", "tagger")
TABLE_MODELS = ("mlp", "linear", "xgboost", "lightgbm")
IGNORE_MASK = 255  # the ignored pixels of the masks


def seeds_for(options: Any) -> list[int]:
    return list(range(getattr(options, "seeds", None) or (5 if getattr(options, "quick", False) else 10)))


def lrs_for(model: str, options: Any) -> tuple[float, ...]:
    given = getattr(options, "lrs", None)
    if given:
        return tuple(given)
    quick = getattr(options, "quick", False)
    if model in ("xgboost", "lightgbm"):
        return (0.1, 0.3) if quick else (0.03, 0.1, 0.3)
    return (3e-3, 1e-2) if quick else (1e-3, 3e-3, 1e-2)


@dataclass
class Prepared:
    """A built-in task ready for :func:`~focalkit.compare.run`."""

    fit: Any
    data: Any
    model: str
    description: str
    dense: bool
    lrs: tuple[float, ...]
    seeds: list[int]
    ignore_index: int | None = None  # of the targets: 255 for masks, -100 for token padding

    @property
    def class_counts(self) -> np.ndarray:
        if callable(getattr(self.data, "class_counts", None)):
            return self.data.class_counts()
        return np.bincount(self.data.labels, minlength=self.data.num_classes).astype(np.float64)

    @property
    def class_names(self) -> list[str]:
        return ["background", "object"] if self.dense else list(self.data.class_names)


def prepare(options: Any, *, data_spec: str | None = None, noise: float | None = None,
            model: str | None = None, **protocol: Any) -> Prepared:
    """Load the data named by ``options.data`` (or ``data_spec``) and build its task's ``fit``.

    ``protocol`` overrides fields of the task's protocol (e.g. ``patience`` for claim 1).
    """
    from .tasks.scenes import DenseProtocol, DenseTask, is_dense_spec, load_dense
    from .tasks.tags import is_tags_spec

    spec = data_spec or options.data
    quick = getattr(options, "quick", False)
    epochs = getattr(options, "epochs", None)
    device = getattr(options, "device", "cpu")
    noise = getattr(options, "noise", 0.0) if noise is None else noise
    model = model or getattr(options, "model", None)
    seeds = seeds_for(options)
    if is_tags_spec(spec):
        return _prepare_tags(options, spec, model, noise, epochs, quick, device, seeds, protocol)
    if is_dense_spec(spec):
        model = model or "fcn"
        if model != "fcn":
            raise DataError(f"--model: images (--data {spec}) are trained with --model fcn; got {model!r}.")
        _refuse_table_options(options, noise, spec, "a set of images and masks")
        data = load_dense(spec)
        settings = {"max_epochs": epochs or (40 if quick else 80), "device": device, **protocol}
        task = DenseTask(data, DenseProtocol(**settings))
        return Prepared(task, data, "fcn", task.description, True, lrs_for("fcn", options), seeds, IGNORE_MASK)
    model = model or "mlp"
    if model not in TABLE_MODELS:
        raise DataError(f"--model: {model!r} is for images (--data scenes or a .npz file); tables take "
                        f"{', '.join(TABLE_MODELS)}.")
    data = load_dataset(spec, target=getattr(options, "target", None), positive=getattr(options, "positive", None),
                        imbalance=getattr(options, "imbalance", None), drop=getattr(options, "drop", None),
                        features=getattr(options, "features", None))
    from .tasks.tabular import check_splittable

    check_splittable(data, seeds)
    if model in ("xgboost", "lightgbm"):
        from .tasks.gbdt import BoostedTask

        if device != "cpu":
            raise DataError(f"--device: --model {model} trains on the CPU here; use --device cpu.")
        rounds = {"max_rounds": 200 if quick else 400, "patience": 20 if quick else 30, **protocol}
        task = BoostedTask(data, model, noise=noise, **rounds)
        return Prepared(task, data, model, task.description, False, lrs_for(model, options), seeds)
    from .tasks.tabular import Protocol, TabularTask

    targets = protocol.pop("targets", ())
    settings = {"model": model, "max_epochs": epochs or (60 if quick else 150), "device": device, "noise": noise,
                **protocol}
    task = TabularTask(data, Protocol(**settings), targets=targets)
    return Prepared(task, data, model, task.description, False, lrs_for(model, options), seeds)


def _refuse_table_options(options: Any, noise: float, spec: str, what: str) -> None:
    """The options that only tables take, refused for images and sentences."""
    given = [f"--{name}" for name in ("drop", "features", "target", "positive", "imbalance")
             if getattr(options, name, None) not in (None, [], ())]
    if given:
        raise DataError(f"{'/'.join(given)}: only for tables; --data {spec} is {what}.")
    if noise:
        raise DataError("--noise: flipping labels is for tables only.")


def _prepare_tags(options: Any, spec: str, model: str | None, noise: float, epochs: int | None, quick: bool,
                  device: str, seeds: list[int], protocol: dict[str, Any]) -> Prepared:
    from .tasks.tags import IGNORE, TagProtocol, TagTask, load_tags

    model = model or "tagger"
    if model != "tagger":
        raise DataError(f"--model: sentences (--data {spec}) are trained with --model tagger; got {model!r}.")
    _refuse_table_options(options, noise, spec, "a set of tagged sentences")
    data = load_tags(spec)
    task = TagTask(data, TagProtocol(**{"max_epochs": epochs or (25 if quick else 40), "device": device,
                                        **protocol}))
    return Prepared(task, data, "tagger", task.description, False, lrs_for("tagger", options), seeds, IGNORE)


def check_losses(prepared: Prepared, specs: list[LossSpec]) -> None:
    """Every loss usable on this task, checked before any training (a :class:`SpecError` otherwise)."""
    from .losses import TrainingLoss

    for spec in specs:
        TrainingLoss(spec, num_classes=prepared.data.num_classes, class_counts=prepared.class_counts,
                     ignore_index=prepared.ignore_index)
        check = getattr(prepared.fit, "check", None)
        if check is not None:
            check(spec)


def run_prepared(prepared: Prepared, losses: list[str | LossSpec], *, baseline: str = "ce", margin: float = 0.01,
                 jobs: int = 1, interval: str = "t", adjust: str = "none", console: Any = None,
                 description: str = "training", keep: bool = True, verbose: bool = True) -> Summary:
    specs = [s if isinstance(s, LossSpec) else parse_spec(str(s)) for s in losses]
    check_losses(prepared, specs)
    notes = prepared.data.column_notes() if hasattr(prepared.data, "column_notes") else []
    return run(prepared.fit, losses=specs, seeds=prepared.seeds, lrs=prepared.lrs, margin=margin, baseline=baseline,
               num_classes=prepared.data.num_classes, class_counts=prepared.class_counts, interval=interval,
               adjust=adjust, name=prepared.data.name, dense=prepared.dense,
               ignore_index=prepared.ignore_index, jobs=jobs, keep=keep, notes=notes, class_names=prepared.class_names,
               meta={"task": prepared.description}, console=console, verbose=verbose, description=description)
