"""Data tools for researchers: fetch Coinbase candles into a resumable cache, resample bars.

Layer 2 (orchestration and IO). `fetch_candles` downloads one product's candles through
coinbase-advanced-py's public (keyless) `RESTClient.get_public_candles` into a Parquet file in
the canonical bar schema (`signals.bars.BAR_SCHEMA`), page by page; `resample_bars` turns a bar
frame into coarser bars. The `sim data fetch` and `sim data resample` commands of `sim.cli` call
`cmd_fetch` and `cmd_resample` here.

The cache file is an ordinary bar file (``sim run --data`` reads it) whose Parquet key-value
metadata, under `CACHE_METADATA_KEY`, records the product, the granularity and the time ranges
already fetched. The venue omits buckets without trades, so the fetched ranges, not the bars,
say what is still missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

import polars as pl

from signals.bars import BAR_SCHEMA, bar_violations, load_bars, validate_bars
from signals.errors import DataError, PlatformError
from signals.granularity import GRANULARITY_SECS, MAX_CANDLES_PER_REQUEST
from signals.symbols import canonical_symbol

NS = 1_000_000_000
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_ROOT / "data" / "cache"
"""Default folder of fetched candles (git-ignored)."""

DEFAULT_PAGE_CANDLES = 300
"""Buckets per request: under the cap, since reports differ on whether exactly 350 passes."""


CACHE_METADATA_KEY = "247trader.fetch"
CACHE_VERSION = 1
CANDLE_FIELDS = ("start", "open", "high", "low", "close", "volume")
UNSORTED_HINT = "pass --sort to sort the rows by (symbol, ts) before validating"
# The phrase of `signals.bars` for the "unsorted" rule (pinned by tests/sim/test_data_tools.py).
_UNSORTED_PHRASE = "must be increasing within a symbol"

T = TypeVar("T")


class FetchError(PlatformError):
    """Downloading candles failed: the venue refused a request, was unreachable, or sent data
    that breaks the bar rules, or the cache file belongs to another product.

    Raised by `fetch_candles`; the CLI prints it as one line and exits 2. Every page written
    before the failure stays in the cache; a rerun fetches only what is missing.
    """


class CandleClient(Protocol):
    """The two public calls of `coinbase.rest.RESTClient` that `fetch_candles` uses."""

    def get_unix_time(self) -> Any:
        """Return the venue's time (``epoch_seconds``)."""

    def get_public_candles(
        self, product_id: str, start: str, end: str, granularity: str, limit: int | None = None
    ) -> Any:
        """Return the candles of `product_id` with bucket start in ``[start, end)``."""


@dataclass(frozen=True)
class FetchResult:
    """What one `fetch_candles` call did.

    Attributes
    ----------
    path : Path
        The cache file.
    pages_fetched : int
        Requests that returned candles and were written to the cache in this call.
    pages_missing : int
        Pages of the requested range that were not cached when the call started.
    bars_added : int
        Bars written in this call.
    n_bars : int
        Bars in the cache file after the call (all ranges fetched so far).
    start_s, end_s : int
        The requested range after alignment to the grid and to the last closed bucket,
        epoch seconds, ``[start_s, end_s)``.
    end_clamped : bool
        The requested end lay past the last closed bucket at the venue.
    empty_buckets : int
        Buckets of ``[start_s, end_s)`` without a bar in the cache: fetched, but the venue
        omits buckets without trades (counted only when the range is complete).
    complete : bool
        The whole requested range is cached (False when `max_pages` stopped the call).
    """

    path: Path
    pages_fetched: int
    pages_missing: int
    bars_added: int
    n_bars: int
    start_s: int
    end_s: int
    end_clamped: bool
    empty_buckets: int
    complete: bool


# ############# Time and ranges ############# #


def parse_utc(value: str, flag: str) -> datetime:
    """Return an ISO date or timestamp (`Z` or an offset; none means UTC) as an aware datetime.

    Raises `DataError` naming `flag` (e.g. `--start`) for a value that is not one. The one parser
    of the CLI's `--start`/`--end` (`sim run`, `sim sweep`, `sim data fetch`).
    """
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        msg = (
            f"`{flag}` must be an ISO date or timestamp such as 2024-03-01T00:00:00Z, was {value!r}"
        )
        raise DataError(msg) from e
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def parse_utc_secs(value: str, flag: str) -> int:
    """Return an ISO date or timestamp as epoch seconds (`parse_utc`, surrounding blanks
    ignored)."""
    return int(parse_utc(value.strip(), flag).timestamp())


def _iso(secs: int) -> str:
    return datetime.fromtimestamp(secs, UTC).isoformat().replace("+00:00", "Z")


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[1] > r[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _missing(lo: int, hi: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, at = [], lo
    for c_lo, c_hi in _merge(covered):
        if c_hi <= at or c_lo >= hi:
            continue
        if c_lo > at:
            out.append((at, c_lo))
        at = max(at, c_hi)
    if at < hi:
        out.append((at, hi))
    return out


def _pages(missing: list[tuple[int, int]], span_secs: int) -> list[tuple[int, int]]:
    return [(t, min(hi, t + span_secs)) for lo, hi in missing for t in range(lo, hi, span_secs)]


# ############# Cache file ############# #


def default_cache_path(product: str, granularity: str) -> Path:
    """Return ``data/cache/<PRODUCT>_<GRANULARITY>.parquet`` under the project root."""
    return CACHE_DIR / f"{product}_{granularity}.parquet"


def read_cache(
    path: Path, product: str, granularity: str
) -> tuple[pl.DataFrame, list[tuple[int, int]]]:
    """Return the bars and fetched ranges of a cache file (no file: empty).

    Raises `FetchError` when the file is not a `sim data fetch` cache or holds another
    product or granularity: it is never overwritten then.
    """
    if not path.exists():
        return pl.DataFrame(schema=BAR_SCHEMA), []
    try:
        meta = pl.read_parquet_metadata(path).get(CACHE_METADATA_KEY)
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        msg = f"`--out` {str(path)!r} must be a readable Parquet cache, was not ({e})"
        raise FetchError(msg) from e
    if meta is None:
        msg = (
            f"`--out` {str(path)!r} must be a `sim data fetch` cache, was a file without "
            "fetch metadata; choose another path or delete the file"
        )
        raise FetchError(msg)
    try:
        info = json.loads(meta)
        covered = [(int(lo), int(hi)) for lo, hi in info.get("covered", [])]
    except (ValueError, TypeError, AttributeError) as e:
        msg = f"`--out` {str(path)!r} must hold readable fetch metadata, was {meta[:80]!r}"
        raise FetchError(msg) from e
    if (info.get("product"), info.get("granularity")) != (product, granularity):
        msg = (
            f"`--out` {str(path)!r} must cache {product} {granularity}, was a cache of "
            f"{info.get('product')} {info.get('granularity')}"
        )
        raise FetchError(msg)
    if dict(frame.schema) != BAR_SCHEMA:
        msg = f"`--out` {str(path)!r} must hold the bar schema, was {dict(frame.schema)}"
        raise FetchError(msg)
    return frame, covered


def _write_cache(
    path: Path, frame: pl.DataFrame, covered: list[tuple[int, int]], product: str, granularity: str
) -> None:
    # Write a sibling file, flush it to disk, then rename over the cache: a kill at any point
    # leaves either the old file or the new one, never a torn one.
    info = {
        "version": CACHE_VERSION,
        "product": product,
        "granularity": granularity,
        "covered": [list(r) for r in covered],
    }
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(tmp, metadata={CACHE_METADATA_KEY: json.dumps(info)})
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as e:
        msg = f"`--out` must be a writable file, was {str(path)!r} ({e.strerror or e})"
        raise FetchError(msg) from e


# ############# One page ############# #


def _page_frame(
    candles: list[dict[str, Any]], product: str, granularity: str, lo: int, hi: int
) -> pl.DataFrame:
    # Parse and check one response; the first bad candle raises naming its time and field.
    g = GRANULARITY_SECS[granularity]
    rows: dict[int, tuple[float, ...]] = {}
    for candle in candles:
        raw_start = candle.get("start")
        try:
            start = int(str(raw_start))
        except ValueError:
            start = None
        # the wording of `signals.bars` messages, so every bad bar reads the same
        at = datetime.fromtimestamp(start, UTC).isoformat() if start is not None else "?"
        where = f"bar for `{product}` at {at}"
        if start is None:
            msg = f"{where}: `start` must be integer epoch seconds, was {raw_start!r}"
            raise DataError(msg)
        if start % g:
            msg = (
                f"{where}: `start` must lie on the {granularity} grid (a multiple of {g} s), "
                f"was {start}"
            )
            raise DataError(msg)
        if not lo <= start < hi:
            msg = f"{where}: `start` must lie in the requested [{_iso(lo)}, {_iso(hi)}), was not"
            raise DataError(msg)
        if start in rows:
            msg = f"{where}: `start` must be unique in a response, was repeated"
            raise DataError(msg)
        values = []
        for name in CANDLE_FIELDS[1:]:
            value = candle.get(name)
            if value is None:
                msg = f"{where}: `{name}` must be present, was missing"
                raise DataError(msg)
            try:
                values.append(float(str(value)))
            except ValueError as e:
                msg = f"{where}: `{name}` must be a number, was {value!r}"
                raise DataError(msg) from e
        rows[start] = tuple(values)
    keys = sorted(rows)
    frame = pl.DataFrame(
        {
            "ts": [k * NS for k in keys],
            "symbol": [product] * len(keys),
            **{name: [rows[k][i] for k in keys] for i, name in enumerate(CANDLE_FIELDS[1:])},
        },
        schema={**BAR_SCHEMA, "ts": pl.Int64},
    ).with_columns(pl.col("ts").cast(BAR_SCHEMA["ts"]))
    # the bar rules of `sim run`: finite, prices > 0, volume >= 0, high >= low, open and close
    # within [low, high], not in the future
    bad = bar_violations(frame, limit=1)
    if bad:
        raise DataError(bad[0][2])
    return frame


# ############# Fetch ############# #


def make_public_client(
    base_url: str | None = None, ca_path: str | None = None, timeout_secs: float = 30.0
) -> CandleClient:
    """Return a keyless `coinbase.rest.RESTClient` (public endpoints only).

    `base_url` is ``host[:port]`` without scheme (default: Coinbase's). With `ca_path` the
    client trusts only that CA and ignores ``REQUESTS_CA_BUNDLE`` and proxy variables (recipe A
    of the Coinbase note; this is how the exchange simulator on 127.0.0.1 is reached).
    """
    from coinbase.rest import RESTClient  # noqa: PLC0415 (only `sim data fetch` needs it)

    # the SDK logs each HTTP error before raising it, and we report it in one line
    logging.getLogger("coinbase.RESTClient").setLevel(logging.CRITICAL)
    kwargs: dict[str, Any] = {"api_key": None, "api_secret": None, "timeout": timeout_secs}
    if base_url:
        kwargs["base_url"] = base_url
    client = RESTClient(**kwargs)
    if ca_path:
        client.session.verify = ca_path
        client.session.trust_env = False
    return client  # type: ignore[no-any-return]


def _call(
    what: str,
    func: Callable[[], T],
    *,
    retries: int,
    backoff_secs: float,
    sleep: Callable[[float], None],
) -> T:
    # The SDK never retries. Retry 429, 5xx, timeouts and lost connections with a doubling
    # delay (capped at 30 s); anything else (400, 404, TLS) fails at once.
    import requests  # noqa: PLC0415

    for attempt in range(retries + 1):
        try:
            return func()
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            body = " ".join((e.response.text if e.response is not None else "").split())[:200]
            if not (status == 429 or status >= 500) or attempt == retries:
                msg = f"{what}: the venue answered HTTP {status} {body}"
                raise FetchError(msg) from e
        except requests.exceptions.SSLError as e:
            msg = f"{what}: TLS failed ({e}); for a private CA pass --ca-path"
            raise FetchError(msg) from e
        except (requests.ConnectionError, requests.Timeout) as e:
            if attempt == retries:
                msg = f"{what}: no answer after {retries + 1} attempts ({type(e).__name__}: {e})"
                raise FetchError(msg) from e
        except (ValueError, TypeError) as e:  # not JSON, or not the shape the SDK parses
            msg = f"{what}: the venue's answer is not valid candle JSON ({e})"
            raise FetchError(msg) from e
        sleep(min(30.0, backoff_secs * 2**attempt))
    msg = f"`--retries` must be >= 0, was {retries}"
    raise FetchError(msg)


def fetch_candles(
    client: CandleClient,
    product: str,
    granularity: str,
    start_s: int,
    end_s: int | None,
    out: Path,
    *,
    page_candles: int = DEFAULT_PAGE_CANDLES,
    max_pages: int | None = None,
    retries: int = 3,
    backoff_secs: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool | None = None,
    progress_file: TextIO | None = None,
) -> FetchResult:
    """Download the closed candles of ``[start_s, end_s)`` into the cache file `out`.

    The range is widened to the granularity grid (start down, end up) and cut at the last
    bucket closed at the venue's time (``get_unix_time``): a bucket still in progress is never
    cached. Ranges already in the cache are skipped; the rest is requested oldest first in
    pages of `page_candles` buckets. Each page is checked (see Raises), merged and written
    atomically before the next request, so an interrupted run loses at most one page and a
    rerun continues where it stopped.

    Parameters
    ----------
    client : CandleClient
        A `coinbase.rest.RESTClient`, keyless is enough (`make_public_client`).
    product : str
        Product id; canonicalised (``btc-usd`` -> ``BTC-USD``) and written as ``symbol``.
    granularity : str
        One of `GRANULARITY_SECS`.
    start_s, end_s : int
        Epoch seconds, ``end_s`` exclusive; None means the venue's current time.
    out : Path
        The cache file (`default_cache_path` by default in the CLI).
    page_candles : int
        Buckets per request, 1 to `MAX_CANDLES_PER_REQUEST`.
    max_pages : int, optional
        Stop after this many requests (the rest is left for a rerun).
    retries, backoff_secs, sleep
        A request answered 429 or 5xx, or lost, is retried `retries` times after
        ``backoff_secs * 2**attempt`` seconds (capped at 30), slept with `sleep`.
    progress : bool, optional
        Show a tqdm bar of pages; None shows it only when `progress_file` is a terminal.
    progress_file : TextIO, optional
        Where the bar goes (default standard error).

    Returns
    -------
    FetchResult

    Raises
    ------
    FetchError
        A bad argument, a request the venue refuses (after retries), or a candle that breaks
        the bar rules: ``start`` not integer seconds, off the grid, outside the requested page
        or repeated; a field missing or not a number; a value not finite; a price <= 0; volume
        < 0; high < low; open or close outside [low, high]. The message names the product, the
        bar's time and the field. The cache keeps every page written before.
    """
    from tqdm import tqdm  # noqa: PLC0415

    product = canonical_symbol(product)
    if granularity not in GRANULARITY_SECS:
        msg = f"`--granularity` must be one of {', '.join(GRANULARITY_SECS)}, was {granularity!r}"
        raise FetchError(msg)
    if not 1 <= page_candles <= MAX_CANDLES_PER_REQUEST:
        msg = f"`--page-candles` must be in 1..{MAX_CANDLES_PER_REQUEST}, was {page_candles}"
        raise FetchError(msg)
    if retries < 0:
        msg = f"`--retries` must be >= 0, was {retries}"
        raise FetchError(msg)
    if max_pages is not None and max_pages < 1:
        msg = f"`--max-pages` must be >= 1, was {max_pages}"
        raise FetchError(msg)
    if end_s is not None and end_s <= start_s:
        msg = f"`--end` must be after `--start`, was {_iso(end_s)} <= {_iso(start_s)}"
        raise FetchError(msg)
    g = GRANULARITY_SECS[granularity]

    def call(what: str, func: Callable[[], T]) -> T:
        return _call(what, func, retries=retries, backoff_secs=backoff_secs, sleep=sleep)

    venue_time = call("venue time", client.get_unix_time)
    try:
        now_s = int(str(venue_time.epoch_seconds))
    except (AttributeError, ValueError) as e:
        msg = f"venue time: `epochSeconds` must be an integer, was {venue_time!r}"
        raise FetchError(msg) from e
    lo = start_s - start_s % g
    wanted_hi = now_s if end_s is None else -(-end_s // g) * g
    last_closed = now_s - now_s % g  # buckets starting before it have closed
    hi = min(wanted_hi, last_closed)

    frame, covered = read_cache(out, product, granularity)
    todo = _pages(_missing(lo, hi, covered), page_candles * g) if hi > lo else []
    pages_missing = len(todo)
    if max_pages is not None:
        todo = todo[:max_pages]
    bars_added = 0
    file = progress_file if progress_file is not None else sys.stderr
    with tqdm(
        total=len(todo),
        desc=f"{product} {granularity}",
        unit="page",
        file=file,
        disable=None if progress is None else not progress,
        leave=True,
    ) as bar:
        for page_lo, page_hi in todo:
            what = f"candles {product} {granularity} [{_iso(page_lo)}, {_iso(page_hi)})"
            request = partial(
                client.get_public_candles,
                product,
                str(page_lo),
                str(page_hi),
                granularity,
            )
            resp = call(what, request)
            candles = resp.to_dict().get("candles") or []
            try:
                page = _page_frame(candles, product, granularity, page_lo, page_hi)
            except DataError as e:
                msg = (
                    f"{e} (from {what}; nothing of this page was written, the cache "
                    f"{str(out)!r} keeps its {frame.height} bars)"
                )
                raise FetchError(msg) from e
            page_ts = pl.col("ts").dt.epoch("s")
            kept = frame.filter((page_ts < page_lo) | (page_ts >= page_hi))
            frame = pl.concat([kept, page]).sort("ts")
            covered = _merge([*covered, (page_lo, page_hi)])
            _write_cache(out, frame, covered, product, granularity)
            bars_added += page.height
            bar.update(1)
            bar.set_postfix(bars=frame.height, refresh=False)
    complete = not _missing(lo, hi, covered)
    empty = 0
    if complete and hi > lo:
        ts_s = frame["ts"].dt.epoch("s")
        empty = (hi - lo) // g - int(((ts_s >= lo) & (ts_s < hi)).sum())
    return FetchResult(
        path=out,
        pages_fetched=len(todo),
        pages_missing=pages_missing,
        bars_added=bars_added,
        n_bars=frame.height,
        start_s=lo,
        end_s=max(lo, hi),
        end_clamped=wanted_hi > last_closed,
        empty_buckets=empty,
        complete=complete,
    )


def cmd_fetch(args: argparse.Namespace) -> int:
    """Run `sim data fetch` and print what it did."""
    product = canonical_symbol(args.product)
    start_s = parse_utc_secs(args.start, "--start")
    end_s = None if args.end is None else parse_utc_secs(args.end, "--end")
    out = Path(args.out) if args.out else default_cache_path(product, args.granularity)
    if out.is_dir() or out.suffix != ".parquet":
        msg = f"`--out` must be a .parquet file path, was {str(out)!r}"
        raise FetchError(msg)
    if not args.timeout_secs > 0:
        msg = f"`--timeout-secs` must be > 0, was {args.timeout_secs}"
        raise FetchError(msg)
    client = make_public_client(args.base_url, args.ca_path, args.timeout_secs)
    result = fetch_candles(
        client,
        product,
        args.granularity,
        start_s,
        end_s,
        out,
        page_candles=args.page_candles,
        max_pages=args.max_pages,
        retries=args.retries,
        progress=False if args.no_progress else None,
    )
    span = f"{_iso(result.start_s)} .. {_iso(result.end_s)}"
    if result.pages_missing == 0:
        print(f"{product} {args.granularity} {span}: already cached, nothing fetched")
    else:
        print(
            f"{product} {args.granularity} {span}: fetched {result.pages_fetched} of "
            f"{result.pages_missing} missing pages, {result.bars_added} bars"
        )
    if result.end_clamped:
        last = _iso(result.end_s)
        print(f"note: the range ends where the last closed {args.granularity} bucket ends, {last}")
    if not result.complete:
        print("stopped early (--max-pages): run the same command again to fetch the rest")
    elif result.empty_buckets:
        print(
            f"note: {result.empty_buckets} buckets have no bar (the venue omits buckets "
            "without trades; gaps are kept, not filled)"
        )
    try:  # the default path, under the project, shown relative to the working directory
        shown = result.path.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = result.path
    print(f"cache {shown}: {result.n_bars} bars")
    return 0


# ############# Resample ############# #

_EVERY = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT_SECS = {"m": 60, "h": 3600, "d": 86400}


def parse_every(value: str) -> int:
    """Return the length in nanoseconds of a bar size such as ``15m``, ``4h`` or ``1d``."""
    m = _EVERY.fullmatch(value.strip())
    if m is None:
        msg = (
            f"`--to` must be a whole number of minutes, hours or days such as 15m, 4h or 1d, "
            f"was {value!r}"
        )
        raise DataError(msg)
    return int(m[1]) * _UNIT_SECS[m[2]] * NS


@dataclass(frozen=True)
class ResampleResult:
    """Coarser bars and what `resample_bars` dropped or built from fewer bars.

    Attributes
    ----------
    bars : pl.DataFrame
        The resampled bars in `BAR_SCHEMA`, sorted by (symbol, ts).
    dropped_partial : int
        Edge bins (first or last of a symbol) that the data covers only in part, dropped.
    short_bins : int
        Kept bins built from fewer source bars than a full bin holds (a gap inside them).
    """

    bars: pl.DataFrame
    dropped_partial: int
    short_bins: int


def resample_bars(frame: pl.DataFrame, every: str, *, keep_partial: bool = False) -> ResampleResult:
    """Return the bars of `frame` resampled to `every` (``15m``, ``4h``, ``1d``), per symbol.

    Rules: open = first open, high = max high, low = min low, close = last close,
    volume = sum of volume, over the source bars whose open time falls in the bin. Bins are
    ``[start, start + every)`` in UTC, aligned to the Unix epoch (4h bins open at 00, 04, 08 ...
    UTC, 1d bins at midnight UTC), and labelled by their start (``ts`` stays the bar open time).

    Missing source bars: a bin with no source bar is not produced (a gap stays a gap, never
    filled). A bin with some source bars missing inside the data's span is built from the bars
    present and counted in `short_bins`. A first or last bin of a symbol that the data covers
    only in part (the file starts after the bin opens, or ends before it closes, as with a bar
    still in progress) is dropped, counted in `dropped_partial`, unless `keep_partial`.

    Parameters
    ----------
    frame : pl.DataFrame
        Valid bars (`validate_bars`) on one bar length, each ``ts`` a multiple of it.
    every : str
        Target bar length; a multiple of the source bar length and longer than it.
    keep_partial : bool
        Keep the partial first and last bins.

    Returns
    -------
    ResampleResult

    Raises
    ------
    DataError
        Invalid bars, a bar length that cannot be inferred (one bar per symbol), `every` not a
        longer multiple of it, or a bar off the source grid.
    """
    report = validate_bars(frame)
    every_ns = parse_every(every)
    bar_ns = report.bar_ns
    if bar_ns is None:
        msg = "bars must hold two bars of one symbol to infer the bar length, was one per symbol"
        raise DataError(msg)
    if every_ns <= bar_ns or every_ns % bar_ns:
        msg = (
            f"`--to` must be a longer multiple of the source bar ({bar_ns // NS // 60} min), "
            f"was {every}"
        )
        raise DataError(msg)
    ts_ns = pl.col("ts").dt.epoch("ns")
    off = frame.filter(ts_ns % bar_ns != 0)
    if off.height:
        row = off.row(0, named=True)
        msg = (
            f"bar for `{row['symbol']}` at {row['ts'].isoformat()}: `ts` must be a multiple "
            f"of the bar length ({bar_ns // NS // 60} min) since the epoch, was not"
        )
        raise DataError(msg)
    per_bin = every_ns // bar_ns
    bins = (
        frame.sort("symbol", "ts")
        .group_by_dynamic(
            "ts", every=f"{every_ns}ns", closed="left", label="left", group_by="symbol"
        )
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.len().alias("_n"),
            pl.col("ts").first().alias("_first"),
            pl.col("ts").last().alias("_last"),
        )
        .with_columns(
            (pl.col("ts") == pl.col("ts").min().over("symbol")).alias("_is_first"),
            (pl.col("ts") == pl.col("ts").max().over("symbol")).alias("_is_last"),
        )
    )
    bar = pl.duration(nanoseconds=bar_ns)
    partial = (pl.col("_is_first") & (pl.col("_first") > pl.col("ts"))) | (
        pl.col("_is_last")
        & (pl.col("_last") + bar < pl.col("ts") + pl.duration(nanoseconds=every_ns))
    )
    bins = bins.with_columns(partial.alias("_partial"))
    dropped = 0 if keep_partial else int(bins["_partial"].sum())
    if not keep_partial:
        bins = bins.filter(~pl.col("_partial"))
    short = int(bins.filter(~pl.col("_partial") & (pl.col("_n") < per_bin)).height)
    out = bins.select(BAR_SCHEMA.keys()).cast(BAR_SCHEMA)  # type: ignore[arg-type]
    out = out.sort("symbol", "ts")
    return ResampleResult(out, dropped, short)


def cmd_resample(args: argparse.Namespace) -> int:
    """Run `sim data resample` and print what it wrote."""
    out = Path(args.out)
    if out.is_dir() or out.suffix not in (".parquet", ".csv"):
        msg = f"`--out` must be a .parquet or .csv file path, was {str(out)!r}"
        raise DataError(msg)
    frame = load_bars_or_hint(args.path, sort=args.sort)
    result = resample_bars(frame, args.to, keep_partial=args.keep_partial)
    if result.bars.height == 0:
        msg = f"`{args.path}` must hold at least one full {args.to} bin, held none"
        raise DataError(msg)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            result.bars.write_csv(out)
        else:
            result.bars.write_parquet(out)
    except OSError as e:
        msg = f"`--out` must be a writable file, was {str(out)!r} ({e.strerror or e})"
        raise DataError(msg) from e
    n_symbols = result.bars["symbol"].n_unique()
    print(f"wrote {result.bars.height} {args.to} bars ({n_symbols} symbols) to {out}")
    if result.dropped_partial:
        print(
            f"dropped {result.dropped_partial} partial first/last bins (--keep-partial keeps them)"
        )
    if result.short_bins:
        print(f"note: {result.short_bins} bins are built from fewer bars than a full bin (gaps)")
    return 0


# ############# Loading with the --sort hint ############# #


def load_bars_or_hint(path: str | Path, *, sort: bool) -> pl.DataFrame:
    """Return `signals.bars.load_bars(path, sort=sort)`; an unsorted-file error names --sort."""
    try:
        return load_bars(path, sort=sort)
    except DataError as e:
        if not sort and _UNSORTED_PHRASE in str(e):
            raise DataError(f"{e}; {UNSORTED_HINT}") from e
        raise
