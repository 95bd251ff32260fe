"""Ops namespaces the math core (:mod:`focalkit._formulas`) is evaluated with: PyTorch and NumPy.

(The Keras face brings its own, over ``keras.ops``.) Each is a handful of functions with the
same names and meaning; axis arguments are positional ints.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["NumpyOps", "TorchOps"]


class TorchOps:
    """The math core on torch tensors (used inside the fused autograd Functions and for autograd)."""

    exp = staticmethod(torch.exp)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    log1p = staticmethod(torch.log1p)
    sigmoid = staticmethod(torch.sigmoid)
    frac = staticmethod(torch.frac)  # x − trunc(x); the core takes it of x ≥ 0 only

    @staticmethod
    def hypot(x: torch.Tensor, y: float) -> torch.Tensor:
        """``√(x² + y²)`` without overflow, for a tensor ``x`` and a number ``y``."""
        return torch.hypot(x, torch.full((), y, dtype=x.dtype, device=x.device))

    @staticmethod
    def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``a + b · c`` in one pass (``addcmul``)."""
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and isinstance(c, torch.Tensor):
            return torch.addcmul(a, b, c)
        return a + b * c

    @staticmethod
    def to_bin(v: torch.Tensor, bins: int) -> torch.Tensor:
        return torch.clamp_max(v.to(torch.int32), bins - 1)  # int32: a quarter of int64's conversion cost

    @staticmethod
    def cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return x.to(dtype)

    @staticmethod
    def gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``table[index]`` for a bin or class index of any integer dtype, by ``index_select`` (twice as
        fast as advanced indexing on a CPU; a byte index is read as numbers, not as a mask)."""
        if index.dtype not in (torch.int32, torch.int64):
            index = index.int()
        return table.index_select(0, index.reshape(-1)).view(index.shape)
    @staticmethod
    def per_class(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A vector of one value per class, shaped to broadcast along axis 1 of ``x``."""
        return table.view(1, -1, *([1] * (x.dim() - 2)))
    ones_like = staticmethod(torch.ones_like)
    log_softmax = staticmethod(torch.log_softmax)
    softmax = staticmethod(torch.softmax)

    @staticmethod
    def softplus(x: torch.Tensor) -> torch.Tensor:
        # torch returns x itself past the threshold: exact once e^{-x} is below the dtype's resolution
        return F.softplus(x, threshold=37.0 if x.dtype == torch.float64 else 20.0)

    @staticmethod
    def where(cond, a, b):
        return torch.where(cond, a, b)

    @staticmethod
    def maximum(x: torch.Tensor, floor: float) -> torch.Tensor:
        return torch.clamp_min(x, floor)

    @staticmethod
    def power(x: torch.Tensor, exponent: float) -> torch.Tensor:
        return torch.pow(x, exponent)

    @staticmethod
    def logsumexp(x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.logsumexp(x, axis, keepdim=True)

    @staticmethod
    def sum(x: torch.Tensor, axis: int, keepdims: bool = False) -> torch.Tensor:
        return x.sum(axis, keepdim=keepdims)

    @staticmethod
    def _class_ids(x: torch.Tensor, axis: int) -> torch.Tensor:
        """``0 … C−1`` along ``axis``, shaped to broadcast against ``x`` (a comparison with it is out of place,
        so ``torch.func.vmap`` batches it)."""
        shape = [1] * x.dim()
        shape[axis] = x.shape[axis]
        return torch.arange(x.shape[axis], device=x.device).view(shape)

    @classmethod
    def one_hot_argmax(cls, x: torch.Tensor, axis: int) -> torch.Tensor:
        return cls._class_ids(x, axis) == x.argmax(axis, keepdim=True)

    log = staticmethod(torch.log)

    @staticmethod
    def max(x: torch.Tensor, axis: int) -> torch.Tensor:
        return x.amax(axis, keepdim=True)

    @staticmethod
    def take(x: torch.Tensor, index: torch.Tensor, axis: int) -> torch.Tensor:
        return x.gather(axis, index)

    @classmethod
    def index_mask(cls, x: torch.Tensor, index: torch.Tensor, axis: int) -> torch.Tensor:
        return cls._class_ids(x, axis) == index

    @staticmethod
    def add_at(x: torch.Tensor, index: torch.Tensor, value: torch.Tensor, axis: int) -> torch.Tensor:
        """``x`` with ``value`` (a tensor broadcastable to ``index``, or a number) added at ``index`` along ``axis``.

        ``x`` is a temporary of the formula and is updated in place (no copy), except under autograd.
        """
        if not isinstance(value, torch.Tensor):
            value = torch.full(index.shape, value, dtype=x.dtype, device=x.device)
        value = value.expand(index.shape).to(x.dtype)
        if (torch.is_grad_enabled() and (x.requires_grad or value.requires_grad)) or \
                torch._C._are_functorch_transforms_active():
            return x.scatter_add(axis, index, value)
        return x.scatter_add_(axis, index, value)


class NumpyOps:
    """The math core on float64 NumPy arrays (gradient-boosting objectives)."""

    exp = staticmethod(np.exp)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    log1p = staticmethod(np.log1p)

    @staticmethod
    def frac(x: np.ndarray) -> np.ndarray:
        return np.modf(x)[0]

    @staticmethod
    def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return a + b * c

    @staticmethod
    def to_bin(v: np.ndarray, bins: int) -> np.ndarray:
        return np.minimum(v.astype(np.int64), bins - 1)
    ones_like = staticmethod(np.ones_like)
    where = staticmethod(np.where)
    power = staticmethod(np.power)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def sigmoid(x: np.ndarray) -> np.ndarray:
        return np.exp(-np.logaddexp(0.0, -x))

    @staticmethod
    def softplus(x: np.ndarray) -> np.ndarray:
        return np.logaddexp(0.0, x)

    @staticmethod
    def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))

    @classmethod
    def log_softmax(cls, x: np.ndarray, axis: int) -> np.ndarray:
        return x - cls.logsumexp(x, axis)

    @classmethod
    def softmax(cls, x: np.ndarray, axis: int) -> np.ndarray:
        return np.exp(cls.log_softmax(x, axis))

    @staticmethod
    def sum(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def one_hot_argmax(x: np.ndarray, axis: int) -> np.ndarray:
        out = np.zeros(x.shape, dtype=bool)
        np.put_along_axis(out, np.expand_dims(np.argmax(x, axis=axis), axis), True, axis=axis)
        return out

    log = staticmethod(np.log)

    @staticmethod
    def max(x: np.ndarray, axis: int) -> np.ndarray:
        return np.max(x, axis=axis, keepdims=True)

    @staticmethod
    def take(x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        return np.take_along_axis(x, index, axis=axis)

    @staticmethod
    def index_mask(x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        out = np.zeros(x.shape, dtype=bool)
        np.put_along_axis(out, index, True, axis=axis)
        return out

    @staticmethod
    def add_at(x: np.ndarray, index: np.ndarray, value: np.ndarray, axis: int) -> np.ndarray:
        out = np.array(x, copy=True)
        np.put_along_axis(out, index, np.take_along_axis(out, index, axis=axis) + value, axis=axis)
        return out


TINY = {torch.float64: 1e-300, torch.float32: 1e-30}
NEG_INF = -math.inf
