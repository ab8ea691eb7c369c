"""The sweeper re-drives orders whose push, timer or worker was lost (SPEC §4)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from exchange.models import ExchangeOrder
from matching.services import instrument_match_pending
from orders.models import Order
from orders.pipeline import pipeline_sweep
from orders.placement import placement_claim
from orders.plans import RoutePlan
from tests.factories import OrderFactory
from tests.pipeline_helpers import assert_invariants, wait_until_settled

pytestmark = pytest.mark.django_db(transaction=True)


def _later(seconds=3600):
    return timezone.now() + timedelta(seconds=seconds)


def test_order_whose_queued_task_was_lost_is_matched_and_placed(dispatcher):
    order = OrderFactory()
    OrmQ.objects.all().delete()  # the broker lost the push

    report = pipeline_sweep(now=_later())

    assert report.rematched_instruments == [order.instrument]
    assert dispatcher.wait_idle(timeout=20)
    assert wait_until_settled(timeout=10) == []
    order.refresh_from_db()
    assert order.status == Order.Status.SUBMITTED
    assert_invariants()


def test_overdue_resting_order_whose_timer_was_lost_is_placed(dispatcher):
    order = OrderFactory()
    OrmQ.objects.all().delete()
    instrument_match_pending(isin=order.instrument)  # matched, but its plan went nowhere

    report = pipeline_sweep(now=_later())

    assert report.overdue == 1
    assert dispatcher.wait_idle(timeout=20)
    order.refresh_from_db()
    assert order.status == Order.Status.SUBMITTED


def test_call_lost_in_flight_is_resent_and_placed_once(dispatcher):
    order = OrderFactory()
    OrmQ.objects.all().delete()
    instrument_match_pending(isin=order.instrument)
    plan = RoutePlan(order_id=order.pk, instrument=order.instrument, route_at=timezone.now())
    (claim,), _ = placement_claim(plans=[plan])
    from exchange.gateway import SimulatedExchange

    SimulatedExchange(latency=0, failure_rate=0).place_order(claim.order)  # accepted; worker killed

    report = pipeline_sweep(now=_later())

    assert report.lost_in_flight == 1
    assert dispatcher.wait_idle(timeout=20)
    order.refresh_from_db()
    assert (order.status, order.placed_quantity) == (Order.Status.SUBMITTED, 100)
    assert ExchangeOrder.objects.filter(order_id=order.pk).count() == 1
    assert_invariants()


def test_sweep_leaves_orders_making_progress_alone(dispatcher):
    OrderFactory()

    report = pipeline_sweep()

    assert (report.rematched_instruments, report.overdue, report.lost_in_flight) == ([], 0, 0)
