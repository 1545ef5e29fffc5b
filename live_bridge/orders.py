"""The order lifecycle as a transition table: `(status, event) -> status`.

Every status change of a daemon order goes through `next_status`; a pair that is not in the
table raises `StateTransitionError` naming both, and the caller logs it and leaves the order as
it was (NautilusTrader `model/orders/base.pyx` keeps its order FSM the same way).

```
intended --accept--> open --partial_fill--> partially_filled --fill--> filled
   |                  |                          |
   |                  +--fill / cancel / expire / fail--> filled | cancelled | expired | failed
   +--reject--> rejected        +--no_answer--> unknown --(any venue answer)--> ...
   +--skip--> skipped (not sent: a pre-trade check, read-only, or its bar ended unsent)
   +--dry_run--> dry_run (DRY_RUN mode logs it)
```

* `intended`: decided and committed to the store, not yet known to have reached the venue.
* `unknown`: a create got no answer (timeouts, 5xx, a dropped connection after the retries).
  Only the venue's order list, looked up by client order id, moves it on; `not_found` (the
  venue has no such order once its bar has ended) makes it `failed`.
* A venue status maps to an event with `venue_event`; observing the status an order already has
  is a self-loop (`open` + `accept`), so every observation goes through the table.
"""

from __future__ import annotations

from typing import Final

from live_bridge.errors import StateTransitionError
from live_bridge.reconcile import RESTING

INTENDED: Final = "intended"
OPEN: Final = "open"
PARTIALLY_FILLED: Final = "partially_filled"
FILLED: Final = "filled"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"
REJECTED: Final = "rejected"
FAILED: Final = "failed"
UNKNOWN: Final = "unknown"
SKIPPED: Final = "skipped"
DRY_RUN: Final = "dry_run"

STATUSES: Final = (
    INTENDED, OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED, FAILED, UNKNOWN,
    SKIPPED, DRY_RUN,
)  # fmt: skip
TERMINAL: Final = frozenset({FILLED, CANCELLED, EXPIRED, REJECTED, FAILED, SKIPPED, DRY_RUN})
"""Statuses no event leaves: the order is done."""
LIVE: Final = frozenset({OPEN, PARTIALLY_FILLED})
"""Statuses of an order resting at the venue (it may still fill, and can be cancelled)."""
UNFINISHED: Final = (INTENDED, UNKNOWN, OPEN, PARTIALLY_FILLED)
"""Statuses of an order whose outcome is not settled yet (reconciliation looks at these)."""
SENT: Final = (OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED)
"""Statuses of orders the venue answered (what a parity comparison counts as sent)."""

EVENTS: Final = (
    "accept", "partial_fill", "fill", "cancel", "expire", "reject", "fail", "no_answer",
    "not_found", "skip", "dry_run",
)  # fmt: skip

# what the venue (or the daemon, for the local events) may do to an order in each status
_VENUE_ANSWERS: Final = {
    "accept": OPEN,
    "partial_fill": PARTIALLY_FILLED,
    "fill": FILLED,
    "cancel": CANCELLED,
    "expire": EXPIRED,
    "fail": FAILED,
    "reject": REJECTED,
}
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    **{(INTENDED, e): s for e, s in _VENUE_ANSWERS.items()},
    (INTENDED, "no_answer"): UNKNOWN,
    (INTENDED, "skip"): SKIPPED,
    (INTENDED, "dry_run"): DRY_RUN,
    **{(UNKNOWN, e): s for e, s in _VENUE_ANSWERS.items()},
    (UNKNOWN, "no_answer"): UNKNOWN,
    (UNKNOWN, "not_found"): FAILED,
    (OPEN, "accept"): OPEN,
    (OPEN, "partial_fill"): PARTIALLY_FILLED,
    (OPEN, "fill"): FILLED,
    (OPEN, "cancel"): CANCELLED,
    (OPEN, "expire"): EXPIRED,
    (OPEN, "fail"): FAILED,
    (PARTIALLY_FILLED, "accept"): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, "partial_fill"): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, "fill"): FILLED,
    (PARTIALLY_FILLED, "cancel"): CANCELLED,
    (PARTIALLY_FILLED, "expire"): EXPIRED,
    (FILLED, "fill"): FILLED,
    (CANCELLED, "cancel"): CANCELLED,
    (EXPIRED, "expire"): EXPIRED,
}
"""The whole lifecycle: `(status, event) -> status`; anything else is an invalid transition."""


def next_status(status: str, event: str) -> str:
    """Return the status after `event`, or raise `StateTransitionError` naming both.

    Examples
    --------
    >>> next_status("intended", "accept")
    'open'
    >>> next_status("filled", "accept")
    Traceback (most recent call last):
    ...
    live_bridge.errors.StateTransitionError: order event `accept` is not allowed in status `filled`
    """
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        if status not in STATUSES:
            msg = f"order status must be one of {list(STATUSES)}, was {status!r}"
        elif event not in EVENTS:
            msg = f"order event must be one of {list(EVENTS)}, was {event!r}"
        else:
            msg = f"order event `{event}` is not allowed in status `{status}`"
        raise StateTransitionError(msg) from None


def venue_event(venue_status: str, filled_size: float) -> str:
    """Return the event a venue order status stands for (Coinbase's upper-case names).

    OPEN, PENDING, QUEUED and CANCEL_QUEUED (it may still fill) are `accept` (`partial_fill`
    once something filled); FILLED is `fill`; CANCELLED is `cancel` (its fills, if any, are
    applied separately); EXPIRED is `expire`; FAILED is `fail`. Any other status raises
    `StateTransitionError`.
    """
    status = venue_status.upper()
    if status in RESTING:
        return "partial_fill" if filled_size > 0.0 else "accept"
    events = {
        "FILLED": "fill",
        "CANCELLED": "cancel",
        "EXPIRED": "expire",
        "FAILED": "fail",
    }
    if status not in events:
        known = [*RESTING, *events]
        msg = f"venue order status must be one of {known}, was {venue_status!r}"
        raise StateTransitionError(msg)
    return events[status]
