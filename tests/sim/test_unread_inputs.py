"""Stage 1 computes only what a control reads: an input left out changes no result."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from signals.bars import load_bars, to_panel
from signals.config import load_config
from signals.indicators.nb import realized_vol_nb
from signals.pipeline import decision_inputs
from sim.engine import run_backtest
from tests.sim.conftest import PROJECT_ROOT, SAMPLE


def test_no_volatility_slippage_leaves_vol_uncomputed_and_changes_no_fill():
    panel = to_panel(load_bars(SAMPLE))
    config = load_config(PROJECT_ROOT / "config").with_overrides(
        {"policy.execution.slippage_vol_mult": 0.0}
    )
    inputs = decision_inputs(panel, config)
    assert np.isnan(inputs.vol).all()
    assert inputs.vol.shape == panel.close.shape
    computed = realized_vol_nb(
        panel.close,
        config.policy.execution.slippage_vol_window,
        int(panel.ts_ns[0] // inputs.bar_ns),
    )
    assert np.isfinite(computed).any()
    skipped = run_backtest(panel, config)
    read = run_backtest(panel, config, dataclasses.replace(inputs, vol=computed))
    assert skipped.fills.height > 0
    for name in ("orders", "fills", "trades", "curve"):
        assert_frame_equal(getattr(skipped, name), getattr(read, name))


def test_without_vol_every_other_input_is_the_same():
    # the live daemon outside PAPER asks for no volatility: its decision reads the rest
    panel = to_panel(load_bars(SAMPLE))
    config = load_config(PROJECT_ROOT / "config")
    full = decision_inputs(panel, config)
    lean = decision_inputs(panel, config, with_vol=False)
    assert np.isfinite(full.vol).any()
    assert np.isnan(lean.vol).all()
    assert lean.vol.shape == panel.close.shape
    for field in dataclasses.fields(full):
        if field.name != "vol":
            a, b = getattr(full, field.name), getattr(lean, field.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=field.name)
            else:
                assert a == b, field.name


_STRATEGY_SETS = {
    "rules": {},
    "ma_cross": {"strategies.rules.enabled": False, "strategies.ma_cross.enabled": True},
    "both": {"strategies.ma_cross.enabled": True},
    "rules with dips, short lookbacks": {
        "strategies.rules.mean_reversion": True,
        "strategies.rules.mean_reversion_lookback": 30,
        "strategies.rules.breakout_lookback": 5,
        "strategies.rules.exit_lookback": 3,
    },
}


@settings(max_examples=40, deadline=None)
@given(
    strategies=st.sampled_from(sorted(_STRATEGY_SETS)),
    end=st.integers(150, 2_000),
    length=st.integers(120, 600),
    rows=st.integers(1, 8),
)
def test_proposal_rows_give_the_last_rows_bit_for_bit_and_no_opinion_above(
    sample_panel, strategies, end, length, rows
):
    # the live daemon asks for the last row's proposals only (`proposal_rows=1`); every other
    # array is stage 1 of the whole panel, and the proposals' rows match the full computation
    config = load_config(PROJECT_ROOT / "config").with_overrides(_STRATEGY_SETS[strategies])
    panel = sample_panel.slice(max(0, end - length), min(end, sample_panel.n_bars))
    full = decision_inputs(panel, config)
    tail = decision_inputs(panel, config, proposal_rows=rows)
    above = max(0, panel.n_bars - rows)
    for name, fill in (("weight", np.nan), ("stop_pct", np.nan), ("take_pct", np.nan),
                       ("strategy", -1)):  # fmt: skip
        got, want = getattr(tail, name), getattr(full, name)
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got[above:], want[above:], err_msg=name)
        np.testing.assert_array_equal(got[:above], np.full_like(got[:above], fill), err_msg=name)
    for name in ("block_reason", "regime", "bad_tick", "vol"):
        np.testing.assert_array_equal(getattr(tail, name), getattr(full, name), err_msg=name)
    assert tail.strategy_names == full.strategy_names


@pytest.fixture(name="sample_panel", scope="module")
def fixture_sample_panel():
    return to_panel(load_bars(SAMPLE))


def test_proposal_rows_below_one_is_refused_naming_it(sample_panel):
    config = load_config(PROJECT_ROOT / "config")
    with pytest.raises(ValueError, match=r"`proposal_rows` must be >= 1 .* was 0"):
        decision_inputs(sample_panel, config, proposal_rows=0)
