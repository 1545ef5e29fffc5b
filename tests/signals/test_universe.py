"""Universe kernels equal their references, are prefix invariant, and bind as documented."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from signals.enums import Reason
from signals.indicators.nb import bars_since_valid_nb
from signals.universe.nb import (
    TIER_CORE,
    TIER_EXCLUDED,
    TIER_ROTATIONAL,
    TIER_UNLISTED,
    ban_active_nb,
    red_flag_nb,
    universe_block_nb,
    universe_guards_nb,
)
from tests.reference.universe import ban_active_ref, red_flag_ref, universe_block_ref
from tests.strategies import kernel_arrays

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def universe_cases(draw):
    """Draw inputs of `universe_block_nb` with ties in volume and every tier."""
    close = draw(kernel_arrays(min_rows=1, max_cols=5))
    n_bars, n_symbols = close.shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    volume = rng.choice((np.nan, 0.0, 5e5, 1e6, 2e6, 2e6, 9e6), (n_bars, n_symbols))
    return {
        "quote_volume": np.ascontiguousarray(volume),
        "spread_bps": rng.choice((2.0, 30.0, 31.0), n_symbols),
        "tier": rng.choice(
            (TIER_CORE, TIER_ROTATIONAL, TIER_ROTATIONAL, TIER_EXCLUDED, TIER_UNLISTED), n_symbols
        ).astype(np.int64),  # fmt: skip
        "min_quote_volume": 1e6,
        "max_spread_bps": 30.0,
        "max_size": int(rng.integers(1, 5)),
        "banned": (rng.random((n_bars, n_symbols)) < 0.1).astype(np.uint8),
        "bad_tick": (rng.random((n_bars, n_symbols)) < 0.1).astype(np.uint8),
        "stale_bars": rng.integers(0, 3, (n_bars, n_symbols)).astype(np.int64),
        "max_stale_bars": int(rng.integers(0, 2)),
    }


def _block(case, rows=None):
    c = dict(case)
    if rows is not None:
        for key in ("quote_volume", "banned", "bad_tick", "stale_bars"):
            c[key] = np.ascontiguousarray(c[key][:rows])
    args = [c[k] for k in ("quote_volume", "spread_bps", "tier", "min_quote_volume",
                           "max_spread_bps", "max_size", "banned", "bad_tick", "stale_bars",
                           "max_stale_bars")]  # fmt: skip
    return args


@SETTINGS
@given(case=universe_cases())
def test_universe_block_nb_random_inputs_equals_reference(case):
    np.testing.assert_array_equal(
        universe_block_nb(*_block(case)), universe_block_ref(*_block(case))
    )


@SETTINGS
@given(case=universe_cases(), data=st.data())
def test_universe_block_nb_prefix_is_prefix_of_full_run(case, data):
    n = data.draw(st.integers(0, case["quote_volume"].shape[0]))
    full = universe_block_nb(*_block(case))
    np.testing.assert_array_equal(universe_block_nb(*_block(case, n)), full[:n])


@st.composite
def flag_cases(draw):
    close = draw(kernel_arrays(min_rows=0, max_cols=3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bad = (rng.random(close.shape) < 0.1).astype(np.uint8)
    return close, bad, draw(st.sampled_from((0.0, 0.05, 0.2, 0.3)))


@SETTINGS
@given(case=flag_cases(), ban_bars=st.integers(0, 10), data=st.data())
def test_red_flag_and_ban_nb_random_inputs_equal_reference_and_prefix(case, ban_bars, data):
    close, bad, move = case
    flags = red_flag_nb(close, bad, move)
    np.testing.assert_array_equal(flags, red_flag_ref(close, bad, move))
    bans = ban_active_nb(flags, ban_bars)
    np.testing.assert_array_equal(bans, ban_active_ref(flags, ban_bars))
    n = data.draw(st.integers(0, close.shape[0]))
    np.testing.assert_array_equal(red_flag_nb(close[:n], bad[:n], move), flags[:n])
    np.testing.assert_array_equal(
        ban_active_nb(np.ascontiguousarray(flags[:n]), ban_bars), bans[:n]
    )


def test_ban_active_nb_red_flag_expires_after_ban_bars():
    flags = np.zeros((30, 1), dtype=np.uint8)
    flags[5, 0] = 1
    bans = ban_active_nb(flags, 24)[:, 0]
    assert bans[:5].sum() == 0
    assert bans[5:29].all()
    assert bans[29] == 0


def test_red_flag_nb_return_from_bad_tick_is_not_flagged():
    close = np.array([[100.0], [150.0], [100.0], [100.0], [140.0]])
    bad = np.array([[0], [1], [0], [0], [0]], dtype=np.uint8)
    flags = red_flag_nb(close, bad, 0.2)[:, 0]
    np.testing.assert_array_equal(flags, [0, 0, 0, 0, 1])


def test_universe_block_nb_each_rule_returns_its_reason():
    # columns: core wide spread, rotational low volume, excluded, unlisted, stale, bad tick,
    # banned, ok
    n = 8
    quote_volume = np.array([[5e6, 1e5, 5e6, 5e6, 5e6, 5e6, 5e6, 5e6]])
    spread = np.array([40.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    tier = np.array(
        [TIER_CORE, TIER_ROTATIONAL, TIER_EXCLUDED, TIER_UNLISTED] + [TIER_ROTATIONAL] * 4
    )
    stale = np.zeros((1, n), dtype=np.int64)
    stale[0, 4] = 2
    bad = np.zeros((1, n), dtype=np.uint8)
    bad[0, 5] = 1
    banned = np.zeros((1, n), dtype=np.uint8)
    banned[0, 6] = 1
    out = universe_block_nb(quote_volume, spread, tier, 1e6, 30.0, 10, banned, bad, stale, 1)
    np.testing.assert_array_equal(
        out[0],
        [Reason.WideSpread, Reason.LowVolume, Reason.ExcludedTier, Reason.ExcludedTier,
         Reason.StaleData, Reason.BadTick, Reason.Banned, Reason.Ok],
    )  # fmt: skip


def test_universe_block_nb_max_size_keeps_core_and_most_liquid_with_reason():
    quote_volume = np.array([[1e6, 3e6, 5e6, 2e6, 5e6]])
    tier = np.array([TIER_CORE] + [TIER_ROTATIONAL] * 4)
    zeros = np.zeros((1, 5), dtype=np.uint8)
    out = universe_block_nb(
        quote_volume, np.zeros(5), tier, 1e6, 30.0, 3, zeros, zeros, np.zeros((1, 5), np.int64), 0
    )
    # core always in; two slots: the two 5e6 (tie kept in column order); others UniverseSize
    np.testing.assert_array_equal(
        out[0], [Reason.Ok, Reason.UniverseSize, Reason.Ok, Reason.UniverseSize, Reason.Ok]
    )


@st.composite
def wide_universe_cases(draw):
    """Draw `universe_guards_nb` inputs over up to 40 symbols: many candidates for few slots,
    ties in volume, every tier, bad ticks, gaps and jumps that raise red flags."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_bars, n_symbols = draw(st.integers(0, 40)), draw(st.integers(1, 40))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.15, (n_bars, n_symbols)), axis=0))
    close[rng.random(close.shape) < 0.1] = np.nan
    return {
        "close": np.ascontiguousarray(close),
        "bad_tick": (rng.random((n_bars, n_symbols)) < 0.1).astype(np.uint8),
        "quote_volume": rng.choice(
            (np.nan, 0.0, 5e5, 1e6, 2e6, 2e6, 9e6, np.inf), (n_bars, n_symbols)
        ),  # fmt: skip
        "spread_bps": rng.choice((2.0, 30.0, 31.0), n_symbols),
        "tier": rng.choice(
            (
                TIER_CORE,
                TIER_ROTATIONAL,
                TIER_ROTATIONAL,
                TIER_ROTATIONAL,
                TIER_EXCLUDED,
                TIER_UNLISTED,
            ),
            n_symbols,
        ).astype(np.int64),  # fmt: skip
        "max_move": draw(st.sampled_from((0.0, 0.1, 0.2))),
        "ban_bars": draw(st.integers(0, 6)),
        "min_quote_volume": 1e6,
        "max_spread_bps": 30.0,
        "max_size": draw(st.integers(0, 8)),
        "max_stale_bars": draw(st.integers(0, 2)),
    }


@SETTINGS
@given(case=wide_universe_cases())
def test_universe_guards_nb_equals_the_block_of_the_separate_guards(case):
    c = case
    banned = ban_active_nb(red_flag_nb(c["close"], c["bad_tick"], c["max_move"]), c["ban_bars"])
    args = (c["quote_volume"], c["spread_bps"], c["tier"], c["min_quote_volume"],
            c["max_spread_bps"], c["max_size"], banned, c["bad_tick"],
            bars_since_valid_nb(c["close"]), c["max_stale_bars"])  # fmt: skip
    expected = universe_block_nb(*args)
    np.testing.assert_array_equal(expected, universe_block_ref(*args))
    got = universe_guards_nb(
        c["close"], c["bad_tick"], c["quote_volume"], c["spread_bps"], c["tier"], c["max_move"],
        c["ban_bars"], c["min_quote_volume"], c["max_spread_bps"], c["max_size"],
        c["max_stale_bars"],
    )  # fmt: skip
    np.testing.assert_array_equal(got, expected)
