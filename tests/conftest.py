import os

os.environ.setdefault("KERAS_BACKEND", "torch")
if os.environ.get("FOCALKIT_TEST_DEVICE", "cpu") == "cpu":
    # Triton's interpreter runs its kernels on CPU tensors; it must be chosen before Triton is imported
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
from hypothesis import settings

if os.environ.get("FOCALKIT_TRITON") == "always" and os.environ.get("TRITON_INTERPRET") == "1":
    # every loss on Triton's interpreter, which runs a kernel on NumPy: NumPy warns at log(0) or
    # inf - inf where a GPU computes the same IEEE values silently (the formulas rely on exp(-inf) = 0)
    import numpy as np

    np.seterr(all="ignore")

settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Largest absolute difference seen against each oracle, printed at the end of the run: the
# closing notes quote this table.
_DIFFS: dict[str, float] = {}


@pytest.fixture
def agree():
    """``agree(oracle_name, actual, expected, rtol, atol)``: assert_close, and remember the gap."""

    def check(oracle: str, actual, expected, *, rtol: float = 1e-6, atol: float = 1e-7) -> None:
        actual = torch.as_tensor(actual).detach().double().cpu()
        expected = torch.as_tensor(expected).detach().double().cpu()
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
        gap = float((actual - expected).abs().max()) if actual.numel() else 0.0
        _DIFFS[oracle] = max(_DIFFS.get(oracle, 0.0), gap)

    return check


def pytest_terminal_summary(terminalreporter):
    if _DIFFS:
        terminalreporter.section("largest difference against each oracle")
        for name, gap in sorted(_DIFFS.items()):
            terminalreporter.write_line(f"{name:55s} {gap:.3g}")
