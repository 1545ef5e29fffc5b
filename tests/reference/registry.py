"""Kernel -> reference registry, shared by correctness tests and benchmarks.

Each `Entry` builds the kernel's arguments from one seeded price-like array `x` `[T, S]` (NaNs
allowed) and a small integer `scale` that sets the windows, so hypothesis tests and benchmarks
are parametrised from the same list (numbagg `test/conftest.py::COMPARISONS`). Derived arrays
(high, low, volume) are element-wise functions of `x`, so NaN rows stay NaN rows.

The `check_*` helpers hold the property assertions every kernel must pass.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from signals.enums import Regime
from signals.indicators import nb as ind
from signals.regime import nb as reg
from signals.triggers import nb as trg
from tests.reference import indicators as ref

FIRST_BAR_NO = 473_353  # an arbitrary absolute bar number; the late-start tests move it along
RTOL = 1e-12  # tolerances for kernel == reference (same summation order, so in practice 0)
ATOL = 1e-12


def _frac(x: np.ndarray, mult: float) -> np.ndarray:
    # Deterministic pseudo-random fraction in [0, 1) per element; NaN stays NaN.
    with np.errstate(invalid="ignore", over="ignore"):
        return np.ascontiguousarray(np.abs(x * mult) % 1.0)


def high_of(x: np.ndarray) -> np.ndarray:
    """Return a high series above `x` (up to +2 %), NaN where `x` is NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.ascontiguousarray(x * (1.0 + 0.02 * _frac(x, 997.0)))


def low_of(x: np.ndarray) -> np.ndarray:
    """Return a low series below `x` (down to -2 %), NaN where `x` is NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.ascontiguousarray(x * (1.0 - 0.02 * _frac(x, 7919.0)))


def volume_of(x: np.ndarray) -> np.ndarray:
    """Return a volume series in [0, 13) with occasional spikes, NaN where `x` is NaN."""
    return np.ascontiguousarray(13.0 * _frac(x, 104729.0) ** 3)


def first_column(x: np.ndarray) -> np.ndarray:
    """Return column 0 as a contiguous 1-D array (regime input); empty if no columns."""
    if x.shape[1] == 0:
        return np.empty(x.shape[0])
    return np.ascontiguousarray(x[:, 0])


@dataclass(frozen=True)
class Entry:
    """One kernel with its reference and argument builder.

    `window(args)` is the number of rows each output row depends on (the window independence
    property), None for recursive or stateful kernels. `nan_rule` is "window" when a NaN input
    nulls every output whose window holds it, "row" when it nulls only its own row, "none"
    otherwise. The null output is NaN for floats, 0 for triggers, Unknown for the regime.
    `anchor` is the index of an anchored kernel's `first_bar_no` argument, which moves with the
    rows when the inputs are sliced (`slice_args`).
    """

    name: str
    family: str
    kernel: Callable[..., np.ndarray]
    reference: Callable[..., np.ndarray]
    make_args: Callable[[np.ndarray, int], tuple[Any, ...]]
    window: Callable[[tuple[Any, ...]], int] | None
    nan_rule: str = "row"
    null: float = field(default=np.nan)
    anchor: int | None = None


def _w(i: int) -> Callable[[tuple[Any, ...]], int]:
    # window = args[i]
    return lambda args: int(args[i])


def _w1(i: int) -> Callable[[tuple[Any, ...]], int]:
    # window = args[i] + 1
    return lambda args: int(args[i]) + 1


ENTRIES: list[Entry] = [
    # --- indicators: windowed ---
    Entry(
        "sma",
        "indicators",
        ind.sma_nb,
        ref.sma_ref,
        lambda x, w: (x, w, FIRST_BAR_NO),
        _w(1),
        "window",
        anchor=2,
    ),
    Entry(
        "rolling_sum",
        "indicators",
        ind.rolling_sum_nb,
        ref.rolling_sum_ref,
        lambda x, w: (x, w, FIRST_BAR_NO),
        _w(1),
        "window",
        anchor=2,
    ),
    Entry(
        "rolling_max",
        "indicators",
        ind.rolling_max_nb,
        ref.rolling_max_ref,
        lambda x, w: (high_of(x), w),
        _w(1),
        "window",
    ),
    Entry(
        "rolling_min",
        "indicators",
        ind.rolling_min_nb,
        ref.rolling_min_ref,
        lambda x, w: (low_of(x), w),
        _w(1),
        "window",
    ),
    Entry(
        "log_returns",
        "indicators",
        ind.log_returns_nb,
        ref.log_returns_ref,
        lambda x, w: (x, w),
        _w1(1),
    ),
    Entry(
        "realized_vol",
        "indicators",
        ind.realized_vol_nb,
        ref.realized_vol_ref,
        lambda x, w: (x, w + 1, FIRST_BAR_NO),
        lambda args: int(args[1]) + 1,
        "window",
        anchor=2,
    ),
    Entry(
        "zscore",
        "indicators",
        ind.zscore_nb,
        ref.zscore_ref,
        lambda x, w: (x, w + 1, FIRST_BAR_NO),
        _w(1),
        "window",
        anchor=2,
    ),
    Entry(
        "volume_ratio",
        "indicators",
        ind.volume_ratio_nb,
        ref.volume_ratio_ref,
        lambda x, w: (volume_of(x), w, FIRST_BAR_NO),
        _w1(1),
        "window",
        anchor=2,
    ),
    Entry(
        "bars_since_valid",
        "indicators",
        ind.bars_since_valid_nb,
        ref.bars_since_valid_ref,
        lambda x, w: (x,),
        None,
        "none",
    ),
    # --- indicators: recursive ---
    Entry("ema", "indicators", ind.ema_nb, ref.ema_ref, lambda x, w: (x, w), None),
    Entry(
        "atr",
        "indicators",
        ind.atr_nb,
        ref.atr_ref,
        lambda x, w: (high_of(x), low_of(x), x, w),
        None,
    ),
    Entry("rsi", "indicators", ind.rsi_nb, ref.rsi_ref, lambda x, w: (x, w), None),
    # --- triggers ---
    Entry(
        "bad_tick_mask",
        "triggers",
        trg.bad_tick_mask_nb,
        ref.bad_tick_mask_ref,
        lambda x, w: (x, volume_of(x), 0.1, 1.5, w, FIRST_BAR_NO),
        # closes t-2..t and the volume ratio at t-1 (volume rows t-1-w .. t-1)
        lambda args: args[4] + 2,
        null=0,
        anchor=5,
    ),
    Entry(
        "breakout",
        "triggers",
        trg.breakout_nb,
        ref.breakout_ref,
        lambda x, w: (x, high_of(x), w),
        _w1(2),
        null=0,
    ),
    Entry(
        "momentum",
        "triggers",
        trg.momentum_nb,
        ref.momentum_ref,
        lambda x, w: (x, w, 0.01),
        _w1(1),
        null=0,
    ),
    Entry(
        "volume_spike",
        "triggers",
        trg.volume_spike_nb,
        ref.volume_spike_ref,
        lambda x, w: (volume_of(x), w, 1.5, FIRST_BAR_NO),
        _w1(1),
        null=0,
        anchor=3,
    ),
    Entry(
        "mean_reversion",
        "triggers",
        trg.mean_reversion_nb,
        ref.mean_reversion_ref,
        lambda x, w: (x, w + 1, 1.0, FIRST_BAR_NO),
        _w(1),
        null=0,
        anchor=3,
    ),
    Entry(
        "mean_reversion_exit",
        "triggers",
        trg.mean_reversion_exit_nb,
        ref.mean_reversion_exit_ref,
        lambda x, w: (x, w + 1, 0.5, FIRST_BAR_NO),
        _w(1),
        null=0,
        anchor=3,
    ),
    Entry(
        "ma_cross",
        "triggers",
        trg.ma_cross_nb,
        ref.ma_cross_ref,
        lambda x, w: (x, w, 2 * w + 1, FIRST_BAR_NO),
        lambda args: max(int(args[1]), int(args[2])) + 1,
        null=0,
        anchor=3,
    ),
    # --- regime ---
    Entry(
        "regime",
        "regime",
        reg.regime_nb,
        ref.regime_ref,
        lambda x, w: (first_column(x), w, 2 * w, w + 1, w + 2, w, 0.1, 1.5, FIRST_BAR_NO),
        lambda args: reg.regime_warmup_bars(*args[1:6]),
        null=Regime.Unknown,
        anchor=8,
    ),
]


def entries(family: str) -> list[Entry]:
    """Return the registry entries of one family ("indicators", "triggers", "regime")."""
    return [e for e in ENTRIES if e.family == family]


# --- property helpers ---


def slice_args(
    args: tuple[Any, ...], start: int, stop: int | None = None, anchor: int | None = None
) -> tuple[Any, ...]:
    """Slice every array argument along the time axis, keeping it C-contiguous; the
    argument at index `anchor` (an anchored kernel's `first_bar_no`) moves on by `start`."""
    return tuple(
        np.ascontiguousarray(a[start:stop])
        if isinstance(a, np.ndarray)
        else (a + start if i == anchor else a)
        for i, a in enumerate(args)
    )


def assert_same(actual: np.ndarray, expected: np.ndarray, rtol=RTOL, atol=ATOL) -> None:
    """Assert equal dtype, shape, NaN positions and values (floats within rtol/atol)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(actual, expected)


def check_reference(entry: Entry, x: np.ndarray, scale: int) -> None:
    """Kernel equals its reference."""
    args = entry.make_args(x, scale)
    with np.errstate(all="ignore"):
        expected = entry.reference(*args)
    assert_same(entry.kernel(*args), expected)


def check_prefix(entry: Entry, x: np.ndarray, scale: int, n: int) -> None:
    """Output on the first `n` rows equals the first `n` rows of the full output."""
    args = entry.make_args(x, scale)
    full = entry.kernel(*args)
    head = entry.kernel(*slice_args(args, 0, n, entry.anchor))
    np.testing.assert_array_equal(head, full[:n], strict=True)


def check_window_independence(entry: Entry, x: np.ndarray, scale: int, k: int) -> None:
    """Output on rows `k:` equals the full output for rows >= k + window - 1, bit for bit."""
    assert entry.window is not None
    args = entry.make_args(x, scale)
    window = entry.window(args)
    full = entry.kernel(*args)
    tail = entry.kernel(*slice_args(args, k, anchor=entry.anchor))
    first = k + window - 1
    np.testing.assert_array_equal(tail[first - k :], full[first:], strict=True)


def check_nan_rule(entry: Entry, x: np.ndarray, scale: int) -> None:
    """NaN inputs give the null output on their row ("row") or their whole window ("window")."""
    args = entry.make_args(x, scale)
    out = entry.kernel(*args)
    nan_rows = np.isnan(args[0])
    if nan_rows.ndim == 2 and out.ndim == 1:
        nan_rows = nan_rows[:, 0]
    if entry.nan_rule == "window":
        assert entry.window is not None
        window = entry.window(args)
        poisoned = nan_rows.copy()
        for lag in range(1, window):
            poisoned[lag:] |= nan_rows[:-lag]
    else:
        poisoned = nan_rows
    got = out[poisoned]
    if np.isnan(entry.null):
        assert np.isnan(got).all()
    else:
        assert (got == entry.null).all()


def check_runs(entry: Entry, x: np.ndarray, scale: int) -> np.ndarray:
    """Kernel runs on any input, returns the declared shape, and is deterministic."""
    args = entry.make_args(x, scale)
    first = entry.kernel(*args)
    again = entry.kernel(*slice_args(args, 0))
    assert first.shape == args[0].shape
    assert first.tobytes() == again.tobytes()
    return first
