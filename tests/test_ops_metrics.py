"""/metrics: Prometheus text for loopback only; domain counters move where the pipeline decides.

The test settings point PROMETHEUS_MULTIPROC_DIR at a directory of the test run, so
the counters here are prometheus_client's multiprocess files, summed as in production.
Counters only grow, so each test compares before and after.
"""

from decimal import Decimal

import pytest
from django.db import OperationalError, connections
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from exchange.gateway import OrderRejectedError
from matching.services import instrument_match_pending
from orders import ops
from orders.models import Order
from orders.placement import placement_run
from orders.plans import RoutePlan
from tests.factories import OrderFactory
from tests.pipeline_helpers import ScriptedExchange

pytestmark = pytest.mark.django_db

ISIN = "US0378331005"
ORDER = {"type": "limit", "side": "buy", "instrument": ISIN, "limit_price": "10.50", "quantity": 100}
DOMAIN_METRICS = [
    "orders_accepted_total",
    "orders_matched_fills_total",
    "orders_placed_total",
    "orders_failed_total",
    "orders_placement_retries_total",
    "orders_submit_latency_seconds_bucket",
    "orders_exchange_call_duration_seconds_bucket",
    "orders_unsettled",
    "orders_oldest_unsettled_age_seconds",
    "orders_by_status",
    "orders_queue_depth",
    "orders_queue_up",
    "orders_metrics_database_up",
]


@pytest.fixture
def anonymous():
    return APIClient()


def scrape(client=None, **extra) -> dict:
    """The samples of /metrics as {(name, (label pairs...)): value}."""
    response = (client or APIClient()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before, after, name, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def _resting(quantity=100, **kwargs) -> Order:
    order = OrderFactory(quantity=quantity, **kwargs)
    instrument_match_pending(isin=order.instrument)
    order.refresh_from_db()
    return order


def _place(order, exchange):
    plan = RoutePlan(order_id=order.pk, instrument=order.instrument, route_at=timezone.now())
    return placement_run(plan=plan, exchange=exchange)


def test_loopback_gets_prometheus_text_with_the_domain_metrics(anonymous):
    anonymous.get("/healthz")  # one request observed, so the request histograms have samples
    response = anonymous.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in DOMAIN_METRICS:
        assert f"\n{name}" in text, name
    # django-prometheus's request metrics (ordersite/middleware.py).
    assert "django_http_requests_latency_seconds_by_view_method_bucket" in text


def test_ipv6_loopback_is_served():
    assert APIClient().get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"REMOTE_ADDR": "203.0.113.7"},
        {"REMOTE_ADDR": "10.1.2.3"},
        # From loopback, but forwarded by a proxy on this host: the client is elsewhere.
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},
    ],
)
def test_other_clients_are_refused(anonymous, extra):
    response = anonymous.get("/metrics", **extra)

    assert response.status_code == 403
    assert b"orders_accepted_total" not in response.content


def test_metrics_allow_all_serves_every_client(anonymous, settings):
    settings.METRICS_ALLOW_ALL = True

    assert anonymous.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 200


def test_accepted_orders_are_counted_once_per_order(api):
    before = scrape()

    assert api.post("/orders", {**ORDER, "client_order_id": "a-1"}, format="json").status_code == 201
    assert api.post("/orders", {**ORDER, "client_order_id": "a-1"}, format="json").status_code == 200
    assert api.post("/orders", ORDER, format="json").status_code == 201

    after = scrape()
    assert moved(before, after, "orders_accepted_total") == 2
    responses = "django_http_responses_total_by_status_view_method_total"
    assert moved(before, after, responses, status="201", view="order-list", method="POST") == 2
    assert moved(before, after, responses, status="200", view="order-list", method="POST") == 1
    assert moved(before, after, "orders_unsettled") == 2
    assert value(after, "orders_by_status", status="OPEN") >= 2
    assert value(after, "orders_queue_depth") >= 2


def test_a_placement_counts_the_order_placed_its_latency_and_the_call(
    api, django_capture_on_commit_callbacks
):
    order_id = api.post("/orders", ORDER, format="json").json()["id"]
    instrument_match_pending(isin=ISIN)
    order = Order.objects.get(pk=order_id)
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        _place(order, ScriptedExchange())

    after = scrape()
    assert Order.objects.get(pk=order_id).status == Order.Status.SUBMITTED
    assert moved(before, after, "orders_placed_total") == 1
    assert moved(before, after, "orders_submit_latency_seconds_count") == 1
    assert moved(before, after, "orders_exchange_call_duration_seconds_count", outcome="accepted") == 1
    assert moved(before, after, "orders_unsettled") == -1


def test_failed_calls_count_retries_and_rejections_when_their_outcomes_commit(
    django_capture_on_commit_callbacks,
):
    retried, rejected = _resting(), _resting(side="sell", limit_price=Decimal("99.00"))
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        _place(retried, ScriptedExchange(failures=1))
        _place(rejected, ScriptedExchange(failures=1, error=OrderRejectedError))
        assert moved(before, scrape(), "orders_placement_retries_total") == 0  # not before the commit

    after = scrape()
    assert moved(before, after, "orders_placement_retries_total") == 1
    assert moved(before, after, "orders_failed_total", reason="rejected") == 1
    assert moved(before, after, "orders_failed_total", reason="deadline") == 0
    assert moved(before, after, "orders_exchange_call_duration_seconds_count", outcome="failed") == 1
    assert moved(before, after, "orders_exchange_call_duration_seconds_count", outcome="rejected") == 1
    assert moved(before, after, "orders_placed_total") == 0


def test_fills_are_counted_when_their_transaction_commits(django_capture_on_commit_callbacks):
    OrderFactory(side="sell", quantity=30, limit_price=Decimal("10.00"))
    OrderFactory(side="sell", quantity=30, limit_price=Decimal("10.00"))
    OrderFactory(side="buy", quantity=100, limit_price=Decimal("10.00"))
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        instrument_match_pending(isin=ISIN)

    assert moved(before, scrape(), "orders_matched_fills_total") == 2


def test_settled_orders_by_status_are_counted_at_most_once_a_minute(monkeypatch):
    monkeypatch.setattr(ops, "_settled_counts", None)
    OrderFactory(status=Order.Status.SUBMITTED, remaining_quantity=0, placed_quantity=100)
    OrderFactory(status=Order.Status.OPEN)

    first = scrape()
    OrderFactory(status=Order.Status.SUBMITTED, remaining_quantity=0, placed_quantity=100)
    OrderFactory(status=Order.Status.OPEN)
    second = scrape()

    assert value(first, "orders_by_status", status="SUBMITTED") == 1
    assert value(second, "orders_by_status", status="SUBMITTED") == 1  # cached
    assert (
        value(first, "orders_by_status", status="OPEN"),
        value(second, "orders_by_status", status="OPEN"),
    ) == (
        1,
        2,
    )


def test_database_gauges_report_down_without_failing_the_scrape(anonymous, monkeypatch):
    def cursor(self, *args, **kwargs):
        raise OperationalError(2006, "MySQL server has gone away")

    monkeypatch.setattr(type(connections["default"]), "cursor", cursor)

    samples = scrape(anonymous)

    assert value(samples, "orders_metrics_database_up") == 0
    assert value(samples, "orders_queue_up", broker="orm") == 0
    assert ("orders_unsettled", ()) not in samples


def test_fix_session_gauges_are_read_from_the_database(anonymous):
    from exchange.models import FixSession, OutboxMessage

    assert value(scrape(anonymous), "fix_session_logged_on") == 0
    FixSession.objects.create(name="BROKER-VENUE", status_at=timezone.now(), logged_on=True, next_inbound=5)
    OutboxMessage.objects.create(kind="status_request", cl_ord_id="x")
    samples = scrape(anonymous)
    assert value(samples, "fix_session_logged_on") == 1
    assert value(samples, "fix_session_next_inbound_seq") == 5
    assert value(samples, "fix_outbox_backlog") == 1
