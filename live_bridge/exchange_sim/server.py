"""HTTPS (or HTTP) front end of the exchange simulator, speaking Coinbase Advanced Trade REST.

`ExchangeServer` serves the `/api/v3/brokerage/...` paths the coinbase-advanced-py SDK calls,
with its JSON shapes (numbers as strings, compact JSON, lowercase `x-ratelimit-*` headers), on
a `ThreadingHTTPServer` wrapped in TLS with a throwaway CA generated on start (recipe A of
`shared/notes/coinbase-advanced-api.md`): point the SDK at `server.base_url` and trust
`server.ca_path` with `client.session.verify = ca_path; client.session.trust_env = False`.

Private endpoints verify the SDK's CDP JWT (ES256 or EdDSA, `iss == "cdp"`, `sub == kid`,
`uri == "<METHOD> <host><path>"`) against keys registered with `register_api_key` and answer
401 `Unauthorized` otherwise. Public endpoints (`/time`, `/market/...`) accept any request.

Admin endpoints, not used by the SDK, let a simulator started from the CLI be driven over HTTP:
`POST /sim/clock` `{"ts": epoch_secs}` or `{"advance_secs": secs}`, `POST /sim/faults` (see
`FaultPlan.configure`), `POST /sim/products` `{"symbol": ..., "status": ...}` and
`GET /sim/state` (time, balances, counts, pending faults, and the clock: `"clock"` "stepped"
or "realtime", `"speed"` simulated seconds per real second, 0.0 for a stepped clock). They are
never faulted and need no JWT (loopback only).

WebSocket is NOT implemented: the daemon polls REST. `ws_port` is reserved and must be None.
"""

import datetime as dt
import ipaddress
import json
import logging
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from live_bridge.exchange_sim.clock import RealtimeClock
from live_bridge.exchange_sim.engine import NS, ExchangeEngine, SimRequestError, rfc3339
from live_bridge.exchange_sim.faults import (
    COMMIT_THEN_FAIL,
    DROP,
    RATE_LIMIT,
    SERVER_ERROR,
    TIMEOUT,
    UNAUTHORIZED,
    Fault,
    FaultPlan,
)

log = logging.getLogger("live_bridge.exchange_sim")

PREFIX = "/api/v3/brokerage"
RATE_LIMIT_PRIVATE = 30
_INJECTED_ERROR = {
    "error": "INTERNAL",
    "error_details": "injected fault",
    "message": "injected fault",
}


def make_ca_and_leaf(directory: Path) -> tuple[Path, Path, Path]:
    """Write a throwaway EC CA and a leaf cert for 127.0.0.1/localhost into `directory`.

    Returns `(ca_pem, leaf_cert_pem, leaf_key_pem)`. The CA has BasicConstraints(ca=True),
    keyCertSign and an SKI; the leaf has SAN IP:127.0.0.1 + DNS:localhost, EKU serverAuth and
    AKI/SKI, so it also passes `VERIFY_X509_STRICT`.
    """
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "247trader exchange-sim CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "sim-ca.pem"
    cert_path = directory / "sim-leaf.pem"
    key_path = directory / "sim-leaf.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class _Reply(Exception):
    # raised inside a route to answer with a given status and body
    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


class _Query:
    def __init__(self, raw: str) -> None:
        self._q = parse_qs(raw, keep_blank_values=False)

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self._q.get(name)
        return values[0] if values else default

    def many(self, name: str) -> list[str]:
        out: list[str] = []
        for v in self._q.get(name, []):
            out.extend(p for p in v.split(",") if p)
        return out

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.one(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError as e:
            msg = f"`{name}` must be an integer, was {value!r}"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg) from e


def _page(
    items: list[Any], query: _Query, default_limit: int, max_limit: int
) -> tuple[list[Any], str, bool]:
    limit = min(query.integer("limit", default_limit) or default_limit, max_limit)
    cursor = query.one("cursor") or "0"
    try:
        offset = int(cursor)
    except ValueError as e:
        msg = f"`cursor` must be a cursor returned by the server, was {cursor!r}"
        raise SimRequestError(400, "INVALID_ARGUMENT", msg) from e
    chunk = items[offset : offset + limit]
    has_next = offset + limit < len(items)
    return chunk, (str(offset + limit) if has_next else ""), has_next


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], sim: "ExchangeServer", ctx: ssl.SSLContext | None
    ) -> None:
        self.sim = sim
        self.ssl_ctx = ctx
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.ssl_ctx is not None:
            # handshake lazily in the handler thread so a slow client cannot stall accept()
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    # headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # added 40 ms to every keep-alive request (measured: 0.5 s per daemon cycle)
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "exchange-sim/1"
    timeout = 60
    server: _HTTPServer

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as e:
                log.debug("TLS handshake failed: %s", e)
                self.close_connection = True
                return
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError) as e:
            log.debug("connection ended: %s", e)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        sim = self.server.sim
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = parts.path
        admin = path.startswith("/sim/")
        lost: Fault | None = None  # a commit_then_fail: process the request, then lose the answer
        if not admin:
            with sim._requests_lock:
                sim._requests.append(f"{method} {self.path}")
            delay = sim.faults.latency_for(path)
            if delay:
                time.sleep(delay)
            fault = sim.faults.next_fault(path)
            if fault is not None:
                if fault.kind == DROP:
                    self._drop()
                    return
                if fault.kind == RATE_LIMIT:
                    body = {
                        "error": "RATE_LIMIT_EXCEEDED",
                        "error_details": "Too many requests",
                        "message": "Too many requests",
                    }
                    extra = {}
                    if fault.retry_after_secs is not None:
                        extra["retry-after"] = _num(fault.retry_after_secs)
                    self._send(429, body, headers=extra)
                    return
                if fault.kind == SERVER_ERROR:
                    self._send(fault.status, _INJECTED_ERROR)
                    return
                if fault.kind == UNAUTHORIZED:
                    self._send(401, "Unauthorized", content_type="text/plain")
                    return
                if fault.kind == TIMEOUT:
                    time.sleep(fault.delay_secs)
                if fault.kind == COMMIT_THEN_FAIL:
                    lost = fault
        route = sim.route(method, path)
        if route is None:
            body = {"error": "NOT_FOUND", "error_details": "", "message": f"no route {path}"}
            self._reply(lost, 404, body)
            return
        func, groups, private = route
        if private and not sim.authorized(
            method, path, self.headers.get("Host", ""), self.headers.get("Authorization", "")
        ):
            self._reply(lost, 401, "Unauthorized", content_type="text/plain")
            return
        try:
            try:
                body_json = json.loads(raw_body) if raw_body.strip() else {}
            except json.JSONDecodeError as e:
                msg = "request body must be JSON"
                raise SimRequestError(400, "INVALID_ARGUMENT", msg) from e
            status, out = 200, func(_Query(parts.query), body_json, *groups)
        except SimRequestError as e:
            status, out = e.status, e.body()
        except (ValueError, KeyError, TypeError) as e:
            status = 400
            out = {"error": "INVALID_ARGUMENT", "error_details": str(e), "message": str(e)}
        except Exception as e:  # the simulator must answer, never kill its handler thread
            log.exception("simulator route %s %s failed", method, path)
            status = 500
            out = {"error": "INTERNAL", "error_details": repr(e), "message": "internal error"}
        headers = {}
        if private:
            headers = {
                "x-ratelimit-limit": str(RATE_LIMIT_PRIVATE),
                "x-ratelimit-remaining": str(RATE_LIMIT_PRIVATE - 1),
                "x-ratelimit-reset": "1",
            }
        self._reply(lost, status, out, headers=headers)

    def _reply(
        self,
        lost: Fault | None,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        # send the request's answer, unless a commit_then_fail fault loses it (the request has
        # been processed either way)
        if lost is None:
            self._send(status, body, headers=headers, content_type=content_type)
        elif lost.mode == DROP:
            self._drop()
        else:
            self._send(lost.status, _INJECTED_ERROR)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError as e:
            log.debug("drop: %s", e)

    def _send(
        self,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        if content_type == "application/json":
            data = json.dumps(body, separators=(",", ":")).encode()
        else:
            data = str(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (ConnectionError, ssl.SSLError, OSError) as e:
            # the client gave up (timeout fault) before the answer
            log.debug("client went away before the reply: %s", e)
            self.close_connection = True


def _rfc3339_param(q: _Query, name: str) -> int | None:
    # an RFC 3339 query parameter (as live_bridge.wire.parse_rfc3339_ns reads it) as epoch ns;
    # absent -> None, malformed -> 400 naming it
    raw = q.one(name)
    if raw is None:
        return None
    m = re.fullmatch(
        r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})",
        raw.strip(),
    )
    stamp = None
    if m is not None:
        try:
            stamp = dt.datetime.fromisoformat(m[1] + m[3].replace("Z", "+00:00"))
        except ValueError:
            stamp = None
    if m is None or stamp is None:
        msg = f"`{name}` must be an RFC 3339 timestamp, was {raw!r}"
        raise SimRequestError(400, "INVALID_ARGUMENT", msg)
    return int(stamp.timestamp()) * NS + int(((m[2] or "") + "0" * 9)[:9])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class ExchangeServer:
    """Serve an `ExchangeEngine` over Coinbase Advanced Trade REST on loopback.

    Parameters
    ----------
    engine : ExchangeEngine
        The venue state.
    faults : FaultPlan, optional
        Fault injection; a fresh empty plan by default (reachable as `.faults`).
    host : str
        Interface to bind; loopback only.
    port : int
        Port; 0 picks a free one (read it from `.port` / `.base_url` after `start()`).
    tls : bool
        Serve HTTPS with a throwaway CA (the SDK forces `https://`); False serves plain HTTP
        (recipe B of the note: the client must downgrade with a transport adapter).
    ws_port : None
        Reserved; WebSocket is not implemented.
    verify_jwt : bool
        Require a valid JWT from a registered key on private endpoints.
    check_jwt_host : bool
        Compare the JWT `uri` host with the `Host` header (else only method and path).

    Examples
    --------
    >>> with ExchangeServer(engine) as server:  # doctest: +SKIP
    ...     server.register_api_key(key_name, public_pem)
    ...     client = RESTClient(api_key=key_name, api_secret=pem, base_url=server.base_url)
    """

    def __init__(
        self,
        engine: ExchangeEngine,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        ws_port: int | None = None,
        *,
        verify_jwt: bool = True,
        check_jwt_host: bool = True,
    ) -> None:
        if ws_port is not None:
            msg = f"`ws_port` must be None (WebSocket is not implemented), was {ws_port}"
            raise ValueError(msg)
        self.engine = engine
        self.faults = faults if faults is not None else FaultPlan()
        self.host = host
        self._port = port
        self.tls = tls
        self.verify_jwt = verify_jwt
        self.check_jwt_host = check_jwt_host
        self._keys: dict[str, Any] = {}
        self._keys_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: Path | None = None
        self._ca_path: Path | None = None
        self._routes = self._build_routes()
        self._requests: list[str] = []
        self._requests_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> "ExchangeServer":
        """Generate the certificates (TLS), bind and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        ctx = None
        if self.tls:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="exchange-sim-"))
            ca, cert, key = make_ca_and_leaf(self._tmpdir)
            self._ca_path = ca
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        self._httpd = _HTTPServer((self.host, self._port), self, ctx)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"exchange-sim-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and delete the certificates."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._ca_path = None

    def __enter__(self) -> "ExchangeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """Return the bound port (0 before `start()` when asked for an ephemeral port)."""
        return self._port

    @property
    def base_url(self) -> str:
        """Return `host:port`, the SDK's `base_url` format (no scheme)."""
        return f"{self.host}:{self._port}"

    @property
    def url(self) -> str:
        """Return the full URL with scheme, for plain HTTP clients and the admin endpoints."""
        return f"{'https' if self.tls else 'http'}://{self.base_url}"

    @property
    def ca_path(self) -> str | None:
        """Return the path of the CA PEM to trust (None without TLS or before `start()`)."""
        return None if self._ca_path is None else str(self._ca_path)

    def requests_seen(self, path_prefix: str = "") -> list[str]:
        """Return ``"METHOD /path?query"`` of each request received, oldest first.

        Admin (`/sim/...`) requests are not logged; faulted ones are. `path_prefix` keeps
        those whose path starts with it (e.g. ``"/api/v3/brokerage/market/"``).
        """
        with self._requests_lock:
            seen = list(self._requests)
        return [r for r in seen if r.partition(" ")[2].startswith(path_prefix)]

    def clear_requests(self) -> None:
        """Forget the requests logged so far (see `requests_seen`)."""
        with self._requests_lock:
            self._requests.clear()

    # --- auth -----------------------------------------------------------------------------

    def register_api_key(self, key_name: str, public_key_pem: str | bytes) -> None:
        """Accept JWTs signed by the private key matching `public_key_pem` as `key_name`."""
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        key = serialization.load_pem_public_key(pem)
        with self._keys_lock:
            self._keys[key_name] = key

    def authorized(self, method: str, path: str, host: str, authorization: str) -> bool:
        """Return whether a request carries a valid CDP JWT (note §2.3)."""
        if not self.verify_jwt:
            return True
        if not authorization.startswith("Bearer "):
            return False
        token = authorization[len("Bearer ") :].strip()
        try:
            kid = str(jwt.get_unverified_header(token).get("kid") or "")
            with self._keys_lock:
                key = self._keys.get(kid)
            if key is None:
                return False
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256", "EdDSA"],
                options={"require": ["sub", "iss", "nbf", "exp"]},
                leeway=5,
            )
        except jwt.PyJWTError as e:
            log.debug("JWT rejected: %s", e)
            return False
        if claims.get("iss") != "cdp" or claims.get("sub") != kid:
            return False
        uri = str(claims.get("uri", ""))
        if self.check_jwt_host:
            return uri == f"{method} {host}{path}"
        want_method, _, rest = uri.partition(" ")
        return want_method == method and rest.endswith(path)

    # --- routing --------------------------------------------------------------------------

    def route(
        self, method: str, path: str
    ) -> tuple[Callable[..., Any], tuple[str, ...], bool] | None:
        """Return `(handler, path groups, private)` for a request, None when unknown."""
        for m, pattern, func in self._routes:
            if m != method:
                continue
            match = pattern.fullmatch(path)
            if match:
                private = not (
                    path == f"{PREFIX}/time"
                    or path.startswith(f"{PREFIX}/market/")
                    or path.startswith("/sim/")
                )
                return func, match.groups(), private
        return None

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        p = re.escape(PREFIX)
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", rf"{p}/time", self._time),
            ("GET", rf"{p}/(?:market/)?products", self._products),
            ("GET", rf"{p}/(?:market/)?products/([^/]+)/candles", self._candles),
            ("GET", rf"{p}/(?:market/)?products/([^/]+)", self._product),
            ("GET", rf"{p}/(?:market/)?product_book", self._product_book),
            ("GET", rf"{p}/best_bid_ask", self._best_bid_ask),
            ("GET", rf"{p}/accounts", self._accounts),
            ("GET", rf"{p}/accounts/([^/]+)", self._account),
            ("GET", rf"{p}/transaction_summary", self._transaction_summary),
            ("GET", rf"{p}/key_permissions", self._key_permissions),
            ("POST", rf"{p}/orders", self._create_order),
            ("POST", rf"{p}/orders/preview", self._preview_order),
            ("POST", rf"{p}/orders/batch_cancel", self._cancel_orders),
            ("GET", rf"{p}/orders/historical/batch", self._list_orders),
            ("GET", rf"{p}/orders/historical/fills", self._list_fills),
            ("GET", rf"{p}/orders/historical/([^/]+)", self._get_order),
            ("POST", r"/sim/clock", self._sim_clock),
            ("POST", r"/sim/faults", self._sim_faults),
            ("POST", r"/sim/products", self._sim_products),
            ("GET", r"/sim/state", self._sim_state),
        ]
        return [(m, re.compile(rx), f) for m, rx, f in table]

    # --- REST handlers (query, body, *path groups) -> JSON ---------------------------------

    def _time(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        now = self.engine.now_ns()
        return {
            "iso": rfc3339(now),
            "epochSeconds": str(now // NS),
            "epochMillis": str(now // 1_000_000),
        }

    def _products(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        products = self.engine.products_wire(q.many("product_ids") or None)
        chunk, _, _ = _page(products, q, 10_000, 10_000)
        return {"products": chunk, "num_products": len(products)}

    def _product(self, q: _Query, body: dict[str, Any], symbol: str) -> dict[str, Any]:
        return self.engine.product_wire(symbol)

    def _candles(self, q: _Query, body: dict[str, Any], symbol: str) -> dict[str, Any]:
        start, end = q.integer("start"), q.integer("end")
        granularity = q.one("granularity")
        if start is None or end is None or granularity is None:
            msg = "start, end and granularity are required"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        limit = q.integer("limit", self.engine.max_candles) or self.engine.max_candles
        if limit > self.engine.max_candles:
            msg = f"limit must be <= {self.engine.max_candles}, was {limit}"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        candles = self.engine.candles(symbol, start, end, granularity)
        return {"candles": candles[:limit]}

    def _quote_time(self) -> str:
        now = self.engine.now_ns()
        if self.faults.quotes_stale():
            now -= int(self.faults.stale_quote_age_secs * NS)
        return rfc3339(now)

    def _product_book(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        symbol = q.one("product_id")
        if not symbol:
            msg = "product_id is required"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        levels = min(q.integer("limit", self.engine.book_levels) or 1, 1000)
        book = self.engine.pricebook(symbol, levels)
        book["time"] = self._quote_time()
        out: dict[str, Any] = {"pricebook": book}
        if book["bids"] and book["asks"]:
            bid, ask = float(book["bids"][0]["price"]), float(book["asks"][0]["price"])
            mid = (bid + ask) / 2
            out.update(
                last=repr(mid),
                mid_market=repr(mid),
                spread_bps=repr((ask - bid) / mid * 1e4),
                spread_absolute=repr(ask - bid),
            )
        return out

    def _best_bid_ask(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        wanted = q.many("product_ids") or list(self.engine.symbols)
        books = []
        for symbol in wanted:
            if symbol not in self.engine.symbols:
                continue
            book = self.engine.pricebook(symbol, 1)
            book["time"] = self._quote_time()
            books.append(book)
        return {"pricebooks": books}

    def _accounts(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        accounts = self.engine.accounts_wire()
        chunk, cursor, has_next = _page(accounts, q, 49, 250)
        return {"accounts": chunk, "has_next": has_next, "cursor": cursor, "size": len(chunk)}

    def _account(self, q: _Query, body: dict[str, Any], account_uuid: str) -> dict[str, Any]:
        for account in self.engine.accounts_wire():
            if account["uuid"] == account_uuid:
                return {"account": account}
        msg = "account not found"
        raise SimRequestError(404, "NOT_FOUND", msg)

    def _transaction_summary(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.transaction_summary_wire()

    def _key_permissions(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "can_view": True,
            "can_trade": True,
            "can_transfer": False,
            "portfolio_uuid": "sim-portfolio",
            "portfolio_type": "DEFAULT",
        }

    def _create_order(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.create_order(body)

    def _preview_order(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.preview_order(body)

    def _cancel_orders(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        ids = body.get("order_ids")
        if not isinstance(ids, list) or not ids or len(ids) > 100:
            msg = "order_ids must be a list of 1 to 100 ids"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        return self.engine.cancel_orders([str(i) for i in ids])

    def _list_orders(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        start_ns = _rfc3339_param(q, "start_date")
        orders = self.engine.list_orders(
            order_ids=q.many("order_ids") or None,
            product_ids=(q.many("product_ids") or q.many("product_id")) or None,
            order_status=q.many("order_status") or None,
            order_side=q.one("order_side"),
            start_ns=start_ns,
        )
        chunk, cursor, has_next = _page(orders, q, 100, 1000)
        return {"orders": chunk, "sequence": "0", "has_next": has_next, "cursor": cursor}

    def _list_fills(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        start_ns = _rfc3339_param(q, "start_sequence_timestamp")
        fills = self.engine.list_fills(
            order_ids=(q.many("order_ids") or q.many("order_id")) or None,
            product_ids=(q.many("product_ids") or q.many("product_id")) or None,
            trade_ids=q.many("trade_ids") or None,
            start_ns=start_ns,
        )
        chunk, cursor, _ = _page(fills, q, 100, 1000)
        return {"fills": chunk, "cursor": cursor}

    def _get_order(self, q: _Query, body: dict[str, Any], order_id: str) -> dict[str, Any]:
        return {"order": self.engine.get_order(order_id)}

    # --- admin ----------------------------------------------------------------------------

    def _sim_clock(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        clock = self.engine.clock
        if not hasattr(clock, "set"):
            msg = "the clock cannot be set"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        if "ts" in body:
            clock.set(int(round(float(body["ts"]) * NS)))
        elif "advance_secs" in body:
            clock.set(self.engine.now_ns() + int(round(float(body["advance_secs"]) * NS)))
        else:
            msg = 'body must hold "ts" (epoch seconds) or "advance_secs"'
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        fills = self.engine.process()
        return {"now": rfc3339(self.engine.now_ns()), "fills": fills}

    def _sim_faults(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        self.faults.configure(body)
        return {"pending": self.faults.pending()}

    def _sim_products(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        self.engine.set_product_status(str(body["symbol"]), str(body["status"]))
        return self.engine.product_wire(str(body["symbol"]))

    def _sim_state(self, q: _Query, body: dict[str, Any]) -> dict[str, Any]:
        clock = self.engine.clock
        realtime = isinstance(clock, RealtimeClock)
        return {
            "now": rfc3339(self.engine.now_ns()),
            "clock": "realtime" if realtime else "stepped",
            # simulated seconds per real second; a stepped clock moves only when set
            "speed": float(clock.speed) if realtime else 0.0,
            "balances": self.engine.balances(),
            "orders": len(self.engine.orders()),
            "fills": len(self.engine.fills()),
            "pending_faults": self.faults.pending(),
        }
