"""Shared helpers of the simulator tests: configs, panels from arrays, order records."""

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

from signals.bars import Panel
from signals.config import PlatformConfig, load_config, parse_model
from signals.records import ORDER_DT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT_ROOT / "data" / "sample_hourly.parquet"
HOUR_NS = 3_600 * 1_000_000_000
EPOCH_NS = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z

# One long-only signal strategy, risk caps off, no slippage, market fills at the next open:
# the configuration in which the simulator must equal vectorbt's `Portfolio.from_signals`.
VECTORBT_CONFIG = {
    "policy": {
        "risk": {
            "max_total_at_risk_pct": 100, "max_theme_at_risk_pct": 100,
            "max_asset_at_risk_pct": 100, "max_open_positions": 10, "stop_loss_pct": 0,
            "cooldown_after_fill_bars": 0, "cooldown_after_stop_bars": 0,
            "daily_loss_stop_pct": 100, "weekly_loss_stop_pct": 100, "max_drawdown_pct": 100,
            "auto_trim": False, "regime_multipliers": {"bull": 1, "chop": 1, "bear": 1, "crash": 1},
        },
        "execution": {
            "maker_fee_bps": 40, "taker_fee_bps": 60, "entry_order_type": "market",
            "exit_order_type": "market", "stop_order_type": "market", "slippage_bps": 0,
            "slippage_vol_mult": 0, "partial_fills": False,
        },
    },
    "universe": {
        "min_quote_volume_usd": 0, "max_spread_bps": 1000, "bad_tick_volume_ratio": 1e-12,
        "red_flag_move_pct": 100,
        # a one-bar volume window: no universe warm-up blocking entries in the first 23 bars
        "quote_volume_window_bars": 1,
        "products": {
            "default": {
                "base_increment": 0, "quote_increment": 0, "base_min_size": 0,
                "min_notional_usd": 0,
            }
        },
    },
    "strategies": {
        "strategies": {
            "ma_cross": {
                "enabled": True, "budget": {"max_at_risk_pct": 100},
                "params": {"fast": 10, "slow": 50, "target_weight_pct": 100},
            }
        }
    },
}  # fmt: skip


def vectorbt_config(fast: int = 10, slow: int = 50, fee_bps: float = 60.0) -> PlatformConfig:
    """Return the vectorbt-equivalent config with the given windows and taker fee."""
    data = copy.deepcopy(VECTORBT_CONFIG)
    data["policy"]["execution"]["taker_fee_bps"] = fee_bps
    data["strategies"]["strategies"]["ma_cross"]["params"].update(fast=fast, slow=slow)
    return parse_model(PlatformConfig, data, "test")


def default_config_with(overrides: dict | None = None, **ma_cross: float) -> PlatformConfig:
    """Return the shipped default config (config/) with `ma_cross` enabled and `overrides`.

    `overrides` is a nested dict merged into the config's dump (e.g. execution slippage);
    `ma_cross` keyword arguments update that strategy's parameters.
    """
    data = load_config(PROJECT_ROOT / "config").model_dump(mode="json")
    entry = data["strategies"]["strategies"]["ma_cross"]
    entry["enabled"] = True
    entry["budget"]["max_new_trades_per_bar"] = 3
    entry["params"].update({"fast": 3, "slow": 12, "target_weight_pct": 5, **ma_cross})

    def merge(into: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(data, overrides or {})
    return parse_model(PlatformConfig, data, "test")


def panel_from_arrays(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray | None = None,
    symbols: tuple[str, ...] | None = None,
) -> Panel:
    """Return an hourly `Panel` from `[T, S]` (or `[T]`) arrays starting 2024-01-01 UTC."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close)]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    n_bars, n_symbols = arrays[3].shape
    if volume is None:
        volume = np.full((n_bars, n_symbols), 1e6)
    volume = np.asarray(volume, dtype=np.float64).reshape(n_bars, n_symbols)
    if symbols is None:
        symbols = tuple(f"X{chr(65 + s)}-USD" for s in range(n_symbols))
    o, h, lo, c = (np.ascontiguousarray(a) for a in arrays)
    return Panel(
        ts_ns=EPOCH_NS + HOUR_NS * np.arange(n_bars, dtype=np.int64),
        symbols=symbols, open=o, high=h, low=lo, close=c, volume=np.ascontiguousarray(volume),
    )  # fmt: skip


def ohlc_from_close(close: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Return `(open, high, low, close)` around a close path: open near the previous close."""
    rng = np.random.default_rng(seed)
    close = np.asarray(close, dtype=np.float64)
    prev = np.vstack([close[:1], close[:-1]]) if close.ndim == 2 else np.r_[close[0], close[:-1]]
    open_ = prev * np.exp(rng.normal(0.0, 0.002, close.shape))
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * np.exp(np.abs(rng.normal(0.0, 0.005, close.shape)))
    low = bottom * np.exp(-np.abs(rng.normal(0.0, 0.005, close.shape)))
    return open_, high, low, close


def order_record(
    side: int,
    order_type: int,
    qty: float = 0.0,
    notional: float = 0.0,
    limit_price: float = np.nan,
) -> np.void:
    """Return one `ORDER_DT` record (symbol 0, decision bar 0)."""
    rec = np.zeros(1, dtype=ORDER_DT)
    rec["side"] = side
    rec["order_type"] = order_type
    rec["qty"] = qty
    rec["notional"] = notional
    rec["limit_price"] = limit_price
    return rec[0]


@pytest.fixture(name="parity_config", scope="session")
def fixture_parity_config() -> PlatformConfig:
    return vectorbt_config()


# --------------------------------------------------------------------------------------------
# MLflow stores (test_tracking.py, test_tracking_child.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", name="template_db")
def fixture_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a sqlite DB with MLflow's schema already migrated (done once per session)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(name="tracking_uri")
def fixture_tracking_uri(template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Return a sqlite URI to a private copy of the template DB; clear MLflow/sim env vars."""
    from sim.tracking import EXPERIMENT_ENV

    for var in ("MLFLOW_TRACKING_URI", EXPERIMENT_ENV):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(template_db, db)
    return f"sqlite:///{db}"
