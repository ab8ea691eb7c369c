"""Exchange calls for different orders run at the same time, not one per worker (SPEC §6)."""

import pytest

from orders.models import Order
from orders.pipeline import order_process
from tests.factories import VALID_ISINS, OrderFactory
from tests.pipeline_helpers import ConcurrencyProbe, assert_invariants

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_worker_process_keeps_many_exchange_calls_in_flight(dispatcher, settings):
    settings.EXCHANGE_BACKEND = "tests.pipeline_helpers.ConcurrencyProbe"
    settings.EXCHANGE_LATENCY = 0.3
    ConcurrencyProbe.peak = 0
    orders = [OrderFactory(instrument=isin, side="buy") for isin in VALID_ISINS for _ in range(4)]

    for order in orders:  # as the one worker would, task after task
        order_process(order_id=order.pk, instrument=order.instrument)

    assert dispatcher.wait_idle(timeout=60)
    assert Order.objects.filter(status=Order.Status.SUBMITTED).count() == len(orders)
    assert ConcurrencyProbe.peak > 1
    assert_invariants()
