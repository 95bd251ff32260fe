"""Sharded losses on R gloo ranks (spawned here, each with a timeout) against one process on the
whole batch: the mean of the ranks' losses equals the whole batch's loss, and each rank's gradient
divided by R equals the whole batch's gradient on that rank's shard."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import focalkit as fk

WORLD = 3
SHARDS = [(0, 20), (20, 37), (37, 50)]  # uneven; the last rank gets no positive label


def _data():
    g = torch.Generator().manual_seed(7)
    x_sig = torch.randn(50, 4, generator=g, dtype=torch.float64) * 2
    y_sig = (torch.rand(50, 4, generator=g) < 0.25).double()
    y_sig[37:] = 0.0  # no positives on the last rank
    y_ign = y_sig.clone()
    y_ign[3, 1] = y_ign[25, 0] = 255
    x_soft = torch.randn(50, 5, generator=g, dtype=torch.float64)
    t_soft = torch.randint(0, 5, (50,), generator=g)
    t_soft[5] = t_soft[44] = -100
    w = torch.rand(50, generator=g, dtype=torch.float64)
    return x_sig, y_sig, y_ign, x_soft, t_soft, w


CASES = {
    "focal/positives": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_focal_loss(x, y, normalizer="positives", sync=s),
    "focal/valid+ignore": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_focal_loss(x, yi, ignore_index=255,
                                                                               normalizer="valid", sync=s),
    "bce/mean+weight": lambda x, y, yi, xs, ts, w, s: fk.binary_cross_entropy(x, y, sample_weight=w[:, None],
                                                                             sync=s),
    "soft-trunc/positives": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_soft_truncation_loss(
        x, y, normalizer="positives", sync=s),
    "ghmc/mean": lambda x, y, yi, xs, ts, w, s: fk.ghmc_loss(x, yi, ignore_index=255, bins=7, sync=s),
    "softmax-focal/mean": lambda x, y, yi, xs, ts, w, s: fk.softmax_focal_loss(xs, ts, sync=s),
    "ce/class-weight": lambda x, y, yi, xs, ts, w, s: fk.cross_entropy(xs, ts, class_weight=[1.0, 2.0, 0.5, 1.0, 3.0],
                                                                      sample_weight=w, sync=s),
    "softmax-hard/valid": lambda x, y, yi, xs, ts, w, s: fk.softmax_hard_truncation_loss(xs, ts, normalizer="valid",
                                                                                          sync=s),
    # issue 23: the sum and a given (whole-batch) normaliser, mmdetection's pattern, were 1/R too small
    "focal/sum": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_focal_loss(x, y, reduction="sum", sync=s),
    "focal/number": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_focal_loss(x, y, normalizer=23.0, sync=s),
    "focal/tensor": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_focal_loss(
        x, y, normalizer=torch.tensor(23.0, dtype=torch.float64), sync=s),
    "ghmc/sum": lambda x, y, yi, xs, ts, w, s: fk.ghmc_loss(x, yi, ignore_index=255, bins=7, reduction="sum", sync=s),
    "ghmr/mean+weight": lambda x, y, yi, xs, ts, w, s: fk.ghmr_loss(x * 0.1, y * 0.1, bins=7,
                                                                   sample_weight=w[:, None], sync=s),
    "ghmr/mean": lambda x, y, yi, xs, ts, w, s: fk.ghmr_loss(x * 0.1, y * 0.1, bins=7, sync=s),
    "ghmr/sum": lambda x, y, yi, xs, ts, w, s: fk.ghmr_loss(x * 0.1, y * 0.1, reduction="sum", sync=s),
    "ce/sum": lambda x, y, yi, xs, ts, w, s: fk.cross_entropy(xs, ts, sample_weight=w, reduction="sum", sync=s),
    "softmax-focal/number": lambda x, y, yi, xs, ts, w, s: fk.softmax_focal_loss(xs, ts, normalizer=40.0, sync=s),
    # detectron2's running positives, summed over the ranks: the same state, the whole batch's normaliser
    "focal/running-positives": lambda x, y, yi, xs, ts, w, s: fk.sigmoid_focal_loss(
        x, y, normalizer=fk.RunningPositives(momentum=0.5, initial=4.0, sync=s)(y), sync=s),
    # region losses: per-sample scores averaged over the ranks, or (batch=True) one score of the whole batch
    "dice/mean": lambda x, y, yi, xs, ts, w, s: fk.dice_loss(x.reshape(-1, 2, 2), y.reshape(-1, 2, 2), sync=s),
    "dice/batch": lambda x, y, yi, xs, ts, w, s: fk.dice_loss(x, y, batch=True, sync=s),
    "tversky/batch+weight": lambda x, y, yi, xs, ts, w, s: fk.tversky_loss(
        x, y, alpha=0.3, beta=0.7, batch=True, sample_weight=w[:, None], sync=s),
    "dice-focal/ignore": lambda x, y, yi, xs, ts, w, s: fk.dice_focal_loss(
        x.reshape(-1, 2, 2), yi.reshape(-1, 2, 2), ignore_index=255, sync=s),
    "softmax-dice/batch": lambda x, y, yi, xs, ts, w, s: fk.focal_tversky_loss(xs, ts, activation="softmax",
                                                                             batch=True, sync=s),
}


def _losses_and_grads(shard: slice | None, sync: bool):
    x, y, yi, xs, ts, w = _data()
    out = {}
    for name, fn in CASES.items():
        sl = shard if shard is not None else slice(None)
        xa, xb = x[sl].clone().requires_grad_(True), xs[sl].clone().requires_grad_(True)
        loss = fn(xa, y[sl], yi[sl], xb, ts[sl], w[sl], sync)
        loss.backward()
        grad = xb.grad if name.startswith(("softmax", "ce")) else xa.grad
        out[name] = (loss.detach(), grad)
    return out


def _ghm_steps(shard: slice | None, sync: bool, steps: int = 4):
    module = fk.GHMCLoss(bins=10, momentum=0.75, sync=sync)
    g = torch.Generator().manual_seed(3)
    out = []
    for step in range(steps):
        x = torch.randn(50, 3, generator=g, dtype=torch.float64) * (1 + step)
        y = (torch.rand(50, 3, generator=g) < 0.3).double()
        sl = shard if shard is not None else slice(None)
        xr = x[sl].clone().requires_grad_(True)
        loss = module(xr, y[sl])
        loss.backward()
        out.append((loss.detach(), xr.grad, module.running_counts.clone()))
    return out


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        shard = slice(*SHARDS[rank])
        torch.save({"sync": _losses_and_grads(shard, True), "local": _losses_and_grads(shard, False),
                    "ghm": _ghm_steps(shard, True)}, os.path.join(folder, f"rank{rank}.pt"))
        dist.barrier()  # leave together
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ddp"))
    context = mp.start_processes(_worker, args=(_free_port(), folder), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + 180
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("distributed workers did not finish within 180 s")
    return [torch.load(os.path.join(folder, f"rank{r}.pt"), weights_only=False) for r in range(WORLD)]


GAPS: dict[str, float] = {}


@pytest.mark.parametrize("name", list(CASES))
def test_sharded_equals_single_process(ranks, name, agree):
    whole = _losses_and_grads(None, False)[name]
    losses = torch.stack([r["sync"][name][0] for r in ranks])
    agree("distributed: loss (mean over ranks vs whole batch)", losses.mean(), whole[0], rtol=1e-12, atol=1e-14)
    for rank, (start, stop) in enumerate(SHARDS):
        agree("distributed: gradient / R vs whole batch", ranks[rank]["sync"][name][1] / WORLD,
              whole[1][start:stop], rtol=1e-12, atol=1e-14)


def test_without_sync_each_rank_is_local(ranks):
    for rank, (start, stop) in enumerate(SHARDS):
        local = _losses_and_grads(slice(start, stop), False)
        for name in CASES:
            torch.testing.assert_close(ranks[rank]["local"][name][0], local[name][0])


def test_zero_positives_on_a_rank_does_not_divide_by_zero(ranks):
    # the last rank has no positive label; with sync it still gets a finite loss and gradient
    loss, grad = ranks[2]["sync"]["focal/positives"]
    assert torch.isfinite(loss)
    assert torch.isfinite(grad).all()
    alone = fk.sigmoid_focal_loss(torch.zeros(3, requires_grad=True), torch.zeros(3), normalizer="positives")
    assert torch.isfinite(alone)


def test_ghmc_state_is_global_and_identical_on_every_rank(ranks, agree):
    whole = _ghm_steps(None, False)
    for step, (loss, grad, state) in enumerate(whole):
        losses = torch.stack([r["ghm"][step][0] for r in ranks])
        agree("distributed: GHM-C momentum loss", losses.mean(), loss, rtol=1e-12, atol=1e-14)
        for rank, (start, stop) in enumerate(SHARDS):
            agree("distributed: GHM-C momentum gradient", ranks[rank]["ghm"][step][1] / WORLD, grad[start:stop],
                  rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(ranks[rank]["ghm"][step][2], state)


def test_sync_without_a_process_group_is_a_world_of_one():
    x, y = torch.randn(6, 2), (torch.rand(6, 2) < 0.5).float()
    torch.testing.assert_close(fk.sigmoid_focal_loss(x, y, normalizer="valid", sync=True),
                               fk.sigmoid_focal_loss(x, y))
    torch.testing.assert_close(fk.GHMCLoss(sync=True)(x, y), fk.ghmc_loss(x, y))


@pytest.mark.parametrize("fn", [fk.sigmoid_focal_loss, fk.cross_entropy])
def test_sync_with_reduction_none_is_refused(fn):
    """``sync`` scales a reduced loss: with ``"none"`` it would silently do nothing."""
    x, y = torch.randn(4, 3), torch.ones(4, 3) / 3
    with pytest.raises(ValueError, match="sync has no effect with reduction='none'"):
        fn(x, y, reduction="none", sync=True)
    with pytest.raises(ValueError, match="sync has no effect with reduction='none'"):
        fk.SoftmaxFocalLoss(reduction="none", sync=True)
    # GHM-C's elements depend on the global histogram: sync matters without a reduction too
    assert fk.ghmc_loss(x, y.round(), reduction="none", sync=True).shape == (4, 3)
    assert fk.GHMCLoss(reduction="none", sync=True)(x, y.round()).shape == (4, 3)


def test_normalizer_names_are_checked():
    x, t = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="'positives' belongs to the sigmoid family"):
        fk.cross_entropy(x, t, normalizer="positives")
    with pytest.raises(ValueError, match="normalizer must be a number, a tensor or one of 'positives', 'valid'"):
        fk.sigmoid_focal_loss(x, torch.ones(4, 3), normalizer="anchors")
    with pytest.raises(TypeError, match=r"sync must be a bool or a torch\.distributed ProcessGroup"):
        fk.sigmoid_focal_loss(x, torch.ones(4, 3), sync="yes")
