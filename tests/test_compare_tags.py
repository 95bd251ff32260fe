"""``focalkit compare --data tags``: the built-in sentences, the tagger's fit, entity F1, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from seqeval.metrics import f1_score

from focalkit.cli import main
from focalkit.compare.data import DataError
from focalkit.compare.losses import build_loss, parse_spec
from focalkit.compare.tasks.tags import IGNORE, TAGS, EntityF1, TagProtocol, TagTask, _batch, load_tags, make_tags


def test_sentences_are_deterministic_rare_and_well_formed():
    a, b = make_tags(400), make_tags(400)
    assert all(np.array_equal(x, y) for x, y in zip(a.sentences, b.sentences, strict=True))
    counts = a.class_counts()
    assert 0.01 <= counts[1:].sum() / counts.sum() <= 0.03  # entity tokens: ~1–3 %
    for words, tags in zip(a.sentences, a.tags, strict=True):
        assert len(words) == len(tags) >= 4
        assert (words > 0).all()
        assert (words < a.vocab_size).all()
        for prev, tag in zip([0, *tags[:-1]], tags, strict=True):
            if TAGS[tag].startswith("I-"):  # BIO: an inside tag continues an entity of its type
                assert TAGS[prev][2:] == TAGS[tag][2:]


def test_batches_pad_to_the_longest_with_ignored_tags():
    data = make_tags(100)
    rows = np.array([0, 1, 2])
    ids, tags = _batch(data, rows)
    longest = max(len(data.sentences[i]) for i in rows)
    assert ids.shape == tags.shape == (3, longest)
    assert bool(((ids == 0) == (tags == IGNORE)).all())


def test_entity_f1_is_seqevals():
    names = tuple(TAGS)
    y = np.array([0, 1, 2, 0, 3, 0, 0, 1])  # two sentences: [O B-PER I-PER O B-LOC], [O O B-PER]
    guess = np.array([0, 1, 0, 0, 3, 0, 1, 1])  # PER truncated, LOC right; a spurious PER, the last PER right
    probs = np.eye(5)[guess] * 0.9 + 0.02
    got = EntityF1((5, 3), names)(y, probs)["entity_f1"]
    truth = [["O", "B-PER", "I-PER", "O", "B-LOC"], ["O", "O", "B-PER"]]
    pred = [["O", "B-PER", "O", "O", "B-LOC"], ["O", "B-PER", "B-PER"]]
    assert got == pytest.approx(f1_score(truth, pred))
    assert EntityF1((5, 3), names)(y, np.eye(5)[y])["entity_f1"] == 1.0


def test_fit_trains_on_valid_tokens_only():
    data = make_tags(150)
    seen = []
    loss = build_loss(parse_spec("focal"), num_classes=5, class_counts=data.class_counts(), ignore_index=IGNORE)

    def watching(logits, target):
        seen.append((logits.shape, target.clone()))
        return loss(logits, target)

    watching.ghm = None
    out = TagTask(data, TagProtocol(max_epochs=2, patience=1, keep_curves=True))(watching, seed=0, lr=3e-3)
    assert all(shape[1] == 5 and shape[2] == t.shape[1] for shape, t in seen)  # [B, C, T] with [B, T] tags
    assert any((t == IGNORE).any() for _, t in seen)
    y, p = out["test"]
    assert p.shape == (len(y), 5)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert len(out["curve"]) == 2
    assert sum(out["metrics_fn"].lengths) == len(y)
    assert 0.0 <= out["metrics_fn"](y, p)["entity_f1"] <= 1.0
    assert torch.isfinite(torch.tensor([c[2] for c in out["curve"]])).all()


def test_compare_on_tags_from_the_command_line(tmp_path, capsys):
    """No --losses: the defaults that exist for a multi-class task (ghmc, binary only, left out)."""
    out = tmp_path / "report"
    code = main(["compare", "--data", "tags@200", "--seeds", "3", "--epochs", "2", "--lrs", "0.01", "--jobs", "1",
                 "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "entity F1" in text
    summary = json.loads((out / "summary.json").read_text())
    losses = {c["loss"] for c in summary["comparisons"]}
    assert "ghmc" not in losses
    assert {"focal", "weighted-ce", "logit-adjust"} <= losses
    assert "entity_f1" in summary["metrics"]["focal"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "tags@50"], "needs N >= 100"),
    (["--data", "tags", "--model", "mlp"], "--model tagger"),
    (["--data", "tags", "--target", "y"], "only for tables"),
    (["--data", "tags", "--losses", "ce", "ghmc"], "binary problems"),
])
def test_command_line_errors(tmp_path, capsys, argv, message):
    assert main(["compare", *argv, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_load_tags_spec():
    assert load_tags("tags@120").name == "tags@120"
    with pytest.raises(DataError, match="tags or tags@N"):
        load_tags("tags@x")
