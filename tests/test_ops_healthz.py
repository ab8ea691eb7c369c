"""/healthz: the database, the queue, the backlog; 503 when the service cannot work."""

from datetime import timedelta

import pytest
from django.db import OperationalError, connections
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from exchange.models import FixSession, OutboxMessage
from orders import ops
from orders.models import Order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def database_down(monkeypatch):
    """Every new cursor fails as with a lost server; the test database itself stays up."""

    def cursor(self, *args, **kwargs):
        raise OperationalError(2006, "MySQL server has gone away")

    monkeypatch.setattr(type(connections["default"]), "cursor", cursor)


class FakeRedisBroker:
    def __init__(self, depth=0, error=None):
        self.depth, self.error = depth, error

    def ping(self):
        if self.error:
            raise self.error
        return True

    def queue_size(self):
        return self.depth


def test_healthz_reports_each_check_the_queue_depth_and_the_oldest_unsettled_order(anonymous):
    hour_ago = timezone.now() - timedelta(hours=1)
    OrderFactory(created_at=hour_ago)
    OrderFactory(status=Order.Status.PARTIAL)
    OrderFactory(status=Order.Status.SUBMITTED, created_at=hour_ago - timedelta(hours=1))

    response = anonymous.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["queue"] == {"status": "ok", "broker": "orm"}
    assert body["queue_depth"] == OrmQ.objects.count() == 3
    assert body["unsettled_orders"] == 2
    assert 3600 <= body["oldest_unsettled_age_seconds"] < 3700
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_without_working_orders_has_no_oldest_age(anonymous):
    OrderFactory(status=Order.Status.MATCHED)

    body = anonymous.get("/healthz").json()

    assert (body["unsettled_orders"], body["oldest_unsettled_age_seconds"]) == (0, None)


def test_healthz_is_five_indexed_queries(anonymous, django_assert_max_num_queries):
    FixSession.objects.create(name="BROKER-VENUE", status_at=timezone.now(), logged_on=True)
    with django_assert_max_num_queries(5):
        assert anonymous.get("/healthz").status_code == 200


def test_healthz_is_503_when_the_database_fails(anonymous, database_down):
    response = anonymous.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"status": "error", "error": "OperationalError"}
    # The ORM broker lives in the same database: not asked again, reported down.
    assert body["checks"]["queue"]["status"] == "error"
    assert (body["queue_depth"], body["oldest_unsettled_age_seconds"]) == (None, None)
    assert "gone away" not in response.content.decode()  # details go to the log only


def test_healthz_is_503_when_the_redis_broker_does_not_answer(anonymous, settings, monkeypatch):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": "redis://127.0.0.1:1/0"}
    settings.Q_CLUSTER.pop("orm", None)
    monkeypatch.setattr(ops, "_redis_broker", lambda: FakeRedisBroker(error=ConnectionError("refused")))

    response = anonymous.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["queue"] == {"status": "error", "broker": "redis", "error": "ConnectionError"}


def test_healthz_reports_the_redis_queue_depth(anonymous, settings, monkeypatch):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": "redis://127.0.0.1:1/0"}
    settings.Q_CLUSTER.pop("orm", None)
    monkeypatch.setattr(ops, "_redis_broker", lambda: FakeRedisBroker(depth=7))

    response = anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.json()["queue_depth"] == 7


def test_healthz_only_answers_reads(anonymous):
    assert anonymous.post("/healthz").status_code == 405


def test_healthz_reports_the_fix_session_without_failing_on_it(anonymous):
    body = anonymous.get("/healthz").json()
    assert body["fix_session"] == {"status": "not_running"}

    FixSession.objects.create(
        name="BROKER-VENUE", status_at=timezone.now(), logged_on=True, next_inbound=12, next_outbound=9
    )
    OutboxMessage.objects.create(kind="status_request", cl_ord_id="x")
    body = anonymous.get("/healthz").json()
    assert body["fix_session"]["status"] == "logged_on"
    assert body["fix_session"]["next_inbound_seq"] == 12
    assert body["fix_session"]["outbox_backlog"] == 1

    # The gateway stopped writing its status: not running, and the web stays up.
    FixSession.objects.update(status_at=timezone.now() - timedelta(minutes=5))
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["fix_session"]["status"] == "not_running"
