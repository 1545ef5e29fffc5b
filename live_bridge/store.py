"""The daemon's SQLite state store: kernel state, orders, fills, breakers and the window's tail.

One transaction per cycle (`save_cycle`), so a crash leaves the previous cycle's state whole and
a restarted daemon continues from it. Orders keep their client order id (idempotent retries)
and a status column, ready for the order state machine and reconciliation of a later issue.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

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
    status TEXT NOT NULL,           -- intended, dry_run, open, filled, cancelled, rejected, failed
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


@dataclass(frozen=True)
class KernelState:
    """The `step` kernel's state as persisted."""

    symbols: tuple[str, ...]
    account: np.ndarray
    positions: np.ndarray
    reason_counts: np.ndarray
    last_bar_no: int


class StateStore:
    """A SQLite file holding everything the daemon needs to continue after a restart."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

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
        return KernelState(
            symbols=tuple(json.loads(row[0])),
            account=np.array(json.loads(row[1]), dtype=np.float64),
            positions=np.array(json.loads(row[2]), dtype=np.float64),
            reason_counts=np.array(json.loads(row[3]), dtype=np.int64),
            last_bar_no=int(row[4]),
        )

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

    def update_order(
        self, db: sqlite3.Connection, client_order_id: str, now_ns: int, **fields: object
    ) -> None:
        """Update columns of one order."""
        sets = ", ".join(f"{k} = ?" for k in fields)
        db.execute(
            f"UPDATE orders SET {sets}, updated_ts_ns = ? WHERE client_order_id = ?",  # noqa: S608
            [*fields.values(), now_ns, client_order_id],
        )

    def orders(self, status: str | None = None, bar_no: int | None = None) -> list[OrderRow]:
        """Return orders, optionally filtered, in (bar, emission) order."""
        sql = "SELECT * FROM orders"
        clauses: list[str] = []
        args: list[object] = []
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if bar_no is not None:
            clauses.append("bar_no = ?")
            args.append(bar_no)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY bar_no, seq"
        cur = self._db.execute(sql, args)
        return [OrderRow(*row) for row in cur.fetchall()]

    def has_fill(self, trade_id: str) -> bool:
        """Return True when the fill was already applied."""
        row = self._db.execute("SELECT 1 FROM fills WHERE trade_id = ?", (trade_id,)).fetchone()
        return row is not None

    def insert_fill(
        self,
        db: sqlite3.Connection,
        trade_id: str,
        client_order_id: str,
        symbol: str,
        side: int,
        qty: float,
        price: float,
        fee: float,
        liquidity: str,
        bar_no: int,
        ts_ns: int,
    ) -> None:
        """Record one applied fill."""
        db.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (trade_id, client_order_id, symbol, side, qty, price, fee, liquidity, bar_no, ts_ns),
        )

    def fills(self) -> list[tuple]:
        """Return every applied fill in insertion order."""
        return self._db.execute("SELECT * FROM fills ORDER BY rowid").fetchall()

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
