"""Many orders on one or more instruments from several threads at once keep every invariant."""

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection

from orders.models import Order
from orders.pipeline import order_process
from orders.services import order_create
from tests.factories import UserFactory
from tests.pipeline_helpers import assert_invariants, wait_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6
ORDERS_PER_THREAD = 25


def _client_thread(owner, isins, seed, errors):
    rng = random.Random(seed)
    try:
        for n in range(ORDERS_PER_THREAD):
            market = rng.random() < 0.25
            order, _ = order_create(
                owner=owner,
                type="market" if market else "limit",
                side=rng.choice(["buy", "sell"]),
                instrument=rng.choice(isins),
                quantity=rng.randint(1, 50),
                limit_price=None if market else Decimal(rng.randint(995, 1005)) / 100,
                client_order_id=f"{seed}-{n}",
            )
            # What a worker does when the order's task comes off the queue.
            order_process(order_id=order.pk)
    except Exception as exc:  # reported by the main thread
        errors.append(exc)
    finally:
        connection.close()


# Passes take every instrument with orders waiting: with several, concurrent passes lock
# overlapping sets of instruments (in ISIN order) and must neither deadlock nor cross twice.
@pytest.mark.parametrize(
    "isins",
    [
        ["US0378331005"],
        ["US0378331005", "DE000BAY0017"],
        ["US0378331005", "DE000BAY0017", "GB0002634946", "FR0000120271"],
    ],
)
def test_concurrent_orders_settle_with_invariants_intact(dispatcher, settings, isins):
    settings.EXCHANGE_FAILURE_RATE = 0.3
    owner = UserFactory()
    errors = []
    threads = [
        threading.Thread(target=_client_thread, args=(owner, isins, seed, errors)) for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert dispatcher.wait_idle(timeout=60)
    assert wait_until_settled(timeout=30) == []
    assert Order.objects.count() == THREADS * ORDERS_PER_THREAD
    assert Order.objects.filter(status=Order.Status.MATCHED).exists()
    assert Order.objects.filter(status=Order.Status.SUBMITTED).exists()
    assert_invariants()
