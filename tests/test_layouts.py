"""Every input layout people use agrees with the flattened computation."""

from __future__ import annotations

import pytest
import torch

from .cases import SIGMOID, SOFTMAX

SPATIAL = [(16,), (4, 3), (2, 3, 4, 5), (2, 3, 2, 4, 3)]  # [N], [N,C], [B,C,H,W], [B,C,D,H,W]


@pytest.mark.parametrize("case", SIGMOID, ids=str)
@pytest.mark.parametrize("shape", SPATIAL, ids=str)
def test_sigmoid_layouts_match_flat(case, shape):
    x = torch.randn(shape, dtype=torch.float64)
    y = (torch.rand(shape) > 0.7).double()
    per = case.function(x, y, reduction="none", **case.options)
    assert per.shape == x.shape
    flat = case.function(x.reshape(-1), y.reshape(-1), reduction="none", **case.options)
    torch.testing.assert_close(per.reshape(-1), flat)
    torch.testing.assert_close(case.function(x, y, **case.options), flat.mean())


@pytest.mark.parametrize("case", SOFTMAX, ids=str)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 5), (2, 4, 2, 3, 3)], ids=str)
@pytest.mark.parametrize("probabilities", [False, True])
def test_softmax_layouts_match_flat(case, shape, probabilities):
    x = torch.randn(shape, dtype=torch.float64)
    c = shape[1]
    if probabilities:
        t = torch.softmax(torch.randn(shape, dtype=torch.float64), 1)
        t_flat = t.movedim(1, -1).reshape(-1, c)
    else:
        t = torch.randint(0, c, (shape[0], *shape[2:]))
        t[0] = -100  # some ignored elements too
        t_flat = t.reshape(-1)
    per = case.function(x, t, reduction="none", **case.options)
    assert per.shape == (shape[0], *shape[2:])
    x_flat = x.movedim(1, -1).reshape(-1, c)
    flat = case.function(x_flat, t_flat, reduction="none", **case.options)
    torch.testing.assert_close(per.reshape(-1), flat)
    torch.testing.assert_close(case.function(x, t, **case.options), case.function(x_flat, t_flat, **case.options))


@pytest.mark.parametrize("case", SOFTMAX, ids=str)
def test_sequence_with_padding_mask(case):
    b, steps, c = 3, 7, 5  # a tagger's [B, T, C] output
    x = torch.randn(b, steps, c, dtype=torch.float64)
    tags = torch.randint(0, c, (b, steps))
    lengths = torch.tensor([7, 4, 2])
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    via_class_dim = case.function(x, tags, class_dim=-1, sample_weight=mask, **case.options)
    via_transpose = case.function(x.transpose(1, 2), tags, sample_weight=mask, **case.options)
    torch.testing.assert_close(via_class_dim, via_transpose)
    packed = case.function(x[mask], tags[mask], **case.options)  # the padding dropped by hand
    torch.testing.assert_close(via_class_dim, packed)
    assert case.function(x, tags, class_dim=-1, reduction="none", **case.options).shape == (b, steps)
