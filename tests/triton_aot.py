"""Compiles the generated Triton kernels for a CUDA GPU without one (Triton ships ptxas): run as a script.

Prints one JSON line per kernel: its name, whether it compiled, and how many ``ex2`` / ``lg2``
(the GPU's exp and log) its PTX holds. Used by ``tests/test_triton.py`` in a subprocess, because
the interpreter the other tests run on must be chosen before Triton is imported, and this needs
the real compiler.
"""

from __future__ import annotations

import json
import os
import re
import sys

# Triton and focalkit are imported in main(): pytest's doctest collection imports this file too, and
# must not load Triton outside the interpreter the other tests use


def _scalars(dtype: str) -> dict[str, str]:
    return {name: dtype for name in ("alpha_v", "gamma_v", "thr_v", "k_v", "eps_v", "gneg_v", "clip_v", "poly_v")}


def _sigmoid(cfg, mode: str, has_w: bool, pattern: tuple[bool, ...] | None = None) -> tuple[object, dict, dict]:
    import torch

    from focalkit.kernels import triton_kernels

    kernel = triton_kernels._sigmoid_kernel(cfg, mode, has_w, None, cfg.family == "ghmc" and mode != "hist",
                                            mode == "sum", False, (pattern, None))
    f = "*fp64" if cfg.dtype == torch.float64 else "*fp32"
    sig = {"x_ptr": f, "y_ptr": f, "w_ptr": f, "pw_ptr": f, "beta_ptr": f, "scale_ptr": f, "gout_ptr": f,
           "out_ptr": f, "part_ptr": "*i64" if mode == "hist" else f, "n": "i64",
           **{f"{v}_{k}{i}": "i64" for v in ("w", "pw") for k in "st" for i in range(4)}, **_scalars(f[1:]),
           "BLOCK": "constexpr"}
    return kernel, sig, {"BLOCK": 1024}


def _softmax(cfg, mode: str, has_w: bool, layout: str) -> tuple[object, dict, dict]:
    from focalkit.kernels import triton_kernels

    kernel = triton_kernels._softmax_kernel(cfg, mode, has_w, True, True, False, layout)
    f = "*fp32"
    sig = {"x_ptr": f, "t_ptr": "*i64" if cfg.sparse else f, "w_ptr": f, "cf_ptr": f, "cw_ptr": f, "scale_ptr": f,
           "gout_ptr": f, "out_ptr": f, "part_ptr": f, "P": "i64", "C": "i64", "S": "i64", **_scalars("fp32"),
           "BLOCK_P": "constexpr", "BLOCK_C": "constexpr"}
    return kernel, sig, {"BLOCK_P": 128, "BLOCK_C": 32}


_DEF = re.compile(r"^\s*(%[\w#.]+)(?::\d+)? = ([\w.]+)(.*)$")
_OPERAND = re.compile(r"%[\w#.]+")


def narrow_address_products(ttir: str) -> list[str]:
    """The 32-bit integer products (``arith.muli`` on ``i32``) that an address (``tt.addptr``'s offset, or
    a load's or store's pointer) is computed from: an offset such as ``cls * S`` formed in 32 bits wraps
    once it passes 2**31 (issue 14, item 2). Walks the TTIR's def-use graph back from each address."""
    defs: dict[str, tuple[str, str]] = {}
    addresses: list[str] = []
    for line in ttir.splitlines():
        match = _DEF.match(line)
        if match:
            name, op, rest = match.groups()
            defs[name] = (op, rest)
            if op == "tt.addptr":
                addresses.extend(_OPERAND.findall(rest.split(":")[0])[1:])
    found, seen, todo = [], set(), list(addresses)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        op, rest = defs[name]
        if op == "arith.muli" and re.search(r"\bi32\b|xi32>", rest.rsplit(":", 1)[-1]):
            found.append(f"{name} = {op}{rest.strip()}")
        todo.extend(_OPERAND.findall(rest.split(":")[0] if op != "scf.for" else rest))
    return found


def _narrow(sig: dict) -> dict:
    """Integer sizes as a real launch passes them below 2**31: Triton specialises them to ``i32``."""
    return {k: ("i32" if v == "i64" else v) for k, v in sig.items()}


def main(arch: int) -> None:
    os.environ["TRITON_INTERPRET"] = "0"
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from focalkit.kernels import fused

    target = GPUTarget("cuda", arch, 32)
    jobs = []
    for family, options in [("bce", {"label_smoothing": 0.1}), ("focal", {"alpha": 0.25}), ("hard", {}),
                            ("soft", {"k": 2.0}), ("ghmc", {"bins": 30})]:
        for mode in ("sum", "grad", "none"):
            cfg = fused.SigmoidConfig(family, "mean", torch.float32, **options)
            jobs.append((f"sigmoid {family} {mode}", _sigmoid(cfg, mode, False)))
    jobs.append(("sigmoid ghmc hist", _sigmoid(fused.SigmoidConfig("ghmc", "mean", torch.float32, bins=30), "hist",
                                               True)))
    jobs.append(("sigmoid focal grad, a [B, 1, H, W] weight over [B, C, H, W]",
                 _sigmoid(fused.SigmoidConfig("focal", "mean", torch.float32), "grad", True, (True, False, True))))
    jobs.append(("sigmoid focal grad float64 weighted",
                 _sigmoid(fused.SigmoidConfig("focal", "mean", torch.float64, gamma=1.5, ignore_index=-1), "grad",
                          True)))
    for family in ("ce", "focal", "hard", "soft", "complement"):
        for mode in ("sum", "grad"):
            cfg = fused.SoftmaxConfig(family, "mean", torch.float32)
            layout = "rows" if mode == "sum" else "planes"
            jobs.append((f"softmax {family} {mode} {layout}", _softmax(cfg, mode, True, layout)))
    jobs.append(("softmax ce grad, label smoothing", _softmax(fused.SoftmaxConfig("ce", "mean", torch.float32,
                                                                                  label_smoothing=0.1), "grad", True,
                                                               "planes")))
    jobs.append(("softmax focal sum, probability targets",
                 _softmax(fused.SoftmaxConfig("focal", "mean", torch.float32, sparse=False), "sum", False, "rows")))
    jobs.append(("softmax focal grad flat", _softmax(fused.SoftmaxConfig("focal", "mean", torch.float32), "grad",
                                                     False, "flat")))
    for y in ("*u8", "*i1"):  # bool / uint8 targets with a negative ignore_index (item 5): compared in a signed type
        for mode in ("sum", "grad", "hist"):
            family = "ghmc" if mode == "hist" else "focal"
            kernel, sig, constexprs = _sigmoid(fused.SigmoidConfig(family, "mean", torch.float32, ignore_index=-100,
                                                                   bins=10), mode, True)
            jobs.append((f"sigmoid {family} {mode}, {y} targets, ignore_index -100", (kernel, {**sig, "y_ptr": y},
                                                                                    constexprs)))
    jobs.append(("sigmoid focal grad, runtime gamma and alpha",
                 _sigmoid(fused.SigmoidConfig("focal", "mean", torch.float32, alpha=0.3, gamma=1.7), "grad", False)))
    jobs.append(("softmax focal grad, runtime gamma and smoothing",
                 _softmax(fused.SoftmaxConfig("focal", "mean", torch.float32, gamma=2.5, label_smoothing=0.1), "grad",
                          True, "planes")))
    wide = [(f"{name}, 64-bit sizes", job) for name, job in jobs if "softmax" in name and "grad" in name]
    jobs = [(name, (kernel, _narrow(sig), ce)) for name, (kernel, sig, ce) in jobs] + wide
    for name, (kernel, sig, constexprs) in jobs:
        try:
            compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=constexprs), target=target)
            ptx = compiled.asm["ptx"]
            row = {"kernel": name, "ok": True, "ex2": ptx.count("ex2.approx"), "lg2": ptx.count("lg2.approx"),
                   "narrow_address_products": narrow_address_products(compiled.asm["ttir"])}
        except Exception as exc:  # report every kernel, not only the first failure
            row = {"kernel": name, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
