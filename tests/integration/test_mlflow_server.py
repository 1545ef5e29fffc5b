"""Log a run through a REAL `mlflow server` on 127.0.0.1 and read it back over HTTP.

The server runs lean (shared/notes/infra-findings.md §1.4): `--workers 1`, the huey job runner
off (`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`), a sqlite backend and `--artifacts-destination`
in a temp dir, so artifacts really travel over HTTP (`mlflow-artifacts:/` URIs). It needs the full
`mlflow` package (the `[server]` extra): `mlflow-skinny` has no flask.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signals.config import PlatformConfig
from sim import tracking
from tests.sim.test_tracking import make_report, make_result

pytestmark = pytest.mark.integration

HEALTH_TIMEOUT_SECS = 90.0
STOP_TIMEOUT_SECS = 20.0


@dataclass(frozen=True)
class Server:
    uri: str
    artifacts: Path
    log: Path
    startup_secs: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (127.0.0.1 only)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM to the `mlflow server` parent stops uvicorn's worker too (notes §1.4); the
    # process group (ours: start_new_session) is the fallback if it does not.
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_SECS)


@pytest.fixture(scope="module", name="server")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Start `mlflow server` on a free 127.0.0.1 port; SIGTERM it afterwards."""
    if importlib.util.find_spec("flask") is None:
        reason = "`mlflow server` needs the full mlflow package: pip install -e '.[server]'"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs `.[dev]`; a missing server is a broken install
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    artifacts = root / "artifacts"
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
        )
    try:
        health = f"http://127.0.0.1:{port}/health"
        while not _healthy(health):
            if proc.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            if time.perf_counter() - started > HEALTH_TIMEOUT_SECS:
                pytest.fail(
                    f"mlflow server not healthy after {HEALTH_TIMEOUT_SECS:.0f} s:\n"
                    f"{log.read_text()[-3000:]}"
                )
            time.sleep(0.25)
        startup = time.perf_counter() - started
        sys.stderr.write(f"\nmlflow server healthy after {startup:.1f} s on port {port}\n")
        yield Server(f"http://127.0.0.1:{port}", artifacts, log, startup)
    finally:
        _stop(proc)


@pytest.fixture(name="client_env")
def fixture_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fail fast instead of retrying for minutes (7 retries, 120 s timeout by default; notes §1.4).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.EXPERIMENT_ENV, raising=False)


@pytest.mark.usefixtures("client_env")
def test_log_run_http_server_round_trips_run_and_artifacts(server: Server, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    config = PlatformConfig().with_seed(11)
    report, result = make_report(config), make_result()

    run_id = tracking.log_run(report, result, config, tracking_uri=server.uri)

    assert run_id is not None
    client = MlflowClient(tracking_uri=server.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "rules-sample_hourly-seed11"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert run.data.params == tracking.params_from_config(tracking.flat_params(config))
    assert run.data.tags["config_hash"] == config.config_hash()
    assert run.data.tags["sim.kind"] == "run"
    assert run.data.metrics["total_trades"] == 42.0
    assert {f.path for f in client.list_artifacts(run_id)} == {
        "report.json", "equity_curve.parquet", "equity_drawdown.png",
    }  # fmt: skip
    local = client.download_artifacts(run_id, "report.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == report
    # The server, not the client, wrote the files.
    assert any(server.artifacts.rglob("equity_curve.parquet"))


@pytest.mark.usefixtures("client_env")
def test_find_baseline_run_http_server_returns_tagged_report(server: Server) -> None:
    config = PlatformConfig().with_seed(12)
    report = make_report(config, data_hash="http-baseline")
    run_id = tracking.log_run(report, make_result(), config, tracking_uri=server.uri)
    tracking.tag_baseline(str(run_id), tracking_uri=server.uri)

    found = tracking.find_baseline_run(server.uri, "247trader")

    assert found == report
