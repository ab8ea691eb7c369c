"""Matching on MySQL: rows in, fills and order updates out, under the instrument lock."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from matching import services
from matching.models import OrderMatch
from matching.services import instrument_match_pending
from orders.models import Order
from orders.pipeline import order_process
from ordersite.db import _compiled
from tests.factories import OrderFactory
from tests.pipeline_helpers import assert_invariants

pytestmark = pytest.mark.django_db

ISIN = "US0378331005"


def _order(side, quantity, price=None, *, seconds=0, **kwargs):
    created = timezone.now() - timedelta(seconds=100 - seconds)
    if price is None:
        return OrderFactory(side=side, quantity=quantity, market=True, created_at=created, **kwargs)
    return OrderFactory(
        side=side, quantity=quantity, limit_price=Decimal(price), created_at=created, **kwargs
    )


def _refresh(*orders):
    for order in orders:
        order.refresh_from_db()


def test_crossing_limit_orders_write_one_match_and_update_both():
    sell = _order("sell", 100, "10.00", seconds=1)
    buy = _order("buy", 60, "10.50", seconds=2)

    instrument_match_pending(isin=ISIN)

    _refresh(sell, buy)
    match = OrderMatch.objects.get()
    assert (match.buy_order_id, match.sell_order_id) == (buy.pk, sell.pk)
    assert (match.quantity, match.price, match.instrument) == (60, Decimal("10.00"), ISIN)
    assert (buy.status, buy.matched_quantity, buy.remaining_quantity) == (Order.Status.MATCHED, 60, 0)
    assert (sell.status, sell.matched_quantity, sell.remaining_quantity) == (Order.Status.PARTIAL, 60, 40)
    assert buy.average_match_price == Decimal("10.00")
    assert_invariants()


def test_incoming_order_takes_best_price_then_earliest():
    expensive = _order("sell", 10, "10.20", seconds=1)
    cheap_late = _order("sell", 10, "10.00", seconds=3)
    cheap_early = _order("sell", 10, "10.00", seconds=2)
    instrument_match_pending(isin=ISIN)  # the sells rest
    buy = _order("buy", 25, "10.20", seconds=4)

    instrument_match_pending(isin=ISIN)

    fills = list(OrderMatch.objects.order_by("id").values_list("sell_order_id", "quantity", "price"))
    assert fills == [
        (cheap_early.pk, 10, Decimal("10.00")),
        (cheap_late.pk, 10, Decimal("10.00")),
        (expensive.pk, 5, Decimal("10.20")),
    ]
    _refresh(buy)
    assert buy.matched_notional == Decimal("251.00")
    assert_invariants()


def test_market_order_trades_at_the_resting_limit_price():
    sell = _order("sell", 10, "9.90", seconds=1)
    buy = _order("buy", 10, None, seconds=2)

    instrument_match_pending(isin=ISIN)

    assert OrderMatch.objects.get().price == Decimal("9.90")
    _refresh(sell, buy)
    assert sell.status == buy.status == Order.Status.MATCHED


def test_resting_market_order_trades_at_the_incoming_limit_price():
    buy = _order("buy", 10, None, seconds=1)
    instrument_match_pending(isin=ISIN)
    _order("sell", 10, "11.00", seconds=2)

    instrument_match_pending(isin=ISIN)

    assert OrderMatch.objects.get().price == Decimal("11.00")
    _refresh(buy)
    assert buy.status == Order.Status.MATCHED


def test_market_orders_never_cross_each_other():
    buy = _order("buy", 10, None, seconds=1)
    sell = _order("sell", 10, None, seconds=2)

    plans = instrument_match_pending(isin=ISIN)

    assert not OrderMatch.objects.exists()
    _refresh(buy, sell)
    assert buy.status == sell.status == Order.Status.OPEN
    assert {plan.order_id for plan in plans} == {buy.pk, sell.pk}


def test_order_left_over_rests_for_the_matching_window(settings):
    settings.MATCHING_WINDOW = 0.5
    order = _order("buy", 10, "10.00")
    before = timezone.now()

    (plan,) = instrument_match_pending(isin=ISIN)

    order.refresh_from_db()
    assert not order.needs_match
    assert plan.order_id == order.pk
    assert before + timedelta(seconds=0.5) <= order.route_at == plan.route_at
    assert order.route_at <= timezone.now() + timedelta(seconds=0.5)


def test_cancelled_failed_and_in_flight_orders_are_not_in_the_book():
    _order(
        "sell", 10, "10.00", seconds=1, status=Order.Status.CANCELLED, remaining_quantity=0, needs_match=False
    )
    _order(
        "sell", 10, "10.00", seconds=2, status=Order.Status.FAILED, remaining_quantity=0, needs_match=False
    )
    _order("sell", 10, "10.00", seconds=3, in_flight=True, needs_match=False)
    buy = _order("buy", 10, "10.00", seconds=4)

    instrument_match_pending(isin=ISIN)

    assert not OrderMatch.objects.exists()
    buy.refresh_from_db()
    assert buy.status == Order.Status.OPEN


def test_orders_of_different_instruments_never_cross():
    _order("sell", 10, "10.00", seconds=1, instrument="DE000BAY0017")
    buy = _order("buy", 10, "10.00", seconds=2)

    instrument_match_pending(isin=ISIN)

    assert not OrderMatch.objects.exists()
    buy.refresh_from_db()
    assert buy.needs_match is False


def test_processing_an_order_twice_changes_nothing():
    sell = _order("sell", 10, "10.00", seconds=1)
    _order("buy", 4, "10.00", seconds=2)

    order_process(order_id=sell.pk)
    snapshot = list(Order.objects.order_by("pk").values())
    order_process(order_id=sell.pk)

    assert list(Order.objects.order_by("pk").values()) == snapshot
    assert OrderMatch.objects.count() == 1


OTHER = "DE000BAY0017"
THIRD = "GB0002634946"


def test_a_pass_takes_every_instrument_with_orders_awaiting_a_match(django_capture_on_commit_callbacks):
    sells = [_order("sell", 10, "10.00", seconds=1, instrument=isin) for isin in (ISIN, OTHER, THIRD)]
    instrument_match_pending(isin=ISIN)  # the sells rest, all three
    buys = [_order("buy", 10, "10.00", seconds=2, instrument=isin) for isin in (ISIN, OTHER, THIRD)]

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        plans = instrument_match_pending(isin=OTHER)

    _refresh(*sells, *buys)
    assert plans == []  # nothing left resting
    assert {order.status for order in (*sells, *buys)} == {Order.Status.MATCHED}
    assert sorted(OrderMatch.objects.values_list("instrument", flat=True)) == sorted([ISIN, OTHER, THIRD])
    # One pass, whatever the number of instruments: which ones await, BEGIN, their locks,
    # the book's ids, its rows locked, the fills, the orders, the events, COMMIT.
    assert len(queries) == 9, "\n".join(q["sql"][:70] for q in queries.captured_queries)
    # Their own tasks find their orders taken and ask nothing.
    with CaptureQueriesContext(connection) as queries:
        for buy in buys:
            order_process(order_id=buy.pk, instrument=buy.instrument, attempts=buy.placement_attempts)
    assert len(queries) == 0
    assert_invariants()


def test_a_pass_whose_instrument_has_nothing_waiting_still_takes_the_others():
    sell = _order("sell", 10, "10.00", seconds=1, instrument=OTHER)
    buy = _order("buy", 10, "10.00", seconds=2, instrument=OTHER)

    instrument_match_pending(isin=ISIN)

    _refresh(sell, buy)
    assert (sell.status, buy.status) == (Order.Status.MATCHED, Order.Status.MATCHED)


def test_a_pass_over_many_instruments_always_includes_its_own(monkeypatch):
    monkeypatch.setattr(services, "PASS_INSTRUMENTS", 2)
    mine = _order("buy", 10, "10.00", seconds=1, instrument=THIRD)
    for isin in (ISIN, OTHER):
        _order("buy", 10, "10.00", seconds=2, instrument=isin)
    _compiled.clear()  # the cap is compiled into the query

    instrument_match_pending(isin=THIRD)

    mine.refresh_from_db()
    assert mine.needs_match is False
    # One more instrument at most: PASS_INSTRUMENTS in all.
    assert Order.objects.filter(needs_match=True).count() == 1
    _compiled.clear()
