"""`live-bridge` command line.

Subcommands live in the `SUBCOMMANDS` table (`run`, `kill`, `status`, `exchange-sim`): each
entry names a function that adds its arguments to a subparser and a function that runs it and
returns the exit code. Add a subcommand by adding one entry. Errors of this project
(`PlatformError`) and bad arguments print one line on stderr and exit 2, without a traceback.
"""

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from signals.errors import ConfigError, PlatformError
from signals.strategies.registry import add_strategies_from, import_user_strategies

NS = 1_000_000_000


@dataclass(frozen=True)
class Subcommand:
    """One `live-bridge` subcommand: help text, argument builder and runner."""

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# === exchange-sim ===============================================================================


def _add_exchange_sim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="PATH",
        help="bar file, .parquet or .csv, checked as `sim data validate` does",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="REST port, 0 = any (default 8443)")
    p.add_argument(
        "--clock",
        choices=("stepped", "realtime", "accelerated"),
        default="stepped",
        help="stepped: moves only on POST /sim/clock; realtime: wall-clock speed from --start; "
        "accelerated: --speed times real time (default stepped)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second for --clock accelerated (default 60)",
    )
    p.add_argument(
        "--start",
        metavar="ISO",
        help="simulated start time, ISO 8601 (UTC if no offset); default: the close of the "
        "first bar",
    )
    p.add_argument(
        "--no-tls",
        action="store_true",
        help="serve plain HTTP (clients must downgrade https:// with a transport adapter)",
    )
    p.add_argument(
        "--api-key-file",
        type=Path,
        metavar="PATH",
        help='JSON {"name": KEY_NAME, "publicKey": PEM} of the key whose JWTs are accepted; '
        "without it any request is accepted",
    )
    p.add_argument("--usd", type=float, default=100_000.0, help="starting USD (default 100000)")


def _parse_start(text: str) -> int:
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError as e:
        msg = f"`--start` must be an ISO 8601 time, was {text!r}"
        raise ConfigError(msg) from e
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp()) * NS + stamp.microsecond * 1000


def _load_key_file(path: Path) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"`--api-key-file` must be a readable JSON file, was {str(path)!r} ({e})"
        raise ConfigError(msg) from e
    if not isinstance(spec, dict):
        spec = {}
    name = spec.get("name") or spec.get("id")
    pem = spec.get("publicKey") or spec.get("public_key")
    if not name or not pem:
        msg = f'`--api-key-file` must hold "name" and "publicKey", was keys {sorted(spec)}'
        raise ConfigError(msg)
    try:
        serialization.load_pem_public_key(str(pem).encode())
    except (ValueError, TypeError) as e:
        msg = f'`--api-key-file` "publicKey" must be a PEM public key, was not ({e})'
        raise ConfigError(msg) from e
    return str(name), str(pem)


def _run_exchange_sim(args: argparse.Namespace) -> int:
    from live_bridge.exchange_sim import (
        ExchangeEngine,
        ExchangeServer,
        FaultPlan,
        RealtimeClock,
        SteppedClock,
    )
    from signals.bars import load_bars

    if not args.speed > 0:
        msg = f"`--speed` must be > 0, was {args.speed}"
        raise ConfigError(msg)
    if not 0 <= args.port <= 65535:
        msg = f"`--port` must be in 0..65535 (0 = any free port), was {args.port}"
        raise ConfigError(msg)
    if not (math.isfinite(args.usd) and args.usd >= 0):
        msg = f"`--usd` must be a finite amount >= 0, was {args.usd}"
        raise ConfigError(msg)
    bars = load_bars(args.data)  # the backtest's reader and rules: one line naming the file
    key = _load_key_file(args.api_key_file) if args.api_key_file else None
    stepped = SteppedClock(0)
    engine = ExchangeEngine(bars, stepped, balances={"USD": args.usd})
    start_ns = (
        _parse_start(args.start) if args.start else engine.first_bar_ns + engine.bar_duration_ns
    )
    if args.clock == "stepped":
        stepped.set(start_ns)
    else:
        speed = 1.0 if args.clock == "realtime" else args.speed
        engine.clock = RealtimeClock(start_ns, speed=speed)
    server = ExchangeServer(
        engine, FaultPlan(), host=args.host, port=args.port, tls=not args.no_tls
    )
    server.verify_jwt = key is not None
    if key is not None:
        server.register_api_key(*key)
    try:
        server.start()
    except OSError as e:
        msg = f"cannot listen on {args.host}:{args.port}: {e}"
        raise ConfigError(msg) from e
    out = sys.stdout
    out.write(f"base_url {server.base_url}\n")
    out.write(f"ca_path {server.ca_path or '-'}\n")
    out.write(f"symbols {','.join(engine.symbols)}\n")
    if key is None:
        out.write("auth off: any JWT is accepted (pass --api-key-file to verify)\n")
    out.write("serving; Ctrl-C to stop\n")
    out.flush()
    try:
        while True:  # time.sleep, unlike a bare Event.wait(), is interrupted by Ctrl-C
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


# === run ========================================================================================


def _add_live_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default="config",
        type=Path,
        metavar="DIR",
        help="folder of the strategy/risk YAML, the same the backtest used (default config/)",
    )
    p.add_argument(
        "--live-config",
        type=Path,
        metavar="PATH",
        help="daemon settings (default: <config>/live.yaml; missing = safe defaults)",
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    _add_live_config_arguments(p)
    p.add_argument(
        "--mode",
        choices=("DRY_RUN", "PAPER", "LIVE"),
        help="override live.yaml's mode (default there: DRY_RUN)",
    )
    p.add_argument(
        "--confirm-live",
        action="store_true",
        help="required for LIVE: you confirm this trades real money",
    )
    p.add_argument(
        "--once", action="store_true", help="run one cycle for the newest closed bar and exit"
    )
    p.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="venue seconds per real second (the exchange simulator's --speed under "
        "--clock accelerated); overrides live.yaml's clock_speed (default 1)",
    )
    p.add_argument(
        "--shadow",
        action="store_true",
        help="also compare the decisions with the account's actual orders and fills (traded "
        "by something else, or by this daemon in LIVE) and write shadow.json and shadow.html "
        "to live.yaml's shadow.report_dir",
    )
    p.add_argument(
        "--allow-missing-symbols",
        action="store_true",
        help="universe.yaml core/rotational/excluded symbols absent from live.yaml `symbols` "
        "only warn (default: an error); an absent regime.reference_symbol is always an error",
    )
    add_strategies_from(p)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))  # fmt: skip


def _live_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from live_bridge.config import load_live_config  # noqa: PLC0415

    return load_live_config(args.live_config or Path(args.config) / "live.yaml")


def _run_daemon(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from live_bridge.coinbase import CoinbaseAdapter, CoinbaseCredentials  # noqa: PLC0415
    from live_bridge.config import resolve_mode  # noqa: PLC0415
    from live_bridge.daemon import LiveDaemon, check_symbols  # noqa: PLC0415
    from live_bridge.errors import TransientExchangeError  # noqa: PLC0415
    from live_bridge.events import Started, Stopped  # noqa: PLC0415
    from live_bridge.operator import Operator, check_clock, secret_age_days  # noqa: PLC0415
    from live_bridge.store import InstanceLock, StateStore, check_state_file  # noqa: PLC0415
    from signals.config import check_config_symbols, load_config  # noqa: PLC0415

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    log = logging.getLogger("live_bridge")
    import_user_strategies(args)
    platform = load_config(args.config)
    live = resolve_mode(_live_config(args), args.mode, args.confirm_live)
    if args.speed is not None:
        if not args.speed > 0:
            msg = f"`--speed` must be > 0, was {args.speed}"
            raise ConfigError(msg)
        live = live.model_copy(update={"clock_speed": args.speed})
    try:
        # the live bridge's data are live.yaml's symbols: what the backtest checks against the
        # bar file is checked against them, before anything is written
        check_config_symbols(platform, live.symbols, allow_missing=args.allow_missing_symbols)
    except ConfigError as e:
        msg = f"{e} (the live bridge's data: live.yaml `symbols`)"
        raise ConfigError(msg) from None
    credentials = CoinbaseCredentials.from_env()
    # before the lock, whose file would stay behind: a bad file is refused before any write
    # or venue call
    check_state_file(Path(live.state_path))
    if live.ca_path is not None and not Path(live.ca_path).is_file():
        # requests would raise a bare OSError on the first call (a traceback, exit 1)
        msg = (
            f"live.yaml `ca_path` must be a CA bundle file, was {live.ca_path!r} (no such "
            "file; the exchange simulator prints its ca_path when it starts)"
        )
        raise ConfigError(msg)
    lock = InstanceLock(live.state_path)
    lock.acquire()
    # signals are caught from here on: one that arrives while the daemon starts stops it cleanly
    # once it has started (no half-written state, no traceback)
    early_stop: list[str] = []
    daemon: LiveDaemon | None = None

    def _stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if daemon is None:
            early_stop.append(name)
        else:
            daemon.request_stop(name)

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    adapter = None
    store = None
    operator: Operator | None = None
    try:
        adapter = CoinbaseAdapter(
            credentials, base_url=live.base_url, ca_path=live.ca_path,
            timeout_secs=live.timeout_secs, max_retries=live.max_retries,
        )  # fmt: skip
        while daemon is None:
            try:
                # an unknown symbol or a refused key stops the start before the state file exists
                check_symbols(adapter, live.symbols)
                check_clock(adapter, live)
                store = store or StateStore(live.state_path)
                operator = operator or Operator(live, platform, store, adapter, shadow=args.shadow)
                daemon = LiveDaemon(platform, live, adapter, store, events=operator.bus)
            except TransientExchangeError as e:
                if early_stop:
                    log.info("stopped (%s) before the start completed", early_stop[0])
                    return 0
                log.warning("start: the venue is unavailable, trying again in %.0f s: %s",
                            live.retry_delay_secs, e)  # fmt: skip
                time.sleep(live.retry_delay_secs)
        if early_stop:
            daemon.request_stop(early_stop[0])
        assert operator is not None  # built with the daemon
        daemon.entry_blockers.append(operator.health.blocking)
        operator.start()
        age = secret_age_days(live)  # logs a warning from 80 days on
        operator.emit(Started(
            mode=live.mode, config_hash=platform.config_hash(), symbols=tuple(live.symbols),
            read_only=live.read_only, secret_age_days=age,
        ))  # fmt: skip
        log.info(
            "live-bridge %s (read_only=%s) on %s, config %s, state %s, pid %d", live.mode,
            live.read_only, live.base_url or "api.coinbase.com", platform.config_hash(),
            live.state_path, os.getpid(),
        )  # fmt: skip
        if args.once and not daemon.stopping:
            daemon.run_cycle()
        elif not daemon.stopping:
            daemon.run_forever()
        reason = daemon.stop_reason or ("--once" if args.once else "max_cycles reached")
        cancelled = daemon.shutdown() if daemon.stopping else 0
        if not daemon.stopping:
            what = "open orders left as they are"
        elif live.on_stop == "leave":
            what = "left open orders resting (on_stop: leave)"
        elif cancelled < 0:
            what = "could not cancel open orders (see above)"
        else:
            what = f"cancelled {cancelled} open order(s)"
        log.info("stopped (%s): %s; state saved in %s", reason, what, live.state_path)
        operator.emit(Stopped(reason=reason, cancelled=cancelled))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if operator is not None:
            operator.close()
        if store is not None:
            store.close()
        if adapter is not None:
            adapter.close()
        lock.release()
    return 0


# === kill and status ============================================================================


def _add_kill_arguments(p: argparse.ArgumentParser) -> None:
    _add_live_config_arguments(p)
    p.add_argument("--reason", default="", help="why (written into the kill file)")


def _run_kill(args: argparse.Namespace) -> int:
    live = _live_config(args)
    path = Path(live.kill_switch_path)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record = json.dumps({"ts": stamp, "pid": os.getpid(), "reason": args.reason}) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record)
    except OSError as e:
        msg = (
            f"live.yaml `kill_switch_path` must name a file that can be written, was "
            f"{str(path)!r} ({e.strerror or e}: {e.filename}); the kill switch is NOT on"
        )
        raise ConfigError(msg) from e
    sys.stdout.write(
        f"kill switch on: {path} created. A running daemon stops sending orders and cancels "
        f"its open orders within seconds. Remove {path} to resume trading.\n"
    )
    return 0


def _add_status_arguments(p: argparse.ArgumentParser) -> None:
    _add_live_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--cycles", type=int, default=5, metavar="N", help="newest cycles to show (default 5)"
    )


def _run_status(args: argparse.Namespace) -> int:
    from live_bridge.status import daemon_status, format_status  # noqa: PLC0415

    if args.cycles < 0:
        msg = f"`--cycles` must be >= 0, was {args.cycles}"
        raise ConfigError(msg)
    status = daemon_status(_live_config(args), cycles=args.cycles)
    text = json.dumps(status, indent=2, sort_keys=True) if args.json else format_status(status)
    sys.stdout.write(text + "\n")
    return 0


# === table and entry point ======================================================================

SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand(
        help="run the trading daemon (DRY_RUN by default)",
        description=(
            "Run the shared decision code once per closed bar against Coinbase (or the "
            "exchange simulator named by base_url in live.yaml). DRY_RUN logs orders; PAPER "
            "simulates fills; LIVE needs read_only: false in live.yaml AND --confirm-live. "
            "API keys come from COINBASE_API_KEY/COINBASE_API_SECRET (or CB_API_KEY/"
            "CB_API_SECRET) only. One daemon per state file (a lock refuses a second). "
            "SIGTERM/SIGINT: cancel open orders (on_stop: cancel), save, exit 0. "
            "`live-bridge kill` stops all trading at runtime."
        ),
        add_arguments=_add_run_arguments,
        run=_run_daemon,
    ),
    "kill": Subcommand(
        help="engage the kill switch: the running daemon sends nothing and cancels its orders",
        description=(
            "Create the kill switch file (`kill_switch_path` in live.yaml, default "
            "data/KILL_SWITCH). A running daemon notices it within seconds, even between bars: "
            "it sends no new order, cancels every open order on its products and logs a "
            "CRITICAL line. Removing the file is the only way back."
        ),
        add_arguments=_add_kill_arguments,
        run=_run_kill,
    ),
    "status": Subcommand(
        help="show the daemon's state: trading state, kill switch, mismatches, orders, positions",
        description=(
            "Read the state file and the audit trail (read-only; safe while the daemon runs, "
            "and after it stopped) and print one screen: mode, trading state (active, "
            "reduce_only, halted, killed), kill switch, kernel and health breakers, the last "
            "reconciliation and any mismatch with the venue, equity, exposure by theme, "
            "positions with entry and PnL, open orders, the last cycles with their stage "
            "latencies and no-trade reasons, and latency percentiles per stage and endpoint."
        ),
        add_arguments=_add_status_arguments,
        run=_run_status,
    ),
    "exchange-sim": Subcommand(
        help="serve a local Coinbase Advanced Trade simulator over recorded bars",
        description=(
            "Serve the Coinbase Advanced Trade REST API on loopback over a bar file, for the "
            "daemon and tests. Point coinbase-advanced-py at the printed base_url and trust "
            'the printed CA. Drive it with POST /sim/clock {"ts": epoch_secs} and '
            "POST /sim/faults {...}."
        ),
        add_arguments=_add_exchange_sim_arguments,
        run=_run_exchange_sim,
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """Return the `live-bridge` parser with one subparser per `SUBCOMMANDS` entry."""
    parser = _Parser(
        prog="live-bridge",
        description="247trader live bridge: the trading daemon and its tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description)
        cmd.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `live-bridge` CLI and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return SUBCOMMANDS[args.command].run(args)
    except (PlatformError, ValueError) as e:
        sys.stderr.write(f"live-bridge {args.command}: error: {e}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
