"""MLflow logging of a sweep: one parent run, the results table as an artifact, top-K children.

Per-run logging costs 37-43 ms on sqlite (shared/notes/infra-findings.md §1.2), about as much
as a whole backtest, so a sweep never logs one run per combination. It logs:

* one parent run (`sweep-<config_hash>`, tag `sim.kind=sweep`): the grid and base config as
  params, the best row's metrics, the sweep's own timings, and the full results table (parquet)
  plus walk-forward tables as artifacts in one `log_artifacts` call;
* child runs (tag `mlflow.parentRunId`) for the best `top_k` combinations only, each with one
  `log_batch` call (params = the grid keys, metrics = the row).

The time spent here is logged as the parent's `sweep_logging_secs` metric and returned.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signals.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl

    from signals.config import PlatformConfig
    from sim.sweep import WalkForwardResult

RESULTS_ARTIFACT = "sweep_results.parquet"
STITCHED_ARTIFACT = "walk_forward_stitched.json"


@dataclass(frozen=True)
class LoggedSweep:
    """The parent run id and the seconds spent logging."""

    run_id: str
    seconds: float


def _row_metrics(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    import math  # noqa: PLC0415

    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[prefix + key] = float(value)
    return out


def log_sweep(
    table: pl.DataFrame,
    config: PlatformConfig,
    grid: dict[str, list[Any]],
    *,
    metric: str,
    sweep_secs: float,
    engine: str,
    data_source: str,
    walk_forward: WalkForwardResult | None = None,
    top_k: int = 20,
    tracking_uri: str | None = None,
) -> LoggedSweep | None:
    """Log a sweep (table sorted best first) as one parent run plus `top_k` child runs.

    Returns None when MLflow is not installed. Raises `ConfigError` when the store refuses.
    """
    started = time.perf_counter()
    try:
        from mlflow.entities import Metric, Param, RunTag  # noqa: PLC0415
        from mlflow.exceptions import MlflowException  # noqa: PLC0415
        from mlflow.tracking import MlflowClient  # noqa: PLC0415
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("mlflow"):
            raise
        return None
    from sim import tracking  # noqa: PLC0415

    tracking._quiet_env()
    uri = tracking.resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    config_hash = config.config_hash()
    now_ms = int(time.time() * 1000)
    grid_keys = [k for k in table.columns if k in grid]
    tags = {
        "sim.kind": "sweep",
        "config_hash": config_hash,
        "seed": str(config.backtest.seed),
        "data_source": data_source,
        "sweep.engine": engine,
        "sweep.metric": metric,
    }
    params = {
        "sweep.grid": json.dumps(grid, sort_keys=True)[:6000],
        "sweep.n_combos": str(table.height if walk_forward is None else "per window"),
    }
    params.update(
        {
            tracking.safe_key(k): tracking._param_value(v)
            for k, v in config.flat().items()
            if k not in grid
        }
    )
    run_id: str | None = None
    try:
        experiment_id = tracking._experiment_id(client, tracking.experiment_name(), uri)
        run = client.create_run(experiment_id, run_name=f"sweep-{config_hash}", tags=tags)
        run_id = run.info.run_id
        best = table.row(0, named=True) if table.height else {}
        metrics = _row_metrics(best, "best.") if walk_forward is None else {}
        if walk_forward is not None:
            metrics.update(_row_metrics(walk_forward.stitched, "oos."))
        metrics["sweep_secs"] = sweep_secs
        items = [Param(k, v) for k, v in sorted(params.items())]
        client.log_batch(run_id, metrics=[Metric(k, v, now_ms, 0) for k, v in metrics.items()],
                         params=items[:100])  # fmt: skip
        for i in range(100, len(items), 100):
            client.log_batch(run_id, params=items[i : i + 100])
        with tempfile.TemporaryDirectory(prefix="sim-sweep-") as tmp:
            table.write_parquet(Path(tmp) / RESULTS_ARTIFACT, compression="zstd")
            if walk_forward is not None:
                (Path(tmp) / STITCHED_ARTIFACT).write_text(
                    json.dumps(walk_forward.stitched, sort_keys=True, indent=2) + "\n"
                )
            client.log_artifacts(run_id, tmp)
        for rank, row in enumerate(table.head(top_k).iter_rows(named=True)):
            child = client.create_run(
                experiment_id,
                run_name=f"sweep-{config_hash}-combo{row.get('combo', rank)}",
                tags={**tags, "mlflow.parentRunId": run_id, "sweep.rank": str(rank)},
            )
            client.log_batch(
                child.info.run_id,
                metrics=[Metric(k, v, now_ms, 0) for k, v in _row_metrics(row).items()],
                params=[Param(tracking.safe_key(k), str(row[k])) for k in grid_keys],
                tags=[RunTag("mlflow.runName", child.info.run_name)],
            )
            client.set_terminated(child.info.run_id, "FINISHED")
        seconds = time.perf_counter() - started
        client.log_batch(run_id, metrics=[Metric("sweep_logging_secs", seconds, now_ms, 0)])
        client.set_terminated(run_id, "FINISHED")
    except (MlflowException, OSError) as e:
        if run_id is not None:
            with contextlib.suppress(MlflowException, OSError):
                client.set_terminated(run_id, "FAILED")
        msg = f"MLflow tracking URI `{uri}` must accept the sweep, logging failed: {e}"
        raise ConfigError(msg) from e
    return LoggedSweep(run_id, seconds)
