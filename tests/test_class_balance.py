"""Class-balanced weights, logit-adjusted cross-entropy, balanced softmax and LDAM (issue 13, first part):
float64 oracles written from the papers' formulas and the authors' code, PyTorch's cross-entropy, the
identities between them, every layout, gradients, stability and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import focalkit as fk

COUNTS = [500.0, 120.0, 30.0, 6.0, 1.0]
C = len(COUNTS)


def _data(shape=(64, C), seed=0, dtype=torch.float64, ignore=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    t = torch.randint(0, C, shape[:1] + shape[2:], generator=g)
    if ignore:
        t.view(-1)[::7] = -100
    return x, t


# ---------------------------------------------------------------------------------------------- oracles
def _ldam_authors(x, t, counts, max_m, s, weight=None, reduction="mean"):
    """The authors' LDAMLoss.forward (Cao et al., github.com/kaidic/LDAM-DRW), written again in float64:
    m = 1/sqrt(sqrt(n)), m *= max_m / max(m); output = where(one_hot, x − m_t, x); CE(s·output, t, weight)."""
    m = 1.0 / torch.sqrt(torch.sqrt(torch.tensor(counts, dtype=torch.float64)))
    m = m * (max_m / m.max())
    valid = t != -100
    one_hot = F.one_hot(torch.where(valid, t, 0), x.shape[1]).bool() & valid[:, None]
    batch_m = m[torch.where(valid, t, 0)][:, None]
    output = torch.where(one_hot, x - batch_m, x)
    return F.cross_entropy(s * output, t, weight=weight, reduction=reduction)


def _cb_paper(counts, beta):
    """Cui et al. 2019, eq. 6 and their code: effective number (1 − β^n)/(1 − β), weights its inverse,
    normalised to sum to C."""
    n = torch.tensor(counts, dtype=torch.float64)
    effective = (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)) / (1.0 - beta)
    w = 1.0 / effective
    return w / w.sum() * len(counts)


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.99, 0.999, 0.9999])
def test_class_balanced_weights_match_the_paper(beta):
    got = fk.class_balanced_weights(torch.tensor(COUNTS, dtype=torch.float64), beta=beta)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, _cb_paper(COUNTS, beta), rtol=1e-12, atol=0)
    assert math.isclose(float(got.sum()), C, rel_tol=1e-12)


def test_class_balanced_weights_limits():
    assert torch.equal(fk.class_balanced_weights([3, 1, 2], beta=0.0), torch.ones(3))
    inverse = 1 / torch.tensor(COUNTS, dtype=torch.float64)
    near_one = fk.class_balanced_weights(torch.tensor(COUNTS, dtype=torch.float64), beta=1 - 1e-12)
    torch.testing.assert_close(near_one, inverse / inverse.sum() * C, rtol=1e-9, atol=0)
    # β close to 1 with one example: 1 − β^1 = 1 − β exactly (no cancellation through pow)
    w = fk.class_balanced_weights(torch.tensor([1.0, 1e6], dtype=torch.float64), beta=1 - 1e-15)
    assert math.isclose(float(w[0] / w[1]), 1e6, rel_tol=1e-6)
    assert fk.class_balanced_weights([10, 1]).dtype == torch.get_default_dtype()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"class_weight": "cb"}], ids=str)
def test_logit_adjusted_and_balanced_softmax_are_torch_ce_of_moved_logits(reduction, options):
    x, t = _data()
    opts = dict(options)
    if opts.get("class_weight") == "cb":
        opts["class_weight"] = fk.class_balanced_weights(torch.tensor(COUNTS, dtype=torch.float64), beta=0.99)
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    for tau in (0.5, 1.0, 2.0):
        expected = F.cross_entropy(x + tau * prior.log(), t, reduction=reduction,
                                   weight=opts.get("class_weight"), label_smoothing=opts.get("label_smoothing", 0.0))
        got = fk.logit_adjusted_cross_entropy(x, t, class_prior=prior, tau=tau, reduction=reduction, **opts)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    expected = F.cross_entropy(x + torch.tensor(COUNTS, dtype=torch.float64).log(), t, reduction=reduction,
                               weight=opts.get("class_weight"), label_smoothing=opts.get("label_smoothing", 0.0))
    got = fk.balanced_softmax_loss(x, t, class_counts=COUNTS, reduction=reduction, **opts)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_balanced_softmax_written_as_the_paper_writes_it():
    """Ren et al. 2020, eq. 4: −log(n_y e^{x_y} / Σ_c n_c e^{x_c})."""
    x, t = _data(ignore=False)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    expected = -torch.log(n[t] * x.gather(1, t[:, None])[:, 0].exp() / (n * x.exp()).sum(1))
    got = fk.balanced_softmax_loss(x, t, class_counts=COUNTS, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("max_m", "s"), [(0.5, 30.0), (0.3, 1.0), (1.0, 10.0)])
def test_ldam_matches_the_authors_code(reduction, max_m, s):
    x, t = _data()
    x = torch.nn.functional.normalize(x, dim=1)  # cosine logits, as the authors train it
    got = fk.ldam_loss(x, t, class_counts=COUNTS, max_margin=max_m, scale=s, reduction=reduction)
    expected = _ldam_authors(x, t, COUNTS, max_m, s, reduction=reduction)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    weight = torch.rand(C, dtype=torch.float64) + 0.5  # DRW's re-weighting: CE's weight
    torch.testing.assert_close(fk.ldam_loss(x, t, class_counts=COUNTS, max_margin=max_m, scale=s, class_weight=weight,
                                            reduction=reduction),
                               _ldam_authors(x, t, COUNTS, max_m, s, weight=weight, reduction=reduction),
                               rtol=1e-12, atol=1e-12)


def test_ldam_margins():
    m = fk.ldam_margins(COUNTS, max_margin=0.5)
    torch.testing.assert_close(m, 0.5 * torch.tensor(COUNTS, dtype=torch.float64) ** -0.25, rtol=1e-14, atol=0)
    assert float(m.max()) == 0.5


# ---------------------------------------------------------------------------------------------- identities
def test_identities():
    x, t = _data()
    ce = fk.cross_entropy(x, t)
    assert torch.allclose(fk.balanced_softmax_loss(x, t, class_counts=[7.0] * C), ce, rtol=1e-13, atol=0)
    prior = [0.4, 0.3, 0.2, 0.05, 0.05]
    assert torch.allclose(fk.logit_adjusted_cross_entropy(x, t, class_prior=prior, tau=0.0), ce, rtol=1e-13, atol=0)
    assert torch.allclose(fk.ldam_loss(x, t, class_counts=COUNTS, max_margin=0.0, scale=3.0),
                          fk.cross_entropy(3.0 * x, t), rtol=1e-13, atol=0)
    counts = torch.tensor(COUNTS, dtype=torch.float64)
    assert torch.allclose(fk.balanced_softmax_loss(x, t, class_counts=counts),
                          fk.logit_adjusted_cross_entropy(x, t, class_prior=counts / counts.sum()), rtol=1e-13, atol=0)


@settings(max_examples=40, deadline=None)
@given(factor=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_balanced_softmax_depends_on_the_counts_ratios_only(factor, seed):
    x, t = _data(shape=(16, C), seed=seed)
    a = fk.balanced_softmax_loss(x, t, class_counts=COUNTS, reduction="none")
    b = fk.balanced_softmax_loss(x, t, class_counts=[factor * n for n in COUNTS], reduction="none")
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- layouts
FUNCTIONS = {
    "logit_adjusted": (fk.logit_adjusted_cross_entropy, {"class_prior": [c / sum(COUNTS) for c in COUNTS]},
                       fk.LogitAdjustedCrossEntropyLoss),
    "balanced_softmax": (fk.balanced_softmax_loss, {"class_counts": COUNTS}, fk.BalancedSoftmaxLoss),
    "ldam": (fk.ldam_loss, {"class_counts": COUNTS, "scale": 4.0}, fk.LDAMLoss),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_dense_and_sequence_layouts_equal_the_flat_rows(name):
    fn, options, _ = FUNCTIONS[name]
    x, t = _data(shape=(2, C, 3, 4))
    w = torch.rand(2, 3, 4, dtype=torch.float64)
    got = fn(x, t, sample_weight=w, reduction="none", **options)
    flat = fn(x.movedim(1, -1).reshape(-1, C), t.reshape(-1), sample_weight=w.reshape(-1), reduction="none", **options)
    torch.testing.assert_close(got.reshape(-1), flat, rtol=1e-13, atol=0)
    seq = fn(x.movedim(1, -1).reshape(2, 12, C), t.reshape(2, 12), class_dim=-1, reduction="none", **options)
    torch.testing.assert_close(seq.reshape(-1), fn(x, t, reduction="none", **options).reshape(-1), rtol=1e-13,
                               atol=0)
    assert float(got.reshape(-1)[t.reshape(-1) == -100].abs().max()) == 0.0  # ignored positions hold 0
    mean = fn(x, t, sample_weight=w, **options)
    valid = (t != -100).double() * w
    torch.testing.assert_close(mean, got.sum() / valid.sum(), rtol=1e-12, atol=0)  # "none" carries the weight


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_module_equals_function_and_keeps_its_vector_as_a_buffer(name):
    fn, options, module = FUNCTIONS[name]
    x, t = _data()
    m = module(**options, reduction="sum")
    torch.testing.assert_close(m(x, t), fn(x, t, reduction="sum", **options), rtol=0, atol=0)
    (buffer,) = m.state_dict().values()
    assert buffer.dtype == torch.float64
    assert buffer.numel() == C
    assert m.float()(x.float(), t).dtype == torch.float32


@pytest.mark.parametrize("name", ["logit_adjusted", "balanced_softmax"])
def test_probability_targets(name):
    fn, options, _ = FUNCTIONS[name]
    x, _t = _data(ignore=False)
    q = torch.softmax(torch.randn(64, C, dtype=torch.float64), 1)
    shift = torch.log(torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS))
    expected = F.cross_entropy(x + shift, q, reduction="none")
    torch.testing.assert_close(fn(x, q, reduction="none", **options), expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_gradcheck(name):
    fn, options, _ = FUNCTIONS[name]
    x, t = _data(shape=(6, C, 2))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: fn(v, t, reduction="none", **options), (x,))
    assert torch.autograd.gradgradcheck(lambda v: fn(v, t, label_smoothing=0.1, **options), (x,))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_gradient_equals_autograd_of_the_oracle(name):
    fn, options, _ = FUNCTIONS[name]
    x, t = _data()
    a = x.clone().requires_grad_(True)
    fn(a, t, **options).backward()
    b = x.clone().requires_grad_(True)
    if name == "ldam":
        _ldam_authors(b, t, COUNTS, 0.5, 4.0).backward()
    else:
        F.cross_entropy(b + torch.log(torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)), t).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------- stability
@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("magnitude", [100.0, 1e4])
def test_finite_at_large_logits_and_under_autocast(name, magnitude):
    fn, options, _ = FUNCTIONS[name]
    x, t = _data(dtype=torch.float32)
    x = (torch.sign(x) * magnitude).requires_grad_(True)
    loss = fn(x, t, **options)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    xb = x.detach().bfloat16().div(magnitude).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(xb, t, **options)
    out.backward()
    assert out.dtype == torch.float32
    assert torch.isfinite(out)
    assert xb.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out, fn(xb.detach().float(), t, **options), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x, t: fk.balanced_softmax_loss(x, t, class_counts=[5, 0, 3, 1, 1]), ValueError,
         r"^balanced_softmax_loss: class_counts must be finite and > 0 for every class .*got values in \[0, 5\]"),
        (lambda x, t: fk.balanced_softmax_loss(x, t, class_counts=[5, 3]), ValueError,
         r"^balanced_softmax_loss: class_counts must have one value per class \(5\); got 2\."),
        (lambda x, t: fk.balanced_softmax_loss(x, t, class_counts=None), TypeError, "class_counts is required"),
        (lambda x, t: fk.logit_adjusted_cross_entropy(x, t, class_prior=[0.5, 0.3, 0.2, 0.1, 0.1]), ValueError,
         r"class_prior must sum to 1 \(within 1e-3\); got 1.2"),
        (lambda x, t: fk.logit_adjusted_cross_entropy(x, t, class_prior=[0.2] * 5, tau=-1), ValueError, "tau"),
        (lambda x, t: fk.logit_adjusted_cross_entropy(x, t, class_prior=[0.2, 0.2, 0.2, 0.4, 0.0]), ValueError,
         "class_prior must be finite and > 0"),
        (lambda x, t: fk.ldam_loss(x, t, class_counts=COUNTS, scale=0), ValueError, "scale"),
        (lambda x, t: fk.ldam_loss(x, t, class_counts=COUNTS, max_margin=-0.1), ValueError, "max_margin"),
        (lambda x, t: fk.ldam_loss(x, torch.softmax(x, 1), class_counts=COUNTS), TypeError,
         r"^ldam_loss: target must hold class ids"),
        (lambda x, t: fk.ldam_loss(x, t.clamp_min(0) + 5, class_counts=COUNTS), ValueError,
         r"^ldam_loss: target must be in \[0, 5\)"),
        (lambda x, t: fk.class_balanced_weights(COUNTS, beta=1.0), ValueError, "beta"),
        (lambda x, t: fk.class_balanced_weights([3, float("nan")]), ValueError, "class_counts"),
        (lambda x, t: fk.class_balanced_weights([[3, 1]]), ValueError, "1-D"),
        (lambda x, t: fk.LDAMLoss(class_counts=[1, -2]), ValueError, r"^LDAMLoss: class_counts"),
        (lambda x, t: fk.LogitAdjustedCrossEntropyLoss(class_prior=[0.5, 0.6]), ValueError, "sum to 1"),
    ],
)
def test_bad_input_is_named(call, error, message):
    x, t = _data()
    with pytest.raises(error, match=message):
        call(x, t)


def test_torch_func_and_compile():
    x, t = _data(dtype=torch.float32, ignore=False)
    for name, (fn, options, _) in FUNCTIONS.items():
        xr = x.clone().requires_grad_(True)
        fn(xr, t, **options).backward()
        g = torch.func.grad(lambda v, fn=fn, options=options: fn(v, t, **options))(x)
        torch.testing.assert_close(g, xr.grad, rtol=1e-6, atol=1e-7, msg=name)
    fn, options, _ = FUNCTIONS["ldam"]
    compiled = torch.compile(lambda v: fn(v, t, class_counts=torch.tensor(COUNTS), scale=4.0), fullgraph=True,
                             backend="aot_eager")
    torch.testing.assert_close(compiled(x), fn(x, t, **options), rtol=1e-6, atol=1e-6)
