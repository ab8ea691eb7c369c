"""Per-process scheduler that keeps many exchange calls in flight at once.

A django-q2 worker runs one task at a time and an exchange call takes 0.5 s, so
tasks only hand due times to this dispatcher and return. A timer thread wakes
when orders fall due and claims them in one batch; a pool of threads makes the
calls concurrently; a recorder thread writes their outcomes in batches. Nothing
here is durable: if the process dies, the sweeper re-drives what it held.
"""

import heapq
import itertools
import logging
import os
import queue
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

# After an unexpected error (database restart, deadlock) orders are tried again this much later.
ERROR_RETRY_SECONDS = 2.0
# Orders falling due within this much of each other are claimed in one batch.
BATCH_LINGER_SECONDS = 0.01
MAX_BATCH = 200


class PlacementDispatcher:
    def __init__(self, concurrency: int):
        self._heap: list[tuple[float, int, RoutePlan]] = []
        self._counter = itertools.count()
        self._wakeup = threading.Condition()
        self._pending = 0  # plans scheduled, claimed or in a call, not yet settled
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._calls = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="exchange-call")
        for target, name in (
            (self._timer_loop, "placement-timer"),
            (self._record_loop, "placement-recorder"),
        ):
            threading.Thread(target=target, name=name, daemon=True).start()

    def schedule(self, plans: Iterable[RoutePlan]) -> None:
        with self._wakeup:
            for plan in plans:
                heapq.heappush(self._heap, (plan.route_at.timestamp(), next(self._counter), plan))
                self._pending += 1
            self._wakeup.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is scheduled, claimed or in a call (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._wakeup:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wakeup.wait(remaining)
            return True

    def _settled(self, count: int) -> None:
        with self._wakeup:
            self._pending -= count
            self._wakeup.notify_all()

    def _timer_loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._heap:
                    self._wakeup.wait()
                delay = self._heap[0][0] - time.time()
                if delay > 0:
                    self._wakeup.wait(delay)
                    continue
            time.sleep(BATCH_LINGER_SECONDS)
            with self._wakeup:
                now = time.time()
                batch = []
                while self._heap and self._heap[0][0] <= now and len(batch) < MAX_BATCH:
                    batch.append(heapq.heappop(self._heap)[2])
            self._claim_and_call(batch)

    def _claim_and_call(self, plans: list[RoutePlan]) -> None:
        from exchange.gateway import get_exchange
        from exchange.services import placement_claim

        close_old_connections()
        try:
            claims, later = placement_claim(plans=plans)
        except Exception:
            logger.exception("claiming %s orders failed; retrying", len(plans))
            self.schedule(_retry(plans))
            self._settled(len(plans))
            return
        self.schedule(later)
        with self._wakeup:
            self._pending += len(claims) - len(plans)
        exchange = get_exchange()
        for claim in claims:
            self._calls.submit(self._call, claim, exchange)

    def _call(self, claim, exchange) -> None:
        from exchange.services import placement_call

        close_old_connections()
        try:
            outcome = placement_call(claim, exchange)
        except Exception:
            # Not an answer from the exchange: the order may or may not be placed.
            # It stays in flight and the call is re-sent (the exchange dedupes).
            logger.exception(
                "order %s: exchange call broke; re-sending",
                claim.order.pk,
                extra={"order_id": claim.order.pk},
            )
            order = claim.order
            self.schedule(_retry([RoutePlan(order.pk, order.instrument, timezone.now(), recover=True)]))
            self._settled(1)
            return
        self._outcomes.put(outcome)

    def _record_loop(self) -> None:
        from exchange.services import placement_record

        while True:
            outcomes = [self._outcomes.get()]
            while len(outcomes) < MAX_BATCH:
                try:
                    outcomes.append(self._outcomes.get_nowait())
                except queue.Empty:
                    break
            close_old_connections()
            try:
                follow_up = placement_record(outcomes)
            except Exception:
                # The orders stay in flight; re-send soon (the exchange dedupes).
                logger.exception("recording %s outcomes failed; re-sending", len(outcomes))
                follow_up = _retry(
                    RoutePlan(o.claim.order.pk, o.claim.order.instrument, timezone.now(), recover=True)
                    for o in outcomes
                )
            self.schedule(follow_up)
            self._settled(len(outcomes))


def _retry(plans: Iterable[RoutePlan]) -> list[RoutePlan]:
    at = timezone.now() + timedelta(seconds=ERROR_RETRY_SECONDS)
    return [RoutePlan(plan.order_id, plan.instrument, at, plan.recover) for plan in plans]


_dispatcher: PlacementDispatcher | None = None
_dispatcher_pid: int | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher() -> PlacementDispatcher:
    """This process's dispatcher (a forked worker gets its own: threads don't survive fork)."""
    global _dispatcher, _dispatcher_pid
    with _dispatcher_lock:
        if _dispatcher is None or _dispatcher_pid != os.getpid():
            _dispatcher = PlacementDispatcher(settings.EXCHANGE_CONCURRENCY)
            _dispatcher_pid = os.getpid()
        return _dispatcher
