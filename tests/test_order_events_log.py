"""The order event log (SPEC §10): one event per change a client sees, in the change's transaction."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from matching.services import instrument_match_pending
from orders import transitions
from orders.event_stream import PRUNED_CURSOR
from orders.events import events_batch, parse_duration
from orders.models import Order, OrderEvent, ReportCursor
from orders.services import order_create
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

ISIN = "US0378331005"
BODY = {"type": "limit", "side": "buy", "instrument": ISIN, "quantity": 10, "limit_price": "1.50"}


def events(order=None):
    rows = OrderEvent.objects.order_by("id")
    if order is not None:
        rows = rows.filter(order_id=order.pk)
    return [(event.name, event.status) for event in rows]


def test_accepted_order_has_one_event_showing_it_as_the_api_answered(api):
    response = api.post("/orders", BODY, format="json")

    assert response.status_code == 201
    event = OrderEvent.objects.get()
    assert (event.name, event.status, event.instrument, event.owner_id) == (
        "accepted",
        "OPEN",
        ISIN,
        api.user.pk,
    )
    assert json.loads(event.payload) == response.json()


def test_refused_and_replayed_orders_write_no_event(api):
    assert api.post("/orders", {**BODY, "quantity": 0}, format="json").status_code == 400
    body = {**BODY, "client_order_id": "once"}
    assert api.post("/orders", body, format="json").status_code == 201
    assert api.post("/orders", body, format="json").status_code == 200

    assert events() == [("accepted", "OPEN")]


def test_an_event_rolls_back_with_its_change(user):
    with pytest.raises(RuntimeError), transaction.atomic():
        order_create(owner=user, type="market", side="buy", instrument=ISIN, quantity=5)
        raise RuntimeError("the change does not commit")

    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()


def test_internal_matches_are_matched_when_full_and_partially_filled_otherwise():
    sell = OrderFactory(side="sell", quantity=100, limit_price=Decimal("10.00"))
    instrument_match_pending(isin=ISIN)  # the sell rests
    buy = OrderFactory(side="buy", quantity=60, limit_price=Decimal("10.50"))

    instrument_match_pending(isin=ISIN)

    assert events(buy) == [("matched", "MATCHED")]
    assert events(sell) == [("partially_filled", "PARTIAL")]
    payload = json.loads(OrderEvent.objects.get(order_id=sell.pk).payload)
    assert (payload["filled_quantity"], payload["remaining_quantity"]) == (60, 40)


def test_a_matching_pass_without_fills_writes_no_event():
    OrderFactory(side="sell", quantity=100, limit_price=Decimal("10.00"))
    OrderFactory(side="buy", quantity=100, limit_price=Decimal("9.00"))

    instrument_match_pending(isin=ISIN)

    assert events() == []


def test_cancel_in_the_book_is_one_event_and_a_refused_cancel_none(api):
    order = OrderFactory(owner=api.user)

    assert api.post(f"/orders/{order.pk}/cancel").status_code == 200
    assert api.post(f"/orders/{order.pk}/cancel").status_code == 409

    assert events(order) == [("cancelled", "CANCELLED")]
    assert json.loads(OrderEvent.objects.get().payload)["status"] == "CANCELLED"


def test_batch_compare_and_set_records_events_only_for_the_rows_that_moved():
    now = timezone.now()
    current = OrderFactory(in_flight=True, placement_attempts=2, remaining_quantity=10, quantity=10)
    stale = OrderFactory(in_flight=True, placement_attempts=3, remaining_quantity=10, quantity=10)

    moved = transitions.orders_accept([(current.pk, 2), (stale.pk, 2)], now)

    assert moved == 1
    assert events(current) == [("submitted", "SUBMITTED")]
    assert events(stale) == []
    assert transitions.order_fail(stale.pk, 1, reason="r", error="e", now=now) == 0
    assert transitions.order_fail(stale.pk, 3, reason="r", error="e", now=now) == 1
    assert events(stale) == [("failed", "FAILED")]


def test_events_recorded_in_a_batch_are_inserted_at_its_end_in_order():
    first = OrderFactory()
    second = OrderFactory()
    now = timezone.now()
    with transaction.atomic(), events_batch():
        transitions.order_cancel_in_book(first.pk, now)
        transitions.order_cancel_in_book(second.pk, now)
        assert not OrderEvent.objects.exists()

    assert list(OrderEvent.objects.values_list("order_id", flat=True)) == [first.pk, second.pk]


@pytest.mark.parametrize(
    ("before", "filled_before", "after", "filled_after", "expected"),
    [
        ("OPEN", 0, "SUBMITTED", 0, "submitted"),
        ("PARTIAL", 5, "SUBMITTED", 5, "submitted"),
        ("SUBMITTED", 0, "PARTIALLY_FILLED", 3, "partially_filled"),
        ("PARTIALLY_FILLED", 3, "PARTIALLY_FILLED", 6, "partially_filled"),
        ("PARTIALLY_FILLED", 6, "FILLED", 10, "filled"),
        ("SUBMITTED", 0, "EXPIRED", 0, "expired"),
        ("PENDING_CANCEL", 2, "CANCELLED", 2, "cancelled"),
        ("PENDING_CANCEL", 2, "PARTIALLY_FILLED", 2, "cancel_rejected"),
        ("OPEN", 0, "REJECTED", 0, "rejected"),
        ("SUBMITTED", 0, "SUBMITTED", 0, None),
        ("FILLED", 10, "FILLED", 10, None),
    ],
)
def test_venue_reports_are_named_by_what_changed(before, filled_before, after, filled_after, expected):
    order = OrderFactory.build(status=after, filled_quantity=filled_after)

    assert transitions._venue_event(before, filled_before, order) == expected


def test_prune_deletes_old_events_and_records_how_far(user):
    for _ in range(3):
        order_create(owner=user, type="market", side="buy", instrument=ISIN, quantity=5)
    old = list(OrderEvent.objects.order_by("id"))
    OrderEvent.objects.filter(id__in=[old[0].id, old[1].id]).update(
        created_at=timezone.now() - timedelta(days=8)
    )

    call_command("prune_order_events", "--older-than", "7d")

    assert list(OrderEvent.objects.values_list("id", flat=True)) == [old[2].id]
    assert ReportCursor.objects.get(name=PRUNED_CURSOR).position == old[1].id


@pytest.mark.parametrize("value", ["7", "d", "-1d", "1w", "1.5h", "٣d"])
def test_prune_refuses_a_duration_it_cannot_read(value):
    with pytest.raises(CommandError):
        call_command("prune_order_events", "--older-than", value)


def test_durations():
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("90m") == timedelta(minutes=90)
