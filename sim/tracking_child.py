"""Log a `sim run` to MLflow from a helper process that imports MLflow while the backtest runs.

MLflow's imports (`mlflow.tracking` with pandas and `mlflow.genai`, the SQLAlchemy store,
matplotlib for the plot) take about 2 s, more than the backtest itself; paid in-process after
the backtest they made `sim run` three to four times slower than `--no-mlflow`. A thread gains
nothing (the imports hold the GIL), so `sim run` starts `python -m sim.tracking_child URI` on
the machine's second core before it loads the data (`TrackingChild`). The child imports
MLflow, then, if the payload is not there yet, matplotlib, says `{"ready": true}` on stdout
and blocks on its stdin. Once the report is written the parent hands over:

* on stdin, one JSON object: the tracking URI, the experiment, `sim.tracking.run_payload`
  (run name, tags, params, metrics), a temp folder and who drew the plot;
* in that folder, `artifacts/` with `report.json` and `equity_curve.parquet` (written by the
  parent, which has polars loaded) and the plot `equity_drawdown.png`, or, when the child
  said it was ready, `ts.npy` / `equity.npy` for the child to draw it. Whoever is idle draws:
  on the shipped data the parent is done first (~1.0 s vs ~1.8 s), so it imports matplotlib
  and draws while the child still imports MLflow; after a long backtest the child has long
  been waiting with matplotlib loaded.

The child then calls `sim.tracking.log_prepared` (the same code as the in-process
`sim.tracking.log_run`) and answers with JSON lines: `{"received": true}` as soon as it has
the payload, then `{"run_id": ...}` or `{"error": "..."}`. Its own stdout goes to stderr, so
nothing MLflow prints can garble the answer. It leaves with `os._exit`, skipping the ~1.5 s
teardown of SQLAlchemy/pandas.

Failure handling in the parent (`TrackingChild.log`):

* the child could not start, or exited before it took the payload (MLflow missing, a broken
  install): the parent logs in-process with `log_run`, i.e. exactly the old behaviour;
* the child took the payload and reported an error, or died: `ConfigError` naming the tracking
  URI (`sim` prints one line and exits 2; the report is already on disk);
* the parent fails or is interrupted before handing over (bad input, Ctrl-C):
  `TrackingChild.close` terminates and reaps the child. Before it has a payload the child only
  imports, so no store is opened and no run created. The child runs in its own session, so a
  Ctrl-C in the terminal reaches only the parent, which cleans up; if the parent dies outright,
  the child reads end-of-file on stdin and exits. A Ctrl-C while the child is logging
  terminates it too, which can leave that run RUNNING, as an interrupted `log_run` did.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from signals.errors import ConfigError
from sim import tracking

if TYPE_CHECKING:
    from signals.config import PlatformConfig

STOP_TIMEOUT_SECS = 5.0
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


class TrackingChild:
    """The parent's handle on the helper process; use as a context manager.

    Start it as early as possible (it imports for ~2 s), call `log` once when the report is
    written, and leave the `with` block: an unused or interrupted child is terminated and
    reaped there. `start=False` defers the start to a call of `start`.
    """

    def __init__(self, tracking_uri: str | None = None, *, start: bool = True) -> None:
        self.tracking_uri = tracking.resolve_tracking_uri(tracking_uri)
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = False
        self._ready = False
        if start:
            self.start()

    def start(self) -> None:
        """Start the child (once; later calls do nothing). Without it `log` logs in-process."""
        if self._started:
            return
        self._started = True
        try:
            self.proc = subprocess.Popen(  # noqa: S603  (our own module, no shell)
                [sys.executable, "-m", "sim.tracking_child", self.tracking_uri],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            self.proc = None  # `log` logs in-process

    def __enter__(self) -> TrackingChild:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Terminate the child if it is still running, reap it and close its pipes."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def ready(self, timeout: float = 0.0) -> bool:
        """Return True once the child has imported everything and waits for the payload
        (waiting at most `timeout` s for it to say so)."""
        if self._ready:
            return True
        proc = self.proc
        if proc is None or proc.stdout is None:
            return False
        if select.select([proc.stdout], [], [], timeout)[0]:
            line = proc.stdout.readline()  # one short line, written whole by the child
            self._ready = bool(line) and json.loads(line).get("ready", False)
        return self._ready

    def log(
        self,
        report: Mapping[str, Any],
        result: tracking._HasCurve,
        config: PlatformConfig,
        out_path: str | Path | None = None,
        *,
        extra_artifacts: Mapping[str, Path] | None = None,
    ) -> str | None:
        """Log the run through the child, as `sim.tracking.log_run` would; return the run id.

        Raises
        ------
        ConfigError
            When the tracking store refuses the run or the child dies while logging.
        """
        import numpy as np  # noqa: PLC0415

        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            return tracking.log_run(
                report, result, config, out_path, tracking_uri=self.tracking_uri,
                extra_artifacts=extra_artifacts,
            )  # fmt: skip
        uri = self.tracking_uri
        payload = tracking.run_payload(report, config, out_path)
        folder = Path(tempfile.mkdtemp(prefix="sim-mlflow-"))
        try:
            artifacts = folder / "artifacts"
            artifacts.mkdir()
            # Whoever is idle draws the plot: the child once it has imported everything, else
            # this process, while the child is still importing MLflow (`sim run` on the
            # shipped data: the parent is done ~0.5 s before the child is ready).
            plot_in_child = self.ready()
            try:
                tracking.write_data_artifacts(report, result.curve, artifacts)
                tracking.copy_artifacts(extra_artifacts or {}, artifacts)
                ts, equity = tracking.plot_series(result.curve)
                if plot_in_child:
                    np.save(folder / "ts.npy", ts, allow_pickle=False)
                    np.save(folder / "equity.npy", equity, allow_pickle=False)
                else:
                    tracking.write_plot(
                        ts, equity, payload["run_name"], artifacts / tracking.PLOT_ARTIFACT
                    )
            except OSError as e:
                raise ConfigError(tracking.store_refused(uri, f"logging failed: {e}")) from e
            job = {
                "tracking_uri": uri,
                "experiment": tracking.experiment_name(),
                "payload": payload,
                "folder": str(folder),
                "plot": plot_in_child,
            }
            try:
                proc.stdin.write(json.dumps(job).encode() + b"\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the child is gone; its answer (none) says so below
            answer = [json.loads(line) for line in proc.stdout.read().splitlines() if line]
            code = proc.wait()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.close()
        if not any(a.get("received") for a in answer):
            # It never took the payload: nothing was logged, so log here (same code, slower).
            return tracking.log_run(
                report, result, config, out_path, tracking_uri=uri, extra_artifacts=extra_artifacts
            )
        last = answer[-1]
        if "run_id" in last:
            return str(last["run_id"])
        if "error" in last:
            raise ConfigError(str(last["error"]))
        raise ConfigError(
            tracking.store_refused(
                uri, f"the logging process exited with code {code} before it finished"
            )
        )


# --------------------------------------------------------------------------------------------
# the child
# --------------------------------------------------------------------------------------------


def preload(tracking_uri: str) -> None:
    """Import what logging to `tracking_uri` needs, except the plot; open no store, no file."""
    import mlflow.entities  # noqa: F401, PLC0415
    import mlflow.exceptions  # noqa: F401, PLC0415
    import mlflow.tracking  # noqa: F401, PLC0415

    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in _SQL_SCHEMES:
        import mlflow.store.artifact.local_artifact_repo  # noqa: F401, PLC0415
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401, PLC0415
    elif scheme in ("http", "https"):
        import mlflow.store.tracking.rest_store  # noqa: F401, PLC0415


def preload_plot() -> None:
    """Import what `sim.tracking.write_plot` needs (matplotlib, ~0.3 s)."""
    import matplotlib.backends.backend_agg  # noqa: F401, PLC0415
    import matplotlib.figure  # noqa: F401, PLC0415


def _answer(channel: TextIO, message: Mapping[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def child_main(tracking_uri: str) -> int:
    """Preload, wait for the payload on stdin, draw the plot, log the run, answer on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed lands on stderr, not in the answer
    tracking._quiet_env()  # before MLflow's imports, as in log_run
    try:
        preload(tracking_uri)
        if not select.select([sys.stdin], [], [], 0)[0]:
            # No payload yet: the parent is still busy, so this process will draw the plot.
            preload_plot()
            _answer(channel, {"ready": True})
    except ImportError:
        return 3  # no answer: the parent logs in-process and reports what is missing
    data = sys.stdin.buffer.read()
    if not data.strip():
        return 0  # the parent closed stdin without a payload: nothing to log
    job = json.loads(data)
    _answer(channel, {"received": True})
    import numpy as np  # noqa: PLC0415

    uri = job["tracking_uri"]
    try:
        folder = Path(job["folder"])
        artifacts = folder / "artifacts"
        if job["plot"]:
            ts = np.load(folder / "ts.npy", allow_pickle=False)
            equity = np.load(folder / "equity.npy", allow_pickle=False)
            tracking.write_plot(
                ts, equity, job["payload"]["run_name"], artifacts / tracking.PLOT_ARTIFACT
            )
        run_id = tracking.log_prepared(uri, job["experiment"], job["payload"], artifacts)
    except ConfigError as e:
        _answer(channel, {"error": str(e)})
    except Exception as e:  # noqa: BLE001  (any failure is reported to the parent)
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        _answer(channel, {"error": tracking.store_refused(uri, f"logging failed: {e!r}")})
    else:
        _answer(channel, {"run_id": run_id})
    return 0


if __name__ == "__main__":
    code = child_main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown (SQLAlchemy, pandas): the answer is sent
