"""The FIX session's state as the gateway last wrote it, for ``/healthz`` and ``/metrics``.

``run_gateway`` writes its row every second; a row older than ``STALE_AFTER`` means
the gateway is not running (or stuck), whatever the row says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from exchange.models import FixSession
from exchange.selectors import outbox_backlog

logger = logging.getLogger(__name__)

STALE_AFTER = 10.0  # seconds; the gateway writes its status every second


@dataclass(frozen=True)
class SessionStatus:
    name: str
    running: bool  # the gateway wrote its status lately
    logged_on: bool
    next_inbound: int
    next_outbound: int
    status_age_seconds: float | None
    logged_on_since: datetime | None
    last_disconnect_reason: str
    resend_requests_sent: int
    resend_requests_answered: int
    duplicates_ignored: int
    reports_stored: int
    outbox_backlog: int

    def as_json(self) -> dict:
        state = "logged_on" if self.logged_on else ("disconnected" if self.running else "not_running")
        return {
            "status": state,
            "session": self.name,
            "next_inbound_seq": self.next_inbound,
            "next_outbound_seq": self.next_outbound,
            "outbox_backlog": self.outbox_backlog,
            "status_age_seconds": None
            if self.status_age_seconds is None
            else round(self.status_age_seconds, 1),
            "last_disconnect_reason": self.last_disconnect_reason,
        }


def session_name() -> str:
    return f"{settings.VENUE_CLIENT_COMP_ID}-{settings.VENUE_COMP_ID}"


def session_status(*, now: datetime | None = None) -> SessionStatus | None:
    """Our FIX session's state, or ``None`` when no gateway ever ran on this database."""
    row = FixSession.objects.filter(name=session_name()).first()
    if row is None:
        return None
    now = now or timezone.now()
    age = None if row.status_at is None else max(0.0, (now - row.status_at).total_seconds())
    running = age is not None and age <= STALE_AFTER
    return SessionStatus(
        name=row.name,
        running=running,
        logged_on=running and row.logged_on,
        next_inbound=row.next_inbound,
        next_outbound=row.next_outbound,
        status_age_seconds=age,
        logged_on_since=row.logged_on_since,
        last_disconnect_reason=row.last_disconnect_reason,
        resend_requests_sent=row.resend_requests_sent,
        resend_requests_answered=row.resend_requests_answered,
        duplicates_ignored=row.duplicates_ignored,
        reports_stored=row.reports_stored,
        outbox_backlog=outbox_backlog(),
    )


class FixSessionCollector:
    """Gauges of the FIX session read at scrape time (the gateway's counters come from its own files)."""

    def collect(self):
        try:
            status = session_status()
        except Exception as exc:  # the order gauges already report the database as down
            logger.warning("metrics: FIX session state unreadable: %s", exc)
            return
        logged_on = GaugeMetricFamily(
            "fix_session_logged_on", "1 while run_gateway is logged on to the venue."
        )
        logged_on.add_metric([], 1 if status and status.logged_on else 0)
        yield logged_on
        if status is None:
            return
        gauges = (
            (
                "fix_session_next_inbound_seq",
                "The next MsgSeqNum we expect from the venue.",
                status.next_inbound,
            ),
            ("fix_session_next_outbound_seq", "The next MsgSeqNum we send.", status.next_outbound),
            ("fix_outbox_backlog", "Outbox rows not sent yet.", status.outbox_backlog),
            (
                "fix_session_reports_stored",
                "Inbound application messages stored, all time.",
                status.reports_stored,
            ),
            (
                "fix_session_status_age_seconds",
                "Seconds since run_gateway last wrote its status (it writes every second).",
                status.status_age_seconds if status.status_age_seconds is not None else -1,
            ),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
