"""The 500 contract of POST /orders: one fixed body, and nothing half-stored (SPEC §3).

The database stays real; only the insert or the queueing is made to fail.
"""

import pytest
from django.db import DatabaseError, IntegrityError, OperationalError
from django_q.models import OrmQ
from rest_framework.test import APIClient

import orders.signals
from orders.errors import INTERNAL_ERROR
from orders.models import Order
from tests.factories import TokenFactory

ISIN = "US0378331005"
PAYLOAD = {
    "type": "limit",
    "side": "buy",
    "instrument": ISIN,
    "limit_price": "10.00",
    "quantity": 5,
}

FAILURES = [
    OperationalError("(2006, 'MySQL server has gone away')"),
    DatabaseError("deadlock"),
    IntegrityError("(1452, 'foreign key constraint fails')"),
    RuntimeError("a bug"),
    KeyError("a bug"),
]
FAILURE_IDS = [type(exc).__name__ for exc in FAILURES]


@pytest.fixture
def quiet_api(user):
    """A client that gets the 500 response instead of the test re-raising the exception."""
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {TokenFactory(user=user).key}")
    client.user = user
    return client


def raiser(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


def assert_nothing_stored():
    assert Order.objects.count() == 0
    assert OrmQ.objects.count() == 0


@pytest.mark.parametrize("exc", FAILURES, ids=FAILURE_IDS)
@pytest.mark.parametrize("client_order_id", [None, "retry-me"])
def test_failing_insert_is_500_with_the_fixed_body(quiet_api, monkeypatch, exc, client_order_id):
    monkeypatch.setattr("orders.services.Order.save", raiser(exc))
    payload = {**PAYLOAD, "client_order_id": client_order_id}

    response = quiet_api.post("/orders", payload, format="json")

    assert response.status_code == 500
    assert response.json() == {"message": INTERNAL_ERROR}
    assert_nothing_stored()


@pytest.mark.parametrize("exc", FAILURES, ids=FAILURE_IDS)
def test_failing_queueing_is_500_and_rolls_the_order_back(quiet_api, monkeypatch, exc):
    monkeypatch.setattr("orders.signals.enqueue_order_processing", raiser(exc))

    response = quiet_api.post("/orders", PAYLOAD, format="json")

    assert response.status_code == 500
    assert response.json() == {"message": INTERNAL_ERROR}
    assert_nothing_stored()


def test_queue_row_rolls_back_with_the_order(quiet_api, monkeypatch):
    """The queue row is written, then the transaction fails: neither row survives."""
    real_enqueue = orders.signals.enqueue_order_processing

    def enqueue_then_fail(order_id, instrument):
        real_enqueue(order_id, instrument)
        assert OrmQ.objects.count() == 1  # written inside the order's transaction
        raise OperationalError("connection lost before commit")

    monkeypatch.setattr("orders.signals.enqueue_order_processing", enqueue_then_fail)

    response = quiet_api.post("/orders", PAYLOAD, format="json")

    assert response.status_code == 500
    assert response.json() == {"message": INTERNAL_ERROR}
    assert_nothing_stored()


def test_internal_error_does_not_leak_details(quiet_api, monkeypatch):
    monkeypatch.setattr(
        "orders.services.Order.save",
        raiser(OperationalError("secret-dsn root@db-host")),
    )

    response = quiet_api.post("/orders", PAYLOAD, format="json")

    assert response.status_code == 500
    assert "secret-dsn" not in response.content.decode()
    assert response["Content-Type"].startswith("application/json")


def test_failure_is_logged_for_on_call(quiet_api, monkeypatch, caplog):
    monkeypatch.setattr("orders.services.Order.save", raiser(RuntimeError("boom")))

    quiet_api.post("/orders", PAYLOAD, format="json")

    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


def test_the_api_works_again_after_a_failure(quiet_api, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr("orders.signals.enqueue_order_processing", raiser(OperationalError("down")))
        failed = quiet_api.post("/orders", {**PAYLOAD, "client_order_id": "k1"}, format="json")

    retried = quiet_api.post("/orders", {**PAYLOAD, "client_order_id": "k1"}, format="json")

    assert failed.status_code == 500
    assert retried.status_code == 201, retried.content
    assert Order.objects.count() == 1
    assert OrmQ.objects.count() == 1


def test_failure_outside_drf_exception_handling_has_the_same_body(quiet_api, monkeypatch):
    # initialize_request runs before DRF's try/except: Django's handler500 answers.
    monkeypatch.setattr(
        "orders.api.views.OrderViewSet.initialize_request",
        raiser(RuntimeError("early bug")),
    )

    response = quiet_api.post("/orders", PAYLOAD, format="json")

    assert response.status_code == 500
    assert response.json() == {"message": INTERNAL_ERROR}
    assert_nothing_stored()
