"""Fixtures of the parity tests: the shipped data set served by the exchange simulator.

The Coinbase SDK reads COINBASE_* at import time, so they are removed before it is imported.
"""

import os

for _name in [k for k in os.environ if k.startswith(("COINBASE_", "CB_"))]:
    del os.environ[_name]

from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from live_bridge.coinbase import CoinbaseAdapter, CoinbaseCredentials  # noqa: E402
from live_bridge.config import LiveConfig  # noqa: E402
from live_bridge.daemon import LiveDaemon  # noqa: E402
from live_bridge.exchange_sim import (  # noqa: E402
    ExchangeEngine,
    ExchangeServer,
    FaultPlan,
    SteppedClock,
)
from live_bridge.store import StateStore  # noqa: E402
from signals.bars import load_bars, to_panel  # noqa: E402
from signals.config import PlatformConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEY_NAME = "organizations/00000000-0000-0000-0000-000000000000/apiKeys/parity"


def parity_config() -> PlatformConfig:
    """The default profile (full risk engine) with fills the venue can reproduce exactly.

    Slippage and partial fills are the backtest's model of an uncertain venue; against the
    simulator the venue is known, so both are off on both sides.
    """
    config = load_config(ROOT / "config")
    execution = config.policy.execution.model_copy(
        update={"slippage_bps": 0.0, "slippage_vol_mult": 0.0, "partial_fills": False}
    )
    policy = config.policy.model_copy(update={"execution": execution})
    return config.model_copy(update={"policy": policy})


def venue_products(config: PlatformConfig, symbols: tuple[str, ...]) -> dict[str, dict]:
    """Return the simulator's product overrides equal to the backtest's product config."""
    out = {}
    for symbol in symbols:
        p = config.universe.product(symbol)
        out[symbol] = {
            "base_increment": f"{p.base_increment:.10f}".rstrip("0").rstrip("."),
            "quote_increment": f"{p.quote_increment:.10f}".rstrip("0").rstrip("."),
            "base_min_size": f"{p.base_min_size:.10f}".rstrip("0").rstrip("."),
            "quote_min_size": f"{p.min_notional_usd:.10f}".rstrip("0").rstrip("."),
        }
    return out


@dataclass
class Venue:
    """A running simulator plus what a daemon needs to talk to it."""

    bars: pl.DataFrame
    clock: SteppedClock
    engine: ExchangeEngine
    server: ExchangeServer
    faults: FaultPlan
    private_pem: str


@pytest.fixture(name="shipped_bars", scope="session")
def fixture_shipped_bars() -> pl.DataFrame:
    return load_bars(ROOT / "data" / "sample_hourly.parquet")


@pytest.fixture(name="venue")
def fixture_venue(shipped_bars: pl.DataFrame) -> Iterator[Venue]:
    config = parity_config()
    panel = to_panel(shipped_bars)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    clock = SteppedClock(int(panel.ts_ns[0]))
    execution = config.policy.execution
    engine = ExchangeEngine(
        shipped_bars, clock, products=venue_products(config, panel.symbols),
        balances={"USD": config.backtest.initial_cash_usd},
        maker_fee_rate=execution.maker_fee_bps / 1e4, taker_fee_rate=execution.taker_fee_bps / 1e4,
    )  # fmt: skip
    faults = FaultPlan()
    with ExchangeServer(engine, faults, port=0, tls=True) as server:
        server.register_api_key(KEY_NAME, pub.decode())
        yield Venue(shipped_bars, clock, engine, server, faults, pem)


def venue_adapter(venue: Venue, live: LiveConfig) -> CoinbaseAdapter:
    """Return an adapter on `venue` for `live`, whose product cache follows the stepped clock."""
    return CoinbaseAdapter(
        CoinbaseCredentials(api_key=KEY_NAME, api_secret=venue.private_pem),
        base_url=live.base_url, ca_path=live.ca_path, timeout_secs=live.timeout_secs,
        max_retries=live.max_retries, backoff_base_secs=0.001, backoff_cap_secs=0.01,
        monotonic=lambda: venue.clock.now_ns() / 1e9, seed=1,
    )  # fmt: skip


def make_daemon(venue: Venue, tmp_path: Path, config: PlatformConfig, symbols) -> LiveDaemon:
    """Return a LIVE daemon on `venue` whose clock and product cache follow the stepped clock."""
    live = LiveConfig(
        mode="LIVE", read_only=False, symbols=list(symbols), state_path=str(tmp_path / "s.db"),
        base_url=venue.server.base_url, ca_path=str(venue.server.ca_path), timeout_secs=5.0,
        max_retries=4, max_quote_age_seconds=60.0, min_book_depth_usd=1_000.0,
    )  # fmt: skip
    adapter = venue_adapter(venue, live)
    return LiveDaemon(config, live, adapter, StateStore(live.state_path), now_ns=venue.clock.now_ns)


def orders_by_bar(frame: pl.DataFrame, bar_ns: int) -> dict[int, list[tuple]]:
    """Group a backtest orders frame into {bar_no: [(symbol, side, type, qty, notional, limit)]}."""
    out: dict[int, list[tuple]] = {}
    for row in frame.iter_rows(named=True):
        bar_no = int(row["ts"].timestamp()) * 1_000_000_000 // bar_ns
        limit = row["limit_price"]
        out.setdefault(bar_no, []).append(
            (
                row["symbol"], 1 if row["side"] == "buy" else -1,
                0 if row["order_type"] == "market" else 1, row["qty"], row["notional_usd"],
                None if limit is None or np.isnan(limit) else limit,
            )
        )  # fmt: skip
    return out


def daemon_orders(rows) -> list[tuple]:
    """Return the daemon's order rows as `orders_by_bar` tuples."""
    return [(r.symbol, r.side, r.order_type, r.qty, r.notional, r.limit_price) for r in rows]


def same_orders(a: list[tuple], b: list[tuple]) -> bool:
    """Return True when two bars' orders match: symbol, side, type exact; sizes to 1e-12 rel."""
    if len(a) != len(b):
        return False
    for x, y in zip(sorted(a, key=str), sorted(b, key=str), strict=True):
        if x[:3] != y[:3]:
            return False
        for u, v in zip(x[3:], y[3:], strict=True):
            if (u is None) != (v is None):
                return False
            if u is not None and not np.isclose(u, v, rtol=1e-12, atol=0.0):
                return False
    return True
