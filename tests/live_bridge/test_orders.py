"""The order state machine and the daemon's trading-state table: every pair, and random walks."""

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from live_bridge import orders as lifecycle
from live_bridge import trading_state as trading
from live_bridge.errors import StateTransitionError
from live_bridge.orders import EVENTS, STATUSES, TERMINAL, TRANSITIONS, next_status, venue_event


def test_next_status_follows_the_documented_happy_path():
    status = lifecycle.INTENDED
    for event, expected in [
        ("accept", "open"),
        ("partial_fill", "partially_filled"),
        ("partial_fill", "partially_filled"),
        ("fill", "filled"),
    ]:
        status = next_status(status, event)
        assert status == expected


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_next_status_terminal_status_only_self_loops(status):
    for event in EVENTS:
        target = TRANSITIONS.get((status, event))
        assert target in (None, status)
        if target is None:
            with pytest.raises(StateTransitionError, match=f"`{event}`.*`{status}`"):
                next_status(status, event)


def test_next_status_unknown_names_raise_naming_them():
    with pytest.raises(StateTransitionError, match="status must be one of .* was 'bogus'"):
        next_status("bogus", "accept")
    with pytest.raises(StateTransitionError, match="event must be one of .* was 'explode'"):
        next_status("open", "explode")


def test_unknown_order_never_becomes_failed_without_the_venue():
    # a create without an answer is resolved only by what the venue says (or does not have)
    assert next_status("intended", "no_answer") == "unknown"
    assert next_status("unknown", "no_answer") == "unknown"
    assert next_status("unknown", "accept") == "open"
    assert next_status("unknown", "fill") == "filled"
    assert next_status("unknown", "not_found") == "failed"
    for local in ("skip", "dry_run"):
        with pytest.raises(StateTransitionError):
            next_status("unknown", local)


def test_every_status_is_reachable_from_intended():
    seen, frontier = {lifecycle.INTENDED}, [lifecycle.INTENDED]
    while frontier:
        status = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src == status and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(STATUSES)


@pytest.mark.parametrize(
    ("venue", "filled", "event"),
    [
        ("OPEN", 0.0, "accept"),
        ("PENDING", 0.0, "accept"),
        ("OPEN", 0.5, "partial_fill"),
        ("CANCEL_QUEUED", 0.0, "accept"),
        ("FILLED", 1.0, "fill"),
        ("CANCELLED", 0.3, "cancel"),
        ("EXPIRED", 0.0, "expire"),
        ("FAILED", 0.0, "fail"),
        ("filled", 1.0, "fill"),
    ],
)
def test_venue_event_maps_coinbase_statuses(venue, filled, event):
    assert venue_event(venue, filled) == event


def test_venue_event_unknown_status_raises_naming_it():
    with pytest.raises(StateTransitionError, match="was 'EXPLODED'"):
        venue_event("EXPLODED", 0.0)


class OrderLifecycle(RuleBasedStateMachine):
    """Random event sequences: an invalid event changes nothing; a terminal status is final."""

    def __init__(self) -> None:
        super().__init__()
        self.status = lifecycle.INTENDED
        self.history = [self.status]

    @rule(event=st.sampled_from(EVENTS))
    def apply(self, event):
        before = self.status
        if (before, event) in TRANSITIONS:
            self.status = next_status(before, event)
        else:
            with pytest.raises(StateTransitionError):
                next_status(before, event)
            assert self.status == before
        self.history.append(self.status)

    @invariant()
    def terminal_is_final(self):
        terminal_at = next((i for i, s in enumerate(self.history) if s in TERMINAL), None)
        if terminal_at is not None:
            assert set(self.history[terminal_at:]) == {self.history[terminal_at]}

    @invariant()
    def never_back_to_intended(self):
        left = next((i for i, s in enumerate(self.history) if s != lifecycle.INTENDED), None)
        if left is not None:
            assert lifecycle.INTENDED not in self.history[left:]


TestOrderLifecycle = OrderLifecycle.TestCase
TestOrderLifecycle.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)


# --- trading state ------------------------------------------------------------------------------


def test_trading_state_table_is_total():
    assert set(trading.TRANSITIONS) == {(s, e) for s in trading.STATES for e in trading.EVENTS}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["mismatch"], "reduce_only"),
        (["mismatch", "reconciled"], "active"),
        (["mismatch", "kill"], "killed"),
        (["mismatch", "kill", "release"], "active"),
        (["kill", "mismatch", "auth_failed", "reconciled"], "killed"),
        (["auth_failed"], "halted"),
        (["auth_failed", "reconciled"], "halted"),
        (["auth_failed", "auth_ok"], "active"),
        (["kill", "stop", "release"], "stopping"),
    ],
)
def test_trading_state_precedence(events, expected):
    state = trading.ACTIVE
    for event in events:
        state = trading.next_state(state, event)
    assert state == expected


def test_trading_state_permissions():
    assert trading.entries_allowed("active")
    assert not trading.entries_allowed("reduce_only")
    assert trading.orders_allowed("reduce_only")
    for state in ("halted", "killed", "stopping"):
        assert not trading.orders_allowed(state)
