"""MLflow logging of a sweep: one parent run, the results table as an artifact, top-K children.

Per-run logging costs 37-43 ms on sqlite (shared/notes/infra-findings.md §1.2), about as much
as a whole backtest, so a sweep never logs one run per combination. It logs:

* one parent run (`sweep-<strategies>-<data file stem>-seed<seed>`, tags `sim.kind=sweep` and
  `config_hash`): the grid and the base config as params (less the swept keys), the best row's
  metrics, the sweep's own timings, and the full results table (parquet), the heat map
  `sim sweep --out` drew and walk-forward tables as artifacts in one `log_artifacts` call;
* child runs (tag `mlflow.parentRunId`) for the best `top_k` combinations only, named like a
  `sim run` of the combination's config plus `-combo<k>`. Params are that config in the keys
  `sim run` logs (`sim.tracking.flat_params`: `strategies.<name>.<param>`, `policy.*`, ...),
  so `mlflow.search_runs` compares a run with a child on the same columns; tags carry the
  combination's own `config_hash` and seed; metrics are the table row's.
* The best `artifacts_top` children also get the combination's JSON report and HTML
  tearsheet (`report.json`, `tearsheet.html`, as `sim run` logs them): the backtest is run
  again with `sim.engine.run_backtest` (the sweep kernel equals it bit for bit, so the
  report's summary equals the row), and the summary's other metrics (benchmark, expectancy,
  ...) are logged too. On the shipped data (8 symbols x 8,760 hourly bars, 2-core machine,
  other jobs running) each costs 0.7-1.1 s, 97 % of it matplotlib drawing the tearsheet's
  figures: `--log-top 20 --log-top-artifacts 20` added 16-22 s to a 21-combination sweep
  that took 2.5-5 s in all, the default `--log-top-artifacts 3` adds 2.4-2.9 s.

The time spent here is logged as the parent's `sweep_logging_secs` metric (the report and
tearsheet part also as `sweep_artifacts_secs`) and returned.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signals.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl

    from signals.bars import Panel
    from signals.config import PlatformConfig
    from sim.sweep import WalkForwardResult

RESULTS_ARTIFACT = "sweep_results.parquet"
STITCHED_ARTIFACT = "walk_forward_stitched.json"
HEATMAP_ARTIFACT = "sweep_heatmap.html"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_MISSING = object()


@dataclass(frozen=True)
class LoggedSweep:
    """The parent run id, the seconds spent logging, and the part spent on child reports."""

    run_id: str
    seconds: float
    artifacts_secs: float = 0.0


def _row_metrics(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    import math  # noqa: PLC0415

    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[prefix + key] = float(value)
    return out


def enabled_names(config: PlatformConfig) -> list[str]:
    """Return the enabled strategies of `config` in name order (as a run's report lists them)."""
    entries = config.strategies.strategies
    return [name for name in sorted(entries) if entries[name].enabled]


def data_source_label(data_source: str) -> str:
    """Return `data_source` relative to the project root when it lies below it, as `sim run`
    records it (`data/sample_hourly.parquet`), else unchanged."""
    try:
        return str(Path(data_source).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return data_source


def combo_config(config: PlatformConfig, row: Mapping[str, Any], keys: list[str]) -> PlatformConfig:
    """Return the config of one results-table row: `config` with the row's grid `keys` set.

    The grid keys are those `PlatformConfig.with_overrides` takes, so this is the config
    `sim.sweep.build_plan` ran for that combination (group config plus strategy parameters).
    Keys whose value equals the config's are left as the config has them (the table holds
    `6.0` where `strategies.yaml` says `6`), so the row of the config's own values gives the
    config itself, with the `config_hash` of a `sim run` of it.
    """
    from sim.tracking import flat_params, grid_key  # noqa: PLC0415

    base = flat_params(config)
    overrides = {k: row[k] for k in keys if base.get(grid_key(k), _MISSING) != row[k]}
    return config.with_overrides(overrides) if overrides else config


def write_child_artifacts(
    panel: Panel, config: PlatformConfig, data_hash: str, data_source: str, folder: Path
) -> dict[str, Any]:
    """Run `config` over `panel` and write `report.json` and `tearsheet.html` into `folder`.

    The report is the one `sim run` writes for the same config and bars (`sim.report`); the
    tearsheet is drawn as `sim run` draws it (`sim.tearsheet.write_run_tearsheet`). Returns
    the report.
    """
    from signals.pipeline import decision_inputs  # noqa: PLC0415
    from sim import tracking  # noqa: PLC0415
    from sim.engine import run_backtest  # noqa: PLC0415
    from sim.report import build_report, write_report  # noqa: PLC0415
    from sim.tearsheet import HTML_ARTIFACT, write_run_tearsheet  # noqa: PLC0415

    # The sweep checked the symbols against the data already (with its
    # --allow-missing-symbols); computing stage 1 here skips the second check, as `sim run` does.
    result = run_backtest(panel, config, decision_inputs(panel, config))
    report = build_report(result, config, data_hash, data_source)
    work = folder / "work"
    work.mkdir()
    report_path = write_report(report, work / tracking.REPORT_ARTIFACT)
    sheet = write_run_tearsheet(report, result, config, report_path)
    artifacts = folder / "artifacts"
    artifacts.mkdir()
    tracking.copy_artifacts(
        {tracking.REPORT_ARTIFACT: report_path, HTML_ARTIFACT: sheet}, artifacts
    )
    return report


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
    panel: Panel | None = None,
    artifacts_top: int = 0,
    extra_artifacts: Mapping[str, Path] | None = None,
) -> LoggedSweep | None:
    """Log a sweep (table sorted best first) as one parent run plus `top_k` child runs.

    Parameters
    ----------
    table, config, grid
        The results table best first, the base config and the grid the sweep ran.
    metric, sweep_secs, engine, data_source
        What the table is sorted by, the sweep's seconds, `local` or `dask`, the bar file.
    walk_forward
        The walk-forward result, when the sweep was one (then no children are logged).
    top_k
        Child runs for the best `top_k` rows (params, tags, metrics).
    tracking_uri
        The `--tracking-uri` flag; see `sim.tracking.resolve_tracking_uri`.
    panel, artifacts_top
        The bars the sweep ran on, and how many of the best children also get the
        combination's `report.json` and `tearsheet.html` (run again over `panel`; none
        without it).
    extra_artifacts
        More files for the parent run, by artifact name (the heat map of `sim sweep --out`).

    Returns
    -------
    LoggedSweep or None
        None when MLflow is not installed.

    Raises
    ------
    ConfigError
        When the store refuses the sweep.
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
    metric_keys = [k for k in table.columns if k != "combo" and k not in grid]
    source = data_source_label(data_source)
    name = tracking.name_for(enabled_names(config), source, config.backtest.seed)
    tags = {
        "sim.kind": "sweep",
        "config_hash": config_hash,
        "seed": str(config.backtest.seed),
        "data_source": source,
        "sweep.engine": engine,
        "sweep.metric": metric,
    }
    swept = {tracking.grid_key(k) for k in grid}
    params = {
        "sweep.grid": json.dumps(grid, sort_keys=True)[:6000],
        "sweep.n_combos": str(table.height if walk_forward is None else "per window"),
    }
    params.update(
        {
            k: v
            for k, v in tracking.params_from_config(tracking.flat_params(config)).items()
            if k not in swept
        }
    )
    data_hash = ""
    if panel is not None and artifacts_top > 0 and top_k > 0:
        from signals.bars import frame_hash, from_panel  # noqa: PLC0415

        data_hash = frame_hash(from_panel(panel))  # equals `sim run`'s hash of the same bars
    artifacts_secs = 0.0

    def batches(run_id: str, metrics: dict[str, float], params: dict[str, str]) -> None:
        items = [Param(k, v) for k, v in sorted(params.items())]
        client.log_batch(run_id, metrics=[Metric(k, v, now_ms, 0) for k, v in metrics.items()],
                         params=items[:100])  # fmt: skip
        for i in range(100, len(items), 100):
            client.log_batch(run_id, params=items[i : i + 100])

    run_id: str | None = None
    try:
        experiment_id = tracking._experiment_id(client, tracking.experiment_name(), uri)
        run = client.create_run(experiment_id, run_name=f"sweep-{name}", tags=tags)
        run_id = run.info.run_id
        best = table.row(0, named=True) if table.height else {}
        metrics = _row_metrics(best, "best.") if walk_forward is None else {}
        if walk_forward is not None:
            metrics.update(_row_metrics(walk_forward.stitched, "oos."))
        metrics["sweep_secs"] = sweep_secs
        batches(run_id, metrics, params)
        with tempfile.TemporaryDirectory(prefix="sim-sweep-") as tmp:
            table.write_parquet(Path(tmp) / RESULTS_ARTIFACT, compression="zstd")
            if walk_forward is not None:
                (Path(tmp) / STITCHED_ARTIFACT).write_text(
                    json.dumps(walk_forward.stitched, sort_keys=True, indent=2) + "\n"
                )
            tracking.copy_artifacts(extra_artifacts or {}, Path(tmp))
            client.log_artifacts(run_id, tmp)
        for rank, row in enumerate(table.head(top_k).iter_rows(named=True)):
            child_config = combo_config(config, row, grid_keys)
            combo = row.get("combo", rank)
            child_name = (
                tracking.name_for(enabled_names(child_config), source, child_config.backtest.seed)
                + f"-combo{combo}"
            )
            child_tags = {
                **tags,
                "config_hash": child_config.config_hash(),
                "seed": str(child_config.backtest.seed),
                "mlflow.parentRunId": run_id,
                "sweep.rank": str(rank),
                "sweep.combo": str(combo),
            }
            child_metrics = _row_metrics({k: row[k] for k in metric_keys})
            with tempfile.TemporaryDirectory(prefix="sim-sweep-child-") as tmp:
                report = None
                if panel is not None and rank < artifacts_top:
                    began = time.perf_counter()
                    report = write_child_artifacts(
                        panel, child_config, data_hash, source, Path(tmp)
                    )
                    artifacts_secs += time.perf_counter() - began
                    child_tags["data_hash"] = data_hash
                    # the row's values at full precision; the summary's other metrics besides
                    summary = tracking.metrics_from_summary(report["summary"])
                    child_metrics = summary | child_metrics
                child = client.create_run(experiment_id, run_name=child_name, tags=child_tags)
                child_id = child.info.run_id
                batches(
                    child_id,
                    child_metrics,
                    tracking.params_from_config(tracking.flat_params(child_config)),
                )
                client.log_batch(child_id, tags=[RunTag("mlflow.runName", child_name)])
                if report is not None:
                    client.log_artifacts(child_id, str(Path(tmp) / "artifacts"))
            client.set_terminated(child_id, "FINISHED")
        seconds = time.perf_counter() - started
        done = {"sweep_logging_secs": seconds, "sweep_artifacts_secs": artifacts_secs}
        client.log_batch(run_id, metrics=[Metric(k, v, now_ms, 0) for k, v in done.items()])
        client.set_terminated(run_id, "FINISHED")
    except (MlflowException, OSError) as e:
        if run_id is not None:
            with contextlib.suppress(MlflowException, OSError):
                client.set_terminated(run_id, "FAILED")
        msg = f"MLflow tracking URI `{uri}` must accept the sweep, logging failed: {e}"
        raise ConfigError(msg) from e
    return LoggedSweep(run_id, seconds, artifacts_secs)
