"""Compile the simulator's kernels in a second process while the first run does stage 1.

With an empty numba cache, `sim run` spends most of its first run compiling: stage 1 (the
guards, regime, universe and strategy kernels, about a third) and then the simulator's kernels
with the step kernel (`sim.nb.SIMULATE_KERNELS`, the rest). They do not depend on each other, so
`sim run` starts `python -m sim.warmup CONFIG_DIR` on the machine's second core to compile
those into the cache, computes stage 1 meanwhile, and waits for the child before it
simulates; numba then loads the kernels from the cache instead of compiling them. If the child
fails, the main process just compiles them itself (same result, only slower).

The child calls `sim.nb.simulate` once on a two-bar panel with argument types identical to a real
run (C-contiguous int64/float64 arrays, the config's own parameter tuples): numba caches one
compiled version per argument-type signature, so any other types would compile in vain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

WAIT_SECONDS = 120.0


def compile_in_background(config_dir: str | Path) -> subprocess.Popen[bytes]:
    """Start the child that compiles the simulator's kernels for the config in `config_dir`."""
    return subprocess.Popen(  # noqa: S603  (our own module, no shell)
        [sys.executable, "-m", "sim.warmup", str(config_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(child: subprocess.Popen[bytes], timeout: float | None = None) -> bool:
    """Wait for the child (at most `timeout` s, default `WAIT_SECONDS`), killing it after that;
    return True when it compiled the kernels."""
    try:
        return child.wait(timeout=WAIT_SECONDS if timeout is None else timeout) == 0
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return False


def compile_simulator(config_dir: str | Path) -> None:
    """Call `simulate` once on a two-bar, one-symbol panel, compiling its kernels into the cache.

    A two-bar run fills no record buffer, so `grow_nb` is compiled here for each of them too:
    a long run grows them.
    """
    from signals.config import load_config  # noqa: PLC0415
    from signals.decision.params import (  # noqa: PLC0415
        product_status_codes,
        step_params,
        step_static,
    )
    from signals.records import Guards, Market  # noqa: PLC0415
    from signals.strategies import enabled_strategies  # noqa: PLC0415
    from sim.engine import fill_params  # noqa: PLC0415
    from sim.nb import grow_nb, simulate_without_proposals  # noqa: PLC0415

    config = load_config(config_dir)
    symbols = ("BTC-USD",)
    names = tuple(s.name for s in enabled_strategies(config.strategies))
    n_bars = 2
    prices = np.full((n_bars, 1), 100.0)
    market = Market(
        np.arange(n_bars, dtype=np.int64) * 3_600_000_000_000, 3_600_000_000_000, prices, prices,
        prices, prices, np.full((n_bars, 1), np.nan),
    )  # fmt: skip
    guards = Guards(
        np.zeros((n_bars, 1), dtype=np.int64), np.zeros(n_bars, dtype=np.int64),
        product_status_codes(config, symbols),
    )  # fmt: skip
    out = simulate_without_proposals(
        market,
        guards,
        step_params(config),
        step_static(config, symbols, names),
        fill_params(config),
        float(config.backtest.initial_cash_usd),
        int(config.backtest.seed),
    )
    for buffer in out[:4]:  # orders, their status, fills, trades
        grow_nb(buffer)


if __name__ == "__main__":
    compile_simulator(sys.argv[1])
