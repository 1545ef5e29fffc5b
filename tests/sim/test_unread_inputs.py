"""Stage 1 computes only what a control reads: an input left out changes no result."""

from __future__ import annotations

import dataclasses

import numpy as np
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
