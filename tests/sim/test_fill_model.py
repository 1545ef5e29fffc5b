"""Fill model: golden cases of `sim.nb.fill_order_nb` and kernel == pure-Python reference.

Fee convention (vectorbt's): a market buy spending `S` USD gets `qty = S / (price * (1 + fee))`
and pays `fee = qty * price * fee_rate` on top; sells receive `qty * price - fee`.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals.config import PlatformConfig
from signals.decision.params import step_params
from signals.enums import OrderType, Side
from sim.enums import FillParams, OrderStatus
from sim.nb import fill_draws_nb
from tests.reference.fill import fill_draws_ref, fill_order_ref
from tests.sim.conftest import order_record
from tests.step_calls import fill_order

PARAMS = step_params(PlatformConfig())._replace(maker_fee=0.004, taker_fee=0.006)
NO_SLIP = FillParams(
    slippage=0.0, slippage_vol_mult=0.0, partial_fills=False, min_fill_fraction=0.3
)
SLIP = FillParams(slippage=0.001, slippage_vol_mult=0.1, partial_fills=False, min_fill_fraction=0.3)
PARTIAL = NO_SLIP._replace(partial_fills=True)


def _fill(order, o=100.0, h=102.0, lo=98.0, vol=0.01, cash=1e4, held=0.0, min_size=0.0,
          min_notional=0.0, base_inc=0.0, params=PARAMS, fill=NO_SLIP, u1=0.9, u2=0.5):  # fmt: skip
    args = (
        order,
        o,
        h,
        lo,
        vol,
        cash,
        held,
        min_size,
        min_notional,
        base_inc,
        params,
        fill,
        u1,
        u2,
    )
    got = fill_order(*args)
    want = fill_order_ref(*args)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1:4], want[1:4], rtol=1e-12, atol=0.0)
    assert got[4] == want[4]
    return got


# --- golden cases ---------------------------------------------------------------------------


def test_fill_market_buy_slippage_and_taker_fee_fee_on_top():
    status, qty, price, fee, maker = _fill(
        order_record(Side.Buy, OrderType.Market, notional=1000.0), fill=SLIP
    )
    assert status == OrderStatus.Filled
    assert maker == 0
    assert price == pytest.approx(100.0 * (1.0 + 0.001 + 0.1 * 0.01), rel=1e-15)  # 100.2
    assert qty == pytest.approx(1000.0 / (100.2 * 1.006), rel=1e-14)
    assert fee == pytest.approx(qty * 100.2 * 0.006, rel=1e-14)
    assert qty * price + fee == pytest.approx(1000.0, rel=1e-14)  # spends exactly the notional


def test_fill_market_buy_nan_vol_fixed_slippage_only():
    _, _, price, _, _ = _fill(
        order_record(Side.Buy, OrderType.Market, notional=1000.0), vol=np.nan, fill=SLIP
    )
    assert price == pytest.approx(100.1, rel=1e-15)


def test_fill_market_sell_slippage_clipped_to_position():
    status, qty, price, fee, maker = _fill(
        order_record(Side.Sell, OrderType.Market, qty=3.0), held=2.0, fill=SLIP
    )
    assert (status, maker) == (OrderStatus.Filled, 0)
    assert qty == 2.0
    assert price == pytest.approx(99.8, rel=1e-15)
    assert fee == pytest.approx(2.0 * 99.8 * 0.006, rel=1e-14)


def test_fill_post_only_buy_at_or_above_open_rejected_as_cross():
    for limit in (100.0, 101.0):
        status, qty, *_ = _fill(order_record(Side.Buy, OrderType.LimitPostOnly, 1.0, 0.0, limit))
        assert (status, qty) == (OrderStatus.PostOnlyCross, 0.0)


def test_fill_post_only_sell_at_or_below_open_rejected_as_cross():
    status, *_ = _fill(order_record(Side.Sell, OrderType.LimitPostOnly, 1.0, 0.0, 99.0), held=1.0)
    assert status == OrderStatus.PostOnlyCross


def test_fill_post_only_buy_traded_through_fills_at_limit_with_maker_fee():
    status, qty, price, fee, maker = _fill(
        order_record(Side.Buy, OrderType.LimitPostOnly, 2.0, 0.0, 99.0), lo=98.5
    )
    assert (status, qty, price, maker) == (OrderStatus.Filled, 2.0, 99.0, 1)
    assert fee == pytest.approx(2.0 * 99.0 * 0.004, rel=1e-15)


def test_fill_post_only_sell_traded_through_fills_at_limit():
    status, qty, price, _, _ = _fill(
        order_record(Side.Sell, OrderType.LimitPostOnly, 2.0, 0.0, 101.0), h=101.5, held=1.5
    )
    assert (status, qty, price) == (OrderStatus.Filled, 1.5, 101.0)


def test_fill_post_only_buy_low_touches_limit_no_fill():
    # a touch is not a trade-through: the queue ahead of us may absorb it
    status, qty, *_ = _fill(
        order_record(Side.Buy, OrderType.LimitPostOnly, 1.0, 0.0, 98.0), lo=98.0
    )
    assert (status, qty) == (OrderStatus.NoFill, 0.0)


def test_fill_post_only_partial_draw_fills_fraction_floored_to_increment():
    # fraction = 0.3 + 0.7 * 0.5 = 0.65 of 2.0 = 1.3 (base increment 0.01)
    status, qty, price, fee, _ = _fill(
        order_record(Side.Buy, OrderType.LimitPostOnly, 2.0, 0.0, 99.0),
        fill=PARTIAL, u1=0.2, u2=0.5, base_inc=0.01,
    )  # fmt: skip
    assert status == OrderStatus.Partial
    assert qty == pytest.approx(1.3, rel=1e-15)
    assert fee == pytest.approx(1.3 * 99.0 * 0.004, rel=1e-14)


def test_fill_post_only_partial_off_draw_fills_whole():
    status, qty, *_ = _fill(
        order_record(Side.Buy, OrderType.LimitPostOnly, 2.0, 0.0, 99.0), fill=PARTIAL, u1=0.7
    )
    assert (status, qty) == (OrderStatus.Filled, 2.0)


def test_fill_post_only_partial_below_minimum_fills_whole():
    status, qty, *_ = _fill(
        order_record(Side.Buy, OrderType.LimitPostOnly, 2.0, 0.0, 99.0),
        fill=PARTIAL, u1=0.2, u2=0.0, min_size=1.0,
    )  # fmt: skip
    assert (status, qty) == (OrderStatus.Filled, 2.0)


def test_fill_market_buy_cash_short_clips_spend():
    status, qty, price, fee, _ = _fill(
        order_record(Side.Buy, OrderType.Market, notional=1000.0), cash=500.0
    )
    assert status == OrderStatus.Filled
    assert qty * price + fee == pytest.approx(500.0, rel=1e-14)


def test_fill_market_buy_cash_short_below_minimum_insufficient_cash():
    status, qty, *_ = _fill(
        order_record(Side.Buy, OrderType.Market, notional=1000.0), cash=5.0, min_notional=10.0
    )
    assert (status, qty) == (OrderStatus.InsufficientCash, 0.0)


def test_fill_market_buy_below_min_notional_below_minimum():
    status, qty, *_ = _fill(
        order_record(Side.Buy, OrderType.Market, notional=5.0), min_notional=10.0
    )
    assert (status, qty) == (OrderStatus.BelowMinimum, 0.0)


def test_fill_market_buy_below_min_size_below_minimum():
    status, *_ = _fill(order_record(Side.Buy, OrderType.Market, notional=50.0), min_size=1.0)
    assert status == OrderStatus.BelowMinimum


def test_fill_market_sell_under_min_notional_at_slipped_price_below_minimum_no_fill():
    # the venue refuses a sell under `quote_min_size` (issue 14: 16.9 DOGE sold for 0.99 USD);
    # the notional is taken at the fill price: 0.01 x 99.8 (20 bps slippage) = 0.998 < 1
    slip = NO_SLIP._replace(slippage=0.002)
    order = order_record(Side.Sell, OrderType.Market, qty=0.01)
    under = _fill(order, held=0.01, min_notional=1.0, fill=slip)
    assert under[:2] == (OrderStatus.BelowMinimum, 0.0)
    # at the minimum it fills: 0.01 x 100 = 1.0
    status, qty, price, *_ = _fill(order, held=0.01, min_notional=1.0)
    assert (status, qty, price) == (OrderStatus.Filled, 0.01, 100.0)
    # the position held, not the order, is what would sell: 0.02 ordered, 0.009 held
    big = order_record(Side.Sell, OrderType.Market, qty=0.02)
    assert _fill(big, held=0.009, min_notional=1.0)[0] == OrderStatus.BelowMinimum
    # and under `base_min_size`
    assert _fill(order, held=0.01, min_size=0.02)[0] == OrderStatus.BelowMinimum


def test_fill_post_only_sell_under_min_notional_at_limit_below_minimum_before_any_fill():
    # 0.0099 x 101 = 0.9999 < 1: refused at creation, though the bar trades through the limit
    order = order_record(Side.Sell, OrderType.LimitPostOnly, 0.0099, 0.0, 101.0)
    status, qty, _, _, maker = _fill(order, h=101.5, held=1.0, min_notional=1.0)
    assert (status, qty, maker) == (OrderStatus.BelowMinimum, 0.0, 1)
    at_min = order_record(Side.Sell, OrderType.LimitPostOnly, 0.01, 0.0, 101.0)
    filled = _fill(at_min, h=101.5, held=1.0, min_notional=1.0)
    assert filled[:3] == (OrderStatus.Filled, 0.01, 101.0)


def test_fill_post_only_buy_cost_above_cash_insufficient_cash():
    status, qty, *_ = _fill(
        order_record(Side.Buy, OrderType.LimitPostOnly, 2.0, 0.0, 99.0), cash=198.0
    )
    assert (status, qty) == (OrderStatus.InsufficientCash, 0.0)


def test_fill_any_order_nan_open_no_bar():
    for order in (
        order_record(Side.Buy, OrderType.Market, notional=100.0),
        order_record(Side.Sell, OrderType.LimitPostOnly, 1.0, 0.0, 99.0),
    ):
        status, qty, *_ = _fill(order, o=np.nan, h=np.nan, lo=np.nan, held=1.0)
        assert (status, qty) == (OrderStatus.NoBar, 0.0)


# --- kernel == reference --------------------------------------------------------------------

_price = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
_frac = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@st.composite
def _fill_cases(draw):
    side = draw(st.sampled_from((Side.Buy, Side.Sell)))
    order_type = draw(st.sampled_from((OrderType.Market, OrderType.LimitPostOnly)))
    o = draw(st.one_of(_price, st.just(math.nan)))
    base = o if math.isfinite(o) else 100.0
    high = base * (1.0 + draw(st.floats(0.0, 0.2)))
    low = base * (1.0 - draw(st.floats(0.0, 0.2)))
    limit = base * (1.0 + draw(st.floats(-0.25, 0.25)))
    order = order_record(
        side, order_type,
        qty=draw(st.floats(0.0, 1e3)), notional=draw(st.floats(0.0, 1e5)),
        limit_price=limit if order_type == OrderType.LimitPostOnly else math.nan,
    )  # fmt: skip
    fill = FillParams(
        slippage=draw(st.floats(0.0, 0.01)),
        slippage_vol_mult=draw(st.floats(0.0, 1.0)),
        partial_fills=draw(st.booleans()),
        min_fill_fraction=draw(st.floats(0.0, 1.0)),
    )
    params = PARAMS._replace(
        maker_fee=draw(st.floats(0.0, 0.01)), taker_fee=draw(st.floats(0.0, 0.01))
    )
    return (
        order, o, high, low, draw(st.one_of(st.floats(0.0, 0.1), st.just(math.nan))),
        draw(st.floats(0.0, 1e5)), draw(st.floats(0.0, 1e3)),
        draw(st.sampled_from((0.0, 1e-8, 1.0))), draw(st.sampled_from((0.0, 1.0, 10.0))),
        draw(st.sampled_from((0.0, 1e-8, 0.01, 0.1, 1.0))), params, fill,
        draw(_frac), draw(_frac),
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(case=_fill_cases())
def test_fill_order_nb_random_cases_equals_reference(case):
    got = fill_order(*case)
    want = fill_order_ref(*case)
    assert got[0] == want[0]
    assert got[4] == want[4]
    np.testing.assert_allclose(got[1:4], want[1:4], rtol=1e-12, atol=0.0)
    qty, price, fee = got[1:4]
    assert qty >= 0.0
    assert fee >= 0.0
    if got[0] in (OrderStatus.Filled, OrderStatus.Partial) and case[0]["side"] == Side.Sell:
        assert qty <= case[6]  # never sells more than held


# --- the fill model's draws: a pure function of the order's key ---

_KEYS = {
    "seed": st.integers(0, 2**62),
    "bar_no": st.integers(0, 2**40),
    "symbol_key": st.integers(0, 2**62),
    "side": st.integers(0, 1),
    "purpose": st.integers(0, 8),
}


@settings(max_examples=300, deadline=None)
@given(**_KEYS)
def test_fill_draws_nb_equals_reference_and_lies_in_unit_interval(
    seed, bar_no, symbol_key, side, purpose
):
    got = fill_draws_nb(seed, bar_no, symbol_key, side, purpose)
    assert got == fill_draws_ref(seed, bar_no, symbol_key, side, purpose)
    assert all(0.0 <= u < 1.0 for u in got)


@settings(max_examples=100, deadline=None)
@given(**_KEYS, field=st.sampled_from(("seed", "bar_no", "symbol_key", "side", "purpose")))
def test_fill_draws_change_with_any_part_of_the_key(seed, bar_no, symbol_key, side, purpose, field):
    key = {"seed": seed, "bar_no": bar_no, "symbol_key": symbol_key, "side": side,
           "purpose": purpose}  # fmt: skip
    other = {**key, field: key[field] + 1}
    assert fill_draws_nb(**key) != fill_draws_nb(**other)


def test_fill_draws_are_uniform_enough():
    # 20,000 consecutive bars of one symbol: mean 1/2, variance 1/12, no lag-1 correlation
    u = np.array([fill_draws_nb(42, b, 12345, 0, 1) for b in range(20_000)])
    for column in u.T:
        assert abs(column.mean() - 0.5) < 0.01
        assert abs(column.var() - 1 / 12) < 0.005
        assert abs(np.corrcoef(column[:-1], column[1:])[0, 1]) < 0.03
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
