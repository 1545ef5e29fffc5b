"""The live daemon's rolling window of closed bars, kept as preallocated arrays updated in place.

`BarWindow` holds the newest `window_bars` bars of every symbol as float64 ``[window_bars, S]``
rows per field (`open high low close volume`) and writes only the bars fetched each cycle. The
rows it hands to the decision are the ones the daemon's earlier polars window gave, bit for bit
(`tests/reference/live_window.py` keeps that window; `tests/live_bridge/test_window.py` compares
the two over random cycles):

* the rows end at the newest closed bar; a bar the venue did not give is NaN (stale);
* each symbol asks only for the bars after the newest one it was given (the whole window after
  a start), so a bar that turns up after a newer one was given stays NaN;
* a bar that breaks a rule of `signals.bars.bar_violations` is skipped and reported once, with
  that function's message, and not asked for again;
* a symbol whose candles could not be fetched (`ExchangeError`) is reported and asked for again
  at the next cycle; an `AuthenticationError` propagates.

One change: when a fetch raises, nothing changes, so the retried cycle asks again for every bar
(the old window had already noted the bars fetched before the error as given, so a retry after
an `AuthenticationError` left them NaN).

Layout: a ring buffer written twice. Bar number `b` (open time / `bar_ns`) lives in rows `b % n`
and `b % n + n` of a ``[5, 2n, S]`` array, so the window ending at bar `h` is the contiguous
slice of rows `(h + 1) % n` to that plus `n`: the panel is a view, built without a copy, and a
cycle writes only the new bars and clears the rows of the bars that left. Shifting one
``[n, S]`` array per field by the new bars instead moves every row each cycle (3.9 MB, about
0.3 ms at 500 symbols x 193 bars); the double ring costs twice the memory and no copy, and a
single ring would need that copy to hand out rows in time order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from live_bridge.errors import AuthenticationError, ExchangeError
from signals.bars import BAR_SCHEMA, MAX_FUTURE, MIN_TS, VALUE_COLUMNS, Panel, bar_violations

Fetch = Callable[[str, int, int], pl.DataFrame]
"""`fetch(symbol, start_ns, end_ns)`: the closed bars of `symbol` opening in `[start, end)`."""
Report = Callable[[str, str, str], None]
"""`report(symbol, kind, text)`: a divergence (`candles_unavailable` or `bad_bars`)."""

_COLUMNS = list(BAR_SCHEMA)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MIN_TS_NS = (MIN_TS - _EPOCH) // _US * 1_000
_MAX_FUTURE_NS = MAX_FUTURE // _US * 1_000
_CLOSE = VALUE_COLUMNS.index("close")
_NAT = np.iinfo(np.int64).min  # numpy's NaT as int64


class BarWindow:
    """The newest `window_bars` closed bars of `symbols`, as float64 arrays updated in place.

    Parameters
    ----------
    symbols : tuple of str
        Canonical symbols, sorted: the column order of the arrays.
    window_bars : int
        Rows of the window (>= 1).
    bar_ns : int
        Bar length, ns. The newest bar's open time given to `update` and `panel` is a multiple
        of it (`ValueError` otherwise); a fetched bar opening off that grid lands on the row
        whose bar it opens in, as in the old window.

    Notes
    -----
    The arrays of a `panel()` are views of the window: valid until the next `update` or
    `panel` call, and not to be written to.
    """

    def __init__(self, symbols: tuple[str, ...], window_bars: int, bar_ns: int) -> None:
        if window_bars < 1:
            msg = f"`window_bars` must be >= 1, was {window_bars}"
            raise ValueError(msg)
        if list(symbols) != sorted(symbols):
            msg = f"`symbols` must be sorted, was {list(symbols)}"
            raise ValueError(msg)
        n, n_symbols = int(window_bars), len(symbols)
        self.symbols = tuple(symbols)
        self.window_bars = n
        self.bar_ns = int(bar_ns)
        self._names = np.array(self.symbols)
        self._rows = np.full((len(VALUE_COLUMNS), 2 * n, n_symbols), np.nan)
        self._head: int | None = None  # bar number of the newest row
        self._back_ns = np.arange(n - 1, -1, -1, dtype=np.int64) * self.bar_ns
        # newest bar open time each symbol was given (any bar, bad ones included)
        self._last_ns = np.zeros(n_symbols, dtype=np.int64)
        self._given = np.zeros(n_symbols, dtype=np.bool_)
        # bars opening after the newest row (only a venue serving bars outside the asked range
        # or a clock that stepped back makes them), in arrival order: written once in range
        self._ahead_bar = np.empty(0, dtype=np.int64)
        self._ahead_col = np.empty(0, dtype=np.int64)
        self._ahead_values = np.empty((0, len(VALUE_COLUMNS)))

    # --- the cycle's update ------------------------------------------------------------------

    def update(self, newest_open_ns: int, fetch: Fetch, report: Report) -> None:
        """Fetch the bars each symbol lacks up to `newest_open_ns` and write them in.

        Symbols are asked in column order, each once, for `[start, newest_open_ns + bar_ns)`
        where `start` is the window's first bar, or the bar after the newest one the symbol was
        given when that is later; a symbol with nothing to ask is not asked. Nothing changes
        when a fetch raises (`AuthenticationError`, or anything but `ExchangeError`), so a
        retried cycle asks again for the same bars.
        """
        first_ns = newest_open_ns - (self.window_bars - 1) * self.bar_ns
        start = np.where(self._given, np.maximum(first_ns, self._last_ns + self.bar_ns), first_ns)
        end_ns = newest_open_ns + self.bar_ns
        cols: list[int] = []
        frames: list[pl.DataFrame] = []
        heights: list[int] = []
        for s in np.flatnonzero(start <= newest_open_ns).tolist():
            symbol = self.symbols[s]
            try:
                frame = fetch(symbol, int(start[s]), end_ns)
            except AuthenticationError:
                raise
            except ExchangeError as e:
                report(symbol, "candles_unavailable", f"{symbol}: candles unavailable ({e})")
                continue
            height = frame.height
            if height:
                cols.append(s)
                frames.append(frame)
                heights.append(height)
        self._add(newest_open_ns, cols, frames, np.array(heights, dtype=np.int64), report)

    def _add(
        self,
        newest_open_ns: int,
        cols: list[int],
        frames: list[pl.DataFrame],
        heights: np.ndarray,
        report: Report,
    ) -> None:
        if not frames:
            self._advance(newest_open_ns)
            return
        now = datetime.now(UTC)  # before `bar_violations` reads its own: see `_may_break_rules`
        new = _concat(frames)
        one_each = len(cols) == len(new)  # the usual cycle: one new bar per symbol
        asked = np.array(cols, dtype=np.int64)
        if not one_each:
            asked = np.repeat(asked, heights)
        ts_column = new.get_column("ts")
        if ts_column.dtype == BAR_SCHEMA["ts"]:
            ts = ts_column.to_numpy().view(np.int64)  # datetime64[ns], a missing time is NaT
        else:
            ts = ts_column.dt.epoch("ns").fill_null(_NAT).to_numpy()
        # a bar without a time never reached the old window's rows; `max` skips it
        has_ts = ts != _NAT if ts_column.null_count() else None
        values = np.column_stack([new.get_column(c).to_numpy() for c in VALUE_COLUMNS])
        names = new.get_column("symbol").to_numpy()
        own = bool(np.all(names == self._names[asked]))
        col = asked if own else np.searchsorted(self._names, names)
        bad: list[tuple[int, str, str]] = []
        if not own or _may_break_rules(ts, values, asked, now):
            bad = bar_violations(new)
        last = ts if one_each else np.maximum.reduceat(ts, heights.cumsum() - heights)
        self._last_ns[cols] = last
        self._given[cols] = True
        for _, symbol, message in bad:
            report(symbol, "bad_bars", f"{symbol}: bad bars skipped ({message})")
        head = self._advance(newest_open_ns)
        bar = ts // self.bar_ns
        inside = bar.min() > head - self.window_bars and bar.max() <= head
        if has_ts is None and not bad and inside:  # the usual cycle: all good, all in the window
            self._write(bar, col, values)
            return
        keep = np.ones(ts.size, dtype=np.bool_) if has_ts is None else has_ts
        keep[[row for row, _, _ in bad]] = False
        keep &= bar > head - self.window_bars
        ahead = keep & (bar > head)
        if ahead.any():
            self._ahead_bar = np.concatenate([self._ahead_bar, bar[ahead]])
            self._ahead_col = np.concatenate([self._ahead_col, col[ahead]])
            self._ahead_values = np.concatenate([self._ahead_values, values[ahead]])
            keep &= ~ahead
        if keep.all():
            self._write(bar, col, values)
        elif keep.any():
            self._write(bar[keep], col[keep], values[keep])

    def _write(self, bar: np.ndarray, col: np.ndarray, values: np.ndarray) -> None:
        # bars inside the window, in arrival order: a later bar on the same row and column wins
        n = self.window_bars
        row = bar % n
        # (column, bar) in increasing order when the bars came one block per symbol, in time
        key = col * n + (bar - bar.min())
        if key.size > 1 and not bool(np.all(key[1:] > key[:-1])):
            last = key.size - 1 - np.unique(key[::-1], return_index=True)[1]
            row, col, values = row[last], col[last], values[last]
        self._rows[:, row, col] = values.T
        self._rows[:, row + n, col] = values.T

    # --- moving the newest row ---------------------------------------------------------------

    def _advance(self, newest_open_ns: int) -> int:
        # make bar `newest_open_ns` the newest row; return its bar number
        if newest_open_ns % self.bar_ns:
            msg = (
                f"`newest_open_ns` must be a multiple of `bar_ns` ({self.bar_ns}), "
                f"was {newest_open_ns}"
            )
            raise ValueError(msg)
        b = newest_open_ns // self.bar_ns
        head, n = self._head, self.window_bars
        if head is None or b == head:
            self._head = b
            return b
        if b > head:
            # the rows of bars head+1 .. b held bars that are now older than the window
            self._clear(np.arange(head + 1, min(b, head + n) + 1) % n)
            self._head = b
            if self._ahead_bar.size:
                due = self._ahead_bar <= b
                bar, col, values = self._ahead_bar, self._ahead_col, self._ahead_values
                self._ahead_bar, self._ahead_col = bar[~due], col[~due]
                self._ahead_values = values[~due]
                inside = due & (bar > b - n)
                if inside.any():
                    self._write(bar[inside], col[inside], values[inside])
            return b
        # the clock stepped back: bars after `b` wait outside the window until it is back
        moved = np.arange(max(b + 1, head - n + 1), head + 1)
        rows = moved % n
        present = ~np.isnan(self._rows[_CLOSE, rows])
        i, s = np.nonzero(present)
        self._ahead_bar = np.concatenate([self._ahead_bar, moved[i]])
        self._ahead_col = np.concatenate([self._ahead_col, s])
        self._ahead_values = np.concatenate([self._ahead_values, self._rows[:, rows[i], s].T])
        self._clear(rows)
        self._head = b
        return b

    def _clear(self, rows: np.ndarray) -> None:
        if rows.size >= self.window_bars:
            self._rows.fill(np.nan)
        else:
            self._rows[:, rows] = np.nan
            self._rows[:, rows + self.window_bars] = np.nan

    # --- what the decision reads -------------------------------------------------------------

    def panel(self, newest_open_ns: int) -> Panel:
        """Return the window ending at bar `newest_open_ns` as a `Panel` of views (no copy).

        Rows are the bars opening at `newest_open_ns - (window_bars - 1 - i) * bar_ns`; a bar
        not given is NaN. Moving the newest row without an `update` drops the bars that leave
        the window, as an update with nothing new would.
        """
        i = (self._advance(newest_open_ns) + 1) % self.window_bars
        rows = self._rows[:, i : i + self.window_bars]
        fields = dict(zip(VALUE_COLUMNS, rows, strict=True))
        return Panel(ts_ns=newest_open_ns - self._back_ns, symbols=self.symbols, **fields)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    # the adapter's frames stacked in place, in the bar schema's columns; frames whose columns
    # differ take the per-frame select of the old window (and its errors). `pl.concat` and
    # frame-wide `select`/`to_numpy` go through polars' thread pool, whose wake-ups cost 2-10 ms
    # at 500 small frames on a busy machine; `vstack` and per-column calls stay on this thread.
    new = frames[0].clone()
    try:
        for frame in frames[1:]:
            new.vstack(frame, in_place=True)
    except pl.exceptions.PolarsError:
        return pl.concat([f.select(_COLUMNS) for f in frames], how="vertical")
    return new if new.columns == _COLUMNS else new.select(_COLUMNS)


def _may_break_rules(ts: np.ndarray, values: np.ndarray, asked: np.ndarray, now: datetime) -> bool:
    """Return False only when no bar breaks a rule of `signals.bars.bar_violations`.

    A cheap pass over bars that each name the symbol they were fetched for (`asked`, one block
    per symbol): finite, positive prices, volume >= 0, open and close within [low, high], time
    from 2009 up to `now` + `MAX_FUTURE`, and strictly increasing within a symbol (so neither
    unsorted nor duplicated). `now` is read before `bar_violations` reads its own, so a bar
    passing here passes there; when this returns True, `bar_violations` names the bars.
    """
    # prices >= low and <= high: open and close inside, high >= low; low > 0: all positive
    prices, low, high = values[:, :4], values[:, 2:3], values[:, 1:2]
    ok = bool(np.isfinite(values).all()) and bool((low > 0.0).all())
    ok = ok and bool((values[:, 4] >= 0.0).all()) and bool((prices >= low).all())
    if not ok or not bool((prices <= high).all()):
        return True
    now_ns = (now - _EPOCH) // _US * 1_000
    if int(ts.min()) < _MIN_TS_NS or int(ts.max()) > now_ns + _MAX_FUTURE_NS:
        return True
    same = asked[1:] == asked[:-1]
    return bool(np.any(same & (ts[1:] <= ts[:-1])))
