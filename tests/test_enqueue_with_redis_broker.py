"""With a Redis broker the push cannot join the order's transaction: it waits for the commit."""

import pytest
from django.db import transaction
from django_q.models import OrmQ

from orders.services import order_create
from orders.tasks import PROCESS_ORDER_TASK

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_configured(settings):
    # Only the decision in enqueue_order_processing reads this; django-q2 keeps the
    # broker it was imported with (the ORM one here), which lets the test see the push.
    settings.Q_CLUSTER = {key: value for key, value in settings.Q_CLUSTER.items() if key != "orm"}
    settings.Q_CLUSTER["redis"] = "redis://127.0.0.1:6379/0"


def test_push_waits_for_the_commit(redis_configured, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            order, created = order_create(
                owner=user, type="market", side="buy", instrument="US0378331005", quantity=5
            )
            assert not OrmQ.objects.exists()  # nothing pushed inside the transaction

    assert created and len(callbacks) == 1
    queued = OrmQ.objects.get()
    assert queued.func() == PROCESS_ORDER_TASK
    assert list(queued.args()) == [str(order.pk), order.instrument, 0]


def test_rolled_back_order_is_never_pushed(redis_configured, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            order_create(owner=user, type="market", side="buy", instrument="US0378331005", quantity=5)
            raise RuntimeError("the request failed after the insert")

    assert callbacks == []
    assert not OrmQ.objects.exists()


@pytest.fixture
def redis_unreachable(redis_configured, monkeypatch):
    """A real Redis broker whose server is down: nothing listens on the port."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)  # set only with the ORM broker, as in settings
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")


def test_order_is_201_and_stored_when_redis_is_down_and_the_sweeper_picks_it_up(
    redis_unreachable, api, django_capture_on_commit_callbacks, caplog
):
    from datetime import timedelta

    from django.utils import timezone

    from orders.models import Order
    from orders.pipeline import pipeline_sweep

    body = {"type": "market", "side": "buy", "instrument": "US0378331005", "quantity": 5}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/orders", body, format="json")

    assert response.status_code == 201, response.content
    order = Order.objects.get(pk=response.json()["id"])
    assert order.needs_match
    assert f"order {order.pk}: stored, but queueing its processing failed" in caplog.text

    report = pipeline_sweep(now=timezone.now() + timedelta(hours=1))
    assert report.rematched_instruments == [order.instrument]
