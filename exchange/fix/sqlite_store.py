"""A ``SessionStore`` in an SQLite database, sharing the caller's connection.

The venue keeps its journal in the same connection, so one ``commit`` makes an
order's new state and the report announcing it durable together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS fix_session (
    name TEXT PRIMARY KEY,
    next_inbound INTEGER NOT NULL,
    next_outbound INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fix_outbound_message (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (name, seq)
) WITHOUT ROWID;
"""


class SqliteSessionStore:
    """Sequence numbers of session ``name`` and its outbound application messages.

    Sequence numbers are kept in memory and written at ``commit``, which also
    commits whatever else the connection has pending.
    """

    def __init__(self, connection: sqlite3.Connection, name: str) -> None:
        self.connection = connection
        self.name = name
        connection.executescript(SCHEMA)
        row = connection.execute(
            "SELECT next_inbound, next_outbound FROM fix_session WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            connection.execute("INSERT INTO fix_session VALUES (?, 1, 1)", (name,))
            connection.commit()
            row = (1, 1)
        self._next_in, self._next_out = row
        self._dirty = False

    def next_inbound_seq(self) -> int:
        return self._next_in

    def set_next_inbound(self, seq: int) -> None:
        self._next_in = seq
        self._dirty = True

    def next_outbound_seq(self) -> int:
        return self._next_out

    def set_next_outbound(self, seq: int) -> None:
        self._next_out = seq
        self._dirty = True

    def save_outbound(self, seq: int, raw: bytes) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO fix_outbound_message (name, seq, raw) VALUES (?, ?, ?)",
            (self.name, seq, raw),
        )
        self._next_out = seq + 1
        self._dirty = True

    def outbound_range(self, begin: int, end: int) -> Iterator[tuple[int, bytes]]:
        cursor = self.connection.execute(
            "SELECT seq, raw FROM fix_outbound_message WHERE name = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (self.name, begin, end),
        )
        for seq, raw in cursor:
            yield seq, bytes(raw)

    def reset(self) -> None:
        self.connection.execute("DELETE FROM fix_outbound_message WHERE name = ?", (self.name,))
        self._next_in = self._next_out = 1
        self._dirty = True

    def commit(self) -> None:
        if self._dirty:
            self.connection.execute(
                "UPDATE fix_session SET next_inbound = ?, next_outbound = ? WHERE name = ?",
                (self._next_in, self._next_out, self.name),
            )
            self._dirty = False
        if self.connection.in_transaction:
            self.connection.commit()


def open_database(path: str) -> sqlite3.Connection:
    """An SQLite connection in WAL mode for one process (the asyncio thread)."""
    connection = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL: a committed transaction survives a process crash (SIGKILL);
    # only an OS crash or power loss can take the last ones back.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection
