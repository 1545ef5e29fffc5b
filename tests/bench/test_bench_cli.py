"""Wall time of `sim run --seed 42 --no-mlflow` as a subprocess, warm and cold numba cache.

Measured only with `--benchmark-enable` (each run is a whole process: ~1 s warm, tens of seconds
cold). Times are written to `reports/bench/sim_run.json`.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_backtest import benchmarks_enabled
from tests.sim.conftest import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "bench" / "sim_run.json"
NOTICE = "Compiling numba kernels"
SIM = Path(sys.executable).with_name("sim")


@pytest.fixture(autouse=True)
def _only_when_enabled(request):
    if not benchmarks_enabled(request.config):
        pytest.skip("a measurement, not a unit test: run with --benchmark-enable")


def _sim_run(cache_dir: str, out: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    started = time.perf_counter()
    done = subprocess.run(
        [str(SIM), "run", "--seed", "42", "--no-mlflow", "--out", str(out)],
        capture_output=True, text=True, timeout=900, env=env, check=False, cwd=PROJECT_ROOT,
    )  # fmt: skip
    return time.perf_counter() - started, done


def _record(key: str, value: dict) -> None:
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data[key] = value
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.mark.benchmark(group="sim_run|cli")
def test_bench_sim_run_warm_cache(benchmark, tmp_path):
    cache = os.environ.get("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
    seconds, done = _sim_run(cache, tmp_path / "warmup.json")  # fills the cache if needed
    assert done.returncode == 0, done.stderr
    times = []

    def once():
        elapsed, result = _sim_run(cache, tmp_path / "r.json")
        assert result.returncode == 0, result.stderr
        assert NOTICE not in result.stderr
        times.append(elapsed)

    benchmark.pedantic(once, rounds=5, warmup_rounds=0)
    benchmark.extra_info.update({"best_s": min(times), "first_s": seconds})
    _record("warm_cache", {"best_of_5_s": min(times), "runs_s": times, "first_run_s": seconds})
    print(f"\nsim run --seed 42 --no-mlflow, warm cache: best {min(times):.2f} s of {times}")


@pytest.mark.benchmark(group="sim_run|cli")
def test_bench_sim_run_empty_cache_prints_notice_and_finishes(benchmark, tmp_path):
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    result = {}

    def once():
        result["seconds"], result["done"] = _sim_run(str(cache), tmp_path / "cold.json")

    benchmark.pedantic(once, rounds=1, iterations=1)
    done = result["done"]
    assert done.returncode == 0, done.stderr
    assert NOTICE in done.stderr
    assert (tmp_path / "cold.json").is_file()
    benchmark.extra_info["cold_s"] = result["seconds"]
    _record("empty_cache", {"first_run_s": result["seconds"]})
    print(f"\nsim run --seed 42 --no-mlflow, empty NUMBA_CACHE_DIR: {result['seconds']:.1f} s")
