"""The hardware checks of issue 14 that the interpreter cannot make; run by ``gpu_check.sh`` on a CUDA machine.

    python benchmarks/gpu_extra.py OUT.json [--dry-run] [--only NAME ...]

``--dry-run`` (``gpu_check.sh --dry-run``, in CI): on the CPU through Triton's interpreter
(``TRITON_INTERPRET=1``, ``FOCALKIT_TRITON=always``), the ``edges`` check at two classes; the checks that
need CUDA report themselves skipped.

Each check prints one line and lands in ``OUT.json`` (``ok`` false on any failure or mismatch; the exit
status is 1 then):

- ``sync``: fwd+bwd of the sigmoid focal, softmax focal and GHM-C losses with value checks off under
  ``torch.cuda.set_sync_debug_mode("error")``: no host sync anywhere in the call;
- ``graph``: the same step captured in a CUDA graph after a warm-up, replayed, equal to eager;
- ``edges``: an empty ``[0, 80]`` and a multi-block ``3·1024 + 7`` input against the chunked kernels
  (run this one under ``compute-sanitizer --tool memcheck`` too: ``--only edges``);
- ``bandwidth``: event-timed fwd+bwd for ``[1.6M, 80]`` float32 and bfloat16 logits with bool targets, as
  a fraction of a device copy's bandwidth, and the GHM-C histogram pass against its loss pass;
- ``huge``: softmax focal on ``[1, 150, 4096, 4096]`` bfloat16 (offsets past 2**31), its last rows'
  loss and gradient against the same rows computed alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import torch

import focalkit as fk
from focalkit.kernels import fused, triton_kernels

DRY = "--dry-run" in sys.argv
DEV = torch.device("cpu" if DRY else "cuda")
NEEDS_CUDA = ("sync", "graph", "bandwidth", "huge")


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def _step(loss_fn: Any, x: torch.Tensor, *args: Any, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().requires_grad_(True)
    loss = loss_fn(xr, *args, **kw)
    (g,) = torch.autograd.grad(loss, xr)
    return loss.detach(), g


def _cases() -> list[tuple[str, Any, torch.Tensor, tuple, dict]]:
    gen = torch.Generator(device=DEV).manual_seed(0)
    x = torch.randn(4096, 80, device=DEV, generator=gen) * 3
    y = torch.rand(4096, 80, device=DEV, generator=gen) < 0.05
    xs = torch.randn(8, 19, 64, 64, device=DEV, generator=gen)
    t = torch.randint(0, 19, (8, 64, 64), device=DEV, generator=gen)
    return [("sigmoid_focal_loss", fk.sigmoid_focal_loss, x, (y,), {}),
            ("softmax_focal_loss", fk.softmax_focal_loss, xs, (t,), {"gamma": 2.5}),
            ("ghmc_loss", fk.ghmc_loss, x, (y.float(),), {"bins": 30})]


def check_sync() -> dict[str, Any]:
    rows = {}
    with fk.value_checks(False):
        for name, fn, x, args, kw in _cases():
            _step(fn, x, *args, **kw)  # compile first: the compile itself may sync
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                _step(fn, x, *args, **kw)
                rows[name] = "no sync"
            except RuntimeError as exc:
                rows[name] = f"sync: {str(exc).splitlines()[0]}"
            finally:
                torch.cuda.set_sync_debug_mode("default")
    return {"ok": all(v == "no sync" for v in rows.values()), "rows": rows}


def check_graph() -> dict[str, Any]:
    rows = {}
    with fk.value_checks(False):
        for name, fn, x, args, kw in _cases()[:2]:
            xs = x.detach().clone().requires_grad_(True)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up: compile, and let the allocator settle
                    xs.grad = None
                    fn(xs, *args, **kw).backward()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            xs.grad = None
            with torch.cuda.graph(graph):
                out = fn(xs, *args, **kw)
                out.backward()
            graph.replay()
            torch.cuda.synchronize()
            want, g = _step(fn, x, *args, **kw)
            rows[name] = {"loss": _close(out.detach(), want), "grad": _close(xs.grad, g)}
    return {"ok": all(all(r.values()) for r in rows.values()), "rows": rows}


def _chunked(fn: Any, x: torch.Tensor, *args: Any, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    mode = os.environ.get("FOCALKIT_TRITON", "auto")
    os.environ["FOCALKIT_TRITON"] = "0"
    try:
        return _step(fn, x, *args, **kw)
    finally:
        os.environ["FOCALKIT_TRITON"] = mode


def check_edges() -> dict[str, Any]:
    rows = {}
    cols = 2 if DRY else 80  # the interpreter: 3 blocks and a tail of the sigmoid kernel, not 240
    for n in (0, 3 * 1024 + 7):
        x = torch.randn(n, cols, device=DEV) * 3
        y = torch.rand(n, cols, device=DEV) < 0.1
        t = torch.randint(0, cols, (n,), device=DEV)
        cases = [("sigmoid_focal_loss", fk.sigmoid_focal_loss, y), ("ghmc_loss", fk.ghmc_loss, y),
                 ("softmax_focal_loss", fk.softmax_focal_loss, t)]
        for name, fn, target in cases:
            for reduction in ("mean", "sum", "none"):
                def summed(xr: torch.Tensor, fn: Any = fn, target: torch.Tensor = target,
                           reduction: str = reduction) -> torch.Tensor:
                    return fn(xr, target, reduction=reduction).sum()

                got, want = _step(summed, x), _chunked(summed, x)
                rows[f"{name} n={n} {reduction}"] = _close(got[0], want[0]) and _close(got[1], want[1])
    if not DRY:
        torch.cuda.synchronize()
    return {"ok": all(rows.values()), "rows": rows}


def _time(fn: Any, reps: int = 20) -> float:
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps / 1e3


def check_bandwidth() -> dict[str, Any]:
    rows = {}
    src = torch.empty(1_600_000 * 80 * 4 // 4, device=DEV)
    dst = torch.empty_like(src)
    copy_s = _time(lambda: dst.copy_(src))
    copy_bw = 2 * src.numel() * 4 / copy_s
    rows["copy GB/s"] = round(copy_bw / 1e9, 1)
    y = torch.rand(1_600_000, 80, device=DEV) < 0.01
    with fk.value_checks(False):
        for dtype in (torch.float32, torch.bfloat16):
            x = (torch.randn(1_600_000, 80, device=DEV) * 3).to(dtype).requires_grad_(True)
            seconds = _time(lambda x=x: fk.sigmoid_focal_loss(x, y).backward())
            # forward reads x and y; backward reads them again and writes the gradient
            moved = x.numel() * (3 * x.element_size() + 2 * y.element_size())
            rows[f"focal fwd+bwd {str(dtype)[6:]} ms"] = round(seconds * 1e3, 3)
            rows[f"focal fwd+bwd {str(dtype)[6:]} of copy bandwidth"] = round(moved / seconds / copy_bw, 3)
        x = torch.randn(1_600_000, 80, device=DEV) * 3
        cfg = fused.SigmoidConfig("ghmc", "mean", torch.float32, bins=30)
        hist = _time(lambda: triton_kernels.ghmc_counts(cfg, x, y, None))
        loss = _time(lambda: triton_kernels.sigmoid_loss(fused.SigmoidConfig("focal", "mean", torch.float32), x, y,
                                                         weight=None, pos_weight=None, beta_bins=None, normalizer=None,
                                                         out_dtype=torch.float32))
        rows["ghmc histogram ms"], rows["focal loss pass ms"] = round(hist * 1e3, 3), round(loss * 1e3, 3)
    return {"ok": True, "rows": rows}


def check_huge() -> dict[str, Any]:
    free, _ = torch.cuda.mem_get_info()
    shape = (1, 150, 4096, 4096)
    need = 2 * 150 * 4096 * 4096 * 2 + 4096 * 4096 * 8
    if free < need * 1.2:
        return {"ok": False, "skipped": f"needs {need / 2**30:.1f} GiB free, {free / 2**30:.1f} GiB here"}
    x = torch.randn(shape, device=DEV, dtype=torch.bfloat16)
    t = torch.randint(0, 150, shape[:1] + shape[2:], device=DEV)
    with fk.value_checks(False):
        xr = x.requires_grad_(True)
        per = fk.softmax_focal_loss(xr, t, reduction="none")
        per.sum().backward()
        rows = slice(4096 - 4, 4096)  # the last rows: offsets (C − 1)·S + j past 2**31
        xs = x.detach()[:, :, rows].contiguous().requires_grad_(True)
        per_s = fk.softmax_focal_loss(xs, t[:, rows], reduction="none")
        per_s.sum().backward()
    ok_loss = _close(per.detach()[:, rows], per_s.detach(), rtol=1e-2, atol=1e-3)
    ok_grad = _close(xr.grad[:, :, rows], xs.grad, rtol=1e-2, atol=1e-3)
    return {"ok": ok_loss and ok_grad, "rows": {"loss": ok_loss, "grad": ok_grad}}


CHECKS = {"sync": check_sync, "graph": check_graph, "edges": check_edges, "bandwidth": check_bandwidth,
          "huge": check_huge}


def main(argv: list[str]) -> int:
    out = argv[0]
    only = [a for a in argv[argv.index("--only") + 1:] if a != "--dry-run"] if "--only" in argv else list(CHECKS)
    if not DRY and not torch.cuda.is_available():
        print("gpu_extra: no CUDA device", file=sys.stderr)
        return 1
    results = {"device": "cpu (dry run)" if DRY else torch.cuda.get_device_name(), "checks": {}}
    for name in only:
        start = time.perf_counter()
        try:
            result = ({"ok": True, "skipped": "dry run: needs CUDA"} if DRY and name in NEEDS_CUDA
                      else CHECKS[name]())
        except Exception as exc:  # report every check, not only the first failure
            result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
        result["seconds"] = round(time.perf_counter() - start, 1)
        results["checks"][name] = result
        print(f"{name}: {json.dumps(result)}", flush=True)
        if not DRY:
            torch.cuda.empty_cache()
    results["ok"] = all(r["ok"] for r in results["checks"].values())
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
