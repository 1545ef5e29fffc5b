"""The safety ladder DRY_RUN -> PAPER -> LIVE: `resolve_mode` and `live-bridge run`.

Every contradiction is a `ConfigError` that the CLI prints as one `error:` line (exit 2, no
traceback) before anything talks to a venue; a read-only daemon never reaches the adapter's
order methods, whatever its decisions.
"""

import logging
from pathlib import Path

import pytest
import yaml

from live_bridge.cli import main
from live_bridge.coinbase import CoinbaseAdapter, CoinbaseCredentials
from live_bridge.config import LiveConfig, resolve_mode
from live_bridge.daemon import LiveDaemon
from live_bridge.store import StateStore
from signals.bars import to_panel
from signals.errors import ConfigError
from signals.pipeline import warmup_bars
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    fixture_shipped_bars,
    fixture_venue,
    parity_config,
)

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_VARS = ("COINBASE_API_KEY", "COINBASE_API_SECRET", "CB_API_KEY", "CB_API_SECRET")
ORDER_METHODS = ("place_market", "place_limit_post_only", "preview_order", "cancel")


@pytest.fixture(name="no_credentials")
def fixture_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)


def _live_yaml(tmp_path: Path, **settings: object) -> Path:
    path = tmp_path / "live.yaml"
    settings.setdefault("state_path", str(tmp_path / "state.sqlite"))
    path.write_text(yaml.safe_dump(settings))
    return path


def _run(live_yaml: Path, *flags: str) -> int:
    return main(["run", "--config", str(ROOT / "config"), "--live-config", str(live_yaml), *flags])


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one error line, was {err!r}"
    assert lines[0].startswith("live-bridge run: error: ")
    assert "Traceback" not in err
    return lines[0]


# --- resolve_mode ---------------------------------------------------------------------------


def test_resolve_mode_defaults_dry_run_read_only():
    live = resolve_mode(LiveConfig(), None, confirm_live=False)
    assert (live.mode, live.read_only) == ("DRY_RUN", True)


@pytest.mark.parametrize("mode", ["DRY_RUN", "PAPER"])
@pytest.mark.parametrize("from_cli", [True, False])
def test_resolve_mode_non_live_forces_read_only_with_warning(mode, from_cli, caplog):
    config = LiveConfig(read_only=False, mode="DRY_RUN" if from_cli else mode)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        live = resolve_mode(config, mode if from_cli else None, confirm_live=False)
    assert (live.mode, live.read_only) == (mode, True)
    assert any(
        r.levelno == logging.WARNING and f"mode {mode} forces read_only" in r.getMessage()
        for r in caplog.records
    )


def test_resolve_mode_live_with_read_only_raises_naming_read_only():
    with pytest.raises(ConfigError, match="`read_only: false`"):
        resolve_mode(LiveConfig(mode="LIVE"), None, confirm_live=True)


def test_resolve_mode_live_without_confirm_raises():
    with pytest.raises(ConfigError, match="`--confirm-live`"):
        resolve_mode(LiveConfig(mode="LIVE", read_only=False), None, confirm_live=False)


@pytest.mark.parametrize("mode", ["DRY_RUN", "PAPER"])
def test_resolve_mode_confirm_live_with_other_mode_raises(mode):
    with pytest.raises(ConfigError, match=f"only for LIVE mode.*{mode}"):
        resolve_mode(LiveConfig(read_only=False), mode, confirm_live=True)


def test_resolve_mode_live_confirmed_keeps_read_write():
    live = resolve_mode(LiveConfig(read_only=False), "LIVE", confirm_live=True)
    assert (live.mode, live.read_only) == ("LIVE", False)


# --- live-bridge run ------------------------------------------------------------------------


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize(
    ("settings", "flags", "needles"),
    [
        pytest.param({"mode": "LIVE"}, ["--confirm-live"], ["`read_only"], id="live-read-only"),
        pytest.param({}, ["--mode", "LIVE", "--confirm-live"], ["`read_only"], id="cli-live-ro"),
        pytest.param(
            {"mode": "LIVE", "read_only": False}, [], ["`--confirm-live`"], id="live-unconfirmed"
        ),
        pytest.param(
            {"read_only": False}, ["--mode", "LIVE"], ["`--confirm-live`"], id="cli-unconfirmed"
        ),
        pytest.param({}, ["--confirm-live"], ["`--confirm-live`", "DRY_RUN"], id="confirm-dry"),
        pytest.param(
            {"mode": "PAPER"}, ["--confirm-live"], ["`--confirm-live`", "PAPER"], id="confirm-pp"
        ),
        pytest.param(
            {},
            ["--once"],
            ["COINBASE_API_KEY", "COINBASE_API_SECRET", "CB_API_KEY", "CB_API_SECRET"],
            id="no-credentials",
        ),
        pytest.param(
            {"mode": "LIVE", "read_only": False},
            ["--confirm-live"],
            ["COINBASE_API_KEY", "COINBASE_API_SECRET"],
            id="live-no-credentials",
        ),
    ],
)
def test_run_cli_contradiction_exits_two_with_one_error_line(
    tmp_path, capsys, settings, flags, needles
):
    assert _run(_live_yaml(tmp_path, **settings), *flags) == 2
    line = _one_error_line(capsys)
    for needle in needles:
        assert needle in line
    assert not (tmp_path / "state.sqlite").exists(), "nothing may start before the checks pass"


@pytest.mark.usefixtures("no_credentials")
def test_run_cli_unknown_live_key_names_key_and_file(tmp_path, capsys):
    path = _live_yaml(tmp_path, mode="DRY_RUN", read_onyl=True)
    assert _run(path) == 2
    line = _one_error_line(capsys)
    assert "read_onyl" in line
    assert str(path) in line


@pytest.mark.usefixtures("no_credentials")
def test_run_cli_invalid_mode_exits_two_without_traceback(tmp_path, capsys):
    assert _run(_live_yaml(tmp_path), "--mode", "YOLO") == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("no_credentials")
def test_run_cli_paper_with_read_write_yaml_warns_before_failing(tmp_path, capsys, caplog):
    # the warning is logged by the ladder, before the (missing) credentials stop the run
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        assert _run(_live_yaml(tmp_path, mode="PAPER", read_only=False)) == 2
    assert any("mode PAPER forces read_only" in r.getMessage() for r in caplog.records)
    assert "COINBASE_API_KEY" in _one_error_line(capsys)


@pytest.mark.integration
def test_run_cli_default_once_runs_dry_run_read_only(venue: Venue, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("COINBASE_API_KEY", KEY_NAME)
    monkeypatch.setenv("COINBASE_API_SECRET", venue.private_pem)
    path = _live_yaml(
        tmp_path, base_url=venue.server.base_url, ca_path=str(venue.server.ca_path),
        symbols=["BTC-USD", "ETH-USD"],
    )  # fmt: skip
    panel = to_panel(venue.bars)
    venue.clock.set(int(panel.ts_ns[300]))
    with caplog.at_level(logging.INFO, logger="live_bridge"):
        assert _run(path, "--once") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("live-bridge DRY_RUN (read_only=True)") for m in messages)
    assert any("mode=DRY_RUN" in m for m in messages)
    assert venue.engine.orders() == []


# --- a read-only daemon never reaches the order methods --------------------------------------


def _forbid_order_methods(adapter: CoinbaseAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        msg = "a read-only daemon called an order method"
        raise AssertionError(msg)

    for name in ORDER_METHODS:
        monkeypatch.setattr(adapter, name, forbidden)


@pytest.mark.integration
def test_daemon_dry_run_replay_places_nothing_and_logs_would_place(
    venue: Venue, tmp_path, caplog, monkeypatch
):
    config = parity_config()
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    first = warmup_bars(config, bar_ns)
    live = resolve_mode(
        LiveConfig(
            read_only=False, symbols=list(panel.symbols), state_path=str(tmp_path / "s.db"),
            base_url=venue.server.base_url, ca_path=str(venue.server.ca_path),
        ),
        "DRY_RUN",
        confirm_live=False,
    )  # fmt: skip
    assert live.read_only
    adapter = CoinbaseAdapter(
        CoinbaseCredentials(api_key=KEY_NAME, api_secret=venue.private_pem),
        base_url=live.base_url, ca_path=live.ca_path, timeout_secs=5.0,
    )  # fmt: skip
    _forbid_order_methods(adapter, monkeypatch)
    store = StateStore(live.state_path)
    daemon = LiveDaemon(config, live, adapter, store, now_ns=venue.clock.now_ns)
    n_orders = 0
    with caplog.at_level(logging.INFO, logger="live_bridge"):
        for t in range(first, first + 50):
            venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
            result = daemon.run_cycle()
            assert not result.skipped
            assert all(r.status == "dry_run" for r in result.orders)
            n_orders += len(result.orders)
    would = [r.getMessage() for r in caplog.records if "DRY_RUN would place" in r.getMessage()]
    assert n_orders > 0, "the replay must decide some orders"
    assert len(would) == n_orders
    assert venue.engine.orders() == []
    assert venue.engine.fills() == []
    assert {o.status for o in store.orders()} == {"dry_run"}
    store.close()
    adapter.close()
