"""The fused kernels: chunk boundaries, the autograd reference, torch.compile, no host syncs."""

from __future__ import annotations

import pytest
import torch

import focalkit as fk
from focalkit.kernels import fused

from .cases import ALL, SIGMOID, SOFTMAX


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 37)  # odd, smaller than a row: every boundary case


def _inputs(case, shape):
    x = torch.randn(shape, dtype=torch.float64) * 3
    if case.family == "sigmoid":
        y = (torch.rand(shape) < 0.3).double()
        w = torch.rand(shape, dtype=torch.float64)
    else:
        y = torch.randint(0, shape[1], (shape[0], *tuple(shape[2:])))
        y[0] = -100
        w = torch.rand((shape[0], *tuple(shape[2:])), dtype=torch.float64)
    return x, y, w


def _value_grad(case, x, y, w, reduction):
    xr = x.clone().requires_grad_(True)
    out = case.function(xr, y, sample_weight=w, reduction=reduction, **case.options)
    (g,) = torch.autograd.grad(out.sum(), xr)
    return out.detach(), g


@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("shape", [(9, 5), (3, 4, 6, 7), (2, 3, 50)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_many_small_chunks_equal_one_chunk(case, shape, reduction, monkeypatch):
    x, y, w = _inputs(case, shape)
    whole = _value_grad(case, x, y, w, reduction)
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 37)
    chunked = _value_grad(case, x, y, w, reduction)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ALL, ids=str)
def test_closed_form_gradient_equals_autograd_of_the_formula(case, tiny_chunks):
    """The gradient computed in forward against autograd through the same formula (the reference path)."""
    x, y, w = _inputs(case, (12, 4, 5))
    xr = x.clone().requires_grad_(True)
    loss = case.function(xr, y, sample_weight=w, **case.options)
    (fused_grad,) = torch.autograd.grad(loss, xr, create_graph=False)
    xr2 = x.clone().requires_grad_(True)
    loss2 = case.function(xr2, y, sample_weight=w, **case.options)
    (ref_grad,) = torch.autograd.grad(loss2, xr2, create_graph=True)  # goes through the autograd reference
    torch.testing.assert_close(fused_grad, ref_grad.detach(), rtol=1e-10, atol=1e-13)


def test_only_the_gradient_is_kept_for_backward():
    x = torch.randn(1000, 8, requires_grad=True)
    y = (torch.rand(1000, 8) < 0.1).float()
    loss = fk.sigmoid_focal_loss(x, y)
    saved = [t for t in loss.grad_fn.saved_tensors if t is not None]
    new = [t for t in saved if t.data_ptr() not in {x.data_ptr(), y.data_ptr()}]
    assert sum(t.numel() for t in new) <= x.numel() + 1  # the gradient buffer and a scalar


@pytest.mark.parametrize("case", [SIGMOID[1], SIGMOID[4], SOFTMAX[1]], ids=str)
def test_torch_compile_fullgraph_matches_eager(case):
    """No graph break (fullgraph=True), so no host sync either: GHM-C's histogram included."""
    torch._dynamo.reset()
    x, y, _ = _inputs(case, (16, 5))
    x = x.float()
    y = y.float() if case.family == "sigmoid" else y

    def step(z):
        return case.function(z, y, **case.options)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    xr = x.clone().requires_grad_(True)
    out = compiled(xr)
    out.backward()
    xe = x.clone().requires_grad_(True)
    ref = step(xe)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(xr.grad, xe.grad)


def test_ghmc_makes_no_item_call(monkeypatch):
    calls = []
    original = torch.Tensor.item

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "item", counting)
    x, y = torch.randn(4096, requires_grad=True), (torch.rand(4096) < 0.2).float()
    module = fk.GHMCLoss(bins=30, momentum=0.7)
    with fk.value_checks(False):
        module(x, y).backward()
    assert calls == []
    assert torch.isfinite(x.grad).all()


def test_ghmc_time_does_not_loop_over_bins():
    """The bin count only changes the size of a bincount, not the number of ops run."""
    from torch.profiler import ProfilerActivity, profile

    x, y = torch.randn(2000), (torch.rand(2000) < 0.2).float()
    counts = []
    for bins in (10, 30):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fk.ghmc_loss(x, y, bins=bins)
        counts.append(sum(e.count for e in prof.key_averages()))
    assert counts[0] == counts[1]
