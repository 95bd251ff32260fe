"""gradcheck in float64; finite loss and gradient at the edges; low precision and autocast."""

from __future__ import annotations

import pytest
import torch

import focalkit as fk

from .cases import ALL, SIGMOID, SOFTMAX


def _data(case, shape=(5, 4), dtype=torch.float64, scale=2.0, soft=False):
    if case.family == "sigmoid":
        x = torch.randn(shape, dtype=dtype) * scale
        y = torch.rand(shape, dtype=dtype) if soft else (torch.rand(shape) < 0.4).to(dtype)
        return x, y
    x = torch.randn(shape, dtype=dtype) * scale
    if soft:
        return x, torch.softmax(torch.randn(shape, dtype=dtype), 1)
    return x, torch.randint(0, shape[1], (shape[0], *tuple(shape[2:])))


def _away_from_steps(case, x, y):
    """Hard truncation is piecewise: keep p away from its threshold so finite differences hold."""
    if "hard_truncation" not in case.name:
        return x
    return x + torch.sign(x) * 0.3


@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("soft", [False, True])
def test_gradcheck(case, reduction, soft):
    if soft and case.name == "ghmc_loss":
        soft = False  # GHM-C's bins move with soft labels too, but keep g away from edges
    x, y = _data(case, soft=soft)
    x = _away_from_steps(case, x, y).requires_grad_(True)
    w = torch.rand(x.shape if case.family == "sigmoid" else x.shape[:1], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: case.function(z, y, sample_weight=w, reduction=reduction, **case.options), (x,)
    )


SMOOTH = [c for c in ALL if "hard_truncation" not in c.name and c.name != "ghmc_loss"]


@pytest.mark.parametrize("case", SMOOTH, ids=str)
def test_gradgradcheck_where_smooth(case):
    # hard truncation and GHM-C scale CE by piecewise-constant weights: nothing new to check twice
    x, y = _data(case)
    x.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda z: case.function(z, y, **case.options), (x,))


EDGES = [100.0, 1e4]
GAMMAS = [0.0, 0.5, 1.0, 2.0]


def _edge_logits(case, magnitude, dtype=torch.float32):
    values = torch.tensor([-magnitude, magnitude, 0.0, -1.0, 1.0], dtype=dtype)
    if case.family == "sigmoid":
        x = values.repeat(2)
        y = torch.tensor([0.0] * 5 + [1.0] * 5, dtype=dtype)
        return x, y
    x = torch.stack([values, values.flip(0), torch.zeros(5, dtype=dtype)], 1)  # (5, 3)
    x = x.repeat(3, 1)
    t = torch.arange(3).repeat_interleave(5)
    return x, t


def _edge_cases():
    for case in ALL:
        key = "beta" if case.name.startswith("quality_focal") else "gamma"  # QFL's exponent: 0 or >= 1
        for gamma in (GAMMAS if key == "gamma" else [0.0, 1.0, 2.0, 3.0]) if "focal" in case.name else [None]:
            opts = dict(case.options) if gamma is None else {**case.options, key: gamma}
            yield pytest.param(case, opts, id=f"{case}-{opts}")


@pytest.mark.parametrize(("case", "opts"), list(_edge_cases()))
@pytest.mark.parametrize("magnitude", EDGES)
def test_finite_at_extreme_logits(case, opts, magnitude):
    x, y = _edge_logits(case, magnitude)
    x.requires_grad_(True)
    for reduction in ("none", "mean"):
        loss = case.function(x, y, reduction=reduction, **opts)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        assert torch.isfinite(loss).all(), loss
        assert torch.isfinite(grad).all(), grad


@pytest.mark.parametrize("case", ALL, ids=str)
def test_saturated_logits_have_the_right_values(case):
    # a very confident right answer costs ~0; a very confident wrong one costs ~|x| (times weights)
    if case.family == "sigmoid":
        right = case.function(torch.tensor([1e4]), torch.tensor([1.0]), reduction="sum")
        wrong = fk.binary_cross_entropy(torch.tensor([-1e4]), torch.tensor([1.0]), reduction="sum")
    else:
        right = case.function(torch.tensor([[1e4, 0.0]]), torch.tensor([0]), reduction="sum")
        wrong = fk.cross_entropy(torch.tensor([[-1e4, 0.0]]), torch.tensor([0]), reduction="sum")
    assert float(right) == pytest.approx(0.0, abs=1e-6)
    assert float(wrong) == pytest.approx(1e4, rel=1e-6)


def test_focal_with_fractional_gamma_has_zero_gradient_when_saturated():
    x = torch.tensor([60.0, -60.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0])
    (g,) = torch.autograd.grad(fk.sigmoid_focal_loss(x, y, gamma=0.5), x)
    assert torch.isfinite(g).all()
    assert g.abs().max() < 1e-12
    xs = torch.tensor([[60.0, 0.0, -3.0]], requires_grad=True)
    (gs,) = torch.autograd.grad(fk.softmax_focal_loss(xs, torch.tensor([0]), gamma=0.5), xs)
    assert torch.isfinite(gs).all()


# dtype -> (rtol, atol) against the float64 result; inputs are rounded to the dtype first
TOLERANCES = {torch.float32: (1e-5, 1e-6), torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2)}


@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
def test_low_precision_inputs(case, dtype):
    x, y = _data(case, shape=(64, 5), scale=4.0)
    xl = x.to(dtype).requires_grad_(True)
    yl = y.to(dtype) if case.family == "sigmoid" else y
    loss = case.function(xl, yl, reduction="none", **case.options)
    assert loss.dtype == dtype
    (grad,) = torch.autograd.grad(loss.float().sum(), xl)
    assert grad.dtype == dtype
    assert torch.isfinite(grad).all()
    reference = case.function(xl.detach().double(), yl.double() if case.family == "sigmoid" else yl,
                              reduction="none", **case.options)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(loss.double(), reference, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_under_autocast(case, dtype):
    layer = torch.nn.Linear(8, 5)
    inputs = torch.randn(32, 8)
    _, y = _data(case, shape=(32, 5), dtype=torch.float32)
    with torch.autocast("cpu", dtype=dtype):
        logits = layer(inputs)
        assert logits.dtype == dtype
        loss = case.function(logits, y, **case.options)
    assert loss.dtype == torch.float32  # as PyTorch's losses under autocast (test_boundary checks against them)
    loss.backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(layer.weight.grad).all()


@pytest.mark.parametrize("case", SIGMOID + SOFTMAX, ids=str)
def test_empty_batch_and_all_ignored_give_zero_with_a_gradient(case):
    if case.family == "sigmoid":
        x, y, ignore = torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 3), 255
        x2, y2 = torch.randn(4, 3, requires_grad=True), torch.full((4, 3), 255)
    else:
        x, y, ignore = torch.zeros(0, 3, requires_grad=True), torch.zeros(0, dtype=torch.long), -100
        x2, y2 = torch.randn(4, 3, requires_grad=True), torch.full((4,), -100)
    for logits, target in ((x, y), (x2, y2)):
        for reduction in ("mean", "sum"):
            loss = case.function(logits, target, ignore_index=ignore, reduction=reduction, **case.options)
            assert loss.item() == 0.0
            (g,) = torch.autograd.grad(loss, logits)
            assert torch.isfinite(g).all()
            assert (g == 0).all()
