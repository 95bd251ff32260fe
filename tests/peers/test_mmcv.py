"""mmcv's focal-loss op tests, ported to focalkit.

Ported from open-mmlab/mmcv ``tests/test_ops/test_focal_loss.py`` at commit
a8073c74bf83d62ec36a103f835faa4837fb6585, with mmcv's conventions read from ``mmcv/ops/focal_loss.py`` and its
kernels (``mmcv/ops/csrc/common/cuda/{sigmoid,softmax}_focal_loss_cuda_kernel.cuh``) at the same commit. mmcv
cannot be installed here: its inputs and golden outputs (loss and gradient, ``np.allclose(..., 1e-2)``, i.e.
rtol 1e-2) are kept. At that commit the peer runs its softmax tests only with CUDA (they return early without
it) and its sigmoid tests only on NPU / CUDA / MLU / MUSA devices; the golden numbers do not depend on the
device, and focalkit runs them on the CPU, in float32 and (``*_half``) float16.

mmcv's conventions, mapped by the two adapters below:

- both take logits ``(N, C)`` and integer class ids ``(N,)``;
- ``sigmoid_focal_loss``: each of the ``C`` classes is a binary focal loss against the one-hot of the label (a
  label equal to ``C`` is background: all negatives), α on the positive, 1−α on the negatives: focalkit's
  ``sigmoid_focal_loss`` on that one-hot;
- ``softmax_focal_loss``: ``−α (1−p_t)^γ log p_t`` with the same scalar α for every class: focalkit's
  ``softmax_focal_loss`` with scalar α;
- ``"mean"`` divides the sum by ``N``, the number of rows (not by ``N·C``, nor by the weights):
  ``normalizer=N``; ``weight[label]`` multiplies a row's loss (``sample_weight`` / ``class_weight``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import focalkit as fk

inputs = [
    ([[1., 0], [0, 1.]], [0, 1]),
    ([[1., 0, -1.], [0, 1., 2.]], [2, 1]),
    ([[1e-6, 2e-6, 3e-6], [4e-6, 5e-5, 6e-4], [7e-3, 8e-2, 9e-1]], [1, 2, 0]),
]

softmax_outputs = [
    (0.00566451, [[-0.00657264, 0.00657264], [0.00657264, -0.00657264]]),
    (0.34956908, [[0.10165970, 0.03739851, -0.13905823], [0.01227554, -0.10298023, 0.09070466]]),
    (0.15754992, [[0.02590877, -0.05181759, 0.02590882],
                  [0.02589641, 0.02589760, -0.05179400],
                  [-0.07307514, 0.02234372, 0.05073142]]),
]

sigmoid_outputs = [
    (0.13562961, [[-0.00657264, 0.11185755], [0.11185755, -0.00657264]]),
    (1.10251057, [[0.28808805, 0.11185755, -0.09602935], [0.11185755, -0.00657264, 0.40376765]]),
    (0.42287254, [[0.07457182, -0.02485716, 0.07457201],
                  [0.07457211, 0.07457669, -0.02483728],
                  [-0.02462499, 0.08277918, 0.18050370]]),
]

ALPHA, GAMMA = 0.25, 2.0


def _reduce(reduction, n):
    return {"reduction": "mean", "normalizer": n} if reduction == "mean" else {"reduction": reduction}


def mmcv_sigmoid_focal_loss(x, y, gamma=2.0, alpha=0.25, weight=None, reduction="mean"):
    """``mmcv.ops.sigmoid_focal_loss(x, y, gamma, alpha, weight, reduction)`` through focalkit."""
    num_classes = x.shape[1]
    onehot = F.one_hot(y, num_classes + 1)[:, :num_classes].to(x.dtype)  # label C: background, all negatives
    sample_weight = None if weight is None else weight[y].unsqueeze(1)
    return fk.sigmoid_focal_loss(x, onehot, alpha=alpha, gamma=gamma, sample_weight=sample_weight,
                                 **_reduce(reduction, x.shape[0]))


def mmcv_softmax_focal_loss(x, y, gamma=2.0, alpha=0.25, weight=None, reduction="mean"):
    """``mmcv.ops.softmax_focal_loss(x, y, gamma, alpha, weight, reduction)`` through focalkit."""
    return fk.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma, class_weight=weight, **_reduce(reduction, x.shape[0]))


def _check(loss_fn, dtype, case, output):
    x = torch.from_numpy(np.array(case[0])).type(dtype)
    x.requires_grad_()
    y = torch.from_numpy(np.array(case[1])).long()
    loss = loss_fn(x, y, GAMMA, ALPHA, None, "mean")
    loss.backward()
    assert np.allclose(loss.data.cpu().float().numpy(), output[0], 1e-2)
    assert np.allclose(x.grad.data.cpu().float(), np.array(output[1]), 1e-2)


@pytest.mark.parametrize(("case", "output"), list(zip(inputs, softmax_outputs, strict=True)), ids=["2x2", "2x3", "3x3"])
def test_softmax_float(case, output):
    _check(mmcv_softmax_focal_loss, torch.float, case, output)


@pytest.mark.parametrize(("case", "output"), list(zip(inputs, softmax_outputs, strict=True)), ids=["2x2", "2x3", "3x3"])
def test_softmax_half(case, output):
    _check(mmcv_softmax_focal_loss, torch.half, case, output)


@pytest.mark.parametrize(("case", "output"), list(zip(inputs, sigmoid_outputs, strict=True)), ids=["2x2", "2x3", "3x3"])
def test_sigmoid_float(case, output):
    _check(mmcv_sigmoid_focal_loss, torch.float, case, output)


@pytest.mark.parametrize(("case", "output"), list(zip(inputs, sigmoid_outputs, strict=True)), ids=["2x2", "2x3", "3x3"])
def test_sigmoid_half(case, output):
    _check(mmcv_sigmoid_focal_loss, torch.half, case, output)


# the peer runs gradcheck on float32 inputs (eps=1e-2, atol=1e-2); torch warns that float32 is imprecise for it
_FLOAT32_GRADCHECK = pytest.mark.filterwarnings("ignore:Input #0 requires gradient and is not a double:UserWarning")


@_FLOAT32_GRADCHECK
@pytest.mark.parametrize("case", inputs, ids=["2x2", "2x3", "3x3"])
def test_grad_softmax_float(case):
    x = torch.from_numpy(np.array(case[0])).type(torch.float)
    x.requires_grad_()
    y = torch.from_numpy(np.array(case[1])).long()
    floss = fk.SoftmaxFocalLoss(gamma=GAMMA, alpha=ALPHA)  # mean over rows, as mmcv's module
    assert gradcheck(floss, (x, y), eps=1e-2, atol=1e-2)


@_FLOAT32_GRADCHECK
@pytest.mark.parametrize("case", inputs, ids=["2x2", "2x3", "3x3"])
def test_grad_sigmoid_float(case):
    x = torch.from_numpy(np.array(case[0])).type(torch.float)
    x.requires_grad_()
    y = torch.from_numpy(np.array(case[1])).long()
    floss = fk.SigmoidFocalLoss(gamma=GAMMA, alpha=ALPHA)
    onehot = F.one_hot(y, x.shape[1]).float()
    assert gradcheck(lambda z: floss(z, onehot, normalizer=z.shape[0]), (x,), eps=1e-2, atol=1e-2)
