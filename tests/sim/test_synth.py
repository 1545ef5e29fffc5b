"""Tests for `sim.synth` and the shipped sample data set it produces."""

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from signals.bars import BAR_SCHEMA, frame_hash, load_bars, to_panel, validate_bars
from signals.errors import ConfigError
from sim.synth import REGIMES, SYNTH_VERSION, synth_bars, synth_metadata

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_hourly.parquet"


@pytest.fixture(name="market", scope="module")
def fixture_market():
    return synth_bars(seed=42, return_bad_ticks=True)


def test_synth_bars_defaults_valid_schema_and_shape(market):
    frame, _ = market
    assert frame.schema == pl.Schema(BAR_SCHEMA)
    report = validate_bars(frame)
    assert report.n_bars == 8 * 8760
    assert report.symbols == (
        "ADA-USD",
        "AVAX-USD",
        "BTC-USD",
        "DOGE-USD",
        "ETH-USD",
        "LINK-USD",
        "SOL-USD",
        "UNI-USD",
    )
    assert report.bar_ns == 3_600 * 10**9
    assert report.gaps.is_empty()
    assert report.start.isoformat() == "2024-01-01T00:00:00+00:00"
    assert_frame_equal(frame, frame.sort("symbol", "ts"))


def test_synth_bars_same_seed_identical_frame():
    a = synth_bars(seed=7, n_symbols=3, n_bars=500)
    b = synth_bars(seed=7, n_symbols=3, n_bars=500)
    assert_frame_equal(a, b, check_exact=True)
    assert frame_hash(a) == frame_hash(b)


def test_synth_bars_other_seed_different_frame():
    a = synth_bars(seed=7, n_symbols=3, n_bars=500)
    b = synth_bars(seed=8, n_symbols=3, n_bars=500)
    assert frame_hash(a) != frame_hash(b)


def test_synth_bars_few_symbols_btc_and_eth_first():
    assert synth_bars(n_symbols=2, n_bars=10)["symbol"].unique().sort().to_list() == [
        "BTC-USD",
        "ETH-USD",
    ]


def test_synth_bars_many_symbols_generic_names_and_valid():
    frame = synth_bars(seed=1, n_symbols=11, n_bars=300)
    symbols = frame["symbol"].unique().sort().to_list()
    assert {"SYN09-USD", "SYN10-USD", "SYN11-USD", "UNI-USD"} <= set(symbols)
    assert len(symbols) == 11
    validate_bars(frame)


def test_synth_bars_start_prices_realistic(market):
    frame, _ = market
    first = dict(frame.group_by("symbol").agg(pl.col("open").first()).iter_rows())
    assert first["BTC-USD"] == pytest.approx(40_000, rel=0.01)
    assert first["ETH-USD"] == pytest.approx(2_300, rel=0.01)
    assert first["DOGE-USD"] == pytest.approx(0.08, rel=0.01)


def test_synth_bars_open_is_previous_close_plus_small_gap(market):
    frame, bad = market
    gap = frame.select(
        (pl.col("open") / pl.col("close").shift(1).over("symbol") - 1).abs().alias("gap")
    )["gap"].drop_nulls()
    # The bar after a bad tick opens at the true close, not the bad print.
    assert (gap > 0.005).sum() == bad.height
    assert gap.filter(gap <= 0.005).max() < 0.005


def test_synth_bars_returns_fat_tailed_clustered_correlated(market):
    frame, bad = market
    panel = to_panel(frame)
    returns = np.diff(np.log(panel.close), axis=0)
    btc = returns[:, panel.symbol_index("BTC-USD")]
    btc = btc[np.abs(btc) < 0.1]  # drop the bad-tick spikes
    z = (btc - btc.mean()) / btc.std()
    assert np.mean(z**4) > 4.0  # excess kurtosis: fat tails
    # Volatility clustering: absolute returns are autocorrelated.
    absr = np.abs(z)
    assert np.corrcoef(absr[:-1], absr[1:])[0, 1] > 0.05
    # Market factor: every asset correlates positively with BTC.
    corr = np.corrcoef(np.clip(returns, -0.1, 0.1).T)
    btc_col = panel.symbol_index("BTC-USD")
    assert np.all(corr[btc_col] > 0.3)


def test_synth_bars_bad_ticks_jump_and_revert_with_normal_volume(market):
    frame, bad = market
    assert bad.columns == ["symbol", "ts", "true_close", "bad_close", "jump_pct"]
    assert bad.height == 8 * 3
    assert bad["jump_pct"].abs().min() >= 12.0
    assert bad["jump_pct"].abs().max() <= 25.0
    marked = frame.with_columns(
        (pl.col("close") / pl.col("close").shift(1).over("symbol") - 1).alias("ret"),
        (pl.col("close").shift(-1).over("symbol") / pl.col("close") - 1).alias("next_ret"),
        (
            pl.col("volume")
            / pl.col("volume").rolling_median(window_size=48, center=True).over("symbol")
        ).alias("rel_volume"),
    )
    hits = bad.join(marked, on=["symbol", "ts"], how="left")
    assert hits["close"].to_list() == bad["bad_close"].to_list()
    assert (hits["ret"].sign() == hits["jump_pct"].sign()).all()
    assert (hits["ret"].abs() > 0.10).all()
    assert (hits["next_ret"].sign() == -hits["jump_pct"].sign()).all()
    assert (hits["next_ret"].abs() > 0.09).all()
    assert (hits["rel_volume"] < 3.0).all()


def test_synth_bars_regimes_produce_crash_drawdowns(market):
    frame, _ = market
    btc = frame.filter(pl.col("symbol") == "BTC-USD")["close"].to_numpy()
    peak = np.maximum.accumulate(btc)
    assert (btc / peak).min() < 0.8  # at least one 20 % drawdown in the year


def test_synth_bars_eight_by_8760_under_one_second():
    synth_bars(n_bars=100)  # warm imports
    started = time.perf_counter()
    synth_bars()
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_symbols": 0}, "`n_symbols` must be an integer >= 1, was 0"),
        ({"n_bars": 2}, "`n_bars` must be an integer >= 3, was 2"),
        ({"bar_minutes": 0}, "`bar_minutes` must be an integer >= 1, was 0"),
        ({"seed": -1}, "`seed` must be an integer >= 0, was -1"),
        ({"start": "2024-01-01T00:00:00"}, "`start` must carry a UTC offset"),
        ({"start": "soon"}, "`start` must be an ISO-8601 timestamp, was 'soon'"),
    ],
)
def test_synth_bars_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        synth_bars(**kwargs)


def test_synth_bars_other_bar_length_spacing():
    frame = synth_bars(n_symbols=2, n_bars=50, bar_minutes=15)
    assert validate_bars(frame).bar_ns == 15 * 60 * 10**9


def test_synth_metadata_json_describes_arguments():
    meta = synth_metadata(seed=3, n_symbols=9, n_bars=100)
    json.dumps(meta)
    assert meta["version"] == SYNTH_VERSION
    assert meta["arguments"]["seed"] == 3
    assert meta["symbols"][:2] == ["BTC-USD", "ETH-USD"]
    assert meta["symbols"][-1] == "SYN09-USD"
    assert list(meta["regimes"]) == list(REGIMES)


def test_sample_hourly_parquet_equals_generator_output():
    shipped = load_bars(SAMPLE)
    assert SAMPLE.stat().st_size < 10 * 1024 * 1024
    assert_frame_equal(shipped, synth_bars(seed=42, n_symbols=8, n_bars=8760), check_exact=True)
