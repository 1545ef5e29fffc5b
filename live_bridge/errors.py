"""Errors raised by the live bridge, extending the tree rooted in `signals.errors`.

The Coinbase adapter (`live_bridge.coinbase`) is the only place that translates third-party
errors (requests, the Coinbase SDK) into these classes, keeping the original as `__cause__`.
"""

from signals.errors import PlatformError


class ExchangeError(PlatformError):
    """The exchange answered with an error that is neither transient nor a business rejection.

    Examples: 400 (malformed request), 401 (bad credentials), 403 (missing scope), 404 (unknown
    product or order), a TLS verification failure, or a body that is not JSON. Retrying would not
    help. Raised by the adapter; the daemon logs it, raises an alert, keeps its state and stops
    placing orders for the affected symbol until the next cycle (or halts on 401/403).

    Attributes
    ----------
    status : int | None
        The HTTP status code, when there was a response.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientExchangeError(ExchangeError):
    """A temporary failure: HTTP 429, 5xx, a timeout or a dropped connection.

    The adapter retries it itself with capped exponential backoff and jitter (honouring a
    `retry-after` header) and raises it only once the retries are exhausted. The daemon then
    skips the current cycle, reconciles orders by `client_order_id` on the next one (a create
    may have reached the exchange before the failure) and trips its kill switch if the failures
    persist.

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
    Never retried: the same request would be refused again. The daemon records the order as
    rejected in its state machine, maps the code to a no-trade reason and moves on.

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


class StateTransitionError(PlatformError):
    """An order event arrived that the order state machine does not allow in the current state.

    Raised by `live_bridge.orders` naming the state and the event. The daemon logs it, does not
    apply the event, and reconciles the order against the exchange before acting on it again.
    """
