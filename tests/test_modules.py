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


@pytest.mark.parametrize("case", [c for c in ALL if c.module is not fk.GHMCLoss], ids=str)  # GHM-C: distributed
def test_module_passes_sync_to_the_function(case, monkeypatch):
    """``sync=`` reaches the call (SigmoidHardTruncationLoss dropped it: its loss was each rank's own)."""
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return torch.zeros(())

    monkeypatch.setattr(case.module, "_function", staticmethod(spy))
    x, y = _data(case)
    case.module(sync=True, **case.options)(x, y)
    assert seen["sync"] is True


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


def _ghmc_steps(checkpointed, *, use_reentrant=False, steps=3):
    """Three training steps of a two-head model whose heads share one GHMCLoss (momentum): the loss of each
    head inside ``torch.utils.checkpoint`` (``checkpointed`` lists which), as large detection models wrap
    whole blocks, heads included."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    body = torch.nn.Linear(6, 5).double()
    heads = [torch.nn.Linear(5, 5).double() for _ in range(2)]
    loss_fn = fk.GHMCLoss(bins=6, momentum=0.75)
    x, y = 3 * torch.randn(64, 6, dtype=torch.float64), (torch.rand(64, 5) < 0.3).double()
    params = [*body.parameters(), *(p for h in heads for p in h.parameters())]
    grads, losses = [], []
    for step in range(steps):
        for p in params:
            p.grad = None
        feature = body(x + 0.5 * step)
        total = 0.0
        for head, wrapped in zip(heads, checkpointed, strict=True):
            def block(f, head=head):
                return loss_fn(3 * head(f), y)

            total = total + (checkpoint(block, feature, use_reentrant=use_reentrant) if wrapped else block(feature))
        total.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in params]))
        losses.append(total.detach())
    return torch.stack(grads), torch.stack(losses), loss_fn.running_counts.clone()


@pytest.mark.parametrize("use_reentrant", [False, True])
@pytest.mark.parametrize("checkpointed", [(True, True), (True, False), (False, True)])
def test_ghmc_running_counts_under_activation_checkpointing_are_exact(checkpointed, use_reentrant):
    """The recompute in backward forms β from the counts its first forward used and updates nothing: the
    gradients, the losses and the state equal a run without checkpointing (before: the recompute used the
    already updated counts, 43 % of the largest gradient off; reentrant mode also counted twice)."""
    grads, losses, counts = _ghmc_steps((False, False))
    got_grads, got_losses, got_counts = _ghmc_steps(checkpointed, use_reentrant=use_reentrant)
    torch.testing.assert_close(got_grads, grads, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(got_losses, losses, rtol=1e-13, atol=0)
    torch.testing.assert_close(got_counts, counts, rtol=0, atol=0)
    assert counts.sum() > 0


def test_ghmc_a_recompute_it_did_not_record_is_refused():
    from torch.utils.checkpoint import checkpoint

    loss_fn = fk.GHMCLoss(bins=4, momentum=0.5)
    x = torch.randn(20, 3, requires_grad=True)
    y = (torch.rand(20, 3) < 0.5).float()
    loss = checkpoint(lambda a: loss_fn(a * 2.0, y), x, use_reentrant=False)
    loss_fn._running.clear()  # as after more than RunningCounts.KEEP other training forwards
    with pytest.raises(RuntimeError, match=r"GHMCLoss: a forward recomputed during backward .* matches none"):
        loss.backward()


def test_ghmc_running_counts_stay_float32_through_model_half():
    """``model.half()`` casts floating buffers: in float16 a bin of more than 65,504 elements was ``inf``, β 0
    and the gradient silently 0 (0.0 against 2.18e-7)."""
    model = torch.nn.Module()
    model.loss = fk.GHMCLoss(momentum=0.75)
    reference = fk.GHMCLoss(momentum=0.75)
    model.half()
    assert model.loss.running_counts.dtype == torch.float32
    torch.manual_seed(0)
    x = (0.01 * torch.randn(400_000)).half()
    y = torch.zeros(400_000, dtype=torch.float16)
    for _ in range(2):
        xh = x.clone().requires_grad_(True)
        model.loss(xh, y).backward()
        xf = x.float().requires_grad_(True)
        reference(xf, y.float()).backward()
    assert torch.isfinite(model.loss.running_counts).all()
    torch.testing.assert_close(model.loss.running_counts, reference.running_counts)
    assert xh.grad.abs().max() > 0
    torch.testing.assert_close(xh.grad.float(), xf.grad, rtol=1e-3, atol=6e-8)  # float16 subnormals: steps of 6e-8
    model.bfloat16()
    model.double()
    assert model.loss.running_counts.dtype == torch.float32
    assert model.loss.state_dict()["running_counts"].dtype == torch.float32


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
