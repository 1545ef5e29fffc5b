"""Tests for `signals.bars`: schema, loader, validator, gaps, panel adapters, hashing."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from signals.bars import (
    BAR_SCHEMA,
    Panel,
    frame_hash,
    from_panel,
    load_bars,
    to_panel,
    validate_bars,
)
from signals.errors import DataError
from tests.strategies import bar_frames

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _bars(n=6, symbols=("BTC-USD", "ETH-USD"), hours=None):
    hours = list(range(n)) if hours is None else hours
    rows = [
        {
            "ts": T0 + h * HOUR,
            "symbol": s,
            "open": 100.0 + h,
            "high": 102.0 + h,
            "low": 99.0 + h,
            "close": 101.0 + h,
            "volume": 10.0 + h,
        }
        for s in symbols
        for h in hours
    ]
    return pl.DataFrame(rows, schema=BAR_SCHEMA)


def _set(frame, row, **values):
    idx = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(idx == row).then(pl.lit(v, dtype=frame.schema[k])).otherwise(pl.col(k)).alias(k)
        for k, v in values.items()
    )


# ---------------------------------------------------------------- validation: rejections

ROW = 8  # ETH-USD at 02:00 in the default frame
WHERE = "bar for `ETH-USD` at 2024-01-01T02:00:00+00:00"


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"high": 98.0}, "`high` must be >= `low`, was high=98.0 low=101.0"),
        ({"open": 105.0}, "`open` must be within [`low`, `high`], was open=105.0"),
        ({"open": 100.0}, "`open` must be within [`low`, `high`], was open=100.0"),
        ({"close": 104.5}, "`close` must be within [`low`, `high`], was close=104.5"),
        ({"close": 100.5}, "`close` must be within [`low`, `high`], was close=100.5"),
        ({"volume": -1.0}, "`volume` must be >= 0, was -1.0"),
        ({"low": 0.0, "open": 0.0}, "`open` must be > 0, was 0.0"),
        ({"low": -1.0}, "`low` must be > 0, was -1.0"),
        ({"close": float("nan")}, "`close` must be finite, was nan"),
        ({"high": float("inf")}, "`high` must be finite, was inf"),
        ({"volume": float("-inf")}, "`volume` must be finite, was -inf"),
        ({"open": None}, "`open` must be finite, was None"),
    ],
)
def test_validate_bars_bad_values_raise_naming_symbol_and_ts(values, rule):
    frame = _set(_bars(), ROW, **values)
    with pytest.raises(DataError) as info:
        validate_bars(frame)
    assert str(info.value).startswith(WHERE)
    assert rule in str(info.value)


def test_validate_bars_unsorted_ts_raise_naming_symbol_and_ts():
    frame = _bars()
    frame = pl.concat([frame[:8], frame[9:10], frame[8:9], frame[10:]])
    with pytest.raises(DataError) as info:
        validate_bars(frame)
    assert str(info.value) == (
        "bar for `ETH-USD` at 2024-01-01T02:00:00+00:00: `ts` must be increasing within a "
        "symbol, was after 2024-01-01T03:00:00+00:00"
    )


def test_validate_bars_duplicated_symbol_ts_raise_naming_symbol_and_ts():
    frame = _bars()
    frame = pl.concat([frame[:9], frame[8:9], frame[9:]])
    with pytest.raises(DataError, match=r"^bar for `ETH-USD` at 2024-01-01T02:00:00\+00:00: "):
        validate_bars(frame)
    with pytest.raises(DataError, match=r"\(`symbol`, `ts`\) must be unique, was duplicated"):
        validate_bars(frame)


def test_validate_bars_interleaved_symbols_in_order_pass():
    frame = _bars().sort("ts", "symbol")
    assert validate_bars(frame).n_bars == 12


def test_validate_bars_pre_2009_ts_raise_naming_symbol_and_ts():
    old = dt.datetime(2008, 12, 31, 23, tzinfo=dt.UTC)
    frame = _bars(hours=[0]).with_columns(pl.lit(old, dtype=BAR_SCHEMA["ts"]).alias("ts"))
    with pytest.raises(DataError) as info:
        validate_bars(frame)
    assert str(info.value).startswith("bar for `BTC-USD` at 2008-12-31T23:00:00+00:00: ")
    assert "`ts` must be >= 2009-01-01T00:00:00+00:00" in str(info.value)


def test_validate_bars_future_ts_raise_naming_symbol_and_ts():
    frame = _bars()
    # 02:00 is one minute more than a day past `now`; 01:00 is within the allowance.
    now = T0 + 2 * HOUR - dt.timedelta(days=1, minutes=1)
    with pytest.raises(DataError) as info:
        validate_bars(frame, now=now)
    assert str(info.value).startswith("bar for `BTC-USD` at 2024-01-01T02:00:00+00:00: ")
    assert "`ts` must be <= now + 1 day" in str(info.value)


def test_validate_bars_default_now_accepts_past_bars():
    assert validate_bars(_bars()).n_bars == 12


def test_validate_bars_null_ts_raise_naming_symbol_and_row():
    frame = _set(_bars(), ROW, ts=None)
    with pytest.raises(DataError, match=r"bar for `ETH-USD` at row 8: `ts` must not be null"):
        validate_bars(frame)


def test_validate_bars_null_symbol_raise_naming_row():
    frame = _set(_bars(), 3, symbol=None)
    with pytest.raises(DataError, match=r"bar at row 3: `symbol` must not be null"):
        validate_bars(frame)


def test_validate_bars_missing_column_raise_naming_column():
    with pytest.raises(DataError, match=r"must have columns \['volume'\]"):
        validate_bars(_bars().drop("volume"))


def test_validate_bars_wrong_dtype_raise_naming_column():
    frame = _bars().with_columns(pl.col("ts").dt.cast_time_unit("us"))
    with pytest.raises(DataError, match=r"`ts` must have dtype Datetime"):
        validate_bars(frame)


def test_validate_bars_empty_frame_raise():
    with pytest.raises(DataError, match="must contain at least one bar, was empty"):
        validate_bars(pl.DataFrame(schema=BAR_SCHEMA))


def test_validate_bars_several_bad_rows_report_first():
    frame = _set(_set(_bars(), 9, volume=-5.0), 4, high=1.0)
    with pytest.raises(DataError, match=r"^bar for `BTC-USD` at 2024-01-01T04:00:00\+00:00"):
        validate_bars(frame)


# ---------------------------------------------------------------- validation: report and gaps


def test_validate_bars_clean_frame_report_summary():
    report = validate_bars(_bars())
    assert report.n_bars == 12
    assert report.symbols == ("BTC-USD", "ETH-USD")
    assert report.start == T0
    assert report.end == T0 + 5 * HOUR
    assert report.bar_ns == 3_600 * 10**9
    assert report.gaps.is_empty()
    assert report.gaps.columns == ["symbol", "gap_start", "gap_end", "missing_bars"]


def test_validate_bars_holes_report_gaps_without_filling():
    frame = pl.concat(
        [
            _bars(symbols=("BTC-USD",), hours=[0, 1, 2, 5, 6, 7, 9]),
            _bars(symbols=("ETH-USD",), hours=[0, 1, 2, 3]),
        ]
    )
    report = validate_bars(frame)
    assert report.bar_ns == 3_600 * 10**9
    expected = pl.DataFrame(
        {
            "symbol": ["BTC-USD", "BTC-USD"],
            "gap_start": [T0 + 3 * HOUR, T0 + 8 * HOUR],
            "gap_end": [T0 + 5 * HOUR, T0 + 9 * HOUR],
            "missing_bars": [2, 1],
        },
        schema=report.gaps.schema,
    )
    assert_frame_equal(report.gaps, expected)
    assert report.n_bars == frame.height


def test_validate_bars_single_bar_per_symbol_bar_ns_none():
    report = validate_bars(_bars(hours=[0]))
    assert report.bar_ns is None
    assert report.gaps.is_empty()


# ---------------------------------------------------------------- loading


def _write(frame, path):
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(("unit", "factor"), [("s", 10**9), ("ms", 10**6), ("ns", 1)])
def test_load_bars_epoch_ts_parse_as_utc(tmp_path, suffix, unit, factor):
    bars = _bars()
    raw = bars.with_columns((pl.col("ts").cast(pl.Int64) // factor).alias("timestamp")).drop("ts")
    path = _write(raw, tmp_path / f"bars_{unit}{suffix}")
    assert_frame_equal(load_bars(path), bars)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_bars_iso_offset_strings_convert_to_utc(tmp_path, suffix):
    bars = _bars()
    raw = bars.with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Tokyo").dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
    )
    assert raw["ts"][0] == "2024-01-01T09:00:00+09:00"
    path = _write(raw, tmp_path / f"iso{suffix}")
    assert_frame_equal(load_bars(path), bars)


def test_load_bars_iso_z_suffix_and_space_parse(tmp_path):
    bars = _bars()
    raw = bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%SZ"))
    assert_frame_equal(load_bars(_write(raw, tmp_path / "z.csv")), bars)


def test_load_bars_aware_datetime_other_zone_convert_to_utc(tmp_path):
    bars = _bars()
    raw = bars.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    assert_frame_equal(load_bars(_write(raw, tmp_path / "ny.parquet")), bars)


def test_load_bars_naive_datetime_rejected(tmp_path):
    raw = _bars().with_columns(pl.col("ts").dt.replace_time_zone(None))
    with pytest.raises(DataError, match="must be timezone-aware, was naive.*add a UTC offset"):
        load_bars(_write(raw, tmp_path / "naive.parquet"))


def test_load_bars_naive_iso_string_rejected(tmp_path):
    raw = _bars().with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S"))
    with pytest.raises(DataError, match="`ts` must carry a UTC offset, was naive '2024-01-01T00"):
        load_bars(_write(raw, tmp_path / "naive.csv"))


@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01-05", "2024-01-01T00:00-05"])
def test_load_bars_date_string_ending_like_offset_handled(tmp_path, text):
    raw = _bars(hours=[0]).with_columns(pl.lit(text).alias("ts"))
    path = _write(raw, tmp_path / "d.csv")
    if text.endswith("00:00-05"):
        assert load_bars(path)["ts"][0].isoformat() == "2024-01-01T05:00:00+00:00"
    else:
        with pytest.raises(DataError, match="must carry a UTC offset, was naive"):
            load_bars(path)


def test_load_bars_naive_date_column_rejected(tmp_path):
    raw = _bars(hours=[0]).with_columns(pl.col("ts").dt.date())
    with pytest.raises(DataError, match="was a naive date"):
        load_bars(_write(raw, tmp_path / "date.parquet"))


def test_load_bars_unparsable_iso_rejected(tmp_path):
    raw = _bars(hours=[0]).with_columns(pl.lit("2024-13-45T00:00:00+00:00").alias("ts"))
    with pytest.raises(DataError, match="must be an ISO-8601 timestamp, was .2024-13-45T"):
        load_bars(_write(raw, tmp_path / "bad.csv"))


def test_load_bars_aliases_and_case_normalise(tmp_path):
    bars = _bars()
    raw = bars.select(
        pl.col("ts").cast(pl.Int64).floordiv(10**6).alias("Time"),
        pl.col("symbol").str.replace("-", "").str.to_lowercase().alias("Product_ID"),
        pl.col("open").alias("OPEN"),
        pl.col("high").alias("High"),
        pl.col("low").alias("Low"),
        pl.col("close").alias("Close"),
        pl.col("volume").alias("Volume"),
        pl.lit(1).alias("trades"),
    )
    assert_frame_equal(load_bars(_write(raw, tmp_path / "alias.csv")), bars)


def test_load_bars_symbol_argument_fills_missing_column(tmp_path):
    bars = _bars(symbols=("BTC-USD",))
    path = _write(bars.drop("symbol"), tmp_path / "one.parquet")
    assert_frame_equal(load_bars(path, symbol="XBTUSD"), bars)


def test_load_bars_no_symbol_anywhere_rejected(tmp_path):
    path = _write(_bars().drop("symbol"), tmp_path / "nosym.csv")
    with pytest.raises(DataError, match="a `symbol` column or the `symbol` argument is required"):
        load_bars(path)


def test_load_bars_symbol_argument_conflicting_column_rejected(tmp_path):
    path = _write(_bars(), tmp_path / "two.csv")
    with pytest.raises(DataError, match="must match the symbol column"):
        load_bars(path, symbol="BTC-USD")


def test_load_bars_unsorted_file_rejected_unless_sort(tmp_path):
    bars = _bars()
    path = _write(bars.reverse(), tmp_path / "rev.parquet")
    with pytest.raises(DataError, match="`ts` must be increasing within a symbol"):
        load_bars(path)
    assert_frame_equal(load_bars(path, sort=True), bars)


def test_load_bars_invalid_bar_rejected_naming_file_symbol_and_ts(tmp_path):
    path = _write(_set(_bars(), ROW, high=1.0), tmp_path / "bad.parquet")
    where = WHERE.replace("+", "[+]")
    with pytest.raises(DataError, match=rf"^file '{path}': {where}: `high` must be >="):
        load_bars(path)


def test_load_bars_missing_file_rejected_naming_path(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="must name an existing file") as info:
        load_bars(path)
    assert str(path) in str(info.value)


def test_load_bars_unknown_suffix_rejected_naming_path(tmp_path):
    path = tmp_path / "bars.json"
    path.write_text("{}")
    with pytest.raises(DataError, match=r"must end in .parquet or .csv, was .*bars.json"):
        load_bars(path)


def test_load_bars_missing_price_column_rejected(tmp_path):
    path = _write(_bars().drop("close"), tmp_path / "noclose.csv")
    with pytest.raises(DataError, match=r"columns \['close'\] must be present"):
        load_bars(path)


def test_load_bars_bad_symbol_rejected_naming_it(tmp_path):
    path = _write(_bars().with_columns(pl.lit("NOTASYMBOL").alias("symbol")), tmp_path / "s.csv")
    with pytest.raises(DataError, match="'NOTASYMBOL'"):
        load_bars(path)


# ---------------------------------------------------------------- loading: unreadable files

CSV_TEXT = "ts,symbol,open,high,low,close,volume\n2024-01-01T00:00:00Z,BTC-USD,1,2,0.5,1.5,10\n"


def _parquet_bytes(tmp_path):
    path = _write(_bars(), tmp_path / "whole.parquet")
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.csv", b"", "empty, 0 bytes"),
        ("blank.csv", b"\n\n", "empty CSV"),
        ("binary.csv", bytes(range(256)) * 4, "invalid utf-8"),
        ("ragged.csv", (CSV_TEXT + "2024-01-01T01:00:00Z,BTC-USD,1,2,0.5,1.5,10,9\n").encode(),
         "more fields"),
        ("zero.parquet", b"", "empty, 0 bytes"),
        ("garbage.parquet", b"garbage" * 40, "PAR1"),
        ("truncated.parquet", None, "PAR1"),
        ("text.parquet", CSV_TEXT.encode(), "PAR1"),
    ],
)  # fmt: skip
def test_load_bars_unreadable_file_raise_naming_file_and_reason(tmp_path, name, content, reason):
    if content is None:
        content = _parquet_bytes(tmp_path)[:200]
    path = tmp_path / name
    path.write_bytes(content)
    kind = "Parquet" if name.endswith(".parquet") else "CSV"
    with pytest.raises(DataError, match=f"is not a readable {kind} file") as info:
        load_bars(path)
    assert str(info.value).startswith(f"file '{path}' ")
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_bars_header_only_raise_no_rows(tmp_path, suffix):
    path = _write(_bars().head(0), tmp_path / f"header{suffix}")
    with pytest.raises(DataError, match=r"must hold at least one bar, had no rows") as info:
        load_bars(path)
    assert str(path) in str(info.value)


def test_load_bars_directory_raise_naming_it(tmp_path):
    path = tmp_path / "bars.csv"
    path.mkdir()
    with pytest.raises(DataError, match="must name a .parquet or .csv file, was the directory"):
        load_bars(path)


def test_load_bars_column_given_twice_raise_naming_it(tmp_path):
    path = tmp_path / "twice.csv"
    lines = CSV_TEXT.splitlines()
    path.write_text(f"{lines[0]},close\n{lines[1]},2\n")
    with pytest.raises(DataError, match="column `close` must appear once, was given twice"):
        load_bars(path)


def test_load_bars_symbol_column_not_text_raise(tmp_path):
    path = _write(_bars().with_columns(pl.col("symbol").cast(pl.Binary)), tmp_path / "b.parquet")
    with pytest.raises(DataError, match="`symbol` must be text, was Binary"):
        load_bars(path)


def test_load_bars_rule_without_file_names_file(tmp_path):
    path = _write(_bars().with_columns(pl.lit("NOTASYMBOL").alias("symbol")), tmp_path / "s.csv")
    with pytest.raises(DataError, match=rf"^file '{path}': .*'NOTASYMBOL'"):
        load_bars(path)


# ---------------------------------------------------------------- loading: numeric columns


@pytest.mark.parametrize(
    ("suffix", "column", "expr", "shown"),
    [
        (".parquet", "volume", pl.lit(True), "Boolean (e.g. True)"),
        (".csv", "volume", pl.lit(True), "Boolean (e.g. True)"),
        (".parquet", "close", pl.col("close").cast(pl.String), "String (e.g. '101.0')"),
        (".parquet", "close", pl.col("ts").dt.date(), "Date (e.g. 2024-01-01)"),
        (".parquet", "high", pl.concat_list("high"), "List(Float64) (e.g. [102.0])"),
        (".csv", "open", pl.lit("n/a"), "String (e.g. 'n/a')"),
    ],
)  # fmt: skip
def test_load_bars_non_numeric_column_raise_naming_column_and_dtype(
    tmp_path, suffix, column, expr, shown
):
    path = _write(_bars().with_columns(expr.alias(column)), tmp_path / f"x{suffix}")
    with pytest.raises(DataError) as info:
        load_bars(path)
    assert str(info.value) == (
        f"file '{path}': `{column}` must be numeric (integer or float), was {shown}; "
        "convert the column to numbers"
    )


def test_load_bars_csv_number_padded_with_space_raise_showing_it(tmp_path):
    path = tmp_path / "padded.csv"
    path.write_text(CSV_TEXT.replace(",1.5,", ", 1.5,"))
    with pytest.raises(DataError, match=r"`close` must be numeric .*was String \(e.g. ' 1.5'\)"):
        load_bars(path)


def test_load_bars_csv_text_after_inferred_rows_raise_naming_value(tmp_path):
    bars = _bars(n=6_000)  # 12,000 rows: past the 10,000 the CSV types are inferred from
    raw = bars.with_columns(pl.col("close").cast(pl.String))
    raw = raw.with_columns(
        pl.when(pl.int_range(pl.len()) == 11_000).then(pl.lit("n/a")).otherwise("close")
        .alias("close")
    )  # fmt: skip
    path = _write(raw, tmp_path / "late.csv")
    with pytest.raises(DataError, match=r"`close` must be numeric .*was String \(e.g. 'n/a'\)"):
        load_bars(path)


def test_load_bars_csv_float_after_integer_rows_accepted(tmp_path):
    # integers in the rows the types are inferred from, then a fraction: a number, accepted
    bars = _bars(n=6_000)
    volume = pl.col("volume").cast(pl.Int64).cast(pl.String)
    late = pl.when(pl.int_range(pl.len()) == 11_000).then(pl.lit("0.5")).otherwise(volume)
    loaded = load_bars(_write(bars.with_columns(late.alias("volume")), tmp_path / "late.csv"))
    assert loaded["volume"][11_000] == 0.5
    assert loaded["volume"][0] == 10.0
    assert_frame_equal(loaded.drop("volume"), bars.drop("volume"))


# ---------------------------------------------------------------- loading: time range


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_bars_ts_beyond_2262_raise_not_wrapped(tmp_path, suffix):
    # in nanoseconds polars turned 2600-01-01 into a 2015 date; a 2600 typo must not load
    far = dt.datetime(2600, 1, 1, tzinfo=dt.UTC)
    raw = _bars(hours=[0], symbols=("BTC-USD",)).cast({"ts": pl.Datetime("us", "UTC")})
    path = _write(raw.with_columns(pl.lit(far).alias("ts")), tmp_path / f"far{suffix}")
    with pytest.raises(DataError, match=r"`ts` must lie in 1677..2262 .*was .*2600-01-01"):
        load_bars(path)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (99_999_999_999, "`ts` as epoch seconds must lie in 1677..2262"),
        (float("inf"), "`ts` as a number must be an integer epoch, was inf"),
        (1e300, "`ts` as a number must be an integer epoch, was 1e+300"),
    ],
)  # fmt: skip
def test_load_bars_epoch_out_of_range_raise(tmp_path, value, shown):
    raw = _bars(hours=[0], symbols=("BTC-USD",)).with_columns(pl.lit(value).alias("ts"))
    with pytest.raises(DataError, match=shown.replace("+", "[+]")):
        load_bars(_write(raw, tmp_path / "epoch.csv"))


# ---------------------------------------------------------------- panel


def test_to_panel_holes_are_nan_on_union_index():
    frame = pl.concat(
        [
            _bars(symbols=("ETH-USD",), hours=[1, 2]),
            _bars(symbols=("BTC-USD",), hours=[0, 2]),
        ]
    )
    panel = to_panel(frame)
    assert panel.symbols == ("BTC-USD", "ETH-USD")
    assert panel.n_bars == 3
    assert panel.n_symbols == 2
    assert panel.ts_ns.dtype == np.int64
    assert panel.ts_ns[0] == int(T0.timestamp()) * 10**9
    assert np.isnan(panel.close[1, 0])
    assert np.isnan(panel.close[0, 1])
    assert panel.close[2, 1] == 103.0
    for arr in (panel.open, panel.high, panel.low, panel.close, panel.volume):
        assert arr.dtype == np.float64
        assert arr.flags.c_contiguous
    assert panel.symbol_index("ethusd") == 1


def test_panel_slice_rows_keep_symbols():
    panel = to_panel(_bars())
    part = panel.slice(2, 5)
    assert part.n_bars == 3
    assert part.symbols == panel.symbols
    np.testing.assert_array_equal(part.close, panel.close[2:5])
    np.testing.assert_array_equal(part.ts_ns, panel.ts_ns[2:5])
    assert panel.slice(3, 3).n_bars == 0


@pytest.mark.parametrize(("start", "stop"), [(-1, 2), (3, 2), (0, 7)])
def test_panel_slice_out_of_range_raise(start, stop):
    with pytest.raises(DataError, match="must satisfy 0 <= start <= stop <= 6"):
        to_panel(_bars()).slice(start, stop)


def test_panel_symbol_index_unknown_raise():
    with pytest.raises(DataError, match="must be one of"):
        to_panel(_bars()).symbol_index("SOL-USD")


def test_panel_non_increasing_ts_raise():
    panel = to_panel(_bars())
    with pytest.raises(DataError, match="`ts_ns` must be strictly increasing"):
        Panel(
            ts_ns=panel.ts_ns[::-1].copy(),
            symbols=panel.symbols,
            open=panel.open,
            high=panel.high,
            low=panel.low,
            close=panel.close,
            volume=panel.volume,
        )


def test_panel_non_contiguous_array_raise():
    panel = to_panel(_bars())
    with pytest.raises(DataError, match="`close` must be a C-contiguous float64 array"):
        Panel(
            ts_ns=panel.ts_ns,
            symbols=panel.symbols,
            open=panel.open,
            high=panel.high,
            low=panel.low,
            close=np.asfortranarray(panel.close),
            volume=panel.volume,
        )


def test_to_panel_invalid_frame_raise():
    with pytest.raises(DataError, match="`high` must be >= `low`"):
        to_panel(_set(_bars(), ROW, high=1.0))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(frame=bar_frames())
def test_panel_round_trip_any_valid_frame_exact(frame):
    panel = to_panel(frame)
    back = from_panel(panel)
    assert_frame_equal(back, frame, check_exact=True)
    assert frame_hash(back) == frame_hash(frame)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(frame=bar_frames())
def test_to_panel_row_order_does_not_matter(frame):
    shuffled = frame.sort("ts", "symbol")
    a, b = to_panel(frame), to_panel(shuffled)
    np.testing.assert_array_equal(a.close, b.close)
    np.testing.assert_array_equal(a.volume, b.volume)


# ---------------------------------------------------------------- hashing


def test_frame_hash_ignores_row_order_and_extra_columns():
    frame = _bars()
    assert len(frame_hash(frame)) == 16
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=1).with_columns(pl.lit(1).alias("x"))
    assert frame_hash(shuffled) == frame_hash(frame)


def test_frame_hash_any_value_change_changes_hash():
    frame = _bars()
    assert frame_hash(_set(frame, 3, volume=13.0000001)) != frame_hash(frame)
    assert frame_hash(_set(frame, 3, symbol="SOL-USD")) != frame_hash(frame)


def test_frame_hash_independent_of_file_format(tmp_path):
    frame = _bars()
    from_csv = load_bars(_write(frame, tmp_path / "a.csv"))
    from_parquet = load_bars(_write(frame, tmp_path / "a.parquet"))
    assert frame_hash(from_csv) == frame_hash(from_parquet) == frame_hash(frame)


# --- the panel build and the cheap validity pass, against plain references --------------------


def _to_panel_reference(frame: pl.DataFrame):
    """The plain build: numpy sort of every timestamp and symbol, then 2-D scatter."""
    ts_all = frame["ts"].cast(pl.Int64).to_numpy()
    sym_all = frame["symbol"].to_numpy().astype(str)
    ts_index, symbols = np.unique(ts_all), np.unique(sym_all)
    rows, cols = np.searchsorted(ts_index, ts_all), np.searchsorted(symbols, sym_all)
    arrays = {}
    for name in ("open", "high", "low", "close", "volume"):
        out = np.full((ts_index.size, symbols.size), np.nan)
        out[rows, cols] = frame[name].to_numpy()
        arrays[name] = out
    return ts_index, tuple(symbols.tolist()), arrays


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=bar_frames(max_symbols=4, max_bars=30), seed=st.integers(0, 2**32 - 1))
def test_to_panel_equals_the_plain_build_in_any_row_order(frame, seed):
    # symbol blocks in any order, and rows of different symbols interleaved
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed).sort("ts", maintain_order=True)
    for f in (frame, shuffled):
        panel = to_panel(f)
        ts_index, symbols, arrays = _to_panel_reference(f)
        np.testing.assert_array_equal(panel.ts_ns, ts_index)
        assert panel.symbols == symbols
        for name, expected in arrays.items():
            np.testing.assert_array_equal(getattr(panel, name), expected)
            assert getattr(panel, name).flags.c_contiguous


_BREAKS = ("none", "duplicate", "swap", "nan", "negative", "high_low", "far_duplicate")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=bar_frames(max_symbols=3, max_bars=12, min_bars=2),
    breaks=st.lists(st.sampled_from(_BREAKS), min_size=1, max_size=3),
    where=st.integers(0, 10_000),
    interleave=st.booleans(),
)
def test_cheap_validity_pass_never_misses_a_violation(frame, breaks, where, interleave):
    from signals.bars import _may_violate, bar_violations

    rows = frame.to_dicts()
    for kind in breaks:
        i = where % len(rows)
        if kind == "duplicate":
            rows.insert(i + 1, dict(rows[i]))
        elif kind == "far_duplicate":
            rows.append(dict(rows[i]))
        elif kind == "swap" and i + 1 < len(rows):
            rows[i], rows[i + 1] = rows[i + 1], rows[i]
        elif kind == "nan":
            rows[i]["close"] = float("nan")
        elif kind == "negative":
            rows[i]["volume"] = -1.0
        elif kind == "high_low":
            rows[i]["high"], rows[i]["low"] = rows[i]["low"] * 0.5, rows[i]["high"]
    broken = pl.DataFrame(rows, schema=frame.schema)
    if interleave:
        broken = broken.sort("ts", maintain_order=True)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert _may_violate(broken, now) == bool(bar_violations(broken, now=now))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=bar_frames(max_symbols=4, max_bars=20), seed=st.integers(0, 2**32 - 1))
def test_report_of_symbol_blocks_equals_report_of_interleaved_rows(frame, seed):
    # symbol blocks take the cheap adjacent-row path, interleaved rows the window over symbols
    interleaved = frame.sample(fraction=1.0, shuffle=True, seed=seed).sort(
        "ts", maintain_order=True
    )
    blocks, mixed = validate_bars(frame), validate_bars(interleaved)
    assert blocks.bar_ns == mixed.bar_ns
    assert_frame_equal(blocks.gaps, mixed.gaps)
    assert (blocks.n_bars, blocks.symbols, blocks.start, blocks.end) == (
        mixed.n_bars, mixed.symbols, mixed.start, mixed.end,
    )  # fmt: skip


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_symbols=st.integers(1, 5), n_bars=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_to_panel_of_a_dense_file_equals_the_plain_build(n_symbols, n_bars, seed):
    # every symbol at every bar, rows in (symbol, ts) order: the no-scatter path
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_symbols, n_bars)), axis=1))
    frame = pl.DataFrame(
        {
            "ts": np.tile(np.arange(n_bars) * 3_600_000_000_000 + 1_704_067_200 * 10**9, n_symbols),
            "symbol": np.repeat(["ADA-USD", "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD"][:n_symbols], n_bars),
            "open": close.ravel(), "high": close.ravel() * 1.01, "low": close.ravel() * 0.99,
            "close": close.ravel(), "volume": rng.gamma(2.0, 5.0, n_symbols * n_bars),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))  # fmt: skip
    panel = to_panel(frame)
    ts_index, symbols, arrays = _to_panel_reference(frame)
    np.testing.assert_array_equal(panel.ts_ns, ts_index)
    assert panel.symbols == symbols
    for name, expected in arrays.items():
        np.testing.assert_array_equal(getattr(panel, name), expected)
        assert getattr(panel, name).flags.c_contiguous


def _dense_frame(n_symbols: int, n_bars: int, seed: int) -> pl.DataFrame:
    # every symbol at every bar, rows in (symbol, ts) order
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_symbols, n_bars)), axis=1))
    return pl.DataFrame(
        {
            "ts": np.tile(np.arange(n_bars) * 3_600_000_000_000 + 1_704_067_200 * 10**9, n_symbols),
            "symbol": np.repeat(["ADA-USD", "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD"][:n_symbols], n_bars),
            "open": close.ravel(), "high": close.ravel() * 1.01, "low": close.ravel() * 0.99,
            "close": close.ravel(), "volume": rng.gamma(2.0, 5.0, n_symbols * n_bars),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))  # fmt: skip


_NEAR_DENSE = ("dense", "drop_row", "other_ts", "blocks_reversed", "rows_interleaved", "extra_bar")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_symbols=st.integers(1, 5),
    n_bars=st.integers(2, 30),
    seed=st.integers(0, 2**32 - 1),
    change=st.sampled_from(_NEAR_DENSE),
    where=st.integers(0, 10_000),
)
def test_to_panel_dense_path_only_for_dense_frames_same_arrays(
    n_symbols, n_bars, seed, change, where
):
    # `_dense_blocks` takes a frame only when its rows are the panel as they stand; frames one
    # change away from dense go through the scatter; both equal the plain build
    from signals.bars import _dense_blocks

    frame = _dense_frame(n_symbols, n_bars, seed)
    i = where % frame.height
    hour = pl.duration(hours=1, time_unit="ns")
    if change == "drop_row":
        frame = frame.filter(pl.int_range(pl.len()) != i)
    elif change == "other_ts":  # one symbol's bar moved half an hour: the blocks differ
        half = pl.duration(minutes=30, time_unit="ns")
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == i).then(pl.col("ts") + half).otherwise("ts")
        )
        frame = frame.sort("symbol", "ts")
    elif change == "blocks_reversed":
        frame = frame.sort("symbol", "ts", descending=[True, False])
    elif change == "rows_interleaved":
        frame = frame.sort("ts", "symbol")
    elif change == "extra_bar":  # the last symbol has one more bar
        last = frame.tail(1).with_columns(pl.col("ts") + hour)
        frame = pl.concat([frame, last])
    dense = _dense_blocks(frame)
    # one symbol: every change above leaves one block of increasing timestamps, still dense
    expect_dense = change == "dense" or n_symbols == 1
    assert (dense is not None) == expect_dense
    panel = to_panel(frame)
    ts_index, symbols, arrays = _to_panel_reference(frame)
    np.testing.assert_array_equal(panel.ts_ns, ts_index)
    assert panel.symbols == symbols
    for name, expected in arrays.items():
        np.testing.assert_array_equal(getattr(panel, name), expected)
        assert getattr(panel, name).flags.c_contiguous


def test_load_bars_returns_validate_bars_frame_and_its_errors(tmp_path):
    # `load_bars` runs the checks of `validate_bars` without its summary: same frame, same error
    frame = _bars(n=8, symbols=("BTC-USD", "ETH-USD"))
    good = tmp_path / "good.parquet"
    frame.write_parquet(good)
    loaded = load_bars(good)
    assert_frame_equal(loaded, frame)
    assert validate_bars(loaded).n_bars == loaded.height
    bad = tmp_path / "bad.parquet"
    _set(frame, 3, high=1.0).write_parquet(bad)
    with pytest.raises(DataError) as from_validate:
        validate_bars(_set(frame, 3, high=1.0))
    with pytest.raises(DataError) as from_load:
        load_bars(bad)
    assert str(from_load.value) == f"file {str(bad)!r}: {from_validate.value}"
