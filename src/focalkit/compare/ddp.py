"""``focalkit compare --nproc N``: one configuration trained with DistributedDataParallel on N CPU
processes (gloo), to show the distributed path end to end.

Every rank holds a disjoint shard of each mini-batch; the loss is built with ``sync=True`` so its
mean (and GHM-C's histogram) is global, DDP averages the gradients, and the model therefore
follows the single-process trajectory on the whole mini-batch. At the end the ranks compare their
parameters (they must be identical) and rank 0 scores validation and test AP.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console

from .data import Dataset
from .losses import LossSpec, build_loss
from .metrics import average_precision
from .tasks.tabular import Protocol, _model, _probs, prepare_split

__all__ = ["run_ddp_demo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: Dataset, spec: LossSpec, protocol: Protocol, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    try:
        split = prepare_split(data, 0, noise=protocol.noise)
        binary = data.num_classes == 2
        torch.manual_seed(0)
        model = _model(protocol, split.x_train.shape[1], 1 if binary else data.num_classes,
                       split.class_counts / split.class_counts.sum())
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        loss_fn = build_loss(spec, num_classes=data.num_classes, class_counts=split.class_counts, sync=True)
        lr = protocol.lrs[len(protocol.lrs) // 2]
        opt = torch.optim.AdamW(ddp.parameters(), lr=lr, weight_decay=protocol.weight_decay)
        gen = torch.Generator().manual_seed(0)  # the same batch order on every rank
        n = len(split.y_train)
        start = time.perf_counter()
        for _ in range(protocol.max_epochs):
            order = torch.randperm(n, generator=gen)
            for begin in range(0, n, protocol.batch_size):
                batch = order[begin:begin + protocol.batch_size]
                mine = batch[rank::world]  # this rank's shard of the mini-batch (may be empty)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(ddp(split.x_train[mine]), split.y_train[mine])
                loss.backward()
                opt.step()
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        if rank == 0:
            val = average_precision(split.y_val, _probs(model, split.x_val, binary))
            test = average_precision(split.y_test, _probs(model, split.x_test, binary))
            torch.save({"val_ap": val, "test_ap": test, "param_spread": spread, "lr": lr,
                        "seconds": time.perf_counter() - start}, out)
        dist.barrier()  # leave together: a rank that tears down early can abort in gloo's threads
        del ddp
    finally:
        dist.destroy_process_group()


def run_ddp_demo(data: Dataset, spec: LossSpec, nproc: int, protocol: Protocol, console: Console) -> int:
    import tempfile

    console.print(f"[bold]focalkit compare --nproc {nproc}[/] — {data.describe()}; loss {spec}, DDP over {nproc} "
                  f"gloo processes, {protocol.max_epochs} epochs, global mini-batch {protocol.batch_size}")
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "rank0.pt")
        mp.start_processes(_worker, args=(nproc, _free_port(), data, spec, protocol, out), nprocs=nproc,
                           start_method="spawn")
        result = torch.load(out, weights_only=False)
    console.print(f"trained in {result['seconds']:.1f} s at lr {result['lr']:g}: validation AP {result['val_ap']:.3f}, "
                  f"test AP {result['test_ap']:.3f}; largest parameter difference between ranks "
                  f"{result['param_spread']:.1e} (identical: {result['param_spread'] == 0.0})")
    return 0 if np.isfinite(result["val_ap"]) else 1
