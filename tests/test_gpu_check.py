"""``benchmarks/gpu_check.sh --dry-run`` (issue 21): the GPU check's every line on a CPU, through Triton's
interpreter at tiny sizes, so that the script cannot rot before a GPU machine runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("triton")


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and coreutils' timeout")
def test_dry_run_passes_and_writes_at_most_eight_files(tmp_path):
    out = tmp_path / "gpu"
    env = {key: value for key, value in os.environ.items() if key not in ("FOCALKIT_TRITON", "TRITON_INTERPRET")}
    env["GPU_CHECK_PYTHON"] = sys.executable
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=420, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files
    assert {"gpu_check.json", "gpu_check.md", "test_triton.txt", "gpu_extra.txt", "bench.txt"} <= set(files)
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["ok"] is True
    assert summary["dry_run"] is True
    assert summary["steps"]["tests"]["tests"] > 0
    assert summary["steps"]["tests"]["failures"] == 0
    checks = summary["steps"]["gpu_extra"]["result"]["checks"]
    assert checks["edges"]["ok"] is True
    assert "skipped" not in checks["edges"]
    assert all("dry run" in checks[name]["skipped"] for name in ("sync", "graph", "bandwidth", "huge"))
    assert summary["steps"]["bench"]["rows"]
    assert "dry run" in (out / "gpu_check.md").read_text()


def test_without_a_gpu_a_real_run_fails_loudly_naming_the_step(tmp_path):
    if shutil.which("nvidia-smi") is not None:
        pytest.skip("a CUDA machine: the real check is gpu_check.sh itself")
    out = tmp_path / "gpu"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "step 0: nvidia-smi not found" in done.stderr
    assert json.loads((out / "gpu_check.json").read_text())["ok"] is False
