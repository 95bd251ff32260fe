"""The CPU slice loop: slices spread over threads once, every op of a slice on one thread.

Why: a torch op over more than 32,768 elements opens an OpenMP parallel region, and each region
ends at a barrier where every thread waits for the slowest. A fused loss of a couple of dozen ops
over a hundred slices opens thousands of regions per call; when another process holds a core
(DataLoader workers, a second job), one descheduled thread stalls every region, and a loss that
was faster than the textbook became five times slower than it.

Here the slices are shared out to ``torch.get_num_threads()`` worker threads that take the next
slice as they finish one (torch releases the GIL inside its ops). Each worker runs its ops on
itself alone: its OpenMP thread count is 1 (a per-thread setting; the caller's and torch's global
setting are left as they were). A descheduled worker holds up no one; the only wait is at the end.

Per-slice results are written to their slice's place, so the result does not depend on which
thread ran which slice (partial sums are added in slice order).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["for_each_slice", "slice_threads"]

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_PREFIX = "focalkit-slices"


def _forget_pools() -> None:
    """In a forked child the workers do not exist: start afresh (else the next pooled call would wait forever)."""
    global _lock
    _lock = threading.Lock()
    _pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def slice_threads() -> int:
    """Threads the slice loop may use: torch's intra-op setting of the calling thread."""
    return max(1, torch.get_num_threads())


def _one_thread() -> None:
    """Pool initializer: this thread's ops run on it alone (its own OpenMP setting)."""
    torch.set_num_threads(1)


def _executor(workers: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(workers)
        if pool is None:
            caller = torch.get_num_threads()
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_PREFIX, initializer=_one_thread)
            # start every worker now, each held at the barrier until all run (an idle one would otherwise take
            # the next start-up task, and a worker started later would set the process-wide default again)
            barrier = threading.Barrier(workers)
            started = [pool.submit(barrier.wait) for _ in range(workers)]
            for future in started:
                future.result()
            # torch.set_num_threads also sets a process-wide default (new threads' count, MKL's): restored
            torch.set_num_threads(caller)
            _pools[workers] = pool
        return pool


def for_each_slice(count: int, body: Callable[[int], None], *, threads: int | None = None) -> None:
    """Call ``body(i)`` for ``i`` in ``range(count)`` on up to ``threads`` worker threads, each taking the
    next ``i`` when it is done with one; the first exception is raised once all have stopped. ``body``
    runs without autograd and without autocast, as the caller's fused forward does. One slice, one
    thread, or a call from a worker itself: ``body`` runs on the calling thread."""
    workers = min(threads or slice_threads(), count)
    if workers <= 1 or threading.current_thread().name.startswith(_PREFIX):
        for i in range(count):
            body(i)
        return
    counter = itertools.count()
    failed: list[BaseException] = []

    def work() -> None:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            while not failed:
                i = next(counter)  # atomic under the GIL
                if i >= count:
                    return
                try:
                    body(i)
                except BaseException as err:  # re-raised on the caller's thread below
                    failed.append(err)
                    return

    pool = _executor(workers)
    futures = [pool.submit(work) for _ in range(workers)]
    for future in futures:
        future.result()
    if failed:
        raise failed[0]
