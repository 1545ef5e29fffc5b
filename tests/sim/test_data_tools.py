"""`sim data fetch` against the project's exchange simulator on 127.0.0.1, `sim data resample`,
and `--sort` on `sim data validate` / `sim run`.

The fetch tests talk to a real TLS `ExchangeServer` through the real coinbase-advanced-py
client (no mocks); the simulator's request log shows which pages each run asked for.
"""

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from live_bridge.exchange_sim import ExchangeEngine, ExchangeServer, SteppedClock
from signals.bars import BAR_SCHEMA, load_bars
from signals.errors import DataError
from sim import cli
from sim.data_tools import (
    CACHE_METADATA_KEY,
    GRANULARITY_SECS,
    UNSORTED_HINT,
    FetchError,
    default_cache_path,
    fetch_candles,
    make_public_client,
    parse_every,
    read_cache,
    resample_bars,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
HOUR = 3600
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
START_S = int(START.timestamp())
N_BARS = 1000
PAGE = 100  # the simulator's per-request cap in these tests (Coinbase: 350)
CANDLES_PATH = "/api/v3/brokerage/market/products/BTC-USD/candles"


def _walk(symbol: str, p0: float, n: int, seed: int, start: dt.datetime) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = p0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[p0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.004, (2, n))) + 0.001
    return pl.DataFrame(
        {
            "ts": [start + dt.timedelta(hours=i) for i in range(n)],
            "symbol": symbol,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.uniform(1.0, 100.0, n),
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns").dt.replace_time_zone("UTC"))


@pytest.fixture(name="venue_bars", scope="module")
def fixture_venue_bars() -> pl.DataFrame:
    return pl.concat(
        [_walk("BTC-USD", 40_000.0, N_BARS, 1, START), _walk("ETH-USD", 2_000.0, N_BARS, 2, START)]
    ).select(BAR_SCHEMA.keys())


@pytest.fixture(name="server", scope="module")
def fixture_server(venue_bars):
    clock = SteppedClock((START_S + N_BARS * HOUR + 1800) * S)  # every bar closed
    engine = ExchangeEngine(venue_bars, clock, max_candles=PAGE)
    with ExchangeServer(engine, port=0, tls=True) as server:
        yield server


@pytest.fixture(name="sim")
def fixture_sim(server):
    """The module's simulator with no overrides, faults or logged requests."""
    server.engine.reset()
    server.engine.clock.set((START_S + N_BARS * HOUR + 1800) * S)
    server.faults.clear()
    server.clear_requests()
    yield server
    server.faults.clear()


@pytest.fixture(name="client")
def fixture_client(sim):
    client = make_public_client(sim.base_url, sim.ca_path, timeout_secs=5.0)
    yield client
    client.session.close()


def _fetch(client, out, start_s=START_S, end_s=START_S + 600 * HOUR, **kwargs):
    kwargs.setdefault("page_candles", PAGE)
    kwargs.setdefault("progress", False)
    return fetch_candles(client, "BTC-USD", "ONE_HOUR", start_s, end_s, out, **kwargs)


def _page_starts(sim) -> list[int]:
    # the `start` of each candles request the simulator received, in order
    out = []
    for line in sim.requests_seen(CANDLES_PATH):
        query = parse_qs(urlsplit(line.split(" ", 1)[1]).query)
        out.append(int(query["start"][0]))
    return out


def _venue(venue_bars, lo_h: int, hi_h: int, symbol: str = "BTC-USD") -> pl.DataFrame:
    lo, hi = START + dt.timedelta(hours=lo_h), START + dt.timedelta(hours=hi_h)
    return venue_bars.filter(
        (pl.col("symbol") == symbol) & (pl.col("ts") >= lo) & (pl.col("ts") < hi)
    )


def _fetch_argv(sim, out, *extra: str, product: str = "BTC-USD", end: str = "2024-01-26"):
    # `sim data fetch` of 600 hourly bars from the simulator, pages of PAGE bars
    return ["data", "fetch", "--product", product, "--granularity", "ONE_HOUR",
            "--start", "2024-01-01", "--end", end, "--out", str(out), "--page-candles", str(PAGE),
            "--base-url", sim.base_url, "--ca-path", sim.ca_path, *extra]  # fmt: skip


def _one_line_error(capsys, argv: list[str], prog: str = "sim data fetch") -> str:
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ")
    assert "Traceback" not in err
    return lines[0]


# --- fetch: pagination and the cache file -----------------------------------------------------


def test_fetch_pages_within_limit_oldest_first_bar_schema(sim, client, venue_bars, tmp_path):
    out = tmp_path / "BTC-USD_ONE_HOUR.parquet"
    result = _fetch(client, out)
    assert (result.pages_fetched, result.pages_missing, result.bars_added) == (6, 6, 600)
    assert result.complete
    assert result.empty_buckets == 0
    assert _page_starts(sim) == [START_S + i * PAGE * HOUR for i in range(6)]
    for line in sim.requests_seen(CANDLES_PATH):
        query = parse_qs(urlsplit(line.split(" ", 1)[1]).query)
        span = int(query["end"][0]) - int(query["start"][0])
        assert span <= PAGE * HOUR
        assert query["granularity"] == ["ONE_HOUR"]
    # the venue's time first, then one request per page, and nothing else
    assert len(sim.requests_seen()) == 7
    assert_frame_equal(load_bars(out), _venue(venue_bars, 0, 600))
    meta = json.loads(pl.read_parquet_metadata(out)[CACHE_METADATA_KEY])
    assert meta["covered"] == [[START_S, START_S + 600 * HOUR]]
    assert not list(tmp_path.glob(".*partial"))


def test_fetch_cache_runs_with_sim_data_validate(sim, client, tmp_path, capsys):
    out = tmp_path / "c.parquet"
    _fetch(client, out)
    assert cli.main(["data", "validate", str(out)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("ok: 600 bars, 1 symbols (BTC-USD)")
    assert "bar 60 min" in shown


def test_fetch_rerun_fetches_only_missing_ranges(sim, client, venue_bars, tmp_path):
    out = tmp_path / "c.parquet"
    first = _fetch(client, out, max_pages=2)
    assert (first.pages_fetched, first.pages_missing, first.complete) == (2, 6, False)
    assert load_bars(out).height == 200
    sim.clear_requests()
    second = _fetch(client, out)
    assert (second.pages_fetched, second.pages_missing, second.complete) == (4, 4, True)
    assert _page_starts(sim) == [START_S + i * PAGE * HOUR for i in range(2, 6)]
    assert_frame_equal(load_bars(out), _venue(venue_bars, 0, 600))
    # widening the range on both sides fetches only the two new ends
    sim.clear_requests()
    third = _fetch(client, out, start_s=START_S - 50 * HOUR, end_s=START_S + 650 * HOUR)
    assert third.pages_fetched == 2
    assert _page_starts(sim) == [START_S - 50 * HOUR, START_S + 600 * HOUR]
    assert_frame_equal(load_bars(out), _venue(venue_bars, 0, 650))
    assert third.empty_buckets == 50  # before the venue's first bar: fetched, nothing there
    sim.clear_requests()
    again = _fetch(client, out)
    assert (again.pages_fetched, again.pages_missing) == (0, 0)
    assert _page_starts(sim) == []


def test_fetch_killed_mid_run_loses_at_most_one_page_and_rerun_finishes(sim, venue_bars, tmp_path):
    out = tmp_path / "c.parquet"
    sim.faults.latency(0.3, path_prefix=CANDLES_PATH)  # slow pages, so the kill lands mid-run
    argv = [
        sys.executable, "-m", "sim.cli", "data", "fetch", "--product", "BTC-USD",
        "--granularity", "ONE_HOUR", "--start", "2024-01-01", "--end", "2024-01-26",
        "--out", str(out), "--page-candles", str(PAGE), "--base-url", sim.base_url,
        "--ca-path", sim.ca_path, "--no-progress",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINBASE_", "CB_"))}
    proc = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(sim.requests_seen(CANDLES_PATH)) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        assert len(sim.requests_seen(CANDLES_PATH)) >= 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # the third request was in flight: pages 1 and 2 are written (page 3 at most as well)
    cached, covered = read_cache(out, "BTC-USD", "ONE_HOUR")
    pages_done = cached.height // PAGE
    assert pages_done in (2, 3)
    assert covered == [(START_S, START_S + pages_done * PAGE * HOUR)]
    assert_frame_equal(cached, _venue(venue_bars, 0, pages_done * PAGE))

    sim.faults.clear()
    sim.clear_requests()
    client = make_public_client(sim.base_url, sim.ca_path, timeout_secs=5.0)
    result = _fetch(client, out)
    client.session.close()
    assert result.pages_fetched == 6 - pages_done
    assert _page_starts(sim) == [START_S + i * PAGE * HOUR for i in range(pages_done, 6)]
    assert_frame_equal(load_bars(out), _venue(venue_bars, 0, 600))


def test_fetch_progress_bar_counts_pages(sim, client, tmp_path):
    sink = io.StringIO()
    _fetch(client, tmp_path / "c.parquet", progress=True, progress_file=sink)
    shown = sink.getvalue()
    assert "BTC-USD ONE_HOUR" in shown
    assert "6/6" in shown


# --- fetch: bad candles, venue errors ---------------------------------------------------------

BAD_CANDLES = [
    ({"high": "1"}, "`high` must be >= `low`"),
    ({"low": "-5", "open": "-5"}, "must be > 0"),
    ({"volume": "-1"}, "`volume` must be >= 0, was -1.0"),
    ({"close": "abc"}, "`close` must be a number, was 'abc'"),
    ({"open": None}, "`open` must be present, was missing"),
    ({"close": "1e9"}, "`close` must be within [`low`, `high`]"),
    ({"volume": "nan"}, "`volume` must be finite"),
]


@pytest.mark.parametrize(("fields", "expected"), BAD_CANDLES)
def test_fetch_bad_candle_one_line_error_cache_keeps_earlier_pages(
    sim, venue_bars, tmp_path, capsys, fields, expected
):
    out = tmp_path / "c.parquet"
    bad_s = START_S + 250 * HOUR  # in the third page
    sim.engine.set_candle("BTC-USD", bad_s, **fields)
    argv = _fetch_argv(sim, out)
    line = _one_line_error(capsys, argv)
    assert "bar for `BTC-USD` at 2024-01-11T10:00:00+00:00" in line
    assert expected in line
    assert "nothing of this page was written" in line
    cached, covered = read_cache(out, "BTC-USD", "ONE_HOUR")
    assert covered == [(START_S, START_S + 2 * PAGE * HOUR)]
    assert_frame_equal(cached, _venue(venue_bars, 0, 200))
    # the venue fixed, a rerun fetches the rest only
    sim.engine.reset()
    sim.clear_requests()
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert _page_starts(sim) == [START_S + i * PAGE * HOUR for i in range(2, 6)]
    assert_frame_equal(load_bars(out), _venue(venue_bars, 0, 600))


def test_fetch_candle_off_the_grid_is_refused(sim, client, tmp_path):
    sim.engine.set_candle("BTC-USD", START_S + 5 * HOUR, start=str(START_S + 5 * HOUR + 30))
    with pytest.raises(FetchError, match=r"`start` must lie on the ONE_HOUR grid"):
        _fetch(client, tmp_path / "c.parquet")
    assert not (tmp_path / "c.parquet").exists()


def test_fetch_retries_server_errors_then_succeeds(sim, client, tmp_path):
    sim.faults.server_error(2, status=503, path_prefix=CANDLES_PATH)
    sleeps: list[float] = []
    result = _fetch(client, tmp_path / "c.parquet", sleep=sleeps.append, backoff_secs=0.01)
    assert result.complete
    assert sleeps == [0.01, 0.02]
    assert len(sim.requests_seen(CANDLES_PATH)) == 8  # 6 pages, 2 answered 503 first


def test_fetch_gives_up_after_retries_with_the_venue_answer(sim, client, tmp_path):
    sim.faults.server_error(10, status=503, path_prefix=CANDLES_PATH)
    with pytest.raises(FetchError, match=r"HTTP 503 .*injected fault"):
        _fetch(client, tmp_path / "c.parquet", sleep=lambda _: None, retries=2)
    assert len(sim.requests_seen(CANDLES_PATH)) == 3


def test_fetch_page_over_the_venue_cap_is_a_clean_400(sim, tmp_path, capsys):
    argv = [*_fetch_argv(sim, tmp_path / "c.parquet"), "--page-candles", "150"]
    line = _one_line_error(capsys, argv)
    assert "HTTP 400" in line
    assert "number of candles requested should be less than 100" in line
    assert len(sim.requests_seen(CANDLES_PATH)) == 1  # a 400 is not retried


def test_fetch_unknown_product_is_a_clean_404(sim, tmp_path, capsys):
    argv = _fetch_argv(sim, tmp_path / "c.parquet", product="NOPE-USD")
    line = _one_line_error(capsys, argv)
    assert "HTTP 404" in line
    assert "NOPE-USD" in line


def test_fetch_untrusted_certificate_is_a_clean_error(sim, tmp_path, capsys):
    argv = _fetch_argv(sim, tmp_path / "c.parquet", "--retries", "0")
    argv[argv.index("--ca-path") + 1] = str(PROJECT_ROOT / "README.md")
    line = _one_line_error(capsys, argv)
    assert "venue time" in line


def test_fetch_end_past_the_venue_clock_stops_at_the_last_closed_bucket(sim, client, tmp_path):
    sim.engine.clock.set((START_S + 300 * HOUR + 1800) * S)  # bar 300 in progress
    out = tmp_path / "c.parquet"
    result = _fetch(client, out, end_s=START_S + 10_000 * HOUR)
    assert result.end_clamped
    assert result.end_s == START_S + 300 * HOUR
    assert load_bars(out)["ts"].max() == START + dt.timedelta(hours=299)
    # later, with the bar closed, the rerun fetches from there on
    sim.engine.clock.set((START_S + 320 * HOUR) * S)
    sim.clear_requests()
    _fetch(client, out, end_s=START_S + 10_000 * HOUR)
    assert _page_starts(sim) == [START_S + 300 * HOUR]
    assert load_bars(out)["ts"].max() == START + dt.timedelta(hours=319)


def test_fetch_refuses_a_cache_of_another_product_or_a_plain_bar_file(
    sim, client, venue_bars, tmp_path
):
    eth = tmp_path / "eth.parquet"
    fetch_candles(client, "ETH-USD", "ONE_HOUR", START_S, START_S + 10 * HOUR, eth, progress=False)
    before = eth.read_bytes()
    with pytest.raises(FetchError, match="must cache BTC-USD ONE_HOUR, was a cache of ETH-USD"):
        _fetch(client, eth)
    assert eth.read_bytes() == before
    plain = tmp_path / "plain.parquet"
    venue_bars.write_parquet(plain)
    with pytest.raises(FetchError, match="without fetch metadata"):
        _fetch(client, plain)
    garbled = tmp_path / "garbled.parquet"
    venue_bars.write_parquet(garbled, metadata={CACHE_METADATA_KEY: "{not json"})
    with pytest.raises(FetchError, match="must hold readable fetch metadata"):
        _fetch(client, garbled)


def test_fetch_retries_a_dropped_connection_and_a_429(sim, client, venue_bars, tmp_path):
    sim.faults.drop(1, path_prefix=CANDLES_PATH)
    sim.faults.rate_limit(1, path_prefix=CANDLES_PATH)
    sleeps: list[float] = []
    out = tmp_path / "c.parquet"
    result = _fetch(client, out, sleep=sleeps.append, backoff_secs=0.01)
    assert result.complete
    assert sleeps == [0.01, 0.02]  # the first page: dropped, then 429, then answered
    assert len(sim.requests_seen(CANDLES_PATH)) == 8
    assert_frame_equal(load_bars(out), _venue(venue_bars, 0, 600))


def test_cli_fetch_prints_summary_and_default_path_is_under_data_cache(sim, tmp_path, capsys):
    out = tmp_path / "c.parquet"
    argv = _fetch_argv(sim, out, product="btc-usd")
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "BTC-USD ONE_HOUR 2024-01-01T00:00:00Z .. 2024-01-26T00:00:00Z: fetched 6 of 6 missing "
        "pages, 600 bars",
        f"cache {out}: 600 bars",
    ]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("already cached, nothing fetched")
    path = default_cache_path("BTC-USD", "ONE_HOUR")
    assert path == PROJECT_ROOT / "data" / "cache" / "BTC-USD_ONE_HOUR.parquet"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(path)], cwd=PROJECT_ROOT, check=False
    )
    assert ignored.returncode == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--granularity", "TEN_MINUTE"], "`--granularity` must be one of ONE_MINUTE"),
        (["--granularity", "ONE_HOUR", "--page-candles", "351"], "`--page-candles` must be in"),
        (["--granularity", "ONE_HOUR", "--end", "2023-12-01"], "`--end` must be after"),
        (["--granularity", "ONE_HOUR", "--out", "x.csv"], "`--out` must be a .parquet file"),
        (["--granularity", "ONE_HOUR", "--retries", "-1"], "`--retries` must be >= 0, was -1"),
        (["--granularity", "ONE_HOUR", "--max-pages", "0"], "`--max-pages` must be >= 1, was 0"),
        (["--granularity", "ONE_HOUR", "--timeout-secs", "0"], "`--timeout-secs` must be > 0"),
    ],
)
def test_cli_fetch_bad_arguments_one_line_exit_2(sim, capsys, extra, expected):
    argv = ["data", "fetch", "--product", "BTC-USD", "--start", "2024-01-01", *extra,
            "--base-url", sim.base_url, "--ca-path", sim.ca_path]  # fmt: skip
    assert expected in _one_line_error(capsys, argv)


def test_cli_fetch_missing_start_is_argparse_one_line(capsys):
    line = _one_line_error(capsys, ["data", "fetch", "--product", "BTC-USD"])
    assert "--start" in line


def test_cli_fetch_help_lists_every_granularity(capsys):
    assert cli.main(["data", "fetch", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for name in GRANULARITY_SECS:
        assert name in shown


# --- resample ---------------------------------------------------------------------------------


def _hourly(symbol: str, hours: list[int], base: float = 100.0) -> pl.DataFrame:
    # bar i: open base+i, high base+i+0.5, low base+i-0.5, close base+i+0.25, volume i+1
    return pl.DataFrame(
        {
            "ts": [START + dt.timedelta(hours=h) for h in hours],
            "symbol": symbol,
            "open": [base + h for h in hours],
            "high": [base + h + 0.5 for h in hours],
            "low": [base + h - 0.5 for h in hours],
            "close": [base + h + 0.25 for h in hours],
            "volume": [float(h + 1) for h in hours],
        }
    ).cast(BAR_SCHEMA)  # type: ignore[arg-type]


def _reference(frame: pl.DataFrame, every_h: int, keep_partial: bool) -> pl.DataFrame:
    # a dumb loop: bins by integer division of the open hour since the epoch
    rows = []
    for (symbol,), part in frame.sort("symbol", "ts").group_by("symbol", maintain_order=True):
        hours = [int(t.timestamp()) // HOUR for t in part["ts"]]
        first, last = hours[0], hours[-1]
        bins: dict[int, list[int]] = {}
        for i, h in enumerate(hours):
            bins.setdefault(h - h % every_h, []).append(i)
        for b, idx in bins.items():
            partial = (b == min(bins) and first > b) or (b == max(bins) and last + 1 < b + every_h)
            if partial and not keep_partial:
                continue
            rows.append(
                {
                    "ts": dt.datetime.fromtimestamp(b * HOUR, dt.UTC),
                    "symbol": symbol,
                    "open": part["open"][idx[0]],
                    "high": max(part["high"][i] for i in idx),
                    "low": min(part["low"][i] for i in idx),
                    "close": part["close"][idx[-1]],
                    "volume": sum(part["volume"][i] for i in idx),
                }
            )
    return pl.DataFrame(rows).cast(BAR_SCHEMA).sort("symbol", "ts")  # type: ignore[arg-type]


def test_resample_4h_golden_ohlcv_rules():
    result = resample_bars(_hourly("BTC-USD", list(range(8))), "4h")
    expected = pl.DataFrame(
        {
            "ts": [START, START + dt.timedelta(hours=4)],
            "symbol": "BTC-USD",
            "open": [100.0, 104.0],
            "high": [103.5, 107.5],
            "low": [99.5, 103.5],
            "close": [103.25, 107.25],
            "volume": [1.0 + 2 + 3 + 4, 5.0 + 6 + 7 + 8],
        }
    ).cast(BAR_SCHEMA)  # type: ignore[arg-type]
    assert_frame_equal(result.bars, expected)
    assert (result.dropped_partial, result.short_bins) == (0, 0)


def test_resample_partial_trailing_and_leading_bins_dropped_unless_keep_partial():
    frame = _hourly("BTC-USD", list(range(2, 11)))  # 02:00 .. 10:00: bins 0 and 8 partial
    dropped = resample_bars(frame, "4h")
    assert dropped.bars["ts"].to_list() == [START + dt.timedelta(hours=4)]
    assert dropped.dropped_partial == 2
    kept = resample_bars(frame, "4h", keep_partial=True)
    assert kept.bars["ts"].to_list() == [START + dt.timedelta(hours=h) for h in (0, 4, 8)]
    assert kept.bars["open"].to_list() == [102.0, 104.0, 108.0]
    assert kept.bars["close"].to_list() == [103.25, 107.25, 110.25]


def test_resample_gap_inside_a_bin_kept_and_counted_empty_bin_absent():
    hours = [0, 1, 3, 4, 5, 6, 7, 12, 13, 14, 15]  # hour 2 missing; bin 8..11 empty
    result = resample_bars(_hourly("BTC-USD", hours), "4h")
    assert result.bars["ts"].to_list() == [START + dt.timedelta(hours=h) for h in (0, 4, 12)]
    assert result.bars["volume"][0] == 1.0 + 2 + 4
    assert result.short_bins == 1
    assert result.dropped_partial == 0


def test_resample_equals_the_loop_reference_on_random_gaps():
    rng = np.random.default_rng(5)
    frames = []
    for k, symbol in enumerate(["BTC-USD", "ETH-USD", "SOL-USD"]):
        hours = sorted(int(h) for h in np.flatnonzero(rng.random(500) > 0.2) + k)
        frames.append(_hourly(symbol, hours, base=100.0 * (k + 1)))
    frame = pl.concat(frames)
    for every_h, every in [(2, "2h"), (4, "4h"), (6, "6h"), (24, "1d"), (120, "5d")]:
        for keep in (False, True):
            got = resample_bars(frame, every, keep_partial=keep).bars
            assert_frame_equal(got, _reference(frame, every_h, keep))


def test_resample_1d_bins_open_at_utc_midnight():
    frame = _hourly("BTC-USD", list(range(48)))
    result = resample_bars(frame, "1d")
    assert result.bars["ts"].to_list() == [START, START + dt.timedelta(days=1)]


@pytest.mark.parametrize(
    ("every", "expected"),
    [("90m", "longer multiple of the source bar (60 min)"), ("1h", "longer multiple"),
     ("1w", "minutes, hours or days"), ("4 hours", "minutes, hours or days")],
)  # fmt: skip
def test_resample_bad_target_is_a_data_error(every, expected):
    with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        resample_bars(_hourly("BTC-USD", list(range(8))), every)


def test_parse_every_units():
    assert parse_every("15m") == 15 * 60 * S
    assert parse_every("4h") == 4 * HOUR * S
    assert parse_every("2d") == 2 * 86_400 * S


def test_cli_resample_writes_bars_sim_can_load(tmp_path, capsys):
    src = tmp_path / "h.parquet"
    _hourly("BTC-USD", list(range(2, 30))).write_parquet(src)
    out = tmp_path / "4h.csv"
    assert cli.main(["data", "resample", str(src), "--to", "4h", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote 6 4h bars (1 symbols) to {out}",
        "dropped 2 partial first/last bins (--keep-partial keeps them)",
    ]
    assert load_bars(out).height == 6


def test_cli_resample_help_states_the_rules(capsys):
    assert cli.main(["data", "resample", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for rule in ("open = first open", "high = max high", "low = min low", "close = last close",
                 "volume = sum of volume", "labelled by their start", "--keep-partial",
                 "never filled"):  # fmt: skip
        assert rule in shown


def test_cli_resample_bad_target_one_line_exit_2(tmp_path, capsys):
    src = tmp_path / "h.parquet"
    _hourly("BTC-USD", list(range(8))).write_parquet(src)
    argv = ["data", "resample", str(src), "--to", "90m", "--out", str(tmp_path / "o.parquet")]
    assert "--to" in _one_line_error(capsys, argv, prog="sim data resample")


# --- --sort -----------------------------------------------------------------------------------


@pytest.fixture(name="newest_first")
def fixture_newest_first(tmp_path) -> Path:
    path = tmp_path / "newest_first.csv"
    frame = _hourly("BTC-USD", list(range(30))).sort("ts", descending=True)
    frame.with_columns(pl.col("ts").dt.epoch("s")).write_csv(path)
    return path


def test_validate_unsorted_without_sort_keeps_error_and_names_sort(newest_first, capsys):
    assert cli.main(["data", "validate", str(newest_first)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "`ts` must be increasing within a symbol" in err
    assert err.endswith(UNSORTED_HINT)
    assert len(err.splitlines()) == 1


def test_validate_with_sort_accepts_newest_first(newest_first, capsys):
    assert cli.main(["data", "validate", "--sort", str(newest_first)]) == 0
    assert capsys.readouterr().out.startswith("ok: 30 bars, 1 symbols (BTC-USD)")


def test_sort_hint_not_added_to_other_errors(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    frame = _hourly("BTC-USD", [0, 1, 1, 2])
    frame.with_columns(pl.col("ts").dt.epoch("s")).write_csv(path)
    assert cli.main(["data", "validate", str(path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "duplicated" in err
    assert "--sort" not in err


def test_run_unsorted_names_sort_and_run_sort_loads_it(newest_first, tmp_path, capsys):
    argv = ["run", "--no-mlflow", "--allow-missing-symbols", "--data", str(newest_first),
            "--out", str(tmp_path / "r.json")]  # fmt: skip
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert UNSORTED_HINT in capsys.readouterr().err
    # sorted, the 30 bars load and the run stops later, at the warm-up check
    assert cli.main([*argv, "--sort"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "warm-up" in err
    assert "--sort" not in err
