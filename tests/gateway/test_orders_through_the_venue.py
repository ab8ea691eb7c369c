"""Orders from the API to the FIX venue and back (SPEC §9), with every process real.

The web side is this test process (the API client on the test database); the worker
cluster matches and queues NewOrderSingles, ``run_gateway`` sends them and stores the
venue's reports and applies them, ``run_venue`` fills them over time.
"""

import os
import random
import signal
import time

import pytest
from django.test import override_settings
from django_q.tasks import async_task

from orders.invariants import invariant_violations
from orders.models import Execution, Order
from orders.tasks import SWEEP_TASK
from tests.factories import VALID_ISINS
from tests.gateway.harness import running, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

S = Order.Status
FINAL = (S.MATCHED, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED, S.FAILED)
VENUE = {"EXCHANGE_LATENCY": "0.05", "VENUE_FILL_INTERVAL": "0.1", "VENUE_MAX_FILLS": "3"}
CLUSTER = {"EXCHANGE_TRANSPORT": "venue", "Q_WORKERS": "1"}


def _post(api, count, *, seed=1, tifs=("day", "gtc", "ioc", "fok")):
    rng = random.Random(seed)
    ids = []
    for n in range(count):
        side = rng.choice(["buy", "sell"])
        body = {
            "type": "limit",
            "side": side,
            "instrument": rng.choice(VALID_ISINS[:3]),
            # Generous limits: the venue's market fills them; some cross each other here first.
            "limit_price": "1000.00" if side == "buy" else "1.00",
            "quantity": rng.randint(1, 50),
            "time_in_force": rng.choice(tifs),
            "client_order_id": f"venue-{seed}-{n}",
        }
        response = api.post("/orders", body, format="json")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def _settle(ids, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Order.objects.filter(pk__in=ids).exclude(status__in=FINAL).exists():
            return
        time.sleep(0.5)
        async_task(SWEEP_TASK)
    left = list(Order.objects.filter(pk__in=ids).exclude(status__in=FINAL).values_list("pk", "status"))
    pytest.fail(f"{len(left)} orders not final after {timeout}s: {left[:5]}")


def _assert_books_agree_with_the_venue(venue):
    with override_settings(VENUE_DB=str(venue.db)):
        violations = invariant_violations()
    assert violations == [], "\n".join(violations)


def test_orders_are_filled_at_the_venue_and_our_fills_equal_its_journal(api, processes, cluster_factory):
    venue, gateway = processes({**VENUE, "EXCHANGE_FAILURE_RATE": "0.2"})
    venue.start()
    gateway.start()
    cluster_factory(**CLUSTER).start()

    ids = _post(api, 40)
    _settle(ids)

    orders = Order.objects.filter(pk__in=ids)
    assert orders.filter(status=S.FILLED).exists()
    for order in orders:
        assert order.filled_quantity + order.remaining_quantity + order.cancelled_quantity == order.quantity
        assert order.remaining_quantity == 0
    filled_at_venue = orders.filter(status=S.FILLED).exclude(venue_status="")
    assert Execution.objects.filter(order__in=filled_at_venue).exists()
    _assert_books_agree_with_the_venue(venue)


def test_killed_gateway_and_venue_lose_nothing_and_double_nothing(api, processes, cluster_factory):
    venue, gateway = processes(VENUE)
    venue.start()
    gateway.start()
    cluster_factory(**CLUSTER).start()

    ids = _post(api, 30, seed=2, tifs=("gtc",))
    time.sleep(1.0)
    gateway.kill()  # SIGKILL mid-stream
    ids += _post(api, 10, seed=3, tifs=("gtc",))
    venue.kill()
    venue.start()
    gateway.start()
    _settle(ids)

    assert Order.objects.filter(pk__in=ids, status=S.FILLED).count() + Order.objects.filter(
        pk__in=ids, status=S.MATCHED
    ).count() == len(ids)
    _assert_books_agree_with_the_venue(venue)


def test_the_report_applier_killed_is_started_again_and_ends_with_its_gateway(
    api, processes, cluster_factory
):
    venue, gateway = processes({**VENUE, "VENUE_MAX_FILLS": "5"})
    venue.start()
    gateway.start()
    cluster_factory(**CLUSTER).start()
    ids = _post(api, 30, seed=4, tifs=("gtc",))
    first = wait_until(gateway.applier_pid, message="the applier started")
    wait_until(lambda: Execution.objects.exists(), message="fills applied")

    os.kill(first, signal.SIGKILL)  # mid-stream: its batch rolls back, the cursor with it
    second = wait_until(lambda: gateway.applier_pid() not in (None, first) and gateway.applier_pid())
    _settle(ids)

    assert Order.objects.filter(pk__in=ids, status__in=(S.FILLED, S.MATCHED)).count() == len(ids)
    _assert_books_agree_with_the_venue(venue)
    # The gateway killed alone (not its process group): the applier sees its stdin close.
    os.kill(gateway.proc.pid, signal.SIGKILL)
    wait_until(lambda: not running(second), timeout=10, message="the applier ending with its gateway")


def test_cancel_at_the_venue_ends_cancelled_with_the_fills_it_had(api, processes, cluster_factory):
    venue, gateway = processes({**VENUE, "VENUE_FILL_INTERVAL": "30", "VENUE_MAX_FILLS": "1"})
    venue.start()
    gateway.start()
    cluster_factory(**CLUSTER).start()
    body = {
        "type": "limit",
        "side": "buy",
        "instrument": VALID_ISINS[0],
        "limit_price": "1000.00",
        "quantity": 10,
    }
    order_id = api.post("/orders", {**body, "time_in_force": "gtc"}, format="json").json()["id"]
    deadline = time.monotonic() + 30
    while Order.objects.get(pk=order_id).status != S.SUBMITTED:
        assert time.monotonic() < deadline, Order.objects.get(pk=order_id).status
        time.sleep(0.2)

    response = api.post(f"/orders/{order_id}/cancel")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "PENDING_CANCEL"
    _settle([order_id], timeout=30)
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.cancelled_quantity, order.remaining_quantity) == (S.CANCELLED, 10, 0)
    _assert_books_agree_with_the_venue(venue)


def test_killed_worker_cluster_and_session_faults_lose_nothing(api, processes, cluster_factory):
    venue, gateway = processes({**VENUE, "VENUE_FAULTS": "dup=0.05,gap=0.02,disconnect=0.01"})
    venue.start()
    gateway.start()
    cluster = cluster_factory(**CLUSTER)
    cluster.start()

    ids = _post(api, 30, seed=4, tifs=("gtc", "ioc"))
    time.sleep(0.5)
    cluster.kill()  # SIGKILL: tasks, timers and claims in memory die with it
    ids += _post(api, 10, seed=5, tifs=("gtc",))
    cluster_factory(**CLUSTER).start()
    _settle(ids)

    _assert_books_agree_with_the_venue(venue)
