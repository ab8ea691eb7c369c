"""Operations endpoints: ``/healthz`` for load balancers and on-call, ``/metrics`` for Prometheus.

Both read only indexed things: a ``SELECT 1``, the queue's row count (ORM broker)
or ``PING``/``LLEN`` (Redis), and the working orders' range of the
``(status, updated_at)`` index, whose cost follows the orders still working.
``/metrics`` also counts settled orders per status, at most once a minute per process.
"""

import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, Min
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.values import ValueClass

from exchange.session_status import FixSessionCollector, session_status
from orders.models import Order
from ordersite import metrics as domain_metrics

logger = logging.getLogger("orders.ops")


# --- What the checks read --------------------------------------------------------


@dataclass(frozen=True)
class QueueState:
    broker: str  # "orm" or "redis"
    depth: int | None = None  # None: the broker could not be asked
    error: str = ""

    @property
    def reachable(self) -> bool:
        return self.depth is not None


@dataclass(frozen=True)
class UnsettledOrders:
    by_status: dict[str, int]  # the working statuses
    oldest_created_at: datetime | None

    @property
    def count(self) -> int:
        return sum(self.by_status.values())

    def oldest_age_seconds(self, now: datetime) -> float | None:
        if self.oldest_created_at is None:
            return None
        return max(0.0, (now - self.oldest_created_at).total_seconds())


def database_ping(alias: str = DEFAULT_DB_ALIAS) -> None:
    """Raise unless the database answers a trivial query."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def queue_state() -> QueueState:
    """How many tasks django-q2's queue holds; ``depth`` is None when the broker cannot be asked."""
    if "redis" in settings.Q_CLUSTER:
        try:
            broker = _redis_broker()
            broker.ping()
            return QueueState("redis", broker.queue_size())
        except Exception as exc:  # any failure means "unreachable", never a 500
            logger.warning("queue check: Redis broker unavailable: %s", exc)
            return QueueState("redis", error=type(exc).__name__)
    from django_q.models import OrmQ

    try:
        return QueueState("orm", OrmQ.objects.using(settings.Q_CLUSTER.get("orm", DEFAULT_DB_ALIAS)).count())
    except Exception as exc:
        logger.warning("queue check: ORM broker unavailable: %s", exc)
        return QueueState("orm", error=type(exc).__name__)


_broker = None


def _redis_broker():
    # One broker (one connection pool) per process, not a new connection per check.
    global _broker
    if _broker is None:
        from django_q.brokers import get_broker

        _broker = get_broker()
    return _broker


def unsettled_orders() -> UnsettledOrders:
    """Unsettled orders (here or at the venue): how many per status, and the oldest one's creation time.

    A range scan of the ``(status, updated_at)`` index over the unsettled statuses:
    its cost follows the orders still working, not the table.
    """
    rows = (
        Order.objects.unsettled()
        .values("status")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
        .order_by()
    )
    by_status = dict.fromkeys(Order.WORKING_STATUSES + Order.AT_VENUE_STATUSES, 0)
    oldest = None
    for row in rows:
        by_status[row["status"]] = row["count"]
        if oldest is None or row["oldest"] < oldest:
            oldest = row["oldest"]
    return UnsettledOrders(by_status=by_status, oldest_created_at=oldest)


# Settled orders only grow: counting them scans the index (~0.3-0.5 s per million
# rows), so each process counts them at most once a minute.
SETTLED_COUNTS_MAX_AGE = 60.0
_settled_counts: tuple[float, dict[str, int]] | None = None


def settled_orders_by_status() -> dict[str, int]:
    """Orders per terminal status, at most SETTLED_COUNTS_MAX_AGE seconds old."""
    global _settled_counts
    cached = _settled_counts
    if cached is not None and time.monotonic() - cached[0] < SETTLED_COUNTS_MAX_AGE:
        return cached[1]
    counts = dict(
        Order.objects.filter(status__in=Order.TERMINAL_STATUSES)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {status: counts.get(status, 0) for status in Order.TERMINAL_STATUSES}
    _settled_counts = (time.monotonic(), counts)
    return counts


# --- /healthz ----------------------------------------------------------------------


@never_cache
@require_safe
def healthz(request):
    """200 when the database and the queue answer, 503 otherwise; JSON with each check.

    ``fix_session`` says whether ``run_gateway`` is logged on to the venue; it is
    information, not a check (docs/decisions.md, "FIX gateway").

    No authentication: it says nothing about any order but how old the oldest
    unsettled one is. Errors are reported by class name only (details go to the log).
    """
    now = timezone.now()
    body = {"status": "ok", "checks": {}}
    started = time.perf_counter()
    try:
        database_ping()
    except Exception as exc:
        logger.warning("healthz: database unreachable: %s", exc)
        body["checks"]["database"] = {"status": "error", "error": type(exc).__name__}
    else:
        body["checks"]["database"] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
    database_ok = body["checks"]["database"]["status"] == "ok"

    orm_on_default = "orm" in settings.Q_CLUSTER and settings.Q_CLUSTER["orm"] == DEFAULT_DB_ALIAS
    if not database_ok and orm_on_default:
        queue = QueueState("orm", error="database unreachable")  # no second connect timeout
    else:
        queue = queue_state()
    body["checks"]["queue"] = (
        {"status": "ok", "broker": queue.broker}
        if queue.reachable
        else {"status": "error", "broker": queue.broker, "error": queue.error}
    )
    body["queue_depth"] = queue.depth

    body["unsettled_orders"] = body["oldest_unsettled_age_seconds"] = None
    if database_ok:
        try:
            unsettled = unsettled_orders()
        except Exception as exc:  # reported as unknown; reachability decides the status
            logger.warning("healthz: unsettled orders unreadable: %s", exc)
        else:
            body["unsettled_orders"] = unsettled.count
            age = unsettled.oldest_age_seconds(now)
            body["oldest_unsettled_age_seconds"] = None if age is None else round(age, 3)

    # Reported, never deciding the status: with the venue or run_gateway down the
    # web still takes orders (they wait in the outbox).
    body["fix_session"] = None
    if database_ok:
        try:
            fix_session = session_status()
        except Exception as exc:
            logger.warning("healthz: FIX session state unreadable: %s", exc)
        else:
            body["fix_session"] = fix_session.as_json() if fix_session else {"status": "not_running"}

    healthy = database_ok and queue.reachable
    body["status"] = "ok" if healthy else "unavailable"
    return JsonResponse(body, status=200 if healthy else 503)


# --- /metrics ----------------------------------------------------------------------


class OrderStateCollector:
    """Gauges read from the database at scrape time, so every process's work counts."""

    def collect(self):
        database_up = GaugeMetricFamily(
            "orders_metrics_database_up", "1 when the order gauges could be read from the database."
        )
        try:
            unsettled = unsettled_orders()
            by_status = {**unsettled.by_status, **settled_orders_by_status()}
        except Exception as exc:
            logger.warning("metrics: order gauges unreadable: %s", exc)
            database_up.add_metric([], 0)
        else:
            database_up.add_metric([], 1)
            yield GaugeMetricFamily(
                "orders_unsettled", "Orders still working (OPEN or PARTIAL).", value=unsettled.count
            )
            age = unsettled.oldest_age_seconds(timezone.now())
            yield GaugeMetricFamily(
                "orders_oldest_unsettled_age_seconds",
                "Age of the oldest working order since its creation (0 when none).",
                value=age or 0.0,
            )
            statuses = GaugeMetricFamily(
                "orders_by_status",
                "Orders by status (working ones exact, settled ones up to a minute old).",
                labels=["status"],
            )
            for status, count in by_status.items():
                statuses.add_metric([status], count)
            yield statuses
        yield database_up

        queue = queue_state()
        queue_up = GaugeMetricFamily(
            "orders_queue_up", "1 when django-q2's broker answered.", labels=["broker"]
        )
        queue_up.add_metric([queue.broker], 1 if queue.reachable else 0)
        yield queue_up
        if queue.reachable:
            yield GaugeMetricFamily(
                "orders_queue_depth", "Tasks waiting or running in django-q2's queue.", value=queue.depth
            )


def _multiprocess() -> bool:
    return bool(getattr(ValueClass, "_multiprocess", False)) and bool(
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    )


def metrics_allowed(request) -> bool:
    """Loopback only, and not through a proxy, unless METRICS_ALLOW_ALL is set."""
    if settings.METRICS_ALLOW_ALL:
        return True
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False  # a proxy on this host forwarded it: the client is elsewhere
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return address.is_loopback


@never_cache
@require_safe
def metrics(request):
    """Prometheus text format: every process's counters and histograms, and the database gauges."""
    if not metrics_allowed(request):
        return HttpResponseForbidden(
            "/metrics is served to loopback only (set METRICS_ALLOW_ALL=1 to expose it).\n",
            content_type="text/plain",
        )
    domain_metrics.register()
    if _multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:  # prometheus_client was imported before the settings: this process's own values
        registry = REGISTRY
    state = CollectorRegistry()
    state.register(OrderStateCollector())
    state.register(FixSessionCollector())
    return HttpResponse(generate_latest(registry) + generate_latest(state), content_type=CONTENT_TYPE_LATEST)
