"""The daemon's SQLite state store: kernel state, orders, fills, cycles and the daemon's flags.

What the daemon writes, and when (each write is one committed transaction):

* the decided orders, status `intended`, together with the kernel state and the cycle record,
  before any of them is sent (write-ahead);
* each venue answer or observation, as a move of the order through `live_bridge.orders`;
* each applied fill, together with the kernel state it produced, so a fill and its effect on
  cash and positions are stored or lost together (the trade id is the key: applied once).

A file that is empty, truncated, not SQLite, not a state file or of a newer schema is refused
with a `StateStoreError` naming it; the store never replaces it with a fresh account.
`InstanceLock` keeps a second daemon off the same file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from live_bridge.errors import InstanceLockedError, StateStoreError
from live_bridge.orders import next_status

log = logging.getLogger("live_bridge.store")

SCHEMA_VERSION = 2
"""2: order statuses of `live_bridge.orders`, the `meta` flags (trading state, reconcile)."""
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kernel_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    symbols TEXT NOT NULL,          -- JSON list, the column order of `positions`
    account TEXT NOT NULL,          -- JSON list of float64 (Acc layout)
    positions TEXT NOT NULL,        -- JSON list of lists (Pos layout)
    reason_counts TEXT NOT NULL,    -- JSON nested list [K][S][N_REASONS]
    last_bar_no INTEGER NOT NULL,   -- the last bar a cycle decided on
    updated_ts_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    exchange_order_id TEXT,
    bar_no INTEGER NOT NULL,
    seq INTEGER NOT NULL,           -- emission order within the bar (fills apply in this order)
    symbol TEXT NOT NULL,
    side INTEGER NOT NULL,
    order_type INTEGER NOT NULL,
    purpose INTEGER NOT NULL,
    strategy INTEGER NOT NULL,
    qty REAL NOT NULL,
    notional REAL NOT NULL,
    limit_price REAL,
    ref_price REAL NOT NULL,
    stop_pct REAL NOT NULL,
    take_pct REAL NOT NULL,
    status TEXT NOT NULL,           -- a live_bridge.orders status
    note TEXT NOT NULL DEFAULT '',
    created_ts_ns INTEGER NOT NULL,
    updated_ts_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
    symbol TEXT NOT NULL,
    side INTEGER NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL,
    fee REAL NOT NULL,
    liquidity TEXT NOT NULL,
    bar_no INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cycles (
    bar_no INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    mode TEXT NOT NULL,
    n_orders INTEGER NOT NULL,
    equity_usd REAL NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
"""


@dataclass
class OrderRow:
    """One order as the store keeps it."""

    client_order_id: str
    exchange_order_id: str | None
    bar_no: int
    seq: int
    symbol: str
    side: int
    order_type: int
    purpose: int
    strategy: int
    qty: float
    notional: float
    limit_price: float | None
    ref_price: float
    stop_pct: float
    take_pct: float
    status: str
    note: str
    created_ts_ns: int
    updated_ts_ns: int


_ORDER_COLUMNS = tuple(f.name for f in fields(OrderRow))


@dataclass(frozen=True)
class KernelState:
    """The `step` kernel's state as persisted."""

    symbols: tuple[str, ...]
    account: np.ndarray
    positions: np.ndarray
    reason_counts: np.ndarray
    last_bar_no: int


@dataclass(frozen=True)
class FillRow:
    """One applied fill as the store keeps it (money in quote currency, sizes in base)."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: int
    qty: float
    price: float
    fee: float
    liquidity: str
    bar_no: int
    ts_ns: int


def check_state_file(path: Path) -> None:
    """Raise `StateStoreError` unless `path` is absent or starts like a SQLite database."""
    if not path.exists():
        return
    if path.is_dir():
        msg = f"state file `{path}` is a directory, must be a SQLite file; fix `state_path`"
        raise StateStoreError(msg)
    size = path.stat().st_size
    if size == 0:
        msg = (
            f"state file `{path}` is empty (0 bytes), must be a live-bridge SQLite state file; "
            "refusing to start a fresh account over it: restore it from a backup, or move it "
            "away to start a new account"
        )
        raise StateStoreError(msg)
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        msg = (
            f"state file `{path}` is not a SQLite database ({size} bytes, starts with "
            f"{head[:8]!r}); restore it from a backup, or point `state_path` at a new file"
        )
        raise StateStoreError(msg)


class StateStore:
    """A SQLite file holding everything the daemon needs to continue after a restart.

    Parameters
    ----------
    path : str | Path
        The state file; created (with its folder) when absent.
    read_only : bool
        Open an existing file for reading only (`live-bridge status`); never creates it.

    Raises
    ------
    StateStoreError
        The file is empty, truncated, not SQLite, not a state file, or of a newer schema.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        check_state_file(self.path)
        existed = self.path.exists()
        if read_only and not existed:
            msg = f"state file `{self.path}` does not exist; has a daemon run with this state_path?"
            raise StateStoreError(msg)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            uri = self.path.resolve().as_uri() + ("?mode=ro" if read_only else "")
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            result = self._db.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                msg = f"state file `{self.path}` is corrupt (SQLite quick_check: {result})"
                raise StateStoreError(msg)
            if existed:
                self._check_schema()
            if not read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as e:
            msg = (
                f"state file `{self.path}` is truncated or corrupt ({e}); restore it from a "
                "backup, or point `state_path` at a new file"
            )
            raise StateStoreError(msg) from e

    def _check_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables or "kernel_state" not in tables:
            msg = (
                f"state file `{self.path}` is a SQLite database but not a live-bridge state file "
                f"(tables {sorted(tables)}); point `state_path` at a new file"
            )
            raise StateStoreError(msg)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else -1
        if version > SCHEMA_VERSION:
            msg = (
                f"state file `{self.path}` has schema version {version}, newer than this "
                f"live-bridge knows ({SCHEMA_VERSION}); run the live-bridge that wrote it"
            )
            raise StateStoreError(msg)
        if version < 1:
            msg = f"state file `{self.path}` has no valid schema_version (was {row}); restore it"
            raise StateStoreError(msg)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one transaction (all or nothing)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- kernel state ------------------------------------------------------------------------

    def load_state(self) -> KernelState | None:
        """Return the persisted kernel state, or None for a fresh store."""
        row = self._db.execute(
            "SELECT symbols, account, positions, reason_counts, last_bar_no FROM kernel_state"
        ).fetchone()
        if row is None:
            return None
        names = ("symbols", "account", "positions", "reason_counts")
        values = []
        for name, text in zip(names, row[:4], strict=True):
            try:
                values.append(json.loads(text))
            except (TypeError, json.JSONDecodeError) as e:
                msg = (
                    f"state file `{self.path}`: `kernel_state.{name}` must be JSON, was "
                    f"{str(text)[:40]!r} ({e}); restore the file from a backup"
                )
                raise StateStoreError(msg) from e
        try:
            return KernelState(
                symbols=tuple(values[0]),
                account=np.array(values[1], dtype=np.float64),
                positions=self.positions_from_json(values[2]),
                reason_counts=np.array(values[3], dtype=np.int64),
                last_bar_no=int(row[4]),
            )
        except (TypeError, ValueError) as e:
            msg = f"state file `{self.path}`: `kernel_state` holds a malformed value ({e})"
            raise StateStoreError(msg) from e

    def save_state(self, db: sqlite3.Connection, state: KernelState, now_ns: int) -> None:
        """Write the kernel state inside `db`'s open transaction."""
        # NaN is not JSON: last prices of never-traded symbols are stored as null
        positions = [[None if np.isnan(v) else float(v) for v in row] for row in state.positions]
        db.execute(
            "INSERT OR REPLACE INTO kernel_state VALUES (1, ?, ?, ?, ?, ?, ?)",
            (
                json.dumps(list(state.symbols)),
                json.dumps([float(v) for v in state.account]),
                json.dumps(positions),
                json.dumps(state.reason_counts.tolist()),
                state.last_bar_no,
                now_ns,
            ),
        )

    @staticmethod
    def positions_from_json(rows: list[list[float | None]]) -> np.ndarray:
        """Return the positions array with nulls back as NaN."""
        return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)

    # --- orders and fills --------------------------------------------------------------------

    def insert_order(self, db: sqlite3.Connection, order: OrderRow) -> None:
        """Insert a new order (ignored if its client order id exists: idempotent)."""
        values = asdict(order)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(f"INSERT OR IGNORE INTO orders ({cols}) VALUES ({marks})", list(values.values()))  # noqa: S608

    def move_order(
        self,
        db: sqlite3.Connection,
        order: OrderRow,
        event: str,
        now_ns: int,
        *,
        note: str | None = None,
        exchange_order_id: str | None = None,
    ) -> str:
        """Move `order` through the order state machine by `event`, in `db` and in memory.

        Returns the new status. Raises `StateTransitionError` (nothing written, `order`
        unchanged) when the table does not allow `event` in the order's status.
        """
        status = next_status(order.status, event)
        note = order.note if note is None else note
        exchange_id = exchange_order_id or order.exchange_order_id
        db.execute(
            "UPDATE orders SET status = ?, note = ?, exchange_order_id = ?, updated_ts_ns = ? "
            "WHERE client_order_id = ?",
            (status, note, exchange_id, now_ns, order.client_order_id),
        )
        order.status, order.note, order.exchange_order_id = status, note, exchange_id
        order.updated_ts_ns = now_ns
        return status

    def orders(
        self, status: str | Iterable[str] | None = None, bar_no: int | None = None
    ) -> list[OrderRow]:
        """Return orders (optionally of some statuses and one bar) in (bar, emission) order."""
        sql = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders"  # noqa: S608
        clauses: list[str] = []
        args: list[object] = []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({', '.join('?' for _ in wanted)})")
            args.extend(wanted)
        if bar_no is not None:
            clauses.append("bar_no = ?")
            args.append(bar_no)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY bar_no, seq"
        cur = self._db.execute(sql, args)
        return [OrderRow(*row) for row in cur.fetchall()]

    def order(self, client_order_id: str) -> OrderRow | None:
        """Return one order by client order id, None when the store lacks it."""
        row = self._db.execute(
            f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE client_order_id = ?",  # noqa: S608
            (client_order_id,),
        ).fetchone()
        return None if row is None else OrderRow(*row)

    def has_fill(self, trade_id: str) -> bool:
        """Return True when the fill was already applied."""
        row = self._db.execute("SELECT 1 FROM fills WHERE trade_id = ?", (trade_id,)).fetchone()
        return row is not None

    def insert_fill(self, db: sqlite3.Connection, fill: FillRow) -> None:
        """Record one applied fill (a second insert of the same trade id is an error)."""
        db.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(asdict(fill).values()),
        )

    def fills(self) -> list[FillRow]:
        """Return every applied fill in the order applied."""
        return [FillRow(*r) for r in self._db.execute("SELECT * FROM fills ORDER BY rowid")]

    def order_counts(self) -> dict[str, int]:
        """Return how many stored orders are in each status."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}

    def fill_count(self) -> int:
        """Return how many fills were applied."""
        return int(self._db.execute("SELECT COUNT(*) FROM fills").fetchone()[0])

    def record_cycle(
        self, db: sqlite3.Connection, bar_no: int, ts_ns: int, mode: str, n_orders: int,
        equity_usd: float, note: str = "",
    ) -> None:  # fmt: skip
        """Record that the cycle of `bar_no` ran."""
        db.execute(
            "INSERT OR REPLACE INTO cycles VALUES (?, ?, ?, ?, ?, ?)",
            (bar_no, ts_ns, mode, n_orders, equity_usd, note),
        )

    def cycle_count(self) -> int:
        """Return how many cycles have run."""
        return int(self._db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0])

    def last_cycle(self) -> tuple[int, int, str, int, float, str] | None:
        """Return the newest cycle record `(bar_no, ts_ns, mode, n_orders, equity, note)`."""
        row = self._db.execute("SELECT * FROM cycles ORDER BY bar_no DESC LIMIT 1").fetchone()
        return None if row is None else tuple(row)  # type: ignore[return-value]

    # --- flags (trading state, reconcile mismatches, start balances) ---------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return the JSON value stored under `key`, `default` when absent."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except json.JSONDecodeError as e:
            msg = f"state file `{self.path}`: `meta.{key}` must be JSON, was {row[0][:40]!r}"
            raise StateStoreError(msg) from e

    def set_meta(self, db: sqlite3.Connection, key: str, value: Any) -> None:
        """Store `value` (JSON) under `key` inside `db`'s open transaction."""
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )


class InstanceLock:
    """An exclusive lock on a state file, so one daemon at a time uses it.

    The lock is `flock` on `<state file>.lock`, which holds the holder's PID. The kernel drops
    the lock when its process dies, so a dead daemon's lock is taken over (logged with the dead
    PID); a running holder makes `acquire` raise `InstanceLockedError`.
    """

    def __init__(self, state_path: str | Path) -> None:
        self.state_path = Path(state_path)
        self.path = Path(f"{state_path}.lock")
        self._fd: int | None = None

    def holder_pid(self) -> int | None:
        """Return the PID written in the lock file (the holder, or a dead one), None if none."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def acquire(self) -> None:
        """Take the lock, or raise `InstanceLockedError` naming the running holder's PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            msg = (
                f"state file `{self.state_path}` is in use by another live-bridge "
                f"(PID {holder or 'unknown'}); stop that daemon first, or use another "
                "`state_path`"
            )
            raise InstanceLockedError(msg) from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            log.warning(
                "took over the lock of %s from PID %d, which is no longer running",
                self.state_path, previous,
            )  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the PID is cleared, so the next holder logs no takeover)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
