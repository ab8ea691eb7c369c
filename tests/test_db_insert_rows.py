"""``ordersite.db.insert_rows``: many new rows in one INSERT, values as ``save()`` would write them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.events import EVENT_COLUMNS
from orders.models import OrderEvent
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
