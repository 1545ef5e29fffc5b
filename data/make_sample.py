"""Regenerate the shipped synthetic sample `data/sample_hourly.parquet`.

Run from the repository root: ``python data/make_sample.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(ROOT))

from sim.synth import synth_bars  # noqa: E402

SAMPLE_PATH = ROOT / "data" / "sample_hourly.parquet"
SAMPLE_ARGS = {"seed": 42, "n_symbols": 8, "n_bars": 8760}


def main() -> None:
    """Write the sample data set."""
    synth_bars(**SAMPLE_ARGS).write_parquet(SAMPLE_PATH, compression="zstd")


if __name__ == "__main__":
    main()
