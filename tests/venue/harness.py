"""The real ``run_venue`` process on a free port, and a FIX client built on our session layer."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from exchange.fix.codec import ExecType, Message, MsgType, Tag
from exchange.fix.session import INITIATOR, MemorySessionStore, Session, run_initiator

ROOT = Path(__file__).resolve().parents[2]
APPLE = "US0378331005"
MICROSOFT = "US5949181045"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VenueProcess:
    """``python manage.py run_venue`` with its own port, journal and settings."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.db = tmp_path / "venue.sqlite3"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ordersite.settings",
            "DJANGO_SECRET_KEY": "venue-tests",
            "VAR_DIR": str(tmp_path / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "EXCHANGE_LATENCY": "0.01",
            "EXCHANGE_FAILURE_RATE": "0",
            "VENUE_FILL_INTERVAL": "0.05",
            "VENUE_FAULTS": "",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.args: list[str] = []
        self.proc: subprocess.Popen | None = None
        # A file, not a pipe: a pipe nobody reads would stall a chatty venue.
        self.log = tmp_path / "venue.log"

    def start(self, *args: str) -> VenueProcess:
        self.args = list(args) or self.args
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "run_venue", "--port", str(self.port), "--db", str(self.db)]
                + self.args,
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self.proc.stdout.readline()
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError(f"venue did not start: {line}{self.log.read_text()}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
        return code

    def assert_no_tracebacks(self) -> None:
        text = self.log.read_text()
        assert "Traceback" not in text, text[text.index("Traceback") - 500 :]

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def journal(self, sql: str, params=()) -> list[tuple]:
        connection = sqlite3.connect(self.db, timeout=5)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def orders(self) -> dict[str, dict]:
        connection = sqlite3.connect(self.db, timeout=5)
        connection.row_factory = sqlite3.Row
        try:
            return {row["cl_ord_id"]: dict(row) for row in connection.execute("SELECT * FROM venue_order")}
        finally:
            connection.close()

    def executions(self) -> list[dict]:
        connection = sqlite3.connect(self.db, timeout=5)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute("SELECT * FROM venue_execution ORDER BY id")]
        finally:
            connection.close()


class FixClient:
    """Our side in miniature: an initiator session that reconnects, and an inbox of reports."""

    def __init__(self, port: int, *, heartbeat: int = 5, store=None, inbox=None) -> None:
        self.port = port
        self.inbox: list[Message] = [] if inbox is None else inbox
        self.arrived = asyncio.Event()
        self.session = Session(
            sender_comp_id="BROKER",
            target_comp_id="VENUE",
            store=store or MemorySessionStore(),
            role=INITIATOR,
            on_app=self._on_app,
            heartbeat_interval=heartbeat,
            schedule=asyncio.get_running_loop().call_soon,
            on_logon=self.arrived.set,
        )
        self.logons = 0
        self._task: asyncio.Task | None = None

    def _on_app(self, message: Message) -> None:
        self.inbox.append(message)
        self.arrived.set()

    async def __aenter__(self) -> FixClient:
        connection = run_initiator(self.session, "127.0.0.1", self.port, reconnect_delay=0.1)
        self._task = asyncio.create_task(connection)
        await self.until(lambda: self.session.logged_on)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session.logged_on:
            self.session.logout("test done")
            await self.until(lambda: not self.session.connected, timeout=2, check=False)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.session.disconnect("test done")

    async def until(self, condition, timeout: float = 10.0, check: bool = True):
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                if check:
                    raise AssertionError(f"timed out waiting for {condition}")
                return result
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.05)
            except TimeoutError:
                pass

    def send(self, msg_type: str, body) -> int:
        return self.session.send(msg_type, body)

    def new_order(
        self,
        cl_ord_id: str,
        quantity: int = 100,
        *,
        side: str = "1",
        price: str | None = "1000",
        tif: str = "1",
        symbol: str = APPLE,
    ) -> int:
        body = [(Tag.ClOrdID, cl_ord_id), (Tag.Symbol, symbol), (Tag.Side, side), (Tag.OrderQty, quantity)]
        body.append((Tag.OrdType, "2" if price is not None else "1"))
        if price is not None:
            body.append((Tag.Price, price))
        body += [(Tag.TimeInForce, tif), (Tag.TransactTime, "20260101-00:00:00.000")]
        return self.send(MsgType.NewOrderSingle, body)

    def cancel(self, cl_ord_id: str, cancel_id: str) -> int:
        body = [(Tag.OrigClOrdID, cl_ord_id), (Tag.ClOrdID, cancel_id), (Tag.Side, "1")]
        return self.send(MsgType.OrderCancelRequest, body)

    def status(self, cl_ord_id: str) -> int:
        return self.send(MsgType.OrderStatusRequest, [(Tag.ClOrdID, cl_ord_id), (Tag.Side, "1")])

    def reports(self, cl_ord_id: str, msg_type: str = MsgType.ExecutionReport) -> list[Message]:
        return [
            m
            for m in self.inbox
            if m.msg_type == msg_type and cl_ord_id in (m.get(Tag.ClOrdID), m.get(Tag.OrigClOrdID))
        ]

    def exec_types(self, cl_ord_id: str) -> list[str]:
        return [m.get(Tag.ExecType) for m in self.reports(cl_ord_id)]

    def done(self, cl_ord_id: str) -> bool:
        """The order reached a final state (filled, cancelled, expired or rejected)."""
        return any(
            m.get(Tag.ExecType) != ExecType.OrderStatus and m.get(Tag.OrdStatus) in ("2", "4", "8", "C")
            for m in self.reports(cl_ord_id)
        )


def run(coroutine):
    return asyncio.run(coroutine)
