"""Our side of the FIX session (``run_gateway``): durable ingest of reports, a durable outbox.

``Gateway`` wires an initiator ``Session`` to a ``DjangoSessionStore``: every inbound
application message is queued into the store and committed with the sequence number
that counts it, in one transaction with all that is read and sent within
``commit_delay`` (100 ms) of the first of it; outbox rows go out in ``id`` order,
marked sent in the transaction that stores the outbound message. On every logon,
once gaps are recovered, it asks the venue about every order it may hold
(reconcile). The order side applies the stored reports in a child process
(``ReportApplier``), woken through a pipe after every commit that stored some.
Blocking database calls on the event loop are deliberate: while a commit runs, the
socket buffers, and the next read is a bigger batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from exchange.fix.codec import FieldValue, Message, MsgType, Tag, utc_timestamp
from exchange.fix.django_store import CommitResult, DjangoSessionStore
from exchange.fix.reports import inbound_record
from exchange.fix.session import INITIATOR, Session, connect
from exchange.metrics import gateway_metrics
from exchange.models import FixSession, OutboxMessage
from exchange.selectors import outbox_unsent, unsettled_cl_ord_ids
from exchange.services import outbox_status_requests

logger = logging.getLogger(__name__)

FIX_SIDE = {"buy": "1", "sell": "2"}
FIX_ORD_TYPE = {"market": "1", "limit": "2"}
FIX_TIME_IN_FORCE = {"day": "0", "gtc": "1", "ioc": "3", "fok": "4"}


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    sender_comp_id: str
    target_comp_id: str
    heartbeat_interval: int = 30
    reconnect_base: float = 0.5
    reconnect_cap: float = 30.0
    poll_interval: float = 0.05
    batch: int = 500
    # Reads and sends are committed together at most this long after the first of them.
    commit_delay: float = 0.1
    status_interval: float = 1.0
    # More ClOrdIDs to ask about on logon (the order side's in-flight orders).
    reconcile_hook: Callable[[], Iterable[str]] | None = None
    # The manage.py command that applies stored reports to the order side, kept running
    # as this process's child (``ReportApplier``); empty: none.
    report_applier: str = ""

    @property
    def session_name(self) -> str:
        return f"{self.sender_comp_id}-{self.target_comp_id}"


def outbox_fix_message(row: OutboxMessage) -> tuple[str, list[tuple[int, FieldValue]]]:
    """The FIX message for an outbox row; ``ValueError`` when the row cannot be one."""
    if not row.cl_ord_id:
        raise ValueError("ClOrdID missing")
    now = utc_timestamp()
    if row.kind == OutboxMessage.Kind.NEW_ORDER:
        if row.side not in FIX_SIDE or row.ord_type not in FIX_ORD_TYPE:
            raise ValueError(f"side {row.side!r} or ord_type {row.ord_type!r} not known")
        if row.time_in_force not in FIX_TIME_IN_FORCE or not row.order_qty or not row.symbol:
            raise ValueError("time_in_force, order_qty and symbol are required")
        body: list[tuple[int, FieldValue]] = [
            (Tag.ClOrdID, row.cl_ord_id),
            (Tag.Symbol, row.symbol),
            (Tag.Side, FIX_SIDE[row.side]),
            (Tag.OrderQty, row.order_qty),
            (Tag.OrdType, FIX_ORD_TYPE[row.ord_type]),
        ]
        if row.ord_type == "limit":
            if row.price is None:
                raise ValueError("a limit order needs a price")
            body.append((Tag.Price, format(row.price.normalize(), "f")))
        body += [(Tag.TimeInForce, FIX_TIME_IN_FORCE[row.time_in_force]), (Tag.TransactTime, now)]
        return MsgType.NewOrderSingle, body
    if row.kind == OutboxMessage.Kind.CANCEL:
        if not row.orig_cl_ord_id:
            raise ValueError("OrigClOrdID missing")
        body = [(Tag.OrigClOrdID, row.orig_cl_ord_id), (Tag.ClOrdID, row.cl_ord_id)]
        if row.symbol:
            body.append((Tag.Symbol, row.symbol))
        if row.side in FIX_SIDE:
            body.append((Tag.Side, FIX_SIDE[row.side]))
        body.append((Tag.TransactTime, now))
        return MsgType.OrderCancelRequest, body
    if row.kind == OutboxMessage.Kind.STATUS_REQUEST:
        body = [(Tag.ClOrdID, row.cl_ord_id)]
        if row.side in FIX_SIDE:
            body.append((Tag.Side, FIX_SIDE[row.side]))
        return MsgType.OrderStatusRequest, body
    raise ValueError(f"kind {row.kind!r} not known")


class ReportApplier:
    """The child process that applies stored reports: ``manage.py <command> --wake-on-stdin``.

    An interpreter of its own, so applying never competes with reading the socket for
    one GIL. ``wake`` writes a byte to its stdin (never blocking: a full pipe already
    holds a wake-up); the child ends at end of stdin, so it never outlives this process,
    even one killed with SIGKILL. ``check`` starts it again if it died.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), self.command, "--wake-on-stdin"],
            cwd=settings.BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=sys.stderr,
        )
        os.set_blocking(self.process.stdin.fileno(), False)
        logger.info("FIX gateway: report applier %s started (pid %s)", self.command, self.process.pid)

    def wake(self) -> None:
        if self.process is None:
            return
        try:
            os.write(self.process.stdin.fileno(), b"\n")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already
        except OSError:
            pass  # it died: check() starts it again

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            logger.error(
                "FIX gateway: report applier exited with %s; starting it again", self.process.returncode
            )
            self.process.stdin.close()
            self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Close its stdin (it finishes its batch and exits); SIGKILL after ``timeout``."""
        if self.process is None:
            return
        self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.error("FIX gateway: report applier did not stop within %s s; killing it", timeout)
            self.process.kill()
            self.process.wait()
        self.process = None


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential with equal jitter: half of ``min(cap, base * 2**(failures-1))`` fixed, half random."""
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


class Gateway:
    def __init__(self, config: GatewayConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.metrics = gateway_metrics()
        self.store = DjangoSessionStore(
            config.session_name, on_commit=self._on_commit, on_failure=self._on_store_failure
        )
        self.session: Session | None = None
        self.reconcile_due = False
        self.store_failed = False
        self.connection_logged_on = False
        self.logged_on_since = None
        self.application_duplicates = 0
        self._published: Counter[str] = Counter()
        self.applier = ReportApplier(config.report_applier) if config.report_applier else None

    # --- session callbacks -----------------------------------------------------------

    def _on_app(self, message: Message) -> None:
        self.store.add_inbound(inbound_record(message))

    def _on_logon(self) -> None:
        self.reconcile_due = True
        self.connection_logged_on = True
        self.logged_on_since = timezone.now()
        self.metrics.logons.inc()

    def _on_commit(self, result: CommitResult) -> None:
        if result.stored:
            if self.applier is not None:
                self.applier.wake()
            self.metrics.reports_stored.inc(len(result.stored))
            lag = self.metrics.lag
            for record in result.stored:
                if record["transact_time"] is not None:
                    lag.observe(max(0.0, (result.committed_at - record["transact_time"]).total_seconds()))
        if result.duplicates:
            self.application_duplicates += result.duplicates
            self.metrics.duplicates.labels("application").inc(result.duplicates)

    # --- the process -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        self.session = Session(
            sender_comp_id=self.config.sender_comp_id,
            target_comp_id=self.config.target_comp_id,
            store=self.store,
            role=INITIATOR,
            on_app=self._on_app,
            heartbeat_interval=self.config.heartbeat_interval,
            schedule=lambda callback, delay=0.0: loop.call_later(delay, callback),
            flush_delay=self.config.commit_delay,
            on_logon=self._on_logon,
        )
        tasks = [
            asyncio.create_task(self._connection_loop(), name="fix-connection"),
            asyncio.create_task(self._outbox_loop(), name="fix-outbox"),
            asyncio.create_task(self._status_loop(), name="fix-status"),
        ]
        if self.applier is not None:
            self.applier.start()
            tasks.append(asyncio.create_task(self._applier_loop(), name="report-applier"))
        try:
            await stop.wait()
        finally:
            await self._shut_down(tasks)

    async def _shut_down(self, tasks: list[asyncio.Task]) -> None:
        session = self.session
        if session.logged_on:
            logger.info("FIX gateway: logging out")
            try:
                session.logout("Client shutting down")
            except Exception:
                logger.exception("FIX gateway: logout failed")
            for _ in range(int(session.logout_timeout / 0.05)):
                if not session.connected:
                    break
                await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            session.disconnect("gateway stopped")
            session.flush()
        except Exception:
            logger.exception("FIX gateway: final commit failed; the venue resends what it was")
        if self.applier is not None:
            self.applier.stop()
        self._publish_status()

    async def _connection_loop(self) -> None:
        failures = 0
        while True:
            self.reconcile_due = False
            self.connection_logged_on = False
            if self.store_failed:
                self._recover_store()
            if self.store_failed:
                # Never log on with a store not reloaded from the database: its numbers
                # may be stale, and while store_failed the outbox loop sends nothing.
                failures += 1
                await asyncio.sleep(
                    backoff_delay(failures, self.config.reconnect_base, self.config.reconnect_cap, self.rng)
                )
                continue
            try:
                task = await connect(self.session, self.config.host, self.config.port)
                reason = await task
                logger.warning("FIX gateway: connection closed: %s", reason)
            except (ConnectionError, OSError) as error:
                logger.info(
                    "FIX gateway: connect to %s:%s failed: %s", self.config.host, self.config.port, error
                )
            except Exception:
                logger.exception("FIX gateway: connection failed; the store is reloaded from the database")
                self.store_failed = True
            # A connection that logged on (and broke for another reason than our
            # database) starts the backoff again from its base.
            failures = 1 if self.connection_logged_on and not self.store_failed else failures + 1
            if self.store_failed:
                self._recover_store()
            await asyncio.sleep(
                backoff_delay(failures, self.config.reconnect_base, self.config.reconnect_cap, self.rng)
            )

    async def _applier_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.applier.check()
            except Exception:
                logger.exception("FIX gateway: report applier not started; trying again")

    def _recover_store(self) -> None:
        self.store_failed = False
        try:
            connection.close()
            close_old_connections()
            self.store.reload()
        except Exception:
            logger.exception("FIX gateway: database still unreachable")
            self.store_failed = True

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # A scheduled flush whose commit failed was already logged and handled by _on_store_failure.
        if self.store_failed and isinstance(context.get("exception"), DatabaseError):
            return
        loop.default_exception_handler(context)

    def _on_store_failure(self, error: Exception) -> None:
        """A commit failed: nothing more leaves on this connection; it is dropped and the store reloaded."""
        logger.error(
            "FIX gateway: commit failed (%s: %s); dropping the connection", type(error).__name__, error
        )
        self.store_failed = True
        transport = self.session.transport if self.session else None
        if transport is not None:
            transport.close()

    async def _outbox_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            session = self.session
            if not session.logged_on or self.store_failed:
                continue
            try:
                if self.reconcile_due and not session.awaiting_resend:
                    self.reconcile()
                while session.logged_on and self._send_outbox() >= self.config.batch:
                    await asyncio.sleep(0)
            except Exception:
                if not self.store_failed:
                    logger.exception("FIX gateway: sending the outbox failed")

    def reconcile(self) -> int:
        """Status requests for every order the venue may hold and has not said is final."""
        cl_ord_ids = set(unsettled_cl_ord_ids())
        if self.config.reconcile_hook is not None:
            try:
                cl_ord_ids.update(str(c) for c in self.config.reconcile_hook())
            except Exception:
                logger.exception("FIX gateway: reconcile hook failed; asking about our own set only")
        count = outbox_status_requests(sorted(cl_ord_ids))
        self.reconcile_due = False
        logger.info("FIX gateway: reconcile asks the venue about %d orders", count)
        return count

    def _send_outbox(self) -> int:
        rows = outbox_unsent(limit=self.config.batch)
        if not rows:
            return 0
        sent: Counter[str] = Counter()
        for row in rows:
            try:
                msg_type, body = outbox_fix_message(row)
            except ValueError as error:
                logger.error("FIX gateway: outbox row %s not sent: %s", row.id, error)
                self.store.mark_sent(row.id, 0, str(error), settled=True)
                continue
            seq = self.session.send(msg_type, body)
            self.store.mark_sent(row.id, seq, settled=row.kind != OutboxMessage.Kind.NEW_ORDER)
            sent[row.kind] += 1
        self.session.flush()
        for kind, count in sent.items():
            self.metrics.sent.labels(kind).inc(count)
        return len(rows)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval)
            try:
                self._publish_status()
            except Exception:
                logger.exception("FIX gateway: status not published")
                close_old_connections()

    def _publish_status(self) -> None:
        session = self.session
        stats = {
            "resend_requests_sent": session.stats["resend_requests_sent"],
            "resend_requests_answered": session.stats["resend_requests_answered"],
            "session_duplicates": session.stats["duplicates_ignored"],
            "application_duplicates": self.application_duplicates,
        }
        delta = {key: value - self._published[key] for key, value in stats.items()}
        FixSession.objects.filter(name=self.config.session_name).update(
            logged_on=session.logged_on,
            status_at=timezone.now(),
            logged_on_since=self.logged_on_since if session.logged_on else None,
            last_disconnect_reason=session.last_disconnect_reason[:255],
            resend_requests_sent=_add("resend_requests_sent", delta["resend_requests_sent"]),
            resend_requests_answered=_add("resend_requests_answered", delta["resend_requests_answered"]),
            duplicates_ignored=_add(
                "duplicates_ignored", delta["session_duplicates"] + delta["application_duplicates"]
            ),
        )
        self._published.update(delta)
        self.metrics.resend_requests_sent.inc(delta["resend_requests_sent"])
        self.metrics.resend_requests_answered.inc(delta["resend_requests_answered"])
        self.metrics.duplicates.labels("session").inc(delta["session_duplicates"])


def _add(name: str, amount: int) -> F:
    return F(name) + amount
