"""Varifocal loss and quality focal loss (issue 13): float64 oracles transcribed from mmdetection's
``varifocal_loss`` (``mmdet/models/losses/varifocal_loss.py``) and GFL's ``quality_focal_loss`` (both its
class-and-score and its tensor-target forms, ``mmdet/models/losses/gfocal_loss.py``), with mmdetection's
``weight_reduce_loss`` for the reductions; identities, the second derivative, precision where the score
saturates, and bad inputs. Layouts, gradcheck, autocast, ``torch.func``, compile, the Triton kernels and the
modules are covered with the other losses through ``tests/cases.py``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focalkit as fk
from focalkit._formulas import sigmoid_terms
from focalkit.kernels.ops import TorchOps


def _quality_targets(shape=(64, 7), seed=0, scale=3.0, positives=0.2):
    """Anchors × classes: a quality (IoU) target in (0, 1] at some entries, 0 elsewhere."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    q = torch.rand(shape, generator=g, dtype=torch.float64) * 0.95 + 0.05
    q = torch.where(torch.rand(shape, generator=g) < positives, q, torch.zeros_like(q))
    return x, q


def _vfl_mmdet(pred, target, alpha=0.75, gamma=2.0, iou_weighted=True):
    """mmdetection's ``varifocal_loss`` before ``weight_reduce_loss``."""
    pred_sigmoid = pred.sigmoid()
    pos = (target > 0.0).to(pred.dtype)
    neg = (target <= 0.0).to(pred.dtype)
    focal_weight = (target if iou_weighted else 1.0) * pos + alpha * (pred_sigmoid - target).abs().pow(gamma) * neg
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * focal_weight


def _qfl_tensor_target(pred, target, beta=2.0):
    """mmdetection's ``quality_focal_loss_tensor_target`` (GFL with a dense soft target)."""
    pred_sigmoid = pred.sigmoid()
    scale_factor = (pred_sigmoid - target).abs().pow(beta)
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * scale_factor


def _qfl_label_score(pred, label, score, beta=2.0):
    """GFL's ``quality_focal_loss(pred, (label, score))``: class ids (``C`` is background) and the positive's
    quality score; negatives are supervised by 0. Returns the per-anchor sum over classes, as theirs."""
    pred_sigmoid = pred.sigmoid()
    loss = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred), reduction="none") * pred_sigmoid.pow(beta)
    pos = ((label >= 0) & (label < pred.size(1))).nonzero().squeeze(1)
    pos_label = label[pos].long()
    scale_factor = score[pos] - pred_sigmoid[pos, pos_label]
    loss[pos, pos_label] = F.binary_cross_entropy_with_logits(
        pred[pos, pos_label], score[pos], reduction="none") * scale_factor.abs().pow(beta)
    return loss.sum(dim=1)


def _weight_reduce(loss, weight=None, reduction="mean", avg_factor=None):
    """mmdetection's ``weight_reduce_loss``."""
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()
    if reduction == "mean":
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    assert reduction == "none"
    return loss


VFL_OPTIONS = [{}, {"alpha": 0.25, "gamma": 1.5}, {"iou_weighted": False}, {"alpha": 1.0, "gamma": 0.0},
               {"alpha": 0.75, "gamma": 3.0, "iou_weighted": False}]


# ----------------------------------------------------------------------------------------------- varifocal loss
@pytest.mark.parametrize("options", VFL_OPTIONS, ids=str)
def test_varifocal_matches_mmdetection(options):
    x, q = _quality_targets()
    xr = x.clone().requires_grad_(True)
    xo = x.clone().requires_grad_(True)
    got = fk.varifocal_loss(xr, q, reduction="none", **options)
    want = _vfl_mmdet(xo, q, **options)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    (g1,) = torch.autograd.grad(got.sum(), xr)
    (g2,) = torch.autograd.grad(want.sum(), xo)
    torch.testing.assert_close(g1, g2, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_varifocal_reductions_and_avg_factor_as_mmdetection(reduction):
    x, q = _quality_targets(seed=1)
    w = torch.rand(x.shape[0], 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(fk.varifocal_loss(x, q, reduction=reduction),
                               _weight_reduce(_vfl_mmdet(x, q), reduction=reduction))
    # VFNet's head: the summed, weighted loss over the number of positive anchors (avg_factor)
    num_pos = float((q > 0).sum())
    got = fk.varifocal_loss(x, q, sample_weight=w, normalizer=num_pos)
    want = _weight_reduce(_vfl_mmdet(x, q), w, "mean", avg_factor=num_pos)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)  # theirs adds float32's eps to the divisor


def test_varifocal_float32_matches_mmdetection():
    x, q = _quality_targets(seed=2)
    got = fk.varifocal_loss(x.float(), q.float(), reduction="none")
    torch.testing.assert_close(got.double(), _vfl_mmdet(x, q), rtol=2e-6, atol=1e-7)


def test_varifocal_identities_for_binary_targets():
    """0/1 targets: the positives' term is BCE, the negatives' is α × focal loss's negative term; with
    ``iou_weighted`` a 0/1 target weighs 1 either way."""
    x, q = _quality_targets(seed=3)
    y = (q > 0).double()
    bce = fk.binary_cross_entropy(x, y, reduction="none")
    focal = fk.sigmoid_focal_loss(x, y, alpha=None, gamma=2.0, reduction="none")
    want = torch.where(y > 0, bce, 0.75 * focal)
    for weighted in (True, False):
        torch.testing.assert_close(fk.varifocal_loss(x, y, iou_weighted=weighted, reduction="none"), want)
    # without iou_weighting a positive's weight does not depend on its target's size
    assert torch.equal(fk.varifocal_loss(x, q, iou_weighted=False, reduction="none"),
                       torch.where(q > 0, fk.binary_cross_entropy(x, q, reduction="none"),
                                   fk.varifocal_loss(x, q, reduction="none")))


def test_varifocal_weighs_positives_by_quality_and_negatives_by_their_score():
    x = torch.tensor([2.0, 2.0, -3.0, 3.0], dtype=torch.float64)
    q = torch.tensor([0.9, 0.3, 0.0, 0.0], dtype=torch.float64)
    loss = fk.varifocal_loss(x, q, reduction="none")
    assert loss[0] / fk.binary_cross_entropy(x[:1], q[:1]) == pytest.approx(0.9)
    assert loss[2] < 1e-3 < loss[3]  # an easy negative is nearly discarded, a confident false positive is not


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_varifocal_saturated_logits(dtype):
    """Where σ(x) rounds to 0 or 1 the float64 oracle at x = ±30 still holds (no log of 0, no 1 − σ)."""
    x = torch.tensor([30.0, -30.0, 30.0, -30.0, 1e4, -1e4], dtype=dtype, requires_grad=True)
    q = torch.tensor([0.7, 0.7, 0.0, 0.0, 0.0, 0.5], dtype=dtype)
    loss = fk.varifocal_loss(x, q, reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), x)
    xd = x.detach().double()
    s, n_pos, n_neg = torch.sigmoid(xd), F.softplus(-xd), F.softplus(xd)
    want = torch.where(q.double() > 0, q.double() * (q.double() * n_pos + (1 - q.double()) * n_neg),
                       0.75 * s**2 * n_neg)
    torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=0)
    qd, sbar = q.double(), torch.sigmoid(-xd)
    want_g = torch.where(qd > 0, qd * ((1 - qd) * s - qd * sbar), 0.75 * s**2 * (2.0 * sbar * n_neg + s))
    torch.testing.assert_close(g.double(), want_g, rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------ quality focal loss
@pytest.mark.parametrize("beta", [0.0, 1.0, 1.5, 2.0, 3.0])
def test_quality_focal_matches_gfl_tensor_target(beta):
    x, q = _quality_targets(seed=4)
    xr = x.clone().requires_grad_(True)
    xo = x.clone().requires_grad_(True)
    got = fk.quality_focal_loss(xr, q, beta=beta, reduction="none")
    want = _qfl_tensor_target(xo, q, beta)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    (g1,) = torch.autograd.grad(got.sum(), xr)
    (g2,) = torch.autograd.grad(want.sum(), xo)
    torch.testing.assert_close(g1, g2, rtol=1e-11, atol=1e-14)


def test_quality_focal_matches_gfl_label_and_score_form():
    """GFL's head passes (class id, IoU score) per anchor; the dense target holds the score at its class."""
    g = torch.Generator().manual_seed(6)
    n, c = 50, 6
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    label = torch.randint(0, c + 1, (n,), generator=g)  # c: background
    score = torch.rand(n, generator=g, dtype=torch.float64)
    dense = torch.zeros(n, c, dtype=torch.float64)
    fg = label < c
    dense[fg.nonzero().squeeze(1), label[fg]] = score[fg]
    want = _qfl_label_score(x, label, score)
    torch.testing.assert_close(fk.quality_focal_loss(x, dense, reduction="none").sum(1), want, rtol=1e-12, atol=1e-14)
    avg = float(fg.sum())
    torch.testing.assert_close(fk.quality_focal_loss(x, dense, normalizer=avg),
                               _weight_reduce(want, reduction="mean", avg_factor=avg), rtol=1e-6, atol=0)


def test_quality_focal_identities():
    x, q = _quality_targets(seed=7)
    y = (q > 0).double()
    torch.testing.assert_close(fk.quality_focal_loss(x, q, beta=0.0), fk.binary_cross_entropy(x, q))
    for beta in (1.0, 2.0, 2.5):
        torch.testing.assert_close(fk.quality_focal_loss(x, y, beta=beta, reduction="none"),
                                   fk.sigmoid_focal_loss(x, y, alpha=None, gamma=beta, reduction="none"))


def test_quality_focal_is_zero_at_the_target_and_keeps_precision_near_it():
    q = torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)
    x = torch.logit(q).requires_grad_(True)
    loss = fk.quality_focal_loss(x, q, reduction="none")
    assert loss.abs().max() < 1e-28
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert g.abs().max() < 1e-15  # logit(q) is q to within an ulp: the slope is of that order, not 0
    # a positive whose score saturates: s − q is computed as (1 − q)s − q σ(−x), exact in float32
    x32 = torch.tensor([12.0, -12.0], requires_grad=True)  # 1 − σ(12) in float32 would be off by 1%
    q32 = torch.tensor([1.0, 0.0])
    loss = fk.quality_focal_loss(x32, q32, reduction="none")
    want = torch.sigmoid(-x32.detach().double().abs()) ** 2 * F.softplus(-x32.detach().double().abs())
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)
    (g,) = torch.autograd.grad(loss.sum(), x32)
    s = torch.sigmoid(-x32.detach().double().abs())  # the small probability: |d| = s for both
    want_g = torch.tensor([-1.0, 1.0], dtype=torch.float64) * (s**3 + 2.0 * F.softplus(-x32.detach().double().abs())
                                                                * s * s * (1 - s))
    torch.testing.assert_close(g.double(), want_g, rtol=1e-5, atol=0)


@pytest.mark.parametrize(("family", "options"), [
    ("varifocal", {"alpha": 0.75, "gamma": 2.0, "iou_weighted": True}),
    ("varifocal", {"alpha": 0.5, "gamma": 1.5, "iou_weighted": False}),
    ("qfl", {"gamma": 2.0}), ("qfl", {"gamma": 1.0}), ("qfl", {"gamma": 2.5}), ("qfl", {"gamma": 0.0}),
], ids=str)
def test_second_derivative_equals_autograd(family, options):
    """The closed-form ``ℓ''`` (the gradient-boosting objectives' Hessian) against autograd of ``ℓ'``."""
    x, q = _quality_targets(shape=(400,), seed=8)
    x = x.requires_grad_(True)
    _, grad, hess = sigmoid_terms(TorchOps, family, x, q, order=2, tiny=1e-300, **options)
    (h,) = torch.autograd.grad(grad.sum(), x)
    torch.testing.assert_close(hess, h, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda x, q: fk.varifocal_loss(x, q, alpha=-0.1), ValueError, r"varifocal_loss: alpha must be in \[0, inf\)"),
    (lambda x, q: fk.varifocal_loss(x, q, gamma=-1.0), ValueError, r"varifocal_loss: gamma must be in \[0, inf\)"),
    (lambda x, q: fk.varifocal_loss(x, q, iou_weighted="yes"), TypeError, r"iou_weighted must be True or False"),
    (lambda x, q: fk.varifocal_loss(x, q * 2), ValueError, r"varifocal_loss: target"),
    (lambda x, q: fk.varifocal_loss(x, q[:, :3]), ValueError, r"same shape"),
    (lambda x, q: fk.quality_focal_loss(x, q, beta=0.5), ValueError, r"beta must be 0 or >= 1"),
    (lambda x, q: fk.quality_focal_loss(x, q, beta=float("nan")), ValueError, r"beta must be a finite real"),
    (lambda x, q: fk.quality_focal_loss(x, q, beta=-2.0), ValueError, r"beta must be in \[0, inf\)"),
    (lambda x, q: fk.quality_focal_loss(x, -q - 0.1), ValueError, r"quality_focal_loss: target"),
    (lambda x, q: fk.VarifocalLoss(iou_weighted=1), TypeError, r"VarifocalLoss: iou_weighted must be True or False"),
    (lambda x, q: fk.QualityFocalLoss(beta=0.3), ValueError, r"QualityFocalLoss: beta must be 0 or >= 1"),
    (lambda x, q: fk.VarifocalLoss(alpha=-1), ValueError, r"VarifocalLoss: alpha must be in"),
])
def test_bad_input(call, error, message):
    x, q = _quality_targets(shape=(4, 5))
    with pytest.raises(error, match=message):
        call(x, q)


def test_modules_match_the_functions():
    x, q = _quality_targets(seed=9)
    torch.testing.assert_close(fk.VarifocalLoss(alpha=0.5, iou_weighted=False, reduction="sum")(x, q),
                               fk.varifocal_loss(x, q, alpha=0.5, iou_weighted=False, reduction="sum"))
    torch.testing.assert_close(fk.QualityFocalLoss(beta=1.5)(x, q, normalizer=3.0),
                               fk.quality_focal_loss(x, q, beta=1.5, normalizer=3.0))
    assert "iou_weighted=False" in repr(fk.VarifocalLoss(iou_weighted=False))
