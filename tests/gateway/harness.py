"""The real ``run_gateway`` against the test database, next to a real ``run_venue``.

The gateway runs with production settings (``ordersite.settings``) and
``DATABASE_URL`` pointing at pytest-django's test database, so tests must be
``transaction=True`` for rows to be visible across processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

from exchange.models import ExecutionReportRecord, FixSession, OutboxMessage
from exchange.services import outbox_new_order
from tests.venue.harness import APPLE, ROOT, VenueProcess

SESSION_NAME = "BROKER-VENUE"


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"mysql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


class GatewayProcess:
    """``python manage.py run_gateway`` in its own process group, killable like a crashed host."""

    def __init__(self, tmp_path: Path, venue: VenueProcess, **env: str) -> None:
        self.venue = venue
        self.log = tmp_path / "gateway.log"
        # The venue's settings (CompIDs, directories) plus ours: the two always agree.
        self.env = {
            **venue.env,
            "DATABASE_URL": database_url(),
            "GATEWAY_HEARTBEAT_INTERVAL": "5",
            "GATEWAY_RECONNECT_BASE": "0.1",
            "GATEWAY_RECONNECT_CAP": "0.5",
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_gateway", "--port", str(self.venue.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline()
        if "Gateway" not in line:
            self.proc.kill()
            raise RuntimeError(f"gateway did not start: {line}{self.log.read_text()}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def applier_pid(self) -> int | None:
        """The pid of its child that applies stored reports (``apply_venue_reports``), if running."""
        if self.proc is None:
            return None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        for pid in map(int, children.read_text().split() if children.exists() else []):
            if running(pid) and b"apply_venue_reports" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        return None


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, timeout: float = 20.0, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)


def session_row() -> FixSession | None:
    return FixSession.objects.filter(name=SESSION_NAME).first()


def logged_on() -> bool:
    row = session_row()
    return bool(row and row.logged_on)


def new_orders(count: int, *, quantity: int = 100, tif: str = "gtc", symbol: str = APPLE) -> list[str]:
    """``count`` limit orders in the outbox; returns their ClOrdIDs."""
    ids = []
    for n in range(count):
        cl_ord_id = str(uuid.uuid4())
        outbox_new_order(
            cl_ord_id=cl_ord_id,
            symbol=symbol,
            side="buy" if n % 2 else "sell",
            quantity=quantity,
            ord_type="limit",
            price=1000 if n % 2 else 1,
            time_in_force=tif,
        )
        ids.append(cl_ord_id)
    return ids


def journal_executions(venue: VenueProcess) -> dict[str, dict]:
    return {row["exec_id"]: row for row in venue.executions()}


def stored_executions() -> dict[str, ExecutionReportRecord]:
    """Stored ExecutionReports the venue journals (not status answers, not transient refusals)."""
    records = (
        ExecutionReportRecord.objects.filter(msg_type="8").exclude(exec_type="I").exclude(ord_rej_reason="99")
    )
    return {record.exec_id: record for record in records}


def assert_stored_equals_journal(venue: VenueProcess) -> None:
    """Every venue execution stored exactly once, with the venue's quantities."""
    journal = journal_executions(venue)
    stored = stored_executions()
    assert set(stored) == set(journal), (
        f"missing {sorted(set(journal) - set(stored))[:5]}, extra {sorted(set(stored) - set(journal))[:5]}"
    )
    for exec_id, row in journal.items():
        record = stored[exec_id]
        assert (record.order_cl_ord_id, record.exec_type) == (row["cl_ord_id"], row["exec_type"]), exec_id
        assert (int(record.cum_qty), int(record.leaves_qty)) == (row["cum_qty"], row["leaves_qty"]), exec_id
    keys = ExecutionReportRecord.objects.values_list("dedupe_key", flat=True)
    assert len(keys) == len(set(keys))


def all_settled(venue: VenueProcess, cl_ord_ids: list[str]) -> bool:
    """The venue finished every order and we stored every one of its executions."""
    orders = venue.orders()
    if any(
        orders.get(c, {}).get("status") in (None, "NEW", "PARTIALLY_FILLED", "PENDING_CANCEL")
        for c in cl_ord_ids
    ):
        return False
    return len(journal_executions(venue)) == len(stored_executions())


def outbox_sent(cl_ord_ids: list[str]) -> bool:
    return not OutboxMessage.objects.filter(cl_ord_id__in=cl_ord_ids, sent_seq__isnull=True).exists()
