"""The Triton kernels, run on the CPU by Triton's interpreter (``TRITON_INTERPRET=1``).

They are checked against the chunked kernels (which the oracle tests check against the articles,
PyTorch and the peers), by ``gradcheck`` in float64, by reading the generated source (one ``exp``
and one ``log`` per element for the sigmoid family), and by running the core test files whole with
every loss routed through them; and every kind of kernel is compiled by Triton's real compiler
for a Hopper GPU (``tests/triton_aot.py``, no GPU needed). On a CUDA machine the same tests run on
the GPU when ``FOCALKIT_TEST_DEVICE=cuda``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import focalkit as fk
from focalkit.kernels import fused, triton_kernels

from .cases import SIGMOID, SOFTMAX, Case

pytest.importorskip("triton")

DEVICE = os.environ.get("FOCALKIT_TEST_DEVICE", "cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def on_triton(monkeypatch):
    """Route every loss through the Triton kernels (interpreted on the CPU: conftest sets TRITON_INTERPRET)."""
    monkeypatch.setenv("FOCALKIT_TRITON", "always")
    with np.errstate(all="ignore"):  # the interpreter's NumPy warns at log(0), where a GPU is silent
        yield


def _run(case: Case, x, y, w, reduction: str, mode: str, monkeypatch, **extra):
    monkeypatch.setenv("FOCALKIT_TRITON", mode)
    xr = x.clone().requires_grad_(True)
    with np.errstate(all="ignore"):
        out = case.function(xr, y, sample_weight=w, reduction=reduction, **{**case.options, **extra})
        gout = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
        (g,) = torch.autograd.grad(out, xr, gout)
    return out.detach(), g


def _inputs(case: Case, shape, dtype=torch.float64, ignore: bool = True):
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 4).to(dtype)
    if case.family == "sigmoid":
        y = (torch.rand(shape, generator=gen) < 0.3).double()
        w = torch.rand(shape, generator=gen, dtype=torch.float64)
    else:
        y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
        if ignore:
            y[0] = -100
        w = torch.rand((shape[0], *shape[2:]), generator=gen, dtype=torch.float64)
    return x.to(DEVICE), y.to(DEVICE), w.to(DEVICE)


# every case, and cross-entropy without label smoothing too (the class-id kernel; smoothing takes the dense one)
TRITON_CASES = [
    *SIGMOID,
    Case("cross_entropy", fk.cross_entropy, fk.CrossEntropyLoss, "softmax"),
    *SOFTMAX,
    Case("sigmoid_focal_loss[γ=1.5]", fk.sigmoid_focal_loss, fk.SigmoidFocalLoss, "sigmoid", {"gamma": 1.5}),
    Case("binary_cross_entropy[pos_weight]", fk.binary_cross_entropy, fk.BinaryCrossEntropyLoss, "sigmoid",
         {"pos_weight": 3.0}),
    Case("softmax_focal_loss[γ=0.5]", fk.softmax_focal_loss, fk.SoftmaxFocalLoss, "softmax",
         {"gamma": 0.5, "alpha": 0.25}),
    Case("ghmc_loss[30 bins]", fk.ghmc_loss, fk.GHMCLoss, "sigmoid", {"bins": 30}),
]


@pytest.mark.parametrize("case", TRITON_CASES, ids=str)
@pytest.mark.parametrize("shape", [(9, 5), (3, 7, 6, 5)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_triton_equals_the_chunked_kernels(case, shape, reduction, monkeypatch):
    x, y, w = _inputs(case, shape)
    expected = _run(case, x, y, w, reduction, "0", monkeypatch)
    actual = _run(case, x, y, w, reduction, "always", monkeypatch)
    for a, b in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_softmax_layouts(monkeypatch):
    """[N, C] rows, [B, C, H, W] planes, and the flat form taken past CUDA's 65535 samples per grid column."""
    case = SOFTMAX[1]
    for shape, max_y, layout in [((9, 5), 65535, "rows"), ((3, 7, 6, 5), 65535, "planes"), ((3, 7, 6, 5), 2, "flat")]:
        monkeypatch.setattr(triton_kernels, "MAX_GRID_Y", max_y)
        x, y, w = _inputs(case, shape)
        assert triton_kernels._Softmax(x, y, w).layout == layout
        expected = _run(case, x, y, w, "mean", "0", monkeypatch)
        actual = _run(case, x, y, w, "mean", "always", monkeypatch)
        for a, b in zip(actual, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", TRITON_CASES[:9], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_triton_in_lower_precision(case, dtype, monkeypatch):
    """float32 and float16 logits: loads are converted, the formula runs in float32, the gradient is stored
    in the logits' dtype."""
    x, y, w = _inputs(case, (16, 10), dtype=dtype)
    expected = _run(case, x, y, w, "mean", "0", monkeypatch)
    actual = _run(case, x, y, w, "mean", "always", monkeypatch)
    assert actual[1].dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-3, "atol": 1e-4}
    for a, b in zip(actual, expected, strict=True):
        torch.testing.assert_close(a.double(), b.double(), **tol)


@pytest.mark.parametrize("case", TRITON_CASES, ids=str)
def test_triton_gradient_passes_gradcheck(case, on_triton):
    x, y, w = _inputs(case, (4, 5, 3))

    def f(xx):
        return case.function(xx, y, sample_weight=w, **case.options)

    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(True),), eps=1e-6, atol=1e-8)


def test_triton_second_derivative_goes_through_the_formula(on_triton):
    x, y, _ = _inputs(SIGMOID[1], (6, 4))
    assert torch.autograd.gradgradcheck(lambda xx: fk.sigmoid_focal_loss(xx, y), (x.clone().requires_grad_(True),))


def test_triton_handles_bool_targets_ignore_index_and_positives(monkeypatch):
    case = Case("binary_cross_entropy", fk.binary_cross_entropy, fk.BinaryCrossEntropyLoss, "sigmoid")
    x, y, _ = _inputs(case, (8, 6))
    for target, extra in [(y.bool(), {}), (torch.where(y[:, :1] > 0.5, -1, y.long()), {"ignore_index": -1}),
                          (y, {"normalizer": "positives"}),
                          (y, {"pos_weight": torch.linspace(0.5, 2, 6, dtype=torch.float64, device=DEVICE)})]:
        expected = _run(case, x, target, None, "mean", "0", monkeypatch, **extra)
        actual = _run(case, x, target, None, "mean", "always", monkeypatch, **extra)
        for a, b in zip(actual, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.uint8])
def test_low_precision_targets_with_ignore_index(dtype, monkeypatch):
    """A bf16 target with ``ignore_index`` failed in the interpreter (``y != 255`` on a bf16 ``y``)."""
    case = Case("sigmoid_focal_loss", fk.sigmoid_focal_loss, fk.SigmoidFocalLoss, "sigmoid")
    x, y, _ = _inputs(case, (8, 6), dtype=torch.float32)
    target = torch.where(y[:, :1] > 0.5, 255.0, y).to(dtype)
    expected = _run(case, x, target, None, "mean", "0", monkeypatch, ignore_index=255)
    actual = _run(case, x, target, None, "mean", "always", monkeypatch, ignore_index=255)
    for a, b in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("shape", "w_shape", "pw_shape", "merged"), [
    ((12, 5), (12, 1), (5,), (12, 5)),
    ((2, 3, 4, 5), (2, 1, 4, 5), (3, 1, 1), (2, 3, 20)),
    ((2, 3, 4, 5), (1, 3, 1, 1), None, (2, 3, 20)),
], ids=str)
def test_broadcast_weights_are_read_through_strides(shape, w_shape, pw_shape, merged, monkeypatch):
    """A per-sample or per-class weight is not copied to the input's size on the Triton path."""
    case = Case("binary_cross_entropy", fk.binary_cross_entropy, fk.BinaryCrossEntropyLoss, "sigmoid")
    x, y, _ = _inputs(case, shape)
    w = torch.rand(w_shape, dtype=torch.float64, device=DEVICE)
    extra = {} if pw_shape is None else {"pos_weight": torch.rand(pw_shape, dtype=torch.float64, device=DEVICE) + 0.5}
    flat = triton_kernels._Sigmoid(x, y, w, extra.get("pos_weight"))
    assert flat.w.numel() == w.numel()
    assert tuple(flat.w_args[: len(merged)]) == merged
    for reduction in ("mean", "none"):
        expected = _run(case, x, y, w, reduction, "0", monkeypatch, **extra)
        actual = _run(case, x, y, w, reduction, "always", monkeypatch, **extra)
        for a, b in zip(actual, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_classes_last_and_empty_inputs(on_triton):
    x = torch.randn(3, 11, 9, dtype=torch.float64, device=DEVICE, requires_grad=True)
    t = torch.randint(0, 9, (3, 11), device=DEVICE)
    loss = fk.softmax_focal_loss(x, t, class_dim=-1, reduction="none")
    ref = fk.softmax_focal_loss(x.detach().movedim(-1, 1), t, reduction="none")
    torch.testing.assert_close(loss, ref)
    empty = torch.zeros(0, 5, dtype=torch.float64, device=DEVICE, requires_grad=True)
    value = fk.sigmoid_focal_loss(empty, torch.zeros(0, 5, dtype=torch.float64, device=DEVICE), reduction="sum")
    value.backward()
    assert float(value.detach()) == 0.0
    assert empty.grad.shape == (0, 5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_with_no_positions_gives_the_empty_result_and_no_phantom_rows(on_triton, reduction):
    """``[N, C, 0]``: ``s = max(1, numel // (N·C))`` made N phantom rows (the interpreter crashed, a GPU would
    read out of bounds); the chunked path raised. Both now give the empty result."""
    x = torch.randn(2, 3, 0, dtype=torch.float64, device=DEVICE, requires_grad=True)
    t = torch.zeros(2, 0, dtype=torch.long, device=DEVICE)
    loss = fk.softmax_focal_loss(x, t, reduction=reduction)
    loss.sum().backward()
    assert loss.shape == ((2, 0) if reduction == "none" else ())
    assert x.grad.shape == (2, 3, 0)
    if reduction != "none":
        assert float(loss.detach()) == 0.0
    assert triton_kernels._Softmax(x.detach(), t, None).s == 0


def test_ghmc_histogram_matches_bincount(on_triton):
    x = torch.randn(1000, dtype=torch.float64, device=DEVICE) * 3
    y = (torch.rand(1000, device=DEVICE) < 0.2).double()
    cfg = fused.SigmoidConfig("ghmc", "mean", torch.float64, bins=30)
    counts, n_valid = triton_kernels.ghmc_counts(cfg, x, y, None)
    g = (torch.sigmoid(x) - y).abs()
    expected = torch.bincount((g * 30).long().clamp(max=29), minlength=30).double()
    torch.testing.assert_close(counts, expected)
    assert float(n_valid) == 1000


def test_ghmc_module_with_momentum_keeps_the_same_running_counts(monkeypatch):
    x = torch.randn(4, 50, 7, dtype=torch.float64, device=DEVICE)
    y = (torch.rand(4, 50, 7, device=DEVICE) < 0.2).double()
    results = []
    for mode in ("0", "always"):
        monkeypatch.setenv("FOCALKIT_TRITON", mode)
        module = fk.GHMCLoss(bins=10, momentum=0.7).double().to(DEVICE)
        with np.errstate(all="ignore"):
            values = [module(x[i], y[i]) for i in range(4)]
        results.append((torch.stack(values), module.running_counts.clone()))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-14)


def _kernel(cfg, mode: str = "grad"):
    return triton_kernels.kernel_source(triton_kernels._sigmoid_kernel(cfg, mode, False, None, False, False, False))


def test_sigmoid_kernels_take_one_exp_and_one_log_per_element():
    """σ(x) and softplus(x) share exp(−|x|); whole γ is a product, not a pow; a gradient that needs no
    log (``σ − y`` and the truncations') has none, since unused lines are dropped."""
    for family, options in [("bce", {}), ("focal", {"alpha": 0.25}), ("hard", {}), ("ghmc", {"bins": 10})]:
        cfg = fused.SigmoidConfig(family, "mean", torch.float32, **options)
        loss, grad = _kernel(cfg, "sum"), _kernel(cfg, "grad")
        assert (loss.count("tl.exp("), loss.count("tl.log(")) == (1, 1), (family, loss)
        assert (grad.count("tl.exp("), grad.count("tl.log(")) == (1, int(family == "focal")), (family, grad)
    soft = _kernel(fused.SigmoidConfig("soft", "mean", torch.float32, k=2.0), "sum")
    assert (soft.count("tl.exp("), soft.count("tl.log(")) == (2, 1)  # σ(Kx) needs its own exp
    fractional = _kernel(fused.SigmoidConfig("focal", "mean", torch.float32, gamma=1.5), "grad")
    # q^γ and q^{γ−1}: two exp of one shared log q
    assert (fractional.count("tl.exp("), fractional.count("tl.log(")) == (3, 2)


def test_generated_source_is_specialised_and_shares_subexpressions():
    source = _kernel(fused.SigmoidConfig("focal", "mean", torch.float32, alpha=None, gamma=2.0))
    assert "0.25" not in source  # α off: no weighting code
    names = re.findall(r"^\s+(v\d+) = (.*)$", source, flags=re.MULTILINE)
    expressions = [expr for _, expr in names]
    assert len(expressions) == len(set(expressions))  # every expression written once


def test_dispatch(monkeypatch):
    x = torch.zeros(3)
    monkeypatch.delenv("FOCALKIT_TRITON", raising=False)
    assert not triton_kernels.wanted(x)  # CPU tensors: the chunked kernels
    monkeypatch.setenv("FOCALKIT_TRITON", "0")
    assert not triton_kernels.wanted(x)
    monkeypatch.setenv("FOCALKIT_TRITON", "sometimes")
    with pytest.raises(ValueError, match="FOCALKIT_TRITON: expected one of auto, 0, always; got 'sometimes'"):
        triton_kernels.wanted(x)
    monkeypatch.setenv("FOCALKIT_TRITON", "always")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        triton_kernels.wanted(x)


def test_label_smoothing_and_probability_targets_run_on_triton(monkeypatch):
    x, t, w = _inputs(SOFTMAX[1], (3, 7, 6, 5))
    prob = torch.softmax(torch.randn(3, 7, 6, 5, dtype=torch.float64, device=DEVICE), 1)
    cw = torch.linspace(0.5, 2.0, 7, dtype=torch.float64, device=DEVICE)
    for case in SOFTMAX:
        for target, extra in [(t, {"label_smoothing": 0.2, "class_weight": cw}), (prob, {}),
                              (prob, {"label_smoothing": 0.1})]:
            for reduction in ("mean", "none"):
                expected = _run(case, x, target, w, reduction, "0", monkeypatch, **extra)
                actual = _run(case, x, target, w, reduction, "always", monkeypatch, **extra)
                for a, b in zip(actual, expected, strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_more_classes_than_the_kernel_takes_fall_back(on_triton, monkeypatch):
    calls = []
    monkeypatch.setattr(triton_kernels, "softmax_loss", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(triton_kernels, "MAX_CLASSES", 2)
    x = torch.randn(4, 3, dtype=torch.float64, device=DEVICE)
    fk.cross_entropy(x, torch.tensor([0, 1, 2, 1], device=DEVICE))
    assert calls == []


def test_core_test_files_pass_with_every_loss_on_triton():
    """The oracle, gradient, layout and module tests, unchanged, with every loss routed through the
    Triton kernels (those the kernels do not take fall back, as in use)."""
    # CPU tensors on the interpreter, also on a CUDA machine
    env = {**os.environ, "FOCALKIT_TRITON": "always", "TRITON_INTERPRET": "1", "FOCALKIT_TEST_DEVICE": "cpu"}
    files = ["tests/test_oracles.py", "tests/test_gradients.py", "tests/test_layouts.py", "tests/test_identities.py",
             "tests/test_modules.py", "tests/test_distributed.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout)



def test_kernels_compile_for_a_cuda_gpu():
    """Every kind of generated kernel through Triton's real compiler down to a cubin for sm_90 (Hopper),
    which needs no GPU: the interpreter accepts more than the compiler does. Sizes are compiled as the
    ``i32`` a real launch below 2**31 gets (and the gradient kernels with ``i64`` too), bool and uint8
    targets with a negative ``ignore_index``, and no address may come from a 32-bit product (issue 14,
    items 2 and 5). In the PTX, a sigmoid kernel holds one ``ex2`` (the GPU's exp) per element: 8 per
    thread for a block of 1024 over 4 warps (the log is a polynomial of ``fma``s), the softened loss
    with K ≠ 1 two; a γ taken at run time adds the two of its powers."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "triton_aot.py"), "90"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["kernel"]: row for row in map(json.loads, done.stdout.splitlines())}
    failed = {name: row["error"] for name, row in rows.items() if not row["ok"]}
    assert not failed
    assert len(rows) == 47
    narrow = {name: row["narrow_address_products"] for name, row in rows.items() if row["narrow_address_products"]}
    assert not narrow
    for name, row in rows.items():
        if name.startswith("sigmoid") and "float64" not in name:
            assert row["ex2"] == (16 if " soft " in name else 24 if "runtime" in name else 8), name


def test_the_address_check_finds_a_32_bit_product(monkeypatch):
    """The check above, on TTIR of the kind the old ``cls * S`` offset gave."""
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    from triton_aot import narrow_address_products

    ttir = """
    %cls_4 = tt.make_range {end = 32 : i32, start = 0 : i32} : tensor<32xi32> loc(#loc1)
    %xoff_22 = tt.splat %S : i32 -> tensor<1x32xi32> loc(#loc2)
    %xoff_23 = arith.muli %cls_4, %xoff_22 : tensor<1x32xi32> loc(#loc3)
    %xoff_24 = arith.extsi %xoff_23 : tensor<1x32xi32> to tensor<1x32xi64> loc(#loc4)
    %x = tt.addptr %x_ptr, %xoff_24 : tensor<1x32x!tt.ptr<f32>>, tensor<1x32xi64> loc(#loc5)
    %wide = arith.muli %a, %b : tensor<1x32xi64> loc(#loc6)
    %y = tt.addptr %y_ptr, %wide : tensor<1x32x!tt.ptr<f32>>, tensor<1x32xi64> loc(#loc7)
    """
    found = narrow_address_products(ttir)
    assert len(found) == 1
    assert found[0].startswith("%xoff_23 = arith.muli")


class _Broken:
    """A kernel that raises at launch: by default as on a GPU this Triton cannot build for."""

    def __init__(self, message: str = "Triton Error [CUDA]: no kernel image is available for execution on the device",
                 error: type = RuntimeError):
        self.message, self.error, self.calls = message, error, 0

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.calls += 1
            raise self.error(self.message)

        return launch


@pytest.mark.parametrize("fails", ["forward", "backward"])
def test_a_kernel_that_cannot_be_built_falls_back_with_one_warning(fails, monkeypatch):
    """That kernel is given up (one warning), its calls take the chunked kernels with the same results,
    and the other kernels stay on Triton: no process-wide switch (issue 14, item 6)."""
    case = SIGMOID[1]
    x, y, w = _inputs(case, (6, 5))
    monkeypatch.setenv("FOCALKIT_TRITON", "0")
    xe = x.clone().requires_grad_(True)
    expected = case.function(xe, y, sample_weight=w, **case.options)
    expected.backward()
    monkeypatch.setenv("FOCALKIT_TRITON", "auto")
    monkeypatch.setattr(triton_kernels, "wanted", lambda t: True)  # as on a GPU
    broken = _Broken()
    real = triton_kernels._sigmoid_kernel
    monkeypatch.setattr(triton_kernels, "_sigmoid_kernel",
                        lambda cfg, mode, *a: broken if (mode == "grad") == (fails == "backward") else real(
                            cfg, mode, *a))

    def loss_and_backward():
        xr = x.clone().requires_grad_(True)
        value = case.function(xr, y, sample_weight=w, **case.options)
        value.backward()
        return value, xr.grad

    with pytest.warns(RuntimeWarning, match="Triton kernel cannot be built here .*no kernel image.*chunked PyTorch"):
        loss, grad = loss_and_backward()
    torch.testing.assert_close(loss.detach(), expected.detach())
    torch.testing.assert_close(grad, xe.grad)
    assert broken.focalkit_failed.startswith("RuntimeError: Triton Error [CUDA]: no kernel image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, and the broken kernel is not tried again
        loss, grad = loss_and_backward()
    assert broken.calls == 1
    torch.testing.assert_close(grad, xe.grad)
    assert triton_kernels.wanted(x)
    other = real(fused.SigmoidConfig("bce", "mean", torch.float64), "sum", False, None, False, False, False)
    assert getattr(other, "focalkit_failed", None) is None


@pytest.mark.parametrize(("message", "error"), [
    ("CUDA error: an illegal memory access was encountered", RuntimeError),  # sticky: left by earlier work
    ("Triton Error [CUDA]: misaligned address", RuntimeError),
    ("Pointer argument cannot be accessed from Triton (cpu tensor?)", ValueError),  # a caller's tensor
])
def test_other_failures_are_raised_and_disable_nothing(message, error, monkeypatch):
    monkeypatch.setenv("FOCALKIT_TRITON", "auto")
    monkeypatch.setattr(triton_kernels, "wanted", lambda t: True)
    broken = _Broken(message, error)
    monkeypatch.setattr(triton_kernels, "_sigmoid_kernel", lambda *a: broken)
    x = torch.randn(3, 2, dtype=torch.float64, device=DEVICE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=re.escape(message)):
            fk.sigmoid_focal_loss(x, torch.ones_like(x))
    assert not hasattr(broken, "focalkit_failed")


def test_a_first_launch_inside_cuda_graph_capture_takes_the_chunked_kernels(monkeypatch):
    """A compile during capture would invalidate it: a kernel that has not run yet is not launched then."""
    launched = []

    class Kernel:
        def __getitem__(self, grid):
            return lambda *a, **k: launched.append(grid)

    kernel = Kernel()
    monkeypatch.setattr(triton_kernels, "_capturing", lambda: True)
    with pytest.raises(triton_kernels.TritonUnavailable, match="CUDA-graph capture"):
        triton_kernels._launch(kernel, (1,), 3)
    assert launched == []
    monkeypatch.setattr(triton_kernels, "_capturing", lambda: False)
    triton_kernels._launch(kernel, (2,), 3)  # the warm-up
    monkeypatch.setattr(triton_kernels, "_capturing", lambda: True)
    triton_kernels._launch(kernel, (3,), 3)  # warmed up: captured
    assert launched == [(2,), (3,)]


def test_runtime_options_share_one_kernel_and_the_cache_is_bounded(on_triton, monkeypatch):
    """A γ schedule (or α, a threshold, K, smoothing) compiles no kernel per value (issue 14, item 8)."""
    x = torch.randn(7, 5, dtype=torch.float64, device=DEVICE) * 3
    y = (torch.rand(7, 5, device=DEVICE) < 0.3).double()
    kernels = {}
    for gamma, alpha in [(1.5, 0.25), (2.5, 0.6), (0.7, 0.1)]:
        cfg = fused.SigmoidConfig("focal", "mean", torch.float64, alpha=alpha, gamma=gamma)
        kernels[gamma] = triton_kernels._sigmoid_kernel(cfg, "grad", False, None, False, False, False)
        monkeypatch.setenv("FOCALKIT_TRITON", "always")
        got = _run(SIGMOID[1], x, y, None, "mean", "always", monkeypatch, gamma=gamma, alpha=alpha)
        want = _run(SIGMOID[1], x, y, None, "mean", "0", monkeypatch, gamma=gamma, alpha=alpha)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert len({id(k) for k in kernels.values()}) == 1
    whole = fused.SigmoidConfig("focal", "mean", torch.float64, alpha=0.25, gamma=2.0)  # specialised: products
    assert triton_kernels._sigmoid_kernel(whole, "grad", False, None, False, False, False) is not kernels[1.5]
    for eps in (0.05, 0.2):
        xs, t, _ = _inputs(SOFTMAX[0], (6, 4))
        got = _run(SOFTMAX[0], xs, t, None, "mean", "always", monkeypatch, label_smoothing=eps)
        want = _run(SOFTMAX[0], xs, t, None, "mean", "0", monkeypatch, label_smoothing=eps)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(triton_kernels, "_CACHE_SIZE", 3)
    monkeypatch.setattr(triton_kernels, "_cache", triton_kernels.OrderedDict())
    for bins in range(2, 8):
        triton_kernels._sigmoid_kernel(fused.SigmoidConfig("ghmc", "mean", torch.float32, bins=bins), "hist", False,
                                       None, False, False, False)
    assert len(triton_kernels._cache) == 3


def test_a_failing_kernel_raises_with_always(on_triton, monkeypatch):
    monkeypatch.setattr(triton_kernels, "_sigmoid_kernel", lambda *a: _Broken())
    with pytest.raises(RuntimeError, match="no kernel image"):
        fk.sigmoid_focal_loss(torch.randn(3, 2, dtype=torch.float64, device=DEVICE),
                              torch.ones(3, 2, dtype=torch.float64, device=DEVICE))


def test_launches_state_fp_fusion():
    """Left unset, Triton 3.9 warns at the first compile (``TRITON_DEFAULT_FP_FUSION``), and this suite turns
    warnings into errors: every launch passes ``enable_fp_fusion`` itself (issue 14, item 6)."""
    seen = {}

    class Kernel:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                seen.update(grid=grid, args=args, kwargs=kwargs)
            return launch

    triton_kernels._launch(Kernel(), (3,), "x", "y", BLOCK=64)
    assert seen == {"grid": (3,), "args": ("x", "y"), "kwargs": {"enable_fp_fusion": True, "BLOCK": 64}}


def test_launches_make_the_tensors_device_current(monkeypatch):
    """Triton launches on the current CUDA device, not the tensors': each launch enters ``torch.cuda.device``
    of its first tensor's device (here recorded; no GPU needed)."""
    entered = []

    class Recorder:
        def __init__(self, device):
            self.device = device

        def __enter__(self):
            entered.append(self.device)

        def __exit__(self, *exc):
            return False

    class OnGpu1:
        device = torch.device("cuda", 1)

    monkeypatch.setattr(torch.cuda, "device", Recorder)
    kernel = type("K", (), {"__getitem__": lambda self, grid: lambda *a, **k: None})()
    triton_kernels._launch(kernel, (1,), OnGpu1(), 3)
    assert entered == [torch.device("cuda", 1)]
    triton_kernels._launch(kernel, (1,), torch.zeros(2), 3)  # CPU tensors (the interpreter): nothing entered
    assert entered == [torch.device("cuda", 1)]


@pytest.mark.parametrize("target", ["ids", "probabilities"])
@pytest.mark.parametrize("family", ["ce", "focal", "complement"])
def test_a_class_leading_by_a_wide_margin_keeps_its_precision_on_triton(on_triton, family, target):
    """The math core's leader sum (``Σ frac(e)``, tied leaders counted) as the generated kernels write it."""
    from .test_boundary import test_a_class_leading_by_a_wide_margin_keeps_its_relative_precision as wide
    from .test_boundary import test_tied_leaders_are_counted_once_each as tied

    for dtype in (torch.float32, torch.float64):
        for margin in (15.0, 20.0, 28.0):
            wide(family, dtype, margin, target)
        tied(family, target, dtype)
