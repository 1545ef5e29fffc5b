"""Fixtures for the live bridge: throwaway keys and one TLS exchange simulator per session.

The Coinbase SDK reads COINBASE_API_KEY / COINBASE_API_SECRET at import time, so every
COINBASE_* and CB_* variable is removed before anything imports `coinbase`.
"""

import os

for _name in [k for k in os.environ if k.startswith(("COINBASE_", "CB_"))]:
    del os.environ[_name]

import datetime as dt  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from live_bridge.coinbase import CoinbaseAdapter, CoinbaseCredentials  # noqa: E402
from live_bridge.exchange_sim import (  # noqa: E402
    ExchangeEngine,
    ExchangeServer,
    FaultPlan,
    SteppedClock,
)

HOUR_NS = 3600 * 1_000_000_000
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
START_NS = int(START.timestamp()) * 1_000_000_000
N_BARS = 200
T0_NS = START_NS + 100 * HOUR_NS  # the tests start at the open of bar 100
SYMBOLS = {"BTC-USD": 40_000.0, "ETH-USD": 2_000.0, "SOL-USD": 100.0}
BALANCES = {"USD": 100_000.0, "ETH": 5.0}


@dataclass(frozen=True)
class ApiKey:
    """A throwaway CDP key: name, private PEM (EC PRIVATE KEY) and public PEM."""

    name: str
    private_pem: str
    public_pem: str


def make_key(name: str) -> ApiKey:
    """Return a fresh P-256 key in the SDK's formats."""
    k = ec.generate_private_key(ec.SECP256R1())
    pem = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    pub = (
        k.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return ApiKey(name, pem, pub)


def make_bars(seed: int = 7) -> pl.DataFrame:
    """Return 3 symbols x 200 hourly bars of a seeded random walk (bar schema)."""
    rng = np.random.default_rng(seed)
    frames = []
    ts = [START + dt.timedelta(hours=i) for i in range(N_BARS)]
    for symbol, p0 in SYMBOLS.items():
        rets = rng.normal(0.0, 0.01, N_BARS)
        close = p0 * np.exp(np.cumsum(rets))
        open_ = np.concatenate([[p0], close[:-1]])
        wick = np.abs(rng.normal(0.0, 0.004, (2, N_BARS))) + 0.001
        high = np.maximum(open_, close) * (1 + wick[0])
        low = np.minimum(open_, close) * (1 - wick[1])
        frames.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "symbol": symbol,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.uniform(1.0, 100.0, N_BARS),
                }
            )
        )
    return (
        pl.concat(frames)
        .with_columns(pl.col("ts").dt.cast_time_unit("ns").dt.replace_time_zone("UTC"))
        .sort("ts", "symbol")
    )


@pytest.fixture(name="bars", scope="session")
def fixture_bars() -> pl.DataFrame:
    return make_bars()


@pytest.fixture(name="api_key", scope="session")
def fixture_api_key() -> ApiKey:
    return make_key(
        "organizations/00000000-0000-0000-0000-000000000000/apiKeys/"
        "11111111-1111-1111-1111-111111111111"
    )


@pytest.fixture(name="clock", scope="session")
def fixture_clock() -> SteppedClock:
    return SteppedClock(T0_NS)


@pytest.fixture(name="server", scope="session")
def fixture_server(
    bars: pl.DataFrame, clock: SteppedClock, api_key: ApiKey
) -> Iterator[ExchangeServer]:
    engine = ExchangeEngine(bars, clock, balances=BALANCES, seed=1)
    with ExchangeServer(engine, FaultPlan(), port=0, tls=True) as server:
        server.register_api_key(api_key.name, api_key.public_pem)
        yield server


@pytest.fixture(name="sim")
def fixture_sim(server: ExchangeServer, clock: SteppedClock) -> Iterator[ExchangeServer]:
    """The session server, reset: fresh engine state, no faults, clock at T0."""
    clock.set(T0_NS)
    server.engine.reset()
    server.engine.configure(slippage_bps=0.0, partial_fill_fraction=None)
    server.faults.clear()
    yield server
    server.faults.clear()


@dataclass
class SleepRecorder:
    """Injected `sleep` that records the requested delays without sleeping."""

    delays: list[float]

    def __call__(self, secs: float) -> None:
        self.delays.append(secs)


@pytest.fixture(name="sleeps")
def fixture_sleeps() -> SleepRecorder:
    return SleepRecorder([])


def build_adapter(
    server: ExchangeServer, key: ApiKey, sleep: SleepRecorder, **kwargs: object
) -> CoinbaseAdapter:
    """Return an adapter on `server` with quick timeouts and recorded backoff sleeps."""
    creds = CoinbaseCredentials(api_key=key.name, api_secret=key.private_pem)
    options = {
        "timeout_secs": 2.0,
        "max_retries": 3,
        "backoff_base_secs": 0.01,
        "backoff_cap_secs": 0.5,
        "seed": 0,
    }
    options.update(kwargs)
    return CoinbaseAdapter(
        creds, base_url=server.base_url, ca_path=server.ca_path, sleep=sleep, **options
    )


@pytest.fixture(name="adapter")
def fixture_adapter(
    sim: ExchangeServer, api_key: ApiKey, sleeps: SleepRecorder
) -> Iterator[CoinbaseAdapter]:
    with build_adapter(sim, api_key, sleeps) as adapter:
        yield adapter
