"""Loss specs of the command line: ``focal:gamma=2,alpha=0.25`` → a configured focalkit loss.

Each name maps to the sigmoid form for a two-class problem (one logit) and the softmax form
otherwise. Two controls sit beside the article losses: class-weighted cross-entropy and logit
adjustment (Menon et al., 2021), the two things a practitioner would try first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

import focalkit as fk
from focalkit import _inputs as I
from focalkit._spec import split_spec, value_of

__all__ = ["LOSSES", "LossSpec", "SpecError", "TrainingLoss", "build_loss", "parse_spec"]


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
    "focal": LossInfo("focal loss; gamma_hard: the γ where p_t < 0.2 (adaptive, Mukhoti et al. 2020: "
                      "focal:gamma=3,gamma_hard=5 is FLSD-53)", {"gamma": 2.0, "alpha": None, "gamma_hard": None},
                      {"gamma": 2.0, "alpha": 0.25, "gamma_hard": None}),
    "hard": LossInfo("hard-truncated cross-entropy (seed 000)", {"threshold": 0.5}),
    "soft": LossInfo("softened truncation (seed 000)", {"k": 1.0}),
    "ghmc": LossInfo("GHM-C (seed 003; binary only: sigmoid)", {"bins": 10, "momentum": 0.0}),
    "balanced-softmax": LossInfo("balanced softmax, CE(x + log n_c) (Ren et al. 2020; multi-class only)", {}),
    "asl": LossInfo("asymmetric loss (Ridnik et al. 2021; binary / multi-label only: sigmoid)",
                    {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05}),
    "poly1": LossInfo("poly-1 cross-entropy, CE + epsilon·(1 − p_t) (Leng et al. 2022)", {"epsilon": 1.0}),
    "ldam": LossInfo("LDAM, CE(s·(x − m_y)), m_c ∝ n_c^-1/4 (Cao et al. 2019; multi-class only; scale 1 "
                     "here: the models give raw logits, not the paper's cosine ones)",
                     {"max_margin": 0.5, "scale": 1.0}),
    "dice": LossInfo("Dice loss per image and class (Milletari et al. 2016); for table rows one soft F1 per "
                     "class over the batch (batch=1: over the batch for masks too)", {"batch": None}),
    "dice-focal": LossInfo("Dice loss + lambda_focal · focal loss (MONAI's DiceFocalLoss)",
                           {"gamma": 2.0, "lambda_focal": 1.0, "batch": None}),
}

MULTICLASS_ONLY = {"balanced-softmax", "ldam"}
BINARY_ONLY = {"ghmc", "asl"}

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


def parse_spec(text: str) -> LossSpec:
    """``name`` or ``name:key=value,key=value`` (the grammar of :mod:`focalkit._spec`; numbers or none here)."""
    try:
        name, pairs = split_spec(text, what="--losses")
    except (TypeError, ValueError) as err:
        raise SpecError(str(err)) from err
    if name not in LOSSES:
        raise SpecError(f"--losses: unknown loss {name!r} in {text!r}; choose from {', '.join(LOSSES)}.")
    params: list[tuple[str, float | None]] = []
    for key, value in pairs:
        if key not in LOSSES[name].defaults:
            allowed = ", ".join(LOSSES[name].defaults) or "none"
            raise SpecError(f"--losses: {name} takes {allowed}; got {key!r} in {text!r}.")
        try:
            number = value_of(value)
        except ValueError:
            number = True  # refused below
        if isinstance(number, bool):
            raise SpecError(f"--losses: {key} must be a number or none; got {value!r} in {text!r}.")
        params.append((key, None if number is None else float(number)))
    return LossSpec(name, tuple(params), text.strip())


class TrainingLoss:
    """The loss a ``fit`` trains with: ``loss(logits, target)`` → a scalar tensor.

    Layouts: with two classes the model has one logit per position, ``[N]``, ``[N, 1]``,
    ``[N, *]`` or ``[N, 1, *]``, and ``target`` holds 0/1 shaped ``[N]`` / ``[N, *]`` (a channel
    dimension of 1 on the logits is dropped; two logits per position are refused, naming the two ways out);
    with ``C > 2`` classes logits are ``[N, C, *]`` and
    ``target`` class ids ``[N, *]``. ``ignore_index`` (e.g. 255 for masks) marks positions that
    count for nothing.

    Attributes a ``fit`` may read: ``spec`` (the :class:`LossSpec`), ``name``, ``options`` (the
    spec's options with defaults), ``num_classes``, ``binary``, ``class_counts``, ``module`` (the
    focalkit module; GHM-C's holds its running counts) and ``ghm`` (that module for GHM-C, else
    ``None``).
    """

    def __init__(self, spec: LossSpec, *, num_classes: int, class_counts: np.ndarray | None = None,
                 sync: bool = False, ignore_index: int | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.num_classes = int(num_classes)
        self.binary = self.num_classes == 2
        self.options = spec.options(self.binary)
        self.ignore_index = ignore_index
        if spec.name in NEEDS_COUNTS and class_counts is None:
            raise SpecError(f"--losses: {spec} needs the training class counts (class_counts=).")
        self.class_counts = None if class_counts is None else np.asarray(class_counts, dtype=np.float64)
        if self.class_counts is not None and (len(self.class_counts) != self.num_classes
                                              or (self.class_counts < 0).any()):
            raise SpecError(f"class_counts: expected {self.num_classes} non-negative counts; got "
                            f"{self.class_counts.tolist()}.")
        try:
            if spec.name in BINARY_ONLY and not self.binary:
                raise SpecError(f"--losses: {spec.name} is defined for binary problems (sigmoid) only; this data "
                                f"has {num_classes} classes.")
            if spec.name in MULTICLASS_ONLY and self.binary:
                raise SpecError(f"--losses: {spec.name} is a multi-class (softmax) loss; this data has 2 classes "
                                "(logit-adjust is its binary form).")
            self.module = _module(spec.name, self.options, self.binary, sync, ignore_index,
                                  counts=None if self.class_counts is None else np.maximum(self.class_counts, 1))
        except (ValueError, TypeError) as err:
            if isinstance(err, SpecError):
                raise
            raise SpecError(f"--losses: {spec}: {err}") from err
        self.ghm = self.module if spec.name == "ghmc" else None
        self._weights = self._shift = None
        if spec.name == "weighted-ce":
            counts = self.class_counts
            weights = (counts.sum() / (self.num_classes * np.maximum(counts, 1))) ** _num(self.options, "power", 1.0)
            self._weights = torch.tensor(weights, dtype=torch.float32)
        if spec.name == "logit-adjust":
            log_prior = torch.log(torch.tensor(np.maximum(self.class_counts, 1) / max(self.class_counts.sum(), 1),
                                               dtype=torch.float32))
            tau = _num(self.options, "tau", 1.0)
            self._shift = tau * ((log_prior[1] - log_prior[0]).reshape(()) if self.binary else log_prior)

    def __repr__(self) -> str:
        return f"TrainingLoss({self.spec}, num_classes={self.num_classes})"

    def __str__(self) -> str:
        return str(self.spec)

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.binary:
            if logits.ndim == target.ndim + 1 and logits.ndim >= 2 and logits.shape[1] == 1:
                logits = logits.squeeze(1)
            elif target.ndim == logits.ndim + 1 and target.ndim >= 2 and target.shape[1] == 1:
                target = target.squeeze(1)
            elif logits.ndim == target.ndim + 1 and logits.ndim >= 2 and logits.shape[1] == 2:
                raise ValueError(
                    f"{self.spec}: num_classes=2 means one logit per position (the sigmoid losses), but the model "
                    f"gives two: logits {tuple(logits.shape)}, target {tuple(target.shape)}. Either give the model "
                    "one output (e.g. nn.Linear(d, 1)), or pass the loss the log-odds logits[:, 1] - logits[:, 0] "
                    "(the same model: a softmax over two classes is the sigmoid of that difference).")
        if self._shift is not None:
            shift = self._shift.to(logits.device, logits.dtype)
            if not self.binary:
                shift = shift.reshape(-1, *([1] * (logits.ndim - 2)))
            logits = logits + shift
        labels = target
        if self.binary:
            target = target.to(logits.dtype)
        if self._weights is None:
            return self.module(logits, target)
        ids = labels.long()
        ignore = self.ignore_index if self.binary or self.ignore_index is not None else -100
        if ignore is not None:
            ids = ids.masked_fill(ids == ignore, 0)
        return self.module(logits, target, sample_weight=self._weights.to(logits.device)[ids])


NEEDS_COUNTS = {"weighted-ce", "logit-adjust", "balanced-softmax", "ldam"}


def build_loss(spec: LossSpec, *, num_classes: int, class_counts: np.ndarray | None = None, sync: bool = False,
               ignore_index: int | None = None) -> TrainingLoss:
    """The training loss for a model with one logit (binary) or ``C`` logits (see :class:`TrainingLoss`).

    ``sync`` makes the loss's mean (and GHM-C's histogram) global across torch.distributed ranks.
    Raises :class:`SpecError` when focalkit rejects the options.
    """
    return TrainingLoss(spec, num_classes=num_classes, class_counts=class_counts, sync=sync,
                        ignore_index=ignore_index)


def _module(name: str, opts: dict[str, float | None], binary: bool, sync: bool,
            ignore_index: int | None = None, counts: np.ndarray | None = None) -> torch.nn.Module:
    common: dict = {"sync": sync}
    if ignore_index is not None:
        common["ignore_index"] = ignore_index
    if name == "balanced-softmax":
        return fk.BalancedSoftmaxLoss(class_counts=counts, **common)
    if name == "ldam":
        return fk.LDAMLoss(class_counts=counts, max_margin=_num(opts, "max_margin", 0.5),
                           scale=_num(opts, "scale", 1.0), **common)
    if name in {"ce", "weighted-ce", "logit-adjust"}:
        smoothing = _num(opts, "label_smoothing", 0.0)
        return fk.BinaryCrossEntropyLoss(label_smoothing=smoothing, **common) if binary else fk.CrossEntropyLoss(
            label_smoothing=smoothing, **common)
    if name == "focal":
        gamma, hard = _num(opts, "gamma", 2.0), opts.get("gamma_hard")
        if binary:
            return fk.SigmoidFocalLoss(gamma=gamma, alpha=opts["alpha"], gamma_hard=hard, **common)
        return fk.SoftmaxFocalLoss(gamma=gamma, alpha=opts["alpha"], gamma_hard=hard, **common)
    if name in {"dice", "dice-focal"}:
        return _Region(name, opts, binary, common)
    if name == "asl":
        return fk.AsymmetricLoss(gamma_pos=_num(opts, "gamma_pos", 0.0), gamma_neg=_num(opts, "gamma_neg", 4.0),
                                 clip=_num(opts, "clip", 0.05), **common)
    if name == "poly1":
        epsilon = _num(opts, "epsilon", 1.0)
        if binary:  # the sigmoid form: BCE + ε(1 − p_t)
            return fk.Poly1FocalLoss(epsilon=epsilon, alpha=None, gamma=0.0, **common)
        return fk.Poly1CrossEntropyLoss(epsilon=epsilon, **common)
    if name == "hard":
        threshold = _num(opts, "threshold", 0.5)
        return fk.SigmoidHardTruncationLoss(threshold=threshold, **common) if binary else \
            fk.SoftmaxHardTruncationLoss(threshold=threshold, **common)
    if name == "soft":
        k = _num(opts, "k", 1.0)
        return fk.SigmoidSoftTruncationLoss(k=k, **common) if binary else fk.SoftmaxSoftTruncationLoss(k=k, **common)
    bins = opts["bins"]
    if bins is None or float(bins) != int(bins):
        raise SpecError(f"--losses: ghmc bins must be a whole number; got {bins}.")
    return fk.GHMCLoss(bins=int(bins), momentum=_num(opts, "momentum", 0.0), **common)


class _Region(torch.nn.Module):
    """Dice-type losses in the layouts the models give: one logit per position (binary) gains the channel
    axis the region losses score over; rows without spatial axes (tables) are scored over the batch."""

    def __init__(self, name: str, opts: dict[str, float | None], binary: bool, common: dict) -> None:
        super().__init__()
        self.binary = binary
        self.batch = opts.get("batch")
        if self.batch not in (None, 0.0, 1.0):
            raise SpecError(f"--losses: {name} batch must be 0 or 1; got {self.batch}.")
        self.options = {"activation": "sigmoid" if binary else "softmax", **common}
        if "ignore_index" in common:
            I.check_optional_int(name, "ignore_index", common["ignore_index"])
        if name == "dice-focal":
            self.fn = fk.dice_focal_loss
            # checked now, not at the first step
            self.options.update(gamma=I.check_gamma("dice_focal_loss", _num(opts, "gamma", 2.0)),
                                lambda_focal=I.check_number("dice_focal_loss", "lambda_focal",
                                                            _num(opts, "lambda_focal", 1.0), low=0.0),
                                alpha=None)
        else:
            self.fn = fk.dice_loss

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        if self.binary:
            logits, target = logits.unsqueeze(1), target.unsqueeze(1)
            sample_weight = None if sample_weight is None else sample_weight.unsqueeze(1)
        batch = logits.ndim == 2 or self.batch == 1.0
        return self.fn(logits, target, batch=batch, sample_weight=sample_weight, **self.options)


def _num(opts: dict[str, float | None], key: str, default: float) -> float:
    value = opts.get(key)
    return default if value is None else float(value)
