"""The one place that inspects inputs, raises on them, and reduces per-element losses.

Every public loss goes through here: options are checked (no device work), tensors are checked
for shape and dtype (no device work), and, unless switched off, for their values (ranges,
NaN/Inf), which needs a device-to-host synchronisation. Switch the value checks off globally
with :func:`set_value_checks`, for a block of one thread or asyncio task with :func:`value_checks`,
or as the process default with the environment variable ``FOCALKIT_CHECKS=0``. Under
``torch.compile`` and ``torch.func`` transforms, and for meta tensors, they are skipped.

Errors read ``<function>: <what was expected>; got <what came>.``: ``ValueError`` for shapes and
values, ``TypeError`` for dtypes.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "REDUCTIONS",
    "SigmoidInputs",
    "SoftmaxInputs",
    "check_reduction",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
]

REDUCTIONS = ("none", "mean", "sum")


_ENV_VALUES = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "off": False,
               "no": False}


def _env_checks() -> bool:
    value = os.environ.get("FOCALKIT_CHECKS", "1").strip().lower()
    if value not in _ENV_VALUES:
        raise ValueError(f"FOCALKIT_CHECKS must be one of 1, 0, true, false, on, off, yes, no; got "
                         f"{os.environ['FOCALKIT_CHECKS']!r}.")
    return _ENV_VALUES[value]


_VALUE_CHECKS = _env_checks()  # the process default
# a value_checks() block's setting: per thread and per asyncio task (a block in one leaves the others alone)
_BLOCK: contextvars.ContextVar[bool | None] = contextvars.ContextVar("focalkit_value_checks", default=None)


def value_checks_enabled() -> bool:
    """Whether value checks (ranges, NaN/Inf; each a device sync) run now: the innermost
    :func:`value_checks` block of this thread or task, else the process default; never under
    ``torch.compile`` nor under a ``torch.func`` transform (a batched value cannot be read on the host)."""
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return False
    block = _BLOCK.get()
    return _VALUE_CHECKS if block is None else block


def _checks_values(t: Tensor) -> bool:
    """Value checks for ``t``: enabled, and ``t`` has values to read (not empty, not on the meta device)."""
    return t.numel() > 0 and t.device.type != "meta" and value_checks_enabled()


def set_value_checks(enabled: bool) -> None:
    """Switch the value checks on or off for the whole process (the default of every thread; a
    :func:`value_checks` block still decides inside it).

    Shape, dtype and option checks always run: they cost nothing on the device.
    """
    global _VALUE_CHECKS
    _VALUE_CHECKS = bool(enabled)


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Context manager: value checks on or off inside the block, restored after it. The setting belongs
    to the block's thread (and asyncio task): other threads keep theirs.

    Examples:
        >>> import focalkit
        >>> with focalkit.value_checks(False):
        ...     pass
    """
    token = _BLOCK.set(bool(enabled))
    try:
        yield
    finally:
        _BLOCK.reset(token)


# ----------------------------------------------------------------------------------------------
# options (plain Python values; checked by functions and by module constructors alike)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_reduction(fn: str, reduction: object) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of 'none', 'mean', 'sum'; got {reduction!r}.")
    return reduction  # type: ignore[return-value]


def check_number(
    fn: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in a (half-)open or closed interval."""
    if isinstance(value, Tensor) and value.ndim == 0 and not value.dtype.is_complex:
        value = value.item()
    if not _is_real(value):
        raise TypeError(f"{fn}: {name} must be a finite real number; got {value!r}.")
    if not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{fn}: {name} must be a finite real number; got {value!r}.")
    v = float(value)  # type: ignore[arg-type]
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{fn}: {name} must be in {interval}; got {v:g}.")
    return v


def check_gamma(fn: str, gamma: object) -> float:
    return check_number(fn, "gamma", gamma, low=0.0)


def check_adaptive_gamma(fn: str, gamma_hard: object, hard_threshold: object) -> tuple[float | None, float]:
    """An adaptive focal loss's ``gamma_hard`` (``None``: off, else ``≥ 0``) and its ``0 < hard_threshold < 1``."""
    thr = check_number(fn, "hard_threshold", hard_threshold, low=0.0, high=1.0, low_open=True, high_open=True)
    return (None if gamma_hard is None else check_number(fn, "gamma_hard", gamma_hard, low=0.0)), thr


def check_epsilon(fn: str, epsilon: object) -> float:
    """Poly-1's ``ε ≥ −1``: that keeps ``−log p + ε(1 − p)`` decreasing in ``p`` (its slope is ``−1/p − ε``); a
    loss that rewards the wrong class for lower ``ε`` is not one anyone trains with (the paper's search spans
    −1 … 8)."""
    return check_number(fn, "epsilon", epsilon, low=-1.0)


def check_asl_options(fn: str, gamma_pos: object, gamma_neg: object, clip: object) -> tuple[float, float, float]:
    """ASL's ``γ₊ ≥ 0``, ``γ₋ ≥ 0`` and ``clip`` in ``[0, 1)``."""
    return (check_number(fn, "gamma_pos", gamma_pos, low=0.0), check_number(fn, "gamma_neg", gamma_neg, low=0.0),
            check_number(fn, "clip", clip, low=0.0, high=1.0, high_open=True))


def check_bool(fn: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be True or False; got {value!r}.")
    return value


def check_varifocal_options(fn: str, alpha: object, gamma: object, iou_weighted: object) -> tuple[float, float, bool]:
    """VFL's ``α ≥ 0`` (the negatives' scale), ``γ ≥ 0`` and ``iou_weighted`` (a bool)."""
    weighted = check_bool(fn, "iou_weighted", iou_weighted)
    return check_number(fn, "alpha", alpha, low=0.0), check_gamma(fn, gamma), weighted


def check_qfl_beta(fn: str, beta: object) -> float:
    """QFL's ``β``: 0 (cross-entropy) or ``β ≥ 1``; for ``0 < β < 1`` the slope of ``|σ(x) − q|^β`` is
    infinite where the score meets its target, so training would step by inf (GFL uses β = 2)."""
    b = check_number(fn, "beta", beta, low=0.0)
    if 0.0 < b < 1.0:
        raise ValueError(f"{fn}: beta must be 0 or >= 1 (the loss's slope is infinite where sigmoid(logits) "
                         f"meets the target for 0 < beta < 1); got {b:g}.")
    return b


def check_label_smoothing(fn: str, label_smoothing: object) -> float:
    return check_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)


def check_int(fn: str, name: str, value: object, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an integer; got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"{fn}: {name} must be >= {low}; got {value}.")
    return int(value)


def check_optional_int(fn: str, name: str, value: object) -> int | None:
    return None if value is None else check_int(fn, name, value)


def as_class_vector(fn: str, name: str, value: object, *, high: float | None = None) -> Tensor | None:
    """A per-class vector (list, tuple, array or tensor) as a 1-D floating tensor, range-checked. Numbers
    given as a list, tuple or array are kept in float64 (exact), cast to the compute dtype where used."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        vec = value
    elif isinstance(value, Sequence) or hasattr(value, "__array__"):
        try:
            vec = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{fn}: {name} must be a sequence of numbers; got {value!r}.") from err
    else:
        raise TypeError(f"{fn}: {name} must be a 1-D tensor or a sequence of numbers, one per class; got {value!r}.")
    if vec.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, one value per class; got shape {tuple(vec.shape)}.")
    if vec.dtype.is_complex or vec.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must hold real numbers; got {vec.dtype}.")
    if not vec.dtype.is_floating_point:
        vec = vec.to(torch.get_default_dtype())
    if _checks_values(vec):
        lo, hi = _range_of(vec)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or (high is not None and hi > high):
            interval = f"[0, {high:g}]" if high is not None else "[0, inf)"
            raise ValueError(f"{fn}: {name} values must be finite and in {interval}; got values in "
                             f"[{_show_number(lo)}, {_show_number(hi)}].")
    return vec


def check_alpha_binary(fn: str, alpha: object) -> float | None:
    if _is_real(alpha) and alpha == -1:  # torchvision's sentinel
        raise ValueError(f"{fn}: alpha must be in [0, 1] or None; got -1. torchvision's alpha=-1 (no weighting) "
                         "is alpha=None here.")
    return None if alpha is None else check_number(fn, "alpha", alpha, low=0.0, high=1.0)


def check_alpha_multiclass(fn: str, alpha: object) -> float | Tensor | None:
    """``None``, a scalar in [0, 1] applied to every class, or a per-class vector in [0, 1]."""
    if alpha is None:
        return None
    if _is_real(alpha) or (isinstance(alpha, Tensor) and alpha.ndim == 0):
        return check_number(fn, "alpha", alpha, low=0.0, high=1.0)
    return as_class_vector(fn, "alpha", alpha, high=1.0)


NORMALIZER_MODES = ("positives", "valid")


def check_normalizer(fn: str, normalizer: object, reduction: str, *,
                     positives: bool = True) -> float | Tensor | str | None:
    """A number, a 1-element tensor, ``"valid"`` or (sigmoid family) ``"positives"``; only with ``"mean"``."""
    if normalizer is None:
        return None
    if reduction != "mean":
        raise ValueError(
            f"{fn}: normalizer replaces the denominator of reduction='mean'; got reduction={reduction!r}. "
            "Pass reduction='mean' or drop normalizer."
        )
    if isinstance(normalizer, str):
        allowed = NORMALIZER_MODES if positives else ("valid",)
        if normalizer not in allowed:
            extra = "" if positives else " ('positives' belongs to the sigmoid family)"
            raise ValueError(f"{fn}: normalizer must be a number, a tensor or one of "
                             f"{', '.join(repr(a) for a in allowed)}{extra}; got {normalizer!r}.")
        return normalizer
    if isinstance(normalizer, Tensor):
        if normalizer.numel() != 1:
            raise ValueError(
                f"{fn}: normalizer must be a number or a 1-element tensor; got shape {tuple(normalizer.shape)}."
            )
        if normalizer.dtype.is_complex or normalizer.dtype == torch.bool:
            raise TypeError(f"{fn}: normalizer must be real; got {normalizer.dtype}.")
        if _checks_values(normalizer):
            v = float(normalizer.detach())
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{fn}: normalizer must be finite and > 0; got {v:g}.")
        return normalizer.reshape(())
    return check_number(fn, "normalizer", normalizer, low=0.0, low_open=True)


def check_sync(fn: str, sync: object, reduction: str = "mean", per_element: bool = False) -> object:
    """``False``/``None`` (local), ``True`` (the default process group) or a ``ProcessGroup``.

    ``sync`` scales a reduced loss; with ``reduction="none"`` it would do nothing and is refused, unless
    the elements' losses themselves depend on the whole batch (``per_element``: GHM-C's histogram).
    """
    if sync is None or isinstance(sync, bool):
        group: object = bool(sync)
    else:
        import torch.distributed as dist

        if not (dist.is_available() and isinstance(sync, dist.ProcessGroup)):
            raise TypeError(
                f"{fn}: sync must be a bool or a torch.distributed ProcessGroup; got {type(sync).__name__}.")
        group = sync
    if group is not False and reduction == "none" and not per_element:
        raise ValueError(
            f"{fn}: sync has no effect with reduction='none' (it scales a reduced loss across ranks); "
            "drop sync, or reduce with 'mean' or 'sum'.")
    return group


# ----------------------------------------------------------------------------------------------
# tensors


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every narrower float is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_dtype(x: Tensor) -> torch.dtype:
    """The dtype of the loss: the logits' own, but float32 for half logits under ``torch.autocast``, where
    PyTorch runs its losses in float32 and returns float32 (a half ``"sum"`` would overflow). Half logits
    outside autocast give a half loss, as PyTorch's losses do."""
    if x.dtype in (torch.float16, torch.bfloat16):
        try:
            on = torch.is_autocast_enabled(x.device.type)
        except TypeError:  # torch < 2.4
            on = torch.is_autocast_cpu_enabled() if x.device.type == "cpu" else torch.is_autocast_enabled()
        if on:
            return torch.float32
    return x.dtype


def check_logits(fn: str, logits: object, *, name: str = "logits") -> Tensor:
    """A floating tensor with finite values (``name``: what the caller calls it, e.g. GHM-R's ``pred``)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(logits).__name__}.")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{fn}: {name} must be a floating-point tensor; got {logits.dtype}.")
    # one fast reduction: a NaN or Inf input makes the sum NaN or Inf; a sum that overflowed on
    # finite inputs is told apart by the exact check, which runs only then
    if (_checks_values(logits) and not bool(torch.isfinite(logits.detach().sum()))
            and not bool(torch.isfinite(logits).all())):
        raise ValueError(f"{fn}: {name} must be finite; got NaN or Inf values.")
    return logits


def check_tensor(fn: str, name: str, value: object, logits: Tensor | None = None) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(value).__name__}.")
    if logits is not None:
        check_device(fn, name, value, logits)
    return value


def check_device(fn: str, name: str, t: Tensor, logits: Tensor) -> None:
    """``t`` on the logits' device: a CPU weight beside CUDA logits is the caller's mistake, named here,
    not a kernel failure found later."""
    if t.device != logits.device:
        raise ValueError(f"{fn}: {name} must be on the logits' device ({logits.device}); got {t.device}.")


def _probability_stats(t: Tensor) -> tuple[float, float, float, float]:
    """min, max, and the sum over the classes (axis 1) farthest from both 1 and 0 with that distance:
    one device sync."""
    td = t.detach()
    acc = torch.float64 if td.dtype == torch.float64 else torch.float32
    sums = td.sum(1, dtype=acc).reshape(-1)
    off = torch.minimum((sums - 1.0).abs(), sums.abs())  # a row of zeros is allowed: it adds nothing
    worst = off.argmax()
    lo, hi = torch.aminmax(td.reshape(-1))
    lo, hi, total, dist = torch.stack([lo.to(acc), hi.to(acc), sums[worst], off[worst]]).tolist()
    return lo, hi, total, dist


def _show_number(v: float) -> str:
    """``v`` for a message: ``:g``, never a negative zero."""
    return f"{v + 0.0:g}"


def _range_of(t: Tensor) -> tuple[float, float]:
    lo, hi = torch.aminmax(t.detach().reshape(-1))
    return float(lo), float(hi)


def check_sample_weight(fn: str, sample_weight: object, loss_shape: torch.Size, logits: Tensor) -> Tensor | None:
    if sample_weight is None:
        return None
    w = check_tensor(fn, "sample_weight", sample_weight, logits)
    if w.dtype.is_complex:
        raise TypeError(f"{fn}: sample_weight must be real or bool; got {w.dtype}.")
    try:
        shape = torch.broadcast_shapes(w.shape, loss_shape)
    except RuntimeError:
        shape = None
    if shape != loss_shape:
        raise ValueError(
            f"{fn}: sample_weight must broadcast to the per-element loss shape {tuple(loss_shape)}; "
            f"got {tuple(w.shape)}."
        )
    check_nonnegative(fn, "sample_weight", w)
    return w


def check_nonnegative(fn: str, name: str, t: Tensor) -> None:
    """Values finite and >= 0 (a value check: skipped when value checks are off)."""
    if _checks_values(t) and t.dtype != torch.bool:
        lo, hi = _range_of(t)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0:
            raise ValueError(f"{fn}: {name} must be finite and >= 0; got values in "
                             f"[{_show_number(lo)}, {_show_number(hi)}].")


def _raise_target_range(fn: str, y: Tensor, lo: float, hi: float, ignore_index: int | None) -> None:
    """The error for a sigmoid target outside [0, 1]: NaN/Inf named as such; a whole-number value above 1
    (255 in a segmentation mask) with a hint at ``ignore_index``."""
    if y.dtype.is_floating_point and not bool(torch.isfinite(y).all()):
        raise ValueError(f"{fn}: target must be finite; got NaN or Inf values.")
    extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
    hint = ""
    if ignore_index is None and hi > 1 and float(hi).is_integer():
        hint = (f" If {hi:g} marks elements to leave out (e.g. the 'void' pixels of a mask), pass "
                f"ignore_index={hi:g}.")
    raise ValueError(f"{fn}: target must be in [0, 1]{extra}; got values in "
                     f"[{_show_number(lo)}, {_show_number(hi)}].{hint}")


@dataclass
class SigmoidInputs:
    """Checked inputs of a sigmoid-family loss, as they came: the kernels convert them chunk by chunk."""

    logits: Tensor
    target: Tensor
    sample_weight: Tensor | None
    ignore_index: int | None
    dtype: torch.dtype  # the compute dtype
    out_dtype: torch.dtype
    reduction: str = "mean"
    normalizer: float | Tensor | str | None = None
    label_smoothing: float = 0.0
    sync: object = False


def sigmoid_inputs(
    fn: str,
    logits: object,
    target: object,
    *,
    sample_weight: object = None,
    ignore_index: object = None,
    reduction: object = "mean",
    normalizer: object = None,
    label_smoothing: object = 0.0,
    sync: object = False,
    sync_per_element: bool = False,
) -> SigmoidInputs:
    """Check the options every sigmoid-family loss shares, then the tensors (``sync_per_element``: the
    loss's elements depend on the whole batch, so ``sync`` matters with ``reduction="none"`` too)."""
    reduction = check_reduction(fn, reduction)
    eps = check_label_smoothing(fn, label_smoothing)
    ignore_index = check_optional_int(fn, "ignore_index", ignore_index)
    norm = check_normalizer(fn, normalizer, reduction)
    group = check_sync(fn, sync, reduction, sync_per_element)
    x = check_logits(fn, logits)
    y = check_tensor(fn, "target", target, x)
    if y.shape != x.shape:
        raise ValueError(
            f"{fn}: logits and target must have the same shape; got logits {tuple(x.shape)}, target {tuple(y.shape)}."
        )
    if y.dtype.is_complex:
        raise TypeError(f"{fn}: target must be a real, integer or bool tensor; got {y.dtype}.")
    if _checks_values(y) and y.dtype != torch.bool:
        counted = y if ignore_index is None else y.masked_fill(y == ignore_index, 0)  # no boolean compaction
        lo, hi = _range_of(counted)
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            _raise_target_range(fn, counted, lo, hi, ignore_index)
    w = check_sample_weight(fn, sample_weight, x.shape, x)
    return SigmoidInputs(x, y, w, ignore_index, compute_dtype(x.dtype), output_dtype(x), reduction, norm, eps, group)


@dataclass
class SoftmaxInputs:
    """Checked inputs of a softmax-family loss: ``logits`` ``(N, C, *)`` (class axis moved to 1), and
    ``target`` either class ids ``(N, *)`` (``sparse``) or probabilities ``(N, C, *)``, as they came."""

    logits: Tensor
    target: Tensor
    sparse: bool
    class_weight: Tensor | None  # in the compute dtype, on the logits' device
    sample_weight: Tensor | None
    ignore_index: int
    dtype: torch.dtype
    out_dtype: torch.dtype
    reduction: str = "mean"
    normalizer: float | Tensor | str | None = None
    label_smoothing: float = 0.0
    sync: object = False
    out_shape: torch.Size | None = None  # set when classes-last logits were flattened to (rows, C)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]


def softmax_inputs(
    fn: str,
    logits: object,
    target: object,
    *,
    class_weight: object = None,
    ignore_index: object = -100,
    sample_weight: object = None,
    class_dim: object = 1,
    reduction: object = "mean",
    normalizer: object = None,
    label_smoothing: object = 0.0,
    sync: object = False,
) -> SoftmaxInputs:
    """Check the options every softmax-family loss shares, then the tensors."""
    reduction = check_reduction(fn, reduction)
    eps = check_label_smoothing(fn, label_smoothing)
    ignore_index = check_int(fn, "ignore_index", ignore_index)
    class_dim = check_int(fn, "class_dim", class_dim)
    norm = check_normalizer(fn, normalizer, reduction, positives=False)
    group = check_sync(fn, sync, reduction)
    x = check_logits(fn, logits)
    t = check_tensor(fn, "target", target, x)
    if x.ndim < 2:
        raise ValueError(
            f"{fn}: logits must be (N, C, *) with the classes on class_dim; got shape {tuple(x.shape)}. "
            "For one sample use logits.unsqueeze(0)."
        )
    if not -x.ndim <= class_dim < x.ndim:
        raise ValueError(f"{fn}: class_dim must index a dimension of logits {tuple(x.shape)}; got {class_dim}.")
    class_dim %= x.ndim
    probability_target = t.dtype.is_floating_point
    classes_last = class_dim == x.ndim - 1 and x.ndim > 2  # e.g. a tagger's [B, T, C]
    original_x, original_t = x, t
    if class_dim != 1:
        x = x.movedim(class_dim, 1)
        if probability_target and t.ndim == x.ndim:
            t = t.movedim(class_dim, 1)
    num_classes = x.shape[1]
    if num_classes < 2:
        raise ValueError(f"{fn}: logits need at least 2 classes on the class axis; got {num_classes}.")
    loss_shape = x.shape[:1] + x.shape[2:]
    cw = as_class_vector(fn, "class_weight", class_weight)
    if cw is not None and cw.numel() != num_classes:
        raise ValueError(f"{fn}: class_weight must have one value per class ({num_classes}); got {cw.numel()}.")
    dtype = compute_dtype(x.dtype)
    if cw is not None:
        cw = cw.to(device=x.device, dtype=dtype)
    if probability_target:
        if t.shape != x.shape:
            if t.shape == loss_shape:
                raise TypeError(
                    f"{fn}: class-id target must be an integer tensor; got {t.dtype}. "
                    f"For probabilities pass shape {tuple(x.shape)}."
                )
            raise ValueError(
                f"{fn}: probability target must have the logits' shape {tuple(x.shape)}; got {tuple(t.shape)}."
            )
        if _checks_values(t):
            lo, hi, total, off = _probability_stats(t)
            if not (lo >= 0.0 and hi <= 1.0):
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{fn}: probability target must be finite; got NaN or Inf values.")
                raise ValueError(f"{fn}: probability target must be in [0, 1]; got values in "
                                 f"[{_show_number(lo)}, {_show_number(hi)}].")
            tol = max(1e-3, torch.finfo(t.dtype).eps)  # a float16 / bfloat16 target's own rounding
            if off > tol:
                raise ValueError(
                    f"{fn}: probability target must sum to 1 over the classes (within {tol:g}), or to 0 for a "
                    f"position that adds nothing; a position's target sums to {total:.6g}. Normalise it "
                    "(target / target.sum(class_dim, keepdim=True)), or pass class ids as an integer tensor."
                )
    else:
        if t.dtype == torch.bool or t.dtype.is_complex:
            raise TypeError(f"{fn}: target must hold integer class ids or float probabilities; got {t.dtype}.")
        if t.shape != loss_shape:
            raise ValueError(
                f"{fn}: class-id target must have shape {tuple(loss_shape)} (logits {tuple(x.shape)} "
                f"without the class axis); got {tuple(t.shape)}."
            )
        if _checks_values(t):
            # ignored ids read as 0 (a valid class) instead of compacting with a boolean index
            lo, hi = _range_of(t.masked_fill(t == ignore_index, 0))
            if lo < 0 or hi >= num_classes:
                raise ValueError(
                    f"{fn}: target must be in [0, {num_classes}) or ignore_index={ignore_index}; "
                    f"got values in [{int(lo)}, {int(hi)}]."
                )
        if t.dtype != torch.long:
            t = t.long()
    w = check_sample_weight(fn, sample_weight, loss_shape, x)
    out_shape = None
    if classes_last:
        # rows of C contiguous scores: a (B·T, C) view instead of moving the classes and copying
        out_shape = loss_shape
        x = original_x.reshape(-1, num_classes)
        t = original_t.reshape(-1, num_classes) if probability_target else t.reshape(-1)
        w = None if w is None else w.expand(loss_shape).reshape(-1)
    return SoftmaxInputs(x, t, not probability_target, cw, w, ignore_index, dtype, output_dtype(x), reduction, norm,
                         eps, group, out_shape)
