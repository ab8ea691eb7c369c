"""End to end with a real django-q2 cluster: faults lose nothing and place nothing twice.

The cluster runs as a separate process on the test database, as in production;
the test posts through the API, kills the cluster with SIGKILL mid-run, loses
queued tasks, and lets the exchange fail 30-100 % of calls.
"""

import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django_q.models import OrmQ
from django_q.tasks import async_task

from exchange.models import ExchangeOrder
from orders.models import Order
from orders.tasks import SWEEP_TASK
from tests.factories import VALID_ISINS
from tests.pipeline_helpers import assert_invariants, wait_until_settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"mysql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


class Cluster:
    """`manage.py qcluster` in its own process group, killable like a crashed host."""

    def __init__(self, **env):
        self.env = {
            **os.environ,
            # Production settings (not the test overrides), configured by environment.
            "DJANGO_SETTINGS_MODULE": "ordersite.settings",
            "DATABASE_URL": _database_url(),
            "Q_WORKERS": "2",
            "EXCHANGE_LATENCY": "0.05",
            "MATCHING_WINDOW": "0.05",
            "EXCHANGE_RETRY_BASE": "0.05",
            "EXCHANGE_RETRY_CAP": "0.2",
            "LOG_LEVEL": "WARNING",
            "PIPELINE_STALL_TIMEOUT": "2",
            **{key: str(value) for key, value in env.items()},
        }
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def cluster_factory():
    clusters = []

    def build(**env):
        cluster = Cluster(**env)
        clusters.append(cluster)
        return cluster

    yield build
    for cluster in clusters:
        cluster.stop()


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
