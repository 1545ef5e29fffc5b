"""The live daemon's window as it was before `live_bridge.window.BarWindow`: a polars frame.

`LiveDaemon._update_window` and `_panel` up to commit 3bd8ae0, unchanged but for living in a
class with `BarWindow`'s `update(newest, fetch, report)` / `panel(newest)` calls: every cycle
appends the fetched bars to a long frame, drops the bad ones and those before the window, and
scatters the frame into fresh NaN ``[window_bars, S]`` arrays. Slow and obvious on purpose.

One difference from `BarWindow`, kept as it was: a symbol's `_last_fetched_ns` moves when its
bars arrive, before the cycle's other fetches, so a fetch that raises part way (an
`AuthenticationError`) loses the bars fetched before it.
"""

from collections.abc import Callable

import numpy as np
import polars as pl

from live_bridge.errors import AuthenticationError, ExchangeError
from signals.bars import BAR_SCHEMA, Panel, bar_violations


class FrameWindow:
    """The daemon's old polars window over `symbols` (sorted)."""

    def __init__(self, symbols: tuple[str, ...], window_bars: int, bar_ns: int) -> None:
        self.symbols = symbols
        self.window_bars = window_bars
        self.bar_ns = bar_ns
        self._window = pl.DataFrame(schema=BAR_SCHEMA)
        self._last_fetched_ns: dict[str, int] = {}

    def update(
        self,
        newest_open_ns: int,
        fetch: Callable[[str, int, int], pl.DataFrame],
        report: Callable[[str, str, str], None],
    ) -> None:
        """Fetch what each symbol lacks, append it, drop bad bars and those before the window."""
        first_needed = newest_open_ns - (self.window_bars - 1) * self.bar_ns
        batches = []
        for symbol in self.symbols:
            last = self._last_fetched_ns.get(symbol)
            start = first_needed if last is None else max(first_needed, last + self.bar_ns)
            if start > newest_open_ns:
                continue
            try:
                new = fetch(symbol, start, newest_open_ns + self.bar_ns)
            except AuthenticationError:
                raise
            except ExchangeError as e:
                text = f"{symbol}: candles unavailable ({e})"
                report(symbol, "candles_unavailable", text)
                continue
            if new.height:
                self._last_fetched_ns[symbol] = int(new["ts"].dt.epoch("ns").max())  # type: ignore[arg-type]
                batches.append(new.select(list(BAR_SCHEMA)))
        window = self._window
        if batches:
            new = pl.concat(batches)
            bad = bar_violations(new)
            if bad:
                for _, symbol, message in bad:
                    text = f"{symbol}: bad bars skipped ({message})"
                    report(symbol, "bad_bars", text)
                rows = [i for i, _, _ in bad]
                new = new.with_row_index("_row").filter(~pl.col("_row").is_in(rows)).drop("_row")
            window = pl.concat([window, new])
        self._window = window.filter(pl.col("ts").dt.epoch("ns") >= first_needed)

    def panel(self, newest_open_ns: int) -> Panel:
        """Scatter the frame into fresh NaN arrays on the window's index ending at the newest."""
        n = self.window_bars
        ts = newest_open_ns - np.arange(n - 1, -1, -1, dtype=np.int64) * self.bar_ns
        cols = {
            k: np.full((n, len(self.symbols)), np.nan)
            for k in ("open", "high", "low", "close", "volume")
        }
        w = self._window
        if w.height:
            row = ((w["ts"].dt.epoch("ns").to_numpy() - ts[0]) // self.bar_ns).astype(np.int64)
            col = np.searchsorted(np.array(self.symbols), w["symbol"].to_numpy())
            ok = (row >= 0) & (row < n)
            for k in cols:
                cols[k][row[ok], col[ok]] = w[k].to_numpy()[ok]
        return Panel(
            ts_ns=ts, symbols=self.symbols, **{k: np.ascontiguousarray(v) for k, v in cols.items()}
        )
