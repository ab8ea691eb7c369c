"""``order_reprocess`` asks the exchange first (SPEC §6): a FAILED order it holds never works again."""

import pytest

from exchange.models import ExchangeOrder
from orders.errors import ExchangeStatusUnknown, OrderNotReprocessable
from orders.models import Order
from orders.services import order_reprocess
from tests.factories import ExchangeOrderFactory, FailedOrderFactory, OrderFactory
from tests.pipeline_helpers import ScriptedExchange

pytestmark = pytest.mark.django_db


def test_failed_order_the_exchange_does_not_hold_goes_back_to_work():
    order = FailedOrderFactory(quantity=100, matched_quantity=30)

    order = order_reprocess(order=order, exchange=ScriptedExchange())

    assert (order.status, order.remaining_quantity, order.needs_match) == (Order.Status.PARTIAL, 70, True)
    assert order.failure_reason == ""


def test_failed_order_the_exchange_holds_is_reconciled_not_reprocessed(caplog):
    order = FailedOrderFactory(quantity=100, matched_quantity=30)
    ExchangeOrderFactory(order_id=order.pk, quantity=70)

    order = order_reprocess(order=order, exchange=ScriptedExchange())

    assert (order.status, order.placed_quantity, order.remaining_quantity) == (Order.Status.SUBMITTED, 70, 0)
    assert not order.needs_match and not order.in_flight
    assert ExchangeOrder.objects.filter(order_id=order.pk).count() == 1
    assert "reconciled to SUBMITTED" in caplog.text
    assert order.matched_quantity + order.placed_quantity + order.remaining_quantity == order.quantity


def test_no_answer_from_the_exchange_leaves_the_order_failed():
    order = FailedOrderFactory(quantity=100)

    with pytest.raises(ExchangeStatusUnknown, match="could not say whether it holds the order"):
        order_reprocess(order=order, exchange=ScriptedExchange(status_failures=1))

    order.refresh_from_db()
    assert (order.status, order.remaining_quantity) == (Order.Status.FAILED, 0)


def test_order_that_is_not_failed_is_refused_without_asking_the_exchange():
    order = OrderFactory()
    exchange = ScriptedExchange()

    with pytest.raises(OrderNotReprocessable):
        order_reprocess(order=order, exchange=exchange)

    assert exchange.status_calls == 0
