"""Client-side rate limiting: token buckets that keep every trailing second under 90 % of a limit.

Unit tests inject a fake monotonic clock whose `sleep` moves it (integer ns, so window edges are
exact); the integration test runs the real adapter against the session exchange simulator.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from live_bridge.config import RateLimitSettings
from live_bridge.events import ApiCall, Event, EventBus, Throttled
from live_bridge.ratelimit import RateLimiter, bucket_class
from signals.errors import ConfigError
from tests.live_bridge.conftest import build_adapter

SECOND_NS = 1_000_000_000


@dataclass
class FakeTime:
    """A monotonic clock in integer ns; `sleep` advances it and records the delay (s)."""

    ns: int = 50 * SECOND_NS
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.ns / 1e9

    def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.ns += round(secs * 1e9)


def _limiter(**limits: object) -> tuple[RateLimiter, FakeTime, list[Throttled]]:
    fake = FakeTime()
    bus = EventBus()
    throttled: list[Throttled] = []
    bus.subscribe(lambda e: throttled.append(e) if isinstance(e, Throttled) else None)
    limiter = RateLimiter(
        RateLimitSettings(**limits),  # type: ignore[arg-type]
        bus,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    return limiter, fake, throttled


def max_per_trailing_second(times_ns: list[int]) -> int:
    """Return the most of `times_ns` (sorted) inside any window (t - 1 s, t]."""
    best, lo = 0, 0
    for hi, t in enumerate(times_ns):
        while times_ns[lo] <= t - SECOND_NS:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_endpoints_map_to_the_venue_limit_they_count_against():
    assert bucket_class("get_unix_time") == "public"
    assert bucket_class("get_public_candles") == "public"
    assert bucket_class("get_public_product_book") == "public"
    for private in ("get_candles", "create_order", "get_accounts", "list_orders", "get_fills"):
        assert bucket_class(private) == "private"
    limiter, _fake, _events = _limiter(per_endpoint_per_sec={"get_candles": 5.0})
    assert limiter.buckets_of("get_candles") == ("private", "get_candles")
    assert limiter.buckets_of("get_unix_time") == ("public",)


def test_a_burst_never_puts_more_than_90_pct_of_the_limit_in_a_second():
    limiter, fake, throttled = _limiter(public_per_sec=10.0)
    sent = []
    for _ in range(100):
        limiter.before_request("get_public_candles")
        sent.append(fake.ns)
    assert max_per_trailing_second(sent) == 9
    elapsed = (sent[-1] - sent[0]) / 1e9
    # 80 % of 10/s sustained (8 at once, then spaced): 100 requests need over 11 s
    assert elapsed > 100 / 9 - 1
    assert {e.level for e in throttled} == {"slow", "hold"}
    assert {(e.endpoint, e.bucket) for e in throttled} == {("get_public_candles", "public")}
    assert sum(e.wait_secs for e in throttled) == pytest.approx(sum(fake.sleeps))


def test_below_80_pct_no_wait_from_80_spaced_at_90_held():
    limiter, fake, throttled = _limiter(private_per_sec=10.0)
    start = fake.ns
    for _ in range(8):  # usage before each: 0 .. 70 %
        limiter.before_request("get_accounts")
    assert fake.sleeps == []
    assert throttled == []
    # the 9th sees 80 %: spaced to the 80 % rate, 1 / 8 s after the previous request
    limiter.before_request("get_accounts")
    (slow,) = throttled
    assert (slow.level, slow.bucket, slow.usage_pct) == ("slow", "private", 80.0)
    assert slow.wait_secs == pytest.approx(0.125)
    # the 10th sees 90 %: held until usage is under 80 % again (the first 8 leave the second)
    limiter.before_request("get_accounts")
    hold = throttled[-1]
    assert (hold.level, hold.usage_pct) == ("hold", 90.0)
    assert fake.ns - start == SECOND_NS
    assert limiter.usage_pct("private") == pytest.approx(20.0)  # the 9th and the 10th
    # later requests spread out: usage stays at or under 90 %
    fake.ns += SECOND_NS // 2
    n_events = len(throttled)
    limiter.before_request("get_accounts")
    assert len(throttled) == n_events  # usage 20 %: straight through


def test_hold_lasts_until_usage_is_under_80_pct_not_at_it():
    limiter, fake, throttled = _limiter(private_per_sec=10.0)
    start = fake.ns
    for _ in range(8):  # one every 100 ms: 0 .. 70 %, no wait
        limiter.before_request("get_fills")
        fake.ns += SECOND_NS // 10
    fake.ns -= SECOND_NS // 10
    limiter.before_request("get_fills")  # 80 %: spaced to 0.825 s
    assert fake.ns - start == 825_000_000
    limiter.before_request("get_fills")  # 90 %: held
    # at 1.0 s the request at 0.0 s has left but 8 remain (80 %); at 1.1 s 7 remain (70 %)
    assert fake.ns - start == 1_100_000_000
    assert [e.level for e in throttled] == ["slow", "hold"]
    assert limiter.usage_pct("private") == pytest.approx(80.0)  # 7 and this one


def test_per_endpoint_bucket_throttles_that_endpoint_only():
    limiter, fake, throttled = _limiter(per_endpoint_per_sec={"get_candles": 5.0})
    for _ in range(4):
        limiter.before_request("get_candles")
    for _ in range(10):  # the private bucket (30/s) has room: no wait
        limiter.before_request("get_accounts")
    assert fake.sleeps == []
    # 4 in the second is 80 % of 5/s, and a 5th would exceed 90 % (4.5): held for a second
    limiter.before_request("get_candles")
    (held,) = throttled
    assert (held.endpoint, held.bucket, held.level) == ("get_candles", "get_candles", "hold")
    assert held.wait_secs == pytest.approx(1.0)
    assert held.usage_pct == pytest.approx(80.0)


def test_per_endpoint_requests_also_count_against_their_venue_limit():
    limiter, fake, throttled = _limiter(private_per_sec=10.0, per_endpoint_per_sec={
        "get_fills": 20.0})  # fmt: skip
    for _ in range(8):
        limiter.before_request("get_fills")
    limiter.before_request("list_orders")  # 80 % of the private 10/s
    assert throttled[-1].bucket == "private"
    assert throttled[-1].level == "slow"


def test_thresholds_and_limits_that_cannot_work_are_refused():
    with pytest.raises(ValidationError, match="slow_pct <= hold_pct"):
        RateLimitSettings(slow_pct=95.0, hold_pct=90.0)
    with pytest.raises(ValidationError, match=r"per_endpoint_per_sec.get_fills` x hold_pct"):
        RateLimitSettings(per_endpoint_per_sec={"get_fills": 1.0})  # 0.9 requests/s
    with pytest.raises(ConfigError, match="`get_candle` is not a coinbase-advanced-py"):
        RateLimiter(RateLimitSettings(per_endpoint_per_sec={"get_candle": 5.0}), EventBus())


def test_concurrent_requests_reserve_their_own_slots():
    """Threads that all arrive while the others still wait: the clock stands still (sleeps
    record only), so each request's send time is its arrival plus the wait it was given."""
    bus = EventBus()
    now = 7.0
    sends: list[int] = []
    lock = threading.Lock()
    local = threading.local()

    def record_sleep(secs: float) -> None:
        local.wait = secs

    limiter = RateLimiter(RateLimitSettings(public_per_sec=10.0), bus, clock=lambda: now,
                          sleep=record_sleep)  # fmt: skip

    def worker() -> None:
        for _ in range(25):
            local.wait = 0.0
            limiter.before_request("get_unix_time")
            with lock:
                sends.append(round((now + local.wait) * 1e9))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sends.sort()
    assert len(set(sends)) > 10  # spread over time, not all at the frozen instant
    assert max_per_trailing_second(sends) <= 9
    assert (sends[-1] - sends[0]) / 1e9 > 100 / 9 - 1


ENDPOINTS = ("get_candles", "get_accounts", "get_public_candles", "get_unix_time")


@settings(max_examples=150, deadline=None)
@given(
    private=st.floats(2.0, 40.0),
    public=st.floats(2.0, 20.0),
    candles=st.floats(2.0, 15.0),
    slow=st.floats(50.0, 90.0),
    hold_over_slow=st.floats(0.0, 10.0),
    requests=st.lists(
        st.tuples(st.integers(0, 300_000_000), st.sampled_from(ENDPOINTS)), max_size=150
    ),
)
def test_no_trailing_second_ever_exceeds_90_pct_of_a_limit(
    private, public, candles, slow, hold_over_slow, requests
):
    hold = slow + hold_over_slow
    limits = {"private": private, "public": public, "get_candles": candles}
    limiter, fake, throttled = _limiter(
        private_per_sec=private, public_per_sec=public, slow_pct=slow, hold_pct=hold,
        per_endpoint_per_sec={"get_candles": candles},
    )  # fmt: skip
    sent: dict[str, list[int]] = {name: [] for name in limits}
    for gap_ns, endpoint in requests:
        fake.ns += gap_ns
        arrived, n_sleeps = fake.ns, len(fake.sleeps)
        limiter.before_request(endpoint)
        waited = (fake.ns - arrived) / 1e9
        assert len(fake.sleeps) - n_sleeps == (1 if waited else 0)
        # never longer than a second, or the spacing of the slowest slow rate
        assert waited <= max(1.0, 100.0 / (min(limits.values()) * slow)) + 1e-9
        for name in limiter.buckets_of(endpoint):
            sent[name].append(fake.ns)
    for name, times in sent.items():
        assert max_per_trailing_second(times) <= limits[name] * hold / 100.0 + 1e-9, name
    assert len(throttled) == len(fake.sleeps)


def test_requests_below_slow_usage_are_never_delayed():
    limiter, fake, throttled = _limiter(public_per_sec=10.0)
    for _ in range(50):  # 7 a second: 70 %
        for _ in range(7):
            limiter.before_request("get_unix_time")
        fake.ns += SECOND_NS
    assert throttled == []


@pytest.mark.integration
def test_real_adapter_spaced_by_a_tight_endpoint_limit(sim, api_key, sleeps, caplog):
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    limiter = RateLimiter(RateLimitSettings(per_endpoint_per_sec={"get_unix_time": 5.0}), bus)
    n_calls = 20
    with build_adapter(sim, api_key, sleeps) as adapter:
        adapter.before_request = limiter.before_request
        adapter.on_request = lambda e, c, s, ok: bus.emit(
            ApiCall(endpoint=e, code=c, secs=s, ok=ok)
        )
        with caplog.at_level(logging.DEBUG, logger="live_bridge.exchange_sim"):
            start = time.monotonic()
            for _ in range(n_calls):
                adapter.server_time_ns()
            elapsed = time.monotonic() - start
    # at most floor(5 * 0.9) = 4 a second: 5 bursts of 4, one second apart
    cap = math.floor(5 * 0.9)
    assert elapsed >= (n_calls / cap - 1) - 0.01
    assert elapsed < 12.0
    calls = [e for e in seen if isinstance(e, ApiCall)]
    assert [(c.endpoint, c.code) for c in calls] == [("get_unix_time", "200")] * n_calls
    holds = [e for e in seen if isinstance(e, Throttled)]
    assert len(holds) >= n_calls / cap - 1
    assert {(h.bucket, h.level) for h in holds} == {("get_unix_time", "hold")}
    # what the simulator answered: every request 200, none 429, spread over 4 s
    answers = [r for r in caplog.records if "/api/v3/brokerage/time" in r.getMessage()]
    assert len(answers) == n_calls
    assert all('" 200 ' in r.getMessage() for r in answers)
    assert answers[-1].created - answers[0].created >= n_calls / cap - 1 - 0.1
