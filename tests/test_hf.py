"""focalkit.hf.loss_func inside transformers' Trainer (tiny random BERTs from a config, CPU, no download):
logged losses, the default loss's gradients at γ = 0, gradient accumulation with uneven padding, DDP on two
gloo ranks; and the function alone: task detection, causal-LM shift, counts, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import CausalLMOutputWithPast, SequenceClassifierOutput, TokenClassifierOutput

import focalkit as fk
import focalkit.hf as hf

from . import hf_trainer as H

HERE = Path(__file__).resolve().parent


def _train(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' notices (e.g. on the model's config)
        t.train()
    return t


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _recording(f):
    seen = []

    def loss(outputs, labels, num_items_in_batch=None):
        seen.append((outputs.logits.detach().clone(), labels.clone(), num_items_in_batch))
        return f(outputs, labels, num_items_in_batch=num_items_in_batch)

    return loss, seen


def test_logged_loss_is_focalkits_on_the_same_logits(tmp_path):
    loss, seen = _recording(hf.loss_func("focal:gamma=2,alpha=none"))
    t = _train(H.trainer(H.model("tokens", H.TAGS), H.token_data(8), tmp_path, batch=2, steps=4, loss=loss))
    logged = [h["loss"] for h in t.state.log_history if "loss" in h]
    expected = [fk.softmax_focal_loss(x, y, class_dim=-1).item() for x, y, _ in seen]
    assert len(logged) == 4
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    assert [int(n) for *_, n in seen] == [int((y != -100).sum()) for _, y, _ in seen]


def test_logged_loss_under_accumulation_is_the_whole_batch_mean(tmp_path):
    loss, seen = _recording(hf.loss_func("focal"))
    t = _train(H.trainer(H.model("tokens", H.TAGS), H.token_data(8), tmp_path, batch=2, accumulate=4, loss=loss))
    x = torch.cat([s[0] for s in seen])
    y = torch.cat([s[1] for s in seen])
    assert {int(n) for *_, n in seen} == {int((y != -100).sum())}  # the whole accumulated batch's count
    whole = fk.softmax_focal_loss(x, y, class_dim=-1).item()
    assert t.state.log_history[0]["loss"] == pytest.approx(whole, rel=1e-6)


@pytest.mark.parametrize(("kind", "spec", "data"), [
    ("tokens", "focal:gamma=0", lambda: H.token_data(8)),
    ("tokens", "ce", lambda: H.token_data(8)),
    ("single", "focal:gamma=0", lambda: H.sequence_data(8, 3)),
    ("multi", "focal:gamma=0,alpha=none", lambda: H.sequence_data(8, 3, multi_label=True)),
    ("multi", "ce", lambda: H.sequence_data(8, 3, multi_label=True)),
])
def test_gamma_zero_gives_the_default_losss_gradients(tmp_path, kind, spec, data):
    def net():
        extra = {"problem_type": "multi_label_classification"} if kind == "multi" else {}
        return H.model("tokens" if kind == "tokens" else "sequence", H.TAGS if kind == "tokens" else 3, **extra)

    default = _train(H.trainer(net(), data(), tmp_path, batch=8))
    ours = _train(H.trainer(net(), data(), tmp_path, batch=8, loss=hf.loss_func(spec)))
    assert _max_diff(default.keep.grads[0], ours.keep.grads[0]) < 1e-6
    assert ours.state.log_history[0]["loss"] == pytest.approx(default.state.log_history[0]["loss"], rel=1e-6)


ACCUMULATION = [
    ("tokens", lambda: hf.loss_func("focal:gamma=2"), lambda: H.token_data(8)),
    ("tokens", lambda: hf.loss_func("focal", class_weight=[1.0, 3.0, 2.0, 0.5, 4.0], label_smoothing=0.1),
     lambda: H.token_data(8)),
    ("single", lambda: hf.loss_func("soft:k=2"), lambda: H.sequence_data(8, 3)),
    ("multi", lambda: hf.loss_func("asl"), lambda: H.sequence_data(8, 3, multi_label=True)),
]


@pytest.mark.parametrize(("kind", "make_loss", "data"), ACCUMULATION)
def test_accumulation_equals_one_large_batch(tmp_path, kind, make_loss, data):
    """4 micro-batches of 2 with unevenly padded -100 tokens: the gradient of one batch of 8 (the bug of
    transformers PR #34191 is a mean per micro-batch)."""
    def net():
        return H.model("tokens" if kind == "tokens" else "sequence", H.TAGS if kind == "tokens" else 3)

    accumulated = _train(H.trainer(net(), data(), tmp_path, batch=2, accumulate=4, loss=make_loss()))
    whole = _train(H.trainer(net(), data(), tmp_path, batch=8, loss=make_loss()))
    assert len(accumulated.keep.grads) == len(whole.keep.grads) == 1
    assert _max_diff(accumulated.keep.grads[0], whole.keep.grads[0]) < 1e-6


def test_a_mean_per_micro_batch_would_fail_the_accumulation_check(tmp_path):
    """The check above can fail: the loss's own mean, as a blog's compute_loss override returns it."""
    f = hf.loss_func("focal:gamma=2")

    def per_micro_batch_mean(outputs, labels, num_items_in_batch=None):
        return f(outputs, labels) / 4  # the mean of each micro-batch, averaged over the 4

    accumulated = _train(H.trainer(H.model("tokens", H.TAGS), H.token_data(8), tmp_path, batch=2, accumulate=4,
                                   loss=per_micro_batch_mean))
    whole = _train(H.trainer(H.model("tokens", H.TAGS), H.token_data(8), tmp_path, batch=8, loss=f))
    assert _max_diff(accumulated.keep.grads[0], whole.keep.grads[0]) > 1e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_on_two_gloo_ranks_equals_one_process(tmp_path):
    """Trainer on 2 CPU ranks (4 examples each, unevenly padded) against one process with all 8."""
    out = tmp_path / "rank0.pt"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, str(HERE / "hf_trainer.py"), str(out)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = []
    try:
        for p in ranks:
            logs.append(p.communicate(timeout=240)[0])
    finally:
        for p in ranks:
            p.kill()
    assert all(p.returncode == 0 for p in ranks), "\n".join(log[-3000:] for log in logs)
    got = torch.load(out)
    assert got["world"] == 2
    whole = _train(H.trainer(H.model("tokens", H.TAGS), H.token_data(8), tmp_path, batch=8,
                             loss=hf.loss_func("focal:gamma=2")))
    assert _max_diff(got["grads"], whole.keep.grads[0]) < 1e-6
    assert got["log"] == pytest.approx(whole.state.log_history[0]["loss"], rel=1e-6)


# ---- the function alone ---------------------------------------------------------------------------------------


def _tokens(seed=0, b=3, t=5, c=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (b, t), generator=g)
    y[0, 3:] = y[2, 1:] = -100
    return x, y


def test_token_classification_sum_over_the_count():
    x, y = _tokens()
    n = torch.tensor(40)  # the accumulated batch's count, larger than this micro-batch's
    got = hf.loss_func("focal:gamma=1.5")(TokenClassifierOutput(logits=x), y, num_items_in_batch=n)
    want = fk.softmax_focal_loss(x, y, gamma=1.5, class_dim=-1, reduction="sum") / 40
    torch.testing.assert_close(got, want)
    # without a count: the loss's own mean
    got = hf.loss_func("focal:gamma=1.5")({"logits": x}, y)
    torch.testing.assert_close(got, fk.softmax_focal_loss(x, y, gamma=1.5, class_dim=-1))


def test_plain_formula_float64():
    """Σ over valid tokens of −(1 − p_t)^γ log p_t, divided by the count, written out."""
    x, y = _tokens(3)
    logp = torch.log_softmax(x, -1)
    valid = y != -100
    lp = logp.gather(-1, y.clamp_min(0)[..., None])[..., 0]
    want = (-(1 - lp.exp()) ** 2 * lp)[valid].sum() / 17
    got = hf.loss_func("focal")((x,), y, num_items_in_batch=17)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_sequence_and_multi_label_forms():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 3, (6,), generator=g)
    f = hf.loss_func("focal", alpha=[0.2, 0.5, 0.3])
    torch.testing.assert_close(f(SequenceClassifierOutput(logits=x), ids, num_items_in_batch=6),
                               fk.softmax_focal_loss(x, ids, alpha=[0.2, 0.5, 0.3]))
    y = (torch.rand(6, 3, generator=g) < 0.4).double()
    y[1, 2] = -100  # ignored, as Trainer's count leaves it out
    got = hf.loss_func("focal")(SequenceClassifierOutput(logits=x), y, num_items_in_batch=17)
    want = fk.sigmoid_focal_loss(x, y, ignore_index=-100, reduction="sum") / 17
    torch.testing.assert_close(got, want)
    # a weight per label column
    got = hf.loss_func("ce", class_weight=[1.0, 2.0, 0.5])({"logits": x}, y, num_items_in_batch=17)
    want = fk.binary_cross_entropy(x, y, ignore_index=-100, reduction="sum",
                                   sample_weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)) / 17
    torch.testing.assert_close(got, want)


def test_problem_type_from_config_overrides_the_labels():
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 0]])  # ints, but multi-hot
    f = hf.loss_func("ce", config=H.config(3, problem_type="multi_label_classification"))
    torch.testing.assert_close(f({"logits": x}, y, num_items_in_batch=12), fk.binary_cross_entropy(x, y.double()))
    with pytest.raises(ValueError, match=r"labels of shape \(4,\)"):
        hf.loss_func("ce")({"logits": x}, y, num_items_in_batch=12)


def test_causal_lm_shifts_the_labels():
    x, y = _tokens(4, c=7)
    got = hf.loss_func("focal")(CausalLMOutputWithPast(logits=x), y, num_items_in_batch=9)
    want = fk.softmax_focal_loss(x[:, :-1], y[:, 1:], class_dim=-1, reduction="sum") / 9
    torch.testing.assert_close(got, want)


def test_counts_losses():
    x, y = _tokens(5)
    counts = hf.label_counts(y.tolist(), 4)
    assert counts.sum() == (y != -100).sum()
    c32 = torch.tensor(counts, dtype=torch.float32)
    for spec, want in [
        ("balanced-softmax", fk.balanced_softmax_loss(x, y, class_counts=c32, class_dim=-1, reduction="sum")),
        ("ldam:max_margin=0.3", fk.ldam_loss(x, y, class_counts=c32, max_margin=0.3, class_dim=-1,
                                             reduction="sum")),
        ("logit-adjust:tau=0.5", fk.logit_adjusted_cross_entropy(x, y, class_prior=c32 / c32.sum(), tau=0.5,
                                                                 class_dim=-1, reduction="sum")),
        ("weighted-ce", fk.cross_entropy(x, y, class_weight=c32.sum() / (4 * c32), class_dim=-1, reduction="sum")),
    ]:
        got = hf.loss_func(spec, class_counts=counts)({"logits": x}, y, num_items_in_batch=20)
        torch.testing.assert_close(got, want / 20, msg=spec)
    w = fk.class_balanced_weights(counts, beta=0.9)
    got = hf.loss_func("focal", class_weight=w)({"logits": x}, y, num_items_in_batch=20)
    torch.testing.assert_close(got, fk.softmax_focal_loss(x, y, class_weight=w, class_dim=-1, reduction="sum") / 20)


def test_ghmc_keeps_its_running_counts():
    f = hf.loss_func("ghmc:bins=5,momentum=0.75")
    x = torch.randn(8, 3, dtype=torch.float64)
    y = (torch.rand(8, 3) < 0.3).double()
    f({"logits": x}, y, num_items_in_batch=24)
    assert f.ghm is not None
    assert float(f.ghm.running_counts.sum()) > 0


def test_label_counts():
    assert hf.label_counts(np.array([2, 0, 2, 1]), 3).tolist() == [1.0, 1.0, 2.0]
    assert hf.label_counts(torch.tensor([[0, 1, -100], [1, 1, -100]]), 2).tolist() == [1.0, 3.0]
    assert hf.label_counts([[1, 0, 1], [1, 1, 0]], 3, multi_label=True).tolist() == [2.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\) or -100; got 3"):
        hf.label_counts([[0, 3]], 3)
    with pytest.raises(ValueError, match="rows of 2 values"):
        hf.label_counts([[1, 0, 1]], 2, multi_label=True)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: hf.loss_func("dice"), "region loss"),
    (lambda: hf.loss_func("nope"), "unknown loss 'nope'"),
    (lambda: hf.loss_func("focal:beta=2"), "focal takes .*got 'beta'"),
    (lambda: hf.loss_func("focal:gamma"), "expected key=value"),
    (lambda: hf.loss_func("focal:gamma=x"), "gamma must be a number"),
    (lambda: hf.loss_func("focal", reduction="sum"), "reduction is set by the function"),
    (lambda: hf.loss_func("focal", ignore_index=0), "Trainer counts labels != -100"),
    (lambda: hf.loss_func("ldam"), "needs the training class counts"),
    (lambda: hf.loss_func("focal", problem_type="regression"), "regression"),
    (lambda: hf.loss_func("focal", problem_type="seq2seq"), "problem_type must be one of"),
    (lambda: hf.loss_func("ce", class_counts=[3, -1]), "class_counts must be"),
])
def test_errors_at_construction(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_errors_at_call():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="regression head"):
        hf.loss_func("focal")({"logits": x[:, :1]}, torch.randn(4, 1), num_items_in_batch=4)
    with pytest.raises(ValueError, match="asl has no single-label"):
        hf.loss_func("asl")({"logits": x}, torch.tensor([0, 1, 2, 0]), num_items_in_batch=4)
    with pytest.raises(ValueError, match="balanced-softmax has no multi-label"):
        hf.loss_func("balanced-softmax", class_counts=[1, 2, 3])({"logits": x}, torch.ones(4, 3), 12)
    with pytest.raises(ValueError, match="labels=None"):
        hf.loss_func("focal")({"logits": x}, None, 4)
    with pytest.raises(ValueError, match="no 'logits'"):
        hf.loss_func("focal")({"loss": x}, torch.tensor([0, 1, 2, 0]), 4)
    with pytest.raises(ValueError, match=r"alpha"):  # focalkit's own check, naming the option
        hf.loss_func("focal", alpha=2.0)({"logits": x}, torch.tensor([0, 1, 2, 0]), 4)


def test_compare_run_with_a_trainer_fit(tmp_path):
    """focalkit.compare.run around a Trainer-based fit, as the README shows it."""
    from transformers import Trainer, TrainingArguments

    import focalkit.compare

    data = H.sequence_data(48, 3)
    train, val, test = data[:24], data[24:36], data[36:]
    counts = hf.label_counts([int(r["labels"]) for r in train], 3)

    def fit(loss_fn, *, seed, lr):
        torch.manual_seed(seed)
        net = H.model("sequence", 3)
        args = TrainingArguments(output_dir=str(tmp_path), learning_rate=lr, seed=seed, num_train_epochs=2,
                                 per_device_train_batch_size=8, report_to="none", save_strategy="no",
                                 use_cpu=True, disable_tqdm=True, logging_strategy="no")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = Trainer(net, args, train_dataset=train, compute_loss_func=hf.loss_func(loss_fn))
            trainer.train()

        def probs(rows):
            out = trainer.predict(rows)
            return out.label_ids, torch.softmax(torch.tensor(out.predictions), -1)

        return {"val": probs(val), "test": probs(test)}

    summary = focalkit.compare.run(fit, losses=["ce", "focal:gamma=1", "weighted-ce"], seeds=2, lrs=(1e-3,),
                                   num_classes=3, class_counts=counts, verbose=False, posthoc=False)
    assert {c["loss"] for c in summary.comparisons} == {"focal:gamma=1", "weighted-ce"}


def test_sequence_labels_with_a_trailing_axis_are_read_as_the_models_read_them():
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([[0], [2], [1], [1]])  # [B, 1], as some datasets give them (the models take labels.view(-1))
    got = hf.loss_func("focal")({"logits": x}, y, num_items_in_batch=4)
    torch.testing.assert_close(got, fk.softmax_focal_loss(x, y[:, 0]))


def test_an_accumulated_batch_without_targets_gives_zero_not_nan():
    x = torch.randn(2, 3, 4, requires_grad=True)
    y = torch.full((2, 3), -100)
    for n in (0, torch.tensor(0)):
        loss = hf.loss_func("focal")({"logits": x}, y, num_items_in_batch=n)
        loss.backward()
        assert loss.item() == 0.0
        assert torch.equal(x.grad, torch.zeros_like(x))
        x.grad = None
