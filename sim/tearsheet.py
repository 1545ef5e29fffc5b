"""The run tearsheet: one self-contained HTML page per backtest, and `sim report`.

`sim run` writes, beside its JSON report `R.json`, the per-bar series the page needs
(`R.tearsheet.parquet`, see `sim.tearsheet_data`; the JSON report stays as it was) and the page
`R.html`, and logs the page to MLflow as the run's `tearsheet.html`. `sim report R.json` draws
the page again from those two files; without the Parquet file it draws what the report alone
holds (trades, per-symbol PnL, no-trade reasons, metrics) and says which sections are missing.
`sim report SWEEP.parquet|.csv --x KEY --y KEY` draws a heat map of a metric over two swept
parameters from the table `sim sweep --out` writes.

The figures are matplotlib PNGs embedded as base64 `data:` URIs and the styles are inline, so
the page fetches nothing and opens the same offline, from an MLflow artifact view or a mail
attachment. (Plotly would add interactivity, but its JavaScript is ~4.5 MB inlined into every
page and another dependency; matplotlib is already one.)
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signals.errors import DataError, PlatformError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from signals.config import PlatformConfig
    from sim.engine import BacktestResult

HTML_ARTIFACT = "tearsheet.html"
SERIES_SUFFIX = ".tearsheet.parquet"
SERIES_META_KEY = "sim.tearsheet"
SWEEP_SUFFIXES = (".parquet", ".csv")
MAX_TRADE_ROWS = 2000
_DPI = 100
_WIDTH_IN = 11.0
_MAX_POINTS = 6000  # per line; longer series are thinned to each bucket's min and max

_BLUE, _GREY, _RED, _GREEN = "#1f5fa8", "#8a8f98", "#c0392b", "#1e8449"
_THEME_COLOURS = ("#1f5fa8", "#e67e22", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#d4ac0d")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def series_path(report_path: str | Path) -> Path:
    """Return the path of the per-bar series of the report `R.json`: `R.tearsheet.parquet`."""
    path = Path(report_path)
    return path.with_name(path.stem + SERIES_SUFFIX)


def html_path(report_path: str | Path) -> Path:
    """Return the default tearsheet path of the report at `report_path` (`R.html`)."""
    return Path(report_path).with_suffix(".html")


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _identity(report: Mapping[str, Any]) -> dict[str, Any]:
    meta = report["metadata"]
    keys = ("seed", "config_hash", "data_hash", "n_bars", "start", "end")
    return {k: meta.get(k) for k in keys}


def write_series(series: pl.DataFrame, report: Mapping[str, Any], path: Path) -> Path:
    """Write the per-bar series as Parquet, stamped with the report's seed, hashes and range."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = json.dumps(_identity(report), sort_keys=True)
    series.write_parquet(path, compression="zstd", metadata={SERIES_META_KEY: stamp})
    return path


def read_series(path: Path, report: Mapping[str, Any]) -> pl.DataFrame:
    """Read the per-bar series of `report` from `path`.

    Raises
    ------
    DataError
        When the file is not such a series, or was written for another run.
    """
    import polars as pl  # noqa: PLC0415

    try:
        stamp = pl.read_parquet_metadata(path).get(SERIES_META_KEY)
        series = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        msg = f"tearsheet series `{path}` must be a Parquet file, was unreadable: {e}"
        raise DataError(msg) from e
    if stamp is None or "equity_usd" not in series.columns or "ts" not in series.columns:
        msg = f"tearsheet series `{path}` must be written by `sim run`, was another Parquet file"
        raise DataError(msg)
    if json.loads(stamp) != _identity(report):
        msg = (
            f"tearsheet series `{path}` must belong to the report (same seed, config, data and "
            f"range), was written for {stamp}"
        )
        raise DataError(msg)
    return series


def load_report(path: Path) -> dict[str, Any]:
    """Read a `sim run` JSON report.

    Raises
    ------
    DataError
        When the file is missing, not JSON, or not a run report.
    """
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        msg = f"report `{path}` must exist, was missing"
        raise DataError(msg) from e
    except (OSError, UnicodeDecodeError) as e:
        msg = f"report `{path}` must be a readable JSON file, was not ({e})"
        raise DataError(msg) from e
    try:
        report = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"report `{path}` must be JSON, was not ({e.msg} at line {e.lineno})"
        raise DataError(msg) from e
    need = ("metadata", "summary")  # a baseline (`sim gate`) has no trades or reasons
    missing = [
        k for k in need if not isinstance(report, dict) or not isinstance(report.get(k), dict)
    ]
    if missing:
        msg = (
            f"report `{path}` must be a `sim run` report with {', '.join(need)}, "
            f"was lacking {', '.join(missing)}"
        )
        raise DataError(msg)
    return report


def write_run_tearsheet(
    report: Mapping[str, Any], result: BacktestResult, config: PlatformConfig, report_path: Path
) -> Path:
    """Write the series and the tearsheet of a finished run beside its report; return the page."""
    from sim.tearsheet_data import tearsheet_series  # noqa: PLC0415

    series = tearsheet_series(result, config.universe.themes)
    write_series(series, report, series_path(report_path))
    out = html_path(report_path)
    out.write_text(render_tearsheet(report, series))
    return out


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def _figure(
    height_in: float,
    width_in: float = _WIDTH_IN,
    *,
    left_in: float = 0.85,
    right_in: float = 0.25,
    top_in: float = 0.4,
    bottom_in: float = 0.6,
) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    # Figure + Agg canvas directly: no pyplot global state, no GUI backend lookup. Margins are
    # fixed in inches: constrained layout measured every tick label again and made the page
    # take 2 s to draw instead of under 1 s.
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=left_in / width_in,
        right=1.0 - right_in / width_in,
        top=1.0 - top_in / height_in,
        bottom=bottom_in / height_in,
    )
    return fig


def _style(ax: Axes, ylabel: str, xlabel: str | None = "date (UTC)") -> None:
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)


def _dates(ax: Axes) -> None:
    import matplotlib.dates as mdates  # noqa: PLC0415

    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))


def _legend_above(ax: Axes, ncols: int, fontsize: float | None = None) -> None:
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=ncols, frameon=False,
              borderaxespad=0.2, fontsize=fontsize)  # fmt: skip


def _png(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 3})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _thin(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    # keep each bucket's min and max of the first y, so spikes and drawdowns survive thinning
    import numpy as np  # noqa: PLC0415

    n = x.size
    if n <= _MAX_POINTS:
        return (x, *ys)
    size = math.ceil(n / (_MAX_POINTS // 2))
    pad = (-n) % size
    lead = np.concatenate((ys[0], np.full(pad, np.nan))).reshape(-1, size)
    base = np.arange(0, n + pad, size)
    lo = base + np.argmin(np.where(np.isnan(lead), np.inf, lead), axis=1)
    hi = base + np.argmax(np.where(np.isnan(lead), -np.inf, lead), axis=1)
    keep = np.unique(np.minimum(np.concatenate((lo, hi)), n - 1))
    return (x[keep], *(y[keep] for y in ys))


def _fig_equity(ts: np.ndarray, equity: np.ndarray, hold: np.ndarray, n_symbols: int) -> str:
    fig = _figure(4.2)
    ax = fig.add_subplot()
    x, e, h = _thin(ts, equity, hold)
    ax.plot(x, e, color=_BLUE, linewidth=1.2, label="strategy")
    ax.plot(x, h, color=_GREY, linewidth=1.0,
            label=f"buy & hold ({n_symbols} symbols, equal weight)")  # fmt: skip
    ax.axhline(float(equity[0] if equity.size else 0.0), color="black", linewidth=0.5, alpha=0.5)
    _style(ax, "equity (USD)")
    _dates(ax)
    _legend_above(ax, 2)
    return _png(fig, "equity against buy and hold")


def _fig_drawdown(ts: np.ndarray, dd: np.ndarray, hold_dd: np.ndarray) -> str:
    fig = _figure(2.9)
    ax = fig.add_subplot()
    x, d, h = _thin(ts, dd, hold_dd)
    ax.plot(x, h, color=_GREY, linewidth=0.8, label="buy & hold")
    ax.fill_between(x, d, 0.0, color=_RED, alpha=0.35, linewidth=0, label="strategy")
    ax.plot(x, d, color=_RED, linewidth=0.7)
    _style(ax, "drawdown (%)")
    _dates(ax)
    _legend_above(ax, 2)
    return _png(fig, "drawdown")


def _fig_monthly(months: pl.DataFrame) -> str:
    import numpy as np  # noqa: PLC0415

    years = sorted(set(months["year"].to_list()))
    grid = np.full((len(years), 13), np.nan)
    for year, month, value in months.iter_rows():
        grid[years.index(year), month - 1] = np.nan if value is None else value
    for i in range(len(years)):
        row = grid[i, :12]
        if np.isfinite(row).any():
            grid[i, 12] = (np.prod(1.0 + row[np.isfinite(row)] / 100.0) - 1.0) * 100.0
    fig = _figure(0.95 + 0.42 * len(years), 10.0, left_in=0.8, right_in=1.2, top_in=0.15,
                  bottom_in=0.55)  # fmt: skip
    ax = fig.add_subplot()
    months_only = grid[:, :12]
    bound = float(np.nanmax(np.abs(months_only))) if np.isfinite(months_only).any() else 1.0
    image = ax.imshow(months_only, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto",
                      extent=(-0.5, 11.5, len(years) - 0.5, -0.5))  # fmt: skip
    ax.set_xlim(-0.5, 12.5)
    ax.axvline(11.5, color="white", linewidth=4)
    ax.set_xticks(range(13), [*_MONTHS, "Year"])
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.set_xlabel("month (UTC)")
    ax.set_ylabel("year")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            weight = "bold" if j == 12 else "normal"
            ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=9,
                    fontweight=weight)  # fmt: skip
    cax = fig.add_axes((1.0 - 1.0 / 10.0, 0.55 / fig.get_figheight(), 0.015,
                        1.0 - 0.7 / fig.get_figheight()))  # fmt: skip
    fig.colorbar(image, cax=cax, label="return (%)")
    return _png(fig, "monthly returns heat map")


def _fig_rolling_sharpe(ts: np.ndarray, sharpe: np.ndarray, window_label: str) -> str:
    import numpy as np  # noqa: PLC0415

    fig = _figure(2.9)
    ax = fig.add_subplot()
    x, s = _thin(ts, sharpe)
    ax.plot(x, s, color=_BLUE, linewidth=0.9, label=f"rolling Sharpe, {window_label}")
    ax.axhline(0.0, color="black", linewidth=0.6)
    if np.isfinite(sharpe).any():
        ax.axhline(float(np.nanmean(sharpe)), color=_GREY, linestyle="--", linewidth=0.9,
                   label="its mean")  # fmt: skip
    _style(ax, "Sharpe (annualised)")
    _dates(ax)
    _legend_above(ax, 2)
    return _png(fig, "rolling Sharpe")


def _fig_themes(ts: np.ndarray, themes: Mapping[str, np.ndarray], total: np.ndarray) -> str:
    fig = _figure(3.2)
    ax = fig.add_subplot()
    names = list(themes)
    x, *ys = _thin(ts, total, *(themes[n] for n in names))
    colours = [_THEME_COLOURS[i % len(_THEME_COLOURS)] for i in range(len(names))]
    if names:
        ax.stackplot(x, *(y * 100.0 for y in ys[1:]), labels=names, colors=colours,
                     alpha=0.85, linewidth=0)  # fmt: skip
    ax.plot(x, ys[0] * 100.0, color="black", linewidth=0.4, label="total exposure")
    _style(ax, "share of equity (%)")
    _dates(ax)
    ax.set_ylim(bottom=0.0)
    _legend_above(ax, min(len(names) + 1, 7))
    return _png(fig, "exposure by theme")


def _fig_prices(
    ts: np.ndarray, closes: Mapping[str, np.ndarray], trades: Sequence[Mapping[str, Any]]
) -> str:
    import numpy as np  # noqa: PLC0415

    symbols = list(closes)
    cols = 2 if len(symbols) > 1 else 1
    rows = math.ceil(len(symbols) / cols)
    height = 2.5 * rows + 0.8
    fig = _figure(height, top_in=0.75, bottom_in=0.55)
    fig.subplots_adjust(hspace=0.55 * 2.5 / 2.0 / 2.5, wspace=0.16)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for k, ax in enumerate(axes.flat):
        if k >= len(symbols):
            ax.set_visible(False)
            continue
        symbol = symbols[k]
        x, y = _thin(ts, closes[symbol])
        ax.plot(x, y, color=_GREY, linewidth=0.7, label="close")
        mine = [t for t in trades if t["symbol"] == symbol]
        entry_x = np.array([t["entry_ts"].rstrip("Z") for t in mine], dtype="datetime64[ns]")
        exit_x = np.array([t["exit_ts"].rstrip("Z") for t in mine], dtype="datetime64[ns]")
        won = np.array([(t["pnl_usd"] or 0.0) > 0 for t in mine], dtype=bool)
        entry_y = np.array([t["entry_price"] for t in mine], dtype=float)
        exit_y = np.array([t["exit_price"] for t in mine], dtype=float)
        ax.scatter(entry_x, entry_y, marker="^", s=20, color=_BLUE, label="entry", zorder=3)
        ax.scatter(exit_x[won], exit_y[won], marker="v", s=20, color=_GREEN,
                   label="exit, won", zorder=3)  # fmt: skip
        ax.scatter(exit_x[~won], exit_y[~won], marker="v", s=20, color=_RED,
                   label="exit, lost", zorder=3)  # fmt: skip
        pnl = sum(float(t["pnl_usd"] or 0.0) for t in mine)
        ax.set_title(f"{symbol}: {len(mine)} trades, {pnl:+,.2f} USD", fontsize=10, loc="left")
        last_row = k >= len(symbols) - cols
        _style(ax, "price (USD)" if k % cols == 0 else "", "date (UTC)" if last_row else None)
        ax.tick_params(labelsize=8, labelbottom=last_row)
        _dates(ax)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", ncols=4, frameon=False,
               bbox_to_anchor=(0.85 / _WIDTH_IN, 1.0))  # fmt: skip
    return _png(fig, "trades marked on price")


def _fig_barh(labels: Sequence[str], values: Sequence[float], xlabel: str, signed: bool) -> str:
    longest = max((len(label) for label in labels), default=4)
    fig = _figure(0.8 + 0.3 * max(len(labels), 1), 9.0, left_in=0.3 + 0.085 * longest,
                  right_in=0.3, top_in=0.1, bottom_in=0.55)  # fmt: skip
    ax = fig.add_subplot()
    colours = [(_GREEN if v > 0 else _RED) if signed else _BLUE for v in values]
    ax.barh(list(labels), list(values), color=colours, height=0.7)
    ax.invert_yaxis()
    if signed:
        ax.axvline(0.0, color="black", linewidth=0.6)
    for i, v in enumerate(values):
        text = f"{v:+,.2f}" if signed else f"{v:,.0f}"
        ax.annotate(text, (v, i), xytext=(4 if v >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if v >= 0 else "right", va="center", fontsize=8)  # fmt: skip
    ax.margins(x=0.12)
    _style(ax, "", xlabel)
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    return _png(fig, xlabel)


def _fig_sweep(table: pl.DataFrame, x: str, y: str, metric: str, best_high: bool) -> str:
    import numpy as np  # noqa: PLC0415

    xs = sorted(set(table[x].to_list()))
    ys = sorted(set(table[y].to_list()))
    grid = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, value in table.select(x, y, metric).iter_rows():
        if value is not None:
            grid[ys.index(yv), xs.index(xv)] = value
    width = min(3.4 + 1.1 * len(xs), _WIDTH_IN)
    fig = _figure(1.1 + 0.55 * len(ys), width, left_in=1.2, right_in=1.3, top_in=0.2,
                  bottom_in=0.7)  # fmt: skip
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis" if best_high else "viridis_r", aspect="auto",
                      origin="lower")  # fmt: skip
    ax.set_xticks(range(len(xs)), [_num(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_num(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if len(xs) * len(ys) <= 400:
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                red, green, blue, _ = image.cmap(image.norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.55
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")  # fmt: skip
    height = fig.get_figheight()
    cax = fig.add_axes((1.0 - 1.1 / width, 0.7 / height, 0.15 / width, 1.0 - 0.9 / height))
    fig.colorbar(image, cax=cax, label=metric)
    return _png(fig, f"{metric} over {x} and {y}")


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
:root { --ink: #1d2430; --muted: #5b6472; --line: #e3e6eb; --bg: #f6f7f9; --card: #ffffff;
        --good: #1e8449; --bad: #c0392b; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(125px, 1fr)); gap: 10px;
         margin: 18px 0 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        padding: 10px 12px; }
.card .k { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .03em;
           white-space: nowrap; }
.card .v { font-size: 20px; font-weight: 600; margin-top: 2px; white-space: nowrap; }
header p.id { margin-top: 4px; font-size: 13px; }
header p.id b { color: var(--ink); font-family: "DejaVu Sans Mono", Menlo, monospace; }
.cols > section { margin-top: 16px; }
.good { color: var(--good); } .bad { color: var(--bad); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
          padding: 14px 18px 16px; margin-top: 16px; }
section h2 { font-size: 17px; margin: 0 0 4px; }
section p.note { color: var(--muted); margin: 0 0 10px; }
img { display: block; max-width: 100%; height: auto; margin: 6px auto 0; }
table { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.l { text-align: left; }
.scroll { overflow-x: auto; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 0 16px; align-items: start; }
@media (max-width: 900px) { .cols { grid-template-columns: 1fr; } }
.missing { color: var(--bad); }
details summary { cursor: pointer; color: var(--muted); margin-top: 8px; }
code { background: #eef1f5; padding: 1px 5px; border-radius: 4px; }
footer { color: var(--muted); font-size: 12px; margin-top: 20px; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0.0 and abs(value) < 0.01:
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="l">{_esc(v)}</td>' if i < left else f"<td>{_esc(_num(v))}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _section(anchor: str, title: str, note: str, *parts: str) -> str:
    return (
        f'<section id="{anchor}"><h2>{_esc(title)}</h2><p class="note">{note}</p>'
        + "".join(parts)
        + "</section>"
    )


def _card(label: str, value: str, tone: str = "") -> str:
    cls = f"v {tone}" if tone else "v"
    return (
        f'<div class="card"><div class="k">{_esc(label)}</div>'
        f'<div class="{cls}">{_esc(value)}</div></div>'
    )


def _tone(value: float) -> str:
    return "good" if value > 0 else "bad" if value < 0 else ""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _symbol_pnl(
    trades: Sequence[Mapping[str, Any]],
) -> list[tuple[str, int, float, float, float, float]]:
    # symbol, trades, win rate %, net pnl, fees, mean pnl per trade; best first
    by: dict[str, list[Mapping[str, Any]]] = {}
    for t in trades:
        by.setdefault(str(t["symbol"]), []).append(t)
    rows = []
    for symbol, mine in by.items():
        pnl = [float(t["pnl_usd"] or 0.0) for t in mine]
        fees = sum(float(t["fees_usd"] or 0.0) for t in mine)
        wins = sum(p > 0 for p in pnl)
        rows.append(
            (symbol, len(mine), 100.0 * wins / len(mine), sum(pnl), fees, sum(pnl) / len(mine))
        )
    return sorted(rows, key=lambda r: (-r[3], r[0]))


def _series_sections(report: Mapping[str, Any], series: pl.DataFrame) -> tuple[list[str], float]:
    import numpy as np  # noqa: PLC0415

    from sim.tearsheet_data import (  # noqa: PLC0415
        CLOSE_PREFIX,
        THEME_PREFIX,
        YEAR_NS,
        bar_returns,
        drawdown_pct,
        monthly_returns,
        rolling_sharpe,
        sharpe_window,
    )

    meta = report["metadata"]
    initial = float(meta["initial_cash_usd"])
    ts = series["ts"].dt.replace_time_zone(None).to_numpy()
    equity = series["equity_usd"].to_numpy()
    hold = series["buy_hold_usd"].to_numpy()
    hold_pct = (float(hold[-1]) / initial - 1.0) * 100.0 if hold.size else 0.0
    bar_ns = int(meta["bar_minutes"]) * 60_000_000_000
    window = sharpe_window(bar_ns, equity.size)
    days = window * bar_ns / 86_400e9
    window_label = f"{days:.0f}-day window" if days >= 1 else f"{window}-bar window"
    sharpe = rolling_sharpe(bar_returns(equity, initial), window, YEAR_NS / bar_ns)
    themes = {c.removeprefix(THEME_PREFIX): series[c].to_numpy() for c in series.columns
              if c.startswith(THEME_PREFIX)}  # fmt: skip
    closes = {c.removeprefix(CLOSE_PREFIX): series[c].to_numpy() for c in series.columns
              if c.startswith(CLOSE_PREFIX)}  # fmt: skip
    months = monthly_returns(series["ts"], equity, initial)
    n_sym = len(meta["symbols"])
    peak_theme = {n: float(np.max(v)) * 100.0 if v.size else 0.0 for n, v in themes.items()}
    theme_rows = [(n, float(np.mean(v)) * 100.0, peak_theme[n]) for n, v in themes.items()]
    sections = [
        _section(
            "equity",
            "Equity against buy and hold",
            f"Equity at each bar's close, against an equal-weight buy-and-hold of the run's "
            f"{n_sym} symbols on the same bars (each bought at its first close; no fees). "
            f"Strategy {float(report['summary']['total_pnl_pct']):+.2f} %, "
            f"buy and hold {hold_pct:+.2f} %.",
            _fig_equity(ts, equity, hold, n_sym),
        ),
        _section(
            "drawdown",
            "Drawdown",
            "Fall from the running peak of equity, in percent; buy and hold for comparison.",
            _fig_drawdown(ts, drawdown_pct(equity), drawdown_pct(hold)),
        ),
        _section(
            "monthly",
            "Monthly returns",
            "Each calendar month's return (UTC): last equity of the month over the previous "
            "month's (the first over the starting cash).",
            _fig_monthly(months),
        ),
        _section(
            "sharpe",
            "Rolling Sharpe",
            f"Annualised Sharpe of per-bar returns over a trailing {window_label} "
            f"({window} bars; risk-free 0, as the summary's).",
            _fig_rolling_sharpe(ts, sharpe, window_label),
        ),
        _section(
            "themes",
            "Exposure by theme",
            "Value held in each universe theme as a share of equity, stacked; the line is the "
            "run's total exposure.",
            _fig_themes(ts, themes, series["exposure_frac"].to_numpy()),
            _table(("theme", "mean share of equity (%)", "peak (%)"), theme_rows),
        ),
    ]
    if closes:
        shown = ", ".join(closes)
        note = (
            f"Close of each traded symbol with its trades: entries (blue, at the average entry "
            f"price) and exits (green won, red lost). Shown: {_esc(shown)}."
        )
        sections.append(_section("prices", "Trades on price", note,
                                 _fig_prices(ts, closes, report.get("trades", []))))  # fmt: skip
    else:
        sections.append(_section("prices", "Trades on price", "The run made no trades."))
    return sections, hold_pct


def render_tearsheet(report: Mapping[str, Any], series: pl.DataFrame | None) -> str:
    """Return the tearsheet page of `report`; sections needing `series` say so when it is None."""
    meta, summary = report["metadata"], report["summary"]
    name = f"run-seed{meta.get('seed')}-{meta.get('config_hash')}"
    missing_note = (
        '<p class="missing">Equity, drawdown, monthly returns, rolling Sharpe, theme exposure '
        "and trades on price need the run's per-bar series (<code>*.tearsheet.parquet</code> "
        "beside the report, written by <code>sim run</code>), which was not found.</p>"
    )
    if series is not None and series.height:
        sections, hold_pct = _series_sections(report, series)
    else:
        sections, hold_pct = [missing_note], float("nan")

    pnl = float(summary.get("total_pnl_pct", 0.0))
    cards = [
        _card("total pnl", f"{pnl:+.2f} %", _tone(pnl)),
        _card(
            "buy & hold",
            "n/a" if math.isnan(hold_pct) else f"{hold_pct:+.2f} %",
            "" if math.isnan(hold_pct) else _tone(hold_pct),
        ),  # fmt: skip
        _card("max drawdown", f"{float(summary.get('max_drawdown_pct', 0.0)):.2f} %"),
        _card("sharpe", f"{float(summary.get('sharpe', 0.0)):.2f}"),
        _card("trades", f"{int(summary.get('total_trades', 0)):,}"),
        _card("win rate", f"{float(summary.get('win_rate', 0.0)):.1f} %"),
        _card("profit factor", f"{float(summary.get('profit_factor', 0.0)):.2f}"),
        _card("time in market", f"{float(summary.get('exposure_time_pct', 0.0)):.1f} %"),
    ]
    header = (
        f"<header><h1>Tearsheet &middot; {_esc(name)}</h1>"
        f"<p>{_esc(meta.get('data_source'))} &middot; {len(meta.get('symbols', []))} symbols x "
        f"{_num(meta.get('n_bars'))} bars of {_esc(meta.get('bar_minutes'))} min &middot; "
        f"{_esc(meta.get('start'))} .. {_esc(meta.get('end'))} &middot; strategies "
        f"{_esc(', '.join(meta.get('strategies', [])) or '(none)')} &middot; profile "
        f"{_esc(meta.get('profile'))}</p>"
        f'<p class="id">seed <b>{_esc(meta.get("seed"))}</b> &middot; config hash '
        f"<b>{_esc(meta.get('config_hash'))}</b> &middot; data hash "
        f"{_esc(meta.get('data_hash'))} &middot; commit {_esc(meta.get('git_commit'))}</p>"
        "</header>"
        f'<div class="cards">{"".join(cards)}</div>'
    )

    run_rows = [
        ("seed", meta.get("seed")), ("config hash", meta.get("config_hash")),
        ("data hash", meta.get("data_hash")), ("data source", meta.get("data_source")),
        ("git commit", meta.get("git_commit")),
        ("starting cash (USD)", meta.get("initial_cash_usd")),
        ("symbols", ", ".join(meta.get("symbols", []))),
        *((f"version of {k}", v) for k, v in sorted(meta.get("packages", {}).items())),
    ]  # fmt: skip
    run_section = _section(
        "run", "Run", "What produced these numbers: the same seed, config and data give the "
        "same report byte for byte.", _table(("key", "value"), run_rows, left=2),
    )  # fmt: skip

    trades = report.get("trades", [])
    symbol_rows = _symbol_pnl(trades)
    if symbol_rows:
        pnl_parts = [
            _fig_barh(
                [r[0] for r in symbol_rows],
                [r[3] for r in symbol_rows],
                "net PnL (USD, after fees)",
                signed=True,
            ),  # fmt: skip
            _table(
                (
                    "symbol",
                    "trades",
                    "win rate (%)",
                    "net pnl (USD)",
                    "fees (USD)",
                    "mean pnl per trade (USD)",
                ),
                symbol_rows,
            ),  # fmt: skip
        ]
    else:
        pnl_parts = ["<p>No closed trades.</p>"]

    reasons = report.get("no_trade_reasons", {})
    total = sorted(reasons.get("total", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if total:
        by_symbol = reasons.get("by_symbol", {})
        symbols = sorted(by_symbol)
        matrix = [(r, c, *(by_symbol[s].get(r, 0) for s in symbols)) for r, c in total]
        reason_parts = [
            _fig_barh(
                [r for r, _ in total], [float(c) for _, c in total], "times blocked", signed=False
            ),  # fmt: skip
            _table(("reason", "total", *symbols), matrix),
        ]
    else:
        reason_parts = ["<p>No proposal was blocked.</p>"]
    reason_note = (
        "How often a proposed entry was not traded, by reason and symbol (counted per strategy "
        "and symbol each bar). Bars with an empty universe: "
        f"{_num(report.get('empty_universe_bars', 0))}."
    )
    reason_section = _section("reasons", "No-trade reasons", reason_note, *reason_parts)

    regression = set(report.get("regression_keys", {}))
    metric_rows = [(k + (" *" if k in regression else ""), v) for k, v in sorted(summary.items())]
    metrics_section = _section(
        "metrics", "Metrics",
        "Every summary metric of the report (units in the name: _pct percent, _usd US "
        "dollars). * marks the keys <code>sim gate</code> compares with the baseline.",
        _table(("metric", "value"), metric_rows),
    )  # fmt: skip

    trade_rows = [
        (t["symbol"], t["strategy"], t["entry_ts"], t["exit_ts"], t["exit_reason"], t["qty"],
         t["entry_price"], t["exit_price"], t["pnl_usd"], t["fees_usd"])
        for t in trades[:MAX_TRADE_ROWS]
    ]  # fmt: skip
    more = f" (first {MAX_TRADE_ROWS} of {len(trades)})" if len(trades) > MAX_TRADE_ROWS else ""
    trade_list = (
        f"<details><summary>All trades{more}</summary>"
        + _table(("symbol", "strategy", "entry (UTC)", "exit (UTC)", "exit reason", "qty",
                  "entry price", "exit price", "pnl (USD)", "fees (USD)"), trade_rows, left=5)
        + "</details>"
    )  # fmt: skip
    pnl_note = "Closed round trips, net of entry and exit fees."
    pnl_section = _section(
        "pnl", "PnL by symbol", pnl_note, *pnl_parts, trade_list if trades else ""
    )

    footer = (
        f"<footer>Written by <code>sim report</code> from report schema "
        f"{_esc(report.get('schema_version'))}. Figures are static images; the page loads "
        "nothing from the network.</footer>"
    )
    body = "".join(
        [header, *sections, pnl_section, reason_section,
         f'<div class="cols">{metrics_section}{run_section}</div>', footer]
    )  # fmt: skip
    return _page(f"Tearsheet {name}", body)


def render_sweep_heatmap(table: pl.DataFrame, x: str, y: str, metric: str, title: str) -> str:
    """Return a page with a heat map of `metric` over the swept parameters `x` and `y`.

    With more swept parameters than these two, each cell shows the best value over the others
    (highest, or lowest for drawdown, fees and turnover), and the page says so.
    """
    import polars as pl  # noqa: PLC0415

    from sim.sweep import LOWER_IS_BETTER  # noqa: PLC0415

    best_high = metric not in LOWER_IS_BETTER
    params = sweep_params(table)
    others = [p for p in params if p not in (x, y)]
    agg = pl.col(metric).max() if best_high else pl.col(metric).min()
    cells = table.group_by(x, y).agg(agg).sort(x, y)
    best = table.sort(metric, descending=best_high, nulls_last=True).head(10)
    how = "highest" if best_high else "lowest"
    note = (
        f"{_esc(metric)} of each combination of <code>{_esc(x)}</code> and "
        f"<code>{_esc(y)}</code>; {how} is best."
    )
    if others:
        note += (
            f" Each cell is the {how} over the other swept parameters ({_esc(', '.join(others))})."
        )
    shown = [c for c in ("combo", *params, metric) if c in best.columns]
    extra = [
        m
        for m in ("total_pnl_pct", "sharpe", "max_drawdown_pct", "total_trades")
        if m in best.columns and m != metric
    ]
    rows = best.select(*shown, *extra).rows()
    body = (
        f"<header><h1>{_esc(title)}</h1><p>{table.height} combinations of "
        f"{_esc(', '.join(params))}</p></header>"
        + _section("heatmap", f"{metric} over {x} and {y}", note,
                   _fig_sweep(cells, x, y, metric, best_high))
        + _section("best", f"Best 10 by {metric}", "From the full table.",
                   _table([c.rsplit(".", 1)[-1] for c in (*shown, *extra)], rows, left=0))
    )  # fmt: skip
    return _page(title, body)


def sweep_params(table: pl.DataFrame) -> list[str]:
    """Return the swept-parameter columns of a `sim sweep --out` table (its dotted keys)."""
    return [c for c in table.columns if "." in c]


def load_sweep_table(path: Path) -> pl.DataFrame:
    """Read a `sim sweep --out` table (.parquet or .csv).

    Raises
    ------
    DataError
        When the file is missing, unreadable, or a walk-forward table.
    """
    import polars as pl  # noqa: PLC0415

    if not path.is_file():
        msg = f"sweep table `{path}` must exist, was missing"
        raise DataError(msg)
    try:
        table = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        msg = f"sweep table `{path}` must be a {path.suffix} table, was unreadable: {e}"
        raise DataError(msg) from e
    if "window" in table.columns:
        msg = (
            f"sweep table `{path}` must be a grid table, was a walk-forward table (it has `window`)"
        )
        raise DataError(msg)
    return table


# --------------------------------------------------------------------------------------------
# sim report
# --------------------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `sim report`."""
    p = subparsers.add_parser(
        "report",
        help="write a run's HTML tearsheet, or a sweep table's heat map",
        description="Write one self-contained HTML page: the tearsheet of a `sim run` report "
        "(REPORT.json, with REPORT.tearsheet.parquet beside it), or a heat map of a metric over "
        "two swept parameters from a `sim sweep --out` table (.parquet or .csv).",
        epilog="Examples: sim report reports/run_seed42.json;  sim report sweep.parquet "
        "--x strategies.rules.breakout_lookback --y strategies.rules.stop_loss_pct --metric sharpe",
    )
    p.add_argument("path", help="a `sim run` JSON report, or a `sim sweep --out` table")
    p.add_argument("--out", help="HTML file to write (default: the input's path with .html)")
    p.add_argument("--x", help="sweep table: parameter across (default: the first swept key)")
    p.add_argument("--y", help="sweep table: parameter down (default: the second swept key)")
    p.add_argument(
        "--metric", default="sharpe", help="sweep table: metric to show (default sharpe)"
    )
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Run `sim report`; bad input is one line `sim report: error: ...`, exit 2."""
    from sim.cli import EXIT_BAD_INPUT, EXIT_OK, _say  # noqa: PLC0415

    try:
        out = _report(args)
    except PlatformError as e:
        _say(f"sim report: error: {e}")
        return EXIT_BAD_INPUT
    print(f"tearsheet    {out}")
    return EXIT_OK


def _out_path(args: argparse.Namespace, source: Path) -> Path:
    out = Path(args.out) if args.out else source.with_suffix(".html")
    if out.is_dir():
        msg = f"`--out` must be a file path, was the directory {args.out!r}"
        raise DataError(msg)
    if out.suffix.lower() not in (".html", ".htm"):
        msg = f"`--out` must end in .html, was {str(out)!r}"
        raise DataError(msg)
    return out


def _write(out: Path, text: str) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as e:
        msg = f"`--out` must be a writable file, was {str(out)!r} ({e.strerror or e})"
        raise DataError(msg) from e
    return out


def _report(args: argparse.Namespace) -> Path:
    from sim.cli import _say  # noqa: PLC0415

    source = Path(args.path)
    if source.suffix in SWEEP_SUFFIXES:
        out = _out_path(args, source)
        table = load_sweep_table(source)
        params = sweep_params(table)
        x = args.x or (params[0] if params else None)
        y = args.y or (params[1] if len(params) > 1 else None)
        if x is None or y is None or x == y:
            msg = (
                f"`--x` and `--y` must name two different swept parameters of `{source}` "
                f"({', '.join(params) or 'none'}), was {x!r} and {y!r}"
            )
            raise DataError(msg)
        for flag, key in (("--x", x), ("--y", y), ("--metric", args.metric)):
            if key not in table.columns:
                msg = f"`{flag}` must be a column of `{source}`, was {key!r}"
                raise DataError(msg)
        title = f"Sweep {source.name}: {args.metric}"
        return _write(out, render_sweep_heatmap(table, x, y, args.metric, title))
    if args.x or args.y:
        msg = f"`--x`/`--y` need a sweep table (.parquet or .csv), was {str(source)!r}"
        raise DataError(msg)
    out = _out_path(args, source)
    report = load_report(source)
    side = series_path(source)
    series = None
    if side.is_file():
        series = read_series(side, report)
    else:
        _say(f"sim report: warning: `{side}` is missing; drawing only what the report holds")
    return _write(out, render_tearsheet(report, series))
