"""Column-parallel stage-1 kernels (`prange` over symbols) equal their serial twins bit for bit,
and so does `decision_inputs` with them on or off (`signals.parallel`)."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import signals.parallel
import signals.pipeline
from signals.bars import load_bars, to_panel
from signals.config import load_config
from signals.indicators.nb import (
    realized_vol_columns_nb,
    realized_vol_nb,
    rolling_sum_columns_nb,
    rolling_sum_nb,
)
from signals.pipeline import decision_inputs
from signals.strategies.nb import ma_cross_weights_columns_nb, ma_cross_weights_nb
from signals.triggers.nb import bad_tick_mask_columns_nb, bad_tick_mask_nb
from tests.strategies import kernel_arrays, special_arrays

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARRAYS = st.one_of(kernel_arrays(max_cols=9), special_arrays(max_cols=9))
LAYOUTS = st.sampled_from(["C", "F"])


def _layout(x: np.ndarray, order: str) -> np.ndarray:
    return np.asfortranarray(x) if order == "F" else np.ascontiguousarray(x)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype
    assert a.flags.c_contiguous
    assert b.flags.c_contiguous
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))  # bits, NaNs included


@SETTINGS
@given(x=ARRAYS, window=st.integers(-1, 30), bar_no=st.integers(0, 10**6), order=LAYOUTS)
def test_realized_vol_and_rolling_sum_parallel_equal_serial(x, window, bar_no, order):
    x = _layout(x, order)
    _same(realized_vol_columns_nb(x, window, bar_no), realized_vol_nb(x, window, bar_no))
    _same(rolling_sum_columns_nb(x, window, bar_no), rolling_sum_nb(x, window, bar_no))


@SETTINGS
@given(
    close=ARRAYS, seed=st.integers(0, 2**32 - 1), window=st.integers(-1, 30),
    jump=st.sampled_from([0.0, 0.05, 0.2]), ratio=st.sampled_from([0.5, 2.0]),
    bar_no=st.integers(0, 10**6), order=LAYOUTS,
)  # fmt: skip
def test_bad_tick_mask_parallel_equals_serial(close, seed, window, jump, ratio, bar_no, order):
    volume = np.random.default_rng(seed).gamma(2.0, 10.0, close.shape)
    c, v = _layout(close, order), _layout(volume, order)
    _same(
        bad_tick_mask_columns_nb(c, v, jump, ratio, window, bar_no),
        bad_tick_mask_nb(c, v, jump, ratio, window, bar_no),
    )


@SETTINGS
@given(
    x=ARRAYS, fast=st.integers(0, 12), slow=st.integers(0, 30), bar_no=st.integers(0, 10**6),
    order=LAYOUTS,
)  # fmt: skip
def test_ma_cross_weights_parallel_equal_serial(x, fast, slow, bar_no, order):
    x = _layout(x, order)
    _same(
        ma_cross_weights_columns_nb(x, fast, slow, bar_no, 0.05, np.empty(x.shape)),
        ma_cross_weights_nb(x, fast, slow, bar_no, 0.05, np.empty(x.shape)),
    )


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("strategy", ["rules", "ma_cross"])
def test_decision_inputs_column_parallel_equals_serial(monkeypatch, threads, strategy):
    panel = to_panel(load_bars(ROOT / "data" / "sample_hourly.parquet"))
    config = load_config(ROOT / "config")
    entries = {
        n: e.model_copy(update={"enabled": n == strategy})
        for n, e in config.strategies.strategies.items()
    }
    config = config.model_copy(
        update={"strategies": config.strategies.model_copy(update={"strategies": entries})}
    )
    monkeypatch.setattr(signals.parallel, "PARALLEL_MIN_CELLS", 10**12)
    serial = decision_inputs(panel, config)
    monkeypatch.setattr(signals.parallel, "PARALLEL_MIN_CELLS", 0)
    assert signals.pipeline.columns_in_parallel(panel.close.shape)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        parallel = decision_inputs(panel, config)
    finally:
        numba.set_num_threads(before)
    for name in ("weight", "stop_pct", "take_pct", "strategy", "block_reason", "regime",
                 "bad_tick", "vol"):  # fmt: skip
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))


@SETTINGS
@given(
    close=ARRAYS, seed=st.integers(0, 2**32 - 1), lookback=st.integers(-1, 20),
    ratio=st.sampled_from([0.5, 1.5, 3.0]), bar_no=st.integers(0, 10**6), order=LAYOUTS,
)  # fmt: skip
def test_rules_triggers_parallel_equal_serial(close, seed, lookback, ratio, bar_no, order):
    from signals.strategies.nb import below_channel_columns_nb, below_channel_nb
    from signals.triggers.nb import (
        breakout_columns_nb,
        breakout_nb,
        volume_spike_columns_nb,
        volume_spike_nb,
    )

    rng = np.random.default_rng(seed)
    c = _layout(close, order)
    band = _layout(close * rng.uniform(0.97, 1.03, close.shape), order)
    volume = _layout(rng.gamma(2.0, 10.0, close.shape), order)
    _same(breakout_columns_nb(c, band, lookback), breakout_nb(c, band, lookback))
    _same(below_channel_columns_nb(c, band, lookback), below_channel_nb(c, band, lookback))
    _same(
        volume_spike_columns_nb(volume, lookback, ratio, bar_no),
        volume_spike_nb(volume, lookback, ratio, bar_no),
    )


@SETTINGS
@given(n_rows=st.integers(0, 200), n_cols=st.integers(1, 150), dtype=st.sampled_from(["f8", "u1"]))
def test_tiled_copies_equal_numpy_copies_in_either_order(n_rows, n_cols, dtype):
    from signals.indicators.nb import copy_tiles_nb

    x = np.random.default_rng(n_rows * 1000 + n_cols).random((n_rows, n_cols)) * 300
    x = x.astype(dtype)
    if dtype == "f8" and x.size:
        x.flat[::7] = np.nan
    out = np.empty(x.shape, dtype=x.dtype, order="F")
    copy_tiles_nb(x, out)
    assert out.flags.f_contiguous
    assert out.tobytes(order="A") == np.asfortranarray(x).tobytes(order="A")
    back = np.empty(x.shape, dtype=x.dtype)
    copy_tiles_nb(out, back)
    assert back.flags.c_contiguous
    assert back.tobytes() == x.tobytes()


def test_symbol_major_picks_the_tiled_copy_only_for_wide_arrays(monkeypatch):
    from signals.parallel import symbol_major

    one_symbol = np.zeros((10, 1))
    assert np.shares_memory(symbol_major(one_symbol), one_symbol)
    monkeypatch.setattr(signals.parallel, "PARALLEL_MIN_CELLS", 4)
    wide = np.arange(12.0).reshape(4, 3)
    got = symbol_major(wide)
    assert got.flags.f_contiguous
    np.testing.assert_array_equal(got, wide)
