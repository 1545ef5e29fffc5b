"""The audit trail: one JSON line per cycle and per order event, for the operator and auditors.

`AuditTrail` observes the event bus and writes every event but the high-rate ones (each HTTP
attempt, each clock read) as one JSON object per line: `{"ts": ISO UTC, "mode", "config_hash",
"type", ...the event's fields}`. Types: `started`, `stopped`, `cycle_finished` (decision
inputs summary, orders, fills, no-trade reasons, stage latencies), `cycle_failed`,
`order_changed` (every state transition of an order), `fill_applied`,
`trading_state_changed`, `reconciled`, `divergence`, `breaker_changed`, `latency_breach`,
`throttled`.

Rotation is the standard library's `logging.handlers.RotatingFileHandler` (size-based:
`audit.max_bytes`, `audit.backups` files kept); rotated files older than
`audit.retention_days` are deleted when the trail opens and at every rotation. Events carry no
credentials, so none can reach the file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from live_bridge.config import AuditSettings
from live_bridge.events import ApiCall, ClockChecked, Event, as_record

SKIPPED = (ApiCall, ClockChecked)
"""High-rate events left to metrics and latency tracking."""


class _RetainingHandler(logging.handlers.RotatingFileHandler):
    def __init__(self, path: Path, settings: AuditSettings) -> None:
        super().__init__(
            path, maxBytes=settings.max_bytes, backupCount=settings.backups, encoding="utf-8"
        )
        self.retention_secs = settings.retention_days * 86_400.0
        self.prune()

    def doRollover(self) -> None:  # noqa: N802 (the standard library's name)
        super().doRollover()
        self.prune()

    def prune(self) -> None:
        """Delete rotated files older than the retention period."""
        cutoff = time.time() - self.retention_secs
        for old in rotated_files(Path(self.baseFilename)):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except FileNotFoundError:
                pass


def rotated_files(path: Path) -> list[Path]:
    """Return the rotated files of the trail at `path` (`path.1`, `path.2`, ...)."""
    return sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
    )


class AuditTrail:
    """Write audited events to a rotating JSON-lines file."""

    def __init__(self, path: Path, settings: AuditSettings, mode: str, config_hash: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.mode = mode
        self.config_hash = config_hash
        self._handler = _RetainingHandler(path, settings)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        # a private logger: audit lines never reach the console or the root handlers
        self._log = logging.Logger(f"live_bridge.audit.{id(self)}")
        self._log.propagate = False
        self._log.addHandler(self._handler)

    def __call__(self, event: Event) -> None:
        if isinstance(event, SKIPPED):
            return
        self._log.info("%s", json.dumps(self.line(event), allow_nan=False, default=str))

    def line(self, event: Event) -> dict[str, Any]:
        """Return the audit record of `event`."""
        stamp = dt.datetime.fromtimestamp(event.ts_ns / 1e9, dt.UTC)
        head = {
            "ts": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "mode": self.mode,
            "config_hash": self.config_hash,
        }
        return head | as_record(event)

    def close(self) -> None:
        """Flush and close the file."""
        self._handler.close()


def read_audit(path: Path, types: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of the trail at `path`, oldest first (rotated files included).

    A torn last line (the daemon writing it right now) is skipped.
    """
    files = [*reversed(rotated_files(path)), path]
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if types is None or record.get("type") in types:
                yield record
