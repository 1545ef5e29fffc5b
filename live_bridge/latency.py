"""Latency of the live daemon: p50/p95/p99 per API endpoint and per cycle stage, with budgets.

`LatencyTracker` observes the event bus: every `ApiCall` is a sample of `api:<endpoint>`,
every `CycleFinished` a sample of `cycle` and of `stage:<name>` for each stage that ran. A
sample over its budget (`latency.budgets_secs` in live.yaml, keyed `cycle`, a stage name or
an endpoint) emits a `LatencyBreach`. The newest `latency.samples` samples per name are saved
in the state file's `meta` table after every cycle, so percentiles survive a restart and
`live-bridge status` can read them while the daemon runs.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

from live_bridge.config import LatencySettings
from live_bridge.events import ApiCall, CycleFinished, Event, EventBus, LatencyBreach
from live_bridge.store import StateStore

log = logging.getLogger("live_bridge.latency")
META_KEY = "latency"
QUANTILES = (50, 95, 99)


def latency_summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Return {name: {n, p50, p95, p99, max}} (seconds) of the samples by name."""
    out: dict[str, dict[str, float]] = {}
    for name, values in sorted(samples.items()):
        if not values:
            continue
        arr = np.asarray(values, dtype=np.float64)
        row = {"n": float(arr.size), "max": float(arr.max())}
        for q, v in zip(QUANTILES, np.percentile(arr, QUANTILES), strict=True):
            row[f"p{q}"] = float(v)
        out[name] = row
    return out


class LatencyTracker:
    """Collect latency samples from the bus, check budgets, persist after each cycle."""

    def __init__(self, settings: LatencySettings, store: StateStore, events: EventBus) -> None:
        self.settings = settings
        self._store = store
        self._events = events
        saved = store.get_meta(META_KEY, {}) or {}
        self._samples: dict[str, deque[float]] = {
            name: deque((float(v) for v in values), maxlen=settings.samples)
            for name, values in saved.items()
        }

    def _add(self, name: str, budget_key: str, secs: float) -> None:
        self._samples.setdefault(name, deque(maxlen=self.settings.samples)).append(secs)
        budget = self.settings.budgets_secs.get(budget_key)
        if budget is not None and secs > budget:
            log.warning("latency budget breached: %s took %.3f s (budget %.3f s)",
                        name, secs, budget)  # fmt: skip
            self._events.emit(LatencyBreach(name=name, secs=secs, budget_secs=budget))

    def __call__(self, event: Event) -> None:
        if isinstance(event, ApiCall):
            self._add(f"api:{event.endpoint}", event.endpoint, event.secs)
        elif isinstance(event, CycleFinished):
            for stage, secs in event.stages.items():
                self._add(f"stage:{stage}", stage, secs)
            self._add("cycle", "cycle", event.secs)
            self.save()

    def samples(self) -> dict[str, list[float]]:
        """Return the kept samples by name."""
        return {name: list(values) for name, values in self._samples.items()}

    def summary(self) -> dict[str, dict[str, float]]:
        """Return `latency_summary` of the kept samples."""
        return latency_summary(self.samples())

    def save(self) -> None:
        """Write the kept samples to the state file (one small transaction)."""
        data: dict[str, Any] = {
            name: [round(v, 6) for v in vals] for name, vals in self._samples.items()
        }
        with self._store.transaction() as db:
            self._store.set_meta(db, META_KEY, data)
