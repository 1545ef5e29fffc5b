"""Fault injection for the exchange simulator, switchable at runtime from a test or the CLI.

Counted faults (`rate_limit`, `server_error`, `timeout`, `drop`, `commit_then_fail`,
`unauthorized`) are queued in order; each matching request consumes one count of the first rule
whose path prefix matches (a prefix ending in `$` matches that exact path only, e.g.
`/api/v3/brokerage/orders$` is order creation and not the order list).

All but `commit_then_fail` answer instead of the venue, so the request changes nothing;
`commit_then_fail` lets the venue process the request (an order is created, balances move) and
then loses the answer: the connection is dropped with no response (mode "drop") or a 5xx body
replaces the real answer (mode "server_error"), which is how a client learns to look an order
up by its `client_order_id` before placing it again. `unauthorized` answers 401 with the
plain-text body `Unauthorized`, as production does for a bad or expired JWT. `latency` delays
every matching request. `stale_quotes` freezes the `time` of best bid/ask and book responses in
the past. Product status changes are not faults: use `ExchangeEngine.set_product_status`. Admin
paths (`/sim/...`) are never faulted.
"""

import threading
from dataclasses import dataclass
from typing import Any

RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
DROP = "drop"
COMMIT_THEN_FAIL = "commit_then_fail"
UNAUTHORIZED = "unauthorized"
COMMIT_MODES = (DROP, SERVER_ERROR)


@dataclass
class Fault:
    """One injected fault the server applies to the current request.

    `kind` is one of "rate_limit", "server_error", "timeout", "drop", "commit_then_fail",
    "unauthorized"; `status` the HTTP status (429, 5xx, 401), `retry_after_secs` the
    `retry-after` header of a 429, `delay_secs` the sleep of a timeout before the (normal)
    answer, `mode` how a commit_then_fail loses the answer ("drop" or "server_error").
    """

    kind: str
    remaining: int
    path_prefix: str = ""
    status: int = 0
    retry_after_secs: float | None = None
    delay_secs: float = 0.0
    mode: str = ""


class FaultPlan:
    """A thread-safe, runtime-switchable set of faults.

    Examples
    --------
    >>> faults = FaultPlan()
    >>> faults.rate_limit(2, retry_after_secs=0.05, path_prefix="/api/v3/brokerage/orders")
    >>> faults.pending()
    2
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._latency_secs = 0.0
        self._latency_prefix = ""
        self._stale_quotes = False
        self.stale_quote_age_secs = 3600.0
        self.requests_seen = 0

    # --- switches -------------------------------------------------------------------------

    def rate_limit(self, n: int, retry_after_secs: float = 1.0, *, path_prefix: str = "") -> None:
        """Answer the next `n` matching requests with HTTP 429 and a `retry-after` header."""
        self._add(Fault(RATE_LIMIT, n, path_prefix, status=429, retry_after_secs=retry_after_secs))

    def server_error(self, n: int, status: int = 503, *, path_prefix: str = "") -> None:
        """Answer the next `n` matching requests with HTTP `status` (5xx)."""
        if not 500 <= status <= 599:
            msg = f"`status` must be in 500..599, was {status}"
            raise ValueError(msg)
        self._add(Fault(SERVER_ERROR, n, path_prefix, status=status))

    def timeout(self, n: int, delay_secs: float, *, path_prefix: str = "") -> None:
        """Sleep `delay_secs` before answering each of the next `n` matching requests."""
        self._add(Fault(TIMEOUT, n, path_prefix, delay_secs=delay_secs))

    def drop(self, n: int, *, path_prefix: str = "") -> None:
        """Close the connection without any response for the next `n` matching requests."""
        self._add(Fault(DROP, n, path_prefix))

    def commit_then_fail(
        self, n: int, mode: str = DROP, status: int = 503, *, path_prefix: str = ""
    ) -> None:
        """Process the next `n` matching requests normally, then lose each answer.

        With `mode` "drop" the connection is closed with no response; with "server_error" the
        client gets HTTP `status` (5xx) and an error body instead of the real answer. The
        venue's state has changed either way (an order was created, a cancel done).
        """
        if mode not in COMMIT_MODES:
            msg = f"`mode` must be one of {list(COMMIT_MODES)}, was {mode!r}"
            raise ValueError(msg)
        if mode == SERVER_ERROR and not 500 <= status <= 599:
            msg = f"`status` must be in 500..599, was {status}"
            raise ValueError(msg)
        self._add(Fault(COMMIT_THEN_FAIL, n, path_prefix, status=status, mode=mode))

    def unauthorized(self, n: int, *, path_prefix: str = "") -> None:
        """Answer the next `n` matching requests with HTTP 401 and the text `Unauthorized`."""
        self._add(Fault(UNAUTHORIZED, n, path_prefix, status=401))

    def latency(self, secs: float, *, path_prefix: str = "") -> None:
        """Delay every matching request by `secs` (0 switches it off)."""
        with self._lock:
            self._latency_secs = max(0.0, float(secs))
            self._latency_prefix = path_prefix

    def stale_quotes(self, on: bool, age_secs: float = 3600.0) -> None:
        """Report best bid/ask and book `time` `age_secs` in the past while `on`."""
        with self._lock:
            self._stale_quotes = bool(on)
            self.stale_quote_age_secs = float(age_secs)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._rules.clear()
            self._latency_secs = 0.0
            self._latency_prefix = ""
            self._stale_quotes = False

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a JSON-style spec (the body of `POST /sim/faults`).

        Keys: "clear" (bool), "rate_limit" {"n", "retry_after_secs"}, "server_error"
        {"n", "status"}, "timeout" {"n", "delay_secs"}, "drop" {"n"}, "commit_then_fail"
        {"n", "mode", "status"}, "unauthorized" {"n"}, "latency" (secs), "stale_quotes"
        (bool); each dict may carry "path_prefix".
        """
        known = {
            "clear",
            RATE_LIMIT,
            SERVER_ERROR,
            TIMEOUT,
            DROP,
            COMMIT_THEN_FAIL,
            UNAUTHORIZED,
            "latency",
            "stale_quotes",
        }
        unknown = sorted(set(spec) - known)
        if unknown:
            msg = f"fault keys must be among {sorted(known)}, was {unknown}"
            raise ValueError(msg)
        if spec.get("clear"):
            self.clear()
        if RATE_LIMIT in spec:
            s = spec[RATE_LIMIT]
            self.rate_limit(
                int(s["n"]),
                float(s.get("retry_after_secs", 1.0)),
                path_prefix=s.get("path_prefix", ""),
            )
        if SERVER_ERROR in spec:
            s = spec[SERVER_ERROR]
            self.server_error(
                int(s["n"]), int(s.get("status", 503)), path_prefix=s.get("path_prefix", "")
            )
        if TIMEOUT in spec:
            s = spec[TIMEOUT]
            self.timeout(int(s["n"]), float(s["delay_secs"]), path_prefix=s.get("path_prefix", ""))
        if DROP in spec:
            s = spec[DROP]
            self.drop(int(s["n"]), path_prefix=s.get("path_prefix", ""))
        if COMMIT_THEN_FAIL in spec:
            s = spec[COMMIT_THEN_FAIL]
            self.commit_then_fail(
                int(s["n"]),
                str(s.get("mode", DROP)),
                int(s.get("status", 503)),
                path_prefix=s.get("path_prefix", ""),
            )
        if UNAUTHORIZED in spec:
            s = spec[UNAUTHORIZED]
            self.unauthorized(int(s["n"]), path_prefix=s.get("path_prefix", ""))
        if "latency" in spec:
            self.latency(float(spec["latency"]))
        if "stale_quotes" in spec:
            self.stale_quotes(bool(spec["stale_quotes"]))

    # --- used by the server ---------------------------------------------------------------

    def next_fault(self, path: str) -> Fault | None:
        """Consume and return the fault for a request to `path`, or None."""
        with self._lock:
            self.requests_seen += 1
            for rule in self._rules:
                if rule.remaining > 0 and _matches(path, rule.path_prefix):
                    rule.remaining -= 1
                    hit = Fault(**{**rule.__dict__, "remaining": rule.remaining})
                    self._rules = [r for r in self._rules if r.remaining > 0]
                    return hit
            return None

    def latency_for(self, path: str) -> float:
        """Return the latency in seconds to add to a request to `path`."""
        with self._lock:
            return self._latency_secs if _matches(path, self._latency_prefix) else 0.0

    def quotes_stale(self) -> bool:
        """Return whether quote times are frozen in the past."""
        with self._lock:
            return self._stale_quotes

    def pending(self) -> int:
        """Return how many counted faults are still queued."""
        with self._lock:
            return sum(r.remaining for r in self._rules)

    def _add(self, rule: Fault) -> None:
        if rule.remaining < 0:
            msg = f"`n` must be >= 0, was {rule.remaining}"
            raise ValueError(msg)
        with self._lock:
            self._rules.append(rule)


def _matches(path: str, prefix: str) -> bool:
    if prefix.endswith("$"):
        return path == prefix[:-1]
    return path.startswith(prefix)
