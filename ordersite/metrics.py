"""Domain metrics: counters and histograms bumped where the pipeline decides something.

The service runs as several processes (gunicorn workers, qcluster workers with their
placement threads), so every value here lives in prometheus_client's multiprocess
mode: each process writes its own memory-mapped file under
``PROMETHEUS_MULTIPROC_DIR`` (the settings default it to ``var/prometheus``) and
``/metrics`` sums them (``orders/ops.py``). Recording a value takes a lock and a
write to a mapped page: no I/O, nothing measurable on POST /orders or in matching.

The metric objects are built on first use, so processes that never record anything
(``manage.py`` commands, shells) leave no files behind. Gauges of state (queue
depth, unsettled orders) are not kept here: ``/metrics`` reads them from the
database at scrape time, so they are right whichever process changed the state.

Call sites stay one line: ``metrics.order_accepted()`` and the like.
"""

import threading
import time
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Histogram

# POST to SUBMITTED: the matching window (0.5 s) plus one call (0.5 s) when all goes
# well; retries back off up to EXCHANGE_RETRY_CAP; FAILED after the 600 s deadline.
SUBMIT_LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 120, 300, 600, float("inf"))
EXCHANGE_CALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 1, 2, 5, 10, float("inf"))

FAILURE_REASONS = ("rejected", "deadline")
CALL_OUTCOMES = ("accepted", "failed", "rejected", "error")
STATUS_ANSWERS = ("held", "not_held", "unknown")


class _Metrics:
    def __init__(self):
        self.accepted = Counter(
            "orders_accepted", "Orders stored by POST /orders (idempotent replays not counted)."
        )
        self.fills = Counter("orders_matched_fills", "Internal fills committed (one OrderMatch row each).")
        self.placed = Counter(
            "orders_placed", "Order remainders accepted by the exchange (the order became SUBMITTED)."
        )
        self.failed = Counter(
            "orders_failed",
            "Orders that ended FAILED: rejected by the exchange or past the placement deadline.",
            ["reason"],
        )
        self.retried = Counter(
            "orders_placement_retries", "Failed exchange attempts whose order went back to the book."
        )
        self.submit_latency = Histogram(
            "orders_submit_latency_seconds",
            "From an order's creation (POST /orders) to its SUBMITTED update.",
            buckets=SUBMIT_LATENCY_BUCKETS,
        )
        self.exchange_call = Histogram(
            "orders_exchange_call_duration_seconds",
            "One exchange place_order call, by outcome (error: no answer, the call is re-sent).",
            ["outcome"],
            buckets=EXCHANGE_CALL_BUCKETS,
        )
        self.status_checks = Counter(
            "orders_exchange_status_checks",
            "Questions to the exchange about an attempt whose outcome was unknown, by answer.",
            ["answer"],
        )
        self.quantity_mismatches = Counter(
            "orders_exchange_quantity_mismatches",
            "Orders the exchange holds for another quantity than the remainder we sent (alert on any).",
        )
        self.push_failures = Counter(
            "orders_processing_push_failures",
            "Committed orders whose processing push to the broker failed (the sweeper re-drives them).",
        )
        self.venue_reports = Counter(
            "orders_venue_reports_applied", "Venue execution reports applied to orders (in batches)."
        )
        self.venue_executions = Counter(
            "orders_venue_executions", "Venue fills recorded (one Execution each)."
        )
        self.venue_quarantined = Counter(
            "orders_venue_reports_quarantined",
            "Venue reports not applied: unknown order or contradicting what we know (alert on any).",
        )
        self.venue_apply_lag = Histogram(
            "orders_venue_apply_lag_seconds",
            "From a report's TransactTime at the venue to its order update committed.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # Every label value from the start, so rates and alerts see zeros, not gaps.
        for answer in STATUS_ANSWERS:
            self.status_checks.labels(answer)
        for reason in FAILURE_REASONS:
            self.failed.labels(reason)
        for outcome in CALL_OUTCOMES:
            self.exchange_call.labels(outcome)


_instance: _Metrics | None = None
_instance_lock = threading.Lock()


def _metrics() -> _Metrics:
    # Built once per process; the lock keeps two placement threads from both
    # building (prometheus_client refuses a second metric of the same name).
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = _Metrics()
    return _instance


def register() -> None:
    """Create the metrics in this process (``/metrics`` does, so every name shows from the start)."""
    _metrics()


def order_accepted() -> None:
    _metrics().accepted.inc()


def fills_committed(count: int) -> None:
    if count:
        _metrics().fills.inc(count)


def orders_submitted(submitted: int, created_at: Iterable[datetime], now: datetime) -> None:
    """``submitted`` orders became SUBMITTED at ``now``; ``created_at`` are the batch's orders.

    The latency is observed only when the whole batch was submitted: a stale
    acceptance (a recovered call) matches no row, and the UPDATE does not say which.
    """
    if not submitted:
        return
    metrics = _metrics()
    metrics.placed.inc(submitted)
    created_at = list(created_at)
    if submitted == len(created_at):
        for created in created_at:
            metrics.submit_latency.observe((now - created).total_seconds())


def order_failed(reason: str) -> None:
    _metrics().failed.labels(reason).inc()


def placement_retried() -> None:
    _metrics().retried.inc()


def status_checked(answer: str) -> None:
    _metrics().status_checks.labels(answer).inc()


def quantity_mismatch() -> None:
    _metrics().quantity_mismatches.inc()


def processing_push_failed() -> None:
    _metrics().push_failures.inc()


def venue_reports_applied(reports: int, executions: int, quarantined: int, lags) -> None:
    metrics = _metrics()
    metrics.venue_reports.inc(reports)
    metrics.venue_executions.inc(executions)
    if quarantined:
        metrics.venue_quarantined.inc(quarantined)
    for lag in lags or ():
        metrics.venue_apply_lag.observe(lag)


def exchange_call(outcome: str, started: float) -> None:
    """An exchange call that began at ``started`` (``time.perf_counter()``) ended with ``outcome``."""
    _metrics().exchange_call.labels(outcome).observe(time.perf_counter() - started)
