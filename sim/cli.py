"""The `sim` command line: run backtests, check and make data, gate results, sweep parameters.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem, no traceback).
`sim gate` also uses 1 for a failed gate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from signals.errors import ConfigError, DataError, PlatformError

if TYPE_CHECKING:
    from sim.tracking_child import TrackingChild

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT / "data" / "sample_hourly.parquet"
DEFAULT_CONFIG = PROJECT_ROOT / "config"
DEFAULT_REPORTS = PROJECT_ROOT / "reports"
EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def numba_cache_is_warm(pattern: str = "nb._simulate_loop_nb-*.nbi") -> bool:
    """Return True when numba's cache holds an index of `pattern` (default: the simulator's
    bar loop), i.e. the kernel was compiled before (an edited source recompiles anyway)."""
    places = [PROJECT_ROOT / "sim" / "__pycache__"]
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:
        return any(Path(cache_dir).rglob(pattern))
    return any(any(p.glob(pattern)) for p in places if p.is_dir())


def _output_path(value: str, suffixes: tuple[str, ...]) -> Path:
    """Return `--out` as a Path; refuse a folder, or a suffix not in `suffixes` (empty: any)."""
    out = Path(value)
    if out.is_dir():
        msg = f"`--out` must be a file path, was the directory {value!r}"
        raise DataError(msg)
    if suffixes and out.suffix not in suffixes:
        msg = f"`--out` must end in {' or '.join(suffixes)}, was {value!r}"
        raise DataError(msg)
    return out


def _parse_ts(value: str | None, flag: str) -> int | None:
    # `--start`/`--end` as epoch ns (None when not given)
    if value is None:
        return None
    from sim.data_tools import parse_utc  # noqa: PLC0415

    return int(parse_utc(value, flag).timestamp() * 1_000_000_000)


# --------------------------------------------------------------------------------------------
# sim run
# --------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Run one backtest, print a summary, write the JSON report (and log it to MLflow)."""
    started = time.perf_counter()
    if args.no_mlflow:
        return _run(args, started, None)
    from sim.tracking_child import TrackingChild  # noqa: PLC0415

    # MLflow's ~2 s of imports happen in this child, on the second core, during the backtest;
    # leaving the block terminates and reaps it if the run failed before handing it the report.
    # With an empty numba cache both cores compile at first, so `_run` starts it later.
    with TrackingChild(args.tracking_uri, start=numba_cache_is_warm()) as tracker:
        return _run(args, started, tracker)


def _run(args: argparse.Namespace, started: float, tracker: TrackingChild | None) -> int:
    from signals.bars import frame_hash, to_panel  # noqa: PLC0415
    from signals.config import check_bar_interval, check_config_symbols, load_config  # noqa: PLC0415
    from signals.strategies.registry import import_user_strategies  # noqa: PLC0415

    import_user_strategies(args)
    config = load_config(args.config)
    if args.seed is not None:
        config = config.with_seed(args.seed)
    default_out = DEFAULT_REPORTS / f"run_seed{config.backtest.seed}.json"
    out = _output_path(args.out, ()) if args.out else default_out
    data_path = Path(args.data) if args.data else DEFAULT_DATA
    if not data_path.exists():
        msg = (
            f"data file `{data_path}` must exist, was missing "
            f"(pass --data PATH or run `sim data synth --out {DEFAULT_DATA}`)"
        )
        raise DataError(msg)
    from sim.data_tools import load_bars_or_hint  # noqa: PLC0415

    frame = load_bars_or_hint(data_path, sort=args.sort)
    start_ns, end_ns = _parse_ts(args.start, "--start"), _parse_ts(args.end, "--end")
    if start_ns is not None or end_ns is not None:
        import polars as pl  # noqa: PLC0415

        ts_ns = pl.col("ts").dt.epoch("ns")
        if start_ns is not None:
            frame = frame.filter(ts_ns >= start_ns)
        if end_ns is not None:
            frame = frame.filter(ts_ns < end_ns)
        if frame.height == 0:
            msg = f"`--start`/`--end` must select some bars of `{data_path}`, selected none"
            raise DataError(msg)
    panel = to_panel(frame, validate=False)  # `load_bars` validated it; a row subset stays valid
    # before any work: `run_backtest` is handed the inputs below and leaves this check to us
    check_config_symbols(config, panel.symbols, allow_missing=args.allow_missing_symbols)

    from signals.pipeline import infer_bar_ns, warmup_bars  # noqa: PLC0415

    bar_ns = infer_bar_ns(panel.ts_ns)
    check_bar_interval(config, bar_ns)  # durations in the config need bars of its interval
    need = warmup_bars(config, bar_ns)
    if need >= panel.n_bars:
        msg = (
            f"lookbacks need {need} bars of warm-up, must be shorter than the data, "
            f"was {panel.n_bars} bars (widen --start/--end or shorten the lookbacks)"
        )
        raise ConfigError(msg)

    from signals.pipeline import decision_inputs  # noqa: PLC0415
    from sim.engine import run_backtest  # noqa: PLC0415
    from sim.report import build_report, write_report  # noqa: PLC0415
    from sim.warmup import compile_in_background, wait_for  # noqa: PLC0415

    warming = None
    if not numba_cache_is_warm():
        _say("Compiling numba kernels (first run after install: about 20 s, cached afterwards)...")
        # the simulator compiles on the second core while this process computes stage 1
        warming = compile_in_background(args.config)
    try:
        inputs = decision_inputs(panel, config)
    except BaseException:
        if warming is not None:
            wait_for(warming, timeout=0.0)  # an error or Ctrl-C stops the child too
        raise
    if tracker is not None:
        # no-op when it runs since the start; else this process now only waits for the
        # compiling child, which leaves a core free for MLflow's imports
        tracker.start()
    if warming is not None:
        wait_for(warming)
    result = run_backtest(panel, config, inputs)
    try:
        source = str(data_path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        source = str(data_path)
    report = build_report(result, config, frame_hash(frame), source)
    try:
        write_report(report, out)
    except OSError as e:
        msg = f"`--out` must be a writable file, was {str(out)!r} ({e.strerror or e})"
        raise DataError(msg) from e
    sheet = None
    if not args.no_tearsheet:
        from sim.tearsheet import HTML_ARTIFACT, write_run_tearsheet  # noqa: PLC0415

        try:
            sheet = write_run_tearsheet(report, result, config, out)
        except OSError as e:
            msg = f"the tearsheet beside `--out` must be writable, was not ({e.strerror or e})"
            raise DataError(msg) from e
    _print_summary(report, out, sheet)
    if tracker is not None:
        extra = {HTML_ARTIFACT: sheet} if sheet is not None else {}
        run_id = tracker.log(report, result, config, out, extra_artifacts=extra)
        if run_id:
            print(f"mlflow run   {run_id}")
    print(f"wall time    {time.perf_counter() - started:.2f} s")
    return EXIT_OK


def _print_summary(report: dict, out: Path, tearsheet: Path | None = None) -> None:
    meta, summary = report["metadata"], report["summary"]
    rows = [
        ("data", f"{meta['data_source']} ({len(meta['symbols'])} symbols x {meta['n_bars']} bars, "
                 f"{meta['start']} .. {meta['end']})"),
        ("seed / config", f"{meta['seed']} / {meta['config_hash']} ({meta['profile']})"),
        ("strategies", ", ".join(meta["strategies"]) or "(none enabled)"),
        ("total pnl", f"{summary['total_pnl_pct']:+.2f} %  (final equity "
                      f"{summary['final_equity_usd']:,.2f} USD)"),
        ("max drawdown", f"{summary['max_drawdown_pct']:.2f} %"),
        ("benchmark", f"{summary['benchmark_return_pct']:+.2f} %  (equal-weight buy and hold)"),
        ("trades", f"{summary['total_trades']}  win rate {summary['win_rate']:.1f} %  "
                   f"profit factor {summary['profit_factor']:.2f}  expectancy "
                   f"{summary['expectancy_usd']:+.2f} USD  avg hold "
                   f"{summary['avg_trade_duration_hours']:.1f} h"),
        ("sharpe/sortino", f"{summary['sharpe']:.2f} / {summary['sortino']:.2f}  calmar "
                           f"{summary['calmar']:.2f}"),
        ("exposure", f"{summary['exposure_time_pct']:.1f} % of bars  turnover "
                     f"{summary['turnover']:.2f}x  fees {summary['fees_paid_usd']:,.2f} USD"),
    ]  # fmt: skip
    reasons = report["no_trade_reasons"]["total"]
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
        rows.append(("no-trade top", ", ".join(f"{k} {v}" for k, v in top)))
    rows.append(("report", str(out)))
    if tearsheet is not None:
        rows.append(("tearsheet", str(tearsheet)))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


# --------------------------------------------------------------------------------------------
# sim data
# --------------------------------------------------------------------------------------------


def cmd_data_validate(args: argparse.Namespace) -> int:
    """Validate a bar file and print what it holds, including gaps."""
    from signals.bars import validate_bars  # noqa: PLC0415
    from sim.data_tools import load_bars_or_hint  # noqa: PLC0415

    frame = load_bars_or_hint(args.path, sort=args.sort)
    report = validate_bars(frame)
    print(f"ok: {report.n_bars} bars, {len(report.symbols)} symbols ({', '.join(report.symbols)})")
    bar = f"{report.bar_ns // 60_000_000_000} min" if report.bar_ns else "unknown (one bar)"
    print(f"range: {report.start} .. {report.end}, bar {bar}")
    if report.gaps.height:
        print(f"gaps (reported, not filled): {report.gaps.height}")
        print(report.gaps)
    else:
        print("gaps: none")
    return EXIT_OK


def cmd_data_synth(args: argparse.Namespace) -> int:
    """Write a seeded synthetic multi-asset panel."""
    from sim.synth import synth_bars  # noqa: PLC0415

    if args.symbols < 2 or args.bars < 2:
        msg = f"`--symbols` and `--bars` must be >= 2, was {args.symbols} and {args.bars}"
        raise DataError(msg)
    out = _output_path(args.out, (".parquet", ".csv"))
    frame = synth_bars(seed=args.seed, n_symbols=args.symbols, n_bars=args.bars)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            frame.write_csv(out)
        else:
            frame.write_parquet(out, compression="zstd")
    except OSError as e:
        msg = f"`--out` must be a writable file, was {str(out)!r} ({e.strerror or e})"
        raise DataError(msg) from e
    print(f"wrote {frame.height} bars ({args.symbols} symbols x {args.bars}) to {out}")
    return EXIT_OK


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """Download Coinbase candles into a resumable Parquet cache (`sim.data_tools`)."""
    from sim.data_tools import cmd_fetch  # noqa: PLC0415

    return cmd_fetch(args)


def cmd_data_resample(args: argparse.Namespace) -> int:
    """Resample a bar file to a coarser bar (`sim.data_tools.resample_bars`)."""
    from sim.data_tools import cmd_resample  # noqa: PLC0415

    return cmd_resample(args)


RESAMPLE_RULES = (
    "Per symbol: open = first open, high = max high, low = min low, close = last close, "
    "volume = sum of volume, over the source bars whose open time falls in the bin. Bins are "
    "[start, start + TO) in UTC, aligned to the Unix epoch (4h bins open at 00, 04, 08 ... UTC, "
    "1d at midnight), and labelled by their start (ts = bar open time). Missing source bars: a "
    "bin without any source bar is not written (gaps stay gaps, never filled); a bin with some "
    "bars missing is built from the bars present and counted in the output. A first or last "
    "bin the data covers only in part (e.g. a trailing bin still in progress) is dropped "
    "unless --keep-partial."
)
GRANULARITIES = (
    "ONE_MINUTE FIVE_MINUTE FIFTEEN_MINUTE THIRTY_MINUTE ONE_HOUR TWO_HOUR FOUR_HOUR SIX_HOUR "
    "ONE_DAY"
)


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []
"""Modules that add subcommands (gate, sweep) register a `add_parser(subparsers)` here."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str) -> NoReturn:
        _say(f"{self.prog}: error: {message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_BAD_INPUT)


def add_allow_missing_symbols(parser: argparse.ArgumentParser) -> None:
    """Add `--allow-missing-symbols` (shared by `sim run` and `sim sweep`)."""
    parser.add_argument(
        "--allow-missing-symbols",
        action="store_true",
        help="universe.yaml core/rotational/excluded symbols absent from the data only warn "
        "(default: an error); an absent regime.reference_symbol is always an error",
    )


def add_sort(parser: argparse.ArgumentParser) -> None:
    """Add `--sort` (sort rows by symbol and time before validating), for newest-first dumps."""
    parser.add_argument(
        "--sort",
        action="store_true",
        help="sort the rows by (symbol, ts) before validating, e.g. for a newest-first API "
        "dump (default: an unsorted file is an error)",
    )


def _add_data_tools(data_sub: argparse._SubParsersAction) -> None:
    fetch = data_sub.add_parser(
        "fetch",
        help="download Coinbase candles into a resumable Parquet cache (public, no API key)",
        description="Download candles through the Coinbase SDK's public get_public_candles, in "
        "pages, into a Parquet bar file. A rerun fetches only the ranges not cached yet; each "
        "page is validated and written atomically before the next request.",
    )
    fetch.add_argument("--product", required=True, help="product id, e.g. BTC-USD")
    fetch.add_argument("--granularity", required=True, help=f"one of {GRANULARITIES}")
    fetch.add_argument("--start", required=True, help="first bucket, ISO UTC (inclusive)")
    fetch.add_argument(
        "--end", help="end of the range, ISO UTC (exclusive; default and cap: last closed bucket)"
    )
    fetch.add_argument(
        "--out", help="cache file (default: data/cache/<PRODUCT>_<GRANULARITY>.parquet)"
    )
    fetch.add_argument(
        "--page-candles", type=int, default=300, help="buckets per request, 1..350 (default 300)"
    )
    fetch.add_argument(
        "--max-pages", type=int, help="stop after this many requests; rerun to continue"
    )
    fetch.add_argument(
        "--retries", type=int, default=3, help="retries of a 429/5xx/lost request (default 3)"
    )
    fetch.add_argument(
        "--base-url", help="venue host[:port], no scheme (default: api.coinbase.com)"
    )
    fetch.add_argument(
        "--ca-path",
        help="CA bundle to trust instead of the system's (e.g. the exchange simulator's)",
    )
    fetch.add_argument(
        "--timeout-secs", type=float, default=30.0, help="per-request timeout (default 30)"
    )
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    fetch.set_defaults(handler=cmd_data_fetch, error_prog=fetch.prog)

    resample = data_sub.add_parser(
        "resample",
        help="resample a bar file to a coarser bar (OHLCV rules in --help)",
        description=RESAMPLE_RULES,
    )
    resample.add_argument("path", help="bar file, .parquet or .csv")
    resample.add_argument(
        "--to", required=True, help="target bar: minutes, hours or days, e.g. 15m, 4h, 1d"
    )
    resample.add_argument("--out", required=True, help="output file, .parquet or .csv")
    resample.add_argument(
        "--keep-partial", action="store_true", help="keep a partial first or last bin"
    )
    add_sort(resample)
    resample.set_defaults(handler=cmd_data_resample, error_prog=resample.prog)


def build_parser() -> argparse.ArgumentParser:
    """Return the `sim` argument parser (its subparsers share its one-line errors)."""
    from signals.strategies.registry import add_strategies_from  # noqa: PLC0415

    parser = _Parser(
        prog="sim",
        description="247trader backtests: run, check data, gate regressions, sweep parameters.",
        epilog="Example: sim run --seed 42   (uses data/sample_hourly.parquet and config/)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a backtest and write a JSON report")
    run.add_argument(
        "--seed", type=int, default=None, help="seed for every random draw (default: config's, 42)"
    )
    run.add_argument(
        "--data",
        help=f"bar file, .parquet or .csv (default: {DEFAULT_DATA.relative_to(PROJECT_ROOT)})",
    )
    run.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help="folder of YAML config files (default: config/)",
    )
    run.add_argument("--out", help="report path (default: reports/run_seed<SEED>.json)")
    run.add_argument("--start", help="first bar to use, ISO UTC (inclusive)")
    run.add_argument("--end", help="end of the bars to use, ISO UTC (exclusive)")
    add_sort(run)
    run.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else <project>/mlflow.db)",
    )
    run.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    add_allow_missing_symbols(run)
    add_strategies_from(run)
    run.add_argument(
        "--no-tearsheet",
        action="store_true",
        help="do not write the HTML tearsheet (<report>.html) and its series beside the report",
    )
    run.set_defaults(handler=cmd_run)

    data = sub.add_parser("data", help="validate, synthesise, fetch or resample bar data")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    validate = data_sub.add_parser(
        "validate", help="check a bar file against the schema; report gaps"
    )
    validate.add_argument("path", help="bar file, .parquet or .csv")
    add_sort(validate)
    validate.set_defaults(handler=cmd_data_validate)
    synth = data_sub.add_parser("synth", help="write a seeded synthetic multi-asset panel")
    synth.add_argument("--out", required=True, help="output file, .parquet or .csv")
    synth.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    synth.add_argument("--symbols", type=int, default=8, help="number of symbols (default 8)")
    synth.add_argument(
        "--bars", type=int, default=8760, help="hourly bars per symbol (default 8760)"
    )
    synth.set_defaults(handler=cmd_data_synth)
    _add_data_tools(data_sub)

    for add in EXTRA_COMMANDS:
        add(sub)
    return parser  # fmt: skip


def _register_extras() -> None:
    for module in ("sim.gate", "sim.sweep", "sim.tearsheet", "sim.lookahead"):
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        add = getattr(mod, "add_parser", None)
        if add is not None and add not in EXTRA_COMMANDS:
            EXTRA_COMMANDS.append(add)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sim` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] != ["run"]:
        # `sim run` needs none of the extra subcommands; importing them (sim.sweep pulls in
        # polars, pydantic and the config models) would delay the start of its MLflow helper.
        _register_extras()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument (2) already said in one line
        return int(e.code or 0)
    handler: Handler = args.handler
    try:
        return handler(args)
    except PlatformError as e:
        # the data tools name their command, as argparse does for a bad argument
        prog = getattr(args, "error_prog", None)
        _say(f"{prog}: error: {e}" if prog else f"error: {e}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


def console_main() -> None:
    """Entry point of the `sim` console script: `main`, then exit without interpreter teardown.

    Tearing down the modules MLflow brings (SQLAlchemy, alembic, pandas) took 1.5 s after the
    work was done, a third of `sim run`'s wall time. Everything is written by then (reports
    are closed files, MLflow commits each call to SQLite), so the process flushes its streams
    and leaves. Tests call `main` and keep the normal exit.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
