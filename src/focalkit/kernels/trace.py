"""Writes Triton source from the math core: the formulas run once on symbols, each op becomes a line.

:mod:`focalkit._formulas` is written against an ops namespace. Evaluated with :class:`TritonOps` on
:class:`Sym` values, every ``ops.exp(x)``, ``x * y`` or ``ops.sum(x, 1)`` appends one assignment to a
:class:`Builder`, so the body of a Triton kernel is produced by the same lines of Python that the
PyTorch, NumPy and Keras faces evaluate: no formula is typed a second time. Python-level branches
(the family, ``γ`` whole or not, ``order``) are taken while tracing, so the kernel is specialised to
the options, and the same expression asked twice is emitted once (``exp(−|x|)`` serves both
``σ(x)`` and ``softplus(x)``: one ``exp`` and one ``log`` per element in the sigmoid family).

Values are blocks: ``[BLOCK]`` for elementwise kernels, ``[BLOCK_P, BLOCK_C]`` with the classes on
axis 1 for softmax kernels, where reductions skip the padding columns (``cmask``) and ``take`` /
``add_at`` / ``index_mask`` compare the class ids ``cls`` with the target index. Only what Triton's
interpreter also runs is used (no ``libdevice``): ``log1p`` is Goldberg's ``log(u)·e/(u−1)``, exact
to a few ulps, and ``pow`` goes through ``exp``/``log`` at arguments the core keeps positive. An
infinite constant (the core masks the top class with ``−inf``) is written as the dtype's largest
finite value, which gives the same ``exp(· − max) = 0``. Lines no store needs are dropped
(:meth:`Builder.body`).
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["Builder", "Sym", "TritonOps"]

_NAMES = re.compile(r"\bv\d+\b")
_TL_DTYPES = {"float32": "tl.float32", "float64": "tl.float64", "float16": "tl.float16", "bfloat16": "tl.bfloat16"}


class Builder:
    """Collects the lines of a kernel body; identical expressions share one name."""

    def __init__(self, compute_dtype: str):
        if compute_dtype not in ("float32", "float64"):
            raise ValueError(f"Builder: compute dtype float32 or float64 expected; got {compute_dtype}")
        self.dtype = compute_dtype
        self.tl_dtype = _TL_DTYPES[compute_dtype]
        self.lines: list[str] = []
        self._names: dict[str, Sym] = {}
        self.negated: dict[str, Sym] = {}  # name of ``-v`` -> ``v``: ``abs(-v)`` is ``abs(v)``

    def emit(self, expr: str, kind: str = "f") -> Sym:
        if expr in self._names:
            return self._names[expr]
        sym = Sym(self, f"v{len(self._names)}", kind)
        self.lines.append(f"{sym.name} = {expr}")
        self._names[expr] = sym
        return sym

    def body(self, uses: list[str]) -> list[str]:
        """The lines that the source lines ``uses`` need, in order (what the formula computed but the
        kernel does not store, such as the loss in a gradient kernel, is left out)."""
        need = set(_NAMES.findall("\n".join(uses)))
        kept = []
        for line in reversed(self.lines):
            name, expr = line.split(" = ", 1)
            if name in need:
                kept.append(line)
                need.update(_NAMES.findall(expr))
        return kept[::-1]

    def name(self, name: str, kind: str = "f") -> Sym:
        """A value the kernel defines itself (a load, the class ids)."""
        return Sym(self, name, kind)

    def lit(self, value: Any) -> str:
        """A Python value as source: floats typed in the compute dtype (a bare literal is float32 in Triton)."""
        if isinstance(value, Sym):
            return value.name
        if isinstance(value, bool):
            return repr(value)
        if isinstance(value, int):
            return repr(value)
        if isinstance(value, float):
            if math.isnan(value):
                raise ValueError("Builder: the kernels take no NaN constant")
            if math.isinf(value):  # the largest finite value stands in (exp of it less the max is 0 all the same)
                return ("-" if value < 0 else "") + ("3.0e38" if self.dtype == "float32" else "1.0e308")
            if self.dtype == "float64":
                return f"tl.full([], {value!r}, tl.float64)"
            return repr(value)
        raise TypeError(f"Builder: cannot write {type(value).__name__} into a kernel")


def _kind(*values: Any) -> str:
    return "f" if any(isinstance(v, float) or (isinstance(v, Sym) and v.kind == "f") for v in values) else "i"


class Sym:
    """A symbolic block value: arithmetic and comparisons emit lines into its :class:`Builder`."""

    __slots__ = ("b", "kind", "name")

    def __init__(self, builder: Builder, name: str, kind: str = "f"):
        self.b, self.name, self.kind = builder, name, kind  # kind: "f" float, "i" integer, "b" boolean

    def _bin(self, op: str, other: Any, reverse: bool = False, kind: str | None = None) -> Sym:
        a, c = self.b.lit(self), self.b.lit(other)
        if reverse:
            a, c = c, a
        return self.b.emit(f"({a} {op} {c})", kind or _kind(self, other))

    def __add__(self, o: Any) -> Sym: return self._bin("+", o)
    def __radd__(self, o: Any) -> Sym: return self._bin("+", o, True)
    def __sub__(self, o: Any) -> Sym: return self._bin("-", o)
    def __rsub__(self, o: Any) -> Sym: return self._bin("-", o, True)
    def __mul__(self, o: Any) -> Sym: return self._bin("*", o)
    def __rmul__(self, o: Any) -> Sym: return self._bin("*", o, True)
    def __truediv__(self, o: Any) -> Sym: return self._bin("/", o, kind="f")
    def __rtruediv__(self, o: Any) -> Sym: return self._bin("/", o, True, kind="f")
    def __lt__(self, o: Any) -> Sym: return self._bin("<", o, kind="b")
    def __le__(self, o: Any) -> Sym: return self._bin("<=", o, kind="b")
    def __gt__(self, o: Any) -> Sym: return self._bin(">", o, kind="b")
    def __ge__(self, o: Any) -> Sym: return self._bin(">=", o, kind="b")
    def __eq__(self, o: Any) -> Sym: return self._bin("==", o, kind="b")  # type: ignore[override]
    def __ne__(self, o: Any) -> Sym: return self._bin("!=", o, kind="b")  # type: ignore[override]
    def __and__(self, o: Any) -> Sym: return self._bin("&", o, kind="b")
    def __or__(self, o: Any) -> Sym: return self._bin("|", o, kind="b")

    def __neg__(self) -> Sym:
        if self.name in self.b.negated:  # -(-v) is v
            return self.b.negated[self.name]
        out = self.b.emit(f"(-{self.name})", self.kind)
        self.b.negated[out.name] = self
        return out

    def __bool__(self) -> bool:
        raise TypeError("Sym: a traced value has no truth value; the formula branches on data here")

    __hash__ = None  # type: ignore[assignment]


class TritonOps:
    """The ops namespace of :mod:`focalkit._formulas`, emitting Triton source.

    ``cls`` (the class ids, ``[1, BLOCK_C]``) and ``cmask`` (the real classes) are set for softmax kernels.
    """

    def __init__(self, builder: Builder, cls: Sym | None = None, cmask: Sym | None = None):
        self.b, self.cls, self.cmask = builder, cls, cmask
        self.tiny_neg = "-3.0e38" if builder.dtype == "float32" else "-1.0e308"

    def _f(self, expr: str) -> Sym:
        return self.b.emit(expr, "f")

    def _l(self, v: Any) -> str:
        return self.b.lit(v)

    # elementwise
    def exp(self, x: Any) -> Sym:
        return self._f(f"tl.exp({self._l(x)})")

    def log(self, x: Any) -> Sym:
        return self._f(f"tl.log({self._l(x)})")

    def abs(self, x: Any) -> Sym:
        if isinstance(x, Sym) and x.name in self.b.negated:  # |−v| = |v|: σ(±x) and softplus(±x) share exp(−|x|)
            x = self.b.negated[x.name]
        return self._f(f"tl.abs({self._l(x)})")

    def log1p(self, x: Sym) -> Sym:
        u = 1.0 + x
        d = u - 1.0  # 0 where x is below the rounding of 1: log1p(x) = x there
        return self.where(d == 0.0, x, self.log(u) * (x / self.where(d == 0.0, 1.0, d)))

    def frac(self, x: Sym) -> Sym:
        return x - self._f(f"tl.floor({self._l(x)})")  # of x ≥ 0 only, where it is x − trunc(x)

    def sigmoid(self, x: Sym) -> Sym:
        e = self.exp(-self.abs(x))
        r = 1.0 / (1.0 + e)
        return self.where(x >= 0.0, r, e * r)

    def softplus(self, x: Sym) -> Sym:
        return self.maximum(x, 0.0) + self.log1p(self.exp(-self.abs(x)))

    def fma(self, a: Any, b: Any, c: Any) -> Sym:
        return a + b * c

    def sign(self, x: Sym) -> Sym:
        return self.where(x > 0.0, 1.0, self.where(x < 0.0, -1.0, 0.0))

    def where(self, cond: Any, a: Any, c: Any) -> Sym:
        return self._f(f"tl.where({self._l(cond)}, {self._l(a)}, {self._l(c)})")

    def maximum(self, x: Any, floor: Any) -> Sym:
        return self._f(f"tl.maximum({self._l(x)}, {self._l(floor)})")

    def power(self, x: Any, exponent: float) -> Sym:
        return self.exp(exponent * self.log(x))

    def ones_like(self, x: Sym) -> Sym:
        return self._f(f"(tl.zeros_like({x.name}) + {self._l(1.0)})")

    def cast(self, x: Any, dtype: Any = None) -> Sym:
        return self._f(f"{self._l(x)}.to({self.b.tl_dtype})")

    def to_bin(self, v: Sym, bins: int) -> Sym:
        # clamped at 0 too: a NaN logit must not index out of the table
        return self.b.emit(f"tl.minimum(tl.maximum({v.name}.to(tl.int32), 0), {bins - 1})", "i")

    def gather(self, table: str, index: Sym) -> Sym:
        """``table[index]`` for a pointer argument of the kernel."""
        return self._f(f"tl.load({table} + {index.name}).to({self.b.tl_dtype})")

    # along the class axis (axis 1 of a [BLOCK_P, BLOCK_C] block)
    def _axis(self, axis: int) -> None:
        if axis != 1 or self.cls is None:
            raise ValueError("TritonOps: reductions run along axis 1 of a softmax block")

    def max(self, x: Sym, axis: int) -> Sym:
        self._axis(axis)
        return self._f(f"tl.max(tl.where({self.cmask.name}, {x.name}, {self.tiny_neg}), axis=1, keep_dims=True)")

    def sum(self, x: Sym, axis: int, keepdims: bool = False) -> Sym:
        self._axis(axis)
        return self._f(f"tl.sum(tl.where({self.cmask.name}, {x.name}, 0.0), axis=1, keep_dims={keepdims})")

    def log_softmax(self, x: Sym, axis: int) -> Sym:
        z = x - self.max(x, axis)
        return z - self.log(self.sum(self.exp(z), axis, keepdims=True))

    def softmax(self, x: Sym, axis: int) -> Sym:
        return self.exp(self.log_softmax(x, axis))

    def logsumexp(self, x: Sym, axis: int) -> Sym:
        m = self.max(x, axis)
        return m + self.log(self.sum(self.exp(x - m), axis, keepdims=True))

    def one_hot_argmax(self, x: Sym, axis: int) -> Sym:
        """The first largest class (as ``argmax``), among the real ones."""
        self._axis(axis)
        top = self.b.emit(f"tl.argmax(tl.where({self.cmask.name}, {x.name}, {self.tiny_neg}), axis=1, keep_dims=True)",
                          "i")
        return self.b.emit(f"({self.cls.name} == {top.name})", "b")

    def per_class(self, table: str, x: Sym) -> Sym:
        return self._f(f"tl.load({table} + {self.cls.name}, mask={self.cmask.name}, other=0.0).to({self.b.tl_dtype})")

    def index_mask(self, x: Sym, index: Sym, axis: int) -> Sym:
        self._axis(axis)
        return self.b.emit(f"({self.cls.name} == {index.name})", "b")

    def take(self, x: Sym, index: Sym, axis: int) -> Sym:
        return self.sum(self.where(self.index_mask(x, index, axis), x, 0.0), axis, keepdims=True)

    def add_at(self, x: Sym, index: Sym, value: Any, axis: int) -> Sym:
        return x + self.where(self.index_mask(x, index, axis), value, 0.0)
