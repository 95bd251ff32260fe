"""Token tagging: find the rare named entities of sentences; the ``fit`` of :class:`TagTask`.

**The built-in sentences** (``--data tags``): composed here, deterministically (seed 0), nothing downloaded.
Words are drawn from a vocabulary of 300 common words with Zipf frequencies, 4 to 40 per sentence, with cue words
and entities added among them.
Two entity types are hidden among them, ``PER`` (one or two of 40 name words, often after ``mr`` / ``dr``)
and ``LOC`` (one or two of 40 place words, often after ``in`` / ``at``), tagged in the BIO scheme
(``O``, ``B-PER``, ``I-PER``, ``B-LOC``, ``I-LOC``). Context decides: ``in`` and ``at`` precede common
words far more often than places, and a quarter of the name and place words also occur as plain words
(tagged ``O``) away from their cues. About 1.4 % of the tokens belong to an entity. ``tags@N`` composes ``N``
sentences (default 1500).

**The protocol**, the same for every loss: sentences split 60/20/20 per seed (stratified by whether a
sentence holds an entity); batches of 32 sentences padded to the batch's longest, padding ``-100`` for the
losses (``ignore_index``); a tagger of a word embedding (32) and two 1-D convolutions (64 channels, kernels 5
and 3: five words of context each side), a per-token linear head whose bias starts at the log tag prior;
AdamW (weight decay 0.01); validation token AP after every epoch, early stopping on it; the test split scored
once. Token AP (macro one-vs-rest over the tags, padding left out) is the primary metric; entity-level F1
(seqeval's definition: an entity counts when its type and both ends are right; the tags are each token's
argmax) beside it.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data import DataError
from ..losses import TrainingLoss
from ..metrics import average_precision
from .loop import split_by_presence

__all__ = ["TAGS", "EntityF1", "TagData", "TagProtocol", "TagTask", "is_tags_spec", "load_tags", "make_tags",
           "tagger"]

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
IGNORE = -100
PAD = 0
_COMMON, _NAMES, _PLACES = 300, 40, 40
_PERSON_CUES, _PLACE_CUES = ("mr", "dr"), ("in", "at")


@dataclass
class TagData:
    name: str
    sentences: list[np.ndarray]  # word ids per sentence, 1..vocab-1 (0 is padding)
    tags: list[np.ndarray]  # tag ids per sentence, same lengths
    vocab_size: int
    class_names: list[str] = field(default_factory=lambda: list(TAGS))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return False

    def class_counts(self) -> np.ndarray:
        return np.bincount(np.concatenate(self.tags), minlength=self.num_classes).astype(np.float64)

    def describe(self) -> str:
        counts = self.class_counts()
        lengths = [len(s) for s in self.sentences]
        entities = sum(int((t == 1).sum() + (t == 3).sum()) for t in self.tags)
        return (f"{self.name}: {len(self.sentences)} sentences of {min(lengths)}–{max(lengths)} tokens, "
                f"{int(counts.sum()):,} tokens, {entities} entities; entity tokens "
                f"{100 * counts[1:].sum() / counts.sum():.2f} % (" +
                ", ".join(f"{n} {int(c)}" for n, c in zip(self.class_names[1:], counts[1:], strict=True)) + ")")

    def column_notes(self) -> list[str]:
        return []


def make_tags(n: int = 1500, *, seed: int = 0) -> TagData:
    """Compose the built-in sentences (see the module docstring)."""
    rng = np.random.default_rng(seed)
    # ids: 1..300 common words; then names, places, and the four cue words
    common = np.arange(1, _COMMON + 1)
    names = np.arange(_COMMON + 1, _COMMON + 1 + _NAMES)
    places = names[-1] + 1 + np.arange(_PLACES)
    cue = {w: int(places[-1] + 1 + k) for k, w in enumerate(_PERSON_CUES + _PLACE_CUES)}
    vocab_size = max(cue.values()) + 1
    zipf = 1.0 / np.arange(1, _COMMON + 1)
    zipf /= zipf.sum()
    ambiguous = np.concatenate([names[: _NAMES // 4], places[: _PLACES // 4]])  # also plain words
    sentences, tags = [], []
    for _ in range(n):
        length = int(rng.integers(4, 41))
        words = list(rng.choice(common, size=length, p=zipf))
        labels = [0] * length
        for _ in range(int(rng.poisson(1.2))):  # cue words before common words: cues alone do not decide
            pos = int(rng.integers(0, len(words)))
            words.insert(pos, cue[_PLACE_CUES[int(rng.integers(0, 2))]])
            labels.insert(pos, 0)
        if rng.random() < 0.3:  # an ambiguous word as a plain word, away from a cue
            pos = int(rng.integers(0, len(words)))
            words.insert(pos, int(rng.choice(ambiguous)))
            labels.insert(pos, 0)
        for kind, pool, cues, rate in ((1, names, _PERSON_CUES, 0.12), (3, places, _PLACE_CUES, 0.12)):
            if rng.random() >= rate:
                continue
            span = [int(w) for w in rng.choice(pool, size=1 + int(rng.random() < 0.35), replace=False)]
            pos = int(rng.integers(0, len(words) + 1))
            cue_words = [cue[cues[int(rng.integers(0, 2))]]] if rng.random() < 0.7 else []
            words[pos:pos] = cue_words + span
            labels[pos:pos] = [0] * len(cue_words) + [kind] + [kind + 1] * (len(span) - 1)
        sentences.append(np.asarray(words, dtype=np.int64))
        tags.append(np.asarray(labels, dtype=np.int64))
    return TagData(f"tags@{n}", sentences, tags, vocab_size)


_TAGS = re.compile(r"^tags(?:@(?P<n>\d+))?$")


def is_tags_spec(spec: str) -> bool:
    return bool(_TAGS.match(spec))


def load_tags(spec: str) -> TagData:
    """``tags`` / ``tags@N``."""
    match = _TAGS.match(spec)
    if match is None:
        raise DataError(f"--data: expected tags or tags@N; got {spec!r}.")
    n = int(match["n"] or 1500)
    if n < 100:
        raise DataError(f"--data: tags@N needs N >= 100 sentences (a 60/20/20 split with entities in each); got {n}.")
    return make_tags(n)


def tagger(vocab_size: int, num_tags: int, prior: np.ndarray, *, embed: int = 32, width: int = 64) -> nn.Module:
    """Embedding, two 1-D convolutions (kernels 5 and 3) with ReLU, a per-token linear head; logits
    ``[B, C, T]`` for word ids ``[B, T]``. The head's bias starts at the log tag prior."""

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab_size, embed, padding_idx=PAD)
            self.body = nn.Sequential(nn.Conv1d(embed, width, 5, padding=2), nn.ReLU(),
                                      nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv1d(width, num_tags, 1))
            with torch.no_grad():
                self.body[-1].bias.copy_(torch.log(torch.as_tensor(prior, dtype=torch.float32)))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.body(self.embed(ids).transpose(1, 2))

    return Tagger()


@dataclass(frozen=True)
class TagProtocol:
    embed: int = 32
    width: int = 64
    max_epochs: int = 40
    patience: int = 6
    batch_size: int = 32
    weight_decay: float = 1e-2
    device: str = "cpu"
    keep_curves: bool = True


@dataclass(frozen=True)
class EntityF1:
    """Entity-level F1 (seqeval, micro over types) from flattened per-token probabilities and the sentence
    lengths: :func:`focalkit.compare.run` calls it on each row's test probabilities (``"metrics_fn"``)."""

    lengths: tuple[int, ...]
    class_names: tuple[str, ...]

    def __call__(self, y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        from seqeval.metrics import f1_score

        names = np.asarray(self.class_names)
        bounds = np.cumsum((0, *self.lengths))
        truth = [names[y[a:b]].tolist() for a, b in itertools.pairwise(bounds)]
        guess = [names[probs[a:b].argmax(1)].tolist() for a, b in itertools.pairwise(bounds)]
        return {"entity_f1": float(f1_score(truth, guess, zero_division=0))}


def _split(data: TagData, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return split_by_presence(np.asarray([int((t > 0).any()) for t in data.tags]), seed)


def _batch(data: TagData, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids and tags of ``rows``, padded to the longest of them (ids 0, tags -100)."""
    longest = max(len(data.sentences[i]) for i in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long)
    tags = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
    for k, i in enumerate(rows):
        ids[k, :len(data.sentences[i])] = torch.from_numpy(data.sentences[i])
        tags[k, :len(data.tags[i])] = torch.from_numpy(data.tags[i])
    return ids, tags


@dataclass
class TagTask:
    """``fit(loss_fn, *, seed, lr)`` for :func:`focalkit.compare.run`: the tagger on one seed's split."""

    data: TagData
    protocol: TagProtocol = field(default_factory=TagProtocol)

    @property
    def description(self) -> str:
        p = self.protocol
        return (f"tagger (embedding {p.embed}, two 1-D convolutions of width {p.width}, kernels 5 and 3), AdamW, "
                f"batch {p.batch_size} sentences padded to the longest (-100 ignored), up to {p.max_epochs} epochs "
                f"with early stopping on validation token AP (patience {p.patience}), sentences split 60/20/20 "
                "per seed")

    def __call__(self, loss_fn: TrainingLoss, *, seed: int, lr: float) -> dict:
        torch.set_num_threads(1)
        p = self.protocol
        device = torch.device(p.device)
        train, val, test = _split(self.data, seed)
        counts = np.bincount(np.concatenate([self.data.tags[i] for i in train]), minlength=self.data.num_classes)
        prior = np.maximum(counts, 1) / max(counts.sum(), 1)
        torch.manual_seed(seed)
        model = tagger(self.data.vocab_size, self.data.num_classes, prior, embed=p.embed, width=p.width).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=p.weight_decay)
        gen = torch.Generator().manual_seed(seed)

        def predict(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            model.eval()
            ys, ps = [], []
            with torch.no_grad():
                for start in range(0, len(rows), 256):
                    ids, tags = _batch(self.data, rows[start:start + 256])
                    probs = torch.softmax(model(ids.to(device)).float(), 1).transpose(1, 2).cpu()
                    keep = tags != IGNORE
                    ys.append(tags[keep].numpy())
                    ps.append(probs[keep].numpy().astype(np.float64))
            return np.concatenate(ys), np.concatenate(ps)

        best = {"ap": -1.0, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
        curve: list[tuple[int, float, float]] = []
        since = 0
        for epoch in range(1, p.max_epochs + 1):
            model.train()
            order = train[torch.randperm(len(train), generator=gen).numpy()]
            total, tokens = 0.0, 0
            for start in range(0, len(order), p.batch_size):
                ids, tags = _batch(self.data, order[start:start + p.batch_size])
                ids, tags = ids.to(device), tags.to(device)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(ids), tags)
                loss.backward()
                opt.step()
                n = int((tags != IGNORE).sum())
                total, tokens = total + float(loss.detach()) * n, tokens + n
            ap = average_precision(*predict(val))
            curve.append((epoch, ap, total / max(tokens, 1)))
            if ap > best["ap"] + 1e-9:
                best = {"ap": ap, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
                since = 0
            else:
                since += 1
                if since >= p.patience:
                    break
        model.load_state_dict(best["state"])
        lengths = tuple(len(self.data.sentences[i]) for i in test)
        return {"val": predict(val), "test": predict(test), "epoch": best["epoch"],
                "curve": curve if p.keep_curves else [], "budget": p.max_epochs,
                "metrics_fn": EntityF1(lengths, tuple(self.data.class_names))}
