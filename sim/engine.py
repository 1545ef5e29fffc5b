"""The backtest driver: panel + config -> stage 1 -> `simulate` -> polars frames."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from signals.bars import Panel
from signals.config import PlatformConfig, check_bar_interval, check_config_symbols
from signals.decision.params import product_status_codes, step_params, step_static
from signals.enums import PURPOSE_NAMES, REASON_NAMES, Side
from signals.errors import DataError
from signals.pipeline import DecisionInputs, decision_inputs, infer_bar_ns
from signals.records import Combined, Guards, Market
from sim.enums import ORDER_STATUS_NAMES, FillParams
from sim.nb import new_curves, simulate


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run produced. Frames are polars; curves are per bar at the bar's close.

    With `run_backtest(..., trade_start=...)` the curve starts at row `trade_start_row` of the
    panel (the first bar that may trade); `inputs` are those the simulator ran on (no
    proposal before that row).
    """

    panel: Panel
    inputs: DecisionInputs
    orders: pl.DataFrame
    fills: pl.DataFrame
    trades: pl.DataFrame
    curve: pl.DataFrame  # ts, equity_usd, cash_usd, exposure_frac, regime
    reason_counts: np.ndarray  # int64[K, S, N_REASONS]
    initial_cash_usd: float
    final_account: np.ndarray
    final_positions: np.ndarray
    trade_start_row: int = 0

    def to_vectorbt(self, **kwargs: Any) -> Any:
        """Return a vectorbt `Portfolio` replaying this run's fills (for vectorbt analytics).

        Each fill becomes an order of `Portfolio.from_orders` on its bar and symbol: signed
        size (buy +, sell -), the fill price, its fee in USD as `fixed_fees`; one portfolio
        over all symbols with shared cash, sells first within a bar (`call_seq="auto"`), over
        the curve's bars and closes, starting with the run's cash. Its value and its closed
        positions equal this run's equity curve and trades (tests/sim/test_ergonomics.py).
        `kwargs` go to `from_orders` (e.g. `freq`). Needs vectorbt (a dev dependency).
        """
        import warnings  # noqa: PLC0415

        import pandas as pd  # noqa: PLC0415
        import vectorbt as vbt  # noqa: PLC0415

        row0 = self.trade_start_row
        ts_ns = self.panel.ts_ns[row0:]
        n_bars, n_symbols = ts_ns.shape[0], len(self.panel.symbols)
        size = np.full((n_bars, n_symbols), np.nan)
        price = np.full((n_bars, n_symbols), np.nan)
        fixed_fees = np.zeros((n_bars, n_symbols))
        fills = self.fills
        if fills.height:
            bar = np.searchsorted(ts_ns, fills["ts"].dt.epoch("ns").to_numpy())
            col = np.array([self.panel.symbols.index(s) for s in fills["symbol"]])
            if np.unique(bar * n_symbols + col).shape[0] != fills.height:
                msg = "`to_vectorbt` needs at most one fill per bar and symbol, was more"
                raise ValueError(msg)
            sign = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0)
            size[bar, col] = sign * fills["qty"].to_numpy()
            price[bar, col] = fills["price"].to_numpy()
            fixed_fees[bar, col] = fills["fee_usd"].to_numpy()
        index = pd.DatetimeIndex(pd.to_datetime(ts_ns, utc=True), name="ts")
        close = pd.DataFrame(self.panel.close[row0:], index=index, columns=list(self.panel.symbols))
        options: dict[str, Any] = {
            "freq": pd.Timedelta(self.inputs.bar_ns, unit="ns"),
            "cash_sharing": True,
            "group_by": True,
            "call_seq": "auto",
        }
        options.update(kwargs)
        with warnings.catch_warnings():
            # vectorbt 1.x: numba and pandas deprecations from inside its own code
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return vbt.Portfolio.from_orders(
                close, size, price=price, fees=0.0, fixed_fees=fixed_fees,
                init_cash=self.initial_cash_usd, **options,
            )  # fmt: skip


def fill_params(config: PlatformConfig) -> FillParams:
    """Return the fill model's parameters for `config`."""
    execution = config.policy.execution
    return FillParams(
        slippage=execution.slippage_bps / 1e4,
        slippage_vol_mult=execution.slippage_vol_mult,
        partial_fills=execution.partial_fills,
        min_fill_fraction=execution.min_fill_fraction,
    )


def market_of(panel: Panel, inputs: DecisionInputs) -> Market:
    """Return the `Market` bundle of `panel` with stage 1's bar length and volatility."""
    return Market(
        panel.ts_ns, inputs.bar_ns, panel.open, panel.high, panel.low, panel.close, inputs.vol
    )


def proposals_of(inputs: DecisionInputs) -> Combined:
    """Return the `Combined` bundle of stage 1's combined proposals."""
    return Combined(inputs.weight, inputs.stop_pct, inputs.take_pct, inputs.strategy)


def guards_of(inputs: DecisionInputs, product_status: np.ndarray) -> Guards:
    """Return the `Guards` bundle of stage 1 and the int64[S] `product_status` codes."""
    return Guards(inputs.block_reason, inputs.regime, product_status)


def _ts(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.Datetime("ns", "UTC"))


def run_backtest(
    panel: Panel,
    config: PlatformConfig,
    inputs: DecisionInputs | None = None,
    *,
    allow_missing_symbols: bool = False,
    trade_start: datetime | int | None = None,
) -> BacktestResult:
    """Run `config` over `panel` with the config's seed and starting cash.

    Without `inputs` it first checks the config's symbols against the panel's
    (`check_config_symbols`: a `ConfigError`, or with `allow_missing_symbols` a warning for
    absent universe symbols), then computes stage 1. A caller passing `inputs` computed them
    from this panel and config and checked the symbols first, as `sim run` does.

    `trade_start` (a tz-aware datetime, or UTC epoch ns): the bars before it only warm up the
    indicators and the state (day/week, peak equity); no proposal is taken on them, as in
    `sim sweep`'s walk-forward, so nothing is decided before it and the first fill is on a
    later bar. The curve, and so the metrics, start at the first bar at or after it
    (`BacktestResult.trade_start_row`); orders, fills and trades are the run's.

    A config whose lookbacks were given as durations (`48h`) needs data whose bars are
    `backtest.bar_interval` apart (`check_bar_interval`: a `ConfigError` otherwise).
    """
    bar_ns = infer_bar_ns(panel.ts_ns) if inputs is None else inputs.bar_ns
    check_bar_interval(config, bar_ns)
    if inputs is None:
        check_config_symbols(config, panel.symbols, allow_missing=allow_missing_symbols)
        inputs = decision_inputs(panel, config, bar_ns)
    row0 = 0
    if trade_start is not None:
        row0 = _trade_start_row(panel, trade_start)
        inputs = suppress_before(inputs, row0)
    symbols = panel.symbols
    static = step_static(config, symbols, inputs.strategy_names)
    out = simulate(
        market_of(panel, inputs), proposals_of(inputs),
        guards_of(inputs, product_status_codes(config, symbols)), step_params(config), static,
        fill_params(config), float(config.backtest.initial_cash_usd), int(config.backtest.seed),
        new_curves(panel.close.shape[0]),
    )  # fmt: skip
    orders, status, fills, trades, equity, cash, exposure, reasons, account, positions = out
    names = inputs.strategy_names or ("none",)
    sym = np.array(symbols)

    def side_names(side: np.ndarray) -> list[str]:
        return ["buy" if s == Side.Buy else "sell" for s in side]

    orders_frame = pl.DataFrame(
        {
            "ts": _ts(orders["bar_no"] * inputs.bar_ns),
            "symbol": sym[orders["symbol"]],
            "side": side_names(orders["side"]),
            "order_type": ["market" if t == 0 else "limit_post_only" for t in orders["order_type"]],
            "purpose": [PURPOSE_NAMES[p] for p in orders["purpose"]],
            "strategy": [names[k] if k >= 0 else "" for k in orders["strategy"]],
            "qty": orders["qty"],
            "notional_usd": orders["notional"],
            "limit_price": orders["limit_price"],
            "ref_price": orders["ref_price"],
            "status": [ORDER_STATUS_NAMES[s] for s in status],
        },
        schema_overrides={"symbol": pl.String},
    )
    fills_frame = pl.DataFrame(
        {
            "ts": _ts(panel.ts_ns[fills["bar"]]),
            "order_id": fills["order_id"],
            "symbol": sym[fills["symbol"]],
            "side": side_names(fills["side"]),
            "purpose": [PURPOSE_NAMES[p] for p in fills["purpose"]],
            "qty": fills["qty"],
            "price": fills["price"],
            "fee_usd": fills["fee"],
            "liquidity": ["maker" if m else "taker" for m in fills["is_maker"]],
        },
        schema_overrides={"symbol": pl.String},
    )
    trades_frame = pl.DataFrame(
        {
            "symbol": sym[trades["symbol"]],
            "strategy": [names[k] if k >= 0 else "" for k in trades["strategy"]],
            "entry_ts": _ts(trades["entry_bar_no"] * inputs.bar_ns),
            "exit_ts": _ts(trades["exit_bar_no"] * inputs.bar_ns),
            "qty": trades["qty"],
            "entry_price": trades["entry_price"],
            "exit_price": trades["exit_price"],
            "pnl_usd": trades["pnl_usd"],
            "fees_usd": trades["fees_usd"],
            "exit_reason": [PURPOSE_NAMES[p] for p in trades["exit_purpose"]],
        },
        schema_overrides={"symbol": pl.String},
    )
    curve = pl.DataFrame(
        {
            "ts": _ts(panel.ts_ns[row0:]),
            "equity_usd": equity[row0:],
            "cash_usd": cash[row0:],
            "exposure_frac": exposure[row0:],
            "regime": inputs.regime[row0:],
        }
    )
    return BacktestResult(
        panel=panel,
        inputs=inputs,
        orders=orders_frame,
        fills=fills_frame,
        trades=trades_frame,
        curve=curve,
        reason_counts=reasons,
        initial_cash_usd=float(config.backtest.initial_cash_usd),
        final_account=account,
        final_positions=positions,
        trade_start_row=row0,
    )


def _trade_start_row(panel: Panel, trade_start: datetime | int) -> int:
    if isinstance(trade_start, datetime):
        if trade_start.tzinfo is None:
            msg = f"`trade_start` must be a tz-aware datetime (UTC), was naive {trade_start}"
            raise DataError(msg)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        start_ns = (trade_start - epoch) // timedelta(microseconds=1) * 1000
    else:
        start_ns = int(trade_start)
    row = int(np.searchsorted(panel.ts_ns, start_ns, side="left"))
    if row >= panel.n_bars:
        msg = (
            f"`trade_start` must be at or before the last bar ({int(panel.ts_ns[-1])} ns), "
            f"was {start_ns} ns"
        )
        raise DataError(msg)
    return row


def suppress_before(inputs: DecisionInputs, row: int) -> DecisionInputs:
    """Return `inputs` with no proposal before `row` (weights NaN, no strategy, NaN stop/take).

    What `run_backtest(..., trade_start=...)` runs on; `[1, S]` stop/take rows (constants over
    the bars) stay as they are, since only a proposal reads them.
    """
    if row <= 0:
        return inputs
    weight = inputs.weight.copy()
    weight[:row] = np.nan
    changes: dict[str, np.ndarray] = {"weight": weight}
    for name, fill in (("stop_pct", np.nan), ("take_pct", np.nan), ("strategy", -1)):
        arr = getattr(inputs, name)
        if arr.shape[0] > 1:
            arr = arr.copy()
            arr[:row] = fill
            changes[name] = arr
    return replace(inputs, **changes)  # type: ignore[arg-type]


def reason_table(result: BacktestResult) -> dict[str, dict[str, dict[str, int]] | dict[str, int]]:
    """Return no-trade reason counts: `total`, `by_strategy` and `by_symbol` (zeros omitted)."""
    counts = result.reason_counts
    names = result.inputs.strategy_names or ("none",)
    total = counts.sum(axis=(0, 1))
    by_strategy = counts.sum(axis=1)
    by_symbol = counts.sum(axis=0)
    return {
        "total": {REASON_NAMES[r]: int(c) for r, c in enumerate(total) if c and r},
        "by_strategy": {
            names[k]: {REASON_NAMES[r]: int(c) for r, c in enumerate(row) if c and r}
            for k, row in enumerate(by_strategy)
            if k < len(names)
        },
        "by_symbol": {
            result.panel.symbols[s]: {REASON_NAMES[r]: int(c) for r, c in enumerate(row) if c and r}
            for s, row in enumerate(by_symbol)
        },
    }
