"""The canonical bar schema, its loader and validator, and the frame <-> panel adapters.

Layer 1: polars and numpy only. The loaders read files; nothing here writes to disk.

A bar frame is long: one row per (symbol, bar) in `BAR_SCHEMA`; ``ts`` is the bar OPEN time in
UTC (tz-aware, nanoseconds). A `Panel` is the wide form the kernels take: float64 arrays
``[time, symbol]`` on the union time index, NaN where a symbol has no bar.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from signals.errors import DataError
from signals.symbols import canonical_symbol

BAR_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("ns", "UTC"),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
"""Column names and dtypes of every bar frame, in this order."""

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
VALUE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")

MIN_TS = datetime(2009, 1, 1, tzinfo=UTC)
"""Earliest accepted bar time (no crypto market traded before 2009)."""

MAX_FUTURE = timedelta(days=1)
"""How far past the current time a bar may start (clock skew allowance)."""

_COLUMN_ALIASES: dict[str, str] = {
    "ts": "ts",
    "time": "ts",
    "timestamp": "ts",
    "date": "ts",
    "datetime": "ts",
    "start": "ts",
    "symbol": "symbol",
    "product_id": "symbol",
    "pair": "symbol",
    "ticker": "symbol",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
}
# A time of day followed by Z or a +hh[:mm] offset; a bare date such as 2012-01-31 ends in
# "-31" and must not count as an offset.
_OFFSET_SUFFIX = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$")
_DUPLICATED = re.compile(r"_duplicated_\d+$")
_NAIVE_HINT = "add a UTC offset (e.g. +00:00) or use integer epoch seconds/milliseconds/nanoseconds"


# ############# Loading ############# #


def load_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    sort: bool = False,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Load, normalise and validate a bar file.

    Parameters
    ----------
    path : str or Path
        A ``.parquet`` or ``.csv`` file.
    symbol : str, optional
        Symbol for a file without a symbol column (any spelling `canonical_symbol` accepts).
        If the file has one, every row must agree with it.
    sort : bool, default False
        Sort by (symbol, ts) before validating. Off by default so unsorted files are reported.
    now : datetime, optional
        Reference time for the future-timestamp check (default: the current UTC time).

    Returns
    -------
    pl.DataFrame
        The bars in `BAR_SCHEMA`, symbols canonical.

    Raises
    ------
    DataError
        Naming the file, for: a missing file, a folder, an unsupported suffix, a file polars
        cannot read (empty, not UTF-8, ragged rows, not Parquet, truncated), no rows, a column
        given twice, missing columns, a non-numeric OHLCV column, naive or unparsable
        timestamps, unparsable symbols and every rule of `validate_bars`.

    Notes
    -----
    Column names are matched case-insensitively; ``time``, ``timestamp``, ``date``,
    ``datetime`` and ``start`` mean ``ts``; ``product_id``, ``pair`` and ``ticker`` mean
    ``symbol``. ``ts`` may be a tz-aware datetime, an ISO-8601 string with an offset, or integer
    epoch seconds, milliseconds, microseconds or nanoseconds (unit inferred from magnitude).
    Naive datetimes are rejected: their timezone cannot be known. OHLCV columns must have an
    integer, float or decimal dtype as read: booleans, dates and text (a CSV column holding
    any value that is not a number, or a Parquet string column of numbers) are rejected, never
    converted. CSV types are inferred from the first 10,000 rows, and from every row when a
    later value does not fit.
    """
    path = Path(path)
    source = str(path)
    raw = _read(path)
    try:
        frame = _normalise(raw, symbol=symbol, source=source)
        if sort:
            frame = frame.sort("symbol", "ts", maintain_order=True)
        # the rules of `validate_bars` without its summary, which nothing here reads (the gaps
        # and bar length: 1.4-1.9 s of 500 x 20k bars, in-process, under load, 2026-12-07)
        _check_bars(frame, now)
    except DataError as e:
        if source in str(e):
            raise
        # the rules of `validate_bars` and `canonical_symbol` know no file; name it
        raise DataError(f"file {source!r}: {e}") from e
    return frame


def _read(path: Path) -> pl.DataFrame:
    """Return the columns of a ``.parquet`` or ``.csv`` file as polars reads them.

    Raises `DataError` naming the file for anything that is not a readable file with rows.
    """
    source = str(path)
    if path.is_dir():
        msg = f"`path` must name a .parquet or .csv file, was the directory {source!r}"
        raise DataError(msg)
    if not path.is_file():
        msg = f"`path` must name an existing file, was {source!r}"
        raise DataError(msg)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        msg = f"`path` must end in .parquet or .csv, was {source!r}"
        raise DataError(msg)
    kind = "Parquet" if suffix == ".parquet" else "CSV"
    try:
        if path.stat().st_size == 0:
            msg = f"file {source!r} is not a readable {kind} file (empty, 0 bytes)"
            raise DataError(msg)
        raw = pl.read_parquet(path) if kind == "Parquet" else _read_csv(path)
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = f"file {source!r} is not a readable {kind} file ({_clip(reason, 200)})"
        raise DataError(msg) from e
    if raw.height == 0:
        msg = (
            f"file {source!r}: must hold at least one bar, had no rows "
            f"(columns {_clip(str(raw.columns))})"
        )
        raise DataError(msg)
    return raw


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema_length=10_000)
    except pl.exceptions.ComputeError:
        # A value past the rows the types were inferred from does not fit them (text in a
        # number column): infer from every row, so the check names the column's real type.
        return pl.read_csv(path, infer_schema_length=None)


def _normalise(raw: pl.DataFrame, *, symbol: str | None, source: str) -> pl.DataFrame:
    renames: dict[str, str] = {}
    for name in raw.columns:
        # polars renames the second `close` of a CSV header to `close_duplicated_0`
        first = _DUPLICATED.sub("", name)
        given = first if first != name and first in raw.columns else name
        target = _COLUMN_ALIASES.get(given.strip().lower())
        if target is None:
            continue
        if target in renames.values():
            msg = f"file {source!r}: column `{target}` must appear once, was given twice"
            raise DataError(msg)
        renames[name] = target
    frame = raw.select(list(renames)).rename(renames)

    if "symbol" in frame.columns:
        if frame["symbol"].null_count():
            n_null = frame["symbol"].null_count()
            msg = f"file {source!r}: `symbol` must not be null, was null in {n_null} rows"
            raise DataError(msg)
        dtype = frame.schema["symbol"]
        if not (dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)):
            msg = f"file {source!r}: `symbol` must be text, was {dtype}"
            raise DataError(msg)
        frame = frame.with_columns(pl.col("symbol").cast(pl.String))
        if symbol is not None:
            expected = canonical_symbol(symbol)
            found = sorted({canonical_symbol(s) for s in frame["symbol"].unique().to_list()})
            if found not in ([], [expected]):
                msg = (
                    f"file {source!r}: `symbol` argument {expected!r} must match the symbol "
                    f"column, was {found}"
                )
                raise DataError(msg)
    elif symbol is not None:
        frame = frame.with_columns(pl.lit(symbol, dtype=pl.String).alias("symbol"))
    else:
        msg = (
            f"file {source!r}: a `symbol` column or the `symbol` argument is required, was neither"
        )
        raise DataError(msg)

    missing = [c for c in BAR_SCHEMA if c not in frame.columns]
    if missing:
        msg = (
            f"file {source!r}: columns {missing} must be present, "
            f"was columns {_clip(str(raw.columns))}"
        )
        raise DataError(msg)

    uniques = frame["symbol"].unique().to_list()
    mapping = {s: canonical_symbol(s) for s in uniques}
    renamed = {s: c for s, c in mapping.items() if s != c}
    frame = frame.with_columns(
        # only when a spelling changes: a pass over every row's string costs ~0.5 s at 10 M rows
        pl.col("symbol").replace(renamed) if renamed else pl.col("symbol"),
        _parse_ts(frame["ts"], source),
    )
    for name in VALUE_COLUMNS:
        _check_numeric(frame[name], source)
    frame = frame.with_columns(pl.col(VALUE_COLUMNS).cast(pl.Float64))
    return frame.select(BAR_SCHEMA.keys()).cast(BAR_SCHEMA)  # type: ignore[arg-type]


def _check_numeric(column: pl.Series, source: str) -> None:
    dtype = column.dtype
    if dtype.is_integer() or dtype.is_float() or dtype.is_decimal():
        return
    values = column.drop_nulls()
    if values.len() == 0:
        n_rows = column.len()
        msg = f"file {source!r}: `{column.name}` must be numeric, was empty in all {n_rows} rows"
        raise DataError(msg)
    if dtype == pl.String:
        # show a value that is not a number if there is one, e.g. the " 2" of "1, 2"
        text = values.filter(values.cast(pl.Float64, strict=False).is_null())
        example = repr((text if text.len() else values)[0])
    else:
        example = str(values.head(1).to_list()[0])
    msg = (
        f"file {source!r}: `{column.name}` must be numeric (integer or float), was {dtype} "
        f"(e.g. {_clip(example)}); convert the column to numbers"
    )
    raise DataError(msg)


def _clip(text: str, limit: int = 120) -> str:
    # one line of bounded length, whatever a file holds (a binary file's "header")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _parse_ts(ts: pl.Series, source: str) -> pl.Series:
    dtype = ts.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            msg = f"file {source!r}: `ts` must be timezone-aware, was naive {dtype}; {_NAIVE_HINT}"
            raise DataError(msg)
        return _to_ns(ts.dt.convert_time_zone("UTC"), ts, source)
    if dtype == pl.Date:
        msg = f"file {source!r}: `ts` must be timezone-aware, was a naive date; {_NAIVE_HINT}"
        raise DataError(msg)
    if dtype.is_float():
        # NaN != NaN, inf is not finite, and 2**63 does not fit int64
        bad_epoch = ts.is_not_null() & (
            (ts != ts.round(0)) | ~ts.is_finite() | (ts.abs() >= 2.0**63)
        )
        if bad_epoch.any():
            bad = ts.filter(bad_epoch)[0]
            msg = f"file {source!r}: `ts` as a number must be an integer epoch, was {bad!r}"
            raise DataError(msg)
        ts = ts.cast(pl.Int64)
        dtype = ts.dtype
    if dtype.is_integer():
        as_int = ts.cast(pl.Int64, strict=False)
        too_big = as_int.is_null() & ts.is_not_null()
        if too_big.any():
            msg = f"file {source!r}: `ts` as a number must fit int64, was {ts.filter(too_big)[0]}"
            raise DataError(msg)
        return _epoch_to_datetime(as_int, source)
    if dtype == pl.String:
        return _iso_to_datetime(ts, source)
    msg = (
        f"file {source!r}: `ts` must be a datetime, ISO string or integer epoch, was dtype {dtype}"
    )
    raise DataError(msg)


def _epoch_to_datetime(ts: pl.Series, source: str) -> pl.Series:
    # Unit from magnitude: now is ~1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns. The cut-offs sit
    # between those decades; a wrong guess lands before 2009 or far in the future, which
    # validation rejects.
    # magnitude in float: abs() of the smallest int64 does not fit int64
    peak = ts.cast(pl.Float64).abs().max()
    peak = 0.0 if peak is None else float(peak)  # type: ignore[arg-type]
    if peak < 100_000_000_000:
        factor, unit = 1_000_000_000, "seconds"
    elif peak < 100_000_000_000_000:
        factor, unit = 1_000_000, "milliseconds"
    elif peak < 100_000_000_000_000_000:
        factor, unit = 1_000, "microseconds"
    else:
        factor, unit = 1, "nanoseconds"
    if peak * factor >= 2.0**63:
        # int64 nanoseconds span 1677..2262; the product would wrap around to a plausible date
        outside = ts.cast(pl.Float64).abs() * factor >= 2.0**63
        msg = (
            f"file {source!r}: `ts` as epoch {unit} must lie in 1677..2262 (int64 "
            f"nanoseconds), was {ts.filter(outside)[0]}"
        )
        raise DataError(msg)
    return (ts * factor).cast(BAR_SCHEMA["ts"]).alias("ts")


def _iso_to_datetime(ts: pl.Series, source: str) -> pl.Series:
    text = ts.str.strip_chars()
    lacking = text.is_not_null() & ~text.str.contains(_OFFSET_SUFFIX.pattern)
    if lacking.any():
        bad = text.filter(lacking)[0]
        msg = f"file {source!r}: `ts` must carry a UTC offset, was naive {bad!r}; {_NAIVE_HINT}"
        raise DataError(msg)
    normal = text.str.replace(r"Z$", "+00:00").str.replace(" ", "T", literal=True)
    # first in microseconds (+-294,000 years) to check the range: in nanoseconds polars wraps
    # the year 2600 around to 2015 instead of failing; then in nanoseconds, exactly
    parsed = normal.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    failed = parsed.is_null() & text.is_not_null()
    if failed.any():
        bad = text.filter(failed)[0]
        msg = f"file {source!r}: `ts` must be an ISO-8601 timestamp, was {bad!r}"
        raise DataError(msg)
    _to_ns(parsed, text, source)
    return normal.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False).alias("ts")


def _to_ns(ts: pl.Series, given: pl.Series, source: str) -> pl.Series:
    """Return `ts` in UTC nanoseconds; a time outside 1677..2262 is an error showing `given`."""
    out = ts.cast(BAR_SCHEMA["ts"], strict=False)
    outside = out.is_null() & ts.is_not_null()
    if outside.any():
        bad = given.filter(outside)[0]
        shown = repr(bad) if isinstance(bad, str) else str(bad)
        msg = f"file {source!r}: `ts` must lie in 1677..2262 (int64 nanoseconds), was {shown}"
        raise DataError(msg)
    return out.alias("ts")


# ############# Validation ############# #


@dataclass(frozen=True)
class BarReport:
    """Summary of a validated bar frame.

    Attributes
    ----------
    n_bars : int
        Number of rows.
    symbols : tuple of str
        Distinct symbols, sorted.
    start, end : datetime
        First and last bar open time (UTC).
    bar_ns : int or None
        Inferred bar length: the most common ts difference within a symbol over all symbols
        (the smallest on a tie); None if no symbol has two bars.
    gaps : pl.DataFrame
        One row per hole: ``symbol``, ``gap_start`` (open time of the first missing bar),
        ``gap_end`` (open time of the next present bar), ``missing_bars``. Gaps are reported,
        never filled.
    """

    n_bars: int
    symbols: tuple[str, ...]
    start: datetime
    end: datetime
    bar_ns: int | None
    gaps: pl.DataFrame


_GAP_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "gap_start": pl.Datetime("ns", "UTC"),
    "gap_end": pl.Datetime("ns", "UTC"),
    "missing_bars": pl.Int64(),
}


def validate_bars(frame: pl.DataFrame, *, now: datetime | None = None) -> BarReport:
    """Check a bar frame against the schema rules and return its summary.

    Rules (each failure raises `DataError` naming the symbol and the bar's ISO timestamp, for
    the first offending row in frame order): columns and dtypes of `BAR_SCHEMA`; at least one
    row; no null symbol or ts; ts within a symbol strictly increasing (unsorted and duplicated
    (symbol, ts) are separate messages); ts >= 2009-01-01 and <= ``now`` + 1 day; OHLCV finite;
    prices > 0; volume >= 0; high >= low; open and close within [low, high].

    Parameters
    ----------
    frame : pl.DataFrame
        Bars in `BAR_SCHEMA`.
    now : datetime, optional
        Reference time for the future check (default: the current UTC time).

    Returns
    -------
    BarReport
    """
    _check_bars(frame, now)
    return _report(frame)


def _check_bars(frame: pl.DataFrame, now: datetime | None) -> None:
    # every rule of `validate_bars`, in its order, with its messages; no summary
    _check_columns(frame)
    if frame.height == 0:
        msg = "`frame` must contain at least one bar, was empty"
        raise DataError(msg)
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        msg = f"`now` must be timezone-aware, was naive {now.isoformat()}"
        raise DataError(msg)

    null_symbol = frame["symbol"].is_null()
    if null_symbol.any():
        row = int(null_symbol.arg_true()[0])
        msg = f"bar at row {row}: `symbol` must not be null, was null"
        raise DataError(msg)
    null_ts = frame["ts"].is_null()
    if null_ts.any():
        row = int(null_ts.arg_true()[0])
        msg = f"bar for `{frame['symbol'][row]}` at row {row}: `ts` must not be null, was null"
        raise DataError(msg)

    flagged = _first_violation(frame, now)
    if flagged is not None:
        raise DataError(flagged)


def _check_columns(frame: pl.DataFrame) -> None:
    missing = [c for c in BAR_SCHEMA if c not in frame.columns]
    if missing:
        msg = f"`frame` must have columns {missing}, was columns {frame.columns}"
        raise DataError(msg)
    for name, dtype in BAR_SCHEMA.items():
        if frame.schema[name] != dtype:
            msg = f"`{name}` must have dtype {dtype}, was {frame.schema[name]}"
            raise DataError(msg)


# Rule name -> expression that is True on an offending row. Order is the reporting priority
# when one row breaks several rules.
def _rules(now: datetime) -> dict[str, pl.Expr]:
    ts = pl.col("ts")
    finite = {f"finite_{c}": pl.col(c).is_null() | ~pl.col(c).is_finite() for c in VALUE_COLUMNS}
    positive = {f"positive_{c}": pl.col(c) <= 0 for c in PRICE_COLUMNS}
    return {
        "duplicated": ~pl.struct("symbol", "ts").is_first_distinct(),
        "unsorted": ts.diff().over("symbol") < pl.duration(nanoseconds=0),
        "before_2009": ts < pl.lit(MIN_TS, dtype=BAR_SCHEMA["ts"]),
        "future": ts > pl.lit((now + MAX_FUTURE).astimezone(UTC)).cast(BAR_SCHEMA["ts"]),
        **finite,
        **positive,
        "negative_volume": pl.col("volume") < 0,
        "high_below_low": pl.col("high") < pl.col("low"),
        "open_outside": (pl.col("open") < pl.col("low")) | (pl.col("open") > pl.col("high")),
        "close_outside": (pl.col("close") < pl.col("low")) | (pl.col("close") > pl.col("high")),
    }


def bar_violations(
    frame: pl.DataFrame, *, now: datetime | None = None, limit: int | None = None
) -> list[tuple[int, str, str]]:
    """Return `(row index, symbol, message)` for each bar breaking a schema rule, in frame order.

    The same rules and messages as `validate_bars` (one message per row: its first rule), for
    callers that drop bad bars instead of rejecting the frame, such as the live daemon.
    """
    now = now or datetime.now(UTC)
    rules = _rules(now)
    flags = frame.with_row_index("_row").with_columns(
        pl.col("ts").shift(1).over("symbol").alias("_prev_ts"),
        *(expr.fill_null(False).alias(f"_rule_{name}") for name, expr in rules.items()),
    )
    any_rule = pl.any_horizontal([f"_rule_{name}" for name in rules])
    hits = flags.filter(any_rule)
    if limit is not None:
        hits = hits.head(limit)
    out = []
    for row in hits.iter_rows(named=True):
        rule = next(name for name in rules if row[f"_rule_{name}"])
        out.append((int(row["_row"]), str(row["symbol"]), _message(rule, row, now)))
    return out


def _first_violation(frame: pl.DataFrame, now: datetime) -> str | None:
    if not _may_violate(frame, now):
        return None
    hits = bar_violations(frame, now=now, limit=1)
    return hits[0][2] if hits else None


def _may_violate(frame: pl.DataFrame, now: datetime) -> bool:
    """Return False only when no row breaks a rule of `_rules` (a cheap pass over the frame).

    A duplicated (symbol, ts) always shows as a `ts` that does not increase within its symbol
    somewhere, so the costly `duplicated` rule (a hash over every (symbol, ts) pair: 3 of 4 s
    of validating 500 x 20k bars) runs only when this pass finds something; `bar_violations`
    then names the first offending row by the full rules, messages unchanged.
    """
    rules = _rules(now)
    del rules["duplicated"], rules["unsorted"]
    # each rule reduced on its own, not OR-ed row by row first: 0.64 -> 0.45 s at 500 x 20k
    # bars under load (2026-12-07)
    hits = frame.select(expr.fill_null(False).any().alias(name) for name, expr in rules.items())
    if any(hits.row(0)):
        return True
    ts = pl.col("ts")
    if frame["symbol"].is_sorted():  # the usual layout: one block per symbol
        # a ts that does not increase counts only where the previous row has the same symbol;
        # the symbols are compared at those rows alone (a block's start, mostly), not at every
        # row: 0.39 -> 0.08 s at 500 x 20k bars under load (2026-12-07)
        not_increasing = (ts.diff() <= pl.duration(nanoseconds=0)).fill_null(False)
        rows = frame.select(pl.arg_where(not_increasing)).to_series()
        symbol = frame["symbol"]
        return bool((symbol.gather(rows) == symbol.gather(rows - 1)).any())
    not_increasing = ts.diff().over("symbol") <= pl.duration(nanoseconds=0)
    return bool(frame.select(not_increasing.fill_null(False).any()).item())


def _message(rule: str, row: dict[str, Any], now: datetime) -> str:
    where = f"bar for `{row['symbol']}` at {_iso(row['ts'])}"
    if rule == "duplicated":
        what = "(`symbol`, `ts`) must be unique, was duplicated"
    elif rule == "unsorted":
        what = f"`ts` must be increasing within a symbol, was after {_iso(row['_prev_ts'])}"
    elif rule == "before_2009":
        what = f"`ts` must be >= {_iso(MIN_TS)}, was {_iso(row['ts'])}"
    elif rule == "future":
        what = f"`ts` must be <= now + 1 day ({_iso(now + MAX_FUTURE)}), was {_iso(row['ts'])}"
    elif rule.startswith("finite_"):
        name = rule.removeprefix("finite_")
        what = f"`{name}` must be finite, was {row[name]}"
    elif rule.startswith("positive_"):
        name = rule.removeprefix("positive_")
        what = f"`{name}` must be > 0, was {row[name]}"
    elif rule == "negative_volume":
        what = f"`volume` must be >= 0, was {row['volume']}"
    elif rule == "high_below_low":
        what = f"`high` must be >= `low`, was high={row['high']} low={row['low']}"
    else:
        name = rule.removesuffix("_outside")
        what = (
            f"`{name}` must be within [`low`, `high`], "
            f"was {name}={row[name]} low={row['low']} high={row['high']}"
        )
    return f"{where}: {what}"


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _report(frame: pl.DataFrame) -> BarReport:
    ts_ns = pl.col("ts").cast(pl.Int64)
    if frame["symbol"].is_sorted():
        # one block per symbol (the usual layout): the previous row is the previous bar of the
        # same symbol unless the symbol changes there; 0.6 -> 0.48 s at 500 x 20k bars against
        # a window `over` symbols
        same_symbol = pl.col("symbol") == pl.col("symbol").shift(1)
        prev: pl.Expr = pl.when(same_symbol).then(pl.col("ts").shift(1))
        diff_ns: pl.Expr = pl.when(same_symbol).then(ts_ns.diff())
    else:
        prev = pl.col("ts").shift(1).over("symbol")
        diff_ns = ts_ns.diff().over("symbol")
    diffs = frame.select(
        "symbol", pl.col("ts").alias("gap_end"), prev.alias("prev"), diff_ns.alias("diff_ns")
    ).filter(pl.col("diff_ns").is_not_null())
    bar_ns: int | None = None
    gaps = pl.DataFrame(schema=_GAP_SCHEMA)
    if diffs.height:
        counts = diffs.group_by("diff_ns").len().sort(["len", "diff_ns"], descending=[True, False])
        bar_ns = int(counts["diff_ns"][0])
        gaps = (
            diffs.filter(pl.col("diff_ns") > bar_ns)
            .select(
                "symbol",
                (pl.col("prev") + pl.duration(nanoseconds=bar_ns)).alias("gap_start"),
                "gap_end",
                # ceil(diff / bar) - 1 bars fit strictly between the two present bars.
                ((pl.col("diff_ns") - 1) // bar_ns).alias("missing_bars"),
            )
            .sort("symbol", "gap_start")
            .cast(_GAP_SCHEMA)  # type: ignore[arg-type]
        )
    return BarReport(
        n_bars=frame.height,
        symbols=tuple(sorted(frame["symbol"].unique().to_list())),
        start=frame["ts"].min(),  # type: ignore[arg-type]
        end=frame["ts"].max(),  # type: ignore[arg-type]
        bar_ns=bar_ns,
        gaps=gaps,
    )


# ############# Panel ############# #


@dataclass(frozen=True, eq=False)
class Panel:
    """Wide bars for the kernels: float64 ``[time, symbol]`` arrays on one UTC time index.

    Attributes
    ----------
    ts_ns : np.ndarray
        int64 ``[T]`` bar open times, UTC epoch nanoseconds, strictly increasing.
    symbols : tuple of str
        Canonical symbols, column order of the arrays.
    open, high, low, close, volume : np.ndarray
        float64 C-contiguous ``[T, S]``; NaN where a symbol has no bar.
    """

    ts_ns: np.ndarray
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        ts = self.ts_ns
        if ts.dtype != np.int64 or ts.ndim != 1:
            msg = f"`ts_ns` must be a 1-D int64 array, was {ts.ndim}-D {ts.dtype}"
            raise DataError(msg)
        if ts.size > 1 and not bool(np.all(np.diff(ts) > 0)):
            row = int(np.argmin(np.diff(ts) > 0)) + 1
            msg = (
                f"`ts_ns` must be strictly increasing, was {ts[row]} at index {row} "
                f"after {ts[row - 1]}"
            )
            raise DataError(msg)
        shape = (ts.size, len(self.symbols))
        for name in VALUE_COLUMNS:
            arr = getattr(self, name)
            if arr.dtype != np.float64 or arr.shape != shape or not arr.flags.c_contiguous:
                msg = (
                    f"`{name}` must be a C-contiguous float64 array of shape {shape}, "
                    f"was {arr.dtype} {arr.shape} c_contiguous={arr.flags.c_contiguous}"
                )
                raise DataError(msg)

    @property
    def n_bars(self) -> int:
        """Number of time steps T."""
        return int(self.ts_ns.size)

    @property
    def n_symbols(self) -> int:
        """Number of symbols S."""
        return len(self.symbols)

    def slice(self, start_idx: int, stop_idx: int) -> Panel:
        """Return the rows ``start_idx:stop_idx`` (views, no copy) as a new Panel."""
        if not 0 <= start_idx <= stop_idx <= self.n_bars:
            msg = (
                f"`start_idx`, `stop_idx` must satisfy 0 <= start <= stop <= {self.n_bars}, "
                f"was start={start_idx} stop={stop_idx}"
            )
            raise DataError(msg)
        rows = slice(start_idx, stop_idx)
        return Panel(
            ts_ns=self.ts_ns[rows],
            symbols=self.symbols,
            open=self.open[rows],
            high=self.high[rows],
            low=self.low[rows],
            close=self.close[rows],
            volume=self.volume[rows],
        )

    def symbol_index(self, sym: str) -> int:
        """Return the column of ``sym`` (any spelling `canonical_symbol` accepts)."""
        canonical = canonical_symbol(sym)
        try:
            return self.symbols.index(canonical)
        except ValueError as e:
            msg = f"`symbol` must be one of {list(self.symbols)}, was {sym!r}"
            raise DataError(msg) from e


def first_bar_no(ts_ns: np.ndarray, bar_ns: int) -> int:
    """Return the absolute bar number (`ts_ns // bar_ns`) of the first bar; 0 with no bars.

    Anchored kernels (`sma_nb`, `ma_cross_nb`, `regime_nb`) fix their summation order by it,
    so a backtest and the live bridge's later-starting window compute the same bits.
    """
    return int(ts_ns[0] // bar_ns) if ts_ns.shape[0] else 0


def to_panel(frame: pl.DataFrame, *, validate: bool = True) -> Panel:
    """Return the wide `Panel` of a bar frame.

    The time index is the sorted union of all timestamps; symbols are sorted alphabetically.
    The frame is validated first (`validate_bars`) unless `validate=False`, for a frame that
    `load_bars` returned (it validated it) or a row subset of one. Missing bars are NaN,
    never filled. A dense frame (one block per symbol in symbol order, each with the same
    timestamps) is reshaped as it stands; any other is scattered through hashed row and
    column codes. Both give the same arrays.
    """
    if validate:
        validate_bars(frame)
    blocks = _dense_blocks(frame)
    if blocks is not None:
        ts_sorted, symbol_names = blocks
        return Panel(
            ts_ns=ts_sorted,
            symbols=symbol_names,
            **{
                name: np.ascontiguousarray(
                    frame[name].to_numpy().reshape(len(symbol_names), ts_sorted.size).T,
                    dtype=np.float64,
                )
                for name in VALUE_COLUMNS
            },
        )
    symbols = frame["symbol"].unique().sort()
    # row and column of every bar from polars' hashed codes: sorting 10 M strings or
    # timestamps in numpy (np.unique + searchsorted) took most of a 500 x 20k panel's build
    ts_index = frame["ts"].cast(pl.Int64).unique().sort()
    row_numbers = pl.int_range(ts_index.len(), eager=True)
    codes = frame.select(
        pl.col("ts").cast(pl.Int64).replace_strict(ts_index, row_numbers).alias("row"),
        pl.col("symbol").cast(pl.Enum(symbols)).to_physical().cast(pl.Int64).alias("col"),
    )
    n_bars, n_symbols = ts_index.len(), symbols.len()
    # scattered symbol-major (a file's rows run symbol by symbol, so the writes are nearly
    # sequential), then one transposing copy to `[T, S]`: 1.05 against 1.56-1.88 s for the five
    # columns of 500 x 20k bars scattered straight into `[T, S]` (same process, 2026-12-07)
    flat = codes["col"].to_numpy() * n_bars + codes["row"].to_numpy()
    arrays: dict[str, np.ndarray] = {}
    for name in VALUE_COLUMNS:
        by_symbol = np.full((n_symbols, n_bars), np.nan, dtype=np.float64)
        by_symbol.reshape(-1)[flat] = frame[name].to_numpy()
        arrays[name] = np.ascontiguousarray(by_symbol.T, dtype=np.float64)
    return Panel(
        ts_ns=np.ascontiguousarray(ts_index.to_numpy(), dtype=np.int64),
        symbols=tuple(symbols.to_list()),
        **arrays,
    )


def _dense_blocks(frame: pl.DataFrame) -> tuple[np.ndarray, tuple[str, ...]] | None:
    # `(ts_ns, symbols)` when the rows are one block per symbol in sorted symbol order, every
    # block the same strictly increasing timestamps (a dense file, as `sim.synth` and most
    # downloads write it), else None. Then the rows are the symbol-major panel as they stand,
    # and `to_panel` skips hashing every timestamp and symbol into a row and a column, with the
    # same arrays (500 x 20k bars: 2.6-3.8 -> 0.74-0.86 s in fresh processes under load,
    # 2026-12-07). Adjacent runs differ, so sorted run values mean a sorted column.
    n_rows = frame.height
    symbol, ts = frame["symbol"], frame["ts"]
    if n_rows == 0 or symbol.null_count() or ts.null_count():
        return None
    runs = symbol.rle()
    values = runs.struct.field("value")
    n_symbols = runs.len()
    n_bars = n_rows // n_symbols
    if (
        n_symbols * n_bars != n_rows
        or not values.is_sorted()
        or not bool((runs.struct.field("len") == n_bars).all())
    ):
        return None
    by_symbol = ts.cast(pl.Int64).to_numpy().reshape(n_symbols, n_bars)
    first = by_symbol[0]
    if not bool(np.all(first[1:] > first[:-1])) or not bool(np.all(by_symbol == first)):
        return None
    return np.ascontiguousarray(first, dtype=np.int64), tuple(values.to_list())


def from_panel(panel: Panel) -> pl.DataFrame:
    """Return the long bar frame of a `Panel`, sorted by (symbol, ts), without NaN-close rows."""
    # Transposed arrays are symbol-major, so the boolean mask walks (symbol, ts) in sort order.
    present = ~np.isnan(panel.close.T)
    n_bars, n_symbols = panel.n_bars, panel.n_symbols
    ts = np.broadcast_to(panel.ts_ns, (n_symbols, n_bars))[present]
    sym = np.repeat(np.asarray(panel.symbols, dtype=object), n_bars).reshape(n_symbols, n_bars)
    columns: dict[str, Any] = {
        "ts": pl.Series("ts", ts, dtype=pl.Int64).cast(BAR_SCHEMA["ts"]),
        "symbol": pl.Series("symbol", sym[present].tolist(), dtype=pl.String),
    }
    for name in VALUE_COLUMNS:
        columns[name] = pl.Series(name, getattr(panel, name).T[present], dtype=pl.Float64)
    return pl.DataFrame(columns).select(BAR_SCHEMA.keys())


# ############# Hashing ############# #


def frame_hash(frame: pl.DataFrame) -> str:
    """Return the first 16 hex chars of a SHA-256 over the bars' canonical bytes.

    The frame is sorted by (symbol, ts) and serialised as: column names, row count, the int64
    epoch-ns ``ts``, NUL-separated UTF-8 symbols, then each OHLCV column as little-endian
    float64. It does not depend on file format, row order or extra columns.
    """
    _check_columns(frame)
    bars = frame.select(BAR_SCHEMA.keys()).sort("symbol", "ts")
    digest = hashlib.sha256()
    digest.update(",".join(BAR_SCHEMA).encode())
    digest.update(np.int64(bars.height).tobytes())
    digest.update(bars["ts"].cast(pl.Int64).to_numpy().astype("<i8").tobytes())
    digest.update("\x00".join(bars["symbol"].to_list()).encode())
    for name in VALUE_COLUMNS:
        digest.update(bars[name].to_numpy().astype("<f8").tobytes())
    return digest.hexdigest()[:16]
