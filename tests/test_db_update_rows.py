"""``ordersite.db.update_rows``: many rows' own values in one UPDATE, as ``save()`` would write them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order
from ordersite import db
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_nulls_decimals_and_datetimes_included(monkeypatch):
    monkeypatch.setattr(db, "UPDATE_ROWS_CHUNK", 2)  # three rows: two statements
    first, second, third, untouched = (OrderFactory() for _ in range(4))
    later = timezone.now() + timedelta(minutes=5)
    first.filled_notional, first.route_at, first.in_flight = Decimal("123.4500"), later, True
    second.filled_notional, second.route_at, second.failure_reason = Decimal("0.0001"), None, 'it\'s "odd"'
    third.status, third.updated_at = Order.Status.FILLED, later
    fields = ("status", "filled_notional", "route_at", "in_flight", "failure_reason", "updated_at")

    with CaptureQueriesContext(connection) as queries:
        assert db.update_rows([first, second, third], fields) == 3

    assert len(queries) == 2
    for order in (first, second, third):
        stored = Order.objects.get(pk=order.pk)
        assert [getattr(stored, name) for name in fields] == [getattr(order, name) for name in fields]
    assert Order.objects.get(pk=untouched.pk).updated_at == untouched.updated_at


def test_no_rows_is_no_statement():
    with CaptureQueriesContext(connection) as queries:
        assert db.update_rows([], ("status",)) == 0
    assert not queries
