"""Identities between the losses, in value and gradient, and equivalences of inputs."""

from __future__ import annotations

import pytest
import torch

import focalkit as fk

from .cases import ALL, SOFTMAX


def _value_and_grad(fn, x, *args, **kw):
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x, *args, **kw)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def _assert_same(a, b, **tol):
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, **tol)


def _hard(shape):
    return torch.randn(shape, dtype=torch.float64) * 3, (torch.rand(shape) < 0.3).double()


class TestFocalReducesToCrossEntropy:
    @pytest.mark.parametrize("soft", [False, True])
    def test_sigmoid(self, soft):
        x = torch.randn(20, 3, dtype=torch.float64) * 4
        y = torch.rand(20, 3, dtype=torch.float64) if soft else (torch.rand(20, 3) < 0.5).double()
        _assert_same(_value_and_grad(fk.sigmoid_focal_loss, x, y, alpha=None, gamma=0.0),
                     _value_and_grad(fk.binary_cross_entropy, x, y))

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_softmax(self, smoothing):
        x, t = torch.randn(20, 6, dtype=torch.float64) * 4, torch.randint(0, 6, (20,))
        w = torch.rand(6, dtype=torch.float64)
        _assert_same(_value_and_grad(fk.softmax_focal_loss, x, t, gamma=0.0, class_weight=w, label_smoothing=smoothing),
                     _value_and_grad(fk.cross_entropy, x, t, class_weight=w, label_smoothing=smoothing))


class TestSoftenedIsFocalWithGammaOne:
    def test_sigmoid(self):
        x, y = _hard((30, 2))
        _assert_same(_value_and_grad(fk.sigmoid_soft_truncation_loss, x, y, k=1.0),
                     _value_and_grad(fk.sigmoid_focal_loss, x, y, alpha=None, gamma=1.0))

    def test_softmax_complement(self):
        x, t = torch.randn(30, 4, dtype=torch.float64) * 3, torch.randint(0, 4, (30,))
        _assert_same(_value_and_grad(fk.softmax_soft_truncation_loss, x, t, k=1.0, weighting="complement"),
                     _value_and_grad(fk.softmax_focal_loss, x, t, gamma=1.0))

    def test_softmax_as_written_is_the_same_for_two_classes(self):
        # softmax(−x)_t = 1 − softmax(x)_t when C = 2, so the article's form is focal γ=1 there
        x, t = torch.randn(30, 2, dtype=torch.float64) * 3, torch.randint(0, 2, (30,))
        _assert_same(_value_and_grad(fk.softmax_soft_truncation_loss, x, t, k=1.0),
                     _value_and_grad(fk.softmax_focal_loss, x, t, gamma=1.0))


class TestHardTruncationAtThresholdOneIsCrossEntropy:
    def test_sigmoid(self):
        x, y = _hard((40,))
        _assert_same(_value_and_grad(fk.sigmoid_hard_truncation_loss, x, y, threshold=1.0),
                     _value_and_grad(fk.binary_cross_entropy, x, y))

    def test_softmax(self):
        x, t = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 5, (40,))
        _assert_same(_value_and_grad(fk.softmax_hard_truncation_loss, x, t, threshold=1.0),
                     _value_and_grad(fk.cross_entropy, x, t))

    def test_large_softened_k_approaches_hard_truncation(self):
        x, y = _hard((40,))
        x = x + torch.sign(x) * 0.5  # away from the step
        soft = fk.sigmoid_soft_truncation_loss(x, y, k=200.0)
        hard = fk.sigmoid_hard_truncation_loss(x, y, threshold=0.5)
        torch.testing.assert_close(soft, hard, rtol=1e-6, atol=1e-8)


class TestGHMCWithOneBinIsCrossEntropy:
    def test_value_and_gradient(self):
        x, y = _hard((25, 4))
        _assert_same(_value_and_grad(fk.ghmc_loss, x, y, bins=1), _value_and_grad(fk.binary_cross_entropy, x, y))


@pytest.mark.parametrize("case", ALL, ids=str)
class TestMasking:
    def test_zero_sample_weight_equals_dropping(self, case):
        if case.family == "sigmoid":
            x, y = _hard((30,))
        else:
            x, y = torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 4, (30,))
        keep = torch.rand(30) > 0.4
        masked = _value_and_grad(case.function, x, y, sample_weight=keep.double(), **case.options)
        x2 = x.detach().clone().requires_grad_(True)
        dropped = case.function(x2[keep], y[keep], **case.options)
        (g,) = torch.autograd.grad(dropped, x2)
        _assert_same(masked, (dropped.detach(), g))

    def test_ignore_index_equals_dropping(self, case):
        if case.family == "sigmoid":
            x, y = _hard((30,))
            ignore = 255
        else:
            x, y = torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 4, (30,))
            ignore = -100
        drop = torch.rand(30) < 0.4
        y_ign = y.clone()
        y_ign[drop] = ignore
        ignored = case.function(x, y_ign, ignore_index=ignore, reduction="none", **case.options)
        assert (ignored[drop] == 0).all()
        torch.testing.assert_close(case.function(x, y_ign, ignore_index=ignore, **case.options),
                                   case.function(x[~drop], y[~drop], **case.options))


@pytest.mark.parametrize("case", SOFTMAX, ids=str)
def test_class_ids_equal_one_hot_probabilities(case):
    x, t = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 5, (16,))
    q = torch.nn.functional.one_hot(t, 5).double()
    opts = {k: v for k, v in case.options.items() if k != "label_smoothing"}
    torch.testing.assert_close(case.function(x, t, reduction="none", **opts),
                               case.function(x, q, reduction="none", **opts))


def test_sigmoid_focal_is_two_class_softmax_focal():
    # σ(x) is softmax over the logits [0, x]: the two families agree on two classes
    x, y = _hard((50,))
    two = torch.stack([torch.zeros_like(x), x], 1)
    torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, alpha=None, reduction="none"),
                               fk.softmax_focal_loss(two, y.long(), reduction="none"))


def test_normalizer_replaces_the_denominator():
    x, y = _hard((8, 10))
    total = fk.sigmoid_focal_loss(x, y, reduction="sum")
    torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, normalizer=7.0), total / 7)
    torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, normalizer=torch.tensor(7.0)), total / 7)


def test_weighted_mean_is_sum_over_weight_sum():
    x, y = _hard((12,))
    w = torch.rand(12, dtype=torch.float64)
    per = fk.binary_cross_entropy(x, y, reduction="none")
    torch.testing.assert_close(fk.binary_cross_entropy(x, y, sample_weight=w), (w * per).sum() / w.sum())
    torch.testing.assert_close(fk.binary_cross_entropy(x, y, sample_weight=w, reduction="none"), w * per)
