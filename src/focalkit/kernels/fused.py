"""Fused autograd Functions: the math core evaluated chunk by chunk, the gradient computed in forward.

Why chunks: on a CPU an elementwise op over a 30 MiB tensor is bound by memory traffic and by
page faults on freshly allocated outputs. Evaluating the whole formula (loss *and* its closed-form
gradient, :mod:`focalkit._formulas`) on slices of ~128k elements keeps the temporaries near the core
and reuses the same small allocations, so a dozen ops cost little more than one pass over memory.
The slices are spread over worker threads, each op of a slice on one thread (:mod:`.threads`: no
OpenMP region per op, which stalled under load). Only
the gradient is kept for backward (one input-sized buffer), already scaled by the reduction; for
the usual ``loss.backward()`` on a CPU it is handed to autograd as it is (see :func:`_hand_over`),
otherwise multiplied by the incoming gradient. Nothing else input-sized is allocated, except the
per-element output of ``reduction="none"``, a weight that really is broadcast, and GHM-C's one byte
per element of bin index.

Second derivatives (``create_graph=True``) go through autograd over the same formula, evaluated
whole, so ``gradgradcheck`` holds as well; so does the whole loss when a target, a weight or a tensor
normaliser requires a gradient, and under ``torch.func`` transforms (:func:`through_autograd`).

Under ``torch.compile`` the formula is traced whole (one chunk): Inductor fuses it into one loop.
On CUDA tensors, :func:`sigmoid_loss` and :func:`softmax_loss` hand over to the Triton kernels of
:mod:`.triton_kernels` (written from the same formulas) where those take the options.

What a slice becomes before the formula (ignored targets, smoothing, weights, GHM-C's β) is in
:mod:`.slices`, shared with the Triton kernels.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._formulas import ghmc_beta, ghmc_bin_index
from .ops import TorchOps
from .reference import (
    SigmoidConfig,
    SoftmaxConfig,
    _flat,
    _reduce_scale,
    _sigmoid_chunk,
    _softmax_chunk,
    all_reduce,
    grad_through_formula,
    sigmoid_reference,
    softmax_reference,
)
from .slices import counted as counted_elements
from .slices import sigmoid_prepare
from .threads import for_each_slice, slice_threads

__all__ = ["CHUNK_ELEMENTS", "SigmoidConfig", "SoftmaxConfig", "all_reduce", "ghmc_bin_weights",
           "grad_through_formula", "sigmoid_loss", "sigmoid_reference", "softmax_loss", "softmax_reference",
           "through_autograd"]

CHUNK_ELEMENTS = 1 << 17  # elements per slice on a CPU (twice that for softmax), and the unit off it


DEVICE_CHUNK_FACTOR = 32  # on a GPU a slice (4M elements) bounds the temporaries (16 MiB each), not the cache


def _chunk(device: torch.device, scale: int = 1) -> int | None:
    """Elements per slice (``None``: the whole tensor, under ``torch.compile``).

    On a CPU the slices are spread over worker threads by :func:`.threads.for_each_slice`, each op of
    a slice on one thread (see there why). 2^17 elements was the fastest of 2^15 … 2^17 measured on
    the Intel Xeon (focal ``[100000, 80]``: 53, 45, 40 ms): below it the ops' dispatch, serialised
    by the GIL, costs more than the temporaries' trips to L3. Off the CPU (the path CUDA takes where
    the Triton kernels do not) slices are larger: every op of a slice is a kernel launch there."""
    if torch.compiler.is_compiling():
        return None
    if device.type != "cpu":
        return CHUNK_ELEMENTS * scale * DEVICE_CHUNK_FACTOR
    return CHUNK_ELEMENTS * scale


def _threads(device: torch.device) -> int:
    """Threads for the slice loop: torch's intra-op threads on a CPU, one elsewhere and under compile."""
    if device.type != "cpu" or torch.compiler.is_compiling():
        return 1
    return slice_threads()


def _hand_over(ctx: Any, grad_buf: Tensor, gout: Tensor) -> Tensor:
    """The gradient for backward: the buffer kept from forward (already scaled), times ``gout``.

    For the usual ``loss.backward()`` on a CPU (``gout`` the scalar 1) the buffer itself is handed
    over, so no second input-sized buffer is made: once the graph is freed ``.grad`` takes it without
    a copy; while it is retained (``retain_graph=True``, gradcheck) autograd copies it into ``.grad``,
    and a gradient returned by ``torch.autograd.grad`` is this buffer, to be read, not changed in
    place, if the graph will be used again. Elsewhere the product is a new tensor (reading ``gout``
    on a GPU would be a host sync).
    """
    if (ctx.cfg.reduction != "none" and gout.device.type == "cpu" and not torch.compiler.is_compiling()
            and float(gout) == 1.0):
        return grad_buf
    if ctx.cfg.reduction == "none":
        return grad_buf * gout.reshape(ctx.none_view).to(grad_buf.dtype)
    return grad_buf * gout.to(grad_buf.dtype)


class _SigmoidLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, weight: Tensor | None, pos_weight: Tensor | float | None,
                beta_bins: Tensor | None, bin_index: Tensor | None, cfg: SigmoidConfig,
                normalizer: float | Tensor | str | None, out_dtype: torch.dtype) -> Tensor:
        shape = x.shape
        xf, yf = x.reshape(-1), y.reshape(-1)
        wf = _flat(weight, shape)
        pwf = _flat(pos_weight, shape) if isinstance(pos_weight, Tensor) else pos_weight
        n = xf.numel()
        chunk = _chunk(x.device) or max(n, 1)
        none = cfg.reduction == "none"
        acc_dtype = torch.float64 if x.device.type == "cpu" else cfg.dtype
        count_positives = normalizer == "positives"
        slices = max(1, -(-n // chunk))

        def terms(sl: slice) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
            return _sigmoid_chunk(cfg, xf[sl], yf[sl], None if wf is None else wf[sl],
                                  pwf[sl] if isinstance(pwf, Tensor) else pwf, beta_bins, order=1,
                                  count_positives=count_positives,
                                  bin_index=None if bin_index is None else bin_index[sl])

        if slices == 1:  # small input: the formula once, its gradient kept as it comes (no buffer, no copy)
            loss, grad_buf, w, pos = terms(slice(0, n))
            grad_buf = grad_buf.to(x.dtype).contiguous()
            out = loss.to(out_dtype) if none else None
            total = loss.sum(dtype=acc_dtype)
            count = w.sum(dtype=acc_dtype) if w is not None else torch.full((), float(n), dtype=acc_dtype,
                                                                             device=x.device)
            positives = pos.to(acc_dtype) if pos is not None else torch.zeros((), dtype=acc_dtype, device=x.device)
        else:
            grad_buf = torch.empty(n, dtype=x.dtype, device=x.device)
            out = torch.empty(n, dtype=out_dtype, device=x.device) if none else None
            partials = torch.zeros((3, slices), dtype=acc_dtype, device=x.device)

            def body(i: int) -> None:
                sl = slice(i * chunk, (i + 1) * chunk)
                loss, grad, w, pos = terms(sl)
                grad_buf[sl] = grad
                if none:
                    out[sl] = loss  # type: ignore[index]
                    return
                partials[0, i] = loss.sum()  # a slice sums in its own dtype, the total in float64 (in slice order)
                partials[1, i] = w.sum() if w is not None else loss.numel()
                if pos is not None:
                    partials[2, i] = pos

            for_each_slice(slices, body, threads=_threads(x.device))
            total, count, positives = partials.sum(1).unbind()
        scale = None if none else _reduce_scale(cfg.reduction, count, normalizer, cfg.sync, positives)
        if scale is not None and (cfg.reduction != "sum" or cfg.sync):  # a synced sum is scaled by R
            grad_buf.mul_(scale.to(grad_buf.dtype))
        ctx.cfg, ctx.shape, ctx.normalizer, ctx.out_dtype = cfg, shape, normalizer, out_dtype
        ctx.none_view = (-1,)
        ctx.pos_weight = pos_weight if not isinstance(pos_weight, Tensor) else None
        ctx.save_for_backward(grad_buf, x, y, weight, pos_weight if isinstance(pos_weight, Tensor) else None,
                              beta_bins, bin_index)
        if none:
            return out.view(shape)  # type: ignore[union-attr]
        return (total * scale).to(out_dtype)

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:
        grad_buf, x, y, weight, pos_weight, beta_bins, bin_index = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate the same formula with autograd
            pw = pos_weight if pos_weight is not None else ctx.pos_weight
            g = grad_through_formula(lambda xr: sigmoid_reference(ctx.cfg, xr, y, weight, pw, beta_bins, ctx.normalizer,
                                                                  ctx.out_dtype, bin_index), x, gout, create_graph=True)
            return g, None, None, None, None, None, None, None, None
        return _hand_over(ctx, grad_buf, gout).view(ctx.shape), None, None, None, None, None, None, None, None


def _ghmc_slice_bins(cfg: SigmoidConfig, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """For a flat slice: 1 where an element is counted (else 0), and its GHM-C bin."""
    xc, yc, w = sigmoid_prepare(TorchOps, cfg, x, y, w)
    return counted_elements(TorchOps, xc, w, cfg.dtype), ghmc_bin_index(TorchOps, xc, yc, cfg.bins)


def _ghmc_counts(cfg: SigmoidConfig, x: Tensor, y: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    dtype = cfg.dtype
    bins = cfg.bins
    xf, yf = x.reshape(-1), y.reshape(-1)
    wf = _flat(weight, x.shape)
    if torch._C._are_functorch_transforms_active():  # whole and out of place: a vmapped batch has its own counts
        counted, index = _ghmc_slice_bins(cfg, xf, yf, wf)
        counts = torch.zeros(bins, dtype=torch.float64, device=x.device).scatter_add(
            0, index.long(), counted.to(torch.float64))  # float64: float32 stops counting at 2**24
        return counts.to(dtype), counted.sum(), index
    n = xf.numel()
    bin_index = torch.empty(n, dtype=torch.uint8 if bins <= 256 else torch.int32, device=x.device)
    chunk = _chunk(x.device) or max(n, 1)
    slices = max(1, -(-n // chunk))
    # counts in float64: float32 stops counting at 2**24 (16,777,216 + 1 = 16,777,216)
    partials = torch.zeros((slices, bins + 1), dtype=torch.float64, device=x.device)
    on_cpu = x.device.type == "cpu" and not torch.compiler.is_compiling()

    def body(i: int) -> None:
        sl = slice(i * chunk, (i + 1) * chunk)
        counted, index = _ghmc_slice_bins(cfg, xf[sl], yf[sl], None if wf is None else wf[sl])
        bin_index[sl] = index
        row = partials[i]
        if on_cpu:
            row[:bins] = torch.bincount(index, weights=counted, minlength=bins)  # no sync on a CPU
        else:
            row[:bins].scatter_add_(0, index.long(), counted.to(torch.float64))
        row[bins] = counted.sum()

    for_each_slice(slices, body, threads=_threads(x.device))
    total = partials.sum(0)
    return total[:bins].to(dtype), total[bins].to(dtype), bin_index


def ghmc_bin_weights(cfg: SigmoidConfig, x: Tensor, y: Tensor, weight: Tensor | None, *,
                     density_of: Callable[[Tensor], Tensor] | None = None, bin_normalization: str = "nonempty",
                     sync: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    """GHM-C's weight per bin, ``β_b = N / (density_b · n)``, the density used, and each element's bin
    (one byte each for up to 256 bins: the loss pass gathers β with it instead of binning again;
    ``None`` on the Triton kernels, whose loss pass bins again).

    Counts come from ``bincount`` (CPU) or ``scatter_add`` into ``bins`` slots, chunk by chunk, or from
    one Triton kernel: no host sync, no loop over bins. ``sync`` (a callable on a tensor), when given,
    all-reduces the counts and ``N``. ``density_of`` maps the batch's counts to the density β is formed
    from (the module's running counts); ``None``: the counts themselves.
    """
    from . import triton_kernels

    dtype = cfg.dtype
    bins = cfg.bins
    with torch.no_grad():
        counts = None
        if x.numel() and triton_kernels.wanted(x):  # the loss pass finds the bins again
            with contextlib.suppress(triton_kernels.TritonUnavailable):
                counts, n_valid = triton_kernels.ghmc_counts(cfg, x, y, weight)
                bin_index = None
        if counts is None:
            counts, n_valid, bin_index = _ghmc_counts(cfg, x, y, weight)
        if sync is not None:
            counts, n_valid = sync(counts), sync(n_valid)
        density = counts if density_of is None else density_of(counts)
        if bin_normalization == "nonempty":
            divisor = (counts > 0).sum().to(dtype).clamp_min(1.0)
        else:
            divisor = torch.full((), float(bins), dtype=dtype, device=x.device)  # filled there: no host copy
        beta_bins = ghmc_beta(TorchOps, density, n_valid, divisor)
    return beta_bins, density, bin_index


def through_autograd(*tensors: Any) -> bool:
    """Whether the loss is formed by plain autograd over the formula instead of a fused kernel: under a
    ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``: the whole formula is transformed, op by op),
    or when a tensor other than the logits (targets, weights, a normaliser) needs a gradient, which the
    fused kernels do not form. The logits' gradient is the same to rounding; the cost is the memory of
    the unfused formula."""
    if torch._C._are_functorch_transforms_active():
        return True
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def sigmoid_loss(cfg: SigmoidConfig, x: Tensor, y: Tensor, *, weight: Tensor | None = None,
                 pos_weight: Tensor | float | None = None, beta_bins: Tensor | None = None,
                 bin_index: Tensor | None = None,
                 normalizer: float | Tensor | str | None = None, out_dtype: torch.dtype | None = None) -> Tensor:
    """The loss of a sigmoid family: on the Triton kernels for CUDA tensors (see :mod:`.triton_kernels`),
    else chunk by chunk here."""
    from . import inductor, triton_kernels

    if through_autograd(y, weight, pos_weight, normalizer):
        return sigmoid_reference(cfg, x, y, weight, pos_weight, beta_bins, normalizer, out_dtype or x.dtype,
                                 bin_index)
    if x.numel() and triton_kernels.wanted(x):  # an empty input needs no kernel: the chunked path's empty result
        with contextlib.suppress(triton_kernels.TritonUnavailable):  # warned once; then the chunks below
            return triton_kernels.sigmoid_loss(cfg, x, y, weight=weight, pos_weight=pos_weight, beta_bins=beta_bins,
                                               normalizer=normalizer, out_dtype=out_dtype or x.dtype)
    if inductor.wanted(x) and beta_bins is None and bin_index is None:  # opt-in: FOCALKIT_INDUCTOR=auto
        out = inductor.sigmoid_loss(cfg, x, y, weight, pos_weight, normalizer, out_dtype or x.dtype)
        if out is not None:
            return out
    return _SigmoidLoss.apply(x, y, weight, pos_weight, beta_bins, bin_index, cfg, normalizer, out_dtype or x.dtype)


# ---------------------------------------------------------------------------------------------- softmax


class _SoftmaxLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, weight: Tensor | None, class_factor: Tensor | None,
                class_weight: Tensor | None, cfg: SoftmaxConfig, normalizer: float | Tensor | str | None,
                out_dtype: torch.dtype) -> Tensor:
        shape = x.shape
        n, c = shape[0], shape[1]
        s = math.prod(shape[2:])  # positions per sample: 0 for an empty [N, C, 0]
        x3 = x.reshape(n, c, s)
        t3 = t.reshape(n, c, s) if not cfg.sparse else t.reshape(n, s)
        w2 = None if weight is None else weight.expand(shape[:1] + shape[2:]).reshape(n, s)
        none = cfg.reduction == "none"
        acc_dtype = torch.float64 if x.device.type == "cpu" else cfg.dtype
        chunk = _chunk(x.device, 2)
        per = max(1, (chunk or x.numel() or 1) // max(c, 1))  # positions per slice
        pieces = list(_slices(n, s, per))

        def terms(r0: int, r1: int, s0: int, s1: int) -> tuple[Tensor, Tensor | None, Tensor]:
            return _softmax_chunk(cfg, x3[r0:r1, :, s0:s1], t3[r0:r1, s0:s1] if cfg.sparse else t3[r0:r1, :, s0:s1],
                                  None if w2 is None else w2[r0:r1, s0:s1], class_factor, class_weight, order=1)

        if len(pieces) == 1:  # small input: the formula once, its gradient kept as it comes
            loss, grad_buf, den = terms(*pieces[0])
            grad_buf = grad_buf.to(x.dtype).contiguous()  # type: ignore[union-attr]
            out = loss.to(out_dtype) if none else None
            total, count = loss.sum(dtype=acc_dtype), den.sum(dtype=acc_dtype)
        else:
            grad_buf = torch.empty((n, c, s), dtype=x.dtype, device=x.device)
            out = torch.empty((n, s), dtype=out_dtype, device=x.device) if none else None
            partials = torch.zeros((2, len(pieces)), dtype=acc_dtype, device=x.device)

            def body(i: int) -> None:
                r0, r1, s0, s1 = pieces[i]
                loss, grad, den = terms(r0, r1, s0, s1)
                grad_buf[r0:r1, :, s0:s1] = grad
                if none:
                    out[r0:r1, s0:s1] = loss  # type: ignore[index]
                    return
                partials[0, i] = loss.sum()  # a slice sums in its own dtype, the total in float64 (in slice order)
                partials[1, i] = den.sum()

            for_each_slice(len(pieces), body, threads=_threads(x.device))
            total, count = partials.sum(1).unbind()
        scale = None if none else _reduce_scale(cfg.reduction, count, normalizer, cfg.sync)
        if scale is not None and (cfg.reduction != "sum" or cfg.sync):  # a synced sum is scaled by R
            grad_buf.mul_(scale.to(grad_buf.dtype))
        ctx.cfg, ctx.shape, ctx.normalizer, ctx.out_dtype = cfg, shape, normalizer, out_dtype
        ctx.none_view = (n, 1, s)
        ctx.save_for_backward(grad_buf, x, t, weight, class_factor, class_weight)
        if none:
            return out.view(shape[:1] + shape[2:])  # type: ignore[union-attr]
        return (total * scale).to(out_dtype)

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:
        grad_buf, x, t, weight, class_factor, class_weight = ctx.saved_tensors
        if torch.is_grad_enabled():
            g = grad_through_formula(lambda xr: softmax_reference(ctx.cfg, xr, t, weight, class_factor, class_weight,
                                                                  ctx.normalizer, ctx.out_dtype), x, gout,
                                     create_graph=True)
            return g, None, None, None, None, None, None, None
        return _hand_over(ctx, grad_buf, gout).view(ctx.shape), None, None, None, None, None, None, None


def _slices(n: int, s: int, per: int):
    """(row0, row1, pos0, pos1) slices of an ``(n, ·, s)`` layout holding about ``per`` positions each
    (none for an empty input)."""
    if n == 0 or s == 0:
        return
    if s >= per:
        for r in range(n):
            for s0 in range(0, s, per):
                yield r, r + 1, s0, min(s0 + per, s)
    else:
        rows = max(1, per // s)
        for r0 in range(0, n, rows):
            yield r0, min(r0 + rows, n), 0, s


def softmax_loss(cfg: SoftmaxConfig, x: Tensor, t: Tensor, *, weight: Tensor | None = None,
                 class_factor: Tensor | None = None, class_weight: Tensor | None = None,
                 normalizer: float | Tensor | str | None = None, out_dtype: torch.dtype | None = None) -> Tensor:
    """``class_factor``: α per class times class weights (enters the loss); ``class_weight``: also the mean's
    denominator for class-id targets."""
    from . import inductor, triton_kernels

    if through_autograd(t, weight, class_factor, class_weight, normalizer):
        return softmax_reference(cfg, x, t, weight, class_factor, class_weight, normalizer, out_dtype or x.dtype)
    if x.numel() and triton_kernels.wanted(x) and triton_kernels.softmax_supported(cfg, x.shape[1]):
        with contextlib.suppress(triton_kernels.TritonUnavailable):  # warned once; then the chunks below
            return triton_kernels.softmax_loss(cfg, x, t, weight=weight, class_factor=class_factor,
                                               class_weight=class_weight, normalizer=normalizer,
                                               out_dtype=out_dtype or x.dtype)
    if inductor.wanted(x):  # opt-in: FOCALKIT_INDUCTOR=auto
        out = inductor.softmax_loss(cfg, x, t, weight, class_factor, class_weight, normalizer, out_dtype or x.dtype)
        if out is not None:
            return out
    return _SoftmaxLoss.apply(x, t, weight, class_factor, class_weight, cfg, normalizer, out_dtype or x.dtype)
