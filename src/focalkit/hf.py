r"""focalkit in Hugging Face ``Trainer``: ``Trainer(..., compute_loss_func=focalkit.hf.loss_func("focal"))``.

Since transformers 4.46 ``Trainer`` calls ``compute_loss_func(outputs, labels, num_items_in_batch)`` and then
**skips its own normalisation**: the function must divide by ``num_items_in_batch``, the number of targets
(labels ``!= -100``) in the whole accumulated batch, or gradient accumulation silently reweighs the
micro-batches (transformers PR #34191). :func:`loss_func` returns such a function:

.. math:: L = \frac{1}{\texttt{num\_items\_in\_batch}} \sum_{\text{targets } i \text{ of this micro-batch}} \ell_i

so ``gradient_accumulation_steps=k`` with batch ``b`` gives the gradient of one batch of ``k·b``, however the
padding falls; under DDP with ``average_tokens_across_devices`` (the default) Trainer passes the count over all
ranks and multiplies by the number of ranks, so DDP's average is again the whole batch's gradient. Without a
count (``num_items_in_batch=None``) the loss's own ``"mean"`` is returned.

The form follows the model's task, read from ``problem_type`` (or ``config.problem_type``) or, when unset, as
the models decide it (``labels`` integer → single label, floating → multi-label, one logit → regression):

- sequence classification: logits ``[B, C]``, labels ``[B]`` ints → the softmax form, ``-100`` ignored;
- multi-label classification: logits ``[B, C]``, labels ``[B, C]`` floats → the sigmoid form, ``-100`` ignored;
- token classification: logits ``[B, T, C]``, labels ``[B, T]`` ints → the softmax form, ``class_dim=-1``;
- causal LM (outputs of a ``*CausalLMOutput*`` class): logits ``[B, T, V]`` → softmax on ``labels[:, 1:]``;
- regression (one logit): refused.

Needs the ``[hf]`` extra only to train: this module imports neither ``transformers`` nor ``accelerate``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import _inputs as I
from ._spec import split_spec, value_of
from .asymmetric import asymmetric_loss
from .class_balance import balanced_softmax_loss, ldam_loss, logit_adjusted_cross_entropy
from .cross_entropy import binary_cross_entropy, cross_entropy
from .focal import sigmoid_focal_loss, softmax_focal_loss
from .hard_truncation import sigmoid_hard_truncation_loss, softmax_hard_truncation_loss
from .nn import GHMCLoss
from .poly import poly1_cross_entropy, poly1_focal_loss
from .soft_truncation import sigmoid_soft_truncation_loss, softmax_soft_truncation_loss

__all__ = ["HFLoss", "label_counts", "loss_func"]

IGNORE = -100  # Trainer counts num_items_in_batch as labels != -100

SINGLE, MULTI, TOKENS, CAUSAL = ("single_label_classification", "multi_label_classification",
                                 "token_classification", "causal_lm")
PROBLEM_TYPES = (SINGLE, MULTI, TOKENS, CAUSAL, "regression")

# name → (softmax form, sigmoid form); None where the form does not exist
_FORMS: dict[str, tuple[Callable | None, Callable | None]] = {
    "ce": (cross_entropy, binary_cross_entropy),
    "weighted-ce": (cross_entropy, None),
    "focal": (softmax_focal_loss, sigmoid_focal_loss),
    "hard": (softmax_hard_truncation_loss, sigmoid_hard_truncation_loss),
    "soft": (softmax_soft_truncation_loss, sigmoid_soft_truncation_loss),
    "poly1": (poly1_cross_entropy, poly1_focal_loss),
    "asl": (None, asymmetric_loss),
    "ghmc": (None, GHMCLoss),
    "logit-adjust": (logit_adjusted_cross_entropy, None),
    "balanced-softmax": (balanced_softmax_loss, None),
    "ldam": (ldam_loss, None),
}
_NEEDS_COUNTS = {"weighted-ce", "logit-adjust", "balanced-softmax", "ldam"}
# set by the function itself; an option of these names would be overridden
_RESERVED = {"logits", "target", "reduction", "normalizer", "sync", "class_dim", "ignore_index", "sample_weight"}
_REGION = {"dice", "dice-focal", "tversky", "focal-tversky"}


def _options_of(form: Callable) -> set[str]:
    params = inspect.signature(form.__init__ if isinstance(form, type) else form).parameters
    return {p for p in params if p not in _RESERVED and p != "self"}


class HFLoss:
    """The ``compute_loss_func`` :func:`loss_func` returns: ``loss(outputs, labels, num_items_in_batch=None)``.

    Attributes: ``name`` (the loss's name), ``options`` (its keyword options), ``problem_type`` (``None``:
    decided per call from the labels, as the models do), ``ghm`` (GHM-C's module with its running counts, else
    ``None``).
    """

    def __init__(self, name: str, options: dict[str, Any], *, problem_type: str | None,
                 class_counts: Tensor | None, label: str) -> None:
        self.name, self.options, self.problem_type = name, options, problem_type
        self.class_counts, self._label = class_counts, label
        softmax, sigmoid = _FORMS[name]
        self.ghm = GHMCLoss(reduction="sum", ignore_index=IGNORE, **options) if name == "ghmc" else None
        self._forms = {"softmax": softmax, "sigmoid": sigmoid}

    def __repr__(self) -> str:
        return f"focalkit.hf.loss_func({self._label!r}, problem_type={self.problem_type!r})"

    def __call__(self, outputs: Any, labels: Tensor | None, num_items_in_batch: Tensor | int | None = None,
                 **_: Any) -> Tensor:
        fn = "focalkit.hf.loss_func"
        if labels is None:
            raise ValueError(f"{fn}: Trainer passed labels=None; the dataset needs a 'labels' column (or set "
                             "TrainingArguments(label_names=...)).")
        logits = _logits_of(outputs)
        task, labels = self._task(logits, labels, outputs)
        if task == CAUSAL:  # position t predicts token t + 1, as transformers' ForCausalLMLoss
            logits, labels = logits[..., :-1, :], labels[..., 1:]
        form = self._forms["sigmoid" if task == MULTI else "softmax"]
        if form is None:
            kind = "multi-label (sigmoid)" if task == MULTI else "single-label (softmax)"
            raise ValueError(f"{fn}: {self.name} has no {kind} form; "
                             f"{_forms_text(self.name)}.")
        counted = num_items_in_batch is not None
        reduction = "sum" if counted else "mean"
        options = dict(self.options)
        if task == MULTI:
            labels = labels.to(logits.dtype)
            if "class_weight" in options:  # one weight per label column
                weight = options.pop("class_weight")
                options["sample_weight"] = _per_label_weight(fn, weight, logits)
        else:
            options["class_dim"] = -1
            if self.name == "weighted-ce":
                counts = self.class_counts.to(logits.device)
                power = float(options.pop("power", 1.0))
                options["class_weight"] = (counts.sum() / (counts.numel() * counts)) ** power
        if self.name in {"balanced-softmax", "ldam"}:
            options["class_counts"] = self.class_counts.to(logits.device)
        if self.name == "logit-adjust":
            options["class_prior"] = (self.class_counts / self.class_counts.sum()).to(logits.device)
        if self.ghm is not None:
            loss = self.ghm.to(logits.device)(logits, labels)
            if not counted:
                loss = loss / _valid(labels).clamp_min(1)
        else:
            loss = form(logits, labels, ignore_index=IGNORE, reduction=reduction, **options)
        if not counted:
            return loss
        # an accumulated batch without one target (all -100) has a sum of 0: 0, not 0/0
        if torch.is_tensor(num_items_in_batch):
            return loss / num_items_in_batch.to(loss.device).clamp_min(1)
        return loss / max(num_items_in_batch, 1)

    def _task(self, logits: Tensor, labels: Tensor, outputs: Any) -> tuple[str, Tensor]:
        """The task, and the labels as its loss takes them (``[B, 1]`` class ids flattened, as the models do)."""
        fn = "focalkit.hf.loss_func"
        task = self.problem_type
        if task is None:
            if type(outputs).__name__.startswith("CausalLMOutput"):
                task = CAUSAL
            elif logits.shape[-1] == 1:
                task = "regression"
            elif not labels.is_floating_point():
                task = TOKENS if logits.ndim >= 3 else SINGLE
            else:
                task = MULTI
        if task == "regression":
            raise ValueError(f"{fn}: a regression head (problem_type='regression', or num_labels=1: logits "
                             f"{tuple(logits.shape)}) has no classification loss; focalkit's losses need "
                             "num_labels >= 2 (single- or multi-label) or token labels.")
        if task == MULTI:
            if labels.shape != logits.shape:
                raise ValueError(f"{fn}: multi-label classification needs labels shaped like the logits "
                                 f"{tuple(logits.shape)} (0/1 or soft per label); got {tuple(labels.shape)}.")
            return task, labels
        if labels.is_floating_point():
            raise ValueError(f"{fn}: {task} needs integer class ids (torch.long) as labels; got {labels.dtype}. "
                             "Multi-label float labels shaped like the logits go with "
                             "problem_type='multi_label_classification'.")
        if task == SINGLE and labels.shape != logits.shape[:-1]:
            labels = labels.reshape(logits.shape[:-1]) if labels.numel() == logits.shape[:-1].numel() else labels
        if labels.shape != logits.shape[:-1]:
            raise ValueError(f"{fn}: {task} needs labels of shape {tuple(logits.shape[:-1])} for logits "
                             f"{tuple(logits.shape)} (classes last); got {tuple(labels.shape)}.")
        return task, labels


def _logits_of(outputs: Any) -> Tensor:
    if isinstance(outputs, Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        if "logits" not in outputs:
            raise ValueError(f"focalkit.hf.loss_func: the model's outputs have no 'logits'; keys: {list(outputs)}.")
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], Tensor):
        return outputs[0]
    logits = getattr(outputs, "logits", None)
    if not isinstance(logits, Tensor):
        raise TypeError(f"focalkit.hf.loss_func: expected model outputs with .logits; got {type(outputs).__name__}.")
    return logits


def _valid(labels: Tensor) -> Tensor:
    return (labels != IGNORE).sum()


def _per_label_weight(fn: str, weight: Any, logits: Tensor) -> Tensor:
    w = I.as_class_vector(fn, "class_weight", weight)
    if w.numel() != logits.shape[-1]:
        raise ValueError(f"{fn}: class_weight needs one value per label ({logits.shape[-1]}); got {w.numel()}.")
    return w.to(logits.device, logits.dtype)


def _forms_text(name: str) -> str:
    softmax, sigmoid = _FORMS[name]
    if softmax is None:
        return "it is a sigmoid loss: multi-label labels (float, shaped like the logits)"
    if sigmoid is None:
        return "it is a softmax loss: single-label or token classification (integer labels)"
    return "both forms exist"


def loss_func(loss: str = "focal", *, problem_type: str | None = None, config: Any = None,
              class_counts: Any = None, **options: Any) -> HFLoss:
    r"""A ``compute_loss_func`` for ``transformers.Trainer``, normalised as Trainer expects (see the module).

    Args:
        loss: a loss name or spec, in ``focalkit compare``'s grammar: ``"focal"``, ``"focal:gamma=2,alpha=0.25"``,
            ``"ce:label_smoothing=0.1"``; or the ``loss_fn`` that :func:`focalkit.compare.run` passes to a ``fit``
            (its spec and class counts are used). Names: ``ce``, ``weighted-ce`` (weights ``n/(C·n_c)``, or
            ``^power``), ``focal``, ``hard``, ``soft``, ``poly1``, ``asl`` and ``ghmc`` (sigmoid only),
            ``logit-adjust``, ``balanced-softmax``, ``ldam`` (softmax only; these and ``weighted-ce`` need
            ``class_counts``). The keys are the focalkit function's own options.
        problem_type: one of ``"single_label_classification"``, ``"multi_label_classification"``,
            ``"token_classification"``, ``"causal_lm"``; ``None`` reads ``config.problem_type`` or decides per
            batch from the labels, as the models do. ``"regression"`` is refused.
        config: the model's config (``model.config``), to read its ``problem_type``.
        class_counts: training targets per class, e.g. ``label_counts(train_dataset["labels"], num_labels)``.
        **options: more options of the focalkit function (they override the spec's), e.g.
            ``class_weight=focalkit.class_balanced_weights(counts)`` (softmax forms; for multi-label one weight
            per label column), ``alpha=[...]``, ``label_smoothing=0.1``, ``pos_weight=`` (``ce``, multi-label).

    ``class_weight`` with a count (``num_items_in_batch``) gives ``Σ w_{y_i} ℓ_i / n`` — the count of targets,
    not torch's ``Σ w_{y_i}`` (the weights of the whole accumulated batch are not known to the function); the two
    differ by a factor that varies from batch to batch, while this one keeps accumulation exact.

    Region losses (Dice, Tversky) are refused: they are not sums over targets, so no count can normalise them.

    Examples:
        >>> import torch, focalkit.hf as hf
        >>> f = hf.loss_func("focal:gamma=2")
        >>> logits, labels = torch.tensor([[[2.0, -1.0], [0.0, 0.0]]]), torch.tensor([[0, -100]])
        >>> round(f({"logits": logits}, labels, num_items_in_batch=torch.tensor(1)).item(), 6)
        0.000109
    """
    fn = "focalkit.hf.loss_func"
    if hasattr(loss, "spec") and hasattr(loss, "class_counts"):  # the TrainingLoss focalkit.compare.run gives fit
        class_counts = loss.class_counts if class_counts is None else class_counts
        loss = str(loss.spec)
    name, pairs = split_spec(loss, what=f"{fn}: loss")
    if name in _REGION:
        raise ValueError(f"{fn}: {name} is a region loss (a ratio over the batch, not a sum over targets): "
                         "Trainer's num_items_in_batch cannot normalise it, and gradient accumulation would change "
                         "it. Use it in your own training loop (focalkit.dice_loss).")
    if name not in _FORMS:
        raise ValueError(f"{fn}: unknown loss {name!r}; choose from {', '.join(_FORMS)}.")
    spec: dict[str, Any] = {}
    for key, text in pairs:
        try:
            spec[key] = value_of(text)
        except ValueError as err:
            raise ValueError(f"{fn}: {key} must be a number, true/false or none; got {text!r} in {loss!r}.") from err
    merged = {**spec, **options}
    allowed = set().union(*(_options_of(f) for f in _FORMS[name] if f is not None))
    if name == "weighted-ce":
        allowed = (allowed | {"power"}) - {"class_weight"}
    if name in _NEEDS_COUNTS:
        allowed -= {"class_counts", "class_prior"}
    for key in merged:
        if key in _RESERVED:
            raise ValueError(f"{fn}: {key} is set by the function ({_reserved_reason(key)}); remove it.")
        if key not in allowed:
            raise ValueError(f"{fn}: {name} takes {', '.join(sorted(allowed))}; got {key!r}.")
    if "gamma_hard" in merged and merged["gamma_hard"] is None:
        del merged["gamma_hard"]
    problem = problem_type if problem_type is not None else getattr(config, "problem_type", None)
    if problem is not None and problem not in PROBLEM_TYPES:
        raise ValueError(f"{fn}: problem_type must be one of {', '.join(PROBLEM_TYPES)} or None; got {problem!r}.")
    if problem == "regression":
        raise ValueError(f"{fn}: problem_type='regression' has no classification loss.")
    counts = None
    if class_counts is not None:
        counts = torch.as_tensor(np.asarray(class_counts, dtype=np.float64))
        if counts.ndim != 1 or not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
            raise ValueError(f"{fn}: class_counts must be one non-negative count per class; got {class_counts!r}.")
        counts = counts.to(torch.float32).clamp_min(1.0)
    elif name in _NEEDS_COUNTS:
        raise ValueError(f"{fn}: {name} needs the training class counts: class_counts=label_counts(train_labels, "
                         "num_labels).")
    return HFLoss(name, merged, problem_type=problem, class_counts=counts, label=loss)


def _reserved_reason(key: str) -> str:
    return {"ignore_index": "Trainer counts labels != -100", "class_dim": "classes are last in transformers' logits",
            "reduction": "a sum divided by Trainer's num_items_in_batch", "normalizer": "Trainer's num_items_in_batch",
            "sync": "Trainer averages over ranks",
            "sample_weight": "per-example weights would have to come with each batch; use class_weight",
            }.get(key, "the logits and labels come from Trainer")


def label_counts(labels: Any, num_labels: int, *, multi_label: bool = False) -> np.ndarray:
    """Targets per class in a dataset's label column, ``-100`` left out: the ``class_counts`` of
    :func:`loss_func` and :func:`focalkit.class_balanced_weights`.

    ``labels``: class ids (``train_dataset["labels"]`` of a sequence-classification set), lists of token ids
    per example (token classification, any lengths), or with ``multi_label=True`` rows of 0/1 per label (the
    count is the positives of each label). Returns ``num_labels`` float64 counts.

    Examples:
        >>> label_counts([[0, 0, 2, -100], [1, 0]], 3).tolist()
        [3.0, 1.0, 1.0]
    """
    fn = "focalkit.hf.label_counts"
    num_labels = I.check_int(fn, "num_labels", num_labels, low=1)
    rows = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    if multi_label:
        table = np.asarray(rows, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != num_labels:
            raise ValueError(f"{fn}: multi_label=True needs rows of {num_labels} values; got shape {table.shape}.")
        return np.where(table == IGNORE, 0.0, table).sum(axis=0)
    flat = np.asarray(_flatten(rows), dtype=np.float64)
    flat = flat[flat != IGNORE]
    bad = flat[(flat < 0) | (flat >= num_labels) | (flat != np.round(flat))]
    if bad.size:
        raise ValueError(f"{fn}: labels must be class ids in [0, {num_labels}) or -100; got {bad[0]:g}.")
    return np.bincount(flat.astype(np.int64), minlength=num_labels).astype(np.float64)


def _flatten(rows: list) -> list:
    out: list = []
    for row in rows:
        if isinstance(row, (list, tuple)):
            out.extend(_flatten(list(row)))
        elif hasattr(row, "tolist") and not np.isscalar(row):
            out.extend(_flatten(np.asarray(row).ravel().tolist()))
        else:
            out.append(row)
    return out
