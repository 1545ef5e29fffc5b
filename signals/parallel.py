"""When stage 1 runs its per-symbol kernels with the symbols in parallel.

Each column-parallel kernel (`*_columns_nb`: `prange` over symbols) computes every column with
the same per-column routine as its serial twin, so the two give the same bits
(`tests/signals/test_parallel_columns.py`). Threads pay off only on wide arrays: a live
window of a few symbols would spend more on waking threads than on the work.
"""

from __future__ import annotations

PARALLEL_MIN_CELLS = 200_000
"""Bars x symbols from which `columns_in_parallel` is true (e.g. 50 symbols x 4,000 bars)."""


def columns_in_parallel(shape: tuple[int, ...]) -> bool:
    """Return whether a `[T, S]` array of `shape` gets the column-parallel kernels."""
    return len(shape) == 2 and shape[1] > 1 and shape[0] * shape[1] >= PARALLEL_MIN_CELLS
