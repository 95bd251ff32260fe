"""Adaptive-γ focal loss (issue 13; Mukhoti et al. 2020, FLSD-53): a float64 transcription of the authors'
``FocalLossAdaptive`` (torrvision/focal_calibration ``Losses/focal_loss_adaptive_gamma.py``, commit
8239b9b2453b44f1d950143b7f8d3cce845c0cdf) as the oracle, the sigmoid form written plainly, identities,
gradients and bad inputs. (The generic suites run both forms through every kernel via ``tests/cases.py``.)

The authors' code picks γ per sample from ``p_t`` without gradient: 5 below 0.2, 3 in [0.2, 0.5), and the
module's ``gamma`` (3 for FLSD-53) from 0.5 up; it sums. focalkit's ``gamma=3, gamma_hard=5`` is that rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import focalkit as fk


def authors_focal_loss_adaptive(logits, target, gamma=3.0):
    """``FocalLossAdaptive(gamma=3).forward`` in float64: the per-sample γ list, then ``Σ −(1−p_t)^γ log p_t``."""
    if logits.dim() > 2:
        logits = logits.reshape(logits.size(0), logits.size(1), -1).transpose(1, 2).reshape(-1, logits.size(1))
    target = target.reshape(-1, 1)
    logpt = F.log_softmax(logits, dim=1).gather(1, target).reshape(-1)
    pt = logpt.exp()
    gammas = []
    for value in pt.tolist():
        if value >= 0.5:
            gammas.append(gamma)
        else:
            gammas.append(5.0 if value < 0.2 else 3.0)
    g = torch.tensor(gammas, dtype=torch.float64)
    return (-1 * (1 - pt) ** g * logpt).sum()


def _away_from_the_threshold(x, p_t, thr=0.2, gap=1e-3):
    assert bool(((p_t - thr).abs() > gap).all()), "test data too close to the threshold for a finite difference"


@pytest.mark.parametrize("shape", [(64, 5), (4, 3, 5, 6)])
def test_softmax_matches_the_authors_code(shape, agree):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 2.5
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    xr, xo = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = fk.softmax_focal_loss(xr, t, gamma=3.0, gamma_hard=5.0, reduction="sum")
    theirs = authors_focal_loss_adaptive(xo, t)
    ours.backward()
    theirs.backward()
    agree("adaptive focal: authors' FocalLossAdaptive (float64)", ours, theirs, rtol=1e-12, atol=1e-12)
    agree("adaptive focal: authors' FocalLossAdaptive gradient", xr.grad, xo.grad, rtol=1e-10, atol=1e-13)
    p_t = torch.softmax(x, 1).gather(1, t.unsqueeze(1))
    assert bool((p_t < 0.2).any())  # both pieces exercised
    assert bool((p_t >= 0.2).any())


def test_softmax_probability_targets_take_gamma_per_class_term():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64) * 2
    q = torch.softmax(torch.randn(40, 4, generator=g, dtype=torch.float64), 1)
    p = torch.softmax(x, 1)
    gamma = torch.where(p < 0.2, 5.0, 3.0)
    expected = (-(q * (1 - p) ** gamma * torch.log_softmax(x, 1)).sum(1)).mean()
    torch.testing.assert_close(fk.softmax_focal_loss(x, q, gamma=3.0, gamma_hard=5.0), expected, rtol=1e-12,
                               atol=1e-14)
    onehot = F.one_hot(torch.randint(0, 4, (40,), generator=g), 4).double()
    torch.testing.assert_close(fk.softmax_focal_loss(x, onehot, gamma=3.0, gamma_hard=5.0),
                               fk.softmax_focal_loss(x, onehot.argmax(1), gamma=3.0, gamma_hard=5.0))


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_sigmoid_matches_the_formula(alpha, agree):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(50, 6, generator=g) < 0.3).double()
    p = torch.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    gamma = torch.where(p_t < 0.25, 4.0, 1.5)
    a_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    expected = a_t * (1 - p_t) ** gamma * F.binary_cross_entropy_with_logits(x, y, reduction="none")
    out = fk.sigmoid_focal_loss(x, y, alpha=alpha, gamma=1.5, gamma_hard=4.0, hard_threshold=0.25, reduction="none")
    agree("adaptive focal: sigmoid formula (float64)", out, expected, rtol=1e-12, atol=1e-15)


def test_identities():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(30, 4, generator=g) < 0.3).double()
    t = torch.randint(0, 4, (30,), generator=g)
    for gamma in (0.0, 2.0, 2.5):
        torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, gamma=gamma, gamma_hard=gamma),
                                   fk.sigmoid_focal_loss(x, y, gamma=gamma), rtol=1e-15, atol=0)
        torch.testing.assert_close(fk.softmax_focal_loss(x, t, gamma=gamma, gamma_hard=gamma),
                                   fk.softmax_focal_loss(x, t, gamma=gamma), rtol=1e-15, atol=0)
    # every p_t below a threshold near 1: the loss is focal loss with gamma_hard
    torch.testing.assert_close(fk.softmax_focal_loss(x, t, gamma=0.0, gamma_hard=2.0, hard_threshold=1 - 1e-15),
                               fk.softmax_focal_loss(x, t, gamma=2.0), rtol=1e-14, atol=0)
    # gamma_hard=0 with gamma=0 is cross-entropy
    torch.testing.assert_close(fk.softmax_focal_loss(x, t, gamma=0.0, gamma_hard=0.0), fk.cross_entropy(x, t),
                               rtol=1e-14, atol=0)


def test_gradients():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64) * 2
    y = (torch.rand(12, 3, generator=g) < 0.4).double()
    t = torch.randint(0, 3, (12,), generator=g)
    p = torch.sigmoid(x)
    _away_from_the_threshold(x, p * y + (1 - p) * (1 - y))
    _away_from_the_threshold(x, torch.softmax(x, 1).gather(1, t[:, None]))
    xr = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: fk.sigmoid_focal_loss(a, y, gamma=3.0, gamma_hard=5.0), (xr,))
    assert torch.autograd.gradgradcheck(lambda a: fk.sigmoid_focal_loss(a, y, gamma=0.5, gamma_hard=5.0), (xr,))
    assert torch.autograd.gradcheck(lambda a: fk.softmax_focal_loss(a, t, gamma=3.0, gamma_hard=5.0), (xr,))
    q = torch.softmax(torch.randn(12, 3, generator=g, dtype=torch.float64), 1)
    assert torch.autograd.gradcheck(lambda a: fk.softmax_focal_loss(a, q, gamma=3.0, gamma_hard=5.0), (xr,))


def test_finite_at_huge_logits():
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], requires_grad=True)
    for loss in (fk.softmax_focal_loss(x, torch.tensor([1, 1]), gamma=3.0, gamma_hard=5.0),
                 fk.sigmoid_focal_loss(x, torch.tensor([[1.0, 0, 1], [1, 0, 0]]), gamma=0.5, gamma_hard=5.0)):
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"gamma_hard": -1.0}, ValueError, "gamma_hard"),
    ({"gamma_hard": "5"}, TypeError, "gamma_hard"),
    ({"gamma_hard": 5.0, "hard_threshold": 0.0}, ValueError, "hard_threshold"),
    ({"gamma_hard": 5.0, "hard_threshold": 1.0}, ValueError, r"hard_threshold must be in \(0, 1\)"),
])
def test_bad_options(kwargs, error, match):
    x, y = torch.zeros(2, 3), torch.zeros(2, 3)
    for call in (lambda: fk.sigmoid_focal_loss(x, y, **kwargs),
                 lambda: fk.softmax_focal_loss(x, y.long()[:, 0], **kwargs),
                 lambda: fk.SigmoidFocalLoss(**kwargs), lambda: fk.SoftmaxFocalLoss(**kwargs)):
        with pytest.raises(error, match=match):
            call()


def test_modules_and_training():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    loss_fn = fk.SoftmaxFocalLoss(gamma=3.0, gamma_hard=5.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, t = torch.randn(256, 8), torch.randint(0, 4, (256,))
    t[x[:, 0] > 0.5] = 3
    first = None
    for _ in range(30):
        loss = loss_fn(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first
    torch.testing.assert_close(loss_fn(model(x), t), fk.softmax_focal_loss(model(x), t, gamma=3.0, gamma_hard=5.0))


def test_boosting_objectives_stay_finite_at_huge_margins():
    from focalkit import gbm

    raw = np.array([800.0, -800.0, 40.0, -3.0, 0.0])
    labels = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    for gamma in (0.0, 0.5, 1.0):
        _, grad, hess = gbm.focal_objective(gamma=gamma, gamma_hard=5.0).terms(raw, labels, order=2)
        assert np.isfinite(grad).all()
        assert np.isfinite(hess).all()
        _, grad, hess = gbm.focal_objective(gamma=gamma).terms(raw, labels, order=2)  # a fixed γ < 2 too
        assert np.isfinite(hess).all()
    scores = np.array([[800.0, 0.0, -800.0], [0.0, 1.0, 2.0], [300.0, 0.0, 0.0]])
    for gamma, gamma_hard in ((0.0, 2.0), (0.5, None), (0.5, 5.0), (1.5, None)):
        objective = gbm.softmax_focal_objective(3, gamma=gamma, gamma_hard=gamma_hard)
        _, grad, hess = objective.terms(scores, np.array([0.0, 1.0, 0.0]), order=2)
        assert np.isfinite(grad).all()
        assert np.isfinite(hess).all()
