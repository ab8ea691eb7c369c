"""The venue's journal: its orders and executions in SQLite (tables ``venue_order``, ``venue_execution``).

Writes are not committed here: the session's store commits them together with the
reports that announce them, before those reports are written to the socket.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal

SCHEMA = """
CREATE TABLE IF NOT EXISTS venue_order (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    cl_ord_id TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,
    instrument TEXT NOT NULL,
    side TEXT NOT NULL,
    ord_type TEXT NOT NULL,
    price TEXT,
    quantity INTEGER NOT NULL,
    time_in_force TEXT NOT NULL,
    status TEXT NOT NULL,
    cum_qty INTEGER NOT NULL DEFAULT 0,
    leaves_qty INTEGER NOT NULL DEFAULT 0,
    avg_px TEXT NOT NULL DEFAULT '0',
    notional TEXT NOT NULL DEFAULT '0',
    exec_count INTEGER NOT NULL DEFAULT 0,
    trading_day INTEGER NOT NULL,
    reject_reason TEXT,
    text TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS venue_order_open ON venue_order (status)
    WHERE status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL');
CREATE TABLE IF NOT EXISTS venue_execution (
    id INTEGER PRIMARY KEY,
    exec_id TEXT NOT NULL UNIQUE,
    cl_ord_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    exec_type TEXT NOT NULL,
    ord_status TEXT NOT NULL,
    last_qty INTEGER NOT NULL DEFAULT 0,
    last_px TEXT,
    cum_qty INTEGER NOT NULL,
    leaves_qty INTEGER NOT NULL,
    avg_px TEXT NOT NULL,
    text TEXT,
    transact_time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS venue_execution_cl_ord_id ON venue_execution (cl_ord_id);
"""

# venue_order.status values, and the FIX OrdStatus each is reported as.
NEW = "NEW"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
PENDING_CANCEL = "PENDING_CANCEL"
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"
REJECTED = "REJECTED"
OPEN_STATUSES = (NEW, PARTIALLY_FILLED, PENDING_CANCEL)
ORD_STATUS = {
    NEW: "0",
    PARTIALLY_FILLED: "1",
    FILLED: "2",
    PENDING_CANCEL: "6",
    CANCELLED: "4",
    EXPIRED: "C",
    REJECTED: "8",
}

_ORDER_COLUMNS = (
    "id, order_id, cl_ord_id, instrument, side, ord_type, price, quantity, time_in_force, status, "
    "cum_qty, leaves_qty, notional, exec_count, trading_day, reject_reason, text"
)


@dataclass
class VenueOrder:
    """An order the venue holds, as in its ``venue_order`` row."""

    id: int
    order_id: str
    cl_ord_id: str
    instrument: str
    side: str  # buy | sell
    ord_type: str  # market | limit
    price: Decimal | None
    quantity: int
    time_in_force: str  # day | gtc | ioc | fok
    status: str
    cum_qty: int = 0
    leaves_qty: int = 0
    notional: Decimal = Decimal(0)
    exec_count: int = 0
    trading_day: int = 0
    reject_reason: str | None = None
    text: str | None = None
    lots: list[int] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_px(self) -> Decimal:
        if not self.cum_qty:
            return Decimal(0)
        return (self.notional / self.cum_qty).quantize(Decimal("0.0001"))


class Journal:
    def __init__(self, connection: sqlite3.Connection, session: str) -> None:
        self.connection = connection
        self.session = session
        connection.executescript(SCHEMA)
        connection.commit()
        (last_id,) = connection.execute("SELECT COALESCE(MAX(id), 0) FROM venue_order").fetchone()
        self._next_id = last_id + 1

    def new_order(self, **values) -> VenueOrder:
        """A VenueOrder with the next id and OrderID (inserted by ``insert_order``)."""
        order_number = self._next_id
        self._next_id += 1
        return VenueOrder(id=order_number, order_id=f"V{order_number:09d}", **values)

    def insert_order(self, order: VenueOrder, now: str) -> None:
        self.connection.execute(
            "INSERT INTO venue_order (id, order_id, cl_ord_id, session, instrument, side, ord_type, price, "
            "quantity, time_in_force, status, cum_qty, leaves_qty, avg_px, notional, exec_count, "
            "trading_day, reject_reason, text, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order.id,
                order.order_id,
                order.cl_ord_id,
                self.session,
                order.instrument,
                order.side,
                order.ord_type,
                None if order.price is None else str(order.price),
                order.quantity,
                order.time_in_force,
                order.status,
                order.cum_qty,
                order.leaves_qty,
                str(order.avg_px),
                str(order.notional),
                order.exec_count,
                order.trading_day,
                order.reject_reason,
                order.text,
                now,
                now,
            ),
        )

    def update_order(self, order: VenueOrder, now: str) -> None:
        self.connection.execute(
            "UPDATE venue_order SET status = ?, cum_qty = ?, leaves_qty = ?, avg_px = ?, notional = ?, "
            "exec_count = ?, updated_at = ? WHERE id = ?",
            (
                order.status,
                order.cum_qty,
                order.leaves_qty,
                str(order.avg_px),
                str(order.notional),
                order.exec_count,
                now,
                order.id,
            ),
        )

    def insert_execution(
        self,
        *,
        exec_id: str,
        order: VenueOrder,
        exec_type: str,
        last_qty: int,
        last_px: Decimal | None,
        text: str | None,
        transact_time: str,
    ) -> None:
        self.connection.execute(
            "INSERT INTO venue_execution (exec_id, cl_ord_id, order_id, exec_type, ord_status, last_qty, "
            "last_px, cum_qty, leaves_qty, avg_px, text, transact_time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                exec_id,
                order.cl_ord_id,
                order.order_id,
                exec_type,
                ORD_STATUS[order.status],
                last_qty,
                None if last_px is None else str(last_px),
                order.cum_qty,
                order.leaves_qty,
                str(order.avg_px),
                text,
                transact_time,
            ),
        )

    def _order(self, row) -> VenueOrder:
        (
            id_,
            order_id,
            cl_ord_id,
            instrument,
            side,
            ord_type,
            price,
            quantity,
            tif,
            status,
            cum_qty,
            leaves_qty,
            notional,
            exec_count,
            trading_day,
            reject_reason,
            text,
        ) = row
        return VenueOrder(
            id=id_,
            order_id=order_id,
            cl_ord_id=cl_ord_id,
            instrument=instrument,
            side=side,
            ord_type=ord_type,
            price=None if price is None else Decimal(price),
            quantity=quantity,
            time_in_force=tif,
            status=status,
            cum_qty=cum_qty,
            leaves_qty=leaves_qty,
            notional=Decimal(notional),
            exec_count=exec_count,
            trading_day=trading_day,
            reject_reason=reject_reason,
            text=text,
        )

    def find(self, cl_ord_id: str) -> VenueOrder | None:
        row = self.connection.execute(
            f"SELECT {_ORDER_COLUMNS} FROM venue_order WHERE cl_ord_id = ?", (cl_ord_id,)
        ).fetchone()
        return None if row is None else self._order(row)

    def open_orders(self) -> list[VenueOrder]:
        rows = self.connection.execute(
            f"SELECT {_ORDER_COLUMNS} FROM venue_order "
            "WHERE status IN ('NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL') ORDER BY id"
        )
        return [self._order(row) for row in rows]
