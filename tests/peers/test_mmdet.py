"""mmdetection's GHM-C, ported as a reference for focalkit's ``ghmc_loss`` / ``GHMCLoss``.

mmdetection cannot be installed here. ``ghmc_reference`` below is an independent float64 transcription of the
forward of ``GHMC`` in open-mmlab/mmdetection ``mmdet/models/losses/ghm_loss.py`` at commit
3b620ebd27f0ec678b89f8b58e406e81359a3adc: ``bins`` edges ``arange(bins + 1) / bins`` with ``1e-6`` added to
the top one, ``g = |σ(x) − y|`` (no gradient), ``tot`` = the number of valid elements (``label_weight > 0``,
at least 1), each non-empty bin's elements weighted ``tot / count`` (``tot / acc_sum[bin]`` with
``momentum > 0``, ``acc_sum ← m·acc_sum + (1−m)·count`` for the non-empty bins, starting at 0), all weights
divided by the number of non-empty bins, and the loss ``Σ weights·BCE / tot · loss_weight``. Class-id targets
(``target.dim() != pred.dim()``) are expanded to one-hot rows (a label outside ``[0, C)`` is background), the
row's ``label_weight`` to every class.

The peer's own tests touching GHMC (``tests/test_models/test_losses/test_loss.py`` at commit
8bf5e2c45375898972f4248735bf892eecc10157) only check that a bad ``reduction_override`` is rejected;
that case is ported at the end.

Conventions mapped by ``mmdet_ghmc``: mmdet's ``label_weight`` only marks elements valid (> 0) or ignored and
does not multiply the loss, where focalkit's ``sample_weight`` multiplies it: the adapter passes
``sample_weight = (label_weight > 0)``; ``loss_weight`` multiplies the result. Tolerances (the peer gives none):
float32 inputs against the float64 reference at rtol 1e-5 / atol 1e-6, float64 inputs at 1e-10.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focalkit as fk

TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


def _expand_onehot(pred, target, label_weight):
    """mmdet's ``_expand_onehot_labels``: class ids to one-hot rows, a row's weight to all its classes."""
    num_classes = pred.shape[-1]
    inside = (target >= 0) & (target < num_classes)
    onehot = F.one_hot(torch.where(inside, target, 0), num_classes) * inside.unsqueeze(-1)
    return onehot, label_weight.reshape(-1, 1).expand(-1, num_classes)


def ghmc_reference(pred, target, label_weight, *, bins=10, momentum=0.0, acc_sum=None, loss_weight=1.0):
    """mmdet's GHMC forward in float64: ``(loss, per-element weights·BCE)``; updates ``acc_sum`` in place."""
    if pred.dim() != target.dim():
        target, label_weight = _expand_onehot(pred, target, label_weight)
    x, y, lw = pred.detach().double(), target.double(), label_weight.double()
    edges = torch.arange(bins + 1, dtype=torch.float64) / bins
    edges[-1] += 1e-6
    g = (torch.sigmoid(x) - y).abs()
    valid = lw > 0
    tot = max(float(valid.sum()), 1.0)
    weights = torch.zeros_like(x)
    non_empty = 0
    for i in range(bins):
        in_bin = (g >= edges[i]) & (g < edges[i + 1]) & valid
        count = int(in_bin.sum())
        if count == 0:
            continue
        non_empty += 1
        if momentum > 0:
            acc_sum[i] = momentum * acc_sum[i] + (1 - momentum) * count
            weights[in_bin] = tot / acc_sum[i]
        else:
            weights[in_bin] = tot / count
    if non_empty:
        weights = weights / non_empty
    # the loss as a function of the logits (weights are constants), for the gradient
    xg = pred.double()
    elementwise = weights * F.binary_cross_entropy_with_logits(xg, y, reduction="none")
    return elementwise.sum() / tot * loss_weight, elementwise * loss_weight


def mmdet_ghmc(pred, target, label_weight, *, bins=10, loss_weight=1.0, reduction="mean", module=None):
    """mmdet's ``GHMC(bins, momentum, loss_weight)(pred, target, label_weight)`` through focalkit."""
    if pred.dim() != target.dim():
        target, label_weight = _expand_onehot(pred, target, label_weight)
    valid = (label_weight > 0).to(pred.dtype)
    if module is not None:
        return module(pred, target.to(pred.dtype), sample_weight=valid) * loss_weight
    return fk.ghmc_loss(pred, target.to(pred.dtype), bins=bins, sample_weight=valid, reduction=reduction) * loss_weight


def _batch(n=64, c=8, dtype=torch.float32, scale=3.0):
    pred = (torch.randn(n, c) * scale).to(dtype).requires_grad_()
    target = (torch.rand(n, c) < 0.2).to(dtype)
    return pred, target, torch.ones(n, c)


def _compare(actual, expected, dtype):
    torch.testing.assert_close(actual.detach().double(), expected.detach(), **TOL[dtype])


def _compare_grads(actual, expected, pred, dtype):
    got = torch.autograd.grad(actual, pred)[0]
    want = torch.autograd.grad(expected, pred)[0]
    torch.testing.assert_close(got.double(), want.double(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bins", [1, 10, 30])
def test_forward_and_gradient(bins, dtype):
    pred, target, label_weight = _batch(dtype=dtype)
    expected, _ = ghmc_reference(pred, target, label_weight, bins=bins)
    actual = mmdet_ghmc(pred, target, label_weight, bins=bins)
    _compare(actual, expected, dtype)
    _compare_grads(actual, expected, pred, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_label_weight_marks_ignored_elements(dtype):
    pred, target, _ = _batch(dtype=dtype)
    label_weight = (torch.rand(pred.shape) < 0.7).float() * torch.rand(pred.shape).add(0.5)  # 0 or in [0.5, 1.5)
    expected, _ = ghmc_reference(pred, target, label_weight)
    actual = mmdet_ghmc(pred, target, label_weight)
    _compare(actual, expected, dtype)
    _compare_grads(actual, expected, pred, dtype)


def test_class_id_targets_with_background():
    # labels in [0, C) and C (background: all negatives), a per-row label_weight with some rows ignored
    n, c = 48, 5
    pred = (torch.randn(n, c) * 2).requires_grad_()
    labels = torch.randint(0, c + 1, (n,))
    label_weight = (torch.rand(n) < 0.8).float()
    expected, _ = ghmc_reference(pred, labels, label_weight)
    actual = mmdet_ghmc(pred, labels, label_weight)
    _compare(actual, expected, torch.float32)
    _compare_grads(actual, expected, pred, torch.float32)


def test_loss_weight():
    pred, target, label_weight = _batch()
    expected, _ = ghmc_reference(pred, target, label_weight, loss_weight=2.5)
    _compare(mmdet_ghmc(pred, target, label_weight, loss_weight=2.5), expected, torch.float32)


def test_elementwise_terms():
    # the per-element weights·BCE that mmdet's forward sums: focalkit's reduction="none" (ignored elements 0)
    pred, target, _ = _batch()
    label_weight = (torch.rand(pred.shape) < 0.7).float()
    _, expected = ghmc_reference(pred, target, label_weight)
    actual = mmdet_ghmc(pred, target, label_weight, reduction="none")
    _compare(actual, expected, torch.float32)


def test_bin_edges_and_saturated_logits():
    # g exactly 0, 0.5 and 1 (σ(±100) is 0 or 1 in float32): 0.5 opens bin 5, 1 falls in the top bin (edge 1 + 1e-6)
    pred = torch.tensor([[100.0, -100.0, 0.0, 0.0], [100.0, -100.0, 0.0, 3.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    label_weight = torch.ones_like(target)
    expected, _ = ghmc_reference(pred, target, label_weight)
    actual = mmdet_ghmc(pred, target, label_weight)
    _compare(actual, expected, torch.float32)
    _compare_grads(actual, expected, pred, torch.float32)


def test_all_ignored_is_zero():
    pred, target, _ = _batch()
    label_weight = torch.zeros(pred.shape)
    expected, _ = ghmc_reference(pred, target, label_weight)
    actual = mmdet_ghmc(pred, target, label_weight)
    assert float(expected.detach()) == 0.0
    _compare(actual, expected, torch.float32)
    grad = torch.autograd.grad(actual, pred)[0]
    assert torch.isfinite(grad).all()
    assert (grad == 0).all()


@pytest.mark.parametrize("momentum", [0.75, 0.9])
@pytest.mark.parametrize("bins", [10, 30])
def test_momentum_running_counts_over_calls(bins, momentum):
    module = fk.GHMCLoss(bins=bins, momentum=momentum)
    acc_sum = torch.zeros(bins, dtype=torch.float64)
    for step in range(4):
        pred, target, _ = _batch(n=32 + 8 * step, c=6, scale=1.0 + step)
        label_weight = (torch.rand(pred.shape) < 0.9).float()
        expected, _ = ghmc_reference(pred, target, label_weight, bins=bins, momentum=momentum, acc_sum=acc_sum)
        actual = mmdet_ghmc(pred, target, label_weight, module=module)
        _compare(actual, expected, torch.float32)
        _compare_grads(actual, expected, pred, torch.float32)
        torch.testing.assert_close(module.running_counts.double(), acc_sum, rtol=1e-6, atol=1e-5)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="focalkit's GHMCLoss updates its running counts in training mode only (GHMCLoss docstring: 'evaluation "
    "leaves it as it is'); mmdet's GHMC updates acc_sum on every call",
)
def test_momentum_in_eval_mode():
    module = fk.GHMCLoss(bins=10, momentum=0.75).eval()
    acc_sum = torch.zeros(10, dtype=torch.float64)
    for _ in range(2):
        pred, target, label_weight = _batch()
        expected, _ = ghmc_reference(pred, target, label_weight, bins=10, momentum=0.75, acc_sum=acc_sum)
        _compare(mmdet_ghmc(pred, target, label_weight, module=module), expected, torch.float32)


def test_loss_with_reduction_override():
    # mmdet: GHMC()(pred, target, weight, reduction_override=True) raises AssertionError (only None, 'none',
    # 'mean', 'sum'). focalkit's module has no per-call override; the reduction is an option, and a bad one is a
    # ValueError (README 'Errors'), at construction and in the function.
    pred = torch.rand((10, 4))
    target = torch.rand((10, 4))
    with pytest.raises(ValueError, match="reduction"):
        fk.GHMCLoss(reduction=True)
    with pytest.raises(ValueError, match="reduction"):
        fk.ghmc_loss(pred, target, reduction=True)
