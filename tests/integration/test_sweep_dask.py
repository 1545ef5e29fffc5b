"""`sim sweep --engine dask`: a local two-worker dask.distributed cluster gives local results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from signals.bars import load_bars, to_panel
from signals.config import load_config
from sim.sweep import Engine, build_plan, group_inputs, local_engine, run_plan

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::UserWarning:distributed.*")
def test_sweep_dask_two_workers_equals_local_engine() -> None:
    distributed = pytest.importorskip("distributed")
    frame = load_bars(ROOT / "data" / "sample_hourly.parquet")
    ts = frame["ts"].unique().sort()[:2000]
    panel = to_panel(frame.filter(pl.col("ts").is_in(ts.implode())))
    config = load_config(ROOT / "config")
    grid = {
        "policy.risk.max_open_positions": [3, 5],
        "strategies.rules.breakout_lookback": [24, 48, 72],
        "strategies.rules.stop_loss_pct": [3.0, 6.0],
    }
    plan = build_plan(config, grid)
    inputs = [group_inputs(panel, g) for g in plan.groups]
    # compile in the parent first: the workers then load the kernels from numba's cache
    local = run_plan(plan, inputs, local_engine(), progress=False)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        engine = Engine(client.get_executor(pure=False), in_flight=4)
        remote = run_plan(plan, inputs, engine, chunk=2, progress=False)
        workers = {w["id"] for w in client.scheduler_info()["workers"].values()}
    assert len(workers) == 2
    np.testing.assert_array_equal(remote, local)
