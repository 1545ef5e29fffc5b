"""`sim check lookahead`: prove the decision path reads no future bar, on real data.

The decision path (stage 1: each strategy's proposals, the guards, the regime, the universe,
the combined proposals; stage 2: the backtest's orders, fills, trades and curves) runs once on
all the bars and once on the data cut at each of N seeded random bars. Every row before a cut
must be the same in both runs, bit for bit (NaN equals NaN): a row that changes when later
bars are removed read them. This is the property test of STYLE.md section 6 ("prefix
invariance"), run end to end over the registered strategies rather than one kernel at a time
(freqtrade's `lookahead-analysis` does the same for its strategies).

Exit codes: 0 clean, 1 a leak (the first offending kernel or feature, row and column named),
2 bad input.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from signals.errors import ConfigError, DataError

if TYPE_CHECKING:
    # the numba kernels load when a check runs, not when `sim` builds its parser
    from signals.bars import Panel
    from signals.config import PlatformConfig

DEFAULT_CUTS = 5
DEFAULT_SEED = 42

# stage-1 features of `DecisionInputs`, each with the kernel that computes it
FEATURE_KERNELS = (
    ("bad_tick", "signals.triggers.nb.bad_tick_mask_nb"),
    ("regime", "signals.regime.nb.regime_nb"),
    ("vol", "signals.indicators.nb.realized_vol_nb"),
    ("block_reason", "signals.universe.nb.universe_guards_nb (quote volume, red flags, bans, "
                     "staleness, universe)"),
)  # fmt: skip
COMBINED = ("weight", "stop_pct", "take_pct", "strategy")
CURVES = ("equity_usd", "cash_usd", "exposure_frac")
BACKTEST_KERNEL = "sim.nb.simulate (the decision step, fills and accounting)"


@dataclass(frozen=True)
class Leak:
    """A row before a cut that differs between the full run and the cut run."""

    source: str  # what computed it, e.g. "strategy `rules`", "stage 1 feature", "backtest"
    kernel: str  # the function or kernel
    column: str
    cut: int  # bars kept in the cut run (rows 0 .. cut - 1)
    row: int  # the first differing row (a bar index; for orders/fills/trades, a record index)
    ts_ns: int | None  # its bar time, UTC ns
    symbol: str | None
    full_value: Any
    cut_value: Any
    n_rows: int  # differing rows of this column in this cut


@dataclass(frozen=True)
class LookaheadReport:
    """What `check_lookahead` compared and every leak it found, first leak first."""

    n_bars: int
    symbols: tuple[str, ...]
    strategies: tuple[str, ...]
    cuts: tuple[int, ...]
    columns: tuple[str, ...]  # "source: column" of everything compared
    leaks: tuple[Leak, ...]

    @property
    def clean(self) -> bool:
        """Return True when no row before any cut changed."""
        return not self.leaks


@dataclass(frozen=True)
class _Array:
    source: str
    kernel: str
    column: str
    values: np.ndarray  # [T] or [T, S]


@dataclass(frozen=True)
class _Run:
    arrays: list[_Array]
    records: dict[str, pl.DataFrame]  # orders, fills, trades (with a `ts` to cut them by)


def cut_panel(panel: Panel, n_bars: int) -> Panel:
    """Return `panel` keeping its first `n_bars` bars."""
    from signals.bars import Panel  # noqa: PLC0415

    cols = {k: getattr(panel, k)[:n_bars] for k in ("open", "high", "low", "close", "volume")}
    return Panel(ts_ns=panel.ts_ns[:n_bars], symbols=panel.symbols, **cols)


def _decision_path(panel: Panel, config: PlatformConfig, bar_ns: int) -> _Run:
    from signals.pipeline import decision_inputs, strategy_context  # noqa: PLC0415
    from signals.strategies import enabled_strategies  # noqa: PLC0415
    from sim.engine import run_backtest  # noqa: PLC0415

    inputs = decision_inputs(panel, config, bar_ns)
    shape = panel.close.shape
    arrays: list[_Array] = []
    for s in enabled_strategies(config.strategies):
        ctx = strategy_context(panel, inputs.regime, inputs.bad_tick, bar_ns, s.params)
        proposals = s.cls.propose(ctx)
        kernel = f"{s.cls.__module__}.{s.cls.__qualname__}.propose"
        for column in ("weight", "stop_pct", "take_pct"):
            # a `[1, S]` row holds for every bar (`Proposals`)
            values = np.broadcast_to(getattr(proposals, column), shape)
            arrays.append(_Array(f"strategy `{s.name}`", kernel, column, values))
    for column, kernel in FEATURE_KERNELS:
        arrays.append(_Array("stage 1 feature", kernel, column, getattr(inputs, column)))
    for column in COMBINED:
        values = np.broadcast_to(getattr(inputs, column), shape)
        arrays.append(
            _Array("combined proposals", "signals.pipeline.combine_proposals", column, values)
        )
    result = run_backtest(panel, config, inputs)
    arrays.extend(
        _Array("backtest", BACKTEST_KERNEL, column, result.curve[column].to_numpy())
        for column in CURVES
    )
    records = {
        "orders": result.orders,
        "fills": result.fills,
        "trades": result.trades.rename({"exit_ts": "ts"}),
    }
    return _Run(arrays, records)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # elementwise equality with NaN equal to NaN
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return np.asarray((a == b) | (np.isnan(a) & np.isnan(b)))
    return np.asarray(a == b)


def _value(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _array_leak(full: _Array, cut: _Array, n: int, panel: Panel) -> Leak | None:
    same = _same(full.values[:n], cut.values)
    if same.all():
        return None
    bad_rows = ~same if same.ndim == 1 else ~same.all(axis=1)
    row = int(np.argmax(bad_rows))
    symbol = None
    if same.ndim == 2:
        col = int(np.argmax(~same[row]))
        symbol = panel.symbols[col]
        full_value, cut_value = full.values[row, col], cut.values[row, col]
    else:
        full_value, cut_value = full.values[row], cut.values[row]
    return Leak(
        full.source, full.kernel, full.column, n, row, int(panel.ts_ns[row]), symbol,
        _value(full_value), _value(cut_value), int(bad_rows.sum()),
    )  # fmt: skip


def _records_leak(
    name: str, full: pl.DataFrame, cut: pl.DataFrame, n: int, panel: Panel
) -> Leak | None:
    # records dated before the cut's last bar; an order decided on that bar is still open in
    # the cut run (its fill bar is gone), so its status is compared only on earlier bars
    last_ts = int(panel.ts_ns[n - 1])
    keep = pl.col("ts").dt.epoch("ns") <= last_ts
    a, b = full.filter(keep), cut.filter(keep)
    if name == "orders":
        open_at_end = pl.col("ts").dt.epoch("ns") == last_ts
        a = a.with_columns(
            pl.when(open_at_end).then(pl.lit("")).otherwise("status").alias("status")
        )
        b = b.with_columns(
            pl.when(open_at_end).then(pl.lit("")).otherwise("status").alias("status")
        )
    m = min(a.height, b.height)
    first_row, first_col, n_bad = m, "(one run has more records)", abs(a.height - b.height)
    bad_any = np.zeros(m, dtype=bool)
    for column in a.columns:
        x, y = a[column].to_numpy()[:m], b[column].to_numpy()[:m]
        bad = ~_same(x, y)
        bad_any |= bad
        if bad.any() and int(np.argmax(bad)) < first_row:
            first_row, first_col = int(np.argmax(bad)), column
    n_bad += int(bad_any.sum())
    if n_bad == 0:
        return None
    row_frame = a if first_row < a.height else b
    rec = row_frame.row(first_row, named=True)
    full_value = a.row(first_row, named=True).get(first_col) if first_row < a.height else None
    cut_value = b.row(first_row, named=True).get(first_col) if first_row < b.height else None
    ts = rec["ts"]
    ts_ns = int(pl.Series([ts]).dt.epoch("ns")[0])
    column = f"{name}.{first_col}" if first_col in a.columns else f"{name} {first_col}"
    return Leak(
        "backtest", BACKTEST_KERNEL, column, n, first_row, ts_ns, rec.get("symbol"),
        full_value, cut_value, n_bad,
    )  # fmt: skip


def draw_cuts(n_bars: int, warmup: int, n_cuts: int, seed: int) -> tuple[int, ...]:
    """Return up to `n_cuts` distinct cut points (bars kept), sorted, drawn with `seed`.

    Drawn from `[warmup + 1, n_bars - 1]` so each cut run has warmed up and drops at least one
    bar; when the data are shorter than that, from `[2, n_bars - 1]`.
    """
    if n_bars < 3:
        msg = f"the data must have at least 3 bars to cut, was {n_bars}"
        raise DataError(msg)
    lo = warmup + 1 if warmup + 1 <= n_bars - 1 else 2
    choices = np.arange(lo, n_bars)
    rng = np.random.default_rng(seed)
    picked = rng.choice(choices, size=min(n_cuts, choices.size), replace=False)
    return tuple(sorted(int(c) for c in picked))


def check_lookahead(
    panel: Panel,
    config: PlatformConfig,
    n_cuts: int = DEFAULT_CUTS,
    seed: int = DEFAULT_SEED,
    *,
    progress: bool = False,
) -> LookaheadReport:
    """Run the decision path on `panel` and on `panel` cut at `n_cuts` seeded random bars.

    Compares, for every row before each cut: each enabled strategy's proposals (`weight`,
    `stop_pct`, `take_pct`), the stage-1 features (`bad_tick`, `regime`, `vol`,
    `block_reason`), the combined proposals, and the backtest (orders decided, fills, trades
    closed, equity/cash/exposure curves). The caller checks the config's symbols against the
    panel first (`check_config_symbols`).

    Returns
    -------
    LookaheadReport
        Every leak, ordered by where it starts (strategies, then stage 1, combined proposals,
        backtest; then by row), so `leaks[0]` names the first offending kernel or feature.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from signals.pipeline import infer_bar_ns, warmup_bars  # noqa: PLC0415
    from signals.strategies import enabled_strategies  # noqa: PLC0415

    if n_cuts < 1:
        msg = f"`--cuts` must be >= 1, was {n_cuts}"
        raise ConfigError(msg)
    bar_ns = infer_bar_ns(panel.ts_ns)
    cuts = draw_cuts(panel.n_bars, warmup_bars(config, bar_ns), n_cuts, seed)
    full = _decision_path(panel, config, bar_ns)
    leaks: list[Leak] = []
    bar: Iterator[int]
    with tqdm(
        cuts, desc="lookahead", unit="cut", file=sys.stderr, disable=not progress, leave=False,
        delay=2.0, dynamic_ncols=True,
    ) as bar:  # fmt: skip
        for n in bar:
            part = cut_panel(panel, n)
            cut = _decision_path(part, config, bar_ns)
            for a, b in zip(full.arrays, cut.arrays, strict=True):
                leak = _array_leak(a, b, n, part)
                if leak is not None:
                    leaks.append(leak)
            for name, frame in full.records.items():
                leak = _records_leak(name, frame, cut.records[name], n, part)
                if leak is not None:
                    leaks.append(leak)
    order = {f"{a.source}: {a.column}": i for i, a in enumerate(full.arrays)}
    rank = {"orders": 0, "fills": 1, "trades": 2}

    def key(leak: Leak) -> tuple[int, int, int]:
        if leak.source == "backtest" and f"backtest: {leak.column}" not in order:
            # orders/fills/trades come after the curves' source rows, ranked among themselves
            return (len(order) + rank[leak.column.split(".")[0].split(" ")[0]], leak.row, leak.cut)
        return (order[f"{leak.source}: {leak.column}"], leak.row, leak.cut)

    columns = tuple(order) + tuple(f"backtest: {name}" for name in full.records)
    names = tuple(s.name for s in enabled_strategies(config.strategies))
    return LookaheadReport(
        panel.n_bars, panel.symbols, names, cuts, columns, tuple(sorted(leaks, key=key))
    )


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _iso(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "?"
    return str(
        pl.Series([ts_ns]).cast(pl.Datetime("ns", "UTC")).dt.to_string("%Y-%m-%dT%H:%M:%SZ")[0]
    )


def format_report(report: LookaheadReport, data_source: str) -> str:
    """Return the human summary `sim check lookahead` prints."""
    what = (
        f"{data_source} ({len(report.symbols)} symbols x {report.n_bars} bars), strategies: "
        f"{', '.join(report.strategies) or '(none enabled)'}"
    )
    cuts = ", ".join(str(c) for c in report.cuts)
    if report.clean:
        return (
            f"lookahead: clean ({len(report.cuts)} cuts at bars {cuts} of {what})\n"
            f"compared every row before each cut, bit for bit: {len(report.columns)} columns "
            "(each strategy's proposals, stage-1 features, combined proposals, the backtest's "
            "orders, fills, trades and curves)"
        )
    first = report.leaks[0]
    where = f"{_iso(first.ts_ns)}, {first.symbol}" if first.symbol else _iso(first.ts_ns)
    lines = [
        f"lookahead: LEAK in {first.source} ({first.kernel}), column `{first.column}`",
        f"  row {first.row} ({where}) is {first.full_value!r} with all {report.n_bars} bars "
        f"and {first.cut_value!r} with the data cut after bar {first.cut - 1} "
        f"(differing rows before that cut: {first.n_rows})",
    ]
    others: dict[str, int] = {}
    for leak in report.leaks[1:]:
        name = f"{leak.source} `{leak.column}`"
        others[name] = others.get(name, 0) + 1
    if others:
        lines.append(
            "  also changed (in how many of the cuts): "
            + ", ".join(f"{k} ({v})" for k, v in others.items())
        )
    lines.append(f"  cuts at bars {cuts} of {what}")
    return "\n".join(lines)


def strategy_only(config: PlatformConfig, name: str) -> PlatformConfig:
    """Return `config` with only strategy `name` enabled (its configured params, else defaults)."""
    from signals.strategies import STRATEGIES  # noqa: PLC0415

    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        msg = (
            f"`--strategy` must name a registered strategy {sorted(STRATEGIES)}, was {name!r}{hint}"
        )
        raise ConfigError(msg)
    names = set(config.strategies.strategies) | {name}
    return config.with_overrides({f"strategies.{n}.enabled": n == name for n in sorted(names)})


def cmd_check_lookahead(args: argparse.Namespace) -> int:
    """Run `check_lookahead` on the data and config of `args`; print the summary."""
    from signals.bars import load_bars, to_panel  # noqa: PLC0415
    from signals.config import check_config_symbols, load_config  # noqa: PLC0415
    from signals.strategies.registry import import_user_strategies  # noqa: PLC0415
    from sim.cli import DEFAULT_DATA, EXIT_FAIL, EXIT_OK, PROJECT_ROOT  # noqa: PLC0415

    import_user_strategies(args)
    config = load_config(args.config)
    if args.strategy is not None:
        config = strategy_only(config, args.strategy)
    data_path = Path(args.data) if args.data else DEFAULT_DATA
    if not data_path.exists():
        msg = f"data file `{data_path}` must exist, was missing (pass --data PATH)"
        raise DataError(msg)
    panel = to_panel(load_bars(data_path), validate=False)  # `load_bars` validated it
    check_config_symbols(config, panel.symbols, allow_missing=args.allow_missing_symbols)
    report = check_lookahead(panel, config, args.cuts, args.seed, progress=True)
    try:
        source = str(data_path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        source = str(data_path)
    print(format_report(report, source))
    return EXIT_OK if report.clean else EXIT_FAIL


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            msg = f"must be an integer >= {low}, was {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if value < low:
            msg = f"must be >= {low}, was {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `check lookahead` to the `sim` parser."""
    from signals.strategies.registry import add_strategies_from  # noqa: PLC0415
    from sim.cli import DEFAULT_CONFIG, DEFAULT_DATA, PROJECT_ROOT, add_allow_missing_symbols  # noqa: PLC0415

    check = subparsers.add_parser("check", help="check the decision path (look-ahead)")
    actions = check.add_subparsers(dest="check_command", metavar="CHECK", required=True)
    look = actions.add_parser(
        "lookahead",
        help="cut the data at random bars; every earlier row must not change (exit 1 if one does)",
        description=(
            "Run the decision path (strategy proposals, stage-1 features, combined proposals, "
            "the backtest's orders, fills, trades and curves) on all the bars and on the data "
            "cut at N seeded random bars; every row before a cut must be the same bit for bit. "
            "Exit 0 clean, 1 naming the first offending kernel/feature, row and column, 2 bad "
            "input."
        ),
    )
    look.add_argument(
        "--strategy", default=None, help="check only this registered strategy (enabled alone; "
        "default: the config's enabled strategies)",
    )  # fmt: skip
    look.add_argument(
        "--cuts",
        type=_int_at_least(1),
        default=DEFAULT_CUTS,
        help=f"random cut points (default {DEFAULT_CUTS})",
    )
    look.add_argument(
        "--seed", type=_int_at_least(0), default=DEFAULT_SEED,
        help=f"seed of the cut points (default {DEFAULT_SEED})",
    )  # fmt: skip
    look.add_argument(
        "--data",
        help=f"bar file, .parquet or .csv (default: {DEFAULT_DATA.relative_to(PROJECT_ROOT)})",
    )
    look.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help="folder of YAML config files (default: config/)",
    )
    add_allow_missing_symbols(look)
    add_strategies_from(look)
    handler: Callable[[argparse.Namespace], int] = cmd_check_lookahead
    look.set_defaults(handler=handler)
