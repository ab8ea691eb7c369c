"""A processing task whose order this worker's own pass already took does nothing, and asks nothing.

Each wait of an order for a matching pass has its own ``placement_attempts`` (its
arrival, then each return to the book after an attempt), and the task names it; a
pass remembers, once committed, which orders it took in which wait.
"""

from decimal import Decimal

import pytest
from django.db import transaction

from matching.services import instrument_match_pending
from orders.models import Order
from orders.pipeline import order_process
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

ISIN = "US0378331005"


@pytest.fixture
def two_arrivals():
    return (
        OrderFactory(side="sell", quantity=10, limit_price=Decimal("10.00")),
        OrderFactory(side="buy", quantity=4, limit_price=Decimal("9.00")),
    )


def test_the_second_arrivals_task_is_done_by_the_first_ones_pass(
    two_arrivals, django_capture_on_commit_callbacks, django_assert_num_queries
):
    first, second = two_arrivals
    with django_capture_on_commit_callbacks(execute=True):
        order_process(order_id=str(first.pk), instrument=ISIN, attempts=0)
    assert not Order.objects.filter(needs_match=True).exists()  # one pass took both

    with django_assert_num_queries(0):
        order_process(order_id=str(second.pk), instrument=ISIN, attempts=0)


def test_back_in_the_book_after_an_attempt_its_task_runs_a_pass(
    two_arrivals, django_capture_on_commit_callbacks
):
    first, second = two_arrivals
    with django_capture_on_commit_callbacks(execute=True):
        instrument_match_pending(isin=ISIN)
    # Attempt 1 was refused: back to the book, waiting for a pass again, its task queued with 1.
    Order.objects.filter(pk=second.pk).update(placement_attempts=1, needs_match=True)

    with django_capture_on_commit_callbacks(execute=True):
        order_process(order_id=str(second.pk), instrument=ISIN, attempts=1)

    second.refresh_from_db()
    assert second.needs_match is False


def test_a_pass_that_rolled_back_is_not_remembered(two_arrivals, django_capture_on_commit_callbacks):
    first, second = two_arrivals
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            instrument_match_pending(isin=ISIN)
            raise RuntimeError("the pass's transaction failed")

    with django_capture_on_commit_callbacks(execute=True):
        order_process(order_id=str(second.pk), instrument=ISIN, attempts=0)

    assert not Order.objects.filter(needs_match=True).exists()
