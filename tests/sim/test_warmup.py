"""The first run's background compile (`sim.warmup`) compiles what a real run calls."""

import subprocess
import sys

import numpy as np

from signals.config import load_config
from sim import warmup
from sim.engine import run_backtest
from sim.nb import simulate_nb
from tests.sim.conftest import PROJECT_ROOT, ohlc_from_close, panel_from_arrays


def test_warmup_compiles_exactly_the_signature_a_real_run_uses():
    config_dir = PROJECT_ROOT / "config"
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, (300, 2)), axis=0))
    panel = panel_from_arrays(*ohlc_from_close(close, 3), symbols=("BTC-USD", "ETH-USD"))
    run_backtest(panel, load_config(config_dir))
    used = set(simulate_nb.signatures)
    warmup.compile_simulator(config_dir)
    # nothing new: the child's compile is the very version the run loads from the cache
    assert set(simulate_nb.signatures) == used


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
