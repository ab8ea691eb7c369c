"""IOC and FOK orders never rest in the internal book (SPEC §9); FOK is never crossed in part here."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from matching.models import OrderMatch
from matching.services import instrument_match_pending
from orders.models import Order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

ISIN = "US0378331005"


def _limit(side, quantity, price, tif="day"):
    return OrderFactory(side=side, quantity=quantity, limit_price=Decimal(price), time_in_force=tif)


@pytest.mark.parametrize("tif", ["ioc", "fok"])
def test_immediate_order_is_due_at_the_venue_at_once(settings, tif):
    settings.MATCHING_WINDOW = 30
    before = timezone.now()
    order = _limit("buy", 100, "10.00", tif)

    (plan,) = instrument_match_pending(isin=ISIN)

    assert plan.order_id == order.pk
    assert plan.route_at <= before + timedelta(seconds=1)


def test_ioc_takes_what_crosses_in_the_book_and_sends_the_rest_at_once():
    sell = _limit("sell", 40, "9.00")
    instrument_match_pending(isin=ISIN)
    buy = _limit("buy", 100, "10.00", "ioc")

    (plan,) = instrument_match_pending(isin=ISIN)

    buy.refresh_from_db()
    assert (buy.status, buy.matched_quantity, buy.remaining_quantity) == (Order.Status.PARTIAL, 40, 60)
    assert plan.order_id == buy.pk
    assert OrderMatch.objects.get().sell_order_id == sell.pk


def test_fok_is_never_crossed_internally_even_when_the_book_could_fill_it():
    _limit("sell", 100, "9.00")
    instrument_match_pending(isin=ISIN)
    buy = _limit("buy", 100, "10.00", "fok")

    instrument_match_pending(isin=ISIN)

    buy.refresh_from_db()
    assert (buy.status, buy.matched_quantity) == (Order.Status.OPEN, 0)
    assert not OrderMatch.objects.exists()


@pytest.mark.parametrize("tif", ["ioc", "fok"])
def test_a_later_order_never_takes_an_immediate_order_waiting_for_the_venue(settings, tif):
    waiting = _limit("sell", 100, "9.00", tif)
    instrument_match_pending(isin=ISIN)
    _limit("buy", 100, "10.00")

    instrument_match_pending(isin=ISIN)

    waiting.refresh_from_db()
    assert waiting.matched_quantity == 0
    assert not OrderMatch.objects.exists()
