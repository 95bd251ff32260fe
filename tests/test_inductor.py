"""FOCALKIT_INDUCTOR: the CPU formula through torch.compile, opt-in. The plumbing is checked with the
aot_eager backend (no C++ build: fast); one test compiles with Inductor itself where a compiler is found."""

from __future__ import annotations

import pytest
import torch

import focalkit as fk
from focalkit.kernels import inductor


@pytest.fixture
def compiled(monkeypatch):
    """FOCALKIT_INDUCTOR=always, compiled with aot_eager; a fresh cache; the calls counted."""
    calls = []
    real = torch.compile

    def fake(fn, **kw):
        calls.append(kw)
        return real(fn, backend="aot_eager", **kw)

    monkeypatch.setenv("FOCALKIT_INDUCTOR", "always")
    monkeypatch.setattr(torch, "compile", fake)
    monkeypatch.setattr(inductor, "_compiled", {})
    monkeypatch.setattr(inductor, "_failed", set())
    torch._dynamo.reset()
    yield calls
    torch._dynamo.reset()


def _both(fn, x, *args, **kw):
    """Loss and logits' gradient, compiled (the fixture's mode) and on the chunked kernels."""
    out = []
    for mode in ("always", "0"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FOCALKIT_INDUCTOR", mode)
            xr = x.clone().requires_grad_(True)
            loss = fn(xr, *args, **kw)
            loss.sum().backward()
            out.append((loss.detach(), xr.grad))
    return out


CASES = [
    ("focal", fk.sigmoid_focal_loss, {"gamma": 1.5, "label_smoothing": 0.1}),
    ("bce", fk.binary_cross_entropy, {"pos_weight": 3.0, "reduction": "sum"}),
    ("asl", fk.asymmetric_loss, {"reduction": "none"}),
    ("softmax-focal", fk.softmax_focal_loss, {"class_weight": [1.0, 2.0, 0.5, 1.0], "alpha": 0.5}),
    ("ce", fk.cross_entropy, {"label_smoothing": 0.1, "sample_weight": torch.ones(6, 5, dtype=torch.float64)}),
]


@pytest.mark.parametrize(("name", "fn", "kw"), CASES, ids=[c[0] for c in CASES])
def test_compiled_equals_the_chunked_kernels(compiled, name, fn, kw):
    g = torch.Generator().manual_seed(0)
    if fn in (fk.softmax_focal_loss, fk.cross_entropy):
        x = torch.randn(6, 4, 5, generator=g, dtype=torch.float64) * 3
        target = torch.randint(0, 4, (6, 5), generator=g)
        target[0, :2] = -100
    else:
        x = torch.randn(6, 5, generator=g, dtype=torch.float64) * 3
        target = (torch.rand(6, 5, generator=g) < 0.3).double()
    (lc, gc), (le, ge) = _both(fn, x, target, **kw)
    torch.testing.assert_close(lc, le, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gc, ge, rtol=1e-12, atol=1e-14)
    assert len(compiled) == 1
    assert compiled[0]["dynamic"] is True


def test_other_batch_sizes_reuse_the_compiled_function(compiled):
    y = torch.zeros(8, 3)
    for n in (8, 11, 17):
        fk.sigmoid_focal_loss(torch.randn(n, 3, requires_grad=True), y[:1].expand(n, 3)).backward()
    assert len(compiled) == 1
    assert len(inductor._compiled) == 1


def test_what_it_does_not_take_stays_on_the_chunked_kernels(compiled):
    x, y = torch.randn(4, 3), (torch.rand(4, 3) < 0.5).float()
    fk.sigmoid_focal_loss(x, y, normalizer="positives")
    fk.sigmoid_focal_loss(x, y, normalizer=3.0)  # a number that may change every step
    fk.ghmc_loss(x, y)
    assert compiled == []


def test_a_gamma_schedule_stops_compiling_after_a_few_configurations(compiled, monkeypatch):
    monkeypatch.setattr(inductor, "MAX_CONFIGURATIONS", 2)
    x, y = torch.randn(4, 3), (torch.rand(4, 3) < 0.5).float()
    for gamma in (1.0, 1.5, 2.0, 2.5):
        fk.sigmoid_focal_loss(x, y, gamma=gamma)
    assert len(compiled) == 2


def test_a_failed_compile_warns_once_and_falls_back(monkeypatch):
    def broken(fn, **kw):
        def call(*args):
            raise RuntimeError("no compiler here")
        return call

    monkeypatch.setenv("FOCALKIT_INDUCTOR", "auto")
    monkeypatch.setattr(inductor, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(inductor, "compiler_found", lambda: True)
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(inductor, "_compiled", {})
    monkeypatch.setattr(inductor, "_failed", set())
    x, y = torch.randn(4, 3), (torch.rand(4, 3) < 0.5).float()
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        got = fk.sigmoid_focal_loss(x, y)
    monkeypatch.setenv("FOCALKIT_INDUCTOR", "0")
    torch.testing.assert_close(got, fk.sigmoid_focal_loss(x, y))
    monkeypatch.setenv("FOCALKIT_INDUCTOR", "auto")
    fk.sigmoid_focal_loss(x, y)  # no second warning (pytest turns warnings into errors)


def test_auto_leaves_small_inputs_and_other_devices_alone(monkeypatch):
    monkeypatch.setenv("FOCALKIT_INDUCTOR", "auto")
    monkeypatch.setattr(inductor, "compiler_found", lambda: True)
    assert not inductor.wanted(torch.zeros(10))
    assert inductor.wanted(torch.zeros(inductor.MIN_ELEMENTS))
    assert not inductor.wanted(torch.zeros(inductor.MIN_ELEMENTS, device="meta"))
    monkeypatch.setattr(inductor, "compiler_found", lambda: False)
    assert not inductor.wanted(torch.zeros(inductor.MIN_ELEMENTS))
    monkeypatch.setenv("FOCALKIT_INDUCTOR", "0")
    assert not inductor.wanted(torch.zeros(inductor.MIN_ELEMENTS))
    monkeypatch.setenv("FOCALKIT_INDUCTOR", "yes")
    with pytest.raises(ValueError, match="FOCALKIT_INDUCTOR: expected one of 0, auto, always"):
        inductor.wanted(torch.zeros(1))


@pytest.mark.skipif(not inductor.compiler_found(), reason="Inductor needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")  # torch's own, on import
def test_inductor_itself_compiles_the_loss(monkeypatch):
    monkeypatch.setenv("FOCALKIT_INDUCTOR", "always")
    monkeypatch.setattr(inductor, "_compiled", {})
    torch._dynamo.reset()
    try:
        x = torch.randn(64, 7, dtype=torch.float32) * 4
        y = (torch.rand(64, 7) < 0.2).float()
        (lc, gc), (le, ge) = _both(fk.sigmoid_focal_loss, x, y)
        torch.testing.assert_close(lc, le, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-8)
        assert len(inductor._compiled) == 1
    finally:
        torch._dynamo.reset()
