"""Asymmetric loss and the poly-1 losses (issue 13, second part): float64 oracles written from the
authors' code (ASL: timm's and Alibaba-MIIL's ``AsymmetricLossMultiLabel``; poly-1: the paper's code)
and optax's ``poly_loss_cross_entropy``, identities, ASL's hard threshold, precision and bad inputs.
Layouts, gradcheck, autocast, ``torch.func``, compile, the Triton kernels and the modules are covered
with the other losses through ``tests/cases.py``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import focalkit as fk

ASL_OPTIONS = [
    {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},  # the paper's multi-label setting (the default)
    {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},  # timm's defaults
    {"gamma_pos": 0.0, "gamma_neg": 0.0, "clip": 0.0},
    {"gamma_pos": 2.0, "gamma_neg": 3.0, "clip": 0.2},
    {"gamma_pos": 0.5, "gamma_neg": 1.5, "clip": 0.0},
    {"gamma_pos": 0.0, "gamma_neg": 2.5, "clip": 0.1},
]


def _labels(shape=(32, 20), seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    y = (torch.rand(shape, generator=g) < 0.15).double()
    return x, y


def _asl_authors(x, y, gamma_neg, gamma_pos, clip, eps=1e-8):
    """``AsymmetricLossMultiLabel.forward`` (timm; Ridnik et al.'s repository), written again in float64 with
    ``disable_torch_grad_focal_loss=False``; unreduced (their forward returns ``-loss.sum()``)."""
    x_sigmoid = torch.sigmoid(x)
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        pt = xs_pos * y + xs_neg * (1 - y)
        one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
        loss = loss * torch.pow(1 - pt, one_sided_gamma)
    return -loss


def _asl_paper(x, y, gamma_pos, gamma_neg, clip):
    """Ridnik et al., eq. 2-5, for soft labels too: each term with its own factor."""
    p = torch.sigmoid(x)
    pm = (p - clip).clamp_min(0.0)
    return -y * (1 - p) ** gamma_pos * torch.log(p) - (1 - y) * pm**gamma_neg * torch.log(1 - pm)


def _poly1_focal_paper(logits, labels, epsilon, gamma, alpha):
    """The paper's ``poly1_focal_loss`` (Leng et al. 2022, appendix), TensorFlow written in torch, float64."""
    p = torch.sigmoid(logits)
    ce_loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    pt = labels * p + (1 - labels) * (1 - p)
    fl = ce_loss * ((1 - pt) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * labels + (1 - alpha) * (1 - labels)
        fl = alpha_t * fl
    return fl + epsilon * torch.pow(1 - pt, gamma + 1)


# ---------------------------------------------------------------------------------------------- ASL
@pytest.mark.parametrize("options", ASL_OPTIONS, ids=str)
def test_asl_matches_the_authors_code(options):
    x, y = _labels()
    theirs = _asl_authors(x, y, options["gamma_neg"], options["gamma_pos"], options["clip"])
    torch.testing.assert_close(fk.asymmetric_loss(x, y, reduction="none", **options), theirs, rtol=1e-12,
                               atol=1e-15)
    torch.testing.assert_close(fk.asymmetric_loss(x, y, reduction="sum", **options), theirs.sum(), rtol=1e-12,
                               atol=0)
    torch.testing.assert_close(fk.AsymmetricLoss(**options)(x, y), theirs.mean(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("options", ASL_OPTIONS, ids=str)
def test_asl_gradient_equals_autograd_of_the_authors_code(options):
    x, y = _labels()
    clip = options["clip"]
    # off the kink at p = clip, where the authors' clamp and this loss each pick one side
    x = torch.where((torch.sigmoid(x) - clip).abs() < 1e-3, x + 0.1, x)
    a = x.clone().requires_grad_(True)
    fk.asymmetric_loss(a, y, reduction="sum", **options).backward()
    b = x.clone().requires_grad_(True)
    _asl_authors(b, y, options["gamma_neg"], options["gamma_pos"], clip).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("options", ASL_OPTIONS, ids=str)
def test_asl_soft_labels_follow_the_paper(options):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) * 3
    y = torch.rand(40, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fk.asymmetric_loss(x, y, reduction="none", **options), _asl_paper(x, y, **options),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.xfail(strict=True, reason="convention: the authors raise one factor (1 − p_t) to γ₊y + γ₋(1−y); for "
                                       "soft labels focalkit weighs each term by its own factor, as the paper writes")
def test_asl_soft_labels_as_the_authors_code():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) * 3
    y = torch.rand(40, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fk.asymmetric_loss(x, y, reduction="none"), _asl_authors(x, y, 4.0, 0.0, 0.05))


@pytest.mark.xfail(strict=True, reason="convention: the authors clamp probabilities at eps = 1e-8, capping each "
                                       "term at −log 1e-8 = 18.4; focalkit's log-space terms are exact (30 here)")
def test_asl_saturated_as_the_authors_code():
    x, y = torch.tensor([-30.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    torch.testing.assert_close(fk.asymmetric_loss(x, y, reduction="sum"), _asl_authors(x, y, 4.0, 0.0, 0.05).sum())


def test_asl_identities():
    x, y = _labels()
    torch.testing.assert_close(fk.asymmetric_loss(x, y, gamma_pos=0.0, gamma_neg=0.0, clip=0.0),
                               F.binary_cross_entropy_with_logits(x, y), rtol=1e-13, atol=0)
    for gamma in (0.5, 2.0):
        torch.testing.assert_close(fk.asymmetric_loss(x, y, gamma_pos=gamma, gamma_neg=gamma, clip=0.0),
                                   fk.sigmoid_focal_loss(x, y, alpha=None, gamma=gamma), rtol=1e-13, atol=0)


def test_asl_discards_negatives_below_the_clip_and_spares_the_positives():
    x = torch.tensor([-4.0, -3.0, -2.9, -1.0, 3.0], dtype=torch.float64, requires_grad=True)  # σ: .018 .047 .052 ...
    y = torch.zeros(5, dtype=torch.float64)
    loss = fk.asymmetric_loss(x, y, clip=0.05, reduction="none")
    loss.sum().backward()
    below = torch.sigmoid(x.detach()) <= 0.05
    assert below.tolist() == [True, True, False, False, False]
    assert (loss[below] == 0).all()
    assert (x.grad[below] == 0).all()
    assert (loss[~below] > 0).all()
    assert (x.grad[~below] > 0).all()
    # positives are never shifted: the clip changes nothing for y = 1
    y1 = torch.ones(5, dtype=torch.float64)
    torch.testing.assert_close(fk.asymmetric_loss(x, y1, clip=0.3, reduction="none"),
                               fk.asymmetric_loss(x, y1, clip=0.0, reduction="none"), rtol=0, atol=0)


def test_asl_focuses_negatives_harder_than_focal_loss():
    """The point of ASL: a confident mislabelled negative (p = 0.9) weighs less than with cross-entropy and
    an easy negative (p = 0.1) next to nothing, while the positives keep cross-entropy's weight."""
    p = torch.tensor([0.1, 0.9], dtype=torch.float64)
    x = torch.log(p / (1 - p))
    asl = fk.asymmetric_loss(x, torch.zeros(2, dtype=torch.float64), reduction="none")
    ce = F.binary_cross_entropy_with_logits(x, torch.zeros(2, dtype=torch.float64), reduction="none")
    assert float(asl[0] / ce[0]) < 1e-4
    assert 0.3 < float(asl[1] / ce[1]) < 0.7
    torch.testing.assert_close(fk.asymmetric_loss(x, torch.ones(2, dtype=torch.float64), reduction="none"),
                               F.binary_cross_entropy_with_logits(x, torch.ones(2, dtype=torch.float64),
                                                                  reduction="none"), rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asl_with_a_clip_is_accurate_where_the_negative_is_nearly_clipped(dtype):
    """Just above the clip ``m = p − c`` is small and ``−log(1 − m)`` is taken as ``−log1p(−m)``: within the
    rounding of ``p`` itself, where ``log(min(1 − p + c, 1))`` (the authors' code) loses up to an ulp of 1."""
    clip = 0.05
    m = torch.logspace(-7, -1, 25, dtype=torch.float64)
    x = torch.log((clip + m) / (1 - clip - m)).to(dtype)
    y = torch.zeros_like(x)
    got = fk.asymmetric_loss(x, y, gamma_neg=0.0, clip=clip, reduction="none").double()
    true = -torch.log1p(-(torch.sigmoid(x.double()) - clip))
    theirs = _asl_authors(x, y, 0.0, 0.0, clip).double()
    if dtype == torch.float64:
        assert float(((got - true) / true).abs().max()) < 1e-12
        assert float(((theirs - true) / true).abs().max()) > 1e-10
    else:  # p ≈ 0.05 is known to 3.7e-9 in float32; 1 − p + c to 6e-8
        assert float((got - true).abs().max()) < 1e-8
        assert float((theirs - true).abs().max()) > 2e-8


# ---------------------------------------------------------------------------------------------- poly-1
@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 1.0, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_poly1_cross_entropy_is_ce_plus_epsilon_one_minus_pt(epsilon, reduction):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 7, 3, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, 7, (50, 3), generator=g)
    t[::5, 0] = -100
    w = torch.rand(7, generator=g, dtype=torch.float64) + 0.5
    ce = F.cross_entropy(x, t, weight=w, reduction="none")
    p_t = torch.softmax(x, 1).gather(1, t.clamp_min(0)[:, None])[:, 0]
    w_t = torch.where(t >= 0, w[t.clamp_min(0)], 0.0)
    per = ce + epsilon * w_t * (1 - p_t)
    expected = {"none": per, "sum": per.sum(), "mean": per.sum() / w_t.sum()}[reduction]
    got = fk.poly1_cross_entropy(x, t, epsilon=epsilon, class_weight=w, reduction=reduction)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


OPTAX_SCRIPT = """
import sys
import jax
import numpy as np
import optax

data = np.load(sys.argv[1])
with jax.enable_x64(True):
    out = {k: np.asarray(optax.losses.poly_loss_cross_entropy(data["x"], data["labels_" + k.split("@")[0]],
                                                              epsilon=float(k.split("@")[1])))
           for k in sys.argv[3:]}
np.savez(sys.argv[2], **out)
"""
OPTAX_KEYS = [f"{target}@{epsilon}" for target in ("one_hot", "smoothed", "soft") for epsilon in (-1.0, 1.0, 2.0)]


def _optax_inputs():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, 6, (40,), generator=g)
    soft = torch.softmax(torch.randn(40, 6, generator=g, dtype=torch.float64) * 2, 1)
    one_hot = F.one_hot(t, 6).double()
    return x, t, {"one_hot": one_hot, "smoothed": one_hot * 0.9 + 0.1 / 6, "soft": soft}


@pytest.fixture(scope="module")
def optax_values(tmp_path_factory):
    """optax's ``poly_loss_cross_entropy`` in float64, run in a subprocess: JAX starts threads, and a test
    process that imported it warns at every later ``os.fork`` (the thread pool's fork test)."""
    pytest.importorskip("optax")
    x, _, labels = _optax_inputs()
    folder = tmp_path_factory.mktemp("optax")
    np.savez(folder / "in.npz", x=x.numpy(), **{f"labels_{k}": v.numpy() for k, v in labels.items()})
    subprocess.run([sys.executable, "-c", OPTAX_SCRIPT, str(folder / "in.npz"), str(folder / "out.npz"),
                    *OPTAX_KEYS], check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    with np.load(folder / "out.npz") as out:
        return {k: torch.tensor(out[k]) for k in OPTAX_KEYS}


@pytest.mark.parametrize("key", OPTAX_KEYS)
def test_poly1_cross_entropy_matches_optax(key, optax_values):
    target, epsilon = key.split("@")[0], float(key.split("@")[1])
    x, t, labels = _optax_inputs()
    if target == "soft":
        got = fk.poly1_cross_entropy(x, labels["soft"], epsilon=epsilon, reduction="none")
    else:
        smoothing = 0.1 if target == "smoothed" else 0.0
        got = fk.poly1_cross_entropy(x, t, epsilon=epsilon, label_smoothing=smoothing, reduction="none")
    theirs = optax_values[key]
    assert theirs.dtype == torch.float64
    torch.testing.assert_close(got, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("options", [{"epsilon": 1.0, "gamma": 2.0, "alpha": 0.25},
                                     {"epsilon": -1.0, "gamma": 2.0, "alpha": 0.25},
                                     {"epsilon": 2.0, "gamma": 0.5, "alpha": 0.5},
                                     {"epsilon": 0.5, "gamma": 0.0, "alpha": 0.75}], ids=str)
def test_poly1_focal_matches_the_papers_code(options):
    x, y = _labels(scale=4.0)
    theirs = _poly1_focal_paper(x, y, **options)
    torch.testing.assert_close(fk.poly1_focal_loss(x, y, reduction="none", **options), theirs, rtol=1e-12,
                               atol=1e-15)
    a = x.clone().requires_grad_(True)
    fk.poly1_focal_loss(a, y, reduction="sum", **options).backward()
    b = x.clone().requires_grad_(True)
    _poly1_focal_paper(b, y, **options).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-11, atol=1e-14)


def test_poly1_identities():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 5, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, 5, (30,), generator=g)
    torch.testing.assert_close(fk.poly1_cross_entropy(x, t, epsilon=0.0), F.cross_entropy(x, t), rtol=1e-13, atol=0)
    torch.testing.assert_close(fk.poly1_cross_entropy(x, t, epsilon=0.0, label_smoothing=0.2),
                               F.cross_entropy(x, t, label_smoothing=0.2), rtol=1e-13, atol=0)
    xs, y = _labels()
    torch.testing.assert_close(fk.poly1_focal_loss(xs, y, epsilon=0.0, alpha=0.25, gamma=1.5),
                               fk.sigmoid_focal_loss(xs, y, alpha=0.25, gamma=1.5), rtol=1e-13, atol=0)
    p = torch.sigmoid(xs)
    p_t = y * p + (1 - y) * (1 - p)
    torch.testing.assert_close(fk.poly1_focal_loss(xs, y, epsilon=2.0, alpha=None, gamma=0.0, reduction="none"),
                               F.binary_cross_entropy_with_logits(xs, y, reduction="none") + 2.0 * (1 - p_t),
                               rtol=1e-12, atol=1e-15)
    # class ids and their one-hot probabilities are the same loss
    torch.testing.assert_close(fk.poly1_cross_entropy(x, t, epsilon=1.5, reduction="none"),
                               fk.poly1_cross_entropy(x, F.one_hot(t, 5).double(), epsilon=1.5, reduction="none"),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["ids", "probabilities"])
def test_poly1_keeps_its_relative_precision_at_wide_margins(dtype, target):
    """``1 − p_t`` from the other classes' sum: ``ε(1 − p_t)`` and ``−log p_t`` are both ``≈ 2e^{−margin}``
    and keep their digits where ``p_t`` rounds to 1 (margins 20-60)."""
    margin = torch.arange(20.0, 61.0, 5.0, dtype=torch.float64)
    x = torch.stack([margin, torch.zeros_like(margin), torch.zeros_like(margin)], 1)
    t = torch.zeros(len(margin), dtype=torch.long)
    tt = t if target == "ids" else F.one_hot(t, 3).to(dtype)
    got = fk.poly1_cross_entropy(x.to(dtype), tt, epsilon=1.0, reduction="none").double()
    r = 2 * torch.exp(-margin)
    true = torch.log1p(r) + r / (1 + r)
    rel = ((got - true) / true).abs().max()
    assert float(rel) < (1e-5 if dtype == torch.float32 else 1e-13)
    # poly-1 focal, right by a margin of 12: α_t q² BCE + ε q³ with q = σ(−12), BCE = log1p(e^{−12}), ~1e-16
    xs = torch.tensor([12.0, -12.0], dtype=dtype)
    got = fk.poly1_focal_loss(xs, torch.tensor([1.0, 0.0], dtype=dtype), reduction="none").double()
    q = torch.sigmoid(torch.tensor(-12.0, dtype=torch.float64))
    bce = torch.log1p(torch.exp(torch.tensor(-12.0, dtype=torch.float64)))
    true = torch.stack([0.25 * q**2 * bce + q**3, 0.75 * q**2 * bce + q**3])
    assert float(((got - true) / true).abs().max()) < (1e-6 if dtype == torch.float32 else 1e-14)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x, y: fk.asymmetric_loss(x, y, clip=1.0), ValueError, r"^asymmetric_loss: clip must be in \[0, 1\)"),
        (lambda x, y: fk.asymmetric_loss(x, y, clip=-0.1), ValueError, "clip must be in"),
        (lambda x, y: fk.asymmetric_loss(x, y, gamma_neg=-1), ValueError, r"gamma_neg must be in \[0, inf\)"),
        (lambda x, y: fk.asymmetric_loss(x, y, gamma_pos=float("nan")), ValueError, "gamma_pos must be a finite"),
        (lambda x, y: fk.asymmetric_loss(x, y, gamma_pos="1"), TypeError, "gamma_pos must be a finite real"),
        (lambda x, y: fk.asymmetric_loss(x, y * 2), ValueError, r"^asymmetric_loss: target"),
        (lambda x, y: fk.AsymmetricLoss(clip=2), ValueError, r"^AsymmetricLoss: clip"),
        (lambda x, y: fk.poly1_focal_loss(x, y, epsilon=-1.5), ValueError,
         r"^poly1_focal_loss: epsilon must be in \[-1, inf\)"),
        (lambda x, y: fk.poly1_focal_loss(x, y, alpha=1.5), ValueError, "alpha"),
        (lambda x, y: fk.poly1_cross_entropy(x, y, epsilon=float("inf")), ValueError,
         "^poly1_cross_entropy: epsilon must be a finite"),
        (lambda x, y: fk.poly1_cross_entropy(x, torch.full((32,), 20)), ValueError,
         r"^poly1_cross_entropy: target must be in \[0, 20\)"),
        (lambda x, y: fk.Poly1CrossEntropyLoss(epsilon=-3), ValueError, "^Poly1CrossEntropyLoss: epsilon"),
        (lambda x, y: fk.Poly1FocalLoss(gamma=-1), ValueError, "^Poly1FocalLoss: gamma"),
    ],
)
def test_bad_input_is_named(call, error, message):
    x, y = _labels()
    with pytest.raises(error, match=message):
        call(x, y)
