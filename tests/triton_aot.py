"""Compiles the generated Triton kernels for a CUDA GPU without one (Triton ships ptxas): run as a script.

Prints one JSON line per kernel: its name, whether it compiled, and how many ``ex2`` / ``lg2``
(the GPU's exp and log) its PTX holds. Used by ``tests/test_triton.py`` in a subprocess, because
the interpreter the other tests run on must be chosen before Triton is imported, and this needs
the real compiler.
"""

from __future__ import annotations

import json
import os
import sys

# Triton and focalkit are imported in main(): pytest's doctest collection imports this file too, and
# must not load Triton outside the interpreter the other tests use


def _sigmoid(cfg, mode: str, has_w: bool, pattern: tuple[bool, ...] | None = None) -> tuple[object, dict, dict]:
    import torch

    from focalkit.kernels import triton_kernels

    kernel = triton_kernels._sigmoid_kernel(cfg, mode, has_w, None, cfg.family == "ghmc" and mode != "hist",
                                            mode == "sum", False, (pattern, None))
    f = "*fp64" if cfg.dtype == torch.float64 else "*fp32"
    sig = {"x_ptr": f, "y_ptr": f, "w_ptr": f, "pw_ptr": f, "beta_ptr": f, "scale_ptr": f, "gout_ptr": f,
           "out_ptr": f, "part_ptr": "*i32" if mode == "hist" else f, "n": "i64",
           **{f"{v}_{k}{i}": "i64" for v in ("w", "pw") for k in "st" for i in range(4)}, "BLOCK": "constexpr"}
    return kernel, sig, {"BLOCK": 1024}


def _softmax(cfg, mode: str, has_w: bool, layout: str) -> tuple[object, dict, dict]:
    from focalkit.kernels import triton_kernels

    kernel = triton_kernels._softmax_kernel(cfg, mode, has_w, True, True, False, layout)
    f = "*fp32"
    sig = {"x_ptr": f, "t_ptr": "*i64" if cfg.sparse else f, "w_ptr": f, "cf_ptr": f, "cw_ptr": f, "scale_ptr": f,
           "gout_ptr": f, "out_ptr": f, "part_ptr": f, "P": "i64", "C": "i64", "S": "i64", "BLOCK_P": "constexpr",
           "BLOCK_C": "constexpr"}
    return kernel, sig, {"BLOCK_P": 128, "BLOCK_C": 32}


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
    for name, (kernel, sig, constexprs) in jobs:
        try:
            compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=constexprs), target=target)
            ptx = compiled.asm["ptx"]
            row = {"kernel": name, "ok": True, "ex2": ptx.count("ex2.approx"), "lg2": ptx.count("lg2.approx")}
        except Exception as exc:  # report every kernel, not only the first failure
            row = {"kernel": name, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
