"""Per-process scheduler that keeps many exchange calls in flight at once.

With the venue transport (SPEC §9) there is no call to wait for: a due batch is
claimed and its messages written to the outbox in one transaction, and the
answers come back as reports. The rest of this docstring is the in-process
transport (SPEC §6).

A django-q2 worker runs one task at a time and an exchange call takes 0.5 s, so
tasks only hand due times to this dispatcher and return. A timer thread wakes
when orders fall due and claims them in one batch — never more than there are
free call slots, so a claim is sent at once and never waits in a queue while the
sweeper could take it for lost; a pool of threads makes the calls; a recorder
thread writes their outcomes in batches. Each loop survives any exception (it
logs it and carries on). Nothing here is durable: if the process dies, the
sweeper re-drives what it held from the database.
"""

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from orders.plans import RoutePlan
from ordersite.db import close_stale_connections

logger = logging.getLogger("orders.dispatcher")

# After an unexpected error (database restart, deadlock) orders are tried again this much later.
ERROR_RETRY_SECONDS = 2.0
# A loop that hit an unexpected exception pauses this long before going on.
LOOP_ERROR_PAUSE = 0.5
# Orders falling due within this much of each other are claimed in one batch.
BATCH_LINGER_SECONDS = 0.1
MAX_BATCH = 200


class PlacementDispatcher:
    def __init__(self, concurrency: int):
        self._heap: list[tuple[float, int, RoutePlan]] = []
        self._counter = itertools.count()
        self._wakeup = threading.Condition()
        self._pending = 0  # plans scheduled, claimed or in a call, not yet settled
        self._free_slots = concurrency  # call threads neither reserved for a claim nor calling
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._calls = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="exchange-call")
        for step, name in ((self._timer_step, "placement-timer"), (self._record_step, "placement-recorder")):
            threading.Thread(target=_forever, args=(step, name), name=name, daemon=True).start()

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

    def _release_slots(self, count: int) -> None:
        with self._wakeup:
            self._free_slots += count
            self._wakeup.notify_all()

    def _timer_step(self) -> None:
        with self._wakeup:
            while not self._heap or not self._free_slots:
                self._wakeup.wait()
            delay = self._heap[0][0] - time.time()
            if delay > 0:
                self._wakeup.wait(delay)
                return
        time.sleep(BATCH_LINGER_SECONDS)
        with self._wakeup:
            now = time.time()
            batch = []
            while self._heap and self._heap[0][0] <= now and len(batch) < min(MAX_BATCH, self._free_slots):
                batch.append(heapq.heappop(self._heap)[2])
            self._free_slots -= len(batch)
        self._claim_and_call(batch)

    def _claim_and_call(self, plans: list[RoutePlan]) -> None:
        if settings.EXCHANGE_TRANSPORT == "venue":
            self._claim_and_queue(plans)
            return
        from exchange.gateway import get_exchange
        from orders.placement import placement_claim

        try:
            exchange = get_exchange()  # before the claim: a claimed order must get its call
            close_stale_connections()
            claims, later = placement_claim(plans=plans)
        except Exception:
            logger.exception("claiming %s orders failed; retrying", len(plans))
            claims, later = [], _retry(plans)
        # A slot was reserved per plan: the ones not claimed are free again.
        self._release_slots(len(plans) - len(claims))
        self.schedule(later)
        self._settled(len(plans) - len(claims))
        for claim in claims:
            self._calls.submit(self._call, claim, exchange)

    def _claim_and_queue(self, plans: list[RoutePlan]) -> None:
        """Venue transport: claims and their outbox rows in one transaction; no call to wait for."""
        from orders.placement import placement_send

        try:
            close_stale_connections()
            later = placement_send(plans=plans)
        except Exception:
            logger.exception("claiming %s orders for the venue failed; retrying", len(plans))
            later = _retry(plans)
        self._release_slots(len(plans))
        self.schedule(later)
        self._settled(len(plans))

    def _call(self, claim, exchange) -> None:
        from orders.placement import Outcome, placement_call

        try:
            close_stale_connections()
            outcome = placement_call(claim, exchange)
        except Exception:
            logger.exception("order %s: call thread failed; asking the exchange", claim.order.pk)
            outcome = Outcome(claim=claim, unknown=True)
        finally:
            self._release_slots(1)
        self._outcomes.put(outcome)

    def _record_step(self) -> None:
        from orders.placement import placement_record, placement_status_check_plans

        outcomes = [self._outcomes.get()]
        while len(outcomes) < MAX_BATCH:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        try:
            try:
                close_stale_connections()
                follow_up = placement_record(outcomes)
            except Exception:
                # Unrecorded outcomes leave the orders in flight: ask the exchange about them.
                logger.exception("recording %s outcomes failed; asking the exchange again", len(outcomes))
                follow_up = placement_status_check_plans(outcomes)
            self.schedule(follow_up)
        finally:
            self._settled(len(outcomes))


def _forever(step: Callable[[], None], name: str) -> None:
    """Run one loop's ``step`` forever: an exception is logged, never the end of the loop."""
    while True:
        try:
            step()
        except Exception:
            logger.exception("dispatcher %s: unexpected error; carrying on", name)
            time.sleep(LOOP_ERROR_PAUSE)


def _retry(plans: Iterable[RoutePlan]) -> list[RoutePlan]:
    at = timezone.now() + timedelta(seconds=ERROR_RETRY_SECONDS)
    return [RoutePlan(plan.order_id, plan.instrument, at, plan.recover, plan.attempt) for plan in plans]


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
