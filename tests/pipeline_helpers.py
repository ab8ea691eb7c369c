"""Helpers for pipeline tests: run what is really in the queue, build exchanges, wait."""

import threading
import time

from django_q.models import OrmQ
from django_q.signing import SignedPackage

from exchange.gateway import OrderPlacementError, SimulatedExchange
from orders.invariants import invariant_violations
from orders.models import Order


def run_queued_tasks() -> int:
    """Execute (in this process) and acknowledge every task in the ORM queue, oldest first."""
    from django.utils.module_loading import import_string

    ran = 0
    for row in OrmQ.objects.order_by("id"):
        task = SignedPackage.loads(row.payload)
        func = task["func"]
        func = import_string(func) if isinstance(func, str) else func
        func(*task["args"], **task["kwargs"])
        row.delete()
        ran += 1
    return ran


class ScriptedExchange(SimulatedExchange):
    """The simulated exchange (real ledger), failing the first ``failures`` placements
    and the first ``status_failures`` status questions."""

    def __init__(self, failures: int = 0, error=OrderPlacementError, status_failures: int = 0):
        super().__init__(latency=0, failure_rate=0)
        self.failures = failures
        self.error = error
        self.calls = 0
        self.status_failures = status_failures
        self.status_calls = 0

    def place_order(self, order):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"Failed to place order {order.id}: Connection not available")
        return super().place_order(order)

    def order_status(self, order_id):
        self.status_calls += 1
        if self.status_calls <= self.status_failures:
            raise OrderPlacementError(f"Failed to query order {order_id}: Connection not available")
        return super().order_status(order_id)


def wait_until_settled(timeout: float, poll: float = 0.1) -> list[Order]:
    """Wait until no order is working; return the ones still working at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        working = list(Order.objects.filter(status__in=Order.WORKING_STATUSES))
        if not working or time.monotonic() > deadline:
            return working
        time.sleep(poll)


def assert_invariants() -> None:
    violations = invariant_violations()
    assert violations == [], "\n".join(violations)


class ConcurrencyProbe(SimulatedExchange):
    """The simulated exchange, recording how many calls were in flight at once."""

    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def place_order(self, order):
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            return super().place_order(order)
        finally:
            with cls.lock:
                cls.in_flight -= 1
