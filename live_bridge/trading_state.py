"""The daemon's trading state as a transition table: `(state, event) -> state`.

| state | new entries | exits | what the daemon does |
| --- | --- | --- | --- |
| `active` | yes | yes | trades the decision |
| `reduce_only` | no | yes | a reconcile mismatch is open: the store and the venue disagree |
| `halted` | no | no | the venue refused the credentials (401/403) |
| `killed` | no | no | the kill switch is on: open orders are cancelled, nothing is sent |
| `stopping` | no | no | SIGTERM/SIGINT: finish, cancel (`on_stop: cancel`), exit 0 |

The kill switch outranks everything but stopping; releasing it (removing the kill file) goes
back to `active`, and the next reconciliation finds any mismatch again. Every pair is in the
table, so no event is ever refused; the table is what decides the precedence.
"""

from __future__ import annotations

from typing import Final

ACTIVE: Final = "active"
REDUCE_ONLY: Final = "reduce_only"
HALTED: Final = "halted"
KILLED: Final = "killed"
STOPPING: Final = "stopping"
STATES: Final = (ACTIVE, REDUCE_ONLY, HALTED, KILLED, STOPPING)
EVENTS: Final = ("mismatch", "reconciled", "auth_failed", "auth_ok", "kill", "release", "stop")

# fmt: off
_ROWS: Final[dict[str, tuple[str, ...]]] = {
    #             mismatch     reconciled  auth_failed  auth_ok      kill    release      stop
    ACTIVE:      (REDUCE_ONLY, ACTIVE,     HALTED,      ACTIVE,      KILLED, ACTIVE,      STOPPING),
    REDUCE_ONLY: (REDUCE_ONLY, ACTIVE,     HALTED,      REDUCE_ONLY, KILLED, REDUCE_ONLY, STOPPING),
    HALTED:      (HALTED,      HALTED,     HALTED,      ACTIVE,      KILLED, HALTED,      STOPPING),
    KILLED:      (KILLED,      KILLED,     KILLED,      KILLED,      KILLED, ACTIVE,      STOPPING),
    STOPPING:    (STOPPING,) * len(EVENTS),
}
# fmt: on
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (state, event): target
    for state, row in _ROWS.items()
    for event, target in zip(EVENTS, row, strict=True)
}
"""Every `(state, event)` pair and the state it leads to."""


def next_state(state: str, event: str) -> str:
    """Return the trading state after `event` (ValueError for a name not in the table)."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        msg = (
            f"trading state must be in {list(STATES)} and event in {list(EVENTS)}, "
            f"was {state!r}, {event!r}"
        )
        raise ValueError(msg) from None


def entries_allowed(state: str) -> bool:
    """Return whether new entries may be sent in `state`."""
    return state == ACTIVE


def orders_allowed(state: str) -> bool:
    """Return whether any order (exits included) may be sent in `state`."""
    return state in (ACTIVE, REDUCE_ONLY)
