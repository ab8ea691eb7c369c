"""``ordersite.db.insert_rows``: many new rows in one INSERT, values as ``save()`` would write them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.events import EVENT_COLUMNS
from orders.models import OrderEvent, PlacementAttempt
from ordersite import db
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_rows_go_in_with_one_statement_in_order_with_their_own_values():
    order = OrderFactory()
    when = timezone.now() - timedelta(minutes=1)
    events = [
        OrderEvent(
            order_id=order.pk,
            owner_id=order.owner_id,
            name=name,
            instrument=order.instrument,
            status=order.status,
            payload=payload,
            created_at=when + timedelta(seconds=n),
        )
        for n, (name, payload) in enumerate([("accepted", '{"a": 1}'), ("matched", 'it\'s "odd" ü')])
    ]

    with CaptureQueriesContext(connection) as queries:
        db.insert_rows(events, EVENT_COLUMNS)

    assert len(queries) == 1
    stored = list(OrderEvent.objects.order_by("id").values_list("name", "payload", "created_at", "order_id"))
    assert stored == [(e.name, e.payload, e.created_at, order.pk) for e in events]
    first, second = OrderEvent.objects.order_by("id").values_list("id", flat=True)
    assert second == first + 1  # one multi-row INSERT: consecutive ids (orders/event_stream.py relies on it)


def test_no_rows_is_no_statement():
    with CaptureQueriesContext(connection) as queries:
        db.insert_rows([], EVENT_COLUMNS)
    assert not queries


def test_without_fields_every_field_but_the_auto_key_goes_in_with_its_default():
    order = OrderFactory()
    when = timezone.now() - timedelta(minutes=1)
    attempts = [
        PlacementAttempt(order=order, number=1, quantity=5, started_at=when),  # outcome, error: defaults
        PlacementAttempt(
            order=order,
            number=2,
            quantity=3,
            started_at=when,
            finished_at=when + timedelta(seconds=1),
            outcome=PlacementAttempt.Outcome.ACCEPTED,
            error='it\'s "odd"',
        ),
    ]

    with CaptureQueriesContext(connection) as queries:
        db.insert_rows(attempts)

    assert len(queries) == 1
    columns = ["order_id", "number", "quantity", "started_at", "finished_at", "outcome", "error"]
    stored = list(PlacementAttempt.objects.order_by("id").values_list(*columns))
    assert stored == [tuple(getattr(attempt, name) for name in columns) for attempt in attempts]
    assert stored[0][5:] == (PlacementAttempt.Outcome.IN_FLIGHT, "")
    first, second = PlacementAttempt.objects.order_by("id").values_list("id", flat=True)
    assert second == first + 1
