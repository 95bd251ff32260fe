"""Triton kernels for CUDA tensors, written from the math core at first use.

Each kernel's body is produced by tracing the same Python that the chunked kernels run
(:mod:`.slices` over :mod:`focalkit._formulas`) with the symbolic ops of :mod:`.trace`; only the
loads, stores and block sums around it are written here. Kernels are specialised to the options
that remove work (family, whole γ, whether α, K ≠ 1 or smoothing are given, ignore index, which
weights are given) and cached.

Forward and backward are one pass each over the inputs:

- forward reads ``x``, ``y`` (and the weights) once and writes one partial sum per block of the
  loss, the counted weight and the positives (``reduction="none"``: the loss per element); the
  partials are added in float64, the normaliser formed on the device (all-reduced with ``sync``),
  and nothing input-sized is kept for backward but the inputs themselves;
- backward reads them again and writes the gradient, already multiplied by the normaliser and the
  incoming gradient (read on the device: no host sync).

If a kernel cannot be built or loaded (a GPU or driver this Triton cannot serve), one warning is
given and that kernel's calls run on the chunked kernels from then on (other kernels are unaffected);
backward recovers through autograd of the formula. Other errors (a CUDA error left by earlier work,
a caller's mistake) are raised as they are. ``FOCALKIT_TRITON=always`` raises every failure.

Runtime options (α, a γ that is not a small whole number, the truncation threshold, K ≠ 1, label
smoothing) are kernel arguments, so a γ schedule compiles nothing new; the cache of kernels is
bounded. CUDA graphs: kernels compile at their first launch, so warm up before capturing (a first
launch during capture takes the chunked kernels), and switch value checks off
(``focalkit.set_value_checks(False)``): each value check is a device-to-host sync.

GHM-C's histogram is a third kernel (bins by arithmetic, ``atomic_add`` of integer counts); its
loss pass finds each element's bin again instead of storing it.

What runs here: every loss with every option, softmax up to 4096 classes (class ids without label
smoothing use the kernel that forms only the target's weight; smoothing and probability targets the
dense one). More classes, ``torch.compile`` (Inductor writes its own Triton from the core) and
second derivatives take the chunked path of :mod:`.fused`. A weight broadcast over the logits
(per sample, per class) is read through its strides, not copied to the logits' size.

``FOCALKIT_TRITON``: ``auto`` (default: CUDA tensors, when Triton imports), ``0`` (never), or
``always`` (any device: CPU tensors need ``TRITON_INTERPRET=1``, Triton's interpreter; the tests
run the kernels that way).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import linecache
import math
import os
import warnings
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor

from .._formulas import ghmc_bin_index, is_one, is_zero
from .ops import TINY
from .reference import (
    SigmoidConfig,
    SoftmaxConfig,
    _reduce_scale,
    grad_through_formula,
    sigmoid_reference,
    softmax_reference,
)
from .slices import counted, sigmoid_prepare, sigmoid_slice_terms, softmax_dense_slice_terms, softmax_sparse_slice_terms
from .trace import Builder, TritonOps

__all__ = ["MAX_CLASSES", "TritonUnavailable", "ghmc_counts", "kernel_source", "sigmoid_loss", "softmax_loss",
           "softmax_supported", "wanted"]

MAX_CLASSES = 4096
MAX_GRID_Y = 65535  # CUDA's limit on a grid's second dimension
_MODES = ("auto", "0", "always")
_available: bool | None = None
_CACHE_SIZE = 256  # kernels kept (least recently used dropped): a few dozen cover every option a run uses
_cache: OrderedDict[Any, Any] = OrderedDict()

# Options a kernel takes at run time (one kernel serves every value: a γ schedule or an adaptive γ does not
# compile a kernel per step), and the value at which it is specialised instead because that removes work.
_RUNTIME = (("alpha", "alpha_v"), ("gamma", "gamma_v"), ("threshold", "thr_v"), ("k", "k_v"),
            ("label_smoothing", "eps_v"), ("gamma_neg", "gneg_v"), ("clip", "clip_v"), ("epsilon", "poly_v"))


def _specialised(option: str, value: Any) -> bool:
    if option == "alpha":
        return value is None  # no α: no weighting at all
    if option in ("gamma", "gamma_neg"):
        return _whole(value)  # products instead of exp/log, and γ = 0 drops the modulating factor
    if option == "k":
        return is_one(value)  # σ(kx) is σ(x): one exp fewer
    if option in ("label_smoothing", "clip", "epsilon"):
        return is_zero(value)
    return False


def _whole(v: Any) -> bool:
    return float(v).is_integer() and 0 <= v <= 8


def _options_key(cfg: Any) -> tuple[Any, ...]:
    """The options' part of a kernel's cache key: the value where the kernel is specialised to it, else
    ``"runtime"``."""
    return tuple(getattr(cfg, o) if _specialised(o, getattr(cfg, o)) else "runtime" for o, _ in _RUNTIME
                 if hasattr(cfg, o))


def _traced(cfg: Any, b: Builder) -> Any:
    """``cfg`` with each option taken at run time replaced by the kernel argument that carries it."""
    return dataclasses.replace(cfg, **{o: b.name(arg) for o, arg in _RUNTIME
                                       if hasattr(cfg, o) and not _specialised(o, getattr(cfg, o))})


def _runtime_values(cfg: Any) -> list[float]:
    """The run-time options' values, in the kernels' parameter order (0.0 where a kernel ignores one)."""
    return [float(getattr(cfg, option) or 0.0) if hasattr(cfg, option) else 0.0 for option, _ in _RUNTIME]


def _scalar_params(b: Builder) -> list[str]:
    return [f"{arg}: {b.tl_dtype}" for _, arg in _RUNTIME]  # typed: a Python float is float32 to Triton


def _scalar_lines(b: Builder) -> list[str]:
    """The run-time options made values of the compute dtype: Triton's interpreter ignores the parameters'
    types and would take ``eps_v / C`` in float32 (the compiler reads them already typed; no cost)."""
    return [f"{arg} = tl.full([], {arg}, {b.tl_dtype})" for _, arg in _RUNTIME]


def _cached(key: Any, build: Any) -> Any:
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    kernel = build()
    _cache[key] = kernel
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return kernel


def _triton_imports() -> bool:
    global _available
    if _available is None:
        try:
            import triton
            import triton.language  # noqa: F401

            _available = True
        except Exception:  # ImportError, or a Triton that cannot load on this machine
            _available = False
    return _available


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


class TritonUnavailable(RuntimeError):
    """A kernel failed to build or launch (``FOCALKIT_TRITON=auto``): the chunked kernels take over."""


def _mode() -> str:
    mode = os.environ.get("FOCALKIT_TRITON", "auto").lower()
    if mode not in _MODES:
        raise ValueError(f"FOCALKIT_TRITON: expected one of {', '.join(_MODES)}; got {mode!r}")
    return mode


def _on_device(args: tuple[Any, ...]) -> Any:
    """The launch's device made current: Triton launches on ``torch.cuda.current_device()`` and its current
    stream, not on the tensors' device, so logits on ``cuda:1`` with ``cuda:0`` current would be read from
    the wrong GPU (issue 14, item 1)."""
    device = next((a.device for a in args if isinstance(getattr(a, "device", None), torch.device)), None)
    if device is not None and device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


# a CUDA error that poisons the context: it came from an earlier launch (ours or anyone's), not from building
# this kernel, and the chunked fallback would fail on it too; it is raised as it is
_STICKY = ("illegal memory access", "illegal address", "misaligned address", "unspecified launch failure",
           "device-side assert", "illegal instruction", "launch timed out", "hardware stack error")


def _cannot_build(exc: BaseException) -> bool:
    """Whether ``exc`` says that this kernel cannot be built or loaded here (a GPU or driver this Triton does
    not serve, too little shared memory, a missing toolchain), as opposed to a caller's mistake or a CUDA
    error left by earlier work, which are raised as they are."""
    text = str(exc).lower()
    if any(s in text for s in _STICKY):
        return False
    try:
        from triton.errors import TritonError  # CompilationError, OutOfResources, PTXASError

        if isinstance(exc, TritonError):
            return True
    except ImportError:
        pass
    import subprocess

    if isinstance(exc, (ImportError, OSError, subprocess.CalledProcessError)):
        return True  # a toolchain or driver library that does not load
    return isinstance(exc, RuntimeError) and (
        "triton error [cuda]" in text or "passmanager" in text or "no kernel image" in text
        or ("unsupported" in text and "arch" in text))


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _launch(kernel: Any, grid: tuple[int, ...], *args: Any, **constexprs: Any) -> None:
    """Launch ``kernel``. A kernel that cannot be built here is given up (that kernel only, with one warning)
    and :class:`TritonUnavailable` sends the call to the chunked kernels; any other error is raised as it is.
    ``FOCALKIT_TRITON=always`` raises every failure.

    Under CUDA-graph capture a kernel that has not run before is not compiled (a compile would break the
    capture): the call takes the chunked kernels instead. Warm up before capturing."""
    failed = getattr(kernel, "focalkit_failed", None)
    if failed is not None:
        raise TritonUnavailable(failed)
    if not getattr(kernel, "focalkit_ran", False) and _capturing():
        raise TritonUnavailable("a first launch inside CUDA-graph capture")
    try:
        # fp fusion (FMA) stated, as Triton's default: left unset, Triton 3.9 warns at the first compile, which a
        # test run that turns warnings into errors would fail on (the interpreter ignores the option)
        with _on_device(args):
            kernel[grid](*args, enable_fp_fusion=True, **constexprs)
    except Exception as exc:
        if _mode() == "always" or not _cannot_build(exc):
            raise
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        with contextlib.suppress(AttributeError, TypeError):
            kernel.focalkit_failed = reason
        warnings.warn(f"focalkit: a Triton kernel cannot be built here ({reason}); its calls run on the chunked "
                      "PyTorch kernels instead (FOCALKIT_TRITON=0 skips Triton).", RuntimeWarning, stacklevel=2)
        raise TritonUnavailable(reason) from exc
    with contextlib.suppress(AttributeError, TypeError):
        kernel.focalkit_ran = True


def wanted(x: Tensor) -> bool:
    """Whether ``x``'s loss runs on the Triton kernels (see the module's docstring for ``FOCALKIT_TRITON``)."""
    mode = _mode()
    if mode == "0" or torch.compiler.is_compiling():
        return False
    if mode == "always":
        if not _triton_imports():
            raise RuntimeError("FOCALKIT_TRITON=always: Triton does not import here (pip install triton)")
        if x.device.type == "cpu" and not _interpreting():
            raise RuntimeError("FOCALKIT_TRITON=always on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
        return True
    return x.device.type == "cuda" and _triton_imports()


def softmax_supported(cfg: SoftmaxConfig, num_classes: int) -> bool:
    return 1 <= num_classes <= MAX_CLASSES


def _compile(name: str, params: list[str], body: list[str]) -> Any:
    """A ``@triton.jit`` kernel from source lines (kept in ``linecache``, so Triton can read its source)."""
    import triton
    import triton.language as tl

    src = "\n".join([f"def {name}({', '.join(params)}):"] + ["    " + line for line in body]) + "\n"
    filename = f"<focalkit-triton-{hashlib.sha1(src.encode()).hexdigest()[:16]}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    scope: dict[str, Any] = {"tl": tl, "triton": triton}
    exec(compile(src, filename, "exec"), scope)
    kernel = triton.jit(scope[name])
    kernel.focalkit_source = src
    return kernel


def _dtype_name(dtype: torch.dtype) -> str:
    return "float64" if dtype == torch.float64 else "float32"


def _block(default: int) -> int:
    return 4 * default if _interpreting() else default  # the interpreter pays per program, not per element


# ---------------------------------------------------------------------------------------------- sigmoid


def _broadcast_load(name: str, pattern: tuple[bool, ...] | None) -> list[str]:
    """Lines loading ``name`` for each element: flat, or through the sizes ``{name}_s{i}`` and strides
    ``{name}_t{i}`` of a broadcast weight (``pattern``: whether each merged dimension has a stride)."""
    if pattern is None:
        return [f"{name} = tl.load({name}_ptr + offs, mask=m, other=0.0)"]
    lines = ["r = offs", f"{name}_i = tl.zeros_like(offs)"]
    for i in reversed(range(len(pattern))):
        if i:
            lines += [f"c = r % {name}_s{i}", f"r = r // {name}_s{i}"]
        else:
            lines.append("c = r")
        if pattern[i]:
            lines.append(f"{name}_i += c * {name}_t{i}")
    return [*lines, f"{name} = tl.load({name}_ptr + {name}_i, mask=m, other=0.0)"]


def _epilogue(mode: str, dt: str, loss: Any, grad: Any, count: Any, positives: Any, none_gout: bool, *, at: str,
              mask: str, grad_at: str, grad_mask: str) -> list[str]:
    """The stores after the formula: the gradient times the normaliser and the incoming gradient
    (``"grad"``), the loss per element (``"none"``), or the block's partial sums of the loss, the
    counted weight (``None``: every element counts) and the positives (``"sum"``)."""
    if mode == "grad":
        gout = f"tl.load(gout_ptr + {at}, mask={mask}, other=0.0)" if none_gout else "tl.load(gout_ptr)"
        return [f"g = {grad.name} * tl.load(scale_ptr).to({dt}) * ({gout}).to({dt})",
                f"tl.store(out_ptr + {grad_at}, g.to(out_ptr.dtype.element_ty), mask={grad_mask})"]
    if mode == "none":
        return [f"tl.store(out_ptr + {at}, {loss.name}.to(out_ptr.dtype.element_ty), mask={mask})"]
    counted_weight = f"tl.where({mask}, {count.name}, 0.0)" if count is not None else f"{mask}.to({dt})"
    lines = ["slot = pid.to(tl.int64) * 3",
             f"tl.store(part_ptr + slot, tl.sum(tl.where({mask}, {loss.name}, 0.0)))",
             f"tl.store(part_ptr + slot + 1, tl.sum({counted_weight}))"]
    if positives is not None:
        lines.append(f"tl.store(part_ptr + slot + 2, tl.sum(tl.where({mask}, {positives.name}, 0.0)))")
    return lines


def _sigmoid_kernel(cfg: SigmoidConfig, mode: str, has_w: bool, pw: Any, has_beta: bool, positives: bool,
                    none_gout: bool, patterns: tuple[Any, Any] = (None, None)) -> Any:
    """``mode``: ``"sum"`` (block partials), ``"none"`` (loss per element), ``"grad"`` or ``"hist"``;
    ``patterns``: how the weight and ``pos_weight`` are broadcast (see :func:`_broadcast_plan`)."""
    pw_key = "tensor" if isinstance(pw, Tensor) else pw
    key = ("sigmoid", mode, cfg.family, cfg.dtype, _options_key(cfg), cfg.iou_weighted, cfg.gamma_hard,
           cfg.hard_threshold, cfg.ignore_index, cfg.bins, has_w, pw_key, has_beta, positives, none_gout, patterns)
    return _cached(key, lambda: _build_sigmoid(cfg, mode, has_w, pw, pw_key, has_beta, positives, none_gout,
                                               patterns))


def _build_sigmoid(cfg: SigmoidConfig, mode: str, has_w: bool, pw: Any, pw_key: Any, has_beta: bool, positives: bool,
                   none_gout: bool, patterns: tuple[Any, Any]) -> Any:
    b = Builder(_dtype_name(cfg.dtype))
    ops = TritonOps(b)
    cfg = _traced(cfg, b)
    x, y = b.name("x"), b.name("y")
    w = b.name("w") if has_w else None
    pw_sym = b.name("pw") if pw_key == "tensor" else pw
    dt = b.tl_dtype
    head = [*_scalar_lines(b),
            "pid = tl.program_id(0)",
            "offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
            "m = offs < n",
            "x = tl.load(x_ptr + offs, mask=m, other=0.0)",
            "y = tl.load(y_ptr + offs, mask=m, other=0)"]
    if has_w:
        head += _broadcast_load("w", patterns[0])
    if pw_key == "tensor":
        head += _broadcast_load("pw", patterns[1])
    if mode == "hist":
        xc, yc, wc = sigmoid_prepare(ops, cfg, x, y, w)
        index = ghmc_bin_index(ops, xc, yc, cfg.bins)
        one = counted(ops, xc, wc, cfg.dtype)
        tail = [f"c = tl.where(m, {one.name}, 0.0).to(tl.int64)",  # int64: int32 counts wrap past 2**31
                f"tl.atomic_add(part_ptr + {index.name}, c, mask=m)",
                f"tl.atomic_add(part_ptr + {cfg.bins}, tl.sum(c, axis=0))"]
    else:
        order = 1 if mode == "grad" else 0
        loss, grad, wc, pos = sigmoid_slice_terms(ops, cfg, x, y, w, pw_sym, "beta_ptr" if has_beta else None,
                                                  order=order, tiny=TINY[cfg.dtype], count_positives=positives)
        tail = _epilogue(mode, dt, loss, grad, wc, pos, none_gout, at="offs", mask="m", grad_at="offs",
                         grad_mask="m")
    params = ["x_ptr", "y_ptr", "w_ptr", "pw_ptr", "beta_ptr", "scale_ptr", "gout_ptr", "out_ptr", "part_ptr", "n",
              *[f"{v}_{k}{i}" for v in ("w", "pw") for k in "st" for i in range(_MAX_DIMS)], *_scalar_params(b),
              "BLOCK: tl.constexpr"]
    return _compile(f"focalkit_sigmoid_{mode}", params, head + b.body(tail) + tail)


_MAX_DIMS = 4


def _broadcast_plan(t: Tensor, shape: torch.Size) -> tuple[Tensor, tuple[bool, ...] | None, list[int]]:
    """A weight broadcast to ``shape`` without being materialised: its own elements (flat) and, when it is
    really broadcast, the sizes and strides of the expanded view with neighbouring dimensions merged
    (``[N, 1]`` over ``[N, C]``: sizes (N, C), strides (1, 0)). More than four merged dimensions, or
    none broadcast: the elements at the input's size, read flat."""
    t = t.view(torch.uint8) if t.dtype == torch.bool else t
    base = t.contiguous()
    e = base.expand(shape)
    sizes: list[int] = []
    strides: list[int] = []
    for size, stride in zip(e.shape, e.stride(), strict=True):
        if size == 1:
            continue
        if sizes and strides[-1] == stride * size:
            sizes[-1] *= size
            strides[-1] = stride
        else:
            sizes.append(size)
            strides.append(stride)
    if e.is_contiguous() or len(sizes) > _MAX_DIMS or not sizes:
        return e.reshape(-1).contiguous(), None, [1] * _MAX_DIMS + [0] * _MAX_DIMS
    pad = _MAX_DIMS - len(sizes)
    return (base.reshape(-1), tuple(st != 0 for st in strides), [*sizes, *[1] * pad, *strides, *[0] * pad])


class _Sigmoid:
    """Flat, contiguous views of one call's tensors (a bool target read as bytes); weights that are
    broadcast are read through their strides, not copied to the input's size."""

    def __init__(self, x: Tensor, y: Tensor, weight: Tensor | None, pos_weight: Any):
        self.x = x.reshape(-1).contiguous()
        y = y.reshape(-1).contiguous()
        self.y = y.view(torch.uint8) if y.dtype == torch.bool else y
        none = [1] * _MAX_DIMS + [0] * _MAX_DIMS
        self.w, w_pattern, self.w_args = (None, None, none) if weight is None else _broadcast_plan(weight, x.shape)
        self.pw, pw_pattern, self.pw_args = ((pos_weight, None, none) if not isinstance(pos_weight, Tensor)
                                             else _broadcast_plan(pos_weight, x.shape))
        self.patterns = (w_pattern, pw_pattern)
        self.n = self.x.numel()

    def launch(self, cfg: SigmoidConfig, kernel: Any, beta: Tensor | None, scale: Tensor | None,
               gout: Tensor | None, out: Tensor | None, part: Tensor | None, block: int) -> None:
        grid = (max(1, -(-self.n // block)),)
        dummy = self.x
        _launch(kernel, grid, self.x, self.y, dummy if self.w is None else self.w,
                self.pw if isinstance(self.pw, Tensor) else dummy, dummy if beta is None else beta,
                dummy if scale is None else scale, dummy if gout is None else gout, dummy if out is None else out,
                dummy if part is None else part, self.n, *self.w_args, *self.pw_args, *_runtime_values(cfg),
                BLOCK=block)


_SIGMOID_BLOCK = 1024


class _TritonSigmoidLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, weight: Tensor | None, pos_weight: Tensor | float | None,
                beta_bins: Tensor | None, cfg: SigmoidConfig, normalizer: float | Tensor | str | None,
                out_dtype: torch.dtype) -> Tensor:
        flat = _Sigmoid(x, y, weight, pos_weight)
        block = _block(_SIGMOID_BLOCK)
        beta = None if beta_bins is None else beta_bins.to(cfg.dtype).contiguous()
        has = (flat.w is not None, flat.pw, beta is not None)
        if cfg.reduction == "none":
            out = torch.empty(flat.n, dtype=out_dtype, device=x.device)
            flat.launch(cfg, _sigmoid_kernel(cfg, "none", *has, False, False, flat.patterns), beta, None, None, out,
                        None, block)
            scale = torch.ones((), dtype=cfg.dtype, device=x.device)
            result = out.view(x.shape)
        else:
            positives = normalizer == "positives"
            grid = max(1, -(-flat.n // block))
            part = torch.zeros((grid, 3), dtype=cfg.dtype, device=x.device)
            flat.launch(cfg, _sigmoid_kernel(cfg, "sum", *has, positives, False, flat.patterns), beta, None, None, None,
                        part, block)
            total, count, pos = part.sum(0, dtype=torch.float64).unbind()
            scale = _reduce_scale(cfg.reduction, count, normalizer, cfg.sync, pos if positives else None)
            result = (total * scale).to(out_dtype)
        ctx.cfg, ctx.normalizer, ctx.out_dtype, ctx.shape = cfg, normalizer, out_dtype, x.shape
        ctx.pos_weight = pos_weight if not isinstance(pos_weight, Tensor) else None
        ctx.save_for_backward(x, y, weight, pos_weight if isinstance(pos_weight, Tensor) else None, beta_bins,
                              scale.to(cfg.dtype))
        return result

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:
        x, y, weight, pos_weight, beta_bins, scale = ctx.saved_tensors
        pw = pos_weight if pos_weight is not None else ctx.pos_weight
        cfg = ctx.cfg

        def value_of(xr: Tensor) -> Tensor:
            return sigmoid_reference(cfg, xr, y, weight, pw, beta_bins, ctx.normalizer, ctx.out_dtype)

        if torch.is_grad_enabled():  # create_graph: differentiate the same formula with autograd
            return grad_through_formula(value_of, x, gout, create_graph=True), None, None, None, None, None, None, None
        flat = _Sigmoid(x, y, weight, pw)
        beta = None if beta_bins is None else beta_bins.to(cfg.dtype).contiguous()
        none = cfg.reduction == "none"
        kernel = _sigmoid_kernel(cfg, "grad", flat.w is not None, flat.pw, beta is not None, False, none,
                                 flat.patterns)
        grad = torch.empty_like(flat.x)
        try:
            flat.launch(cfg, kernel, beta, scale, gout.reshape(-1).contiguous() if none else gout.reshape(()), grad,
                        None, _block(_SIGMOID_BLOCK))
        except TritonUnavailable:  # the same gradient through autograd of the formula
            grad = grad_through_formula(value_of, x, gout, create_graph=False)
        return grad.view(ctx.shape), None, None, None, None, None, None, None


def sigmoid_loss(cfg: SigmoidConfig, x: Tensor, y: Tensor, *, weight: Tensor | None, pos_weight: Tensor | float | None,
                 beta_bins: Tensor | None, normalizer: float | Tensor | str | None, out_dtype: torch.dtype) -> Tensor:
    return _TritonSigmoidLoss.apply(x, y, weight, pos_weight, beta_bins, cfg, normalizer, out_dtype)


def ghmc_counts(cfg: SigmoidConfig, x: Tensor, y: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """GHM-C's counts per bin and the number of counted elements, in one pass (integer atomics)."""
    flat = _Sigmoid(x, y, weight, None)
    slots = torch.zeros(cfg.bins + 1, dtype=torch.int64, device=x.device)
    kernel = _sigmoid_kernel(cfg, "hist", flat.w is not None, None, False, False, False, flat.patterns)
    flat.launch(cfg, kernel, None, None, None, None, slots, _block(_SIGMOID_BLOCK))
    slots = slots.to(cfg.dtype)
    return slots[: cfg.bins], slots[cfg.bins]


# ---------------------------------------------------------------------------------------------- softmax


# Where a block of positions lies in an (n, C, S) tensor. "rows" (S = 1: [N, C], or classes-last taken as
# (B·T, C)): positions are rows of C contiguous scores. "planes" (S > 1: [B, C, H, W]): one program takes
# a contiguous run of positions of one sample, so that each class's loads are contiguous (coalesced);
# the grid is (position blocks, samples). "flat": any position anywhere (more than 65535 samples).
_LAYOUTS = {
    "rows": ["pid = tl.program_id(0)",
             "p = pid.to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]",
             "pm = p < P",
             "xoff = p * C + cls"],
    "planes": ["pid = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)",
               "j = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]",
               "pm = j < S",
               "p = tl.program_id(1).to(tl.int64) * S + j",
               "xoff = tl.program_id(1).to(tl.int64) * C * S + cls.to(tl.int64) * S + j"],
    "flat": ["pid = tl.program_id(0)",
             "p = pid.to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]",
             "pm = p < P",
             "xoff = (p // S) * C * S + p % S + cls.to(tl.int64) * S"],
}


def _softmax_kernel(cfg: SoftmaxConfig, mode: str, has_w: bool, has_cf: bool, has_cw: bool, none_gout: bool,
                    layout: str = "rows") -> Any:
    key = ("softmax", mode, cfg.family, cfg.dtype, _options_key(cfg), cfg.gamma_hard, cfg.hard_threshold,
           cfg.ignore_index, cfg.sparse, has_w, has_cf, has_cw, none_gout, layout)
    return _cached(key, lambda: _build_softmax(cfg, mode, has_w, has_cf, has_cw, none_gout, layout))


def _build_softmax(cfg: SoftmaxConfig, mode: str, has_w: bool, has_cf: bool, has_cw: bool, none_gout: bool,
                   layout: str) -> Any:
    sparse_terms = cfg.sparse and is_zero(cfg.label_smoothing)  # only the target's weight is formed
    b = Builder(_dtype_name(cfg.dtype))
    ops = TritonOps(b, cls=b.name("cls", "i"), cmask=b.name("cmask", "b"))
    cfg = _traced(cfg, b)
    dt = b.tl_dtype
    head = [*_scalar_lines(b),
            "cls = tl.arange(0, BLOCK_C)[None, :]",
            "cmask = cls < C",
            *_LAYOUTS[layout],
            "x = tl.load(x_ptr + xoff, mask=pm & cmask, other=0.0)"]
    if cfg.sparse:
        head += [f"t = tl.load(t_ptr + p, mask=pm, other={cfg.ignore_index})",
                 # an id outside [0, C) (value checks off) reads as ignored instead of reading out of bounds
                 f"t = tl.where((t >= 0) & (t < C), t, {cfg.ignore_index})"]
    else:  # probabilities, laid out as the logits
        head.append("t = tl.load(t_ptr + xoff, mask=pm & cmask, other=0.0)")
    if has_w:
        head.append("w = tl.load(w_ptr + p, mask=pm, other=0.0)")
    order = 1 if mode == "grad" else 0
    x, t = b.name("x"), b.name("t", "i" if cfg.sparse else "f")
    w = b.name("w") if has_w else None
    cf, cw = "cf_ptr" if has_cf else None, "cw_ptr" if has_cw else None
    if sparse_terms:
        loss, grad, den = softmax_sparse_slice_terms(ops, cfg, x, t, w, cf, cw, order=order)
    else:
        loss, grad, den = softmax_dense_slice_terms(ops, cfg, x, t, w, cf, cw, order=order,
                                                    num_classes=b.name("C", "i"))
    tail = _epilogue(mode, dt, loss, grad, den, None, none_gout, at="p", mask="pm", grad_at="xoff",
                     grad_mask="pm & cmask")
    params = ["x_ptr", "t_ptr", "w_ptr", "cf_ptr", "cw_ptr", "scale_ptr", "gout_ptr", "out_ptr", "part_ptr", "P", "C",
              "S", *_scalar_params(b), "BLOCK_P: tl.constexpr", "BLOCK_C: tl.constexpr"]
    return _compile(f"focalkit_softmax_{mode}", params, head + b.body(tail) + tail)


def _pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


class _Softmax:
    def __init__(self, x: Tensor, t: Tensor, weight: Tensor | None):
        n, c = x.shape[0], x.shape[1]
        self.s = math.prod(x.shape[2:])  # never a phantom row for [N, C, 0] (empty inputs do not reach here)
        self.c = c
        self.x = x.contiguous()
        self.t = t.reshape(-1).contiguous()
        w = None if weight is None else weight.expand(x.shape[:1] + x.shape[2:]).reshape(-1)
        self.w = None if w is None else (w.view(torch.uint8) if w.dtype == torch.bool else w).contiguous()
        self.n = n
        self.positions = n * self.s
        self.block_c = max(2, _pow2(c))
        self.block_p = max(1, _block(4096) // self.block_c)
        self.layout = "rows" if self.s == 1 else ("planes" if n <= MAX_GRID_Y else "flat")

    def grid(self) -> tuple[int, ...]:
        if self.layout == "planes":
            return (max(1, -(-self.s // self.block_p)), max(1, self.n))
        return (max(1, -(-self.positions // self.block_p)),)

    def programs(self) -> int:
        return math.prod(self.grid())

    def launch(self, cfg: SoftmaxConfig, kernel: Any, cf: Tensor | None, cw: Tensor | None, scale: Tensor | None,
               gout: Tensor | None, out: Tensor | None, part: Tensor | None) -> None:
        d = self.x
        _launch(kernel, self.grid(), self.x, self.t, d if self.w is None else self.w, d if cf is None else cf,
                d if cw is None else cw, d if scale is None else scale, d if gout is None else gout,
                d if out is None else out, d if part is None else part, self.positions, self.c, self.s,
                *_runtime_values(cfg), BLOCK_P=self.block_p, BLOCK_C=self.block_c)


def _contig(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype).contiguous()


class _TritonSoftmaxLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, weight: Tensor | None, class_factor: Tensor | None,
                class_weight: Tensor | None, cfg: SoftmaxConfig, normalizer: float | Tensor | str | None,
                out_dtype: torch.dtype) -> Tensor:
        flat = _Softmax(x, t, weight)
        cf, cw = _contig(class_factor, cfg.dtype), _contig(class_weight, cfg.dtype)
        has = (flat.w is not None, cf is not None, cw is not None)
        if cfg.reduction == "none":
            out = torch.empty(flat.positions, dtype=out_dtype, device=x.device)
            flat.launch(cfg, _softmax_kernel(cfg, "none", *has, False, flat.layout), cf, cw, None, None, out, None)
            scale = torch.ones((), dtype=cfg.dtype, device=x.device)
            result = out.view(x.shape[:1] + x.shape[2:])
        else:
            part = torch.zeros((flat.programs(), 3), dtype=cfg.dtype, device=x.device)
            flat.launch(cfg, _softmax_kernel(cfg, "sum", *has, False, flat.layout), cf, cw, None, None, None, part)
            total, count, _ = part.sum(0, dtype=torch.float64).unbind()
            scale = _reduce_scale(cfg.reduction, count, normalizer, cfg.sync)
            result = (total * scale).to(out_dtype)
        ctx.cfg, ctx.normalizer, ctx.out_dtype = cfg, normalizer, out_dtype
        ctx.save_for_backward(x, t, weight, class_factor, class_weight, scale.to(cfg.dtype))
        return result

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:
        x, t, weight, class_factor, class_weight, scale = ctx.saved_tensors
        cfg = ctx.cfg

        def value_of(xr: Tensor) -> Tensor:
            return softmax_reference(cfg, xr, t, weight, class_factor, class_weight, ctx.normalizer, ctx.out_dtype)

        if torch.is_grad_enabled():
            return grad_through_formula(value_of, x, gout, create_graph=True), None, None, None, None, None, None, None
        flat = _Softmax(x, t, weight)
        cf, cw = _contig(class_factor, cfg.dtype), _contig(class_weight, cfg.dtype)
        none = cfg.reduction == "none"
        kernel = _softmax_kernel(cfg, "grad", flat.w is not None, cf is not None, cw is not None, none, flat.layout)
        grad = torch.empty_like(flat.x)
        try:
            flat.launch(cfg, kernel, cf, cw, scale, gout.reshape(-1).contiguous() if none else gout.reshape(()), grad,
                        None)
        except TritonUnavailable:  # the same gradient through autograd of the formula
            grad = grad_through_formula(value_of, x, gout, create_graph=False)
        return grad, None, None, None, None, None, None, None


def softmax_loss(cfg: SoftmaxConfig, x: Tensor, t: Tensor, *, weight: Tensor | None, class_factor: Tensor | None,
                 class_weight: Tensor | None, normalizer: float | Tensor | str | None,
                 out_dtype: torch.dtype) -> Tensor:
    return _TritonSoftmaxLoss.apply(x, t, weight, class_factor, class_weight, cfg, normalizer, out_dtype)


def kernel_source(kernel: Any) -> str:
    """The generated source of a kernel (for reading and for the tests)."""
    return kernel.focalkit_source

