"""MONAI's ``FocalLoss`` tests, ported to focalkit.

Ported from Project-MONAI/MONAI ``tests/losses/test_focal_loss.py`` at commit
1f37d0dfbb9e9485182d519668e675202e159c5f, with MONAI's conventions read from ``monai/losses/focal_loss.py`` of
the installed MONAI 1.6.1, which also serves as a second reference: every golden-number case is checked against
the peer's numbers (``atol = rtol = 1e-4``, as the peer) and against the installed ``monai.losses.FocalLoss``.

MONAI's conventions, mapped by ``monai_focal`` below:

- channel-first ``[B, C, H, W]``; ``to_onehot_y`` turns a ``[B, 1, H, W]`` label map into one-hot channels;
  ``include_background=False`` drops channel 0 of input and target (for softmax, *before* the softmax);
- sigmoid by default (every channel an independent binary focal loss, α on the positive: focalkit's
  ``sigmoid_focal_loss``); ``use_softmax=True``: the per-class form ``−Σ_c α_c q_c (1−p_c)^γ log p_c``
  (focalkit's ``softmax_focal_loss`` with probability targets); a scalar α there means ``[1−α, α, …]``;
- a per-class α *sequence* with sigmoid weights only the positives of class c (focalkit's sigmoid α is a
  scalar, so the adapter passes it as ``sample_weight = where(y == 1, α_c, 1)`` with ``alpha=None``);
- ``weight``: a scalar or one value per channel multiplying that channel's loss (``sample_weight`` along dim 1;
  focalkit's ``class_weight`` for softmax);
- ``"mean"``: the mean over all elements *including the class axis* (``normalizer = numel``: for softmax the
  class sum divided by ``C`` × pixels); ``"sum"``: the mean over the spatial axes, summed over batch and class
  (``normalizer = H·W``); ``"none"``: the ``[B, C, H, W]`` map (sigmoid only here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import focalkit as fk

monai = pytest.importorskip("monai")
from monai.losses import FocalLoss  # noqa: E402


def _along_dim1(vector, ndim):
    return vector.reshape(1, -1, *([1] * (ndim - 2)))


def monai_focal(input, target, *, include_background=True, to_onehot_y=False, gamma=2.0, alpha=None, weight=None,
                reduction="mean", use_softmax=False):
    """``monai.losses.FocalLoss(...)(input, target)``, computed by focalkit."""
    n_pred_ch = input.shape[1]
    if to_onehot_y and n_pred_ch > 1:
        target = F.one_hot(target[:, 0].long(), n_pred_ch).movedim(-1, 1)
    if not include_background and n_pred_ch > 1:
        input, target = input[:, 1:], target[:, 1:]
    input, target = input.float(), target.float()
    num_classes = input.shape[1]
    spatial = int(np.prod(input.shape[2:]))
    if reduction == "mean":
        reduce = {"reduction": "mean", "normalizer": input.numel()}
    elif reduction == "sum":
        reduce = {"reduction": "mean", "normalizer": spatial}
    else:  # "none", or a bad value for focalkit to reject
        reduce = {"reduction": reduction}
    w = None if weight is None else torch.as_tensor(weight, dtype=input.dtype)
    if use_softmax:
        if alpha is not None and not isinstance(alpha, list | tuple):
            alpha = None if not include_background else [1 - alpha] + [alpha] * (num_classes - 1)
        a = None if alpha is None else torch.tensor(alpha, dtype=input.dtype)
        if w is not None and w.ndim == 0:
            w = w.expand(num_classes)
        return fk.softmax_focal_loss(input, target, alpha=a, gamma=gamma, class_weight=w, **reduce)
    factors = []
    if isinstance(alpha, list | tuple):
        positives = _along_dim1(torch.tensor(alpha, dtype=input.dtype), input.dim())
        factors.append(torch.where(target == 1, positives, torch.ones(())))
        alpha = None
    if w is not None:
        factors.append(w if w.ndim == 0 else _along_dim1(w, input.dim()))
    sample_weight = None
    for factor in factors:
        sample_weight = factor if sample_weight is None else sample_weight * factor
    return fk.sigmoid_focal_loss(input, target, alpha=alpha, gamma=gamma, sample_weight=sample_weight, **reduce)


def assert_almost_equal(a, b, places=7):
    """unittest's assertAlmostEqual."""
    assert round(abs(a - b), places) == 0, f"{a} != {b} within {places} places"


# --------------------------------------------------------------------------------------------------------------
# test_result: the peer's golden numbers
# --------------------------------------------------------------------------------------------------------------

INPUT = torch.tensor([[[[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]]]])  # (1, 3, 2, 2)
TARGET = torch.tensor([[[[0, 1], [2, 0]]]])  # (1, 1, 2, 2)
TARGET_ONEHOT = F.one_hot(TARGET.squeeze(1)).permute(0, 3, 1, 2)  # (1, 3, 2, 2)

TEST_CASES = [
    ({"to_onehot_y": True}, TARGET, 0.34959),
    ({"to_onehot_y": False}, TARGET_ONEHOT, 0.34959),
    ({"to_onehot_y": True, "include_background": False}, TARGET, 0.36498),
    ({"to_onehot_y": True, "alpha": 0.8}, TARGET, 0.08423),
    (
        {"to_onehot_y": True, "reduction": "none"},
        TARGET,
        np.array([[
            [[0.02266, 0.70187], [0.37741, 0.17329]],
            [[0.70187, 0.02266], [0.37741, 0.17329]],
            [[0.70187, 0.70187], [0.06757, 0.17329]],
        ]]),
    ),
    (
        {"to_onehot_y": True, "weight": torch.tensor([0.5, 0.1, 0.2]), "reduction": "none"},
        TARGET,
        np.array([[
            [[0.01133, 0.35093], [0.18871, 0.08664]],
            [[0.07019, 0.00227], [0.03774, 0.01733]],
            [[0.14037, 0.14037], [0.01352, 0.03466]],
        ]]),
    ),
    ({"to_onehot_y": True, "use_softmax": True}, TARGET, 0.16276),
    ({"to_onehot_y": True, "alpha": 0.8, "use_softmax": True}, TARGET, 0.08138),
]


@pytest.mark.parametrize(("input_param", "target", "expected_val"), TEST_CASES)
def test_result(input_param, target, expected_val):
    result = monai_focal(INPUT, target, **input_param)
    np.testing.assert_allclose(result.detach().cpu().numpy(), expected_val, atol=1e-4, rtol=1e-4)
    reference = FocalLoss(**input_param)(INPUT, target)
    np.testing.assert_allclose(result.detach().numpy(), reference.detach().numpy(), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------------------------
# γ = 0 is BCE (sigmoid form)
# --------------------------------------------------------------------------------------------------------------

CLASS_NUM, BATCH_SIZE, ROUNDS = 10, 128, 100


def test_consistency_with_cross_entropy_2d():
    ce = nn.BCEWithLogitsLoss(reduction="mean")
    max_error = 0
    for _ in range(ROUNDS):
        x = torch.rand(BATCH_SIZE, CLASS_NUM, 8, 4, requires_grad=True)
        l = torch.randint(low=0, high=2, size=(BATCH_SIZE, CLASS_NUM, 8, 4)).float()
        a = float(monai_focal(x, l, to_onehot_y=False, gamma=0.0, reduction="mean", weight=1.0).detach())
        b = float(ce(x, l).detach())
        max_error = max(max_error, abs(a - b))
    assert_almost_equal(max_error, 0.0, places=3)


def test_consistency_with_cross_entropy_2d_no_reduction():
    ce = nn.BCEWithLogitsLoss(reduction="none")
    max_error = 0
    for _ in range(ROUNDS):
        x = torch.rand(BATCH_SIZE, CLASS_NUM, 8, 4, requires_grad=True)
        l = torch.randint(low=0, high=2, size=(BATCH_SIZE, CLASS_NUM, 8, 4)).float()
        a = monai_focal(x, l, to_onehot_y=False, gamma=0.0, reduction="none", weight=1.0).detach().numpy()
        b = ce(x, l).detach().numpy()
        max_error = np.maximum(np.abs(a - b), max_error)
    assert np.allclose(max_error, 0, atol=1e-6)


def test_consistency_with_cross_entropy_2d_onehot_label():
    ce = nn.BCEWithLogitsLoss(reduction="mean")
    max_error = 0
    for _ in range(ROUNDS):
        x = torch.rand(BATCH_SIZE, CLASS_NUM, 8, 4, requires_grad=True)
        l = torch.randint(low=0, high=CLASS_NUM, size=(BATCH_SIZE, 1, 8, 4))
        a = float(monai_focal(x, l, to_onehot_y=True, gamma=0.0, reduction="mean").detach())
        b = float(ce(x, F.one_hot(l[:, 0], CLASS_NUM).movedim(-1, 1).float()).detach())
        max_error = max(max_error, abs(a - b))
    assert_almost_equal(max_error, 0.0, places=3)


def test_consistency_with_cross_entropy_classification():
    ce = nn.BCEWithLogitsLoss(reduction="mean")
    max_error = 0
    for _ in range(ROUNDS):
        x = torch.rand(BATCH_SIZE, CLASS_NUM, requires_grad=True)
        l = torch.randint(low=0, high=CLASS_NUM, size=(BATCH_SIZE, 1)).long()
        a = float(monai_focal(x, l, to_onehot_y=True, gamma=0.0, reduction="mean").detach())
        b = float(ce(x, F.one_hot(l[:, 0], CLASS_NUM).float()).detach())
        max_error = max(max_error, abs(a - b))
    assert_almost_equal(max_error, 0.0, places=3)


def test_consistency_with_cross_entropy_classification_01():
    # for gamma=0.1 the focal loss differs from the cross entropy loss
    ce = nn.BCEWithLogitsLoss(reduction="mean")
    max_error = 0
    for _ in range(ROUNDS):
        x = torch.rand(BATCH_SIZE, CLASS_NUM, requires_grad=True)
        l = torch.randint(low=0, high=CLASS_NUM, size=(BATCH_SIZE, 1)).long()
        a = float(monai_focal(x, l, to_onehot_y=True, gamma=0.1, reduction="mean").detach())
        b = float(ce(x, F.one_hot(l[:, 0], CLASS_NUM).float()).detach())
        max_error = max(max_error, abs(a - b))
    assert round(abs(max_error - 0.0), 3) != 0


# --------------------------------------------------------------------------------------------------------------
# (nearly) perfect predictions give (nearly) zero loss
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_softmax", [True, False])
def test_bin_seg_2d(use_softmax):
    target = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]).unsqueeze(0)  # (1, H, W)
    pred_very_good = 100 * F.one_hot(target, num_classes=2).permute(0, 3, 1, 2).float() - 50.0
    target = target.unsqueeze(1)  # (1, 1, H, W)
    good = float(monai_focal(pred_very_good, target, to_onehot_y=True, use_softmax=use_softmax))
    assert_almost_equal(good, 0.0, places=3)
    good = float(monai_focal(pred_very_good, target, to_onehot_y=True, alpha=0.5, use_softmax=use_softmax))
    assert_almost_equal(good, 0.0, places=3)


@pytest.mark.parametrize("use_softmax", [True, False])
def test_empty_class_2d(use_softmax):
    target = torch.zeros(4, 4, dtype=torch.int64).unsqueeze(0)  # (1, H, W), class 1 empty
    pred_very_good = 1000 * F.one_hot(target, num_classes=2).permute(0, 3, 1, 2).float() - 500.0
    target = target.unsqueeze(1)
    good = float(monai_focal(pred_very_good, target, to_onehot_y=True, use_softmax=use_softmax))
    assert_almost_equal(good, 0.0, places=3)
    good = float(monai_focal(pred_very_good, target, to_onehot_y=True, alpha=0.5, use_softmax=use_softmax))
    assert_almost_equal(good, 0.0, places=3)


@pytest.mark.parametrize("use_softmax", [True, False])
def test_multi_class_seg_2d(use_softmax):
    num_classes = 6
    target = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]]).unsqueeze(0)
    pred_very_good = 1000 * F.one_hot(target, num_classes=num_classes).permute(0, 3, 1, 2).float() - 500.0
    target_one_hot = F.one_hot(target, num_classes=num_classes).permute(0, 3, 1, 2)
    target = target.unsqueeze(1)
    for alpha in (None, 0.5):
        good = float(monai_focal(pred_very_good, target, to_onehot_y=True, alpha=alpha, use_softmax=use_softmax))
        assert_almost_equal(good, 0.0, places=3)
        good = float(monai_focal(pred_very_good, target_one_hot, alpha=alpha, use_softmax=use_softmax))
        assert_almost_equal(good, 0.0, places=3)


@pytest.mark.parametrize("use_softmax", [True, False])
def test_bin_seg_3d(use_softmax):
    num_classes = 2
    plane = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    target = torch.tensor([plane, plane, plane]).unsqueeze(0)  # (1, H, W, D)
    target_one_hot = F.one_hot(target, num_classes=num_classes).permute(0, 4, 1, 2, 3)
    pred_very_good = 1000 * F.one_hot(target, num_classes=num_classes).permute(0, 4, 1, 2, 3).float() - 500.0
    target = target.unsqueeze(1)
    for alpha in (None, 0.5):
        good = float(monai_focal(pred_very_good, target, to_onehot_y=True, alpha=alpha, use_softmax=use_softmax))
        assert_almost_equal(good, 0.0, places=3)
        good = float(monai_focal(pred_very_good, target_one_hot, alpha=alpha, use_softmax=use_softmax))
        assert_almost_equal(good, 0.0, places=3)


def test_foreground():
    background = torch.ones(1, 1, 5, 5)
    foreground = torch.zeros(1, 1, 5, 5)
    target = torch.cat((background, foreground), dim=1)
    input = torch.cat((background, foreground), dim=1)
    target[:, 0, 2, 2] = 0
    target[:, 1, 2, 2] = 1
    fgbg = monai_focal(input, target, to_onehot_y=False, include_background=True)
    fg = monai_focal(input, target, to_onehot_y=False, include_background=False)
    assert_almost_equal(float(fgbg), 0.1116, places=3)
    assert_almost_equal(float(fg), 0.1733, places=3)


# --------------------------------------------------------------------------------------------------------------
# bad options and inputs
# --------------------------------------------------------------------------------------------------------------


def test_ill_opts():
    chn_input = torch.ones((1, 2, 3))
    chn_target = torch.ones((1, 2, 3))
    # MONAI's tests match the empty regex (any message); focalkit's messages name the argument
    with pytest.raises(ValueError, match="reduction"):
        monai_focal(chn_input, chn_target, reduction="unknown")
    with pytest.raises(ValueError, match="reduction"):
        fk.SigmoidFocalLoss(reduction="unknown")


def test_ill_shape():
    chn_input = torch.ones((1, 2, 3))
    chn_target = torch.ones((1, 3))
    with pytest.raises(ValueError, match="same shape"):
        monai_focal(chn_input, chn_target, reduction="mean")


def test_ill_class_weight():
    chn_input = torch.ones((1, 4, 3, 3))
    chn_target = torch.ones((1, 4, 3, 3))
    with pytest.raises(ValueError, match="sample_weight must broadcast"):
        monai_focal(chn_input, chn_target, include_background=True, weight=(1.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="sample_weight must broadcast"):
        monai_focal(chn_input, chn_target, include_background=False, weight=(1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=">= 0"):
        monai_focal(chn_input, chn_target, include_background=False, weight=(1.0, 1.0, -1.0))


def test_warnings():
    pytest.skip("MONAI's warnings concern its own to_onehot_y / include_background options on one-channel input "
                "and a scalar alpha dropped by softmax without background: they live in MONAI's wrapper (here the "
                "adapter), not in a loss focalkit computes")


def test_script():
    pytest.skip("focalkit's functions take keyword-only arguments, which TorchScript cannot compile; "
                "focalkit's compiled path is torch.compile (README 'Opt-in compiled path')")


# --------------------------------------------------------------------------------------------------------------
# test_alpha_sequence_broadcasting, one case per part
# --------------------------------------------------------------------------------------------------------------

ALPHA_SEQ = [0.1, 0.5, 2.0]


def _alpha_inputs():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 1, 4, 4))
    return logits, target


@pytest.mark.xfail(
    strict=True,
    raises=ValueError,
    reason="focalkit's per-class α must lie in [0, 1] (softmax_focal_loss docstring, 'one value in [0, 1] per "
    "class'); MONAI's test passes α = [0.1, 0.5, 2.0]",
)
def test_alpha_sequence_broadcasting_softmax():
    logits, target = _alpha_inputs()
    loss_soft = monai_focal(logits, target, to_onehot_y=True, gamma=2.0, alpha=ALPHA_SEQ, use_softmax=True)
    assert torch.is_tensor(loss_soft)
    assert loss_soft.ndim == 0
    assert loss_soft > 0, "Softmax loss should be positive"


def test_alpha_sequence_broadcasting_sigmoid():
    logits, target = _alpha_inputs()
    loss_sig = monai_focal(logits, target, to_onehot_y=True, gamma=2.0, alpha=ALPHA_SEQ, use_softmax=False)
    assert torch.is_tensor(loss_sig)
    assert loss_sig.ndim == 0
    assert loss_sig > 0, "Sigmoid loss should be positive"
    reference = FocalLoss(to_onehot_y=True, gamma=2.0, alpha=ALPHA_SEQ, use_softmax=False)(logits, target)
    np.testing.assert_allclose(loss_sig.numpy(), reference.numpy(), atol=1e-4, rtol=1e-4)


def test_alpha_sequence_broadcasting_wrong_length():
    logits, target = _alpha_inputs()
    # MONAI: ValueError "The length of alpha (2) must match ..."; focalkit: "... alpha must have one value per class"
    with pytest.raises(ValueError, match="alpha must have one value per class"):
        monai_focal(logits, target, to_onehot_y=True, alpha=[0.1, 0.5], use_softmax=True)


# --------------------------------------------------------------------------------------------------------------
# not in the peer's file: the adapter itself against the installed MONAI, over the options the cases above use
# --------------------------------------------------------------------------------------------------------------


# softmax has no [B, C, H, W] map in the adapter (focalkit sums the classes), and MONAI drops a scalar alpha
# with a warning for softmax without background: those combinations are left out
ADAPTER_CASES = [
    (reduction, use_softmax, include_background, alpha, weight)
    for reduction in ("mean", "sum", "none")
    for use_softmax in (False, True)
    for include_background in (True, False)
    for alpha in (None, 0.3)
    for weight in (None, 2.0)
    if not (use_softmax and reduction == "none") and not (use_softmax and alpha is not None and not include_background)
]


@pytest.mark.parametrize(("reduction", "use_softmax", "include_background", "alpha", "weight"), ADAPTER_CASES)
def test_adapter_matches_installed_monai(reduction, use_softmax, include_background, alpha, weight):
    logits = torch.randn(2, 4, 3, 5)
    target = torch.randint(0, 4, (2, 1, 3, 5))
    options = {"to_onehot_y": True, "include_background": include_background, "alpha": alpha, "weight": weight,
               "reduction": reduction, "use_softmax": use_softmax}
    reference = FocalLoss(**options)(logits, target)
    np.testing.assert_allclose(monai_focal(logits, target, **options).numpy(), reference.numpy(), atol=1e-5,
                               rtol=1e-5)
