"""The running positives normaliser (issue 13): detectron2's EMA of the foreground count, transcribed in
float64 from ``detectron2/modeling/meta_arch/dense_detector.py`` (``DenseDetector._ema_update``, used by
RetinaNet's ``losses``: ``normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 100)`` and
``loss_cls = sigmoid_focal_loss_jit(..., reduction="sum") / normalizer``), over several steps; eval mode,
state_dict, activation checkpointing, ignored and weighted elements, bad options. (Its ``sync`` is in
``tests/test_distributed.py``.)"""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import focalkit as fk


class Detectron2EMA:
    """``_ema_update(name, value, initial_value, momentum=0.9)``: ``old · m + value · (1 − m)``."""

    def __init__(self, initial=100.0, momentum=0.9):
        self.initial, self.momentum, self.state = initial, momentum, None

    def __call__(self, value):
        old = self.initial if self.state is None else self.state
        self.state = old * self.momentum + value * (1 - self.momentum)
        return self.state


def _batches(steps=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for step in range(steps):
        x = torch.randn(2, 300, 4, generator=g, dtype=torch.float64) * 2
        y = (torch.rand(2, 300, 4, generator=g) < 0.01 * (step % 3)).double()  # step 0: no positives at all
        out.append((x, y))
    return out


def test_matches_detectron2_over_steps(agree):
    ours, theirs = fk.RunningPositives(), Detectron2EMA()
    for x, y in _batches():
        normalizer = ours(y)
        expected = theirs(max(int(y.sum().item()), 1))
        agree("running positives: detectron2 _ema_update (float64)", normalizer, expected, rtol=1e-6, atol=0)
        loss = fk.sigmoid_focal_loss(x, y, normalizer=normalizer)
        reference = fk.sigmoid_focal_loss(x, y, reduction="sum") / expected
        agree("running positives: RetinaNet's loss_cls (sum / EMA)", loss, reference, rtol=1e-6, atol=0)


def test_eval_mode_reads_without_updating_and_state_dict_round_trips():
    positives = fk.RunningPositives(momentum=0.5, initial=10.0)
    y = torch.zeros(50)
    y[:6] = 1.0
    assert float(positives(y)) == pytest.approx(8.0)
    positives.eval()
    assert float(positives(y)) == pytest.approx(7.0)
    assert float(positives(y)) == pytest.approx(7.0)
    assert float(positives.value) == pytest.approx(8.0)
    other = fk.RunningPositives(momentum=0.5, initial=10.0)
    other.load_state_dict(positives.state_dict())
    assert float(other.value) == pytest.approx(8.0)
    assert "value=8" in repr(other)


def test_momentum_zero_is_the_batch_count_and_soft_targets_count_their_sum():
    positives = fk.RunningPositives(momentum=0.0)
    q = torch.zeros(3, 10)
    q[0, :3] = torch.tensor([0.9, 0.5, 0.25])  # varifocal's IoU scores
    assert float(positives(q)) == pytest.approx(1.65)
    assert float(positives(torch.zeros(3, 10))) == 1.0  # never below 1


def test_ignored_and_zero_weight_elements_are_not_counted():
    positives = fk.RunningPositives(momentum=0.0, ignore_index=255)
    y = torch.zeros(4, 8)
    y[0, :5] = 1.0
    y[1, :3] = 255.0
    assert float(positives(y)) == 5.0
    w = torch.ones(4, 8)
    w[0, :2] = 0.0
    assert float(positives(y, sample_weight=w)) == 3.0
    assert float(positives(y.long())) == 5.0  # integer targets


def test_activation_checkpointing_updates_once_with_the_same_gradient():
    x, y = _batches(steps=2, seed=1)[1]
    plain, checked = fk.RunningPositives(), fk.RunningPositives()

    def step(module, logits):
        return fk.sigmoid_focal_loss(logits, y, normalizer=module(y))

    xa = x.clone().requires_grad_(True)
    step(plain, xa).backward()
    for use_reentrant in (False, True):
        xb = x.clone().requires_grad_(True)
        checked = fk.RunningPositives()
        checkpoint(step, checked, xb, use_reentrant=use_reentrant).backward()
        torch.testing.assert_close(xb.grad, xa.grad)
        torch.testing.assert_close(checked.value, plain.value)


def test_follows_the_target_device_and_gives_no_gradient():
    y = torch.ones(5, requires_grad=True)
    out = fk.RunningPositives()(y)
    assert not out.requires_grad
    assert out.dtype == torch.float32
    assert out.ndim == 0


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\)"),
    ({"momentum": -0.1}, ValueError, "momentum"),
    ({"initial": 0.0}, ValueError, "initial"),
    ({"ignore_index": 1.5}, TypeError, "ignore_index"),
    ({"sync": "yes"}, TypeError, "sync"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        fk.RunningPositives(**kwargs)


def test_bad_inputs():
    positives = fk.RunningPositives()
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor"):
        positives([1.0, 0.0])
    with pytest.raises(ValueError, match="sample_weight"):
        positives(torch.ones(3), sample_weight=-torch.ones(3))
