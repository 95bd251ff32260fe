"""kornia's focal-loss tests, ported to focalkit.

Ported from kornia/kornia ``tests/losses/test_focal_loss.py`` at commit
05ba4f723d74de607da0555af7853f72c5961c32 (classes ``TestBinaryFocalLossWithLogits`` and ``TestFocalLoss``),
with kornia's conventions read from ``kornia/losses/focal.py`` of the installed kornia 0.9.0. Where a kornia
test compares kornia with itself, focalkit is compared with the installed kornia. Inputs, parametrisations and
tolerances are kornia's (``testing/base.py``: float32 rtol 1e-4 / atol 1e-5, float64 1e-5 / 1e-5; gradcheck in
float64, fast mode); of kornia's ``dtype`` options the cases run at float32.

kornia's conventions, mapped by the two adapters below:

- ``binary_focal_loss_with_logits``: default ``reduction="none"``; ``"mean"`` divides by *every* element,
  those equal to ``ignore_index`` (default -100) included, where focalkit's mean drops ignored elements, so the
  adapter passes ``normalizer=numel``; ``weight`` is a ``(C,)`` vector along dim 1, i.e. focalkit's
  ``sample_weight`` viewed as ``(C, 1, …)``. Its ``pos_weight`` has no counterpart in focalkit's focal loss.
- ``focal_loss`` (multi-class): a scalar α weights class 0 by 1−α and every other class by α (focalkit: the
  vector ``[1−α, α, …]``); ``"none"`` returns a ``(B, C, *)`` map holding the loss in the target class's slice
  (focalkit returns ``(B, *)``: the adapter scatters it into that map); ``"mean"`` divides by ``C`` × pixels,
  ignored pixels included, and is not normalised by ``weight`` (``normalizer=numel`` of the logits); ``weight``
  is focalkit's ``class_weight``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focalkit as fk

kornia = pytest.importorskip("kornia")

_PRECISION = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-5, 1e-5)}


def assert_close(actual, expected):
    """kornia's ``BaseTester.assert_close``: tolerances from the dtypes of both sides."""
    tols = [_PRECISION.get(t.dtype, (0.0, 0.0)) for t in (actual, expected)]
    rtol, atol = max(t[0] for t in tols), max(t[1] for t in tols)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, check_stride=False, equal_nan=False)


def gradcheck(fn, inputs):
    """kornia's ``BaseTester.gradcheck``: float64, fast mode."""
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)


def _along_dim1(vector, ndim):
    return vector.reshape(-1, *([1] * (ndim - 2)))


def kornia_binary(pred, target, alpha=0.25, gamma=2.0, reduction="none", weight=None, ignore_index=-100):
    """kornia's ``binary_focal_loss_with_logits`` (without ``pos_weight``), computed by focalkit."""
    kwargs = {
        "alpha": alpha,
        "gamma": gamma,
        "ignore_index": ignore_index,
        "sample_weight": None if weight is None else _along_dim1(weight, pred.dim()),
    }
    if reduction == "mean":
        return fk.sigmoid_focal_loss(pred, target, reduction="mean", normalizer=pred.numel(), **kwargs)
    return fk.sigmoid_focal_loss(pred, target, reduction=reduction, **kwargs)


def kornia_alpha(alpha, num_classes, dtype):
    """kornia's scalar α as focalkit's per-class vector: 1−α for class 0 (background), α for the others."""
    return None if alpha is None else torch.tensor([1 - alpha] + [alpha] * (num_classes - 1), dtype=dtype)


def to_kornia_map(per_pixel, target, num_classes, ignore_index):
    """focalkit's ``(B, *)`` per-pixel loss as kornia's ``(B, C, *)`` map (the loss in the target's slice)."""
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).movedim(-1, 1).bool() & valid.unsqueeze(1)
    return torch.where(onehot, per_pixel.unsqueeze(1), per_pixel.new_zeros(()))


def kornia_focal(pred, target, alpha, gamma=2.0, reduction="none", weight=None, ignore_index=-100, module=False):
    """kornia's multi-class ``focal_loss``, computed by focalkit (its function, or its module)."""
    num_classes = pred.shape[1]
    options = {
        "alpha": kornia_alpha(alpha, num_classes, pred.dtype),
        "gamma": gamma,
        "class_weight": weight,
        "ignore_index": -100 if ignore_index is None else ignore_index,
    }
    red = "mean" if reduction == "mean" else reduction
    normalizer = pred.numel() if reduction == "mean" else None
    if module:
        out = fk.SoftmaxFocalLoss(reduction=red, **options)(pred, target, normalizer=normalizer)
    else:
        out = fk.softmax_focal_loss(pred, target, reduction=red, normalizer=normalizer, **options)
    return to_kornia_map(out, target, num_classes, ignore_index) if reduction == "none" else out


# --------------------------------------------------------------------------------------------------------------
# TestBinaryFocalLossWithLogits
# --------------------------------------------------------------------------------------------------------------


class TestBinaryFocalLossWithLogits:
    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    @pytest.mark.parametrize("ignore_index", [-100, None])
    def test_value_same_as_torch_bce_loss(self, reduction, ignore_index):
        logits = torch.rand(2, 3, 2)
        labels = torch.rand(2, 3, 2)
        focal = kornia_binary(logits, labels, alpha=None, gamma=0, reduction=reduction, ignore_index=ignore_index)
        assert_close(focal, F.binary_cross_entropy_with_logits(logits, labels, reduction=reduction))

    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    def test_value_same_as_torch_bce_loss_pos_weight_weight(self, reduction):
        pytest.skip("focalkit's sigmoid_focal_loss has no pos_weight (only binary_cross_entropy has one)")

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3, 2)), ("mean", ()), ("sum", ())])
    @pytest.mark.parametrize("alpha", [None, 0.2, 0.5])
    @pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
    def test_shape_alpha_gamma(self, reduction, expected_shape, alpha, gamma):
        logits = torch.rand(2, 3, 2)
        labels = torch.rand(2, 3, 2)
        assert kornia_binary(logits, labels, alpha=alpha, gamma=gamma, reduction=reduction).shape == expected_shape

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3, 2)), ("mean", ()), ("sum", ())])
    @pytest.mark.parametrize("pos_weight", [None, (1, 2, 5)])
    @pytest.mark.parametrize("weight", [None, (0.2, 0.5, 0.8)])
    def test_shape_pos_weight_weight(self, reduction, expected_shape, pos_weight, weight):
        if pos_weight is not None:
            pytest.skip("focalkit's sigmoid_focal_loss has no pos_weight (only binary_cross_entropy has one)")
        logits = torch.rand(2, 3, 2)
        labels = torch.rand(2, 3, 2)
        weight = None if weight is None else torch.tensor(weight)
        out = kornia_binary(logits, labels, alpha=0.8, gamma=0.5, reduction=reduction, weight=weight)
        assert out.shape == expected_shape

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3, 2)), ("mean", ()), ("sum", ())])
    @pytest.mark.parametrize("ignore_index", [-100, 255])
    def test_shape_ignore_index(self, reduction, expected_shape, ignore_index):
        logits = torch.rand(2, 3, 2)
        labels = torch.rand(2, 3, 2)
        labels[torch.rand(2, 3, 2) > 0.6] = ignore_index
        out = kornia_binary(logits, labels, alpha=0.8, gamma=0.5, reduction=reduction, ignore_index=ignore_index)
        assert out.shape == expected_shape

    def test_dynamo(self):
        # kornia's torch_optimizer fixture is torch.compile; the aot_eager backend (as in this project's own
        # compile tests) traces the same graph without Inductor's C++ build, to keep the run short on 2 cores.
        logits = torch.rand(2, 3, 2)
        labels = torch.rand(2, 3, 2)
        compiled = torch.compile(kornia_binary, backend="aot_eager")
        assert_close(compiled(logits, labels, 0.25, 2.0), kornia_binary(logits, labels, 0.25, 2.0))

    def test_gradcheck(self):
        logits = torch.rand(2, 3, 2, dtype=torch.float64, requires_grad=True)
        labels = torch.rand(2, 3, 2, dtype=torch.float64, requires_grad=True)
        gradcheck(lambda x, y: kornia_binary(x, y, 0.25, 2.0), (logits, labels))

    def test_gradcheck_ignore_index(self):
        logits = torch.rand(2, 3, 2, dtype=torch.float64, requires_grad=True)
        labels = torch.rand(2, 3, 2, dtype=torch.float64)
        labels[torch.rand(2, 3, 2) > 0.8] = -100
        gradcheck(lambda x: kornia_binary(x, labels, 0.25, 2.0), (logits,))

    def test_module(self):
        logits = torch.rand(2, 3, 2)
        labels = torch.rand(2, 3, 2)
        module = fk.SigmoidFocalLoss(alpha=0.25, gamma=2.0, ignore_index=-100, reduction="none")
        assert_close(module(logits, labels), kornia_binary(logits, labels, 0.25, 2.0))

    @pytest.mark.parametrize(
        "labels",
        [
            pytest.param(
                "soft",
                marks=pytest.mark.xfail(
                    strict=True,
                    raises=AssertionError,
                    reason="soft labels: focalkit applies α_t and (1−p_t)^γ with p_t = p·y + (1−p)(1−y) to the "
                    "whole BCE (torchvision's form, documented in sigmoid_focal_loss); kornia weights the two "
                    "terms separately, y·α(1−p)^γ(−log p) + (1−y)(1−α)p^γ(−log(1−p)). Equal for 0/1 labels.",
                ),
            ),
            "hard",
        ],
    )
    def test_module_matches_installed_kornia(self, labels):
        # kornia's test_module compares kornia's module with kornia's function; here focalkit's module is
        # compared with the installed kornia on the same inputs (kornia's soft labels, and the same rounded to 0/1).
        logits = torch.rand(2, 3, 2)
        target = torch.rand(2, 3, 2)
        if labels == "hard":
            target = target.round()
        module = fk.SigmoidFocalLoss(alpha=0.25, gamma=2.0, ignore_index=-100, reduction="none")
        assert_close(module(logits, target), kornia.losses.binary_focal_loss_with_logits(logits, target, 0.25, 2.0))

    def test_numeric_stability(self):
        logits = torch.tensor([[100.0, -100]])
        labels = torch.tensor([[1.0, 0.0]])
        assert_close(kornia_binary(logits, labels, 0.25, 2.0), torch.tensor([[0.0, 0.0]]))


# --------------------------------------------------------------------------------------------------------------
# TestFocalLoss (multi-class)
# --------------------------------------------------------------------------------------------------------------


class TestFocalLoss:
    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    @pytest.mark.parametrize("gamma", [0.0, 2.0])
    @pytest.mark.parametrize("weighted", [False, True])
    @pytest.mark.parametrize("spatial", [False, True])
    def test_ignored_extreme_logits(self, reduction, gamma, weighted, spatial):
        dtype = torch.float32
        extreme = torch.finfo(dtype).max
        logits = torch.tensor([[extreme, -extreme], [0.0, 0.0]], dtype=dtype)
        labels = torch.tensor([-100, 0])
        if spatial:
            logits = logits.T.reshape(1, 2, 1, 2)
            labels = labels.reshape(1, 1, 2)
        logits = logits.requires_grad_()
        weight = torch.tensor([0.5, 1.5], dtype=dtype) if weighted else None
        alpha = 0.25 if weighted else None
        safe_logits = torch.zeros_like(logits, requires_grad=True)
        expected = kornia.losses.focal_loss(safe_logits, labels, alpha, gamma, reduction, weight)
        actual = kornia_focal(logits, labels, alpha, gamma, reduction, weight)
        assert_close(actual, expected)
        assert_close(torch.autograd.grad(actual.sum(), logits)[0],
                     torch.autograd.grad(expected.sum(), safe_logits)[0])
        assert_close(kornia_focal(logits, labels, alpha, gamma, reduction, weight, module=True), expected.detach())

    @pytest.mark.parametrize("ignore_index", [-100, 255])
    def test_all_ignored_extreme_logits(self, ignore_index):
        extreme = torch.finfo(torch.float32).max
        logits = torch.tensor([[extreme, -extreme]], requires_grad=True)
        labels = torch.full((1,), ignore_index, dtype=torch.int64)
        loss = kornia_focal(logits, labels, alpha=None, reduction="sum", ignore_index=ignore_index)
        assert_close(loss, torch.zeros_like(loss))
        assert_close(torch.autograd.grad(loss, logits)[0], torch.zeros_like(logits))

    @pytest.mark.xfail(
        strict=True,
        raises=ValueError,
        reason="focalkit's value checks (on by default, README 'Value checks') reject NaN/Inf logits with a "
        "ValueError, also at ignored positions; kornia masks them out",
    )
    @pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
    def test_ignored_non_finite_logits(self, value):
        logits = torch.tensor([[value, 0.0], [0.3, -0.2]], requires_grad=True)
        safe_logits = torch.tensor([[0.0, 0.0], [0.3, -0.2]], requires_grad=True)
        labels = torch.tensor([-100, 1])
        actual = kornia_focal(logits, labels, alpha=0.25, reduction="sum")
        expected = kornia.losses.focal_loss(safe_logits, labels, alpha=0.25, reduction="sum")
        assert_close(actual, expected)
        grad = torch.autograd.grad(actual, logits)[0]
        assert (grad[0] == 0).all()
        assert_close(grad, torch.autograd.grad(expected, safe_logits)[0])

    def test_dynamo_ignored_extreme_logits(self):
        extreme = torch.finfo(torch.float32).max
        logits = torch.tensor([[extreme, -extreme]], requires_grad=True)
        labels = torch.full((1,), -100, dtype=torch.int64)
        compiled = torch.compile(kornia_focal, backend="aot_eager")  # see TestBinaryFocalLossWithLogits.test_dynamo
        loss = compiled(logits, labels, None, reduction="sum")
        assert_close(loss, torch.zeros_like(loss))
        assert_close(torch.autograd.grad(loss, logits)[0], torch.zeros_like(logits))

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3, 3, 2)), ("mean", ()), ("sum", ())])
    @pytest.mark.parametrize("alpha", [None, 0.2, 0.5])
    @pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
    def test_shape_alpha_gamma(self, reduction, expected_shape, alpha, gamma):
        num_classes = 3
        logits = torch.rand(2, num_classes, 3, 2)
        labels = torch.randint(num_classes, (2, 3, 2))
        actual = kornia_focal(logits, labels, alpha=alpha, gamma=gamma, reduction=reduction)
        assert actual.shape == expected_shape
        assert_close(actual, kornia.losses.focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction=reduction))

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3)), ("mean", ()), ("sum", ())])
    def test_shape_target_with_only_one_dim(self, reduction, expected_shape):
        num_classes = 3
        logits = torch.rand(2, num_classes)
        labels = torch.randint(num_classes, (2,))
        actual = kornia_focal(logits, labels, alpha=0.1, gamma=1.5, reduction=reduction)
        assert actual.shape == expected_shape
        assert_close(actual, kornia.losses.focal_loss(logits, labels, alpha=0.1, gamma=1.5, reduction=reduction))

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3, 3, 2)), ("mean", ()), ("sum", ())])
    @pytest.mark.parametrize("weight", [None, (0.2, 0.5, 0.8)])
    def test_shape_weight(self, reduction, expected_shape, weight):
        num_classes = 3
        logits = torch.rand(2, num_classes, 3, 2)
        labels = torch.randint(num_classes, (2, 3, 2))
        weight = None if weight is None else torch.tensor(weight)
        actual = kornia_focal(logits, labels, alpha=0.8, gamma=0.5, reduction=reduction, weight=weight)
        assert actual.shape == expected_shape
        expected = kornia.losses.focal_loss(logits, labels, alpha=0.8, gamma=0.5, reduction=reduction, weight=weight)
        assert_close(actual, expected)

    @pytest.mark.parametrize(("reduction", "expected_shape"), [("none", (2, 3, 3, 2)), ("mean", ()), ("sum", ())])
    @pytest.mark.parametrize("ignore_index", [-100, 255])
    def test_shape_ignore_index(self, reduction, expected_shape, ignore_index):
        num_classes = 3
        logits = torch.rand(2, num_classes, 3, 2)
        labels = torch.randint(num_classes, (2, 3, 2))
        labels[torch.rand(2, 3, 2) > 0.6] = ignore_index
        actual = kornia_focal(logits, labels, alpha=0.8, gamma=0.5, reduction=reduction, ignore_index=ignore_index)
        assert actual.shape == expected_shape
        expected = kornia.losses.focal_loss(logits, labels, alpha=0.8, gamma=0.5, reduction=reduction,
                                            ignore_index=ignore_index)
        assert_close(actual, expected)

    @pytest.mark.parametrize("ignore_index", [-100, 255])
    def test_value_ignore_index(self, ignore_index):
        # kornia's reference for an ignored pixel: an extra class with logit -inf holding its label, whose slice
        # is then dropped. Computed by the installed kornia (focalkit's value checks reject -inf logits).
        num_classes = 3
        logits = torch.rand(2, num_classes, 3, 2)
        labels = torch.randint(num_classes, (2, 3, 2))
        ignore = torch.rand(2, 3, 2) > 0.6
        labels[ignore] = ignore_index
        labels_extra_class = labels.clone()
        labels_extra_class[ignore] = num_classes
        logits_extra_class = torch.cat([logits, logits.new_full((2, 1, 3, 2), float("-inf"))], dim=1)
        expected = kornia.losses.focal_loss(logits_extra_class, labels_extra_class, alpha=0.8, gamma=0.5,
                                            reduction="none")[:, :-1, ...]
        # kornia's α vector over the 4 classes of the reference is [0.2, 0.8, 0.8, 0.8]: the same for the 3 kept
        actual = kornia_focal(logits, labels, alpha=0.8, gamma=0.5, reduction="none", ignore_index=ignore_index)
        assert_close(actual, expected)

    def test_dynamo(self):
        num_classes = 3
        logits = torch.rand(2, num_classes)
        labels = torch.randint(num_classes, (2,))
        compiled = torch.compile(kornia_focal, backend="aot_eager")  # see TestBinaryFocalLossWithLogits.test_dynamo
        assert_close(compiled(logits, labels, 0.25, 2.0), kornia_focal(logits, labels, 0.25, 2.0))

    def test_gradcheck(self):
        num_classes = 3
        logits = torch.rand(2, num_classes, 3, 2, dtype=torch.float64, requires_grad=True)
        labels = torch.randint(num_classes, (2, 3, 2)).long()
        labels[torch.rand(2, 3, 2) > 0.8] = -100
        gradcheck(lambda x: kornia_focal(x, labels, 0.25, 2.0), (logits,))

    def test_module(self):
        num_classes = 3
        logits = torch.rand(2, num_classes)
        labels = torch.randint(num_classes, (2,))
        actual = kornia_focal(logits, labels, 0.25, 2.0, module=True)
        assert_close(actual, kornia_focal(logits, labels, 0.25, 2.0))
        assert_close(actual, kornia.losses.focal_loss(logits, labels, 0.25, 2.0))
