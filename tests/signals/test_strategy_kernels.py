"""Strategy kernels equal their references; the quiet-bar check never hides a decision."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signals.decision.nb import mark_periods_breakers_nb, nothing_to_decide_nb
from signals.records import Book
from signals.strategies.nb import (
    below_channel_nb,
    cross_weights_nb,
    ma_cross_weights_nb,
    rules_combine_nb,
)
from tests.reference.indicators import ma_cross_ref
from tests.reference.strategies import (
    below_channel_ref,
    combine_ref,
    cross_weights_ref,
    rules_combine_ref,
)
from tests.signals.test_step_reference import run_step_nb
from tests.strategies import kernel_arrays, step_cases

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _flags(draw, shape):
    return np.asarray(
        draw(
            st.lists(st.integers(0, 1), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])
        ),
        dtype=np.uint8,
    ).reshape(shape)


@SETTINGS
@given(data=st.data(), n_bars=st.integers(0, 40), n_symbols=st.integers(1, 3))
def test_rules_combine_random_triggers_match_reference(data, n_bars, n_symbols):
    shape = (n_bars, n_symbols)
    masks = [_flags(data.draw, shape) for _ in range(6)]
    regime = np.asarray(
        data.draw(st.lists(st.integers(-1, 3), min_size=n_bars, max_size=n_bars)), dtype=np.int64
    )
    weight = data.draw(st.floats(0.0, 1.0))
    enabled = data.draw(st.booleans())
    got = rules_combine_nb(*masks, regime, weight, enabled)
    np.testing.assert_array_equal(got, rules_combine_ref(*masks, regime, weight, enabled))


@SETTINGS
@given(close=kernel_arrays(), lookback=st.integers(1, 8), shift=st.floats(0.9, 1.0))
def test_below_channel_random_prices_match_reference_and_prefix(close, lookback, shift):
    low = np.ascontiguousarray(close * shift)
    got = below_channel_nb(close, low, lookback)
    np.testing.assert_array_equal(got, below_channel_ref(close, low, lookback))
    n = close.shape[0] // 2
    head = below_channel_nb(
        np.ascontiguousarray(close[:n]), np.ascontiguousarray(low[:n]), lookback
    )
    np.testing.assert_array_equal(head, got[:n])


@SETTINGS
@given(data=st.data(), n_bars=st.integers(0, 30), weight=st.floats(0.0, 1.0))
def test_cross_weights_random_crosses_match_reference(data, n_bars, weight):
    cross = np.asarray(
        data.draw(st.lists(st.integers(-1, 1), min_size=n_bars * 2, max_size=n_bars * 2)),
        dtype=np.int8,
    ).reshape(n_bars, 2)
    np.testing.assert_array_equal(cross_weights_nb(cross, weight), cross_weights_ref(cross, weight))


@SETTINGS
@given(
    close=kernel_arrays(),
    windows=st.tuples(st.integers(1, 6), st.integers(1, 9)),
    first_bar_no=st.integers(0, 10_000),
    weight=st.sampled_from((0.0, 0.05, 1.0)),
)
def test_ma_cross_weights_equal_cross_weights_of_the_cross(close, windows, first_bar_no, weight):
    # MaCross.propose's one-pass weights == weights of the int8 cross, kernel and reference
    fast, slow = windows
    out = np.full(close.shape, 7.0)  # any content: every cell is written
    got = ma_cross_weights_nb(close, fast, slow, first_bar_no, weight, out)
    expected = cross_weights_ref(ma_cross_ref(close, fast, slow, first_bar_no), weight)
    np.testing.assert_array_equal(got, expected)
    assert got is out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=step_cases(pending=False))
def test_nothing_to_decide_true_means_step_emits_and_counts_nothing(case):
    # the simulator skips the step when the check says so: it must be a sufficient condition
    account = case["account"].copy()
    positions = case["positions"].copy()
    n_symbols = positions.shape[0]
    close = case["close"].reshape(1, n_symbols)
    weight = case["weight"].reshape(1, n_symbols)
    mark_periods_breakers_nb(
        account, positions, close, 0, case["day_id"], case["week_id"], case["params"]
    )
    from signals.decision.nb import new_workspace_nb  # noqa: PLC0415

    workspace = new_workspace_nb(
        n_symbols, case["static"].theme_id, case["static"].strategy_cap.shape[0]
    )
    quiet = nothing_to_decide_nb(
        0, close, weight, case["params"], case["static"], Book(account, positions, workspace)
    )
    orders, reasons, after_account, after_positions = run_step_nb(case)
    if quiet:
        assert orders.shape[0] == 0
        assert not reasons.any()
        np.testing.assert_array_equal(after_positions, positions)
        np.testing.assert_array_equal(after_account, account)


_WEIGHTS = st.sampled_from([np.nan, 0.0, -0.1, 0.05, 0.1, 0.2, 0.0375])


@SETTINGS
@given(
    data=st.data(),
    n_bars=st.integers(1, 30),
    n_symbols=st.integers(1, 3),
    n_strategies=st.integers(1, 4),
)
def test_combine_kernel_matches_reference(data, n_bars, n_symbols, n_strategies):
    from signals.pipeline import combine_proposals
    from signals.strategies import Proposals

    shape = (n_bars, n_symbols)
    proposals = []
    for _ in range(n_strategies):
        w = np.asarray(data.draw(st.lists(_WEIGHTS, min_size=n_bars * n_symbols,
                                          max_size=n_bars * n_symbols))).reshape(shape)  # fmt: skip
        rows = [1 if data.draw(st.booleans()) else n_bars for _ in range(2)]
        stop, take = (
            np.asarray(data.draw(st.lists(st.sampled_from([np.nan, 0.02, 0.06]),
                                          min_size=r * n_symbols, max_size=r * n_symbols)))
            .reshape(r, n_symbols)
            for r in rows
        )  # fmt: skip
        proposals.append(Proposals(weight=w, stop_pct=stop, take_pct=take))
    got = combine_proposals(proposals, shape)
    expected = combine_ref([(p.weight, p.stop_pct, p.take_pct) for p in proposals], shape)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
        assert g.flags.c_contiguous


def test_combine_refuses_a_proposal_of_the_wrong_shape():
    import pytest

    from signals.pipeline import combine_proposals
    from signals.strategies import Proposals

    bad = Proposals(weight=np.zeros((3, 2)), stop_pct=np.zeros((2, 2)), take_pct=np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"strategy #0's `stop_pct` must have shape"):
        combine_proposals([bad], (3, 2))


@SETTINGS
@given(data=st.data(), n_bars=st.integers(0, 30), n_symbols=st.integers(1, 3))
def test_combine_first_equals_folding_the_first_strategy_into_empty_arrays(data, n_bars, n_symbols):
    from signals.strategies.nb import combine_first_nb, combine_into_nb

    shape = (n_bars, n_symbols)
    cells = n_bars * n_symbols
    weight_k = np.asarray(
        data.draw(st.lists(_WEIGHTS, min_size=cells, max_size=cells)), dtype=np.float64
    ).reshape(shape)
    stop_rows = 1 if data.draw(st.booleans()) else n_bars
    stop_k = np.linspace(0.01, 0.09, stop_rows * n_symbols).reshape(stop_rows, n_symbols)
    take_k = np.full((1, n_symbols), 0.2)
    folded = [np.full(shape, np.nan) for _ in range(3)] + [np.full(shape, -1, dtype=np.int64)]
    combine_into_nb(weight_k, stop_k, take_k, 0, *folded, np.full(shape, -np.inf))
    first = [np.full(shape, 7.0) for _ in range(3)] + [np.full(shape, 7, dtype=np.int64)]
    combine_first_nb(weight_k, stop_k, take_k, *first)
    for f, g in zip(first, folded, strict=True):
        np.testing.assert_array_equal(f, g)


def test_combine_of_no_strategy_is_no_opinion_anywhere():
    from signals.pipeline import combine_proposals

    weight, stop_pct, take_pct, chosen = combine_proposals([], (4, 2))
    for no_opinion in (weight, stop_pct, take_pct):
        assert np.isnan(no_opinion).all()
    assert chosen.dtype == np.int64
    assert (chosen == -1).all()
