"""Clocks for the exchange simulator. All times are UTC epoch nanoseconds (int)."""

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Anything with `now_ns()`; the engine reads the time only through it."""

    def now_ns(self) -> int:
        """Return the current time, UTC epoch nanoseconds."""
        ...


class SteppedClock:
    """A clock that moves only when the test moves it.

    Parameters
    ----------
    start_ts_ns : int
        Initial time, UTC epoch nanoseconds.
    """

    def __init__(self, start_ts_ns: int = 0) -> None:
        self._lock = threading.Lock()
        self._now = int(start_ts_ns)

    def now_ns(self) -> int:
        """Return the current time, UTC epoch nanoseconds."""
        with self._lock:
            return self._now

    def set(self, ts_ns: int) -> None:
        """Set the time to `ts_ns`, forwards or backwards."""
        with self._lock:
            self._now = int(ts_ns)

    def advance_to(self, ts_ns: int) -> None:
        """Move the time forward to `ts_ns`; moving backwards raises ValueError."""
        with self._lock:
            if ts_ns < self._now:
                msg = f"`ts_ns` must be >= the current time {self._now}, was {ts_ns}"
                raise ValueError(msg)
            self._now = int(ts_ns)

    def advance(self, delta_ns: int) -> None:
        """Move the time forward by `delta_ns` (>= 0)."""
        if delta_ns < 0:
            msg = f"`delta_ns` must be >= 0, was {delta_ns}"
            raise ValueError(msg)
        with self._lock:
            self._now += int(delta_ns)


class RealtimeClock:
    """A clock that runs from `start_ts_ns` at `speed` times real time (accelerated if > 1).

    Parameters
    ----------
    start_ts_ns : int
        The simulated time at construction, UTC epoch nanoseconds.
    speed : float
        Simulated seconds per real second, > 0.
    monotonic : callable
        Real-time source in seconds (injectable for tests).
    """

    def __init__(
        self,
        start_ts_ns: int,
        speed: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            msg = f"`speed` must be > 0, was {speed}"
            raise ValueError(msg)
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self.speed = float(speed)
        self._anchor_sim = int(start_ts_ns)
        self._anchor_real = monotonic()

    def now_ns(self) -> int:
        """Return the current simulated time, UTC epoch nanoseconds."""
        with self._lock:
            elapsed = self._monotonic() - self._anchor_real
            return self._anchor_sim + int(elapsed * self.speed * 1e9)

    def set(self, ts_ns: int) -> None:
        """Jump to `ts_ns` and keep running from there at the same speed."""
        with self._lock:
            self._anchor_sim = int(ts_ns)
            self._anchor_real = self._monotonic()
