"""Defects found at the boundary (issue 10): gradients for targets and weights, accuracy of −log σ(x)
for confident positives, the autocast dtype, a zero normaliser, and ``torch.func`` transforms.

Each test here failed before its fix."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import focalkit as fk

from .cases import ALL, SIGMOID, SOFTMAX


def _data(case, shape=(5, 4)):
    x = torch.randn(shape, dtype=torch.float64) * 2
    if "hard_truncation" in case.name:
        x = x + torch.sign(x) * 0.3  # away from the steps: finite differences hold
    if case.family == "sigmoid":
        y = torch.rand(shape, dtype=torch.float64) * 0.9 + 0.05
        w = torch.rand(shape, dtype=torch.float64) + 0.1
    else:
        y = torch.softmax(torch.randn(shape, dtype=torch.float64), 1) * 0.9 + 0.02
        y = y / y.sum(1, keepdim=True)  # probabilities sum to 1 (checked); gradcheck's steps stay within 1e-3
        w = torch.rand(shape[:1], dtype=torch.float64) + 0.1
    return x, y, w


# ------------------------------------------------------------------------- 1. gradients of targets and weights
@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_targets_and_weights_get_gradients(case, reduction):
    """Soft targets (distillation, learned labels), probability targets and ``sample_weight`` get their
    gradient, checked by finite differences in float64 together with the logits'."""
    x, y, w = _data(case)
    if case.name == "ghmc_loss":  # β is a constant of the bins; keep g = |p − y| away from their edges
        y = (y * 10).round() / 10 + 0.03
    args = tuple(t.clone().requires_grad_(True) for t in (x, y, w))
    assert torch.autograd.gradcheck(
        lambda a, b, c: case.function(a, b, sample_weight=c, reduction=reduction, **case.options), args)


@pytest.mark.parametrize("case", SOFTMAX, ids=str)
def test_class_id_targets_with_weights_get_the_weights_gradient(case):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2, 3, -100, 1])
    w = (torch.rand(6, dtype=torch.float64) + 0.1).requires_grad_(True)
    cw = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, c, d: case.function(a, t, sample_weight=c, class_weight=d,
                                                                  **case.options), (x, w, cw))


def test_target_gradient_equals_torch():
    """Against PyTorch's own losses, which give targets a gradient."""
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.rand(8, 5, dtype=torch.float64, requires_grad=True)
    q = torch.softmax(torch.randn(8, 5, dtype=torch.float64), 1).requires_grad_(True)
    (g1,) = torch.autograd.grad(fk.binary_cross_entropy(x, y), y)
    (e1,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(x, y), y)
    (g2,) = torch.autograd.grad(fk.cross_entropy(x, q, label_smoothing=0.1), q)
    (e2,) = torch.autograd.grad(F.cross_entropy(x, q, label_smoothing=0.1), q)
    torch.testing.assert_close(g1, e1, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g2, e2, rtol=1e-12, atol=1e-14)


def test_modules_and_normalizer_tensor_get_gradients():
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(6, 3, dtype=torch.float64, requires_grad=True)
    n = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    loss = fk.SigmoidFocalLoss()(x, y, normalizer=n)
    loss.backward()
    assert y.grad is not None
    assert n.grad is not None
    torch.testing.assert_close(n.grad, -loss.detach() / 4.0)


# ------------------------------------------------------------------------- 2. −log σ(x) without cancellation
def _true_terms(x: torch.Tensor):
    """−log σ(x), −log σ(−x), σ(x), σ(−x) in float64, each from exp(−|x|) with no subtraction of large terms."""
    xd = x.double()
    e = torch.exp(-xd.abs())
    l = torch.log1p(e)
    n_pos = l + torch.clamp_min(-xd, 0)
    n_neg = l + torch.clamp_min(xd, 0)
    s = torch.where(xd >= 0, 1 / (1 + e), e / (1 + e))
    sbar = torch.where(xd >= 0, e / (1 + e), 1 / (1 + e))
    return n_pos, n_neg, s, sbar


def _true_loss(name, x, y, **o):
    n_pos, n_neg, s, sbar = _true_terms(x)
    y = y.double()
    bce = y * n_pos + (1 - y) * n_neg
    if name == "bce":
        return y * o.get("pos_weight", 1.0) * n_pos + (1 - y) * n_neg
    if name == "focal":
        q = y * sbar + (1 - y) * s
        a = 1.0 if o.get("alpha") is None else o["alpha"] * y + (1 - o["alpha"]) * (1 - y)
        return a * q ** o["gamma"] * bce
    if name == "hard":
        m = o["threshold"]
        keep_pos = (torch.sign(m - s) + 1) / 2
        keep_neg = (torch.sign(s - (1 - m)) + 1) / 2
        return y * keep_pos * n_pos + (1 - y) * keep_neg * n_neg
    if name == "soft":
        k = o["k"]
        _, _, u, ubar = _true_terms(k * x.double())
        return y * ubar * n_pos + (1 - y) * u * n_neg
    if name == "polyfocal":
        q = y * sbar + (1 - y) * s
        a = o["alpha"] * y + (1 - o["alpha"]) * (1 - y)
        return a * q ** o["gamma"] * bce + o["epsilon"] * q ** (o["gamma"] + 1)
    if name == "asl":  # clip = 0 only: the shifted probability's log is not written without cancellation here
        return y * sbar ** o["gamma_pos"] * n_pos + (1 - y) * s ** o["gamma_neg"] * n_neg
    raise ValueError(name)


ACCURACY = [
    ("bce", fk.binary_cross_entropy, {}),
    ("bce", fk.binary_cross_entropy, {"pos_weight": 3.0}),
    ("focal", fk.sigmoid_focal_loss, {"alpha": None, "gamma": 0.5}),
    ("focal", fk.sigmoid_focal_loss, {"alpha": 0.25, "gamma": 2.0}),
    ("hard", fk.sigmoid_hard_truncation_loss, {"threshold": 0.5}),
    ("soft", fk.sigmoid_soft_truncation_loss, {"k": 1.0}),
    ("soft", fk.sigmoid_soft_truncation_loss, {"k": 2.0}),
    ("polyfocal", fk.poly1_focal_loss, {"alpha": 0.25, "gamma": 2.0, "epsilon": 1.0}),
    ("polyfocal", fk.poly1_focal_loss, {"alpha": 0.25, "gamma": 0.5, "epsilon": 0.5}),
    ("asl", fk.asymmetric_loss, {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.0}),
    ("asl", fk.asymmetric_loss, {"gamma_pos": 0.0, "gamma_neg": 2.5, "clip": 0.0}),
]


@pytest.mark.parametrize(("name", "fn", "options"), ACCURACY, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_branches_are_accurate_for_large_logits(name, fn, options, dtype):
    """Relative error of a few ulps for y = 1 and y = 0 on both sides, up to |x| = 80: ``softplus(x) − x``
    gave 0 for y = 1, x = 14.6868 (true 4.18e-7) and focal γ = 0.5 gave 0 at x = 16 (true 3.8e-11)."""
    x = torch.linspace(-80, 80, 641, dtype=dtype)
    tiny = torch.finfo(dtype).tiny * 1e6
    for label in (0.0, 1.0):
        y = torch.full_like(x, label)
        got = fn(x, y, reduction="none", **options).double()
        true = _true_loss(name, x, y, **options)
        keep = true > tiny
        rel = ((got - true).abs() / true.abs())[keep]
        bound = 2e-6 if dtype == torch.float32 else 1e-14
        assert float(rel.max()) < bound, (label, x[keep][rel.argmax()].item(), float(rel.max()))


def test_the_issues_numbers():
    assert math.isclose(fk.binary_cross_entropy(torch.tensor([14.6868]), torch.tensor([1.0])).item(),
                        4.18e-7, rel_tol=1e-3)
    x = torch.tensor([5.12])
    true = float(F.softplus(-x.double()))
    assert abs(fk.binary_cross_entropy(x, torch.tensor([1.0])).item() - true) / true < 1e-6
    assert math.isclose(fk.sigmoid_focal_loss(torch.tensor([16.0]), torch.tensor([1.0]), alpha=None,
                                              gamma=0.5).item(), 3.775e-11, rel_tol=1e-3)


def test_gradient_is_sigma_minus_y_to_one_rounding_as_in_torch():
    """The BCE gradient is ``σ(x) − y`` as PyTorch forms it: absolute error within one rounding of 1 (the
    loss, above, is what needs relative accuracy; the gradient's scale is that of ``σ``)."""
    x = torch.linspace(-40, 40, 161).requires_grad_(True)
    y = (torch.arange(161) % 2).float()
    fk.binary_cross_entropy(x, y, reduction="sum").backward()
    xd = x.detach().double()
    true = torch.sigmoid(xd) - y.double()
    assert float((x.grad.double() - true).abs().max()) <= 2 ** -24
    xr = x.detach().clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(xr, y, reduction="sum").backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=0, atol=2 ** -24)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_of_confident_logits_is_accurate(gamma):
    """Focal loss lives in the tail where ``σ(x) − y`` cancels: its gradient there came out a factor
    γ/(γ+1) too small (x = 17, γ = 2: 1.42e-22 against 2.13e-22)."""
    x = torch.tensor([-30.0, -17.0, -8.0, 8.0, 17.0, 30.0], requires_grad=True)
    for label in (0.0, 1.0):
        y = torch.full_like(x, label)
        (g,) = torch.autograd.grad(fk.sigmoid_focal_loss(x, y, alpha=None, gamma=gamma, reduction="sum"), x)
        xd = x.detach().double().requires_grad_(True)
        n_pos, n_neg, s, sbar = _true_terms(xd)
        q = label * sbar + (1 - label) * s
        (true,) = torch.autograd.grad((q ** gamma * (label * n_pos + (1 - label) * n_neg)).sum(), xd)
        torch.testing.assert_close(g.double(), true, rtol=1e-5, atol=0)


# ------------------------------------------------------------------------- 4. autocast returns float32
@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_returns_float32_like_torch(case, dtype):
    """Under autocast PyTorch runs losses in float32 and returns float32: a half "sum" of 100k losses would
    overflow float16 (max 65504)."""
    x = (torch.randn(20000, 5) * 3).to(dtype)
    y = (torch.rand(20000, 5) < 0.5).float() if case.family == "sigmoid" else torch.randint(0, 5, (20000,))
    with torch.autocast("cpu", dtype=dtype):
        out = case.function(x, y, reduction="sum", **case.options)
        none = case.function(x, y, reduction="none", **case.options)
        if case.family == "sigmoid":
            expected = F.binary_cross_entropy_with_logits(x, y, reduction="sum").dtype
        else:
            expected = F.cross_entropy(x, y, reduction="sum").dtype
    assert expected == torch.float32
    assert out.dtype == torch.float32
    assert none.dtype == torch.float32
    assert torch.isfinite(out)
    xr = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        loss = case.function(xr, y, **case.options)
    loss.backward()
    assert xr.grad.dtype == dtype


def test_half_input_outside_autocast_stays_half_like_torch():
    x = torch.randn(10).half()
    y = (torch.rand(10) < 0.5).half()
    assert F.binary_cross_entropy_with_logits(x, y).dtype == torch.float16
    assert fk.sigmoid_focal_loss(x, y).dtype == torch.float16


# ------------------------------------------------------------------------- 8. a zero normaliser
def test_zero_normalizer_raises_with_checks_and_is_finite_without():
    x, y = torch.randn(4, 8), torch.zeros(4, 8)  # an image without objects
    num_pos = y.sum()
    with pytest.raises(ValueError, match="normalizer must be finite and > 0; got 0"):
        fk.sigmoid_focal_loss(x, y, normalizer=num_pos)
    with fk.value_checks(False):
        out = fk.sigmoid_focal_loss(x, y, normalizer=num_pos)
    torch.testing.assert_close(out, fk.sigmoid_focal_loss(x, y, reduction="sum"))
    # the recommended patterns
    torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, normalizer="positives"), out)
    torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, normalizer=num_pos.clamp_min(1.0)), out)


def test_zero_normalizer_compiled_is_finite():
    x, y = torch.randn(4, 8), torch.zeros(4, 8)

    def step(z, n):
        return fk.sigmoid_focal_loss(z, y, normalizer=n)

    out = torch.compile(step, backend="eager", fullgraph=True)(x, y.sum())
    assert torch.isfinite(out)
    torch.testing.assert_close(out, fk.sigmoid_focal_loss(x, y, reduction="sum"))


# ------------------------------------------------------------------------- 9. torch.func transforms
def _call(case, x, y):
    return case.function(x, y, **case.options)


def _func_inputs(case):
    x = torch.randn(6, 4, dtype=torch.float64) * 2
    y = (torch.rand(6, 4) < 0.4).double() if case.family == "sigmoid" else torch.randint(0, 4, (6,))
    return x, y


@pytest.mark.parametrize("case", ALL, ids=str)
def test_func_grad_and_jacrev_equal_autograd(case):
    x, y = _func_inputs(case)
    xr = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(_call(case, xr, y), xr)
    torch.testing.assert_close(torch.func.grad(lambda z: _call(case, z, y))(x), expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.func.jacrev(lambda z: _call(case, z, y))(x), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ALL, ids=str)
def test_vmap_of_grad_gives_per_sample_gradients(case):
    x, y = _func_inputs(case)
    per_sample = torch.func.vmap(torch.func.grad(lambda z, t: _call(case, z[None], t[None])))(x, y)
    for i in range(x.shape[0]):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_call(case, xi, y[i:i + 1]), xi)
        torch.testing.assert_close(per_sample[i], g[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", SIGMOID, ids=str)
def test_vmap_of_the_loss(case):
    x, y = _func_inputs(case)
    batched = torch.func.vmap(lambda z, t: _call(case, z, t))(x, y)
    torch.testing.assert_close(batched, torch.stack([_call(case, x[i], y[i]) for i in range(6)]),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target", ["ids", "probabilities"])
def test_softmax_with_no_positions_on_the_chunked_path(reduction, target):
    """``[N, C, 0]`` raised ``shape '[2, 3, 1]' is invalid for input of size 0``."""
    x = torch.randn(2, 3, 0, requires_grad=True)
    t = torch.zeros(2, 0, dtype=torch.long) if target == "ids" else torch.zeros(2, 3, 0)
    loss = fk.cross_entropy(x, t, reduction=reduction)
    loss.sum().backward()
    assert loss.shape == ((2, 0) if reduction == "none" else ())
    assert x.grad.shape == (2, 3, 0)


# ------------------------------------------------------------- probability targets at large logits (issue 23)
@pytest.mark.parametrize("case", SOFTMAX, ids=str)
@pytest.mark.parametrize("shift", [1e3, 1e4, -1e4])
@pytest.mark.parametrize("target", ["one_hot", "soft"])
def test_probability_targets_are_shift_invariant_at_large_logits(case, shift, target):
    """``log(1 − p_c)`` was formed from logsumexps at the logits' own scale: float32 one-hot probabilities
    were 3.7e-5 relative off at ``|x| ≈ 1e3`` and 6.2e-4 at 1e4 while class ids were exact. Logits on a
    1/64 grid, so that ``x + shift`` is exact in float32, against float64 on the unshifted logits."""
    g = torch.Generator().manual_seed(int(abs(shift)) + (shift < 0))
    x = (torch.randn(16, 5, generator=g) * 2 * 64).round() / 64
    t = torch.randint(0, 5, (16,), generator=g)
    q = F.one_hot(t, 5).float() if target == "one_hot" else torch.softmax(torch.randn(16, 5, generator=g), 1)
    xs = x + shift
    assert torch.equal(xs - shift, x)
    expected = case.function(x.double(), q.double(), reduction="none", **case.options)
    got = case.function(xs, q, reduction="none", **case.options)
    torch.testing.assert_close(got.double(), expected, rtol=5e-6, atol=1e-6)
    if target == "one_hot":  # and the same as class ids
        torch.testing.assert_close(got, case.function(xs, t, reduction="none", **case.options), rtol=5e-6, atol=1e-6)


# ------------------------------------------------ log p_t of a class leading by a wide margin (issue 22)
def _leading_oracle(x, t, family):
    """float64 from ``log p_t = −log1p(Σ_{c≠t} exp(x_c − x_t))`` and ``1 − p_t = s / (1 + s)``."""
    x = x.double()
    is_t = F.one_hot(t, x.shape[1]).bool()
    rest = lambda d: torch.where(is_t, 0.0, d.exp()).sum(1)  # noqa: E731
    s = rest(x - x.gather(1, t[:, None]))
    ce = torch.log1p(s)
    if family == "ce":
        return ce
    if family == "focal":
        return (s / (1 + s)) ** 2 * ce
    s2 = rest(2.0 * (x - x.gather(1, t[:, None])))  # complement, k = 2
    return s2 / (1 + s2) * ce


_FAMILIES = {"ce": (fk.cross_entropy, {}), "focal": (fk.softmax_focal_loss, {"gamma": 2.0}),
             "complement": (fk.softmax_soft_truncation_loss, {"k": 2.0, "weighting": "complement"})}
# margins where the loss is a normal number of the dtype: focal's (1 − p_t)² · CE is e^{−3m}
_MARGINS = [(family, dtype, margin) for family in _FAMILIES for dtype in (torch.float32, torch.float64)
            for margin in ((15.0, 20.0, 28.0) if family != "ce" and dtype == torch.float32
                           else (15.0, 20.0, 40.0, 80.0))]


@pytest.mark.parametrize(("family", "dtype", "margin"), _MARGINS, ids=str)
@pytest.mark.parametrize("target", ["ids", "probabilities"])
def test_a_class_leading_by_a_wide_margin_keeps_its_relative_precision(family, dtype, margin, target):
    """``log p_t`` was ``z_t − log Σe``: ``log(1 + ε)`` rounds to 0 from a margin of about 16 in float32
    (37 in float64), so the loss was 0 (relative error 1, as PyTorch's), focal's even 2.7× off."""
    fn, options = _FAMILIES[family]
    g = torch.Generator().manual_seed(int(margin))
    x = torch.randn(32, 6, generator=g)
    t = torch.randint(0, 6, (32,), generator=g)
    x[torch.arange(32), t] = x.max(1).values + margin
    x = x.to(dtype)
    expected = _leading_oracle(x, t, family)
    got = fn(x, t if target == "ids" else F.one_hot(t, 6).to(dtype), reduction="none", **options).double()
    representable = expected > torch.finfo(dtype).tiny  # below: subnormal or 0 in the dtype
    assert representable.sum() >= 16
    rtol = 5e-5 if dtype == torch.float32 else 1e-12  # float32: x − max rounds at ulp(x), 7.6e-6 at 80
    torch.testing.assert_close(got[representable], expected[representable], rtol=rtol, atol=0)


@pytest.mark.parametrize("family", list(_FAMILIES))
@pytest.mark.parametrize("target", ["ids", "probabilities"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tied_leaders_are_counted_once_each(family, target, dtype):
    """The leader's sum leaves out one exact 1 (``Σ frac(e)``); tied leaders add theirs back: equal logits
    (a fresh model's) give log C, two leaders far ahead give log 2, as the plain float64 formula does."""
    fn, options = _FAMILIES[family]
    x = torch.zeros(4, 6, dtype=dtype)  # rows 0, 1: all equal; rows 2, 3: classes 1 and 4 tied, 30 ahead
    x[2:, (1, 4)] = 30.0
    x[3] += torch.tensor([0.0, 0.0, -1.0, 0.0, 0.0, -2.0], dtype=dtype)
    t = torch.tensor([0, 5, 1, 4])
    log_p = torch.log_softmax(x.double(), 1).gather(1, t[:, None])[:, 0]
    if family == "ce":
        expected = -log_p
    elif family == "focal":
        expected = -(1 - log_p.exp()) ** 2 * log_p
    else:
        expected = -(1 - torch.softmax(2.0 * x.double(), 1).gather(1, t[:, None])[:, 0]) * log_p
    got = fn(x, t if target == "ids" else F.one_hot(t, 6).to(dtype), reduction="none", **options).double()
    torch.testing.assert_close(got, expected, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
