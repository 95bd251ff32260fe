"""Keras 3 losses: the same formulas as the PyTorch core (:mod:`focalkit._formulas`), over ``keras.ops``.

They run on every Keras backend (JAX, TensorFlow, PyTorch), follow Keras's conventions —
``(y_true, y_pred)``, ``from_logits``, ``sample_weight``, Keras reductions, ``get_config`` — and
drop into ``model.compile(loss=...)``; saved models reload them (they are registered as
serializable under the package name ``focalkit``).

**Logits by default.** Unlike Keras's own losses, ``from_logits`` defaults to ``True``: the model ends
in a linear layer. A model whose last layer is a sigmoid or softmax must pass ``from_logits=False``
(otherwise its probabilities are read as logits, silently a different loss).
``from_logits=False`` (probabilities in) is handled without Keras's clip-then-log: probabilities
are turned into logits, ``log p − log1p(−p)`` (sigmoid) or ``log p`` (softmax), with ``p`` kept
inside the open unit interval by one rule at both ends, the float type's own limits: clipped to its
normal numbers nearest 0 and 1 (float32: ``1.18e-38`` and ``1 − 2⁻²⁴``, so the logits stay in
``[−87.3, 16.6]`` and the loss finite, also where the backend flushes subnormals to zero), and the loss
is then computed from logits like everything else.

A ``y_pred`` made by a Keras ``sigmoid`` / ``softmax`` activation carries its logits (``_keras_logits``):
the loss is formed from those, exactly, and with ``from_logits=True`` a ``UserWarning`` says that
``y_pred`` held probabilities (as Keras's own losses do on TensorFlow).

**Label values are checked** where they can be read (eager calls; focalkit's value checks on, see
:func:`focalkit.value_checks`): binary targets in ``[0, 1]``, sparse class ids in ``[0, C)``,
one-hot / probability targets in ``[0, 1]`` summing to 1 (or 0) over the last axis; a bad one is a
``ValueError``. Samples with ``sample_weight`` 0 or masked out are not checked and add nothing. Where
values cannot be read (``jax.jit``, ``tf.function``, ``torch.compile``) or the checks are off, a
sample with a bad label gets a NaN loss instead (visible in the logged loss; the other samples' losses
and gradients are unchanged).

**Shapes follow Keras.** ``y_true`` and ``y_pred`` whose ranks differ by a trailing axis of size 1 are
aligned as Keras's losses align them (``(n,)`` labels with ``(n, 1)`` predictions, as ``model.fit(X, y)``
passes them); other mismatches raise ``ValueError``, as Keras does. Sparse losses take class ids shaped
``(n,)`` or ``(n, 1)``. Options are named arguments; an unknown one is a ``TypeError``.
Element-wise losses are averaged over the last axis (as Keras's own binary losses do) before the
reduction: ``reduction=None`` returns one value per sample. GHM-C is stateless here
(``GHMCLoss(bins=...)`` uses each batch's histogram): a running histogram updated inside a loss is
not portable across backends and jit; keep an EMA of the counts outside the loss if you need it.

Requires the ``[keras]`` extra (``keras>=3``).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras import ops as K

from ._formulas import ghmc_beta, ghmc_bin_index, sigmoid_terms, softmax_terms, softmax_terms_sparse

__all__ = [
    "AsymmetricLoss",
    "BinaryCrossEntropy",
    "CategoricalCrossEntropy",
    "GHMCLoss",
    "Poly1CrossEntropy",
    "Poly1FocalLoss",
    "QualityFocalLoss",
    "SigmoidFocalLoss",
    "SigmoidHardTruncationLoss",
    "SigmoidSoftTruncationLoss",
    "SoftmaxComplementTruncationLoss",
    "SoftmaxFocalLoss",
    "SoftmaxHardTruncationLoss",
    "SoftmaxSoftTruncationLoss",
    "SparseCategoricalCrossEntropy",
    "VarifocalLoss",
    "class_balanced_weights",
]


class KerasOps:
    """The math core's ops namespace over ``keras.ops``."""

    exp = staticmethod(K.exp)
    abs = staticmethod(K.abs)
    sign = staticmethod(K.sign)
    log = staticmethod(K.log)
    log1p = staticmethod(K.log1p)
    sigmoid = staticmethod(K.sigmoid)
    softplus = staticmethod(K.softplus)
    ones_like = staticmethod(K.ones_like)
    where = staticmethod(K.where)

    @staticmethod
    def maximum(x: Any, floor: float) -> Any:
        # not K.maximum: on the torch backend it returns float32 for float64 tensors (NaN still propagates)
        f = K.convert_to_tensor(floor, dtype=keras.backend.standardize_dtype(x.dtype))
        return K.where(x < f, f, x)

    @staticmethod
    def frac(x: Any) -> Any:
        return x - K.floor(x)  # of x ≥ 0 only, where it is x − trunc(x)

    @staticmethod
    def fma(a: Any, b: Any, c: Any) -> Any:
        return a + b * c

    @staticmethod
    def to_bin(v: Any, bins: int) -> Any:
        return K.minimum(K.cast(v, "int32"), bins - 1)

    @staticmethod
    def power(x: Any, exponent: float) -> Any:
        return K.power(x, exponent)

    @staticmethod
    def logsumexp(x: Any, axis: int) -> Any:
        return K.logsumexp(x, axis=axis, keepdims=True)

    @staticmethod
    def log_softmax(x: Any, axis: int) -> Any:
        return K.log_softmax(x, axis=axis)

    @staticmethod
    def softmax(x: Any, axis: int) -> Any:
        return K.softmax(x, axis=axis)

    @staticmethod
    def sum(x: Any, axis: int, keepdims: bool = False) -> Any:
        return K.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def max(x: Any, axis: int) -> Any:
        return K.max(x, axis=axis, keepdims=True)

    @staticmethod
    def take(x: Any, index: Any, axis: int) -> Any:
        return K.take_along_axis(x, index, axis=axis)

    @staticmethod
    def index_mask(x: Any, index: Any, axis: int) -> Any:
        """``index == c`` along the class axis, which is the last one in this face."""
        if axis not in (-1, len(x.shape) - 1):
            raise ValueError(f"KerasOps.index_mask: the class axis must be the last one; got axis={axis}.")
        return K.equal(index, K.arange(x.shape[-1]))

    @staticmethod
    def one_hot_argmax(x: Any, axis: int) -> Any:
        return KerasOps.index_mask(x, K.expand_dims(K.argmax(x, axis=axis), axis), axis)


def _tiny(dtype: str) -> float:
    return 1e-300 if dtype == "float64" else 1e-30


def _unit_limits(dtype: str) -> tuple[float, float]:
    """The normal numbers of ``dtype`` nearest 0 and 1 inside ``(0, 1)``: the smallest normal (not a
    subnormal, which flush-to-zero backends such as XLA on CPU read as 0) and ``1 − ε⁻``."""
    import torch

    info = torch.finfo(getattr(torch, dtype))
    return float(info.tiny), 1.0 - float(info.eps) / 2.0


def _probabilities_to_logits(p: Any) -> Any:
    """``log p − log1p(−p)``, with ``p`` kept inside ``(0, 1)`` by one rule at both ends: clipped to the
    dtype's normal numbers nearest 0 and 1 (:func:`_unit_limits`), so both ends give a finite logit
    (float32: −87.3 and +16.6) and a finite loss, on every backend."""
    p = _clip_unit(p, high=True)
    return K.log(p) - K.log1p(-p)


def _clip_unit(p: Any, *, high: bool) -> Any:
    """``p`` clipped to ``[tiny, 1 − ε⁻]`` (``[tiny, 1]`` without ``high``), the bounds in ``p``'s own dtype:
    ``keras.ops.clip`` makes Python bounds float32 (on the torch backend), where float64's limits round to
    0 and 1, and ``keras.ops.maximum`` of two float64 tensors is float32 there."""
    dtype = keras.backend.standardize_dtype(p.dtype)
    low, top = _unit_limits(dtype)
    return K.clip(p, K.convert_to_tensor(low, dtype=dtype), K.convert_to_tensor(top if high else 1.0, dtype=dtype))


def _shape(t: Any) -> tuple[Any, ...]:
    return tuple(t.shape)


def align_ranks(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Keras's rule for targets and predictions whose ranks differ by one (its losses apply it before the
    formula): a trailing axis of size 1 is squeezed, or a rank-1 tensor is given one, so that ``(n,)``
    labels with ``(n, 1)`` predictions become ``(n, 1)`` and ``(n, 1)`` with ``(n,)`` become ``(n,)``."""
    r_true, r_pred = len(y_true.shape), len(y_pred.shape)
    if r_true == r_pred + 1 and y_true.shape[-1] == 1:
        if r_pred == 1:
            y_pred = K.expand_dims(y_pred, -1)
        else:
            y_true = K.squeeze(y_true, -1)
    elif r_pred == r_true + 1 and y_pred.shape[-1] == 1:
        if r_true == 1:
            y_true = K.expand_dims(y_true, -1)
        else:
            y_pred = K.squeeze(y_pred, -1)
    return y_true, y_pred


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Shapes equal where both are known (a symbolic batch axis is ``None``)."""
    return len(a) == len(b) and all(u is None or v is None or u == v for u, v in zip(a, b, strict=True))


def _shape_error(name: str, expected: str, y_true: Any, y_pred: Any) -> ValueError:
    return ValueError(f"{name}: {expected}. Received: y_true.shape={_shape(y_true)}, y_pred.shape={_shape(y_pred)}")


def _readable(t: Any) -> Any:
    """``t``'s values as a NumPy array when they can be read now, with focalkit's value checks on;
    ``None`` when traced (``jax.jit``, ``tf.function``, ``torch.compile``) or when the checks are off."""
    import focalkit._inputs as I

    if not I.value_checks_enabled():  # also False under torch.compile
        return None
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if isinstance(t, jax.core.Tracer):
            return None
    elif backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
    elif backend == "torch":
        import torch

        if isinstance(t, torch.Tensor):  # directly: Keras's np.array(tensor) warns under NumPy 2
            if t.device.type == "meta":
                return None
            t = t.detach().cpu()
            return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    try:
        return K.convert_to_numpy(t)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):  # a symbolic tensor
        return None


def _range_text(v: Any) -> str:
    finite = v[np.isfinite(v)]
    text = f"[{finite.min() + 0.0:g}, {finite.max() + 0.0:g}]" if finite.size else "no finite values"
    return text + (" and NaN or Inf" if finite.size < v.size else "")


def _poison(loss: Any, valid: Any) -> Any:
    """``loss`` with NaN where ``valid`` is False: the jit-safe form of a label check (a traced function
    cannot raise on values), visible in the logged loss; the gradient of the valid samples is unchanged."""
    return K.where(valid, loss, K.convert_to_tensor(float("nan"), dtype=keras.backend.standardize_dtype(loss.dtype)))


class _Base(keras.losses.Loss):
    """Keras conventions shared by every focalkit loss; subclasses define ``_elementwise`` (sigmoid) or a
    ``family`` (softmax), and their ``__init__`` lists every option by name (unknown ones are a
    ``TypeError``, as in Keras)."""

    def __init__(self, *, from_logits: bool, reduction: str | None, name: str | None, dtype: str | None,
                 **options: Any) -> None:
        super().__init__(name=name or type(self).__name__, reduction=reduction, dtype=dtype)
        if not isinstance(from_logits, bool):
            raise TypeError(f"{type(self).__name__}: from_logits must be True or False. Received: {from_logits!r}")
        self.from_logits = from_logits
        self._options = options
        self._check()
        self._counted_weight: Any = None
        self._marked_logits: Any = None

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        # Keras applies the weights (and masks) after call(); the label checks and GHM-C's histogram need to
        # know before which samples have weight 0
        weight, mask = sample_weight, _keras_mask(y_pred)
        if mask is not None:
            mask = K.cast(mask, "float32")
            weight = mask if weight is None else K.cast(K.convert_to_tensor(weight), "float32") * mask
        self._counted_weight = weight
        self._marked_logits = getattr(y_pred, "_keras_logits", None)
        if self._marked_logits is not None and self.from_logits:
            warnings.warn(
                f"{type(self).__name__}: from_logits=True, but y_pred was produced by a sigmoid or softmax "
                "activation and so holds probabilities, not logits; the loss uses that activation's input (its "
                "logits) instead, as Keras's own losses do. Pass from_logits=False, or drop the activation.",
                UserWarning, stacklevel=2)
        try:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        finally:
            self._counted_weight = self._marked_logits = None

    def _logits(self, y_pred: Any) -> Any:
        """The logits the loss is formed from: those a Keras sigmoid / softmax activation left on ``y_pred``
        (``_keras_logits``), exact, whatever ``from_logits`` says; else ``y_pred``, turned into logits when
        it holds probabilities."""
        marked = getattr(self, "_marked_logits", None)
        x = K.convert_to_tensor(y_pred)
        if marked is not None and _same(_shape(marked), _shape(x)):
            return K.cast(K.convert_to_tensor(marked), keras.backend.standardize_dtype(x.dtype)), True
        return x, False

    def _kept(self, per_sample: Any) -> Any:
        """Boolean, shaped like ``per_sample`` (the shape of ``call()``'s output): weight ≠ 0 and not masked;
        ``None`` without weights or masks. Weights broadcast as Keras broadcasts them (a scalar, ``(n,)``,
        ``(n, 1)``)."""
        w = self._counted_weight
        if w is None:
            return None
        w = K.cast(K.convert_to_tensor(w), "float32")
        rank = len(per_sample.shape)
        while len(w.shape) > rank and w.shape[-1] == 1:
            w = K.squeeze(w, -1)
        kept = K.not_equal(w, 0.0)
        if rank == 0:  # rank-1 y_true and y_pred: the batch is one sample, which counts if any weight does
            return K.any(kept)
        trailing = tuple(per_sample.shape)[rank - len(w.shape):] if len(w.shape) <= rank else None
        if trailing is None or not all(a is None or b is None or a in (1, b)
                                       for a, b in zip(w.shape, trailing, strict=True)):
            raise ValueError(f"{type(self).__name__}: sample_weight must broadcast to the per-sample loss, shaped "
                             f"{tuple(per_sample.shape)}; got shape {tuple(w.shape)}.")
        return K.logical_and(kept, K.ones_like(per_sample, dtype="bool"))

    def _only_kept(self, values: Any, per_sample: Any, elementwise: bool = False) -> Any:
        """The NumPy ``values`` of the samples that count (weight ≠ 0), for a label check; all of them
        when the weights cannot be read."""
        kept = self._kept(per_sample)
        k = None if kept is None else _readable(kept)
        if k is None:
            return values
        if elementwise:  # the elements of a sample's last axis
            return values[np.broadcast_to(k[..., None], values.shape)]
        return values[k]  # class ids, or the rows of probabilities

    def _valid_or_left_out(self, valid: Any, per_sample: Any, elementwise: bool = False) -> Any:
        kept = self._kept(per_sample)
        if kept is None:
            return valid
        return K.logical_or(valid, K.logical_not(K.expand_dims(kept, -1) if elementwise else kept))

    def _check(self) -> None:
        """Reuse the PyTorch face's option checks, so both faces accept and reject the same values."""
        import focalkit._inputs as I

        name = type(self).__name__
        o = self._options
        if "gamma" in o:
            I.check_gamma(name, o["gamma"])
        if "label_smoothing" in o:
            I.check_label_smoothing(name, o["label_smoothing"])
        if "threshold" in o:
            I.check_number(name, "threshold", o["threshold"], low=0.0, high=1.0, low_open=True)
        if "k" in o:
            I.check_number(name, "k", o["k"], low=0.0)
        if "bins" in o:
            I.check_int(name, "bins", o["bins"], low=1)
        if "clip" in o:
            I.check_asl_options(name, o["gamma_pos"], o["gamma_neg"], o["clip"])
        if "epsilon" in o:
            I.check_epsilon(name, o["epsilon"])
        if "gamma_hard" in o:
            I.check_adaptive_gamma(name, o["gamma_hard"], o["hard_threshold"])
        if "iou_weighted" in o:
            I.check_varifocal_options(name, o["alpha"], o["gamma"], o["iou_weighted"])
        if "beta" in o:
            I.check_qfl_beta(name, o["beta"])
        if o.get("alpha") is not None and not isinstance(o["alpha"], list | tuple) and "iou_weighted" not in o:
            I.check_number(name, "alpha", o["alpha"], low=0.0, high=1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, **self._options}


class _SigmoidBase(_Base):
    family = "bce"

    def call(self, y_true: Any, y_pred: Any) -> Any:
        x, marked = self._logits(y_pred)
        y = K.cast(K.convert_to_tensor(y_true), x.dtype)
        y, x = align_ranks(y, x)
        if not _same(_shape(y), _shape(x)):
            raise _shape_error(type(self).__name__, "y_true and y_pred must have the same shape", y, x)
        values = _readable(y)
        if values is not None:
            values = self._only_kept(values, y[..., 0], elementwise=True)
        if values is not None and values.size and not (np.all(values >= 0) and np.all(values <= 1)):
            raise ValueError(f"{type(self).__name__}: y_true must be in [0, 1] (0/1 or soft labels); got values in "
                             f"{_range_text(values)}. Map the classes to 0 and 1; for several classes use a softmax "
                             "loss.")
        valid = self._valid_or_left_out(K.logical_and(K.greater_equal(y, 0.0), K.less_equal(y, 1.0)),  # NaN: False
                                        y[..., 0], elementwise=True)
        if not self.from_logits and not marked:
            x = _probabilities_to_logits(x)
        eps = self._options.get("label_smoothing", 0.0)
        if eps:
            y = y * (1.0 - eps) + 0.5 * eps
        loss = _poison(self._elementwise(x, y), valid)
        # a sum times 1/C, not K.mean: on the torch backend that averages float64 in float32
        return K.sum(loss, axis=-1) * (1.0 / loss.shape[-1])

    def _elementwise(self, x: Any, y: Any) -> Any:
        rename = {"gamma_pos": "gamma", "beta": "gamma"}  # ASL's γ₊ and QFL's β are the core's gamma
        params = {rename.get(k, k): v for k, v in self._options.items() if k != "label_smoothing"}
        dtype = keras.backend.standardize_dtype(x.dtype)
        return sigmoid_terms(KerasOps, self.family, x, y, order=0, tiny=_tiny(dtype), **params)[0]


@keras.saving.register_keras_serializable(package="focalkit")
class BinaryCrossEntropy(_SigmoidBase):
    """``−y log σ(x) − (1−y) log σ(−x)``, smoothing ``y ← y(1−ε) + ε/2``; :func:`focalkit.binary_cross_entropy`.

    ``y_true`` and ``y_pred`` have one shape, or ranks that differ by a trailing axis of size 1 (Keras's
    rule: ``(n,)`` labels with ``(n, 1)`` predictions); the element losses are averaged over the last axis.
    """

    def __init__(self, label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype,
                         label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SigmoidFocalLoss(_SigmoidBase):
    """``α_t (1 − p_t)^γ · BCE``; :func:`focalkit.sigmoid_focal_loss`. Keras's
    ``BinaryFocalCrossentropy(apply_class_balancing=True, alpha=α)`` is the same loss. Shapes as in
    :class:`BinaryCrossEntropy`. ``gamma_hard``, ``hard_threshold``: the adaptive focal loss of the torch face
    (``γ = gamma_hard`` where ``p_t < hard_threshold``; ``gamma=3, gamma_hard=5`` is FLSD-53)."""

    family = "focal"

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, label_smoothing: float = 0.0, *,
                 gamma_hard: float | None = None, hard_threshold: float = 0.2, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, alpha=alpha,
                         gamma=gamma, label_smoothing=label_smoothing, gamma_hard=gamma_hard,
                         hard_threshold=hard_threshold)


@keras.saving.register_keras_serializable(package="focalkit")
class AsymmetricLoss(_SigmoidBase):
    """``−y (1−p)^{γ₊} log p − (1−y) p_m^{γ₋} log(1−p_m)``, ``p_m = max(p − clip, 0)``;
    :func:`focalkit.asymmetric_loss` (multi-label: ``y_true`` and ``y_pred`` shaped ``(n, C)``). Shapes as in
    :class:`BinaryCrossEntropy`; the element losses are averaged over the labels (the authors sum them:
    multiply by ``C`` for their scale)."""

    family = "asl"

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, gamma_pos=gamma_pos,
                         gamma_neg=gamma_neg, clip=clip, label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class VarifocalLoss(_SigmoidBase):
    """``q·BCE(x, q)`` for a positive (``q > 0``, its IoU-aware target score), ``α p^γ·BCE(x, 0)`` for a negative;
    :func:`focalkit.varifocal_loss`. ``y_true`` holds the quality targets in ``[0, 1]``; shapes as in
    :class:`BinaryCrossEntropy`, the element losses averaged over the last axis."""

    family = "varifocal"

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True, *,
                 from_logits: bool = True, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, alpha=alpha,
                         gamma=gamma, iou_weighted=iou_weighted)


@keras.saving.register_keras_serializable(package="focalkit")
class QualityFocalLoss(_SigmoidBase):
    """``BCE(x, q)·|q − σ(x)|^β`` (GFL); :func:`focalkit.quality_focal_loss`. ``β`` 0 or ``≥ 1``; shapes as in
    :class:`BinaryCrossEntropy`."""

    family = "qfl"

    def __init__(self, beta: float = 2.0, *, from_logits: bool = True, reduction: str | None = "sum_over_batch_size",
                 name: str | None = None, dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, beta=beta)


@keras.saving.register_keras_serializable(package="focalkit")
class Poly1FocalLoss(_SigmoidBase):
    """``α_t (1 − p_t)^γ · BCE + ε (1 − p_t)^{γ+1}``; :func:`focalkit.poly1_focal_loss`. Shapes as in
    :class:`BinaryCrossEntropy`."""

    family = "polyfocal"

    def __init__(self, epsilon: float = 1.0, alpha: float | None = 0.25, gamma: float = 2.0,
                 label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, epsilon=epsilon,
                         alpha=alpha, gamma=gamma, label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SigmoidHardTruncationLoss(_SigmoidBase):
    """``−y θ(m−p) log p − (1−y) θ(p−1+m) log(1−p)``; :func:`focalkit.sigmoid_hard_truncation_loss`. Shapes as
    in :class:`BinaryCrossEntropy`."""

    family = "hard"

    def __init__(self, threshold: float = 0.5, label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, threshold=threshold,
                         label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SigmoidSoftTruncationLoss(_SigmoidBase):
    """``−y σ(−Kx) log σ(x) − (1−y) σ(Kx) log σ(−x)``; :func:`focalkit.sigmoid_soft_truncation_loss`. Shapes as
    in :class:`BinaryCrossEntropy`."""

    family = "soft"

    def __init__(self, k: float = 1.0, label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, k=k,
                         label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class GHMCLoss(_SigmoidBase):
    """GHM-C with this batch's gradient-norm histogram (stateless); :func:`focalkit.ghmc_loss`. Shapes as in
    :class:`BinaryCrossEntropy`.

    As in the PyTorch face, a ``sample_weight`` of 0 (and a position a Keras mask masks out) removes the
    sample from the histogram and from ``N``; a non-zero weight multiplies its loss, as Keras applies it.
    """

    family = "ghmc"

    def __init__(self, bins: int = 10, *, from_logits: bool = True, reduction: str | None = "sum_over_batch_size",
                 name: str | None = None, dtype: str | None = None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, bins=bins)

    def _counted(self, x: Any) -> Any:
        """1 for an element in the histogram, 0 for one whose sample has weight 0, shaped like ``x``."""
        kept = self._kept(x[..., 0])
        if kept is None:
            return K.ones_like(x)
        return K.broadcast_to(K.cast(K.expand_dims(kept, -1), x.dtype), K.shape(x))

    def _elementwise(self, x: Any, y: Any) -> Any:
        bins = self._options["bins"]
        index = K.stop_gradient(ghmc_bin_index(KerasOps, x, y, bins))
        counted = K.stop_gradient(self._counted(x))
        counts = K.sum(K.cast(K.equal(K.expand_dims(index, -1), K.arange(bins)), x.dtype) * K.expand_dims(counted, -1),
                       axis=tuple(range(len(x.shape))))
        divisor = KerasOps.maximum(K.sum(K.cast(counts > 0, x.dtype)), 1.0)
        beta = K.stop_gradient(K.take(ghmc_beta(KerasOps, counts, K.sum(counted), divisor), index))
        return sigmoid_terms(KerasOps, "ghmc", x, y, order=0, beta=beta)[0]


def _keras_mask(t: Any) -> Any:
    """The Keras mask a layer (``Masking``, ``Embedding(mask_zero=True)``) attached to ``t``, or ``None``."""
    try:
        from keras.src.backend import get_keras_mask
    except ImportError:  # a Keras without it: masks reach the loss only through Keras's reduction
        return getattr(t, "_keras_mask", None)
    return get_keras_mask(t)


class _SoftmaxBase(_Base):
    """Classes on the last axis. ``sparse=False``: ``y_true`` one-hot or probabilities shaped like ``y_pred``;
    ``sparse=True``: integer class ids shaped like ``y_pred`` without its last axis, or with it at size 1
    (``(n, 1)`` labels, as Keras's sparse losses take them)."""

    family = "ce"

    def __init__(self, *, sparse: bool, from_logits: bool, reduction: str | None, name: str | None,
                 dtype: str | None, **options: Any) -> None:
        if not isinstance(sparse, bool):
            raise TypeError(f"{type(self).__name__}: sparse must be True or False. Received: {sparse!r}")
        self.sparse = sparse
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, **options)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if type(self) is not SparseCategoricalCrossEntropy and type(self) is not CategoricalCrossEntropy:
            config["sparse"] = self.sparse
        return config

    def _targets(self, y_true: Any, x: Any) -> Any:
        name = type(self).__name__
        y = K.convert_to_tensor(y_true)
        if self.sparse:
            if len(y.shape) == len(x.shape) and y.shape[-1] == 1:
                y = K.squeeze(y, -1)
            if not _same(_shape(y), _shape(x)[:-1]):
                raise _shape_error(name, "sparse y_true and y_pred must have the same shape up to y_pred's last "
                                         "(class) axis, which y_true lacks or has at size 1", y, x)
            num_classes = x.shape[-1]
            values = _readable(y)
            if values is not None:
                values = self._only_kept(values, y)
            if values is not None and values.size and not (
                    np.all(values >= 0) and np.all(values < num_classes) and np.all(values == np.floor(values))):
                raise ValueError(f"{name}: sparse y_true must be class ids in [0, {num_classes}); got values in "
                                 f"{_range_text(np.asarray(values, dtype=np.float64))}. To leave a sample out give it "
                                 "sample_weight=0 (or mask it).")
            valid = K.logical_and(K.greater_equal(y, 0), K.less(y, num_classes))
            if "float" in keras.backend.standardize_dtype(y.dtype):
                valid = K.logical_and(valid, K.equal(y, K.floor(y)))
            return (K.clip(K.cast(K.where(valid, y, 0), "int32"), 0, num_classes - 1),
                    self._valid_or_left_out(valid, y))
        y, x2 = align_ranks(y, x)
        if not _same(_shape(y), _shape(x2)):
            raise _shape_error(name, "y_true (one-hot or probabilities) and y_pred must have the same shape; for "
                                     "integer class ids use the sparse form", y, x2)
        y = K.cast(y, keras.backend.standardize_dtype(x.dtype))
        tol = 1e-3 if keras.backend.standardize_dtype(y.dtype) in ("float32", "float64") else 1e-2
        values = _readable(y)
        if values is not None:
            values = self._only_kept(values, y[..., 0])
        if values is not None and values.size:
            sums = values.astype(np.float64).sum(-1)
            if not (np.all(values >= 0) and np.all(values <= 1)):
                raise ValueError(f"{name}: y_true (one-hot or probabilities) must be in [0, 1]; got values in "
                                 f"{_range_text(values)}. For integer class ids use the sparse form.")
            off = np.minimum(np.abs(sums - 1.0), np.abs(sums))
            if off.max() > tol:
                raise ValueError(f"{name}: y_true (one-hot or probabilities) must sum to 1 over the last axis "
                                 f"(within {tol:g}), or to 0 for a sample that adds nothing; a sample's sums to "
                                 f"{sums.reshape(-1)[off.argmax()]:.6g}. Normalise it, or use the sparse form "
                                 "for class ids.")
        in_range = K.all(K.logical_and(K.greater_equal(y, 0.0), K.less_equal(y, 1.0)), axis=-1)
        total = K.sum(y, axis=-1)
        sums_ok = K.logical_or(K.less_equal(K.abs(total - 1.0), tol), K.less_equal(K.abs(total), tol))
        return y, self._valid_or_left_out(K.logical_and(in_range, sums_ok), y[..., 0])

    def call(self, y_true: Any, y_pred: Any) -> Any:
        x, marked = self._logits(y_pred)
        y_true, valid = self._targets(y_true, x)
        return _poison(self._loss(y_true, x, marked), valid)

    def _loss(self, y_true: Any, x: Any, marked: bool) -> Any:
        if not self.from_logits and not marked:
            x = K.log(_clip_unit(x, high=False))
        opts = dict(self._options)
        eps = opts.pop("label_smoothing", 0.0)
        alpha = opts.pop("alpha", None)
        num_classes = x.shape[-1]
        factor = None
        if alpha is not None:
            if isinstance(alpha, list | tuple) and len(alpha) != num_classes:
                raise ValueError(f"{type(self).__name__}: alpha must have one value per class ({num_classes}). "
                                 f"Received: {len(alpha)} values")
            factor = K.convert_to_tensor(list(alpha) if isinstance(alpha, list | tuple) else [alpha] * num_classes,
                                         dtype=keras.backend.standardize_dtype(x.dtype))
        if self.sparse and not eps:
            index = K.expand_dims(K.cast(y_true, "int32"), -1)
            qt = 1.0 if factor is None else K.take(factor, index)
            loss, _ = softmax_terms_sparse(KerasOps, self.family, x, index, qt, axis=-1, order=0, **opts)
            return K.squeeze(loss, -1)
        q = K.one_hot(K.cast(y_true, "int32"), num_classes, dtype=x.dtype) if self.sparse else K.cast(y_true, x.dtype)
        if eps:
            q = q * (1.0 - eps) + eps / num_classes
        if factor is not None:
            q = q * factor
        return softmax_terms(KerasOps, self.family, x, q, axis=-1, order=0, **opts)[0]


@keras.saving.register_keras_serializable(package="focalkit")
class CategoricalCrossEntropy(_SoftmaxBase):
    """One-hot or probability targets shaped like ``y_pred``; :func:`focalkit.cross_entropy`."""

    def __init__(self, label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=False, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype,
                         label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SparseCategoricalCrossEntropy(_SoftmaxBase):
    """Integer class ids, shaped ``(n,)`` or ``(n, 1)`` for ``(n, C)`` predictions; :func:`focalkit.cross_entropy`."""

    def __init__(self, label_smoothing: float = 0.0, *, from_logits: bool = True,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=True, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype,
                         label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SoftmaxFocalLoss(_SoftmaxBase):
    """``−Σ_c α_c q_c (1 − p_c)^γ log p_c`` (one-hot, probability or, with ``sparse=True``, integer targets);
    :func:`focalkit.softmax_focal_loss`. Keras's ``CategoricalFocalCrossentropy(alpha=α)`` is the same loss for
    a scalar α. ``alpha``: ``None``, a scalar for every class, or a list with one value per class.
    ``gamma_hard``, ``hard_threshold``: the adaptive focal loss of the torch face (FLSD-53: ``gamma=3,
    gamma_hard=5``)."""

    family = "focal"

    def __init__(self, alpha: float | list[float] | None = None, gamma: float = 2.0, label_smoothing: float = 0.0,
                 *, gamma_hard: float | None = None, hard_threshold: float = 0.2, sparse: bool = False,
                 from_logits: bool = True, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=sparse, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype,
                         alpha=alpha, gamma=gamma, label_smoothing=label_smoothing, gamma_hard=gamma_hard,
                         hard_threshold=hard_threshold)


@keras.saving.register_keras_serializable(package="focalkit")
class Poly1CrossEntropy(_SoftmaxBase):
    """``−log p_t + ε (1 − p_t)``, ``p_t = Σ_c q_c p_c`` for probability targets (one-hot, probabilities or, with
    ``sparse=True``, integer class ids); :func:`focalkit.poly1_cross_entropy`, and optax's
    ``poly_loss_cross_entropy``."""

    family = "poly"

    def __init__(self, epsilon: float = 1.0, label_smoothing: float = 0.0, *, sparse: bool = False,
                 from_logits: bool = True, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=sparse, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype,
                         epsilon=epsilon, label_smoothing=label_smoothing)


def class_balanced_weights(class_counts: Any, *, beta: float = 0.9999) -> dict[int, float]:
    """:func:`focalkit.class_balanced_weights` as Keras's ``model.fit(class_weight=...)`` takes them:
    ``{class id: w_c}``, ``w_c = (1−β)/(1−β^{n_c})`` normalised to sum to ``C``."""
    from .class_balance import class_balanced_weights as weights

    return {c: float(w) for c, w in enumerate(weights(class_counts, beta=beta).tolist())}


@keras.saving.register_keras_serializable(package="focalkit")
class SoftmaxHardTruncationLoss(_SoftmaxBase):
    """``−θ(m − p_t) log p_t``; :func:`focalkit.softmax_hard_truncation_loss`."""

    family = "hard"

    def __init__(self, threshold: float = 0.5, label_smoothing: float = 0.0, *, sparse: bool = False,
                 from_logits: bool = True, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=sparse, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype,
                         threshold=threshold, label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SoftmaxSoftTruncationLoss(_SoftmaxBase):
    """``−softmax(−Kx)_t log p_t`` (the article's form); :func:`focalkit.softmax_soft_truncation_loss`."""

    family = "soft"

    def __init__(self, k: float = 1.0, label_smoothing: float = 0.0, *, sparse: bool = False,
                 from_logits: bool = True, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=sparse, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, k=k,
                         label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="focalkit")
class SoftmaxComplementTruncationLoss(_SoftmaxBase):
    """``−(1 − softmax(Kx)_t) log p_t`` (a reader's variant); :func:`focalkit.softmax_soft_truncation_loss` with
    ``weighting='complement'``."""

    family = "complement"

    def __init__(self, k: float = 1.0, label_smoothing: float = 0.0, *, sparse: bool = False,
                 from_logits: bool = True, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: str | None = None) -> None:
        super().__init__(sparse=sparse, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype, k=k,
                         label_smoothing=label_smoothing)
