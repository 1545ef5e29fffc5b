"""Tests of `sim.tracking_child`: `sim run` logging to MLflow from a helper process.

The helper must log exactly the run the in-process `sim.tracking.log_run` logs, leave nothing
behind when the run fails before handing it the report (no MLflow run, no process), and turn
a tracking failure into one `error:` line that names the tracking URI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from signals.config import PlatformConfig
from signals.errors import ConfigError
from sim import cli, tracking, tracking_child
from sim.tracking_child import TrackingChild
from tests.sim.conftest import PROJECT_ROOT
from tests.sim.test_tracking import make_report, make_result

READY_TIMEOUT_SECS = 60.0


@pytest.fixture(autouse=True)
def _fixed_git_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    # other engineers commit while the suite runs; the report's commit stamp must not flake
    monkeypatch.setattr("sim.report.git_commit", lambda *args: "0" * 40)


@pytest.fixture(name="spawned")
def fixture_spawned(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Record every helper process `TrackingChild` starts."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def spy(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real(argv, **kwargs)
        if "sim.tracking_child" in argv:
            started.append(proc)
        return proc

    monkeypatch.setattr(tracking_child.subprocess, "Popen", spy)
    return started


def _fake_child(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Make `TrackingChild` start `python -c script` instead of the real helper."""
    real = subprocess.Popen

    def fake(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return real([sys.executable, "-c", script], **kwargs)

    monkeypatch.setattr(tracking_child.subprocess, "Popen", fake)


def _helper_pids(marker: str) -> list[int]:
    """Return the live processes whose command line holds `marker` (the unique tracking URI)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "sim.tracking_child" in cmdline and marker in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def _runs(tracking_uri: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids))


def _logged(tracking_uri: str, run_id: str, folder: Path) -> dict[str, Any]:
    """Return everything a run holds that `log_run` sets, artifacts as bytes."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    local = Path(client.download_artifacts(run_id, "", str(folder)))
    return {
        "status": run.info.status,
        "run_name": run.info.run_name,
        "experiment": client.get_experiment(run.info.experiment_id).name,
        "params": run.data.params,
        "tags": run.data.tags,
        "metrics": run.data.metrics,
        "artifacts": {p.name: p.read_bytes() for p in sorted(local.iterdir())},
    }


# --------------------------------------------------------------------------------------------
# same run as log_run
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plot_in_child", [True, False], ids=["child-plots", "parent-plots"])
def test_tracking_child_log_same_run_as_in_process_log_run(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spawned: list[subprocess.Popen[bytes]],
    plot_in_child: bool,
) -> None:
    config = PlatformConfig().with_seed(7)
    report, result = make_report(config), make_result()
    out = tmp_path / "report.json"
    expected_id = tracking.log_run(report, result, config, out, tracking_uri=tracking_uri)

    with TrackingChild(tracking_uri) as child:
        if plot_in_child:
            assert child.ready(timeout=READY_TIMEOUT_SECS)
        else:
            monkeypatch.setattr(TrackingChild, "ready", lambda self, timeout=0.0: False)
        run_id = child.log(report, result, config, out)

    assert run_id is not None
    assert run_id != expected_id
    assert len(spawned) == 1
    assert spawned[0].returncode == 0
    got = _logged(tracking_uri, run_id, tmp_path / "got")
    expected = _logged(tracking_uri, str(expected_id), tmp_path / "expected")
    assert got == expected
    assert got["status"] == "FINISHED"
    assert got["tags"]["sim.report_path"] == str(out)
    assert set(got["artifacts"]) == {"report.json", "equity_curve.parquet", "equity_drawdown.png"}


def test_tracking_child_exits_before_payload_logs_in_process(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. MLflow missing or broken in the child's environment: nothing was logged there
    _fake_child(monkeypatch, "import sys; sys.exit(3)")
    config = PlatformConfig().with_seed(7)

    with TrackingChild(tracking_uri) as child:
        run_id = child.log(make_report(config), make_result(), config)

    assert [r.info.run_id for r in _runs(tracking_uri)] == [run_id]


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------


def test_tracking_child_dies_while_logging_config_error_names_uri(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_child(
        monkeypatch,
        "import sys; sys.stdin.read(); print('{\"received\": true}', flush=True); sys.exit(9)",
    )
    config = PlatformConfig().with_seed(7)

    with (
        TrackingChild(tracking_uri) as child,
        pytest.raises(ConfigError, match=r"exited with code 9") as caught,
    ):
        child.log(make_report(config), make_result(), config)

    assert f"MLflow tracking URI `{tracking_uri}` must accept the run" in str(caught.value)
    assert _runs(tracking_uri) == []


def test_cli_run_unreachable_tracking_server_one_error_line_report_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    out = tmp_path / "r.json"

    code = cli.main(["run", "--seed", "42", "--out", str(out), "--tracking-uri", uri])

    captured = capsys.readouterr()
    assert code == 2
    err = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1, captured.err
    assert err[0].startswith(f"error: MLflow tracking URI `{uri}` must accept the run")
    assert "mlflow run" not in captured.out
    assert json.loads(out.read_text())["metadata"]["seed"] == 42
    assert _helper_pids(uri) == []


# --------------------------------------------------------------------------------------------
# sim run end to end
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("warm_cache", [True, False], ids=["warm-cache", "cold-cache"])
def test_cli_run_logs_report_through_helper(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spawned: list[subprocess.Popen[bytes]],
    warm_cache: bool,
) -> None:
    # "cold": the helper starts only once stage 1 is done (the compiling child then finds
    # the real cache warm and returns at once)
    monkeypatch.setattr(cli, "numba_cache_is_warm", lambda: warm_cache)
    out = tmp_path / "r.json"

    code = cli.main(["run", "--seed", "42", "--out", str(out), "--tracking-uri", tracking_uri])

    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mlflow")]
    assert len(lines) == 1
    run_id = lines[0].split()[-1]
    assert len(spawned) == 1
    assert spawned[0].returncode == 0
    got = _logged(tracking_uri, run_id, tmp_path / "dl")
    assert got["status"] == "FINISHED"
    assert got["tags"]["sim.report_path"] == str(out)
    assert got["artifacts"]["report.json"] == out.read_bytes()
    assert got["artifacts"]["equity_drawdown.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_run_bad_input_no_mlflow_run_helper_reaped(
    tracking_uri: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    code = cli.main(
        ["run", "--data", str(tmp_path / "missing.parquet"), "--tracking-uri", tracking_uri]
    )

    assert code == 2
    assert capsys.readouterr().err.startswith("error: data file")
    assert len(spawned) == 1
    assert spawned[0].returncode is not None  # terminated and reaped: no zombie
    assert _helper_pids(tracking_uri) == []
    assert _runs(tracking_uri) == []


def test_cli_run_interrupted_no_mlflow_run_helper_reaped(
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("signals.pipeline.decision_inputs", interrupt)

    code = cli.main(["run", "--seed", "42", "--tracking-uri", tracking_uri])

    assert code == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert spawned[0].returncode is not None
    assert _helper_pids(tracking_uri) == []
    assert _runs(tracking_uri) == []


def test_console_script_sigint_mid_run_exit_130_no_helper_left(
    tracking_uri: str, tmp_path: Path
) -> None:
    exe = Path(sys.executable).with_name("sim")
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache")),
    }
    argv = [str(exe), "run", "--seed", "42", "--out", str(tmp_path / "r.json")]
    proc = subprocess.Popen(  # noqa: S603
        [*argv, "--tracking-uri", tracking_uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECS
    while not _helper_pids(tracking_uri) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _helper_pids(tracking_uri), "the helper never started"
    time.sleep(0.2)  # inside the backtest's imports

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=READY_TIMEOUT_SECS)

    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == "interrupted"
    assert _helper_pids(tracking_uri) == []
    assert _runs(tracking_uri) == []
