"""`config/live.yaml`: how the live daemon runs, and the safety ladder DRY_RUN -> PAPER -> LIVE.

The defaults are the safe ones: DRY_RUN and `read_only: true`. Secrets never live here; the
adapter reads them from the environment (`live_bridge.coinbase.CoinbaseCredentials`).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from signals.config import parse_model, read_yaml
from signals.errors import ConfigError, DataError
from signals.symbols import canonical_symbol
from signals.types import Bps, NonNegFloat, NonNegInt, Pct, PositiveFloat, PositiveInt

log = logging.getLogger("live_bridge")

Mode = Literal["DRY_RUN", "PAPER", "LIVE"]
GRANULARITY_NS = {
    "ONE_MINUTE": 60 * 1_000_000_000,
    "FIVE_MINUTE": 300 * 1_000_000_000,
    "FIFTEEN_MINUTE": 900 * 1_000_000_000,
    "THIRTY_MINUTE": 1_800 * 1_000_000_000,
    "ONE_HOUR": 3_600 * 1_000_000_000,
    "TWO_HOUR": 7_200 * 1_000_000_000,
    "SIX_HOUR": 21_600 * 1_000_000_000,
    "ONE_DAY": 86_400 * 1_000_000_000,
}


STAGE_NAMES = ("cycle", "fetch", "settle", "decide", "persist", "place")


class MetricsSettings(BaseModel, frozen=True, extra="forbid"):
    """`metrics:` Prometheus endpoint (prometheus-client), served on 127.0.0.1 only."""

    port: int | None = Field(
        None, ge=0, le=65535, description="Port of /metrics on 127.0.0.1; null = off, 0 = any."
    )
    cycle_buckets_secs: list[PositiveFloat] = Field(
        default_factory=lambda: [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0,
                                 60.0, 120.0],
        description="Histogram buckets of the cycle and stage durations (seconds, increasing).",
    )  # fmt: skip
    api_buckets_secs: list[PositiveFloat] = Field(
        default_factory=lambda: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        description="Histogram buckets of the API request durations (seconds, increasing).",
    )
    max_rejection_codes: PositiveInt = Field(
        20, description="Distinct venue error codes labelled on rejections; later ones: `other`."
    )
    max_breaker_names: PositiveInt = Field(
        16, description="Distinct health breaker names labelled; later ones: `other`."
    )

    @field_validator("cycle_buckets_secs", "api_buckets_secs")
    @classmethod
    def _increasing(cls, buckets: list[float], info: ValidationInfo) -> list[float]:
        if not buckets or sorted(set(buckets)) != buckets:
            msg = f"`{info.field_name}` must be a non-empty increasing list, was {buckets}"
            raise ValueError(msg)
        return buckets


class AlertSettings(BaseModel, frozen=True, extra="forbid"):
    """`alerts:` where alerts go and how they are deduplicated and escalated."""

    webhook_url: str | None = Field(
        None, description="JSON POST target (http:// or https://); null = alerts are logged only."
    )
    dedup_secs: PositiveFloat = Field(60.0, description="Same fingerprint within this: sent once.")
    escalate_secs: PositiveFloat = Field(
        120.0, description="Unresolved this long: severity raised and sent again."
    )
    timeout_secs: PositiveFloat = Field(2.0, description="Per webhook POST.")
    error_burst: PositiveInt = Field(5, description="Failed API calls within `burst_secs`.")
    rejection_burst: PositiveInt = Field(3, description="Rejected orders within `burst_secs`.")
    exception_burst: PositiveInt = Field(3, description="Failed cycles within `burst_secs`.")
    burst_secs: PositiveFloat = Field(300.0, description="Window of the burst alerts.")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            msg = f"`webhook_url` must start with http:// or https://, was {url!r}"
            raise ValueError(msg)
        return url

    retries: NonNegInt = Field(
        2, description="Webhook retries of one message before it is dropped (none while the "
        "webhook keeps failing).",
    )  # fmt: skip


class AuditSettings(BaseModel, frozen=True, extra="forbid"):
    """`audit:` the JSON-lines audit trail (one line per cycle and per order event)."""

    enabled: bool = Field(True, description="Write the audit trail.")
    path: str | None = Field(
        None, description="Audit file; null = beside the state file (<state_path>.audit.jsonl)."
    )
    max_bytes: PositiveInt = Field(10_000_000, description="Rotate when the file reaches this.")
    backups: PositiveInt = Field(50, description="Rotated files kept at most.")
    retention_days: PositiveFloat = Field(90.0, description="Rotated files older are deleted.")


class LatencySettings(BaseModel, frozen=True, extra="forbid"):
    """`latency:` budgets (seconds) for the cycle, its stages and API endpoints."""

    budgets_secs: dict[str, PositiveFloat] = Field(
        default_factory=lambda: {"cycle": 45.0},
        description="Budget per name: `cycle`, a stage (fetch, settle, decide, persist, place) "
        "or an SDK endpoint (`get_candles`, `create_order`, ...).",
    )
    samples: PositiveInt = Field(512, description="Newest samples kept per name (persisted).")


class RateLimitSettings(BaseModel, frozen=True, extra="forbid"):
    """`rate_limits:` token buckets under the venue's published limits (requests/s)."""

    private_per_sec: PositiveFloat = Field(30.0, description="Coinbase: 30/s per user.")
    public_per_sec: PositiveFloat = Field(10.0, description="Coinbase: 10/s per IP.")
    per_endpoint_per_sec: dict[str, PositiveFloat] = Field(
        default_factory=dict, description="Tighter limits for single SDK endpoints."
    )
    slow_pct: Pct = Field(80.0, description="Usage at which requests are spaced out.")
    hold_pct: Pct = Field(90.0, description="Usage at which requests wait for tokens.")

    @model_validator(mode="after")
    def _usable_thresholds(self) -> RateLimitSettings:
        if not 0.0 < self.slow_pct <= self.hold_pct:
            msg = (
                "`rate_limits` needs 0 < slow_pct <= hold_pct, was "
                f"slow_pct {self.slow_pct:g}, hold_pct {self.hold_pct:g}"
            )
            raise ValueError(msg)
        limits = {
            "private_per_sec": self.private_per_sec,
            "public_per_sec": self.public_per_sec,
            **{f"per_endpoint_per_sec.{k}": v for k, v in self.per_endpoint_per_sec.items()},
        }
        for name, per_sec in limits.items():
            # the limiter counts whole requests per trailing second
            if per_sec * self.hold_pct / 100.0 < 1.0 - 1e-9:
                msg = (
                    f"`rate_limits.{name}` x hold_pct must allow at least 1 request per second, "
                    f"was {per_sec:g}/s x {self.hold_pct:g} %; raise the limit or hold_pct"
                )
                raise ValueError(msg)
        return self


class BreakerSettings(BaseModel, frozen=True, extra="forbid"):
    """`breakers:` health circuit breakers that block new entries while open."""

    error_burst: PositiveInt = Field(5, description="Failed API calls within `window_secs`.")
    rate_limit_hits: PositiveInt = Field(3, description="HTTP 429s within `window_secs`.")
    window_secs: PositiveFloat = Field(60.0, description="Window of the counts above.")
    stale_bar_secs: PositiveFloat | None = Field(
        None, description="Newest bar older than this after its close: stale (null: 1 bar)."
    )
    cooldown_secs: PositiveFloat = Field(
        120.0, description="An open breaker closes once healthy this long."
    )


class ShadowSettings(BaseModel, frozen=True, extra="forbid"):
    """`shadow:` where `live-bridge run --shadow` writes its report, and how much it keeps."""

    report_dir: str = Field("reports/shadow", description="shadow.json and shadow.html go here.")
    retry_bars: NonNegInt = Field(
        3, description="A bar whose venue reads failed is tried again at this many later cycles."
    )
    max_bars: PositiveInt = Field(
        5000, description="Newest evaluated bars kept in the report (the summary covers these)."
    )


class LiveConfig(BaseModel, frozen=True, extra="forbid"):
    """Daemon settings. Every default is safe for real money."""

    mode: Mode = Field(
        "DRY_RUN", description="DRY_RUN logs orders; PAPER simulates fills; LIVE trades."
    )
    read_only: bool = Field(True, description="Never place or cancel orders. LIVE needs false.")
    symbols: list[str] = Field(
        default_factory=lambda: ["BTC-USD", "ETH-USD"], description="Products the daemon trades."
    )
    granularity: Literal[
        "ONE_MINUTE", "FIVE_MINUTE", "FIFTEEN_MINUTE", "THIRTY_MINUTE", "ONE_HOUR", "TWO_HOUR",
        "SIX_HOUR", "ONE_DAY",
    ] = Field("ONE_HOUR", description="Bar length; must match the backtested data.")  # fmt: skip
    window_bars: NonNegInt = Field(
        0, description="Rolling window length; 0 = the decision path's warm-up (exact parity)."
    )
    jitter_pct: float = Field(
        10.0,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="Random delay after a bar close, % of a bar (0-10), drawn afresh per bar.",
    )
    close_delay_secs: NonNegFloat = Field(
        2.0,
        description="Venue seconds to wait after a bar close before fetching it (publishing lag).",
    )
    state_path: str = Field("data/state/live.sqlite", description="SQLite state store.")
    base_url: str | None = Field(None, description="host:port of the venue; None = production.")
    ca_path: str | None = Field(None, description="CA bundle to trust (the exchange simulator's).")
    timeout_secs: PositiveFloat = Field(10.0, description="Per-request timeout.")
    max_retries: NonNegInt = Field(4, description="Retries of transient exchange errors.")
    max_quote_age_seconds: PositiveFloat = Field(
        30.0, description="Older quotes are not traded on."
    )
    max_spread_bps: Bps = Field(50.0, description="Skip an order when the spread is wider.")
    min_book_depth_usd: NonNegFloat = Field(
        1_000.0, description="Skip an order when the book within 20 bps is thinner (per side)."
    )
    depth_within_bps: Bps = Field(20.0, description="Band for the depth check, bps.")
    initial_cash_usd: PositiveFloat | None = Field(
        None, description="DRY_RUN/PAPER starting cash; None = the backtest's initial cash."
    )
    max_cycles: PositiveInt | None = Field(None, description="Stop after N cycles (rehearsals).")
    kill_switch_path: str = Field(
        "data/KILL_SWITCH",
        description="While this file exists no order is sent and open orders are cancelled "
        "(`live-bridge kill` creates it; removing it is the only way back).",
    )
    on_stop: Literal["cancel", "leave"] = Field(
        "cancel", description="On SIGTERM/SIGINT: cancel the open orders, or leave them resting."
    )
    poll_interval_secs: float = Field(
        1.0,
        gt=0.0,
        le=3.0,
        allow_inf_nan=False,
        description="How often the waiting daemon checks the kill switch and signals (<= 3 s).",
    )
    clock_speed: PositiveFloat = Field(
        1.0,
        description="Venue seconds per real second: 1 for Coinbase; the exchange simulator's "
        "`--speed` under `--clock accelerated`, so the daemon sleeps simulated time.",
    )
    clock_sync_secs: PositiveFloat = Field(
        30.0, description="Real seconds between reads of the venue's clock while waiting."
    )
    retry_delay_secs: PositiveFloat = Field(
        5.0, description="Real seconds before a failed cycle is tried again."
    )
    late_start_pct: Pct = Field(
        20.0,
        description="At start, decide the newest closed bar only if it closed less than this "
        "% of a bar ago (else wait for the next close, as the backtest fills at the next open).",
    )

    max_clock_skew_ms: PositiveFloat | None = Field(
        150.0,
        description="LIVE refuses to start (and a breaker blocks entries) when the local clock "
        "differs from the venue's by more; null turns the check off (only with `base_url`, "
        "for a simulator's simulated clock).",
    )
    secret_created: dt.date | None = Field(
        None, description="Day the API key was created (the key carries no date); warns at 80 "
        "days, alerts at 90.",
    )  # fmt: skip
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    latency: LatencySettings = Field(default_factory=LatencySettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    breakers: BreakerSettings = Field(default_factory=BreakerSettings)
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)

    @model_validator(mode="after")
    def _clock_check_in_production(self) -> LiveConfig:
        if self.max_clock_skew_ms is None and self.base_url is None:
            msg = (
                "`max_clock_skew_ms` must be set when trading on Coinbase (base_url null), was "
                "null; null is only for an exchange simulator's simulated clock"
            )
            raise ValueError(msg)
        return self

    @field_validator("symbols")
    @classmethod
    def _canonical_symbols(cls, symbols: list[str]) -> list[str]:
        out = []
        for raw in symbols:
            try:
                symbol = canonical_symbol(raw)
            except DataError as e:
                raise ValueError(str(e)) from None
            if symbol in out:
                msg = f"`symbols` must not repeat a product, was {symbol} twice"
                raise ValueError(msg)
            out.append(symbol)
        if not out:
            msg = "`symbols` must name at least one product, was empty"
            raise ValueError(msg)
        return out

    def audit_path(self) -> Path | None:
        """Return the audit trail's file, None when it is off."""
        if not self.audit.enabled:
            return None
        if self.audit.path is not None:
            return Path(self.audit.path)
        return Path(self.state_path).with_suffix(".audit.jsonl")

    def bar_ns(self) -> int:
        """Return the bar length in ns."""
        return GRANULARITY_NS[self.granularity]


def load_live_config(path: str | Path) -> LiveConfig:
    """Load `live.yaml` (missing file: safe defaults) with the strict loader's messages."""
    file = Path(path)
    if not file.exists():
        return LiveConfig()
    data = read_yaml(file)
    config: LiveConfig = parse_model(LiveConfig, data, str(file))
    return config


def resolve_mode(config: LiveConfig, cli_mode: Mode | None, confirm_live: bool) -> LiveConfig:
    """Apply the safety ladder and return the effective config; raise on any contradiction.

    * The mode is the CLI's `--mode` if given, else the config's.
    * Any mode but LIVE is read-only, whatever the config says (logged when forced).
    * LIVE needs `read_only: false` in the config AND `--confirm-live` on the command line.
    * `--confirm-live` with a mode other than LIVE is a contradiction.
    """
    mode: Mode = cli_mode or config.mode
    if confirm_live and mode != "LIVE":
        msg = f"`--confirm-live` is only for LIVE mode, was given with mode {mode}"
        raise ConfigError(msg)
    if mode == "LIVE":
        if config.read_only:
            msg = (
                "LIVE mode needs `read_only: false` in live.yaml, was `read_only: true` "
                "(the safe default); set it deliberately to trade real money"
            )
            raise ConfigError(msg)
        if not confirm_live:
            msg = "LIVE mode trades real money and needs `--confirm-live` on the command line"
            raise ConfigError(msg)
        return config.model_copy(update={"mode": mode})
    if not config.read_only:
        log.warning("mode %s forces read_only (live.yaml had read_only: false)", mode)
    return config.model_copy(update={"mode": mode, "read_only": True})
