"""End to end with a real django-q2 cluster: faults lose nothing and place nothing twice.

The cluster runs as a separate process on the test database, as in production;
the test posts through the API, kills the cluster with SIGKILL mid-run, loses
queued tasks, and lets the exchange fail 30-100 % of calls.
"""

import random
import time
from decimal import Decimal

import pytest
from django_q.models import OrmQ
from django_q.tasks import async_task

from exchange.models import ExchangeOrder
from orders.models import Order
from orders.tasks import SWEEP_TASK
from tests.factories import VALID_ISINS
from tests.pipeline_helpers import assert_invariants, wait_until_settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _post_orders(api, count, seed=7):
    rng = random.Random(seed)
    accepted = []
    for n in range(count):
        market = rng.random() < 0.3
        body = {
            "type": "market" if market else "limit",
            "side": rng.choice(["buy", "sell"]),
            "instrument": rng.choice(VALID_ISINS),
            "quantity": rng.randint(1, 100),
            "client_order_id": f"fault-{seed}-{n}",
        }
        if not market:
            body["limit_price"] = str(Decimal(rng.randint(990, 1010)) / 100)
        response = api.post("/orders", body, format="json")
        assert response.status_code == 201, response.content
        accepted.append(response.json()["id"])
    return accepted


def _assert_each_accepted_order_settled_once(accepted):
    assert wait_until_settled(timeout=5) == []
    assert Order.objects.filter(pk__in=accepted).count() == len(accepted)
    placed = dict(Order.objects.filter(placed_quantity__gt=0).values_list("pk", "placed_quantity"))
    ledger = dict(ExchangeOrder.objects.values_list("order_id", "quantity"))
    assert placed == ledger  # every placement exactly once, with the placed quantity
    assert_invariants()


def _settle(timeout):
    """Wait for the cluster, queueing its sweep every second (its scheduler wakes every 30 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Order.objects.filter(status__in=Order.WORKING_STATUSES).exists():
            return
        time.sleep(1)
        async_task(SWEEP_TASK)
    pytest.fail(f"orders still working after {timeout}s")


def test_worker_cluster_killed_mid_run_loses_nothing(api, cluster_factory):
    cluster = cluster_factory(EXCHANGE_FAILURE_RATE=0.3)
    cluster.start()
    accepted = _post_orders(api, 120)
    time.sleep(1.0)
    cluster.kill()  # SIGKILL: tasks, timers and calls in flight die with it
    accepted += _post_orders(api, 60, seed=8)
    cluster_factory(EXCHANGE_FAILURE_RATE=0.3).start()

    _settle(timeout=90)

    _assert_each_accepted_order_settled_once(accepted)


def test_lost_queue_pushes_are_recovered_by_the_sweeper(api, cluster_factory):
    accepted = _post_orders(api, 80)
    OrmQ.objects.all().delete()  # the broker lost every push
    cluster_factory(EXCHANGE_FAILURE_RATE=0.3).start()

    _settle(timeout=90)

    _assert_each_accepted_order_settled_once(accepted)


def test_exchange_failing_every_call_ends_orders_failed_never_placed(api, cluster_factory):
    cluster_factory(EXCHANGE_FAILURE_RATE=1.0, EXCHANGE_PLACEMENT_DEADLINE=1).start()
    accepted = _post_orders(api, 40)

    _settle(timeout=90)

    _assert_each_accepted_order_settled_once(accepted)
    assert not ExchangeOrder.objects.exists()
    assert not Order.objects.filter(status=Order.Status.SUBMITTED).exists()
    failed = Order.objects.filter(status=Order.Status.FAILED)
    assert failed.exists()
    assert all("Connection not available" in order.failure_reason for order in failed)
