"""Errors raised by the live bridge, extending the tree rooted in `signals.errors`.

The Coinbase adapter (`live_bridge.coinbase`) is the only place that translates third-party
errors (requests, the Coinbase SDK) into these classes, keeping the original as `__cause__`.
Each docstring says who raises the error and what the daemon (`live_bridge.daemon`) does with it.
"""

from signals.errors import PlatformError


class ExchangeError(PlatformError):
    """The exchange answered with an error that is neither transient nor a business rejection.

    Examples: 400 (malformed request), 404 (unknown product or order), a TLS verification
    failure, or a body that is not JSON or lacks a field. Retrying would not help. Raised by the
    adapter. A failed call during reconciliation aborts the cycle (fail closed) with one log line
    naming the call; an order create answered with a 4xx moves the order to `failed` (nothing
    was placed), one without a usable answer (a body that cannot be read) to `unknown`.

    Attributes
    ----------
    status : int | None
        The HTTP status code, when there was a response.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ExchangeError):
    """The venue refused the credentials: HTTP 401 (bad key or signature) or 403 (scope).

    Raised by the adapter, never retried. The daemon halts new orders (trading state `halted`)
    with one CRITICAL log line and keeps running cycles; the first call that authenticates
    again lifts the halt.
    """


class TransientExchangeError(ExchangeError):
    """A temporary failure: HTTP 429, 5xx, a timeout or a dropped connection.

    The adapter retries it itself with capped exponential backoff and full jitter (honouring a
    `retry-after` header) and raises it only once the retries are exhausted. The daemon then
    aborts the current cycle with one log line and tries the cycle again a few seconds later; an
    order create that ends this way is `unknown` until the venue's order list says what became
    of its client order id (a create may have reached the venue before the failure).

    Attributes
    ----------
    retry_after_secs : float | None
        The venue's `retry-after` hint in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after_secs: float | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after_secs = retry_after_secs


class OrderRejectedError(ExchangeError):
    """The venue refused an order for a business reason (HTTP 200 with `success: false`).

    Examples: `INSUFFICIENT_FUND`, `INVALID_LIMIT_PRICE_POST_ONLY`, `ORDER_ENTRY_DISABLED`.
    Never retried: the same request would be refused again. The daemon moves the order to
    `rejected` through the order state machine and logs a DIVERGENCE unless the backtest's
    fill model rejects the same way (a crossing post-only order).

    Attributes
    ----------
    code : str
        The venue's error code (`error_response.error`), e.g. "INSUFFICIENT_FUND".
    preview_failure_reason : str
        The venue's `preview_failure_reason`, "" when absent.
    """

    def __init__(self, message: str, *, code: str, preview_failure_reason: str = "") -> None:
        super().__init__(message, status=200)
        self.code = code
        self.preview_failure_reason = preview_failure_reason


class ReconcileError(PlatformError):
    """A call of the reconciliation snapshot failed, so the snapshot would be partial.

    Raised by the daemon's reconciliation, naming the call that failed (e.g. "fills",
    "accounts"). The cycle is aborted before any decision or order (fail closed); nothing in the
    store changes, and the cycle is tried again.
    """


class StateTransitionError(PlatformError):
    """An order event arrived that the order state machine does not allow in the current state.

    Raised by `live_bridge.orders.next_status`, naming the state and the event. The daemon logs
    it at ERROR, does not apply the event, and keeps the order as it was; the next
    reconciliation asks the venue again.
    """


class StateStoreError(PlatformError):
    """The state file cannot be used: empty, truncated, not SQLite, corrupt, or a newer schema.

    Raised by `live_bridge.store.StateStore` naming the file and what to do. The daemon refuses
    to start (exit 2) and never replaces the file with a fresh account.
    """


class InstanceLockedError(PlatformError):
    """Another live daemon, still running, holds the state file's lock.

    Raised by `live_bridge.store.InstanceLock` naming the file and the holder's PID; the second
    daemon exits 2 without touching the state.
    """
