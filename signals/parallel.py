"""When stage 1 runs its per-symbol kernels with the symbols in parallel.

Each column-parallel kernel (`*_columns_nb`: `prange` over symbols) computes every column with
the same per-column routine as its serial twin, so the two give the same bits
(`tests/signals/test_parallel_columns.py`). Threads pay off only on wide arrays: a live
window of a few symbols would spend more on waking threads than on the work.
"""

from __future__ import annotations

import numpy as np

from signals.indicators.nb import copy_tiles_nb

PARALLEL_MIN_CELLS = 200_000
"""Bars x symbols from which `columns_in_parallel` is true (e.g. 50 symbols x 4,000 bars)."""


def columns_in_parallel(shape: tuple[int, ...]) -> bool:
    """Return whether a `[T, S]` array of `shape` gets the column-parallel kernels."""
    return len(shape) == 2 and shape[1] > 1 and shape[0] * shape[1] >= PARALLEL_MIN_CELLS


def symbol_major(x: np.ndarray) -> np.ndarray:
    """Return `x` (`[T, S]`) with each symbol's column contiguous (Fortran order), the same
    values: `x` itself when it already is (one symbol), a copy by `np.asfortranarray` for a
    narrow array, by the tiled two-thread `copy_tiles_nb` for a wide one."""
    if x.flags.f_contiguous or not columns_in_parallel(x.shape):
        return np.asfortranarray(x)
    out = np.empty(x.shape, dtype=x.dtype, order="F")
    # a tiled copy: 500 x 20k float64 72-81 vs 133-139 ms by numpy, under load (2026-12-07)
    copy_tiles_nb(x, out)
    return out
