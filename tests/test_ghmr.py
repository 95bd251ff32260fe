"""GHM-R (issue 13): a float64 transcription of mmdetection's ``GHMR`` (``mmdet/models/losses/ghm_loss.py``,
commit 080742cb2311f5815a08ea7e7a49bb768f828ecc) as the oracle, with its running counts over calls;
identities, gradients, precision for small and huge differences, and bad inputs.

The transcription keeps the peer's conventions: bin edges ``arange(bins + 1) / bins`` with the top one at
1e3, ``g = |d| / √(d² + μ²)`` without gradient, ``tot = max(Σ label_weight, 1)``, each non-empty bin's
elements weighted ``tot / count`` (``tot / acc_sum[bin]`` with momentum, ``acc_sum ← m·acc_sum + (1−m)·count``
for the non-empty bins), all divided by the number of non-empty bins, and ``Σ weights · ASL1 / tot``.
Its ``label_weight`` marks elements valid (> 0) and does not multiply the loss: the adapter passes
``sample_weight = (label_weight > 0)``.
"""

from __future__ import annotations

import pytest
import torch

import focalkit as fk


class MmdetGHMR:
    """mmdetection's ``GHMR.forward``, written again in float64."""

    def __init__(self, mu=0.02, bins=10, momentum=0.0):
        self.mu, self.bins, self.momentum = mu, bins, momentum
        self.edges = torch.arange(bins + 1, dtype=torch.float64) / bins
        self.edges[-1] = 1e3
        self.acc_sum = torch.zeros(bins, dtype=torch.float64)

    def __call__(self, pred, target, label_weight, avg_factor=None):
        mu = self.mu
        diff = pred - target
        loss = torch.sqrt(diff * diff + mu * mu) - mu
        g = torch.abs(diff / torch.sqrt(mu * mu + diff * diff)).detach()
        weights = torch.zeros_like(g)
        valid = label_weight > 0
        tot = max(label_weight.double().sum().item(), 1.0)
        n = 0
        for i in range(self.bins):
            inds = (g >= self.edges[i]) & (g < self.edges[i + 1]) & valid
            num_in_bin = inds.sum().item()
            if num_in_bin > 0:
                n += 1
                if self.momentum > 0:
                    self.acc_sum[i] = self.momentum * self.acc_sum[i] + (1 - self.momentum) * num_in_bin
                    weights[inds] = tot / self.acc_sum[i]
                else:
                    weights[inds] = tot / num_in_bin
        if n > 0:
            weights /= n
        return (loss * weights).sum() / tot


def _boxes(n=64, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 4, generator=g, dtype=torch.float64) * scale
    target = torch.randn(n, 4, generator=g, dtype=torch.float64) * scale
    label_weight = (torch.rand(n, 1, generator=g) < 0.7).double().expand(n, 4)
    return pred, target, label_weight


@pytest.mark.parametrize(("mu", "bins"), [(0.02, 10), (0.02, 30), (0.1, 5), (0.5, 1)])
def test_matches_mmdetection(mu, bins):
    pred, target, lw = _boxes()
    p1, p2 = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    got = fk.ghmr_loss(p1, target, mu=mu, bins=bins, sample_weight=lw > 0)
    want = MmdetGHMR(mu, bins)(p2, target, lw)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    (g1,), (g2,) = torch.autograd.grad(got, p1), torch.autograd.grad(want, p2)
    torch.testing.assert_close(g1, g2, rtol=1e-11, atol=1e-15)


def test_float32_matches_mmdetection():
    pred, target, lw = _boxes(seed=1)
    got = fk.ghmr_loss(pred.float(), target.float(), sample_weight=(lw > 0).float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), MmdetGHMR()(pred, target, lw), rtol=2e-6, atol=0)


@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_running_counts_over_calls_match_mmdetection(momentum):
    oracle = MmdetGHMR(momentum=momentum)
    module = fk.GHMRLoss(momentum=momentum)
    for step in range(4):
        pred, target, lw = _boxes(seed=10 + step, scale=0.2 + 0.2 * step)
        # the running counts are float32 (as mmdetection's acc_sum): agreement to float32's rounding
        torch.testing.assert_close(module(pred, target, sample_weight=lw > 0), oracle(pred, target, lw),
                                   rtol=1e-6, atol=0)
    torch.testing.assert_close(module.running_counts.double(), oracle.acc_sum, rtol=1e-6, atol=0)
    module.eval()  # evaluation reads the counts and leaves them
    before = module.running_counts.clone()
    module(*_boxes(seed=99)[:2])
    assert torch.equal(before, module.running_counts)


def test_module_matches_function_and_keeps_state():
    pred, target, lw = _boxes(seed=2)
    m = fk.GHMRLoss(mu=0.05, bins=20, reduction="sum")
    torch.testing.assert_close(m(pred, target, lw), fk.ghmr_loss(pred, target, mu=0.05, bins=20, sample_weight=lw,
                                                                  reduction="sum"))
    assert "running_counts" in m.state_dict()
    assert m.half().running_counts.dtype == torch.float32
    assert "mu=0.05" in repr(m)


def test_identities_and_reductions():
    pred, target, _ = _boxes(seed=3)
    d = pred - target
    asl1 = torch.sqrt(d * d + 0.02**2) - 0.02
    torch.testing.assert_close(fk.ghmr_loss(pred, target, bins=1, reduction="none"), asl1)  # one bin: ASL1
    per = fk.ghmr_loss(pred, target, reduction="none")
    torch.testing.assert_close(fk.ghmr_loss(pred, target, reduction="sum"), per.sum())
    torch.testing.assert_close(fk.ghmr_loss(pred, target), per.mean())
    torch.testing.assert_close(fk.ghmr_loss(pred, target, normalizer=7.0), per.sum() / 7.0)
    torch.testing.assert_close(fk.ghmr_loss(pred, target, normalizer="valid"), per.mean())
    # the paper's normalisation divides by all bins instead of the non-empty ones: a constant factor
    g = (d.abs() / torch.sqrt(d * d + 0.02**2)).reshape(-1)
    nonempty = torch.unique(torch.clamp((g * 10).floor(), max=9)).numel()
    torch.testing.assert_close(fk.ghmr_loss(pred, target, bin_normalization="all"),
                               fk.ghmr_loss(pred, target) * nonempty / 10)


def test_weights_scale_the_loss_and_zero_removes_from_histogram():
    pred, target, _ = _boxes(seed=4)
    w = torch.rand(pred.shape[0], 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.5
    w[:5] = 0
    keep = slice(5, None)
    per = fk.ghmr_loss(pred, target, sample_weight=w, reduction="none")
    assert per[:5].abs().max() == 0
    torch.testing.assert_close(per[keep], w[keep] * fk.ghmr_loss(pred[keep], target[keep], reduction="none"))
    torch.testing.assert_close(fk.ghmr_loss(pred, target, sample_weight=w), per.sum() / w.expand_as(pred).sum())


def test_gradcheck_pred_target_and_weight():
    pred, target, _ = _boxes(n=6, seed=5)
    w = torch.rand(6, 4, dtype=torch.float64) + 0.1
    args = tuple(t.clone().requires_grad_(True) for t in (pred, target, w))
    # β is a constant of the bins: keep g away from the bins' edges for finite differences
    assert torch.autograd.gradcheck(lambda p, t, c: fk.ghmr_loss(p, t, sample_weight=c, bins=3), args)
    assert torch.autograd.gradgradcheck(lambda p: fk.ghmr_loss(p, target, bins=1), (args[0],))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_precision_for_small_and_huge_differences(dtype):
    """``√(d² + μ²) − μ`` loses every digit for ``|d| ≪ μ`` (float32: below about 1e-5) and ``d²`` overflows
    float32 beyond 1.8e19; the loss and its gradient stay exact there."""
    d = torch.tensor([1e-6, -3e-4, 1e-2, 1.0, -1e4, 1e30], dtype=torch.float64)
    d = d[:5] if dtype == torch.bfloat16 else d
    pred = d.to(dtype).requires_grad_(True)
    loss = fk.ghmr_loss(pred, torch.zeros_like(pred), bins=1, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), pred)
    dd = pred.detach().double()
    want = dd * dd / (torch.sqrt(dd * dd + 0.02**2) + 0.02)
    want[dd.abs() > 1e20] = dd[dd.abs() > 1e20].abs() - 0.02
    want_grad = dd / torch.sqrt(dd * dd + 0.02**2)
    want_grad[dd.abs() > 1e20] = torch.sign(dd[dd.abs() > 1e20])
    tol = {"rtol": 1e-2, "atol": 0} if dtype == torch.bfloat16 else {"rtol": 1e-6, "atol": 0}
    torch.testing.assert_close(loss.double(), want, **tol)
    torch.testing.assert_close(grad.double(), want_grad, **tol)


def test_empty_and_all_ignored():
    empty = torch.zeros(0, 4)
    assert fk.ghmr_loss(empty, empty).item() == 0
    pred, target, _ = _boxes(n=3)
    zero = torch.zeros(3, 4, dtype=torch.float64)
    assert fk.ghmr_loss(pred, target, sample_weight=zero).item() == 0
    assert MmdetGHMR()(pred, target, zero).item() == 0


def test_under_torch_func_and_compile():
    pred, target, _ = _boxes(n=8, seed=6)
    g = torch.func.grad(lambda p: fk.ghmr_loss(p, target))(pred)
    p = pred.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(fk.ghmr_loss(p, target), p)
    torch.testing.assert_close(g, want)
    compiled = torch.compile(lambda p, t: fk.ghmr_loss(p, t), backend="aot_eager", fullgraph=False)
    torch.testing.assert_close(compiled(pred, target), fk.ghmr_loss(pred, target))


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda p, t: fk.ghmr_loss(p, t, mu=0.0), ValueError, r"ghmr_loss: mu must be in \(0, inf\)"),
    (lambda p, t: fk.ghmr_loss(p, t, bins=0), ValueError, r"ghmr_loss: bins must be >= 1"),
    (lambda p, t: fk.ghmr_loss(p, t, bins=2.5), TypeError, r"ghmr_loss: bins must be an integer"),
    (lambda p, t: fk.ghmr_loss(p, t[:, :2]), ValueError, r"pred and target must have the same shape"),
    (lambda p, t: fk.ghmr_loss(p, t.long()), TypeError, r"target must be a floating-point tensor"),
    (lambda p, t: fk.ghmr_loss(p.long(), t), TypeError, r"pred must be a floating-point tensor"),
    (lambda p, t: fk.ghmr_loss(p, t * float("nan")), ValueError, r"target must be finite"),
    (lambda p, t: fk.ghmr_loss(p * float("inf"), t), ValueError, r"pred must be finite"),
    (lambda p, t: fk.ghmr_loss(p, t, sample_weight=-torch.ones(4, 4)), ValueError, r"sample_weight must be finite"),
    (lambda p, t: fk.ghmr_loss(p, t, normalizer="positives"), ValueError, r"normalizer must be"),
    (lambda p, t: fk.ghmr_loss(p, t, reduction="avg"), ValueError, r"reduction must be one of"),
    (lambda p, t: fk.GHMRLoss(momentum=1.0), ValueError, r"GHMRLoss: momentum must be in \[0, 1\)"),
    (lambda p, t: fk.GHMRLoss(mu=-1), ValueError, r"GHMRLoss: mu must be in"),
])
def test_bad_input(call, error, message):
    pred, target, _ = _boxes(n=4)
    with pytest.raises(error, match=message):
        call(pred, target)


def test_counts_past_float32s_2_to_the_24():
    # a float32 scatter_add stops at 16,777,216; with one bin holding more the weight would drift from 1
    n = 2**24 + 4096
    pred = torch.full((1,), 1e-3).expand(n)  # broadcast views: no memory of their own
    loss = fk.ghmr_loss(pred, torch.zeros(1).expand(n), bins=1)
    mu = 0.02
    expected = (1e-3 * 1e-3) / ((1e-3**2 + mu**2) ** 0.5 + mu)  # ASL1(1e-3) with β = 1
    torch.testing.assert_close(loss.double(), torch.tensor(expected, dtype=torch.float64), rtol=2e-6, atol=0)
