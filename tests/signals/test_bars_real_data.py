"""Load real BTC-USD bars through `load_bars`.

The `backtesting` package (AGPL-3.0, a dev dependency) ships monthly BTCUSD bars at
`backtesting/test/BTCUSD.csv`. They are read from the installed package, never copied into
this repository. The file has an unnamed date column and naive dates; the test renames the
column and states the timezone explicitly (UTC), as the loader requires.
"""

import importlib.util
from pathlib import Path

import polars as pl
import pytest

from signals.bars import load_bars, validate_bars
from signals.errors import DataError


@pytest.fixture(name="btcusd_csv", scope="module")
def fixture_btcusd_csv():
    spec = importlib.util.find_spec("backtesting")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the `backtesting` dev dependency is not installed")
    path = Path(spec.submodule_search_locations[0]) / "test" / "BTCUSD.csv"
    if not path.is_file():
        pytest.skip(f"{path} is missing from the installed `backtesting` package")
    return path


def test_load_bars_backtesting_btcusd_csv_valid_btc_usd(btcusd_csv, tmp_path):
    raw = pl.read_csv(btcusd_csv)
    assert raw.columns[0] == ""
    raw = raw.rename({"": "date"}).with_columns(pl.col("date") + "T00:00:00+00:00")
    path = tmp_path / "btcusd.csv"
    raw.write_csv(path)

    frame = load_bars(path, symbol="BTCUSD")

    assert frame["symbol"].unique().to_list() == ["BTC-USD"]
    assert frame.height >= 150
    report = validate_bars(frame)
    assert report.start.year == 2012
    assert 28 * 86_400 * 10**9 <= report.bar_ns <= 31 * 86_400 * 10**9


def test_load_bars_backtesting_btcusd_naive_dates_rejected(btcusd_csv, tmp_path):
    path = tmp_path / "naive.csv"
    pl.read_csv(btcusd_csv).rename({"": "date"}).write_csv(path)
    with pytest.raises(DataError, match="`ts` must carry a UTC offset, was naive '2012-01-31'"):
        load_bars(path, symbol="BTCUSD")
