"""Every loop of the placement dispatcher survives any exception and says so in the log (issue 8)."""

import logging

import pytest

from orders import placement
from orders.dispatcher import PlacementDispatcher
from orders.models import Order
from orders.pipeline import order_process
from tests.factories import OrderFactory
from tests.pipeline_helpers import assert_invariants

pytestmark = pytest.mark.django_db(transaction=True)


class ExchangeThatFailsToStartOnce:
    """An exchange backend whose first construction raises (a misconfiguration fixed meanwhile)."""

    built = 0

    def __new__(cls, **kwargs):
        from exchange.gateway import SimulatedExchange

        cls.built += 1
        if cls.built == 1:
            raise RuntimeError("exchange backend not reachable")
        return SimulatedExchange(**kwargs)


@pytest.fixture
def fresh_dispatcher(monkeypatch):
    from orders import dispatcher as module

    dispatcher = PlacementDispatcher(concurrency=4)
    monkeypatch.setattr(module, "_dispatcher", dispatcher)
    monkeypatch.setattr(module, "ERROR_RETRY_SECONDS", 0.05)
    return dispatcher


def test_timer_survives_an_exchange_that_cannot_be_built(fresh_dispatcher, settings, caplog):
    settings.EXCHANGE_BACKEND = f"{__name__}.ExchangeThatFailsToStartOnce"
    ExchangeThatFailsToStartOnce.built = 0
    order = OrderFactory()

    order_process(order_id=order.pk, instrument=order.instrument)

    assert fresh_dispatcher.wait_idle(timeout=30)
    order.refresh_from_db()
    assert order.status == Order.Status.SUBMITTED
    assert "exchange backend not reachable" in caplog.text
    assert_invariants()


def test_recorder_survives_an_unexpected_error_and_asks_the_exchange(fresh_dispatcher, monkeypatch, caplog):
    real_record = placement.placement_record
    calls = {"n": 0}

    def record_failing_once(outcomes):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("bug while recording")
        return real_record(outcomes)

    monkeypatch.setattr(placement, "placement_record", record_failing_once)
    monkeypatch.setattr(placement, "UNKNOWN_RETRY_SECONDS", 0.05)
    orders = [OrderFactory() for _ in range(3)]

    for order in orders:
        order_process(order_id=order.pk, instrument=order.instrument)

    assert fresh_dispatcher.wait_idle(timeout=30)
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {Order.Status.SUBMITTED}
    assert "bug while recording" in caplog.text
    assert_invariants()


def test_a_loop_step_raising_is_logged_and_the_loop_goes_on(fresh_dispatcher, monkeypatch, caplog):
    from orders import dispatcher as module

    original = PlacementDispatcher._claim_and_call
    raised = {"done": False}

    def claim_raising_once(self, plans):
        if not raised["done"]:
            raised["done"] = True
            self._release_slots(len(plans))
            self._settled(len(plans))
            raise RuntimeError("unexpected in the timer")
        return original(self, plans)

    monkeypatch.setattr(PlacementDispatcher, "_claim_and_call", claim_raising_once)
    monkeypatch.setattr(module, "LOOP_ERROR_PAUSE", 0.01)
    caplog.set_level(logging.ERROR, logger="orders.dispatcher")
    first = OrderFactory()

    order_process(order_id=first.pk, instrument=first.instrument)
    assert fresh_dispatcher.wait_idle(timeout=10)
    # Created after the first pass: a pass takes every instrument with orders waiting.
    second = OrderFactory(instrument="DE000BAY0017")
    order_process(order_id=second.pk, instrument=second.instrument)
    assert fresh_dispatcher.wait_idle(timeout=30)

    second.refresh_from_db()
    assert second.status == Order.Status.SUBMITTED  # the timer is still alive
    assert "placement-timer: unexpected error; carrying on" in caplog.text
