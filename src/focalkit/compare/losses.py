"""Loss specs of the command line: ``focal:gamma=2,alpha=0.25`` → a configured focalkit loss.

Each name maps to the sigmoid form for a two-class problem (one logit) and the softmax form
otherwise. Two controls sit beside the article losses: class-weighted cross-entropy and logit
adjustment (Menon et al., 2021), the two things a practitioner would try first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

import focalkit as fk

__all__ = ["LOSSES", "LossSpec", "SpecError", "build_loss", "parse_spec"]


class SpecError(ValueError):
    """A --losses spec that cannot be used; the command line turns it into exit code 2."""


@dataclass(frozen=True)
class LossInfo:
    summary: str
    defaults: dict[str, float | None]
    binary_defaults: dict[str, float | None] = field(default_factory=dict)


LOSSES: dict[str, LossInfo] = {
    "ce": LossInfo("cross-entropy (the baseline)", {"label_smoothing": 0.0}),
    "weighted-ce": LossInfo("class-weighted cross-entropy, weights n/(C·n_c) (control)", {"power": 1.0}),
    "logit-adjust": LossInfo("logit-adjusted cross-entropy, logits + tau·log prior in training (control)",
                             {"tau": 1.0}),
    "focal": LossInfo("focal loss", {"gamma": 2.0, "alpha": None}, {"gamma": 2.0, "alpha": 0.25}),
    "hard": LossInfo("hard-truncated cross-entropy (seed 000)", {"threshold": 0.5}),
    "soft": LossInfo("softened truncation (seed 000)", {"k": 1.0}),
    "ghmc": LossInfo("GHM-C (seed 003; binary only: sigmoid)", {"bins": 10, "momentum": 0.0}),
}

DEFAULT_LOSSES = ["ce", "weighted-ce", "logit-adjust", "focal", "hard", "soft", "ghmc"]


@dataclass(frozen=True)
class LossSpec:
    name: str
    params: tuple[tuple[str, float | None], ...] = ()
    label: str = ""

    def __str__(self) -> str:
        return self.label or self.name

    def options(self, binary: bool) -> dict[str, float | None]:
        info = LOSSES[self.name]
        merged = {**info.defaults, **(info.binary_defaults if binary else {})}
        merged.update(dict(self.params))
        return merged


def _value(text: str) -> float | None:
    if text.lower() in {"none", "off", "null"}:
        return None
    return float(text)


def parse_spec(text: str) -> LossSpec:
    """``name`` or ``name:key=value,key=value``."""
    name, _, rest = text.strip().partition(":")
    name = name.strip().lower()
    if name not in LOSSES:
        raise SpecError(f"--losses: unknown loss {name!r} in {text!r}; choose from {', '.join(LOSSES)}.")
    params: list[tuple[str, float | None]] = []
    if rest:
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq:
                raise SpecError(f"--losses: expected key=value in {text!r}; got {item!r}.")
            if key not in LOSSES[name].defaults:
                allowed = ", ".join(LOSSES[name].defaults) or "none"
                raise SpecError(f"--losses: {name} takes {allowed}; got {key!r} in {text!r}.")
            try:
                params.append((key, _value(value.strip())))
            except ValueError as err:
                raise SpecError(f"--losses: {key} must be a number or none; got {value!r} in {text!r}.") from err
    return LossSpec(name, tuple(params), text.strip())


LossFn = Callable[[Tensor, Tensor], Tensor]


def build_loss(spec: LossSpec, *, num_classes: int, class_counts: np.ndarray,
               sync: bool = False) -> tuple[LossFn, torch.nn.Module | None]:
    """The training loss ``f(logits, labels)`` for a model with one logit (binary) or ``C`` logits.

    Returns the function and, for GHM-C, the module holding its state (for the histograms).
    ``sync`` makes the loss's mean (and GHM-C's histogram) global across torch.distributed ranks.
    Raises :class:`SpecError` when focalkit rejects the options.
    """
    binary = num_classes == 2
    opts = spec.options(binary)
    prior = torch.tensor(class_counts / class_counts.sum(), dtype=torch.float32)
    try:
        if spec.name == "ghmc" and not binary:
            raise SpecError("--losses: ghmc is defined for binary problems (sigmoid) only; this data has "
                            f"{num_classes} classes.")
        module = _module(spec.name, opts, binary, sync)
    except (ValueError, TypeError) as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError(f"--losses: {spec}: {err}") from err

    if spec.name == "weighted-ce":
        power = _num(opts, "power", 1.0)
        weights = (class_counts.sum() / (num_classes * np.maximum(class_counts, 1))) ** power
        w = torch.tensor(weights, dtype=torch.float32)

        def weighted(logits: Tensor, labels: Tensor) -> Tensor:
            return module(*_shape(logits, labels, binary), sample_weight=w.to(logits.device)[labels])

        return weighted, None
    if spec.name == "logit-adjust":
        tau = _num(opts, "tau", 1.0)
        log_prior = torch.log(prior)
        shift = (log_prior[1] - log_prior[0]).reshape(1) if binary else log_prior

        def adjusted(logits: Tensor, labels: Tensor) -> Tensor:
            return module(*_shape(logits + tau * shift.to(logits.device), labels, binary))

        return adjusted, None

    def plain(logits: Tensor, labels: Tensor) -> Tensor:
        return module(*_shape(logits, labels, binary))

    return plain, module if spec.name == "ghmc" else None


def _shape(logits: Tensor, labels: Tensor, binary: bool) -> tuple[Tensor, Tensor]:
    if binary:
        return logits.squeeze(-1), labels.to(logits.dtype)
    return logits, labels


def _module(name: str, opts: dict[str, float | None], binary: bool, sync: bool) -> torch.nn.Module:
    if name in {"ce", "weighted-ce", "logit-adjust"}:
        smoothing = _num(opts, "label_smoothing", 0.0)
        return fk.BinaryCrossEntropyLoss(label_smoothing=smoothing, sync=sync) if binary else fk.CrossEntropyLoss(
            label_smoothing=smoothing, sync=sync)
    if name == "focal":
        gamma = _num(opts, "gamma", 2.0)
        if binary:
            return fk.SigmoidFocalLoss(gamma=gamma, alpha=opts["alpha"], sync=sync)
        return fk.SoftmaxFocalLoss(gamma=gamma, alpha=opts["alpha"], sync=sync)
    if name == "hard":
        threshold = _num(opts, "threshold", 0.5)
        return fk.SigmoidHardTruncationLoss(threshold=threshold, sync=sync) if binary else \
            fk.SoftmaxHardTruncationLoss(threshold=threshold, sync=sync)
    if name == "soft":
        k = _num(opts, "k", 1.0)
        return fk.SigmoidSoftTruncationLoss(k=k, sync=sync) if binary else fk.SoftmaxSoftTruncationLoss(k=k, sync=sync)
    bins = opts["bins"]
    if bins is None or float(bins) != int(bins):
        raise SpecError(f"--losses: ghmc bins must be a whole number; got {bins}.")
    return fk.GHMCLoss(bins=int(bins), momentum=_num(opts, "momentum", 0.0), sync=sync)


def _num(opts: dict[str, float | None], key: str, default: float) -> float:
    value = opts.get(key)
    return default if value is None else float(value)
