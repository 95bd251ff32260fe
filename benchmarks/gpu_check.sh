#!/usr/bin/env bash
# The GPU check, prepared for a CUDA machine with a fresh checkout:
#
#   benchmarks/gpu_check.sh OUT_DIR
#
# 1. creates .venv-gpu and installs torch (the CUDA build PyPI serves on Linux) and focalkit's test extras;
# 2. runs tests/test_triton.py on the GPU (FOCALKIT_TEST_DEVICE=cuda: the Triton kernels on hardware);
# 3. runs `focalkit bench --device cuda --quick` (time, CUDA peak memory, fraction of a copy's bandwidth),
#    then benchmarks/gpu_extra.py (no host sync, CUDA-graph capture, empty and multi-block inputs, bf16
#    bandwidth, offsets past 2**31), and its edge cases under compute-sanitizer memcheck where installed;
# 4. writes OUT_DIR/gpu_check.json (machine, versions, test counts, exit codes) and OUT_DIR/gpu_check.md
#    (the test summary and the bench table), plus the raw pytest and bench output beside them.
#
# It exits non-zero, loudly, on any failure or mismatch: no CUDA device, a failed install, a failing or
# erroring test, a bench error. Budget: under 8 minutes on a warm pip cache (each step has a timeout).
set -uo pipefail

OUT="${1:?usage: benchmarks/gpu_check.sh OUT_DIR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$ROOT"
VENV="${GPU_CHECK_VENV:-.venv-gpu}"
PY="$VENV/bin/python"
fail() { echo "gpu_check: FAILED: $*" >&2; echo "{\"ok\": false, \"failed\": \"$*\"}" > "$OUT/gpu_check.json"; exit 1; }

command -v nvidia-smi > /dev/null || fail "nvidia-smi not found: this is not a CUDA machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/nvidia-smi.txt" \
    || fail "nvidia-smi cannot see a GPU"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" || fail "python3 -m venv"
fi
timeout 300 "$PY" -m pip install -q --upgrade pip > "$OUT/install.log" 2>&1 || fail "pip upgrade (see install.log)"
timeout 300 "$PY" -m pip install -q torch==2.13.0 >> "$OUT/install.log" 2>&1 || fail "torch install (see install.log)"
timeout 300 "$PY" -m pip install -q -e '.[cli,test,triton]' >> "$OUT/install.log" 2>&1 \
    || fail "focalkit install (see install.log)"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || fail "torch.cuda.is_available() is False after the install"

# The kernels pass enable_fp_fusion explicitly (Triton 3.9 warns at the first compile otherwise, and this
# project's pytest turns warnings into errors); TRITON_DEFAULT_FP_FUSION is left as the caller has it.
FOCALKIT_TEST_DEVICE=cuda timeout 360 "$PY" -m pytest tests/test_triton.py -q -p no:cacheprovider \
    --junitxml "$OUT/test_triton.xml" > "$OUT/test_triton.txt" 2>&1
TESTS_RC=$?
timeout 240 "$PY" -m focalkit bench --device cuda --quick --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1
BENCH_RC=$?
# the hardware checks of issue 14: no host sync, CUDA-graph capture, edges, bandwidth, offsets past 2**31
timeout 300 "$PY" benchmarks/gpu_extra.py "$OUT/gpu_extra.json" > "$OUT/gpu_extra.txt" 2>&1
EXTRA_RC=$?
if command -v compute-sanitizer > /dev/null; then
    timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$PY" benchmarks/gpu_extra.py \
        "$OUT/memcheck.json" --only edges > "$OUT/memcheck.txt" 2>&1
    MEMCHECK_RC=$?
else
    echo "compute-sanitizer not found: memcheck not run" > "$OUT/memcheck.txt"
    MEMCHECK_RC=0
fi

"$PY" - "$OUT" "$TESTS_RC" "$BENCH_RC" "$EXTRA_RC" "$MEMCHECK_RC" <<'EOF'
import json, platform, sys, xml.etree.ElementTree as ET
from pathlib import Path

out, tests_rc, bench_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
extra_rc, memcheck_rc = int(sys.argv[4]), int(sys.argv[5])
import torch

summary = {"gpu": (out / "nvidia-smi.txt").read_text().strip(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version(), "tests_rc": tests_rc,
           "bench_rc": bench_rc, "extra_rc": extra_rc, "memcheck_rc": memcheck_rc}
try:
    summary["extra"] = json.loads((out / "gpu_extra.json").read_text())
except (OSError, ValueError):
    summary["extra"] = None
try:
    import triton
    summary["triton"] = triton.__version__
except ImportError:
    summary["triton"] = None
try:
    suite = ET.parse(out / "test_triton.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    summary["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
except (OSError, ET.ParseError, AttributeError):
    summary["tests"] = None
bench_errors = []
if (out / "bench.json").exists():
    for row in json.loads((out / "bench.json").read_text())["rows"]:
        bench_errors += [f"{row['loss']} {row['shape']} {impl}: {r['error']}" for impl, r in row["results"].items()
                         if "error" in r]
summary["bench_errors"] = bench_errors
t = summary["tests"]
summary["ok"] = bool(tests_rc == 0 and bench_rc == 0 and extra_rc == 0 and memcheck_rc == 0 and t
                     and not t["failures"] and not t["errors"] and not bench_errors)
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
tail = (out / "test_triton.txt").read_text().strip().splitlines()[-1:] if (out / "test_triton.txt").exists() else []
bench = (out / "bench.txt").read_text() if (out / "bench.txt").exists() else ""
extra = (out / "gpu_extra.txt").read_text() if (out / "gpu_extra.txt").exists() else ""
(out / "gpu_check.md").write_text(
    f"# GPU check\n\n{summary['gpu']}; torch {summary['torch']} (CUDA {summary['cuda']}), triton {summary['triton']}\n\n"
    f"tests/test_triton.py on cuda: {tail[0] if tail else 'no output'}\n\n```\n{bench}\n```\n\n"
    f"Hardware checks (benchmarks/gpu_extra.py):\n\n```\n{extra}\n```\n")
print(json.dumps(summary, indent=2))
sys.exit(0 if summary["ok"] else 1)
EOF
RC=$?
[ "$RC" -eq 0 ] || fail "a step did not pass (tests rc $TESTS_RC, bench rc $BENCH_RC, extra rc $EXTRA_RC, memcheck rc $MEMCHECK_RC; see $OUT)"
echo "gpu_check: ok ($OUT/gpu_check.json, $OUT/gpu_check.md)"
