"""``ordersite.db.compiled_rows``: a queryset's SQL compiled once per key, run afresh every call."""

import pytest

from orders.models import Order
from ordersite import db
from tests.factories import VALID_ISINS, OrderFactory

pytestmark = pytest.mark.django_db


def test_each_key_compiles_once_and_every_call_reads_the_rows_as_they_are_now():
    first_isin, second_isin = VALID_ISINS[0], VALID_ISINS[1]
    built = []

    def orders_of(isin):
        def factory():
            built.append(isin)
            return Order.objects.filter(instrument=isin).order_by("pk").values_list("quantity")

        return db.compiled_rows(("test quantities", isin), factory)

    OrderFactory(instrument=first_isin, quantity=1)
    assert list(orders_of(first_isin)) == [(1,)]
    OrderFactory(instrument=first_isin, quantity=2)
    OrderFactory(instrument=second_isin, quantity=3)

    assert sorted(orders_of(first_isin)) == [(1,), (2,)]  # new rows: the SQL is kept, not the answer
    assert list(orders_of(second_isin)) == [(3,)]  # another key, another query
    assert built == [first_isin, second_isin]
