"""`step_nb` and `apply_fill_nb` equal their pure-Python references on random states."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signals.decision.nb import new_workspace_nb
from signals.enums import N_REASONS, Pos, Purpose, Side
from signals.records import ORDER_DT
from tests.reference.step import apply_fill_ref, orders_array, step_ref
from tests.step_calls import apply_fill, step_bar
from tests.strategies import step_cases

RTOL = 1e-12  # kernel and reference use the same formulas in the same order
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_step_nb(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run `step_nb` on copies of `case`'s state; return orders, reasons, account, positions."""
    account = case["account"].copy()
    positions = case["positions"].copy()
    n_symbols = positions.shape[0]
    n_strategies = case["static"].strategy_cap.shape[0]
    orders = np.zeros(2 * n_symbols + 8, dtype=ORDER_DT)
    reasons = np.zeros((n_strategies, n_symbols, N_REASONS), dtype=np.int64)
    workspace = new_workspace_nb(n_symbols, case["static"].theme_id, n_strategies)
    n = step_bar(
        case["bar_no"], case["day_id"], case["week_id"], case["close"], case["weight"],
        case["stop_pct"], case["take_pct"], case["strategy"], case["block_reason"],
        case["product_status"], case["regime"], case["params"], case["static"], account,
        positions, orders, reasons, workspace,
    )  # fmt: skip
    return orders[:n].copy(), reasons, account, positions


def run_step_ref(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run `step_ref` on copies of `case`'s state; same outputs as `run_step_nb`."""
    account = case["account"].copy()
    positions = case["positions"].copy()
    n_symbols = positions.shape[0]
    n_strategies = case["static"].strategy_cap.shape[0]
    reasons = np.zeros((n_strategies, n_symbols, N_REASONS), dtype=np.int64)
    orders = step_ref(
        case["bar_no"], case["day_id"], case["week_id"], case["close"], case["weight"],
        case["stop_pct"], case["take_pct"], case["strategy"], case["block_reason"],
        case["product_status"], case["regime"], case["params"], case["static"], account,
        positions, reasons,
    )  # fmt: skip
    return orders_array(orders), reasons, account, positions


def assert_orders_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    """Assert two `ORDER_DT` arrays are equal: ints exactly, floats to `RTOL` (NaN == NaN)."""
    assert actual.shape == expected.shape, (actual, expected)
    for name in ORDER_DT.names:
        if ORDER_DT[name].kind == "f":
            np.testing.assert_allclose(actual[name], expected[name], rtol=RTOL, err_msg=name)
        else:
            np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


@SETTINGS
@given(case=step_cases())
def test_step_nb_random_state_equals_reference(case):
    orders, reasons, account, positions = run_step_nb(case)
    orders_ref, reasons_ref, account_ref, positions_ref = run_step_ref(case)
    assert_orders_equal(orders, orders_ref)
    np.testing.assert_array_equal(reasons, reasons_ref)
    np.testing.assert_allclose(account, account_ref, rtol=RTOL)
    np.testing.assert_allclose(positions, positions_ref, rtol=RTOL)


@SETTINGS
@given(case=step_cases())
def test_step_nb_sells_never_exceed_unsold_position(case):
    orders, _, _, positions = run_step_nb(case)
    start = case["positions"]
    for s in range(start.shape[0]):
        sold = orders["qty"][(orders["symbol"] == s) & (orders["side"] == Side.Sell)].sum()
        unsold = max(start[s, Pos.Qty] - start[s, Pos.PendingSellQty], 0.0)
        assert sold <= unsold * (1 + 1e-12) + 1e-12
        assert positions[s, Pos.PendingSellQty] <= start[s, Pos.Qty] * (1 + 1e-12) + 1e-12


@SETTINGS
@given(case=step_cases(), data=st.data())
def test_step_nb_repeated_call_same_state_is_deterministic(case, data):
    first = run_step_nb(case)
    second = run_step_nb(case)
    assert_orders_equal(first[0], second[0])
    for a, b in zip(first[1:], second[1:], strict=True):
        np.testing.assert_array_equal(a, b)


fills = st.fixed_dictionaries(
    {
        "held": st.sampled_from((0.0, 0.5, 3.0, 0.013846230000000001)),
        "side": st.sampled_from((Side.Buy, Side.Sell)),
        # with "near", a sell of the position less a fraction of one increment (dust)
        "qty": st.floats(0.0, 5.0),
        "near": st.sampled_from((None, 0.0, 1e-10, 0.4, 0.999, 1.0, 1.5)),
        "base_inc": st.sampled_from((0.0, 1e-8, 0.1)),
        "price": st.floats(0.01, 1e5),
        "fee": st.floats(0.0, 10.0),
        "bar_no": st.integers(0, 10_000),
        "purpose": st.sampled_from(tuple(Purpose)),
        "strategy": st.integers(0, 2),
        "stop_pct": st.sampled_from((0.0, 0.05, 0.1)),
        "take_pct": st.sampled_from((0.0, 0.15)),
        "cooldown_fill": st.integers(0, 6),
        "cooldown_stop": st.integers(0, 30),
        "cooldown_until": st.integers(0, 10_030),
        "is_stop": st.booleans(),
    }
)


@settings(max_examples=300, deadline=None)
@given(fill_list=st.lists(fills, min_size=1, max_size=6))
def test_apply_fill_nb_fill_sequence_equals_reference(fill_list):
    account = np.zeros(13)
    account[0] = 10_000.0
    positions = np.zeros((1, len(Pos)))
    positions[0, Pos.Strategy] = -1.0
    first = fill_list[0]
    positions[0, Pos.Qty] = first["held"]
    positions[0, Pos.AvgEntry] = 100.0 if first["held"] > 0 else 0.0
    positions[0, Pos.CooldownUntilBar] = first["cooldown_until"]
    positions[0, Pos.CooldownIsStop] = float(first["is_stop"])
    acc_ref, pos_ref = account.copy(), positions.copy()
    for f in fill_list:
        qty = f["qty"]
        if f["near"] is not None and f["side"] == Side.Sell:
            qty = max(positions[0, Pos.Qty] - f["near"] * f["base_inc"], 0.0)
        args = (
            0, f["side"], qty, f["price"], f["fee"], f["bar_no"], f["purpose"],
            f["strategy"], f["stop_pct"], f["take_pct"], f["cooldown_fill"], f["cooldown_stop"],
            f["base_inc"],
        )  # fmt: skip
        closed = apply_fill(account, positions, *args)
        closed_ref = apply_fill_ref(acc_ref, pos_ref, *args)
        np.testing.assert_allclose(closed, closed_ref, rtol=RTOL)
        np.testing.assert_allclose(account, acc_ref, rtol=RTOL, atol=1e-9)
        np.testing.assert_allclose(positions, pos_ref, rtol=RTOL, atol=1e-9)
        assert positions[0, Pos.Qty] >= 0.0
        if f["side"] == Side.Sell:
            # a sell leaves 0 (and closes the trade) or at least one increment, never dust
            left = positions[0, Pos.Qty]
            assert left == 0.0 or left >= f["base_inc"] * (1.0 - 2e-9)
            assert np.isfinite(closed) == (left == 0.0)
