"""Per-process scheduler that keeps many exchange calls in flight at once.

A django-q2 worker runs one task at a time; an exchange call takes 0.5 s. So
tasks only hand due times to this dispatcher and return: one timer thread wakes
when the earliest order is due and a thread pool runs the calls concurrently.
Nothing here is durable: if the process dies, the sweeper re-drives what it held.
"""

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from matching.services import RoutePlan

logger = logging.getLogger("exchange.dispatcher")

# After an unexpected error (database restart, deadlock) an order is tried again this much later.
ERROR_RETRY_SECONDS = 2.0


class PlacementDispatcher:
    def __init__(self, concurrency: int):
        self._heap: list[tuple[float, int, RoutePlan]] = []
        self._counter = itertools.count()
        self._wakeup = threading.Condition()
        self._pending = 0
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="placement")
        self._timer = threading.Thread(target=self._loop, name="placement-timer", daemon=True)
        self._timer.start()

    def schedule(self, plans: Iterable[RoutePlan]) -> None:
        with self._wakeup:
            for plan in plans:
                heapq.heappush(self._heap, (plan.route_at.timestamp(), next(self._counter), plan))
                self._pending += 1
            self._wakeup.notify()

    def idle(self) -> bool:
        with self._wakeup:
            return self._pending == 0

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is scheduled or running (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._wakeup:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wakeup.wait(remaining)
            return True

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._heap:
                    self._wakeup.wait()
                due, _, plan = self._heap[0]
                delay = due - time.time()
                if delay > 0:
                    self._wakeup.wait(delay)
                    continue
                heapq.heappop(self._heap)
            self._executor.submit(self._run, plan)

    def _run(self, plan: RoutePlan) -> None:
        from exchange.services import placement_run

        close_old_connections()
        try:
            follow_up = placement_run(plan=plan)
        except Exception:
            logger.exception("order %s: placement step failed; retrying", plan.order_id)
            retry_at = timezone.now() + timedelta(seconds=ERROR_RETRY_SECONDS)
            follow_up = [RoutePlan(plan.order_id, plan.instrument, retry_at, plan.recover)]
        self.schedule(follow_up)
        with self._wakeup:
            self._pending -= 1
            self._wakeup.notify_all()


_dispatcher: PlacementDispatcher | None = None
_dispatcher_pid: int | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher() -> PlacementDispatcher:
    """This process's dispatcher (a forked worker gets its own, threads don't survive fork)."""
    global _dispatcher, _dispatcher_pid
    with _dispatcher_lock:
        if _dispatcher is None or _dispatcher_pid != os.getpid():
            _dispatcher = PlacementDispatcher(settings.EXCHANGE_CONCURRENCY)
            _dispatcher_pid = os.getpid()
        return _dispatcher
