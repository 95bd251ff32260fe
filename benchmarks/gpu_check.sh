#!/usr/bin/env bash
# The GPU check, for the offline GPU machine as it is: its own python3, torch and Triton, nothing installed.
#
#   benchmarks/gpu_check.sh OUT_DIR             on a CUDA machine
#   benchmarks/gpu_check.sh --dry-run OUT_DIR   the same lines on a CPU: Triton's interpreter, tiny sizes (CI)
#
# It uses the python3 it finds (or GPU_CHECK_PYTHON) with focalkit taken from src/ (PYTHONPATH: no install,
# no network), and runs, each step under its own timeout, in under 7 minutes:
#   1. tests/test_triton.py with FOCALKIT_TEST_DEVICE=cuda (every loss, dtype and layout the interpreter
#      tests cover, at the real tile sizes; tests whose packages are absent skip, naming them);
#   2. benchmarks/gpu_extra.py, the hardware checks of issue 14: no host sync under
#      torch.cuda.set_sync_debug_mode("error"), CUDA-graph capture and replay, empty and multi-block inputs
#      (also under compute-sanitizer --tool memcheck where installed), bandwidth, offsets past 2**31;
#   3. focalkit bench --device cuda --quick: time and peak memory against the textbook formula.
# OUT_DIR gets at most 8 files: gpu_check.json (machine, versions, each step's result and numbers),
# gpu_check.md (a table), and the raw logs test_triton.txt, gpu_extra.txt, memcheck.txt, bench.txt.
# It exits non-zero, loudly, on any failure, mismatch or timeout, saying which step.
set -uo pipefail

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT="${1:?usage: benchmarks/gpu_check.sh [--dry-run] OUT_DIR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$ROOT"
PY="${GPU_CHECK_PYTHON:-python3}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() {
    echo "gpu_check: FAILED: $*" >&2
    printf '{"ok": false, "dry_run": %s, "failed": "%s"}\n' "$([ $DRY = 1 ] && echo true || echo false)" "$*" \
        > "$OUT/gpu_check.json"
    exit 1
}

if [ "$DRY" = 1 ]; then
    export TRITON_INTERPRET=1 FOCALKIT_TEST_DEVICE=cpu FOCALKIT_TRITON=always
    DEVICE=cpu
    TEST_ARGS=(-k "test_triton_equals_the_chunked_kernels and mean and 9")
    BENCH_ARGS=(--only focal --shapes small-detection --repeats 1)
    T_TESTS=240 T_EXTRA=120 T_BENCH=120
else
    command -v nvidia-smi > /dev/null || fail "step 0: nvidia-smi not found: this is not a CUDA machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$TMP/gpu.txt" \
        || fail "step 0: nvidia-smi cannot see a GPU"
    export FOCALKIT_TEST_DEVICE=cuda
    DEVICE=cuda
    TEST_ARGS=()
    BENCH_ARGS=()
    T_TESTS=190 T_EXTRA=80 T_BENCH=80  # with memcheck's 60: 410 s, under 7 minutes
fi
"$PY" -c "import torch, triton, focalkit" > "$TMP/import.txt" 2>&1 \
    || fail "step 0: $PY cannot import torch, triton and focalkit from src/: $(tail -1 "$TMP/import.txt")"
if [ "$DRY" = 0 ]; then
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || fail "step 0: torch.cuda.is_available() is False"
fi

# 1. the Triton tests on the device (TRITON_DEFAULT_FP_FUSION is left as the caller has it: the kernels
#    pass enable_fp_fusion themselves)
timeout "$T_TESTS" "$PY" -m pytest tests/test_triton.py -q -p no:cacheprovider --junitxml "$TMP/tests.xml" \
    ${TEST_ARGS[@]+"${TEST_ARGS[@]}"} > "$OUT/test_triton.txt" 2>&1
TESTS_RC=$?
# 2. the hardware checks, and their edge cases under memcheck
EXTRA_FLAGS=()
[ "$DRY" = 1 ] && EXTRA_FLAGS=(--dry-run)
timeout "$T_EXTRA" "$PY" benchmarks/gpu_extra.py "$TMP/extra.json" ${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"} \
    > "$OUT/gpu_extra.txt" 2>&1
EXTRA_RC=$?
if [ "$DRY" = 0 ] && command -v compute-sanitizer > /dev/null; then
    timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$PY" benchmarks/gpu_extra.py \
        "$TMP/memcheck.json" --only edges > "$OUT/memcheck.txt" 2>&1
    MEMCHECK_RC=$?
else
    echo "memcheck not run: $([ "$DRY" = 1 ] && echo 'dry run' || echo 'compute-sanitizer not found')" \
        > "$OUT/memcheck.txt"
    MEMCHECK_RC=0
fi
# 3. the benchmark
timeout "$T_BENCH" "$PY" -m focalkit bench --device "$DEVICE" --quick ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} \
    --json "$TMP/bench.json" > "$OUT/bench.txt" 2>&1
BENCH_RC=$?

"$PY" - "$OUT" "$TMP" "$DRY" "$TESTS_RC" "$EXTRA_RC" "$MEMCHECK_RC" "$BENCH_RC" <<'EOF'
import json, platform, sys, xml.etree.ElementTree as ET
from pathlib import Path

out, tmp, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
tests_rc, extra_rc, memcheck_rc, bench_rc = (int(v) for v in sys.argv[4:8])
import torch
import triton


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


gpu = (tmp / "gpu.txt").read_text().strip() if (tmp / "gpu.txt").exists() else "none (dry run on a CPU)"
summary = {"dry_run": dry, "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
           "triton": triton.__version__, "python": platform.python_version(),
           "steps": {"tests": {"rc": tests_rc}, "gpu_extra": {"rc": extra_rc}, "memcheck": {"rc": memcheck_rc},
                     "bench": {"rc": bench_rc}}}
for step, rc in (("tests", tests_rc), ("gpu_extra", extra_rc), ("memcheck", memcheck_rc), ("bench", bench_rc)):
    if rc == 124:
        summary["steps"][step]["timed_out"] = True
try:
    suite = ET.parse(tmp / "tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    summary["steps"]["tests"].update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
except (OSError, ET.ParseError, AttributeError):
    summary["steps"]["tests"]["tests"] = None
summary["steps"]["gpu_extra"]["result"] = read_json(tmp / "extra.json")
summary["steps"]["memcheck"]["result"] = read_json(tmp / "memcheck.json")
bench = read_json(tmp / "bench.json")
bench_errors, bench_rows = [], []
for row in (bench or {}).get("rows", []):
    for impl, r in row["results"].items():
        if "error" in r:
            bench_errors.append(f"{row['loss']} {row['shape']} {impl}: {r['error']}")
    bench_rows.append(row)
summary["steps"]["bench"].update({"errors": bench_errors, "rows": bench_rows})
t = summary["steps"]["tests"]
extra = summary["steps"]["gpu_extra"]["result"]
failed = [step for step, ok in (
    ("1 tests/test_triton.py", tests_rc == 0 and t.get("tests") and not t["failures"] and not t["errors"]),
    ("2 gpu_extra.py", extra_rc == 0 and extra is not None and extra.get("ok")),
    ("2 memcheck", memcheck_rc == 0),
    ("3 bench", bench_rc == 0 and bench is not None and not bench_errors)) if not ok]
summary["failed_steps"] = failed
summary["ok"] = not failed
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
lines = ["# GPU check" + (" (dry run: CPU, Triton's interpreter, tiny sizes)" if dry else ""), "",
         f"{gpu}; torch {summary['torch']} (CUDA {summary['cuda']}), Triton {summary['triton']}, "
         f"Python {summary['python']}", "", "| step | result |", "|---|---|",
         f"| 1 tests/test_triton.py | rc {tests_rc}: {t.get('tests')} tests, {t.get('failures')} failures, "
         f"{t.get('errors')} errors, {t.get('skipped')} skipped |"]
for name, check in ((extra or {}).get("checks") or {}).items():
    state = "skipped: " + check["skipped"] if "skipped" in check else ("ok" if check.get("ok") else "FAILED")
    lines.append(f"| 2 {name} | {state} {json.dumps(check.get('rows', check.get('error', '')))[:300]} |")
lines.append(f"| 2 memcheck | rc {memcheck_rc} |")
for row in bench_rows:
    cells = ", ".join(f"{impl} {r.get('ms', r.get('median_ms', r.get('error', '')))}"
                      for impl, r in row["results"].items())
    lines.append(f"| 3 bench {row['loss']} {row['shape']} | {cells[:300]} |")
lines.append(f"| 3 bench | rc {bench_rc}{'; errors: ' + '; '.join(bench_errors) if bench_errors else ''} |")
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print(json.dumps({k: summary[k] for k in ("ok", "dry_run", "gpu", "torch", "triton", "failed_steps")}, indent=2))
sys.exit(0 if summary["ok"] else 1)
EOF
RC=$?
if [ "$RC" -ne 0 ]; then  # gpu_check.json holds the details: not overwritten here
    echo "gpu_check: FAILED: step(s) did not pass (tests rc $TESTS_RC, gpu_extra rc $EXTRA_RC, memcheck rc" \
        "$MEMCHECK_RC, bench rc $BENCH_RC; see $OUT/gpu_check.md and the logs)" >&2
    exit 1
fi
echo "gpu_check: ok ($OUT/gpu_check.json, $OUT/gpu_check.md)"
