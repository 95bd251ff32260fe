"""Region losses (issue 13): Dice, Tversky, focal Tversky and Dice + focal against the formulas written plainly
in float64, identities between them, gradients, precision and stability, bad inputs and the modules.
(MONAI's own tests, ported, and the installed MONAI are in ``tests/peers/test_monai_dice.py``.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import focalkit as fk


def plain(x, y, *, activation="sigmoid", w=None, alpha=0.5, beta=0.5, gamma=1.0, s_n=1e-5, s_d=1e-5, bg=True,
          batch=False, cw=None, dice=False):
    """The papers' formulas on probabilities, in float64, one tensor op per symbol. ``y`` is dense (the
    logits' shape); ``w`` broadcasts to it."""
    x, y = x.double(), y.double()
    p = torch.sigmoid(x) if activation == "sigmoid" else torch.softmax(x, 1)
    w = torch.ones_like(p) if w is None else w.double().expand_as(p)
    if not bg:
        p, y, w = p[:, 1:], y[:, 1:], w[:, 1:]
    axes = ([0] if batch else []) + list(range(2, x.ndim))
    tp = (w * p * y).sum(axes)
    if dice:
        loss = 1 - (2 * tp + s_n) / ((w * p).sum(axes) + (w * y).sum(axes) + s_d)
    else:
        fp = (w * p * (1 - y)).sum(axes)
        fn = (w * (1 - p) * y).sum(axes)
        loss = (1 - (tp + s_n) / (tp + alpha * fp + beta * fn + s_d)) ** gamma
    if cw is not None:
        loss = loss * cw
    return loss


def _data(seed=0, shape=(3, 4, 5, 6), scale=2.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    ids = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    soft = torch.rand(*shape, generator=g, dtype=torch.float64)
    w = torch.rand(shape[0], 1, *shape[2:], generator=g, dtype=torch.float64)
    return x, ids, soft, w


LOSSES = {
    "dice": (fk.dice_loss, {}, {"dice": True}),
    "tversky": (fk.tversky_loss, {"alpha": 0.2, "beta": 0.9}, {"alpha": 0.2, "beta": 0.9}),
    "focal_tversky": (fk.focal_tversky_loss, {}, {"alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
    "focal_tversky[γ=2]": (fk.focal_tversky_loss, {"gamma": 2.0, "alpha": 0.6, "beta": 0.4},
                           {"gamma": 2.0, "alpha": 0.6, "beta": 0.4}),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
@pytest.mark.parametrize(("bg", "batch", "weighted"),
                         [(True, False, False), (False, False, True), (True, True, True), (False, True, False)])
def test_matches_the_plain_formulas(name, activation, bg, batch, weighted, agree):
    fn, options, formula = LOSSES[name]
    x, ids, soft, w = _data()
    onehot = F.one_hot(ids, 4).movedim(-1, 1).double()
    target = soft if activation == "sigmoid" else ids
    dense = soft if activation == "sigmoid" else onehot
    cw = torch.tensor([0.5, 2.0, 1.0, 3.0][(0 if bg else 1):], dtype=torch.float64)
    sw = None
    if weighted:
        sw = w.expand_as(x) if activation == "sigmoid" else w[:, 0]
    for reduction in ("none", "mean", "sum"):
        out = fn(x, target, activation=activation, include_background=bg, batch=batch, class_weight=cw,
                 sample_weight=sw, reduction=reduction, smooth_nr=1e-4, smooth_dr=3e-4, **options)
        ref = plain(x, dense, activation=activation, w=w if weighted else None, bg=bg, batch=batch, cw=cw,
                    s_n=1e-4, s_d=3e-4, **formula)
        ref = {"none": ref, "mean": ref.mean(), "sum": ref.sum()}[reduction]
        agree("region losses: plain float64 formulas", out, ref, rtol=1e-12, atol=1e-14)


def test_a_weight_broadcast_from_trailing_axes():
    x, ids, soft, w = _data()
    hw = w[0, 0]  # (H, W)
    torch.testing.assert_close(fk.dice_loss(x, soft, sample_weight=hw),
                               fk.dice_loss(x, soft, sample_weight=hw.expand_as(x)))
    torch.testing.assert_close(fk.dice_loss(x, ids, activation="softmax", sample_weight=hw),
                               fk.dice_loss(x, ids, activation="softmax", sample_weight=hw.expand_as(ids)))
    per_class = torch.tensor([1.0, 0.0, 2.0, 1.0], dtype=torch.float64).view(1, 4, 1, 1)
    torch.testing.assert_close(fk.dice_loss(x, soft, sample_weight=per_class, include_background=False),
                               fk.dice_loss(x, soft, sample_weight=per_class.expand_as(x), include_background=False))


# ------------------------------------------------------------------------------------------ identities


def test_tversky_at_one_half_is_dice_with_doubled_smoothing():
    x, ids, soft, _ = _data(1)
    for act, t in (("sigmoid", soft), ("softmax", ids)):
        dice = fk.dice_loss(x, t, activation=act, smooth_nr=2e-3, smooth_dr=4e-3, reduction="none")
        tv = fk.tversky_loss(x, t, activation=act, alpha=0.5, beta=0.5, smooth_nr=1e-3, smooth_dr=2e-3,
                             reduction="none")
        assert torch.equal(dice, tv)


def test_tversky_at_one_is_jaccard():
    x, _, soft, _ = _data(2)
    p = torch.sigmoid(x)
    tp, union = (p * soft).sum((2, 3)), (p + soft - p * soft).sum((2, 3))
    jaccard = 1 - (tp + 1e-5) / (union + 1e-5)
    torch.testing.assert_close(fk.tversky_loss(x, soft, alpha=1.0, beta=1.0, reduction="none"), jaccard,
                               rtol=1e-12, atol=1e-14)


def test_focal_tversky_at_gamma_one_is_tversky():
    x, ids, _, _ = _data(3)
    torch.testing.assert_close(fk.focal_tversky_loss(x, ids, activation="softmax", gamma=1.0),
                               fk.tversky_loss(x, ids, activation="softmax", alpha=0.3, beta=0.7), rtol=0, atol=0)


def test_dice_focal_is_its_two_terms():
    x, ids, soft, w = _data(4)
    onehot = (soft > 0.5).double()
    only_dice = fk.dice_focal_loss(x, onehot, lambda_focal=0.0)
    torch.testing.assert_close(only_dice, fk.dice_loss(x, onehot), rtol=0, atol=0)
    only_focal = fk.dice_focal_loss(x, onehot, lambda_dice=0.0, gamma=1.5, alpha=0.25)
    torch.testing.assert_close(only_focal, fk.sigmoid_focal_loss(x, onehot, gamma=1.5, alpha=0.25))
    softmax_focal = fk.dice_focal_loss(x, ids, activation="softmax", lambda_dice=0.0, sample_weight=w[:, 0])
    # the focal mean counts the positions; weights scale it
    expected = (fk.softmax_focal_loss(x, ids, reduction="none", alpha=None) * w[:, 0]).mean()
    torch.testing.assert_close(softmax_focal, expected)
    no_bg = fk.dice_focal_loss(x, ids, activation="softmax", lambda_dice=0.0, include_background=False)
    expected = (fk.softmax_focal_loss(x, ids, reduction="none", alpha=None) * (ids != 0)).mean()
    torch.testing.assert_close(no_bg, expected)


def test_class_ids_one_hot_and_label_map_agree():
    x, ids, _, w = _data(5)
    onehot = F.one_hot(ids, 4).movedim(-1, 1).double()
    for fn in (fk.dice_loss, fk.tversky_loss, fk.focal_tversky_loss, fk.dice_focal_loss):
        a = fn(x, ids, activation="softmax", sample_weight=w[:, 0])
        torch.testing.assert_close(fn(x, onehot, activation="softmax", sample_weight=w[:, 0]), a)
        torch.testing.assert_close(fn(x, ids[:, None], activation="softmax", sample_weight=w[:, 0]), a)


def test_ignored_positions_are_zero_weight_positions():
    x, ids, soft, _ = _data(6)
    ignored = ids.clone()
    ignored[:, :2] = 255
    keep = (ignored != 255).double()
    for fn in (fk.dice_loss, fk.tversky_loss, fk.focal_tversky_loss):
        torch.testing.assert_close(fn(x, ignored, activation="softmax", ignore_index=255),
                                   fn(x, ids, activation="softmax", sample_weight=keep))
    # the focal term's mean counts the valid positions only (a zero weight still counts)
    torch.testing.assert_close(fk.dice_focal_loss(x, ignored, activation="softmax", ignore_index=255),
                               fk.dice_loss(x, ignored, activation="softmax", ignore_index=255)
                               + fk.softmax_focal_loss(x, ignored, alpha=None, ignore_index=255))
    # a probability target summing to 0 adds nothing, as an ignored id
    dense = F.one_hot(ids, 4).movedim(-1, 1).double() * keep[:, None]
    torch.testing.assert_close(fk.dice_loss(x, dense, activation="softmax"),
                               fk.dice_loss(x, ignored, activation="softmax", ignore_index=255))
    # sigmoid: per element
    y = (soft > 0.5).double()
    y_ign = y.clone()
    y_ign[0, 1, 2:] = 255
    torch.testing.assert_close(fk.dice_loss(x, y_ign, ignore_index=255),
                               fk.dice_loss(x, y, sample_weight=(y_ign != 255).double()))


def test_the_default_softmax_ignore_index_is_minus_100():
    x, ids, _, _ = _data(7)
    ignored = ids.clone()
    ignored[0, 0] = -100
    torch.testing.assert_close(fk.dice_loss(x, ignored, activation="softmax"),
                               fk.dice_loss(x, ignored, activation="softmax", ignore_index=-100))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 30.0), s=st.floats(1e-7, 10.0),
       ratio=st.floats(0.0, 1.0), alpha=st.floats(0.0, 2.0), beta=st.floats(0.01, 2.0))
def test_in_the_unit_interval_and_blind_to_the_order_of_positions(seed, scale, s, ratio, alpha, beta):
    x, ids, soft, _ = _data(seed, shape=(2, 3, 4, 5), scale=scale)
    for fn, t in ((fk.dice_loss, soft), (fk.tversky_loss, ids)):
        options = {} if fn is fk.dice_loss else {"alpha": alpha, "beta": beta, "activation": "softmax"}
        loss = fn(x, t, smooth_nr=s * ratio, smooth_dr=s, reduction="none", **options)
        assert bool(((loss >= 0) & (loss <= 1)).all())
        perm = torch.randperm(20, generator=torch.Generator().manual_seed(seed))
        xp = x.flatten(2)[..., perm].reshape(x.shape)
        tp = t.flatten(t.ndim - 2)[..., perm].reshape(t.shape)
        torch.testing.assert_close(fn(xp, tp, smooth_nr=s * ratio, smooth_dr=s, reduction="none", **options), loss,
                                   rtol=1e-12, atol=1e-14)


def test_an_empty_class_predicted_empty_scores_zero():
    x = torch.full((1, 2, 3, 3), -30.0)
    y = torch.zeros(1, 2, 3, 3)
    y[0, 0] = 1.0
    x[0, 0] = 30.0
    loss = fk.dice_loss(x, y, reduction="none")
    assert loss[0, 1] < 1e-6
    assert loss[0, 0] < 1e-6
    torch.testing.assert_close(fk.dice_loss(x, y, smooth_nr=0.0, smooth_dr=1e-5, reduction="none")[0, 1],
                               torch.tensor(1.0), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------ gradients


GRAD_CASES = [
    (fk.dice_loss, "sigmoid", {}),
    (fk.dice_loss, "softmax", {"include_background": False}),
    (fk.tversky_loss, "sigmoid", {"alpha": 0.2, "beta": 0.9, "batch": True}),
    (fk.tversky_loss, "softmax", {"alpha": 0.7, "beta": 0.3}),
    (fk.focal_tversky_loss, "sigmoid", {}),
    (fk.focal_tversky_loss, "softmax", {"gamma": 1.5, "batch": True}),
    (fk.dice_focal_loss, "sigmoid", {"alpha": 0.25}),
    (fk.dice_focal_loss, "softmax", {"include_background": False}),
]


@pytest.mark.parametrize(("fn", "activation", "options"), GRAD_CASES,
                         ids=[f"{f.__name__}-{a}-{i}" for i, (f, a, _) in enumerate(GRAD_CASES)])
def test_gradcheck(fn, activation, options):
    x, ids, soft, w = _data(8, shape=(2, 3, 3, 2))
    target = soft if activation == "sigmoid" else ids
    sw = w.expand_as(x).clone() if activation == "sigmoid" else w[:, 0].clone()
    xr, swr = x.clone().requires_grad_(True), sw.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, target, activation=activation, sample_weight=b, **options),
                                    (xr, swr))
    if activation == "sigmoid":  # soft targets get gradients too
        tr = soft.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t: fn(x, t, activation=activation, **options), (tr,))
    if fn is not fk.dice_focal_loss:
        assert torch.autograd.gradgradcheck(lambda a: fn(a, target, activation=activation, reduction="none",
                                                         **options), (xr,))


def test_ignored_positions_get_no_gradient():
    x, ids, _, _ = _data(9)
    ids[:, :, :2] = 7
    xr = x.clone().requires_grad_(True)
    fk.focal_tversky_loss(xr, ids, activation="softmax", ignore_index=7).backward()
    assert torch.all(xr.grad[:, :, :, :2] == 0)
    assert torch.all(xr.grad[:, :, :, 2:] != 0)


@pytest.mark.parametrize("fn", [fk.dice_loss, fk.tversky_loss, fk.focal_tversky_loss, fk.dice_focal_loss])
@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_finite_at_huge_logits_and_exact_when_perfect(fn, activation):
    g = torch.Generator().manual_seed(10)
    ids = torch.randint(0, 3, (2, 4, 4), generator=g)
    onehot = F.one_hot(ids, 3).movedim(-1, 1).float()
    for sign in (1.0, -1.0):
        x = (sign * 1e4 * (2 * onehot - 1)).requires_grad_(True)
        target = onehot if activation == "sigmoid" else ids
        loss = fn(x, target, activation=activation)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(x.grad).all()
        if sign > 0:  # a perfect prediction: 0, with a gradient of exactly 0 even where γ < 1
            assert loss.item() == 0.0
            assert torch.all(x.grad == 0)
        else:
            assert loss.item() > 0.99


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_near_perfect_keeps_its_digits_in_float32(activation):
    # 1 − ratio would round a loss of ~1e-9 to 0 (or noise) in float32; the fp/fn form keeps it
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(0, 3, (2, 6, 6), generator=g)
    onehot = F.one_hot(ids, 3).movedim(-1, 1).double()
    x = 18.0 * (2 * onehot - 1) + torch.rand(onehot.shape, generator=g, dtype=torch.float64)
    target = onehot if activation == "sigmoid" else ids
    for fn, formula in ((fk.dice_loss, {"dice": True}), (fk.tversky_loss, {"alpha": 0.3, "beta": 0.7})):
        ref = plain(x, onehot, activation=activation, s_n=0.0, **formula).mean()
        assert 1e-10 < float(ref) < 1e-6
        options = {k: v for k, v in formula.items() if k != "dice"}
        out = fn(x.float(), target.float() if activation == "sigmoid" else target, activation=activation,
                 smooth_nr=0.0, **options)
        torch.testing.assert_close(out.double(), ref, rtol=2e-5, atol=0)


def test_autocast_bfloat16_gives_a_float32_loss():
    x, ids, soft, _ = _data(12)
    xb = x.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fk.dice_focal_loss(xb, ids, activation="softmax")
    assert loss.dtype == torch.float32
    loss.backward()
    assert xb.grad.dtype == torch.bfloat16
    assert torch.isfinite(xb.grad.float()).all()
    torch.testing.assert_close(loss, fk.dice_focal_loss(xb.detach().float(), ids, activation="softmax"))
    assert fk.dice_loss(xb.detach(), soft.to(torch.bfloat16)).dtype == torch.bfloat16  # outside autocast


def test_empty_batch_gives_zero():
    x = torch.zeros(0, 3, 4, 4, requires_grad=True)
    loss = fk.dice_loss(x, torch.zeros(0, 4, 4, dtype=torch.long), activation="softmax")
    assert loss.item() == 0.0
    loss.backward()


def test_torch_compile_and_func_agree_with_eager():
    x, ids, soft, _ = _data(13)
    compiled = torch.compile(fk.tversky_loss, backend="aot_eager", fullgraph=False)
    torch.testing.assert_close(compiled(x, ids, activation="softmax", alpha=0.3, beta=0.7),
                               fk.tversky_loss(x, ids, activation="softmax", alpha=0.3, beta=0.7))
    grad = torch.func.grad(lambda a: fk.focal_tversky_loss(a, soft))(x)
    xr = x.clone().requires_grad_(True)
    fk.focal_tversky_loss(xr, soft).backward()
    torch.testing.assert_close(grad, xr.grad)


def test_rows_with_batch_true_are_a_soft_f1_per_class():
    g = torch.Generator().manual_seed(14)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = (torch.rand(40, 5, generator=g) < 0.2).double()
    p = torch.sigmoid(x)
    f1 = (2 * (p * y).sum(0) + 1e-5) / (p.sum(0) + y.sum(0) + 1e-5)
    torch.testing.assert_close(fk.dice_loss(x, y, batch=True, reduction="none"), 1 - f1, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda x, y, i: fk.dice_loss(x, y, activation="relu"), ValueError, "activation must be 'sigmoid' or 'softmax'"),
    (lambda x, y, i: fk.dice_loss(x, y, smooth_dr=0.0), ValueError, "smooth_dr"),
    (lambda x, y, i: fk.dice_loss(x, y, smooth_nr=-1.0), ValueError, "smooth_nr"),
    (lambda x, y, i: fk.dice_loss(x, y, smooth_nr=1.0, smooth_dr=0.1), ValueError, "smooth_nr must be <= smooth_dr"),
    (lambda x, y, i: fk.tversky_loss(x, y, alpha=0.0, beta=0.0), ValueError, "alpha and beta must not both be 0"),
    (lambda x, y, i: fk.tversky_loss(x, y, alpha=-0.1), ValueError, "alpha"),
    (lambda x, y, i: fk.focal_tversky_loss(x, y, gamma=0.0), ValueError, "gamma"),
    (lambda x, y, i: fk.dice_loss(x, y, batch=1), TypeError, "batch must be True or False"),
    (lambda x, y, i: fk.dice_loss(x, y, include_background="no"), TypeError, "include_background"),
    (lambda x, y, i: fk.dice_loss(x, y, class_weight=[1.0, 2.0]), ValueError, r"one value per class scored \(3\)"),
    (lambda x, y, i: fk.dice_loss(x, y, include_background=False, class_weight=[1.0, 2.0, 3.0]), ValueError,
     r"\(2 \(class 0 left out"),
    (lambda x, y, i: fk.dice_loss(x, y, class_weight=[1.0, -2.0, 1.0]), ValueError, "class_weight"),
    (lambda x, y, i: fk.dice_loss(x, y, normalizer="valid"), ValueError, "normalizer must be a number"),
    (lambda x, y, i: fk.dice_loss(x, y, normalizer=2.0, reduction="sum"), ValueError, "normalizer"),
    (lambda x, y, i: fk.dice_loss(x, y * 3), ValueError, r"target must be in \[0, 1\]"),
    (lambda x, y, i: fk.dice_loss(x, i + 5, activation="softmax"), ValueError, r"target must be in \[0, 3\)"),
    (lambda x, y, i: fk.dice_loss(x, i.float(), activation="softmax"), TypeError, "class-id target must be an integer"),
    (lambda x, y, i: fk.dice_loss(x[:, :, 0, 0], y[:, :, 0, 0]), ValueError, "no spatial axes"),
    (lambda x, y, i: fk.dice_loss(x[0, 0, 0], y[0, 0, 0]), ValueError, r"\(B, C, \*spatial\)"),
    (lambda x, y, i: fk.dice_loss(x, y, sample_weight=-torch.ones(2, 3, 4, 4)), ValueError, "sample_weight"),
    (lambda x, y, i: fk.dice_loss(x * float("nan"), y), ValueError, "logits must be finite"),
    (lambda x, y, i: fk.dice_focal_loss(x, y, reduction="sum"), ValueError, "reduction must be 'mean'"),
    (lambda x, y, i: fk.dice_focal_loss(x, y, lambda_focal=-1.0), ValueError, "lambda_focal"),
    (lambda x, y, i: fk.dice_focal_loss(x, y, gamma=-1.0), ValueError, "gamma"),
    (lambda x, y, i: fk.dice_loss(x, y, reduction="none", sync=True), ValueError, "sync has no effect"),
])
def test_bad_inputs_name_the_argument(call, error, match):
    g = torch.Generator().manual_seed(15)
    x = torch.randn(2, 3, 4, 4, generator=g)
    y = (torch.rand(2, 3, 4, 4, generator=g) < 0.5).float()
    ids = torch.randint(0, 3, (2, 4, 4), generator=g)
    with pytest.raises(error, match=match):
        call(x, y, ids)


# ------------------------------------------------------------------------------------------ modules


@pytest.mark.parametrize(("module", "fn", "options"), [
    (fk.DiceLoss, fk.dice_loss, {"activation": "softmax", "include_background": False}),
    (fk.TverskyLoss, fk.tversky_loss, {"alpha": 0.3, "beta": 0.7, "batch": True}),
    (fk.FocalTverskyLoss, fk.focal_tversky_loss, {"gamma": 1.3, "activation": "softmax", "ignore_index": 2}),
    (fk.DiceFocalLoss, fk.dice_focal_loss, {"activation": "softmax", "alpha": [0.2, 0.3, 0.5], "lambda_dice": 0.5}),
])
def test_modules_are_their_functions(module, fn, options):
    x, ids, soft, _ = _data(16, shape=(2, 3, 4, 4))
    target = ids if options.get("activation") == "softmax" else soft
    cw = torch.tensor([1.0, 2.0] if options.get("include_background") is False else [1.0, 2.0, 0.5])
    m = module(class_weight=cw, **options).double()
    expected = fn(x, target, class_weight=cw.double(), **options)
    torch.testing.assert_close(m(x, target), expected)
    assert "class_weight" in m.state_dict()
    assert "class_weight=" in repr(m)
    if module is not fk.DiceFocalLoss:
        torch.testing.assert_close(module(reduction="none", **options)(x, target),
                                   fn(x, target, reduction="none", **options))


def test_module_options_are_checked_at_construction():
    with pytest.raises(ValueError, match="DiceLoss: activation"):
        fk.DiceLoss(activation="tanh")
    with pytest.raises(ValueError, match="TverskyLoss: smooth_dr"):
        fk.TverskyLoss(smooth_dr=0.0)
    with pytest.raises(ValueError, match="FocalTverskyLoss: gamma"):
        fk.FocalTverskyLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="sync has no effect"):
        fk.DiceLoss(reduction="none", sync=True)
    fk.DiceLoss(reduction="none", batch=True, sync=True)  # whole-batch scores: sync matters per class
