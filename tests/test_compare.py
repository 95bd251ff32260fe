"""``focalkit compare``, second edition: the statistics (with their coverage), the Python API around a
user's ``fit``, the boosted-tree and dense tasks, post-hoc controls and the report's plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import focalkit.compare
from focalkit.cli import main
from focalkit.compare import stats
from focalkit.compare.metrics import evaluate, temperature_scale

TINY = ["--seeds", "3", "--epochs", "4", "--lrs", "0.01", "--jobs", "1"]


# ---------------------------------------------------------------------------------------------- statistics
class TestStatistics:
    def test_holm_on_a_textbook_example(self):
        # p = 0.01, 0.04, 0.03 → sorted 0.01·3, 0.03·2, 0.04·1 → 0.03, 0.06, 0.06 (monotone)
        assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
        assert np.isnan(stats.holm([float("nan"), 0.01])[0])

    def test_t_interval_by_hand(self):
        d = np.array([0.1, 0.2, 0.15, 0.05, 0.12])
        half = 2.7764451051977987 * d.std(ddof=1) / np.sqrt(5)  # t_{4, 0.975}
        assert stats.mean_interval(d) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-12)
        corrected = stats.mean_interval(d, interval="corrected", test_train_ratio=1 / 3)
        widen = np.sqrt(1 / 5 + 1 / 3) / np.sqrt(1 / 5)
        assert corrected[1] - corrected[0] == pytest.approx(2 * half * widen, rel=1e-12)
        assert np.isnan(stats.mean_interval(d[:1])).all()
        assert stats.paired_t_p(np.zeros(4)) == 1.0
        from scipy import stats as sps

        assert stats.paired_t_p(d) == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue, rel=1e-12)

    def test_verdicts_read_the_interval_against_the_margin(self):
        v = stats.verdict
        assert v(0.02, 0.05, 0.01, n=10)[0] == "better"
        assert v(-0.05, -0.02, 0.01, n=10)[0] == "worse"
        assert v(-0.004, 0.006, 0.01, n=10)[0] == "no effect"
        assert v(-0.03, 0.05, 0.01, n=10)[0] == "inconclusive"
        assert v(0.005, 0.05, 0.01, n=10) == ("inconclusive", "the interval excludes 0 but reaches inside ±0.01")
        assert v(0.02, 0.05, 0.01, n=3)[0] == "better"  # 3 replicates can decide
        assert v(0.02, 0.05, 0.01, n=2)[0] == "no verdict"
        assert v(0.02, 0.05, 0.01, n=10, higher_is_better=False)[0] == "worse"
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="margin must be a positive number"):
                v(0.0, 0.1, bad, n=10)

    def test_the_issue_example_decides_at_five_seeds(self):
        """--quick on the default data: hard truncation −0.08 AP with a tight spread was 'inconclusive'
        because 5 seeds cannot reach Wilcoxon p < 0.05; the interval itself lies below −margin."""
        base = np.array([0.95, 0.93, 0.96, 0.94, 0.92])
        hard = base - np.array([0.06, 0.10, 0.07, 0.11, 0.06])
        (c,) = stats.compare_paired({"ce": base, "hard": hard}, "ce", margin=0.01)
        assert c.ci_high < -0.01
        assert c.verdict == "worse"

    def test_compare_paired_says_no_when_there_is_no_difference(self):
        rng = np.random.default_rng(1)
        base = rng.uniform(0.6, 0.8, size=10)
        scores = {"ce": base, "same": base + rng.normal(0, 0.001, size=10),
                  "up": base + 0.05 + rng.normal(0, 0.005, 10)}
        comps = {c.loss: c for c in stats.compare_paired(scores, "ce", margin=0.01)}
        assert comps["same"].verdict == "no effect"
        assert comps["up"].verdict == "better"
        bonf = {c.loss: c for c in stats.compare_paired(scores, "ce", margin=0.01, adjust="bonferroni")}
        assert bonf["up"].level == pytest.approx(0.975)
        assert bonf["up"].ci_high - bonf["up"].ci_low > comps["up"].ci_high - comps["up"].ci_low

    def test_fewer_than_three_replicates_give_no_verdict_and_json_nulls(self):
        (c,) = stats.compare_paired({"ce": np.array([0.5]), "focal": np.array([0.6])}, "ce", margin=0.01)
        assert c.verdict == "no verdict"
        assert "at least 3" in c.reason
        d = c.as_dict()
        assert d["ci_low"] is None
        assert d["ci_high"] is None
        json.dumps(d, allow_nan=False)

    @pytest.mark.parametrize("n", [3, 5, 10])
    @pytest.mark.parametrize("shape", ["normal", "skewed"])
    def test_coverage_by_simulation(self, n, shape):
        """Constructed paired data with a known mean difference: the 95 % t interval covers it in about 95 %
        of 4,000 experiments. Tolerance: ±2 % for normal differences (4 binomial sd at 4,000 draws is
        1.4 %), and −4 % / +2 % for skewed ones (gamma, skewness 1.4), where the t interval is known
        to undercover a little at small n."""
        rng = np.random.default_rng(n)
        true = 0.03
        experiments = 4000
        if shape == "normal":
            diffs = true + rng.normal(0, 0.02, size=(experiments, n))
        else:
            k = 2.0  # gamma shape: skewness 2/√k ≈ 1.41
            diffs = true + 0.02 * (rng.gamma(k, 1 / np.sqrt(k), size=(experiments, n)) - np.sqrt(k))
        covered = np.mean([low <= true <= high for low, high in (stats.mean_interval(d) for d in diffs)])
        low_tol = 0.02 if shape == "normal" else 0.04
        assert 0.95 - low_tol <= covered <= 0.97, covered

    def test_false_verdicts_are_rare_when_there_is_no_effect(self):
        """True difference 0: 'better' or 'worse' at margin 0.01 in at most 2.5 % + tolerance of runs."""
        rng = np.random.default_rng(7)
        wrong = 0
        for _ in range(2000):
            base = rng.uniform(0.7, 0.9, 5)
            (c,) = stats.compare_paired({"ce": base, "x": base + rng.normal(0, 0.02, 5)}, "ce", margin=0.01)
            wrong += c.verdict in ("better", "worse")
        assert wrong / 2000 <= 0.03


class TestMetrics:
    def test_temperature_scaling_recovers_an_overconfident_model(self):
        rng = np.random.default_rng(0)
        z = rng.normal(0, 2, 4000)
        y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
        over = 1 / (1 + np.exp(-3 * z))  # logits three times too large
        p = np.stack([1 - over, over], 1)
        _scaled, t = temperature_scale(y[:2000], p[:2000], p[2000:])
        assert t == pytest.approx(3.0, rel=0.15)
        m = evaluate(y[2000:], p[2000:], threshold=0.5, val=(y[:2000], p[:2000]))
        assert m["ece_ts"] < 0.03 < m["ece"]

    def test_balanced_accuracy_and_iou(self):
        y = np.array([0, 0, 0, 1])
        p = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
        m = evaluate(y, p, threshold=0.5, dense=True)
        assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
        assert m["f1"] == pytest.approx(2 / 3)
        assert m["iou"] == pytest.approx(0.5)
        assert "iou" not in evaluate(y, p, threshold=0.5)


# ---------------------------------------------------------------------------------------------- the Python API
def _toy(seed_data: int = 0, n: int = 900, d: int = 6, rare: float = 0.08):
    rng = np.random.default_rng(seed_data)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, n) > np.quantile(x[:, 0], 1 - rare)).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def user_fit(loss_fn, *, seed, lr):
    """What a user writes: a model, a training loop with the given loss, probabilities back."""
    x, y = _toy()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    tr, va, te = order[:500], order[500:700], order[700:]
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(30):
        opt.zero_grad()
        loss_fn(model(x[tr]), y[tr]).backward()
        opt.step()
    with torch.no_grad():
        return {"val": (y[va], torch.sigmoid(model(x[va]))[:, 0]), "test": (y[te].numpy(),
                                                                           torch.sigmoid(model(x[te]))[:, 0])}


def test_run_a_users_fit_and_write_the_report(tmp_path):
    out = tmp_path / "mine"
    summary = focalkit.compare.run(user_fit, losses=["ce", "focal", "hard"], seeds=3, lrs=(0.01, 0.03), out=out,
                                   verbose=False)
    assert [c["loss"] for c in summary.comparisons] == ["focal", "hard"]
    for c in summary.comparisons:
        assert {"loss", "mean_diff", "ci_low", "ci_high", "verdict"} <= set(c)
        assert c["ci_low"] <= c["mean_diff"] <= c["ci_high"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["comparisons"] == summary.comparisons
    assert on_disk["margin"] == 0.01
    assert {"report.md", "forest.png", "results.csv", "pr_curves.png", "reliability.png"} <= {p.name for p in
                                                                                             out.iterdir()}
    # each loss's lr chosen on validation: both lrs were tried for every run
    assert all(set(r.val_ap_by_lr) == {0.01, 0.03} for r in summary.results)


def test_run_checks_its_arguments_before_training():
    calls = []

    def fit(loss_fn, *, seed, lr):
        calls.append(1)
        raise AssertionError("must not train")

    with pytest.raises(ValueError, match="margin: must be a positive number"):
        focalkit.compare.run(fit, losses=["ce", "focal"], margin=0, verbose=False)
    with pytest.raises(ValueError, match=r"^baseline: 'ce' is not among"):
        focalkit.compare.run(fit, losses=["focal", "hard"], verbose=False)
    with pytest.raises(ValueError, match=r"^losses: weighted-ce needs the training class counts"):
        focalkit.compare.run(fit, losses=["ce", "weighted-ce"], verbose=False)
    with pytest.raises(ValueError, match=r"3 counts for num_classes=2.*num_classes=3"):
        focalkit.compare.run(fit, losses=["ce", "weighted-ce"], class_counts=[80, 15, 5], verbose=False)
    with pytest.raises(ValueError, match="gamma"):
        focalkit.compare.run(fit, losses=["ce", "focal:gamma=-1"], verbose=False)
    with pytest.raises(ValueError, match="class_counts"):
        focalkit.compare.run(fit, losses=["ce", "weighted-ce"], verbose=False)
    with pytest.raises(ValueError, match="lrs"):
        focalkit.compare.run(fit, losses=["ce", "focal"], lrs=(), verbose=False)
    assert not calls


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "must return"),
        ({"val": ([0, 1], [0.2, 0.7])}, "must return"),
        ({"val": ([0, 1, 1], [0.2, 0.7]), "test": ([0, 1], [0.1, 0.9])},
         r"expected probabilities shaped \[3\] or \[3, 2\] for 3 labels; got \[2\]\."),
        ({"val": ([0, 1], [[0.2, 0.7, 0.1], [0.2, 0.7, 0.1]]), "test": ([0, 1], [0.1, 0.9])},
         r"got \[2, 3\] \(num_classes=2: give num_classes=3"),
        ({"val": ([0, 1], [-2.0, 3.0]), "test": ([0, 1], [0.1, 0.9])}, "not the logits"),
        # [n, 2] probabilities that do not sum to 1 (two sigmoids, say) passed silently (issue 22)
        ({"val": ([0, 1], [[0.2, 0.7], [0.3, 0.9]]), "test": ([0, 1], [0.1, 0.9])},
         r"each row of \[n, 2\] probabilities must sum to 1 \(softmax of two logits\); row 0 sums to 0\.9"),
        ({"val": ([0, 2], [0.2, 0.7]), "test": ([0, 1], [0.1, 0.9])}, "class ids in"),
        ({"val": ([1, 1], [0.2, 0.7]), "test": ([0, 1], [0.1, 0.9])}, "single class"),
    ],
)
def test_a_fit_that_returns_the_wrong_thing_is_told_what_was_expected(returned, message):
    with pytest.raises((TypeError, ValueError), match=message):
        focalkit.compare.run(lambda loss_fn, *, seed, lr: returned, losses=["ce", "focal"], seeds=1, lrs=(0.1,),
                             verbose=False)


def test_a_two_logit_model_at_num_classes_2_is_told_both_ways_out():
    def fit(loss_fn, *, seed, lr):
        x, y = _toy(n=60)
        loss_fn(torch.nn.Linear(x.shape[1], 2)(x), y).backward()
        raise AssertionError("the loss must refuse [n, 2] logits")

    with pytest.raises(ValueError, match=r"^focal: num_classes=2 means one logit per position .* logits \(60, 2\), "
                                         r"target \(60,\)\. .*nn\.Linear\(d, 1\).*logits\[:, 1\] - logits\[:, 0\]"):
        focalkit.compare.run(fit, losses=["focal", "ce"], baseline="focal", seeds=1, lrs=(0.1,), verbose=False)


def test_multiclass_shapes_are_named_without_the_binary_option():
    with pytest.raises(ValueError, match=r"expected probabilities shaped \[2, 3\] for 2 labels; got \[2, 2\]\."):
        focalkit.compare.run(lambda loss_fn, *, seed, lr: {"val": ([0, 2], [[0.5, 0.5]] * 2),
                                                            "test": ([0, 1], [[0.5, 0.5]] * 2)},
                             losses=["ce", "focal"], seeds=1, lrs=(0.1,), num_classes=3, verbose=False)


def test_a_model_that_learns_nothing_is_flagged(capsys):
    def flat(loss_fn, *, seed, lr):
        y = np.array([0, 1] * 20)
        p = np.full(40, 0.3) if loss_fn.name == "hard" else np.linspace(0.1, 0.9, 40)
        return {"val": (y, p), "test": (y, p), "epoch": 5, "budget": 5}

    summary = focalkit.compare.run(flat, losses=["ce", "hard"], seeds=3, lrs=(0.1,), verbose=False)
    assert any(w.startswith("hard: the model's test predictions are constant on 3 of 3 seeds") for w in
               summary.warnings)
    assert any(w.startswith("ce: the best epoch (or round) was the last allowed on 3 of 3 seeds") for w in
               summary.warnings)


def test_training_loss_layouts():
    from focalkit.compare.losses import TrainingLoss, parse_spec

    counts = np.array([90.0, 10.0])
    x = torch.randn(4, 1, 5, 5, dtype=torch.float64)
    y = (torch.rand(4, 5, 5) < 0.2).long()
    y[0, 0, 0] = 255
    for name in ("ce", "weighted-ce", "logit-adjust", "focal", "ghmc"):
        loss = TrainingLoss(parse_spec(name), num_classes=2, class_counts=counts, ignore_index=255)
        assert torch.isfinite(loss(x, y)), name
        # the ignored pixel counts for nothing
        x2 = x.clone()
        x2[0, 0, 0, 0] = 50.0
        assert loss(x2, y) == pytest.approx(float(loss(x, y)), rel=1e-12), name
    multi = TrainingLoss(parse_spec("logit-adjust"), num_classes=3, class_counts=np.array([80.0, 15.0, 5.0]))
    logits, ids = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (2, 4, 4))
    prior = torch.tensor([0.8, 0.15, 0.05], dtype=torch.float64).log().view(1, 3, 1, 1)
    expected = torch.nn.functional.cross_entropy(logits + prior, ids)
    assert multi(logits, ids) == pytest.approx(float(expected), rel=1e-6)


# ---------------------------------------------------------------------------------------------- CLI tasks
def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_trees_end_to_end(tmp_path, capsys, library):
    pytest.importorskip(library)
    out = tmp_path / library
    rc = main(["compare", "--model", library, "--losses", "ce", "weighted-ce", "logit-adjust", "focal", "soft",
               "ghmc", "asl", "poly1", "--seeds", "3", "--lrs", "0.3", "--out", str(out), "--jobs", "1"])
    assert rc == 0, capsys.readouterr().err
    summary = _summary(out)
    assert {c["verdict"] for c in summary["comparisons"]} <= {"better", "worse", "no effect", "inconclusive"}
    assert library in summary["task"]
    assert summary["metrics"]["ce"]["ap"]["mean"] > 0.5


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_trees_record_their_training_objective_per_round(library):
    # the curve's loss column was NaN for boosted trees, leaving an empty panel (issue 22, item 9)
    pytest.importorskip(library)
    from focalkit.compare.data import load_dataset
    from focalkit.compare.losses import TrainingLoss, parse_spec
    from focalkit.compare.tasks.gbdt import BoostedTask

    data = load_dataset("breast_cancer@1:20")
    task = BoostedTask(data, library, max_rounds=8, patience=100)
    counts = np.bincount(data.labels, minlength=2)
    out = task(TrainingLoss(parse_spec("ce"), num_classes=2, class_counts=counts), seed=0, lr=0.05)
    rounds, _, train = zip(*out["curve"], strict=True)
    assert out["unit"] == "round"
    assert list(rounds) == list(range(1, 9))
    prior = counts[1] / counts.sum()
    entropy = -(prior * np.log(prior) + (1 - prior) * np.log(1 - prior))  # the mean CE at the start margin
    assert np.all(np.isfinite(train))
    assert 0.8 * entropy < train[0] < entropy  # the mean over the training rows, one small tree in
    assert np.all(np.diff(train) < 0)


def _captured(monkeypatch):
    from focalkit.compare import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    return plots, figures


def _run_result(loss, curve, *, unit="epoch", dense=False):
    from focalkit.compare.results import RunResult

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.5 * y + rng.uniform(0, 0.5, 400), 0, 1)
    return RunResult(dataset="d", loss=loss, seed=0, lr=0.1, epoch=len(curve), val_ap=0.5, metrics={"ap": 0.5},
                     seconds=1.0, curve=curve, unit=unit, test_labels=y, test_probs=np.stack([1 - p, p], 1))


def test_training_curves_name_rounds_and_leave_out_an_unmeasured_loss_panel(monkeypatch):
    plots, figures = _captured(monkeypatch)
    measured = [_run_result(loss, [(1, 0.5, 0.7), (2, 0.6, 0.5)], unit="round") for loss in ("ce", "focal")]
    plots.training_curves(measured, None)
    unmeasured = [_run_result(loss, [(1, 0.5, float("nan")), (2, 0.6, float("nan"))]) for loss in ("ce", "focal")]
    plots.training_curves(unmeasured, None)
    two, one = figures
    assert [ax.get_xlabel() for ax in two.axes] == ["round", "round"]
    assert [ax.get_ylabel() for ax in two.axes] == ["validation AP", "training loss"]
    assert [ax.get_xlabel() for ax in one.axes] == ["epoch"]


def test_reliability_counts_pixels_and_the_forest_legend_leaves_the_title_alone(monkeypatch, tmp_path):
    plots, figures = _captured(monkeypatch)
    runs = [_run_result(loss, []) for loss in ("ce", "focal")]
    plots.reliability(runs, None, unit="pixels")
    assert figures[-1].axes[1].get_ylabel() == "pixels per bin"
    assert "5 pixels" in figures[-1].axes[0].get_title()
    from focalkit.compare.results import summarize

    runs = [_run_result(loss, []) for loss in ("ce", "focal")]
    for seed in (1, 2):
        runs += [_run_result(loss, []) for loss in ("ce", "focal")]
        runs[-2].seed = runs[-1].seed = seed
        runs[-1].metrics = {"ap": 0.5 + 0.01 * seed}
    plots.forest(summarize(runs, "ce", 0.01), None)
    (ax,) = figures[-1].axes
    assert ax.get_legend() is None  # it sat over the title
    assert "±margin 0.01" in ax.get_xlabel()


def test_the_console_tables_fit_80_columns_without_cutting_a_number():
    # at 80 columns rich cut the metrics to "0.9…" and wrapped the title mid-phrase (issue 22, item 10)
    from rich.console import Console

    from focalkit.compare.metrics import METRICS
    from focalkit.compare.report import render_table
    from focalkit.compare.results import summarize

    runs = []
    for seed in range(3):
        for loss in ("ce", "focal:gamma=2,alpha=0.25"):
            r = _run_result(loss, [])
            r.seed, r.metrics = seed, {m: 0.123 + 0.01 * seed + (loss != "ce") * 0.2 for m in METRICS}
            runs.append(r)
    summary = summarize(runs, "ce", 0.01)
    console = Console(width=80, record=True, color_system=None)
    render_table(summary, console)
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.splitlines()[0].strip() == "d: test AP over 3 paired seeds"
    for value in ("0.133", "0.333", "+0.200 [+0.200, +0.200]"):
        assert value in text
    assert text.count("0.333") == len(METRICS)  # AP and every other metric of the focal row, over however many tables


def test_boosted_trees_multiclass_and_the_unavailable_objectives(tmp_path, capsys):
    pytest.importorskip("xgboost")
    rc = main(["compare", "--model", "xgboost", "--data", "digits-lt@20", "--losses", "ce", "focal", "hard",
               "--out", str(tmp_path / "x"), *TINY])
    assert rc == 2
    assert "no multi-class boosting objective" in capsys.readouterr().err
    rc = main(["compare", "--model", "xgboost", "--data", "digits-lt@20", "--losses", "ce", "focal", "weighted-ce",
               "poly1", "--out", str(tmp_path / "x"), *TINY])
    assert rc == 0
    summary = _summary(tmp_path / "x")
    assert "ce+posthoc-la" in [c["loss"] for c in summary["comparisons"]]  # the post-hoc control
    assert "poly1" in summary["metrics"]  # softmax_poly1_objective
    assert "balanced_accuracy" in summary["metric_names"]


def test_balanced_softmax_and_ldam_as_compare_losses(tmp_path, capsys):
    out = tmp_path / "lt"
    rc = main(["compare", "--data", "digits-lt@20", "--losses", "ce", "balanced-softmax", "logit-adjust",
               "ldam:max_margin=0.3,scale=2", "--model", "linear", "--out", str(out), *TINY])
    assert rc == 0, capsys.readouterr().err
    metrics = _summary(out)["metrics"]
    # balanced softmax is logit adjustment at tau = 1: the same model from two implementations
    assert metrics["balanced-softmax"]["ap"]["mean"] == pytest.approx(metrics["logit-adjust"]["ap"]["mean"], abs=1e-6)
    assert "ldam:max_margin=0.3,scale=2" in metrics
    rc = main(["compare", "--losses", "ce", "ldam", "--out", str(tmp_path / "b"), *TINY])
    assert rc == 2
    assert "ldam is a multi-class (softmax) loss; this data has 2 classes" in capsys.readouterr().err


def test_asl_and_poly1_as_compare_losses(tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["compare", "--losses", "ce", "poly1:epsilon=0", "asl:gamma_neg=0,clip=0", "poly1", "asl", "--out",
               str(out), *TINY])
    assert rc == 0, capsys.readouterr().err
    metrics = _summary(out)["metrics"]
    for same in ("poly1:epsilon=0", "asl:gamma_neg=0,clip=0"):  # cross-entropy itself: the same models
        assert metrics[same]["ap"]["mean"] == pytest.approx(metrics["ce"]["ap"]["mean"], abs=1e-6), same
    assert metrics["poly1"]["ap"]["mean"] != metrics["ce"]["ap"]["mean"]
    rc = main(["compare", "--data", "digits-lt@20", "--losses", "ce", "poly1:epsilon=2", "--model", "linear",
               "--out", str(tmp_path / "m"), *TINY])
    assert rc == 0, capsys.readouterr().err
    assert "poly1:epsilon=2" in _summary(tmp_path / "m")["metrics"]
    rc = main(["compare", "--data", "digits-lt@20", "--losses", "ce", "asl", "--out", str(tmp_path / "x"), *TINY])
    assert rc == 2
    assert "asl is defined for binary problems (sigmoid) only" in capsys.readouterr().err


def test_scenes_are_deterministic_and_rare():
    from focalkit.compare.tasks.scenes import make_scenes

    a, b = make_scenes(60), make_scenes(60)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.masks, b.masks)
    assert a.images.shape == (60, 1, 64, 64)
    share = a.masks.mean()
    assert 0.003 < share < 0.03


def test_scenes_end_to_end(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["compare", "--data", "scenes@60", "--losses", "ce", "focal", "ghmc", "asl", "--seeds", "3",
               "--epochs", "2", "--lrs", "0.01", "--jobs", "1", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    summary = _summary(out)
    assert "iou" in summary["metric_names"]
    assert "fully convolutional" in summary["task"]
    assert summary["class_names"] == ["background", "object"]
    assert "asl" in summary["metrics"]
    assert (out / "forest.png").exists()
    assert (out / "ghm_grad_norms.png").exists()


def test_dice_and_dice_focal_as_compare_losses(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["compare", "--data", "scenes@40", "--losses", "ce", "dice", "dice-focal:gamma=1", "dice:batch=1",
               "--seeds", "2", "--epochs", "1", "--lrs", "0.01", "--jobs", "1", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    metrics = _summary(out)["metrics"]
    assert {"dice", "dice-focal:gamma=1", "dice:batch=1"} <= set(metrics)
    assert metrics["dice"]["iou"]["mean"] != metrics["dice:batch=1"]["iou"]["mean"]
    # table rows: one soft F1 per class over the batch, binary and multi-class
    rc = main(["compare", "--losses", "ce", "dice", "--out", str(tmp_path / "b"), *TINY])
    assert rc == 0, capsys.readouterr().err
    rc = main(["compare", "--data", "digits-lt@20", "--losses", "ce", "dice-focal", "focal:gamma=3,gamma_hard=5",
               "--model", "linear", "--out", str(tmp_path / "m"), *TINY])
    assert rc == 0, capsys.readouterr().err
    assert "focal:gamma=3,gamma_hard=5" in _summary(tmp_path / "m")["metrics"]
    rc = main(["compare", "--losses", "ce", "dice:batch=2", "--out", str(tmp_path / "x"), *TINY])
    assert rc == 2
    assert "dice batch must be 0 or 1" in capsys.readouterr().err


def test_user_masks_from_npz_with_ignored_pixels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(30, 2, 16, 16)).astype(np.float32)
    masks = (images[:, 0] > 1.6).astype(np.uint8)
    masks[:, 0, :] = 255
    np.savez(tmp_path / "cells.npz", images=images, masks=masks)
    rc = main(["compare", "--data", str(tmp_path / "cells.npz"), "--losses", "ce", "focal", "--seeds", "3",
               "--epochs", "2", "--lrs", "0.01", "--jobs", "1", "--out", str(tmp_path / "r")])
    assert rc == 0, capsys.readouterr().err
    assert "ignored" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", images=images, masks=masks * 3)
    rc = main(["compare", "--data", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "r2"), *TINY])
    assert rc == 2
    assert "0, 1 and 255" in capsys.readouterr().err
    np.savez(tmp_path / "shape.npz", images=images, masks=masks[:, :8])
    rc = main(["compare", "--data", str(tmp_path / "shape.npz"), "--out", str(tmp_path / "r3"), *TINY])
    assert rc == 2
    assert "masks must be [N, H, W]" in capsys.readouterr().err
    np.savez(tmp_path / "last.npz", images=images.transpose(0, 2, 3, 1)[..., :1].repeat(3, -1), masks=masks)
    rc = main(["compare", "--data", str(tmp_path / "last.npz"), "--out", str(tmp_path / "r4"), *TINY])
    assert rc == 2
    assert "look channels-last" in capsys.readouterr().err
    (tmp_path / "text.npz").write_text("not an archive")
    rc = main(["compare", "--data", str(tmp_path / "text.npz"), "--out", str(tmp_path / "r5"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2
    assert "cannot read text.npz as a NumPy .npz archive" in err
    assert "unsafely" not in err
    np.savez(tmp_path / "keys.npz", x=images, y=masks)
    rc = main(["compare", "--data", str(tmp_path / "keys.npz"), "--out", str(tmp_path / "r6"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("--data:") == 1
    assert "must hold arrays 'images' and 'masks'" in err


def test_a_churn_csv_says_which_columns_it_left_out(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 400
    import pandas as pd

    frame = pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "signup": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "plan": rng.choice(["basic", "pro", "team"], n),
        "monthly": rng.gamma(2.0, 20.0, n).round(2),
        "churn": np.where(rng.random(n) < 0.1, "yes", "no"),
    })
    frame.to_csv(tmp_path / "churn.csv", index=False)
    rc = main(["compare", "--data", str(tmp_path / "churn.csv"), "--target", "churn", "--losses", "ce", "focal",
               "--out", str(tmp_path / "r"), *TINY])
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "left out customer_id" in out
    assert "identifier" in out
    assert "signup (days since 1970)" in out or "signup" in out
    assert any("customer_id" in note for note in _summary(tmp_path / "r")["notes"])
    assert "positive class 'yes'" in out
    rc = main(["compare", "--data", str(tmp_path / "churn.csv"), "--target", "churn", "--drop", "plan", "nope",
               "--out", str(tmp_path / "r2"), *TINY])
    assert rc == 2
    assert "--drop" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--margin", "-1"], "expected a number > 0"),
    (["--margin", "0"], "expected a number > 0"),
])
def test_margin_must_be_positive(capsys, args, message):
    with pytest.raises(SystemExit):
        main(["compare", *args])
    assert message in capsys.readouterr().err


def test_one_seed_says_no_verdict_plainly(tmp_path, capsys):
    rc = main(["compare", "--losses", "ce", "focal", "--seeds", "1", "--epochs", "3", "--lrs", "0.01", "--jobs", "1",
               "--out", str(tmp_path / "r")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "no verdict" in out
    assert "at least 3" in out
    c = _summary(tmp_path / "r")["comparisons"][0]
    assert c["ci_low"] is None
    assert c["verdict"] == "no verdict"


def test_claims_do_not_import_the_cli():
    import ast
    from pathlib import Path

    import focalkit.compare as package

    for path in Path(package.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").endswith("cli"), f"{path.name} imports the CLI"
