"""Invariants that must hold for any input (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

import focalkit as fk

from .cases import ALL, SOFTMAX

floats = st.floats(min_value=-30, max_value=30, allow_nan=False, width=64)


@st.composite
def sigmoid_batch(draw):
    n = draw(st.integers(1, 12))
    x = torch.tensor(draw(st.lists(floats, min_size=n, max_size=n)), dtype=torch.float64)
    y = torch.tensor(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=torch.float64)
    return x, y


@st.composite
def softmax_batch(draw):
    n, c = draw(st.integers(1, 6)), draw(st.integers(2, 5))
    x = torch.tensor(draw(st.lists(floats, min_size=n * c, max_size=n * c)), dtype=torch.float64).reshape(n, c)
    t = torch.tensor(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return x, t


@given(sigmoid_batch(), softmax_batch())
def test_every_loss_is_non_negative_and_finite(sig, soft):
    for case in ALL:
        x, y = sig if case.family == "sigmoid" else soft
        loss = case.function(x, y, reduction="none", **case.options)
        assert torch.isfinite(loss).all()
        assert (loss >= -1e-12).all(), case.name


@given(sigmoid_batch(), st.floats(0, 5), st.one_of(st.none(), st.floats(0, 1)))
def test_sigmoid_focal_is_at_most_cross_entropy(batch, gamma, alpha):
    x, y = batch
    focal = fk.sigmoid_focal_loss(x, y, gamma=gamma, alpha=alpha, reduction="none")
    ce = fk.binary_cross_entropy(x, y, reduction="none")
    assert (focal <= ce + 1e-12).all()


@given(softmax_batch(), st.floats(0, 5))
def test_softmax_focal_is_at_most_cross_entropy(batch, gamma):
    x, t = batch
    focal = fk.softmax_focal_loss(x, t, gamma=gamma, reduction="none")
    assert (focal <= fk.cross_entropy(x, t, reduction="none") + 1e-12).all()


@given(softmax_batch(), st.floats(-50, 50))
def test_softmax_losses_ignore_a_constant_shift(batch, shift):
    x, t = batch
    for case in SOFTMAX:
        if "hard_truncation" in case.name:
            continue  # a shift can move p_t across the threshold by one rounding error
        torch.testing.assert_close(case.function(x + shift, t, reduction="none", **case.options),
                                   case.function(x, t, reduction="none", **case.options), rtol=1e-9, atol=1e-9)


@given(softmax_batch(), st.randoms(use_true_random=False))
def test_permuting_classes_permutes_nothing_else(batch, rnd):
    x, t = batch
    c = x.shape[1]
    perm = list(range(c))
    rnd.shuffle(perm)
    perm_t = torch.tensor(perm)
    inverse = torch.argsort(perm_t)
    alpha = torch.linspace(0.1, 0.9, c, dtype=torch.float64)
    for case in SOFTMAX:
        base = case.function(x, t, reduction="none", **case.options)
        moved = case.function(x[:, perm_t], inverse[t], reduction="none", **case.options)
        torch.testing.assert_close(base, moved)
    torch.testing.assert_close(fk.softmax_focal_loss(x, t, alpha=alpha, reduction="none"),
                               fk.softmax_focal_loss(x[:, perm_t], inverse[t], alpha=alpha[perm_t], reduction="none"))


@given(sigmoid_batch(), st.floats(0, 1))
def test_label_smoothing_is_a_shift_of_the_target(batch, eps):
    x, y = batch
    for fn in (fk.binary_cross_entropy, fk.sigmoid_focal_loss, fk.sigmoid_soft_truncation_loss):
        torch.testing.assert_close(fn(x, y, label_smoothing=eps, reduction="none"),
                                   fn(x, y * (1 - eps) + eps / 2, reduction="none"))
