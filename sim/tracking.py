"""MLflow logging of backtest runs, and the baseline run used by `sim gate --baseline-from-mlflow`.

`import mlflow` costs 1-1.5 s (see shared/notes/infra-findings.md §1.3), so every MLflow import
sits inside the function that needs it; importing this module is cheap.

One `sim run` becomes one MLflow run in experiment `247trader` (env `SIM_MLFLOW_EXPERIMENT`
overrides), named `<enabled strategies joined by +>-<data file stem>-seed<seed>`
(`rules-sample_hourly-seed42`; the config hash is a tag):

* params: the flattened config in the keys `sim sweep --grid` and
  `PlatformConfig.with_overrides` take (`strategies.rules.breakout_lookback`, `policy.*`,
  `universe.*`, `backtest.*`; `flat_params`), values stringified. Sweep children log the same
  keys (`sim.sweep_tracking`), so `mlflow.search_runs` compares them column for column;
* tags: seed, config_hash, data_hash, git_commit, data_source, profile and `sim.kind=run`;
* metrics: every numeric summary metric, in one `log_batch` call;
* artifacts: `report.json`, `equity_curve.parquet` and `equity_drawdown.png`, uploaded in one
  `log_artifacts` call, with `tearsheet.html` when `sim run` wrote one (`sim.tearsheet`).

Cost, measured on the 2-core dev machine (8,760-bar curve, 52 params, 15 metrics):

* one `log_run` into an existing sqlite DB, in a process that has logged before: 0.13-0.15 s
  (`pytest tests/bench/test_bench_tracking.py --benchmark-enable`);
* the first `log_run` of a process pays a one-off ~1.8-2.0 s more, nearly all of it imports
  (`mlflow.tracking` with pandas and `mlflow.genai` 1.0 s, the sqlite store with
  SQLAlchemy/alembic 0.65 s, matplotlib 0.3 s);
* the first run into a fresh DB pays the schema migrations once: 3.3 s in all instead of 2.0 s.

`sim run` therefore does not call `log_run`: a helper process (`sim.tracking_child`) does those
imports on the second core during the backtest, then logs the same run through `log_prepared`.
`sim run --seed 42` on the shipped data, warm numba cache, process start to exit, medians of
alternating runs: 2.1 s (2.0-2.3) instead of 3.2 s (3.0-3.5) with `log_run` after the backtest,
0.9 s with `--no-mlflow`; with two CPU-bound processes running besides, 3.3 s (2.8-4.6) instead
of 6.3 s (4.9-9.8). CPU time is unchanged (~3.4 s).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from signals.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from signals.config import PlatformConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXPERIMENT = "247trader"
EXPERIMENT_ENV = "SIM_MLFLOW_EXPERIMENT"
REPORT_ARTIFACT = "report.json"
CURVE_ARTIFACT = "equity_curve.parquet"
PLOT_ARTIFACT = "equity_drawdown.png"
BASELINE_TAG = "baseline"
TAG_KEYS = ("seed", "config_hash", "data_hash", "git_commit", "data_source", "profile")

# MLflow limits (mlflow.utils.validation): param values <= 6000 chars, keys <= 250 chars,
# at most 100 params per log_batch call.
_MAX_PARAM_VALUE = 6000
_MAX_KEY = 250
_PARAMS_PER_BATCH = 100
_MAX_TAG_VALUE = 8000
_MAX_RUN_NAME = 250
STRATEGY_ENTRY_FIELDS = ("enabled", "budget", "params", "module")
"""Fields of `signals.config.StrategyEntry` (not imported here: it would import pydantic)."""
# Keys keep letters, digits, `_`, `.`, `-` and spaces; `/` (a path separator in artifact and
# file stores) and anything else becomes `_`.
_UNSAFE_KEY = re.compile(r"[^\w.\- ]")


class _HasCurve(Protocol):
    @property
    def curve(self) -> pl.DataFrame: ...


def default_tracking_uri() -> str:
    """Return the embedded store, `sqlite:///<project root>/mlflow.db` (absolute path)."""
    return f"sqlite:///{(PROJECT_ROOT / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(cli_value: str | None = None) -> str:
    """Return the tracking URI: `cli_value`, else `$MLFLOW_TRACKING_URI`, else the embedded store.

    The embedded default is `sqlite:///<project root>/mlflow.db` with an absolute path, so the
    result never depends on the working directory (MLflow's own default, `sqlite:///mlflow.db`,
    does). Empty strings count as unset.
    """
    if cli_value:
        return check_tracking_uri(cli_value, "`--tracking-uri`")
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return check_tracking_uri(env, "`MLFLOW_TRACKING_URI`")
    return default_tracking_uri()


TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "databricks", "postgresql", "mysql")
"""URI schemes MLflow has a tracking store for (a bare path is a file store)."""


def check_tracking_uri(uri: str, source: str) -> str:
    """Return `uri`; raise `ConfigError` naming `source` when MLflow has no store for it."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if "://" in uri and scheme not in TRACKING_SCHEMES:
        msg = (
            f"{source} must be an MLflow tracking URI ({', '.join(TRACKING_SCHEMES)}), was {uri!r}"
        )
        raise ConfigError(msg)
    return uri


def check_store_exists(uri: str) -> None:
    """Raise `DataError` when `uri` names a SQLite store that does not exist (nothing made)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.is_file():
            msg = (
                f"MLflow store `{path}` must exist to hold a baseline, was missing; run "
                "`sim run --seed 42` and tag it, or pass `--baseline FILE`"
            )
            raise DataError(msg)


def experiment_name() -> str:
    """Return the experiment runs go to: `$SIM_MLFLOW_EXPERIMENT`, else `247trader`."""
    return os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT


def name_for(strategies: Sequence[str], data_source: str | None, seed: object) -> str:
    """Return `<strategies joined by +>-<data file stem>-seed<seed>`, e.g.
    `rules+ma_cross-sample_hourly-seed42` (`none` without strategies, `data` without a file).

    Examples
    --------
    >>> name_for(["ma_cross", "rules"], "data/sample_hourly.parquet", 42)
    'ma_cross+rules-sample_hourly-seed42'
    """
    names = "+".join(strategies) or "none"
    stem = Path(data_source).stem if data_source else "data"
    return f"{names}-{stem}-seed{seed}"[:_MAX_RUN_NAME]


def run_name(report: Mapping[str, Any]) -> str:
    """Return the run name of a report: its strategies, data file stem and seed (`name_for`)."""
    meta = report["metadata"]
    return name_for(meta.get("strategies") or [], meta.get("data_source"), meta.get("seed"))


def grid_key(flat_key: str) -> str:
    """Return the `sim sweep --grid` form of a `PlatformConfig.flat()` key.

    `strategies.strategies.<name>.params.<param>` becomes `strategies.<name>.<param>` and
    `strategies.strategies.<name>.<field>` (enabled, budget.*, module) `strategies.<name>.<field>`;
    a parameter named like an entry field keeps its full key (the short one would be the
    field's). Other keys (`policy.*`, `universe.*`, `backtest.*`) and keys already in the short
    form are returned unchanged.

    Examples
    --------
    >>> grid_key("strategies.strategies.rules.params.breakout_lookback")
    'strategies.rules.breakout_lookback'
    >>> grid_key("strategies.strategies.rules.budget.max_at_risk_pct")
    'strategies.rules.budget.max_at_risk_pct'
    """
    parts = flat_key.split(".")
    if len(parts) < 4 or parts[:2] != ["strategies", "strategies"]:
        return flat_key
    name, rest = parts[2], parts[3:]
    if rest[0] == "params":
        if len(rest) < 2 or rest[1] in STRATEGY_ENTRY_FIELDS:
            return flat_key
        rest = rest[1:]
    return ".".join(["strategies", name, *rest])


def flat_params(config: PlatformConfig) -> dict[str, Any]:
    """Return what a run and a sweep child log as params: `config.flat()` with the keys in the
    `--grid` scheme (`grid_key`) and each registered strategy's parameters as its `Params`
    model has them, defaults included.

    `strategies.yaml` keeps parameters as written (`stop_loss_pct: 6`) while a sweep's grid
    values went through the model (`6.0`); the model's form makes the same config log the
    same values either way. A strategy that is not registered, or whose parameters its model
    refuses, keeps them as written.
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from signals.strategies import STRATEGIES  # noqa: PLC0415

    entries = dict(config.strategies.strategies)
    for name, entry in entries.items():
        cls = STRATEGIES.get(name)
        if cls is None:
            continue
        try:
            params = cls.Params.model_validate(entry.params).model_dump(mode="json")
        except ValidationError:
            continue
        entries[name] = entry.model_copy(update={"params": params})
    canonical = config.model_copy(
        update={"strategies": config.strategies.model_copy(update={"strategies": entries})}
    )
    return {grid_key(k): v for k, v in canonical.flat().items()}


# --------------------------------------------------------------------------------------------
# payload (pure, no MLflow import)
# --------------------------------------------------------------------------------------------


def safe_key(key: str) -> str:
    """Return `key` with characters MLflow or a file store could misread replaced by `_`."""
    return _UNSAFE_KEY.sub("_", key)[:_MAX_KEY]


def _param_value(value: Any) -> str:
    if isinstance(value, list | dict | tuple) or value is None:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    else:
        text = str(value)
    if len(text) > _MAX_PARAM_VALUE:
        # The full value is in the config files; the config_hash tag identifies it exactly.
        text = text[: _MAX_PARAM_VALUE - 3] + "..."
    return text


def params_from_config(flat: Mapping[str, Any]) -> dict[str, str]:
    """Return MLflow params from a flattened config: safe keys, string values <= 6000 chars.

    Two keys that become equal after `safe_key` get `~2`, `~3`... suffixes in sorted key order.
    """
    out: dict[str, str] = {}
    for key in sorted(flat):
        name = safe_key(key)
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name[: _MAX_KEY - 4]}~{n}"
        out[candidate] = _param_value(flat[key])
    return out


def tags_from_report(report: Mapping[str, Any]) -> dict[str, str]:
    """Return the run tags: seed, config_hash, data_hash, git_commit, data_source, profile, kind."""
    meta = report["metadata"]
    tags = {key: str(meta.get(key)) for key in TAG_KEYS if meta.get(key) is not None}
    tags["sim.kind"] = "run"
    return {k: v[:_MAX_TAG_VALUE] for k, v in tags.items()}


def metrics_from_summary(summary: Mapping[str, Any]) -> dict[str, float]:
    """Return every finite numeric summary metric (bools and non-numbers are left out)."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[safe_key(key)] = float(value)
    return out


def run_payload(
    report: Mapping[str, Any], config: PlatformConfig, out_path: str | Path | None = None
) -> dict[str, Any]:
    """Return what one run logs besides its artifacts: run name, tags, params and metrics.

    Pure (no MLflow import); `log_run` and the helper process of `sim.tracking_child` both log
    exactly this.
    """
    tags = tags_from_report(report)
    if out_path is not None:
        tags["sim.report_path"] = str(out_path)[:_MAX_TAG_VALUE]
    return {
        "run_name": run_name(report),
        "tags": tags,
        "params": params_from_config(flat_params(config)),
        "metrics": metrics_from_summary(report["summary"]),
    }


def write_data_artifacts(
    report: Mapping[str, Any], curve: pl.DataFrame, folder: Path
) -> list[Path]:
    """Write the report JSON and the curve as Parquet into `folder`."""
    report_path = folder / REPORT_ARTIFACT
    # Same canonical form as sim.report.dumps_report, without importing the engine.
    report_path.write_text(json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n")
    curve_path = folder / CURVE_ARTIFACT
    curve.write_parquet(curve_path, compression="zstd")
    return [report_path, curve_path]


def plot_series(curve: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return the two series the equity/drawdown plot draws: `ts` and `equity_usd` (float64)."""
    import numpy as np  # noqa: PLC0415

    return curve["ts"].to_numpy(), curve["equity_usd"].to_numpy().astype(np.float64)


def write_plot(ts: np.ndarray, equity: np.ndarray, title: str, path: Path) -> Path:
    """Draw equity (top) and drawdown in % (bottom) over `ts` into the PNG `path`."""
    import numpy as np  # noqa: PLC0415
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    # Figure + Agg canvas directly: no pyplot global state, no GUI backend lookup.
    peak = np.maximum.accumulate(equity) if equity.size else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown_pct = np.where(peak > 0, (equity / peak - 1.0) * 100.0, 0.0)
    fig = Figure(figsize=(10, 6), dpi=80)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(ts, equity, linewidth=0.8, color="tab:blue")
    top.set_ylabel("equity (USD)")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.fill_between(ts, drawdown_pct, 0.0, color="tab:red", alpha=0.4, linewidth=0)
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def copy_artifacts(files: Mapping[str, Path], folder: Path) -> list[Path]:
    """Copy each file of `files` into `folder` under its artifact name (a safe key)."""
    import shutil  # noqa: PLC0415

    return [Path(shutil.copyfile(path, folder / safe_key(name))) for name, path in files.items()]


def write_artifacts(report: Mapping[str, Any], curve: pl.DataFrame, folder: Path) -> list[Path]:
    """Write the report JSON, the curve as Parquet and the equity/drawdown PNG into `folder`."""
    paths = write_data_artifacts(report, curve, folder)
    ts, equity = plot_series(curve)
    paths.append(write_plot(ts, equity, run_name(report), folder / PLOT_ARTIFACT))
    return paths


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------


def _quiet_env() -> None:
    # With an HTTP URI every finished run prints "View run ..." to stdout (notes §1.4), and
    # downloads draw a tqdm progress bar on stderr; neither belongs in `sim` output.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's default retry policy waits ~4 minutes on an unreachable server (notes §1.4);
    # a backtest should say so in seconds. Users can still raise both.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _local_artifact_root(tracking_uri: str, experiment: str) -> str | None:
    # MLflow puts a sqlite store's artifacts under `./mlruns` of the *current* directory; keep
    # them beside the DB instead (`<db dir>/mlartifacts/<experiment>`, git-ignored). A server
    # (http URI) chooses its own artifact root.
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    if db_path in ("", ":memory:"):
        return None
    return (Path(db_path).resolve().parent / "mlartifacts" / safe_key(experiment)).as_uri()


def _experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=_local_artifact_root(tracking_uri, name)
            )
        )
    except MlflowException:
        # Another process created it between the lookup and the create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def log_run(
    report: Mapping[str, Any],
    result: _HasCurve,
    config: PlatformConfig,
    out_path: str | Path | None = None,
    *,
    tracking_uri: str | None = None,
    extra_artifacts: Mapping[str, Path] | None = None,
) -> str | None:
    """Log one backtest to MLflow and return the run id.

    `sim run` logs the same run from a helper process instead (`sim.tracking_child`), which
    calls `log_prepared` like this function does.

    Parameters
    ----------
    report
        The report dict of `sim.report.build_report` (schema 1).
    result
        The backtest result; only `result.curve` (ts, equity_usd, ...) is used.
    config
        The run's config; `flat_params(config)` becomes the params.
    out_path
        Where the report was written; it is logged as the run's `sim.report_path` tag.
    tracking_uri
        The `--tracking-uri` flag; see `resolve_tracking_uri` for the fallbacks.
    extra_artifacts
        More files to log, by artifact name (`sim run` adds its `tearsheet.html`).

    Returns
    -------
    str or None
        The MLflow run id; None when MLflow is not installed (nothing logged).

    Raises
    ------
    ConfigError
        When the tracking store refuses or cannot be reached (the report is already on disk).
    """
    _quiet_env()
    if not mlflow_installed():
        return None
    uri = resolve_tracking_uri(tracking_uri)
    payload = run_payload(report, config, out_path)
    with tempfile.TemporaryDirectory(prefix="sim-mlflow-") as tmp:
        try:
            write_artifacts(report, result.curve, Path(tmp))
            copy_artifacts(extra_artifacts or {}, Path(tmp))
        except OSError as e:
            raise ConfigError(store_refused(uri, f"logging failed: {e}")) from e
        return log_prepared(uri, experiment_name(), payload, Path(tmp))


def mlflow_installed() -> bool:
    """Return True when MLflow's tracking client imports (it does nothing without it)."""
    try:
        import mlflow.tracking  # noqa: F401, PLC0415
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("mlflow"):
            raise
        return False
    return True


def log_prepared(
    tracking_uri: str, experiment: str, payload: Mapping[str, Any], artifact_dir: Path
) -> str:
    """Create one finished run from a `run_payload` and every file in `artifact_dir`.

    Raises
    ------
    ConfigError
        When the tracking store refuses or cannot be reached; the run, if created, is marked
        FAILED.
    """
    _quiet_env()
    import time  # noqa: PLC0415

    from mlflow.entities import Metric, Param  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    now_ms = int(time.time() * 1000)
    metrics = [Metric(k, v, now_ms, 0) for k, v in payload["metrics"].items()]
    param_list = [Param(k, v) for k, v in payload["params"].items()]

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id: str | None = None
    try:
        experiment_id = _experiment_id(client, experiment, tracking_uri)
        run = client.create_run(experiment_id, run_name=payload["run_name"], tags=payload["tags"])
        run_id = run.info.run_id
        # Params are capped at 100 per call; metrics (about 15) always fit one call.
        client.log_batch(run_id, metrics=metrics, params=param_list[:_PARAMS_PER_BATCH])
        for i in range(_PARAMS_PER_BATCH, len(param_list), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=param_list[i : i + _PARAMS_PER_BATCH])
        client.log_artifacts(run_id, str(artifact_dir))
        client.set_terminated(run_id, "FINISHED")
    except (MlflowException, OSError) as e:
        if run_id is not None:
            with contextlib.suppress(MlflowException, OSError):
                client.set_terminated(run_id, "FAILED")
        raise ConfigError(store_refused(tracking_uri, f"logging failed: {e}")) from e
    return str(run_id)


def store_refused(tracking_uri: str, what_happened: str) -> str:
    """Return the one-line error for a run the tracking store did not take, naming the URI."""
    return f"MLflow tracking URI `{tracking_uri}` must accept the run, {what_happened}"


def tag_baseline(run_id: str, *, tracking_uri: str | None = None) -> None:
    """Tag run `run_id` as the baseline (`baseline=true`); the newest such run wins."""
    _quiet_env()
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri)).set_tag(
        run_id, BASELINE_TAG, "true"
    )


def find_baseline_run(
    tracking_uri: str | None = None, experiment: str | None = None
) -> dict[str, Any]:
    """Return the report of the newest run tagged `baseline=true`.

    Raises
    ------
    DataError
        When the experiment or a baseline run does not exist, or its report artifact is
        missing or not JSON.
    """
    _quiet_env()
    from mlflow.exceptions import MlflowException  # noqa: PLC0415
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    uri = resolve_tracking_uri(tracking_uri)
    check_store_exists(uri)  # MLflow would create an empty store to look in
    name = experiment or experiment_name()
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        msg = f"MLflow experiment `{name}` must exist at `{uri}` to hold a baseline, was missing"
        raise DataError(msg)
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{BASELINE_TAG} = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        msg = (
            f"experiment `{name}` at `{uri}` must have a run tagged {BASELINE_TAG}=true, "
            "had none (tag one with sim.tracking.tag_baseline)"
        )
        raise DataError(msg)
    run_id = runs[0].info.run_id
    with tempfile.TemporaryDirectory(prefix="sim-baseline-") as tmp:
        try:
            local = client.download_artifacts(run_id, REPORT_ARTIFACT, tmp)
            text = Path(local).read_text()
        except (MlflowException, OSError) as e:
            msg = (
                f"baseline run {run_id} must have a `{REPORT_ARTIFACT}` artifact, was missing: {e}"
            )
            raise DataError(msg) from e
    try:
        report = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"baseline run {run_id} `{REPORT_ARTIFACT}` must be JSON, was not: {e}"
        raise DataError(msg) from e
    if not isinstance(report, dict):
        kind = type(report).__name__
        msg = f"baseline run {run_id} `{REPORT_ARTIFACT}` must be a JSON object, was {kind}"
        raise DataError(msg)
    return report
