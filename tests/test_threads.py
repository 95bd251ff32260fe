"""The CPU slice loop on worker threads: same numbers whatever the schedule, torch's thread settings
left alone, errors raised on the caller's thread; and the kernels' import order (no circle)."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
import torch

import focalkit as fk
from focalkit.kernels import fused, threads

from .cases import ALL


def _run(case, x, y):
    xr = x.clone().requires_grad_(True)
    loss = case.function(xr, y, **case.options)
    loss.backward()
    return loss.detach(), xr.grad


def _inputs(case, shape=(6, 5, 40)):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g, dtype=torch.float32) * 3
    if case.family == "sigmoid":
        return x, (torch.rand(shape, generator=g) < 0.2).float()
    return x, torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)


@pytest.mark.parametrize("case", ALL, ids=str)
def test_many_slices_on_threads_give_the_same_bits_every_time_and_as_one_thread(case, monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 37)  # dozens of slices, spread over the threads
    x, y = _inputs(case)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [_run(case, x, y) for _ in range(4)]
        torch.set_num_threads(1)  # the loop on the calling thread alone
        single = _run(case, x, y)
    finally:
        torch.set_num_threads(before)
    for loss, grad in [*runs, single]:
        assert torch.equal(loss, runs[0][0])
        assert torch.equal(grad, runs[0][1])


def test_torch_thread_settings_are_left_as_they_were(monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 37)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(50, 40, requires_grad=True)
        fk.sigmoid_focal_loss(x, (torch.rand(50, 40) < 0.1).float()).backward()
        assert torch.get_num_threads() == 2
        seen = []
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))  # a new thread's default
        fresh.start()
        fresh.join()
        assert seen == [2]
        info = torch.__config__.parallel_info()
        if "mkl_get_max_threads()" in info:  # MKL's count is process-wide: the user's matmuls keep their threads
            assert "mkl_get_max_threads() : 2" in info, info
    finally:
        torch.set_num_threads(before)


def test_an_error_in_a_slice_is_raised_on_the_callers_thread():
    done = []

    def body(i):
        if i == 5:
            raise ValueError("slice 5")
        done.append(i)

    with pytest.raises(ValueError, match="slice 5"):
        threads.for_each_slice(40, body, threads=2)
    threads.for_each_slice(3, done.append, threads=2)  # the pool still works afterwards


def test_the_fused_loss_under_autocast_and_grad_mode_matches_one_thread(monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 101)
    x = torch.randn(64, 33).to(torch.bfloat16).requires_grad_(True)
    y = (torch.rand(64, 33) < 0.2).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = fk.sigmoid_focal_loss(x, y)
    (ga,) = torch.autograd.grad(a, x)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = fk.sigmoid_focal_loss(x, y)
        (gb,) = torch.autograd.grad(b, x)
    finally:
        torch.set_num_threads(before)
    assert a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.equal(ga, gb)


def test_a_forked_child_gets_its_own_workers(monkeypatch):
    """DataLoader workers and multiprocessing fork the process: the parent's worker threads are not there."""
    import multiprocessing
    import warnings

    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 37)
    x = torch.randn(40, 30)
    y = (torch.rand(40, 30) < 0.2).float()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        expected = fk.sigmoid_focal_loss(x, y)  # the parent's pool exists now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork of a threaded process
            ctx = multiprocessing.get_context("fork")
            queue = ctx.Queue()
            child = ctx.Process(target=_child_loss, args=(x, y, queue))
            child.start()
            child.join(timeout=60)
        if child.is_alive():
            child.kill()
        assert child.exitcode == 0, "the forked child hung or failed"
        assert queue.get(timeout=5) == expected.item()
    finally:
        torch.set_num_threads(before)


def _child_loss(x, y, queue):
    fused.CHUNK_ELEMENTS = 37
    queue.put(fk.sigmoid_focal_loss(x, y).item())


def _imports(module: str) -> set[str]:
    path = Path(fused.__file__).parent / f"{module}.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[-1])
            names.update(alias.name for alias in node.names)
    return names


def test_no_import_circle_between_the_chunked_and_the_triton_kernels():
    """The shared configuration and references live in kernels/reference.py, below both."""
    assert "fused" not in _imports("triton_kernels")
    assert not {"fused", "triton_kernels"} & _imports("reference")
