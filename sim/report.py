"""The JSON run report: metadata, summary, regression keys, no-trade reasons and trades.

The report is canonical JSON (sorted keys, fixed float formatting, no wall-clock time), so the
same seed, data and config give a byte-identical file.
"""

from __future__ import annotations

import json
import math
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import polars as pl

from signals.config import PlatformConfig
from sim.engine import BacktestResult, reason_table
from sim.metrics import REGRESSION_KEYS, summary_metrics

SCHEMA_VERSION = 1
_PACKAGES = ("247trader", "numpy", "numba", "polars", "pydantic")


def package_versions() -> dict[str, str]:
    """Return installed versions of the packages that decide results."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(repo_dir: Path | None = None) -> str | None:
    """Return the checkout's commit (suffixed `-dirty` with local changes), or None."""
    cwd = repo_dir or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _trades(frame: pl.DataFrame) -> list[dict[str, Any]]:
    rows = frame.with_columns(
        pl.col("entry_ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ"),
        pl.col("exit_ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ"),
    )
    return rows.to_dicts()


def build_report(
    result: BacktestResult, config: PlatformConfig, data_hash: str, data_source: str
) -> dict[str, Any]:
    """Return the report as a JSON-ready dict."""
    summary = summary_metrics(result)
    panel = result.panel
    start = (
        pl.Series([panel.ts_ns[0]])
        .cast(pl.Datetime("ns", "UTC"))
        .dt.to_string("%Y-%m-%dT%H:%M:%SZ")[0]
    )
    end = (
        pl.Series([panel.ts_ns[-1]])
        .cast(pl.Datetime("ns", "UTC"))
        .dt.to_string("%Y-%m-%dT%H:%M:%SZ")[0]
    )
    empty_universe_bars = int((result.inputs.block_reason != 0).all(axis=1).sum())
    report = {
        "schema_version": SCHEMA_VERSION,
        "metadata": {
            "seed": config.backtest.seed,
            "config_hash": config.config_hash(),
            "data_hash": data_hash,
            "data_source": data_source,
            "profile": config.policy.profile,
            "strategies": list(result.inputs.strategy_names),
            "symbols": list(panel.symbols),
            "n_bars": panel.n_bars,
            "bar_minutes": result.inputs.bar_ns // 60_000_000_000,
            "start": start,
            "end": end,
            "initial_cash_usd": result.initial_cash_usd,
            "packages": package_versions(),
            "git_commit": git_commit(),
        },
        "summary": summary,
        "regression_keys": {key: summary[key] for key in REGRESSION_KEYS},
        "no_trade_reasons": reason_table(result),
        "empty_universe_bars": empty_universe_bars,
        "trades": _trades(result.trades),
    }
    return _clean(report)


def dumps_report(report: dict[str, Any]) -> str:
    """Return the canonical JSON text of `report`."""
    return json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n"


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write `report` as canonical JSON to `path` (parents created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps_report(report))
    return out
