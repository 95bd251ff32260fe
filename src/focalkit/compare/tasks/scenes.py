"""Dense prediction: segment every pixel of a rare object; the ``fit`` of :class:`DenseTask`.

**The built-in scenes** (``--data scenes``): 64×64 grey images composed here, deterministically
(seed 0), from scikit-learn's bundled 8×8 digit glyphs (nothing is downloaded): a cluttered
background (smooth noise, random strokes, and glyph fragments), then two digits per image, each
scaled to 12–20 pixels at a random place and contrast; each digit is an 8 with probability 0.2.
The task is "segment every pixel of an 8": the mask marks the pixels where an 8's glyph is at
least half its full intensity, about 1 % of all pixels, against a sea of easy background and
other digits that look alike (3, 9, 0, 6) — the setting focal loss was made for. ``scenes@N``
composes ``N`` images (default 500).

**A user's masks** (``--data file.npz``): arrays ``images`` ``[N, H, W]`` or ``[N, C, H, W]`` and
``masks`` ``[N, H, W]`` with 0 (background), 1 (object) and 255 (ignored: left out of the losses
and the metrics).

**The protocol**, the same for every loss: images split 60/20/20 per seed (stratified by whether
an image holds any object pixel); pixel values standardised per channel on the training split; a
small fully convolutional network (:func:`fcn`) whose output bias starts at the log prior odds of
the object pixels; AdamW (decoupled weight decay 0.01), batches of 16 images, validation pixel AP
after every epoch, early stopping on it; the test split scored once. Pixel AP is the primary
metric; Dice (F1 over all test pixels) and IoU at the threshold that maximises Dice on validation
beside it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import DataError
from ..losses import TrainingLoss
from ..metrics import average_precision
from .loop import split_by_presence, train_epoch

__all__ = ["DenseData", "DenseProtocol", "DenseTask", "fcn", "load_dense", "make_scenes"]

IGNORE = 255


@dataclass
class DenseData:
    name: str
    images: np.ndarray  # [N, C, H, W] float32
    masks: np.ndarray  # [N, H, W] uint8: 0, 1, 255 (ignored)

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def binary(self) -> bool:
        return True

    def class_counts(self) -> np.ndarray:
        counted = self.masks[self.masks != IGNORE]
        return np.bincount(counted.reshape(-1), minlength=2).astype(np.float64)

    def describe(self) -> str:
        n, c, h, w = self.images.shape
        counts = self.class_counts()
        ignored = int((self.masks == IGNORE).sum())
        return (f"{self.name}: {n} images {h}×{w} ({c} channel{'s' if c > 1 else ''}), object pixels "
                f"{int(counts[1]):,} of {int(counts.sum()):,} ({100 * counts[1] / counts.sum():.2f} %)"
                + (f", {ignored:,} ignored" if ignored else ""))

    def column_notes(self) -> list[str]:
        return []


def _resize(glyph: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(glyph[None, None].astype(np.float32))
    return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def _smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = rng.random((1, 1, 8, 8)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size), mode="bicubic",
                                        align_corners=False)
    return t[0, 0].numpy()


def make_scenes(n: int = 500, *, size: int = 64, digits_per_image: int = 2, p_eight: float = 0.2,
                seed: int = 0) -> DenseData:
    """Compose the built-in scenes (see the module docstring)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    glyphs = raw.images.astype(np.float32) / 16.0
    eights = np.flatnonzero(raw.target == 8)
    others = np.flatnonzero(raw.target != 8)
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        canvas = 0.35 * _smooth_noise(rng, size) + 0.08 * rng.random((size, size)).astype(np.float32)
        for _ in range(rng.integers(2, 5)):  # strokes
            r0, c0 = rng.integers(0, size, 2)
            length, angle = rng.integers(8, 30), rng.random() * np.pi
            t = np.linspace(0, 1, 40)
            rr = np.clip((r0 + t * length * np.sin(angle)).astype(int), 0, size - 1)
            cc = np.clip((c0 + t * length * np.cos(angle)).astype(int), 0, size - 1)
            canvas[rr, cc] = np.maximum(canvas[rr, cc], 0.4 + 0.4 * rng.random())
        for _ in range(rng.integers(1, 4)):  # fragments of other digits
            g = glyphs[rng.choice(others)]
            r, c = rng.integers(0, 4, 2)
            frag = _resize(g[r:r + 4, c:c + 4], int(rng.integers(6, 12)))
            y, x = rng.integers(0, size - frag.shape[0], 2)
            canvas[y:y + frag.shape[0], x:x + frag.shape[1]] = np.maximum(
                canvas[y:y + frag.shape[0], x:x + frag.shape[1]], frag * (0.4 + 0.4 * rng.random()))
        for _ in range(digits_per_image):
            is_eight = rng.random() < p_eight
            g = glyphs[rng.choice(eights if is_eight else others)]
            s = int(rng.integers(12, 21))
            glyph = np.clip(_resize(g, s), 0, 1)
            y, x = rng.integers(0, size - s, 2)
            contrast = 0.6 + 0.4 * rng.random()
            window = canvas[y:y + s, x:x + s]
            canvas[y:y + s, x:x + s] = np.maximum(window, glyph * contrast)
            if is_eight:
                masks[i, y:y + s, x:x + s] |= (glyph >= 0.5).astype(np.uint8)
            else:  # a later digit drawn over an 8 hides it
                masks[i, y:y + s, x:x + s] &= (glyph < 0.5).astype(np.uint8)
        images[i, 0] = canvas
    return DenseData(f"scenes@{n}", images, masks)


_SCENES = re.compile(r"^scenes(?:@(?P<n>\d+))?$")


def is_dense_spec(spec: str) -> bool:
    return bool(_SCENES.match(spec)) or spec.lower().endswith(".npz")


def load_dense(spec: str) -> DenseData:
    """``scenes`` / ``scenes@N`` or a ``.npz`` file with ``images`` and ``masks``."""
    match = _SCENES.match(spec)
    if match:
        n = int(match["n"] or 500)
        if n < 20:
            raise DataError(f"--data: scenes@N needs N >= 20 images for a 60/20/20 split; got {n}.")
        return make_scenes(n)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"--data: file not found: {path}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"--data: cannot read {path.name} as a NumPy .npz archive of arrays (np.savez(path, "
                        "images=..., masks=...); pickled objects are not loaded).") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"--data: {path.name} holds a single array; save both with np.savez(path, images=..., "
                        "masks=...).")
    with archive:
        missing = [k for k in ("images", "masks") if k not in archive.files]
        if missing:
            raise DataError(f"--data: {path.name} must hold arrays 'images' and 'masks' (np.savez(path, images=..., "
                            f"masks=...)); it has {archive.files} (missing {missing}).")
        try:
            images, masks = archive["images"], archive["masks"]
        except ValueError as err:
            raise DataError(f"--data: {path.name}: 'images' and 'masks' must be plain arrays (no pickled "
                            "objects).") from err
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(f"--data: {path.name}: images must be [N, H, W] or [N, C, H, W]; got {list(images.shape)}.")
    if images.shape[-1] in (1, 3, 4) and masks.shape == images.shape[:3]:
        raise DataError(f"--data: {path.name}: images {list(images.shape)} look channels-last; focalkit takes "
                        f"[N, C, H, W]: images.transpose(0, 3, 1, 2).")
    if masks.shape != (images.shape[0], *images.shape[2:]):
        raise DataError(f"--data: {path.name}: masks must be [N, H, W] = {[images.shape[0], *images.shape[2:]]} "
                        f"to match the images; got {list(masks.shape)}.")
    if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
        raise DataError(f"--data: {path.name}: images must be finite numbers.")
    values = np.unique(masks)
    if not set(values.tolist()) <= {0, 1, IGNORE}:
        raise DataError(f"--data: {path.name}: masks must hold 0, 1 and 255 (ignored) only; got values "
                        f"{values[:10].tolist()}.")
    if images.shape[0] < 10:
        raise DataError(f"--data: {path.name}: {images.shape[0]} images are too few for a 60/20/20 split.")
    data = DenseData(path.stem, images.astype(np.float32), masks.astype(np.uint8))
    if (data.class_counts() == 0).any():
        raise DataError(f"--data: {path.name}: the masks need both background (0) and object (1) pixels.")
    return data


def fcn(in_channels: int = 1, width: int = 16, prior: float = 0.01) -> nn.Module:
    """A small fully convolutional network: a stride-2 stem, three 3×3 layers, dilated 1, 2, 4 (receptive
    field 31 pixels: a whole digit), a 1×1 head, and bilinear upsampling back to the input size."""

    class FCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(),
                nn.Conv2d(width, 1, 1))
            with torch.no_grad():
                self.body[-1].bias.fill_(float(np.log(prior / (1 - prior))))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.body(x)
            return nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    return FCN()


@dataclass(frozen=True)
class DenseProtocol:
    width: int = 16
    max_epochs: int = 40
    patience: int = 8
    batch_size: int = 16
    weight_decay: float = 1e-2  # AdamW's, decoupled from the loss's scale
    device: str = "cpu"
    keep_curves: bool = True


def _split(data: DenseData, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return split_by_presence((data.masks == 1).reshape(len(data.masks), -1).any(1).astype(int), seed)


@dataclass
class DenseTask:
    """``fit(loss_fn, *, seed, lr)`` for :func:`focalkit.compare.run`: the FCN on one seed's split."""

    data: DenseData
    protocol: DenseProtocol = field(default_factory=DenseProtocol)

    @property
    def description(self) -> str:
        p = self.protocol
        return (f"fully convolutional network (width {p.width}, stride-2 stem, dilated 3×3 layers), AdamW, batch "
                f"{p.batch_size} images, up to {p.max_epochs} epochs with early stopping on validation pixel AP "
                f"(patience {p.patience}), images split 60/20/20 per seed")

    def __call__(self, loss_fn: TrainingLoss, *, seed: int, lr: float) -> dict:
        torch.set_num_threads(1)
        p = self.protocol
        device = torch.device(p.device)
        train, val, test = _split(self.data, seed)
        x = self.data.images
        mean = x[train].mean(axis=(0, 2, 3), keepdims=True)
        std = x[train].std(axis=(0, 2, 3), keepdims=True)
        x = (x - mean) / np.where(std > 0, std, 1.0)
        masks = self.data.masks
        counted = masks[train][masks[train] != IGNORE]
        prior = float(np.clip(counted.mean(), 1e-4, 1 - 1e-4))
        torch.manual_seed(seed)
        model = fcn(x.shape[1], p.width, prior).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=p.weight_decay)
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.from_numpy(masks.astype(np.int64))
        x_train, y_train = xt[train].to(device), yt[train].to(device)
        gen = torch.Generator().manual_seed(seed)

        def predict(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            model.eval()
            with torch.no_grad():
                probs = torch.cat([torch.sigmoid(model(xt[rows[i:i + 64]].to(device))).cpu()
                                   for i in range(0, len(rows), 64)])[:, 0]
            keep = masks[rows] != IGNORE
            return masks[rows][keep].astype(np.int64), probs.numpy()[keep].astype(np.float64)

        best = {"ap": -1.0, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
        curve: list[tuple[int, float, float]] = []
        hist: list[tuple[int, list[float]]] = []
        probe = train[:64]  # GHM-C: the gradient-norm histogram on these training images' pixels
        since = 0
        for epoch in range(1, p.max_epochs + 1):
            order = torch.randperm(len(train), generator=gen)
            train_loss = train_epoch(model, opt, loss_fn, x_train, y_train, order, p.batch_size)
            ap = average_precision(*_as_pairs(*predict(val)))
            curve.append((epoch, ap, train_loss))
            if loss_fn.ghm is not None:
                y_probe, p_probe = predict(probe)
                counts = np.histogram(np.abs(p_probe - y_probe), bins=loss_fn.ghm.bins, range=(0.0, 1.0))[0]
                hist.append((epoch, counts.astype(float).tolist()))
            if ap > best["ap"] + 1e-9:
                best = {"ap": ap, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
                since = 0
            else:
                since += 1
                if since >= p.patience:
                    break
        model.load_state_dict(best["state"])
        return {"val": predict(val), "test": predict(test), "epoch": best["epoch"],
                "curve": curve if p.keep_curves else [], "grad_norm_hist": hist, "budget": p.max_epochs}


def _as_pairs(y: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return y, np.stack([1 - p1, p1], 1)
