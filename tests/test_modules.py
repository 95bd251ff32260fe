"""The nn.Module faces: the same numbers as the functions, options checked at construction,
tensors as buffers, GHM-C state in state_dict."""

from __future__ import annotations

import pytest
import torch

import focalkit as fk

from .cases import ALL


def _data(case):
    if case.family == "sigmoid":
        return torch.randn(6, 4), (torch.rand(6, 4) > 0.5).float()
    return torch.randn(6, 4), torch.randint(0, 4, (6,))


@pytest.mark.parametrize("case", ALL, ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_module_equals_function(case, reduction):
    x, y = _data(case)
    w = torch.rand(x.shape if case.family == "sigmoid" else x.shape[:1])
    module = case.module(reduction=reduction, **case.options)
    torch.testing.assert_close(module(x, y, sample_weight=w),
                               case.function(x, y, sample_weight=w, reduction=reduction, **case.options))
    assert "reduction=" in repr(module)


def test_tensors_are_buffers_and_follow_the_module():
    m = fk.SoftmaxFocalLoss(alpha=[0.2, 0.3, 0.5], class_weight=[1.0, 2.0, 3.0])
    names = dict(m.named_buffers())
    assert set(names) == {"alpha", "class_weight"}
    m = m.double()
    assert m.alpha.dtype == torch.float64
    x, t = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 3, (5,))
    torch.testing.assert_close(m(x, t), fk.softmax_focal_loss(x, t, alpha=[0.2, 0.3, 0.5], class_weight=[1.0, 2, 3]))
    b = fk.BinaryCrossEntropyLoss(pos_weight=torch.tensor([1.0, 3.0]))
    assert "pos_weight" in dict(b.named_buffers())


def test_ghmc_running_counts_are_state():
    m = fk.GHMCLoss(bins=5, momentum=0.9)
    assert torch.equal(m.running_counts, torch.zeros(5))
    x, y = torch.randn(40), (torch.rand(40) > 0.5).float()
    m(x, y)
    after_one = m.running_counts.clone()
    assert after_one.sum() > 0
    clone = fk.GHMCLoss(bins=5, momentum=0.9)
    clone.load_state_dict(m.state_dict())
    torch.testing.assert_close(clone(x, y), m(x, y))


def test_ghmc_state_is_frozen_in_eval_mode():
    m = fk.GHMCLoss(bins=5, momentum=0.5)
    x, y = torch.randn(40), (torch.rand(40) > 0.5).float()
    m(x, y)
    before = m.running_counts.clone()
    m.eval()
    m(x * 3, y)
    torch.testing.assert_close(m.running_counts, before)


def test_ghmc_without_momentum_keeps_no_state_and_equals_function():
    m = fk.GHMCLoss(bins=7)
    x, y = torch.randn(40), (torch.rand(40) > 0.5).float()
    torch.testing.assert_close(m(x, y), fk.ghmc_loss(x, y, bins=7))
    assert torch.equal(m.running_counts, torch.zeros(7))


def test_module_trains_a_model():
    torch.manual_seed(0)
    data = torch.randn(256, 4)
    target = (data[:, 0] + 0.5 * data[:, 1] > 1.0).float()
    model = torch.nn.Linear(4, 1)
    loss_fn = fk.SigmoidFocalLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(model(data).squeeze(1), target)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_repr_shows_every_option_the_call_receives():
    """``SoftmaxFocalLoss``'s repr omitted α (and the others their tensors)."""
    assert "alpha=[0.2, 0.8]" in repr(fk.SoftmaxFocalLoss(alpha=[0.2, 0.8]))
    assert "alpha=0.3" in repr(fk.SoftmaxFocalLoss(alpha=0.3))
    assert "pos_weight=[2.0, 3.0]" in repr(fk.BinaryCrossEntropyLoss(pos_weight=torch.tensor([2.0, 3.0])))
    assert "class_weight=[1.0, 2.0]" in repr(fk.CrossEntropyLoss(class_weight=[1, 2]))
    assert "gamma=2.0" in repr(fk.SigmoidFocalLoss())
