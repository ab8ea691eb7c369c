"""Counters of the FIX gateway process (``run_gateway``), in prometheus multiprocess files.

Built on first use like ``ordersite/metrics.py``: ``/metrics`` sums every process's
files, so these show there while a gateway runs. State (logged on, sequence numbers,
outbox backlog) is not kept here: ``exchange/session_status.py`` reads it from the
database at scrape time.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Histogram

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))
SENT_KINDS = ("new_order", "cancel", "status_request")


class _Metrics:
    def __init__(self) -> None:
        self.reports_stored = Counter(
            "fix_gateway_reports_stored", "Inbound application messages stored (duplicates not counted)."
        )
        self.duplicates = Counter(
            "fix_gateway_duplicates_ignored",
            "Messages received again and not stored: session (PossDup below the expected MsgSeqNum) "
            "or application (a dedupe key already stored).",
            ["layer"],
        )
        self.resend_requests_sent = Counter(
            "fix_gateway_resend_requests_sent", "Gaps in inbound sequence numbers: ResendRequests we sent."
        )
        self.resend_requests_answered = Counter(
            "fix_gateway_resend_requests_answered", "ResendRequests from the venue we answered."
        )
        self.sent = Counter("fix_gateway_outbox_sent", "Outbox rows sent, by kind.", ["kind"])
        self.logons = Counter("fix_gateway_logons", "Logons of our FIX session.")
        self.lag = Histogram(
            "fix_gateway_report_lag_seconds",
            "From a report's TransactTime to the commit that stored it.",
            buckets=LAG_BUCKETS,
        )
        for layer in ("session", "application"):
            self.duplicates.labels(layer)
        for kind in SENT_KINDS:
            self.sent.labels(kind)


_instance: _Metrics | None = None
_lock = threading.Lock()


def gateway_metrics() -> _Metrics:
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = _Metrics()
    return _instance
