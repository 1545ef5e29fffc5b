"""The first run's background compile (`sim.warmup`) compiles what a real run calls."""

import subprocess
import sys

import numpy as np

from signals.config import load_config
from sim import warmup
from sim.engine import run_backtest
from sim.nb import SIMULATE_KERNELS, grow_nb
from tests.sim.conftest import PROJECT_ROOT, ohlc_from_close, panel_from_arrays


def test_warmup_compiles_exactly_the_signature_a_real_run_uses():
    config_dir = PROJECT_ROOT / "config"
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, (300, 2)), axis=0))
    panel = panel_from_arrays(*ohlc_from_close(close, 3), symbols=("BTC-USD", "ETH-USD"))
    warmup.compile_simulator(config_dir)
    compiled = {kernel: set(kernel.signatures) for kernel in SIMULATE_KERNELS}
    # every kernel `simulate` may call, including `grow_nb` for the four record buffers
    # (orders, their status, fills, trades) and the final mark, which a two-bar run needs not
    assert all(compiled.values())
    assert len(compiled[grow_nb]) == 4
    run_backtest(panel, load_config(config_dir))
    # nothing new: the child's compiles are the very versions a run loads from the cache
    assert {kernel: set(kernel.signatures) for kernel in SIMULATE_KERNELS} == compiled


def test_wait_for_kills_a_child_that_runs_too_long(monkeypatch):
    monkeypatch.setattr(warmup, "WAIT_SECONDS", 0.2)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert warmup.wait_for(child) is False
    assert child.returncode is not None  # killed and reaped, not left running


def test_wait_for_with_zero_timeout_stops_the_child_at_once():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert warmup.wait_for(child, timeout=0.0) is False
    assert child.returncode is not None


def test_wait_for_reports_a_failed_child():
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert warmup.wait_for(child) is False
