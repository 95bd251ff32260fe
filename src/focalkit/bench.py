"""``focalkit bench``: time and peak memory of the losses against the textbook formulas, same run.

Each (loss, shape, implementation) runs in fresh subprocesses. A timing one runs forward +
backward ``warmup + repeats`` times and reports the median; there are ``rounds`` of them per
implementation, the implementations of a case interleaved (textbook, focalkit, …, textbook,
focalkit, …), and the median over the rounds is reported: this machine's speed drifts by tens of
percent over minutes, and interleaving makes a slow spell hit every implementation alike.

One more child per implementation measures memory: it runs with glibc's mmap threshold fixed at
64 KiB (``MALLOC_MMAP_THRESHOLD_``), so that every block the loss allocates is mapped on allocation
and unmapped on free and the resident set follows live memory; it runs forward + backward once (the
first call initialises torch's engines and thread pools, which is not the loss's memory), hands freed
memory back (``malloc_trim``), reads the resident set, resets the kernel's high-water mark
(``/proc/self/clear_refs``), runs forward + backward again, and reports the high-water mark
(``VmHWM``; ``ru_maxrss`` where it cannot be reset) minus that resident set: every byte the loss and
its backward held at once, the gradient included. Ratios are against the textbook eager formula measured in the same
invocation, on the same machine, with the same thread count.

With ``--device cuda`` the same cases run on the GPU (the Triton kernels, where Triton is
installed): time from ``torch.cuda.synchronize`` around each run, peak memory from
``torch.cuda.max_memory_allocated`` over the runs minus what was allocated before them, in one
child per case; and a ``copy`` of the logits times the HBM bandwidth a plain copy reaches, so that
the table can say what fraction of it focalkit's forward + backward uses (it must read the logits
and targets twice and write the gradient once).

Implementations: ``focalkit`` (the default fused path), ``focalkit+compile`` (``torch.compile`` of
the same function: opt-in, its first call's compile time reported separately), ``focalkit+inductor``
(the library's own opt-in ``FOCALKIT_INDUCTOR=auto``, first call likewise), ``textbook`` (the
formula as blog posts and torchvision write it, in eager PyTorch; for GHM-C the per-bin Python loop
of the article), and the peers ``kornia`` and ``monai`` where they have the loss.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

__all__ = ["CASES", "run_bench"]

SHAPES = {
    "detection": (100_000, 80),
    "segmentation": (8, 1, 512, 512),
    "multiclass": (2, 19, 512, 1024),
    "sequence": (32, 512, 9),
    "small-detection": (512, 80),
    "mid-detection": (4096, 80),  # 330k elements: between one slice and many (issue 25)
    "small-segmentation": (4, 1, 64, 64),
    "small-multiclass": (256, 10),
}
QUICK_SHAPES = {
    "detection": (20_000, 80),
    "segmentation": (2, 1, 256, 256),
    "multiclass": (1, 19, 128, 256),
    "sequence": (16, 128, 9),
    "small-detection": (512, 80),
    "mid-detection": (4096, 80),
    "small-segmentation": (4, 1, 64, 64),
    "small-multiclass": (256, 10),
}
SIGMOID = ["bce_smooth", "focal", "hard", "soft", "ghmc10", "ghmc30"]
SOFTMAX = ["ce", "softmax_focal", "softmax_hard", "softmax_soft"]
PEERS = {"focal": ["kornia", "monai"], "softmax_focal": ["kornia", "monai"]}
COMPILED = {("focal", "detection"), ("bce_smooth", "detection"), ("focal", "segmentation"),
            ("softmax_focal", "multiclass")}
CASES = [(loss, shape) for shape in ("detection", "segmentation") for loss in SIGMOID] + [
    (loss, shape) for shape in ("multiclass", "sequence") for loss in SOFTMAX] + [
    ("focal", "small-detection"), ("focal", "mid-detection"), ("focal", "small-segmentation"),
    ("softmax_focal", "small-multiclass")]
SMALL_BATCH = 2_000_000  # a timed run of a small input repeats the call until it has touched this many elements
# --quick without --only / --shapes: one row per kind of input, no torch.compile, no peers (under 2 minutes)
QUICK_CASES = [("bce_smooth", "detection"), ("focal", "detection"), ("focal", "segmentation"), ("ce", "multiclass"),
               ("softmax_focal", "multiclass"), ("softmax_focal", "sequence"), ("focal", "small-detection"),
               ("focal", "mid-detection"), ("focal", "small-segmentation"), ("softmax_focal", "small-multiclass")]
BUSY_RATIO = 1.5  # p90 / p50 above this (over 5 or more timed runs): the machine was too busy for the numbers
STEP_SHAPE = (2048, 512)  # --in-step: three [2048, 512] @ [512, 512] + ReLU (a model's own ops) before each call


# ---------------------------------------------------------------------------------------------- child side


def _inputs(shape_name: str, shape: tuple[int, ...]):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    if shape_name.endswith(("detection", "segmentation")):
        y = (torch.rand(shape, generator=g) < (0.01 if shape_name.endswith("detection") else 0.1)).float()
    elif shape_name.endswith("multiclass"):
        y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    else:  # sequence [B, T, C]: tags per token
        y = torch.randint(0, shape[-1], shape[:-1], generator=g)
    return x, y


def _textbook(loss: str, shape_name: str):
    import torch
    import torch.nn.functional as F

    def bce_smooth(x, y):
        return F.binary_cross_entropy_with_logits(x, y * 0.9 + 0.05)

    def focal(x, y, alpha=0.25, gamma=2.0):  # torchvision.ops.sigmoid_focal_loss
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        loss = ce * ((1 - p_t) ** gamma)
        alpha_t = alpha * y + (1 - alpha) * (1 - y)
        return (alpha_t * loss).mean()

    def hard(x, y, m=0.5):
        p = torch.sigmoid(x)
        lam_pos = (p < m).float()
        lam_neg = (p > 1 - m).float()
        return (-y * lam_pos * F.logsigmoid(x) - (1 - y) * lam_neg * F.logsigmoid(-x)).mean()

    def soft(x, y, k=2.0):
        return (-y * torch.sigmoid(-k * x) * F.logsigmoid(x) - (1 - y) * torch.sigmoid(k * x) * F.logsigmoid(-x)).mean()

    def ghmc(bins):
        def loop(pred, target):  # seed 003 / mmdetection: one pass and one host sync per bin
            edges = torch.arange(bins + 1).float() / bins
            edges[-1] += 1e-6
            weights = torch.zeros_like(pred)
            g = torch.abs(pred.sigmoid().detach() - target)
            tot = pred.numel()
            n = 0
            for i in range(bins):
                inds = (g >= edges[i]) & (g < edges[i + 1])
                num_in_bin = inds.sum().item()
                if num_in_bin > 0:
                    weights[inds] = tot / num_in_bin
                    n += 1
            if n > 0:
                weights = weights / n
            return F.binary_cross_entropy_with_logits(pred, target, weights, reduction="sum") / tot
        return loop

    def classes_first(x):
        return x.transpose(1, 2) if shape_name == "sequence" else x

    def ce(x, t):
        return F.cross_entropy(classes_first(x), t)

    def softmax_weighted(weight_fn):
        def fn(x, t):
            x = classes_first(x)
            logp = F.log_softmax(x, 1)
            logpt = logp.gather(1, t.unsqueeze(1)).squeeze(1)
            return -(weight_fn(x, t, logpt) * logpt).mean()
        return fn

    table = {
        "bce_smooth": bce_smooth, "focal": focal, "hard": hard, "soft": soft, "ghmc10": ghmc(10),
        "ghmc30": ghmc(30), "ce": ce,
        "softmax_focal": softmax_weighted(lambda x, t, logpt: (1 - logpt.exp()) ** 2),
        "softmax_hard": softmax_weighted(lambda x, t, logpt: (logpt.exp() < 0.5).float()),
        "softmax_soft": softmax_weighted(
            lambda x, t, logpt: torch.softmax(-x, 1).gather(1, t.unsqueeze(1)).squeeze(1)),
    }
    return table[loss]


def _focalkit(loss: str, shape_name: str):
    import focalkit as fk

    seq = {"class_dim": -1} if shape_name == "sequence" else {}
    table = {
        "bce_smooth": lambda x, y: fk.binary_cross_entropy(x, y, label_smoothing=0.1),
        "focal": lambda x, y: fk.sigmoid_focal_loss(x, y),
        "hard": lambda x, y: fk.sigmoid_hard_truncation_loss(x, y),
        "soft": lambda x, y: fk.sigmoid_soft_truncation_loss(x, y, k=2.0),
        "ghmc10": lambda x, y: fk.ghmc_loss(x, y, bins=10),
        "ghmc30": lambda x, y: fk.ghmc_loss(x, y, bins=30),
        "ce": lambda x, t: fk.cross_entropy(x, t, **seq),
        "softmax_focal": lambda x, t: fk.softmax_focal_loss(x, t, **seq),
        "softmax_hard": lambda x, t: fk.softmax_hard_truncation_loss(x, t, **seq),
        "softmax_soft": lambda x, t: fk.softmax_soft_truncation_loss(x, t, k=1.0, **seq),
    }
    return table[loss]


def _peer(name: str, loss: str, shape_name: str):
    import torch.nn.functional as F

    if name == "kornia":
        import kornia

        if loss == "focal":
            return lambda x, y: kornia.losses.binary_focal_loss_with_logits(x, y, alpha=0.25, gamma=2.0,
                                                                           reduction="mean")
        return lambda x, t: kornia.losses.focal_loss(x.transpose(1, 2) if shape_name == "sequence" else x, t,
                                                     alpha=None, gamma=2.0, reduction="sum") / t.numel()
    from monai.losses import FocalLoss

    if loss == "focal":
        sigmoid_loss = FocalLoss(use_softmax=False, gamma=2.0, alpha=0.25, reduction="mean")
        return sigmoid_loss
    softmax_loss = FocalLoss(use_softmax=True, gamma=2.0, reduction="sum")

    def monai_softmax(x, t):
        x = x.transpose(1, 2) if shape_name == "sequence" else x
        return softmax_loss(x, F.one_hot(t, x.shape[1]).movedim(-1, 1).float()) / t.numel()

    return monai_softmax


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM; Linux >= 4.0), so that it covers what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _trim() -> None:
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _cuda_copy_ms(x: Any, repeats: int) -> float:
    import torch

    out = torch.empty_like(x)
    times = []
    for _ in range(repeats + 2):
        torch.cuda.synchronize()
        start = time.perf_counter()
        out.copy_(x)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times = sorted(times[2:])
    return 1000 * times[len(times) // 2]


def _model_step(torch: Any):
    """The ops of a model between two loss calls: three matmuls + ReLU on torch's own threads (``--in-step``)."""
    g = torch.Generator().manual_seed(1)
    h0 = torch.randn(STEP_SHAPE, generator=g)
    weights = [torch.randn(STEP_SHAPE[1], STEP_SHAPE[1], generator=g) / STEP_SHAPE[1] ** 0.5 for _ in range(3)]

    def step() -> None:
        h = h0
        for w in weights:
            h = torch.relu(h @ w)

    return step


def machine() -> dict[str, Any]:
    """What the numbers came from: CPU model (as ``lscpu`` names it), cores, cache sizes, torch, threads."""
    import torch

    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                            "torch": torch.__version__, "python": platform.python_version(),
                            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    caches = {}
    with contextlib.suppress(OSError):
        base = "/sys/devices/system/cpu/cpu0/cache"
        for entry in sorted(os.listdir(base)):
            if not entry.startswith("index"):
                continue
            with open(f"{base}/{entry}/level") as fh:
                level = fh.read().strip()
            with open(f"{base}/{entry}/type") as fh:
                kind = fh.read().strip()
            with open(f"{base}/{entry}/size") as fh:
                size = fh.read().strip()
            if kind != "Instruction":
                caches[f"L{level}{'d' if level == '1' else ''}"] = size
    info["caches"] = caches
    return info


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import resource

    import torch

    torch.set_num_threads(spec["threads"])
    x, y = _inputs(spec["shape_name"], tuple(spec["shape"]))
    device = spec.get("device", "cpu")
    cuda = device == "cuda"
    x, y = x.to(device), y.to(device)
    impl = spec["impl"]
    if impl == "copy":
        return {"ms": _cuda_copy_ms(x, spec["repeats"]), "peak_mib": 0.0,
                "input_mib": x.numel() * x.element_size() / 2**20, "first_call_s": None,
                "bytes": 2 * x.numel() * x.element_size()}
    if impl == "textbook":
        fn = _textbook(spec["loss"], spec["shape_name"])
    elif impl.startswith("focalkit"):
        fn = _focalkit(spec["loss"], spec["shape_name"])
        if impl == "focalkit+compile":
            fn = torch.compile(fn)
        if impl == "focalkit+inductor":  # the library's own opt-in path
            os.environ["FOCALKIT_INDUCTOR"] = "auto"
    else:
        fn = _peer(impl, spec["loss"], spec["shape_name"])
    x.requires_grad_(True)

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    step = _model_step(torch) if spec.get("in_step") else None
    first = None
    if impl in ("focalkit+compile", "focalkit+inductor"):
        start = time.perf_counter()
        fn(x, y).backward()
        synchronize()
        first = time.perf_counter() - start
        x.grad = None
    inner = max(1, SMALL_BATCH // max(x.numel(), 1)) if impl != "copy" else 1  # small inputs: a batch of calls
    if step is not None:  # each call on its own, right after the model's ops
        inner = 1
    for _ in range(spec["warmup"]):  # first calls initialise torch's engines and pools: not the loss's memory
        if step is not None:
            step()
        fn(x, y).backward()
        x.grad = None
    synchronize()
    _trim()
    before = _rss_bytes()
    hwm = _reset_peak()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    times = []
    for _ in range(spec["repeats"]):
        if step is not None:
            step()
        synchronize()
        start = time.perf_counter()
        for _ in range(inner):
            fn(x, y).backward()
            x.grad = None
        synchronize()
        times.append((time.perf_counter() - start) / inner)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - before
    elif hwm:
        peak = _peak_rss_bytes() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    times.sort()
    # the least a loss must move: read logits and targets in forward and again in backward, write the gradient
    least = 2 * (x.numel() * x.element_size() + y.numel() * y.element_size()) + x.numel() * x.element_size()
    return {"ms": 1000 * times[len(times) // 2], "times_ms": [1000 * t for t in times],
            "peak_mib": max(peak, 0) / 2**20,
            "input_mib": x.numel() * x.element_size() / 2**20, "first_call_s": first, "bytes": least}


# ---------------------------------------------------------------------------------------------- parent side


def _run_child(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    code = "import json,sys; from focalkit.bench import child; print(json.dumps(child(json.loads(sys.argv[1]))))"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                          check=False, timeout=1800, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_TOP_PAD_": "0"}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time from a normal child, peak memory from a child whose allocations map and unmap eagerly
    (on a GPU one child gives both)."""
    timing = _run_child(spec)
    if "error" in timing or spec.get("device", "cpu") != "cpu":
        return timing
    memory = _run_child({**spec, "repeats": 1, "warmup": 1, "in_step": False}, MEMORY_ENV)
    if "error" in memory:
        return memory
    return {**timing, "peak_mib": memory["peak_mib"]}


def _peer_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


BUSY = "while True: pass"


def start_load(n: int) -> list[subprocess.Popen]:
    """``n`` busy processes (one core's worth each), as DataLoader workers or a second job would be."""
    return [subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(n)]


def stop_load(processes: list[subprocess.Popen]) -> None:
    """End the busy processes this benchmark started, by their process id only."""
    for proc in processes:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    for proc in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def run_bench(args: argparse.Namespace) -> int:
    load = getattr(args, "load", 0) or 0
    busy = start_load(load)
    try:
        return _run_bench(args, load)
    finally:
        stop_load(busy)


def _run_bench(args: argparse.Namespace, load: int) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    device = getattr(args, "device", "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        console.print("focalkit bench: --device cuda asked for, but torch sees no CUDA device")
        return 2
    shapes = QUICK_SHAPES if args.quick else SHAPES
    threads = int(os.environ.get("FOCALKIT_BENCH_THREADS", min(2, os.cpu_count() or 1)))
    in_step = bool(getattr(args, "in_step", False))
    info = {**machine(), "threads": threads, "device": device, "load": load, "in_step": in_step}
    console.print(f"[bold]focalkit bench[/] on {info['cpu']} ({info['cores']} cores; "
                  + ", ".join(f"{k} {v}" for k, v in info["caches"].items())
                  + f"), torch {info['torch']}, {threads} thread(s)", highlight=False)
    repeats = args.repeats or (3 if args.quick else 7)
    if in_step:  # one call per timed run: more of them
        repeats = max(repeats, 15)
    rounds = getattr(args, "rounds", None) or (1 if args.quick else 3)
    only = set(args.only) if args.only else None
    shapes_only = set(getattr(args, "shapes", None) or []) or None
    where = (f"{torch.cuda.get_device_name()}, Triton kernels {'on' if _peer_available('triton') else 'off'}"
             if device == "cuda" else f"{info['cpu']}, {os.cpu_count()} cores")
    peak_rule = ("peak = CUDA max allocated over the runs minus what was allocated before them" if device == "cuda"
                 else "peak = resident high-water mark over the runs minus the set before them")
    console.print(f"forward + backward, median of {repeats} runs in each of {rounds} fresh process(es) per "
                  f"implementation, interleaved, then the median over them (p90: over every timed run); "
                  f"{peak_rule}; {where}" + (f"; under load: {load} busy process(es) beside it" if load else "")
                  + ("; in a training step: three [2048, 512] @ [512, 512] + ReLU before each loss call, timed "
                     "apart" if in_step else ""), highlight=False)
    rows = []
    warnings: list[str] = []
    cases = QUICK_CASES if args.quick and not only and not shapes_only else CASES
    for loss, shape_name in cases:
        if (only and loss not in only) or (shapes_only and shape_name not in shapes_only):
            continue
        impls = ["textbook", "focalkit"]
        if (loss, shape_name) in COMPILED and not args.quick:
            impls += ["focalkit+compile", "focalkit+inductor"]
        impls += [p for p in PEERS.get(loss, []) if _peer_available(p) and not args.quick]
        if device == "cuda":
            impls.append("copy")
        results: dict[str, dict[str, Any]] = {}
        for round_ in range(rounds):  # implementations interleaved: a slow spell of the machine hits them all
            for impl in impls:
                if "error" in results.get(impl, {}):
                    continue
                spec = {"loss": loss, "shape_name": shape_name, "shape": shapes[shape_name], "impl": impl,
                        "threads": threads, "repeats": repeats, "warmup": 1, "device": device, "in_step": in_step}
                r = measure(spec) if round_ == 0 else _run_child(spec)
                if "error" in r:
                    results[impl] = r
                elif round_ == 0:
                    results[impl] = {**r, "ms_rounds": [r["ms"]], "all_ms": list(r.get("times_ms", [r["ms"]]))}
                else:
                    results[impl]["ms_rounds"].append(r["ms"])
                    results[impl]["all_ms"] += r.get("times_ms", [r["ms"]])
                console.print(f"  {loss:14s} {shape_name:12s} {impl:17s} {_fmt(r)}", highlight=False)
        for impl, r in results.items():
            if "ms_rounds" in r:
                r["ms"] = statistics.median(r["ms_rounds"])
                r["p90_ms"] = _quantile(r["all_ms"], 0.9)
                spread = r["p90_ms"] / _quantile(r["all_ms"], 0.5)
                if impl in ("textbook", "focalkit") and len(r["all_ms"]) >= 5 and spread > BUSY_RATIO and not load:
                    warnings.append(f"{loss} {shape_name} {impl}: p90 is {spread:.1f}× p50, the machine was busy "
                                    "(other processes?): these numbers may not mean much")
        rows.append((loss, shape_name, results))
        if getattr(args, "json", None):  # as rows finish: an interrupted run keeps what it measured
            _write_json(args.json, {**info, "where": where, "warnings": warnings, "rows": _json_rows(rows)})
    title = "ratios against the textbook eager formula, measured in this run (higher is better)"
    table = Table(title=title + (f"; {load} busy process(es) beside it" if load else ""))
    for col in ("loss", "shape", "impl", "ms (p50)", "p90", "peak MiB", "peak / input", "speed-up", "p90 ratio",
                "memory saving", "note"):
        table.add_column(col, no_wrap=True)
    for loss, shape_name, results in rows:
        base = results["textbook"]
        copy = results.get("copy", {})
        for impl, r in results.items():
            if impl == "copy":
                continue
            if "error" in r:
                table.add_row(loss, shape_name, impl, "-", "-", "-", "-", "-", "-", "-", r["error"][:40])
                continue
            speed = base["ms"] / r["ms"] if "ms" in base else float("nan")
            tail = base["p90_ms"] / r["p90_ms"] if "p90_ms" in base and "p90_ms" in r else float("nan")
            saving = base["peak_mib"] / max(r["peak_mib"], 1e-9) if "peak_mib" in base else float("nan")
            note = f"first call {r['first_call_s']:.1f} s" if r.get("first_call_s") else ""
            if "ms" in copy:  # the bandwidth this run reaches, as a fraction of a plain copy's
                note += f" {(r['bytes'] / r['ms']) / (copy['bytes'] / copy['ms']):.0%} of copy bandwidth"
            table.add_row(loss, shape_name, impl, _ms(r["ms"]), _ms(r.get("p90_ms", float("nan"))),
                          f"{r['peak_mib']:.0f}", f"{r['peak_mib'] / r['input_mib']:.2f}", f"{speed:.2f}x",
                          f"{tail:.2f}x", f"{saving:.2f}x", note)
    console.print(table)
    for line in warnings:
        console.print(f"warning: {line}", highlight=False)
    if getattr(args, "json", None):
        _write_json(args.json, {**info, "where": where, "warnings": warnings, "rows": _json_rows(rows),
                                "complete": True})
    return 0


def _json_rows(rows: list) -> list[dict[str, Any]]:
    return [{"loss": a, "shape": b, "results": c} for a, b, c in rows]


def _write_json(path: str, payload: dict[str, Any]) -> None:
    """Replace ``path`` at once (a reader never sees half a file)."""
    tmp = f"{path}.partial"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, path)


def _ms(value: float) -> str:
    return "-" if value != value else (f"{value:.1f}" if value >= 1 else f"{value:.3f}")


def _fmt(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"error: {r['error'][:80]}"
    extra = f", first call {r['first_call_s']:.1f} s" if r.get("first_call_s") else ""
    return f"{r['ms']:8.1f} ms  {r['peak_mib']:7.0f} MiB{extra}"
