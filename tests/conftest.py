import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest
import torch
from hypothesis import settings

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
