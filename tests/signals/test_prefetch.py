"""`prefetch_row_nb` is a hint: it compiles for 1-D and 2-D arrays, changes nothing, never faults."""

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from signals._prefetch import prefetch_row_nb


@njit
def _hint_every_row_and_beyond(arr, extra_rows):
    total = 0.0
    for row in range(arr.shape[0] + extra_rows):
        prefetch_row_nb(arr, row)
        if row < arr.shape[0]:
            total += arr.ravel()[row] if arr.ndim == 1 else arr[row, 0]
    return total


@pytest.mark.parametrize("shape", [(17,), (17, 1), (17, 5)])
def test_prefetch_changes_nothing_even_past_the_end(shape):
    arr = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    before = arr.copy()
    expected = arr[:, 0].sum() if arr.ndim == 2 else arr.sum()
    # rows far past the end (about 8 MB beyond a 17-row array) are hinted without a fault
    assert _hint_every_row_and_beyond(arr, 1_000_000) == expected
    assert np.array_equal(arr, before)


def test_prefetch_works_on_int_arrays():
    @njit
    def hint(arr):
        prefetch_row_nb(arr, 3)
        return arr[3]

    assert hint(np.arange(5, dtype=np.int64)) == 3


def test_prefetch_rejects_a_3d_array():
    @njit
    def hint(arr):
        prefetch_row_nb(arr, 0)

    with pytest.raises(TypingError):
        hint(np.zeros((2, 2, 2)))
