"""Following the order event log (SPEC §10): one shared reader per process, fanned out to streams.

The ``Hub`` is the only thing that polls ``OrderEvent`` for new rows: one asyncio task
per web process, every ``ORDER_EVENTS_POLL_INTERVAL`` (or at once when Redis says
events committed). It keeps a *horizon*: the highest event id below which every id is
either read or known never to commit. Event ids are handed out at INSERT but become
visible at COMMIT, so a later id can be visible before an earlier one; the horizon
stops at such a gap until the earlier id shows up or the gap is proved permanent
(a rolled-back transaction): no transaction that could hold it is still open, or it
is older than ``ORDER_EVENTS_GAP_TIMEOUT``. Streams deliver only ids at or below the
horizon, so a client resuming from an id never skips one that commits later
(docs/decisions.md, "Order events").

A stream reads its backlog (ids after its ``since``, up to the horizon when it
subscribed) from the database, then takes live events from the hub's fan-out: the
two meet at that horizon, so nothing is missed or repeated.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.db.models import Max

from orders.models import OrderEvent, ReportCursor

logger = logging.getLogger("orders.event_stream")

# How far back a starting hub looks for ids that may still commit.
START_WINDOW = 10_000
READ_BATCH = 2_000
BACKLOG_PAGE = 500
# A stream this far behind the live events is ended; its client resumes from the log.
QUEUE_LIMIT = 20_000
PRUNED_CURSOR = "order-events-pruned"
FIELDS = ("id", "owner_id", "name", "instrument", "status", "payload")


@dataclass(frozen=True)
class Event:
    id: int
    owner_id: int
    name: str
    instrument: str
    status: str
    message: bytes

    @classmethod
    def from_row(cls, row: tuple) -> "Event":
        id, owner_id, name, instrument, status, payload = row
        return cls(id, owner_id, name, instrument, status, sse_message(id, name, payload))


def sse_message(id: int, name: str, data: str) -> bytes:
    return f"id: {id}\nevent: {name}\ndata: {data}\n\n".encode()


@dataclass(frozen=True)
class EventFilter:
    """Whose events a stream gets (``owner_id`` None: everyone's, for staff) and which."""

    owner_id: int | None
    instruments: frozenset = frozenset()
    statuses: frozenset = frozenset()

    def matches(self, event: Event) -> bool:
        return (
            (self.owner_id is None or event.owner_id == self.owner_id)
            and (not self.instruments or event.instrument in self.instruments)
            and (not self.statuses or event.status in self.statuses)
        )

    def queryset(self):
        events = OrderEvent.objects.all()
        if self.owner_id is not None:
            events = events.filter(owner_id=self.owner_id)
        if self.instruments:
            events = events.filter(instrument__in=self.instruments)
        if self.statuses:
            events = events.filter(status__in=self.statuses)
        return events


@dataclass(eq=False)
class Subscription:
    filter: EventFilter
    horizon: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    # Live events after this id only: the hub's horizon when it subscribed, or the
    # client's ``since`` when that is later (another process may have delivered more).
    floor: int = 0

    def __post_init__(self):
        self.floor = self.horizon


class Hub:
    """One per process and event loop: polls the log once per tick for all streams."""

    def __init__(self):
        self.horizon: int | None = None
        self.subscriptions: set[Subscription] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.ticks = 0
        self._gaps: dict[int, tuple[float, object]] = {}  # gap start -> (first seen, db time then)
        self._loop = None
        self._new_gap = False
        self._starting = asyncio.Lock()
        self._redis_task = None

    async def subscribe(self, event_filter: EventFilter) -> Subscription:
        await self._start()
        subscription = Subscription(filter=event_filter, horizon=self.horizon)
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    async def stop(self) -> None:
        """End the reader (and its Redis listener) now; the next stream starts them again."""
        for task in (self.task, self._redis_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self.task = self._redis_task = None

    async def _start(self) -> None:
        # One reader task per hub: streams arriving together wait for the first to start it.
        async with self._starting:
            if self.task is None or self.task.done():
                self.horizon = await _db(_start_horizon)
                self._gaps.clear()
                # Catch up before the first stream subscribes: a stream without ``since``
                # starts after what is already committed, not START_WINDOW ids back.
                while await self._tick() >= READ_BATCH:
                    pass
                self.task = asyncio.create_task(self._run(), name="order-events-hub")
                if settings.REDIS_URL:
                    self._redis_task = asyncio.create_task(
                        self._listen_redis(self.task), name="order-events-redis"
                    )

    async def _run(self) -> None:
        idle_since = None
        while True:
            try:
                # A gap is settled by a later look: while one is open, look at the fast pace.
                interval = settings.ORDER_EVENTS_POLL_INTERVAL if self._gaps else _poll_interval()
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self.wake.clear()
            if not self.subscriptions:
                # Nobody listens: stop; the next stream starts a fresh hub from the log.
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 5:
                    self.task = None
                    return
                continue
            idle_since = None
            try:
                while await self._tick() >= READ_BATCH:
                    pass
            except RuntimeError as exc:
                if "shutdown" not in str(exc):
                    raise
                self.task = None  # the process is exiting: no executor left to read with
                return
            except Exception:
                logger.exception("order events: reading the log failed; retrying")
                await asyncio.sleep(1)

    async def _tick(self) -> int:
        rows, gap_check = await _db(_read_after, self.horizon, bool(self._gaps))
        self.ticks += 1
        self._new_gap = False
        events = self._advance(rows, gap_check)
        if events:
            self._fan_out(events)
        if self._new_gap:
            # A gap seen for the first time can only be judged by a look that checks the
            # open transactions *before* reading: take it now (a rollback settles at once).
            rows, gap_check = await _db(_read_after, self.horizon, True)
            events = self._advance(rows, gap_check)
            if events:
                self._fan_out(events)
        return len(rows)

    def _advance(self, rows: list[tuple], gap_check) -> list[Event]:
        """Move the horizon over the rows read: contiguous ids, and gaps proved permanent."""
        delivered = []
        expected = self.horizon + 1
        now = time.monotonic()
        for row in rows:
            if row[0] > expected:
                if not self._gap_closed(expected, now, gap_check):
                    break
                self._gaps.pop(expected, None)
            delivered.append(Event.from_row(row))
            expected = row[0] + 1
        self.horizon = expected - 1
        # Gaps now below the horizon are settled.
        for start in [start for start in self._gaps if start <= self.horizon]:
            del self._gaps[start]
        return delivered

    def _gap_closed(self, start: int, now: float, gap_check) -> bool:
        if start not in self._gaps:
            self._gaps[start] = (now, gap_check.db_now if gap_check else None)
            self._new_gap = True
            first_seen, seen_at_db = now, None
        else:
            first_seen, seen_at_db = self._gaps[start]
        if connection.vendor == "sqlite":
            return True  # one writer at a time: ids commit in order, a gap never fills
        if now - first_seen >= settings.ORDER_EVENTS_GAP_TIMEOUT:
            logger.info("order events: id %s never committed (gap timeout); skipped", start)
            return True
        # No transaction that started before the gap was seen is still open: it never commits.
        return bool(
            gap_check and gap_check.known and seen_at_db is not None and gap_check.closed_before(seen_at_db)
        )

    def _fan_out(self, events: list[Event]) -> None:
        for subscription in list(self.subscriptions):
            wanted = [e for e in events if e.id > subscription.floor and subscription.filter.matches(e)]
            if not wanted:
                continue
            if subscription.queue.qsize() + len(wanted) > QUEUE_LIMIT:
                subscription.overflowed = True
                subscription.queue.put_nowait(None)
                self.subscriptions.discard(subscription)
                continue
            for event in wanted:
                subscription.queue.put_nowait(event)

    async def _listen_redis(self, hub_task: asyncio.Task) -> None:
        """Wake the hub whenever a transaction with events commits; the poll remains the fallback."""
        import redis.asyncio as redis

        from orders.events import WAKE_CHANNEL

        while not hub_task.done():
            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(WAKE_CHANNEL)
                    while not hub_task.done():
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("order events: Redis wake-ups lost (%s); polling until it is back", exc)
                await asyncio.sleep(2)
            finally:
                await client.aclose()


def _poll_interval() -> float:
    # With Redis the poll is only the safety net (and settles gaps).
    return settings.ORDER_EVENTS_POLL_INTERVAL * (10 if settings.REDIS_URL else 1)


@dataclass(frozen=True)
class GapCheck:
    db_now: object
    oldest_open: object  # the oldest open transaction's start, None when there is none
    known: bool  # False: this database does not tell (no PROCESS privilege, not InnoDB)

    def closed_before(self, seen_at) -> bool:
        return self.oldest_open is None or self.oldest_open > seen_at


def _gap_check() -> GapCheck | None:
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        try:
            # trx_started has whole seconds: a transaction from the same second still counts.
            # Only connections to this database can hold an event id.
            cursor.execute(
                "SELECT NOW(), (SELECT MIN(t.trx_started) FROM information_schema.innodb_trx t "
                "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                "WHERE p.db = DATABASE())"
            )
            db_now, oldest = cursor.fetchone()
            return GapCheck(db_now, oldest, True)
        except Exception:
            cursor.execute("SELECT NOW()")
            return GapCheck(cursor.fetchone()[0], None, False)


def _start_horizon() -> int:
    """Where a starting reader begins: START_WINDOW ids back, never before the pruned ones.

    Not "below the lowest visible id": an id below it may belong to a transaction that
    has not committed yet; the reader treats the ids it does not see as gaps.
    """
    high = OrderEvent.objects.aggregate(high=Max("id"))["high"] or 0
    return max(_pruned_through(), high - START_WINDOW)


def _read_after(horizon: int, gaps: bool) -> tuple[list[tuple], GapCheck | None]:
    # The gap check comes first: a row read after it is not mistaken for one it settled.
    check = _gap_check() if gaps else None
    rows = list(OrderEvent.objects.filter(id__gt=horizon).order_by("id").values_list(*FIELDS)[:READ_BATCH])
    if rows and check is None and rows[-1][0] - horizon != len(rows):
        check = _gap_check()  # not contiguous: the time the gap was first seen
    return rows, check


def _pruned_through() -> int:
    return ReportCursor.objects.filter(name=PRUNED_CURSOR).values_list("position", flat=True).first() or 0


def backlog_page(event_filter: EventFilter, after: int, through: int) -> list[Event]:
    rows = (
        event_filter.queryset()
        .filter(id__gt=after, id__lte=through)
        .order_by("id")
        .values_list(*FIELDS)[:BACKLOG_PAGE]
    )
    return [Event.from_row(row) for row in rows]


def pruned_through() -> int:
    """Events with ids up to this were pruned (``prune_order_events``)."""
    return _pruned_through()


async def _db(func, *args):
    """Run a short ORM read off the event loop; one retry on a dropped connection."""

    def call():
        close_old_connections()
        try:
            return func(*args)
        except OperationalError:
            connection.close()
            return func(*args)

    return await sync_to_async(call, thread_sensitive=False)()


async def db(func, *args):
    return await _db(func, *args)


_hubs: dict[int, Hub] = {}


def hub() -> Hub:
    """The hub of the running event loop (one per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(id(loop))
    if found is None or found._loop is not loop:
        found = Hub()
        found._loop = loop
        _hubs[id(loop)] = found
    return found


async def stream(event_filter: EventFilter, since: int | None):
    """The SSE body: backlog after ``since`` from the log, then live events, with heartbeats.

    Ends when the client goes away (the ASGI handler cancels it) or falls too far behind.
    """
    the_hub = hub()
    subscription = await the_hub.subscribe(event_filter)
    if since is not None:
        subscription.floor = max(subscription.floor, since)  # no await since subscribing
    try:
        yield b"retry: 1000\n\n"
        last = subscription.horizon if since is None else since
        if since is not None:
            pruned = await _db(_pruned_through)
            if since < pruned:
                yield (
                    "event: pruned\n"
                    f'data: {{"detail": "Events up to id {pruned} were pruned; some after {since} '
                    f'are gone.", "oldest_available_id": {pruned + 1}}}\n\n'
                ).encode()
                last = pruned
            while last < subscription.horizon:
                page = await _db(backlog_page, event_filter, last, subscription.horizon)
                for event in page:
                    yield event.message
                if len(page) < BACKLOG_PAGE:
                    break
                last = page[-1].id
        heartbeat = settings.ORDER_EVENTS_HEARTBEAT
        while True:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if event is None:
                yield b": too far behind: reconnect with Last-Event-ID\n\n"
                return
            chunk = [event.message]
            while not subscription.queue.empty() and len(chunk) < 500:
                event = subscription.queue.get_nowait()
                if event is None:
                    break
                chunk.append(event.message)
            yield b"".join(chunk)
            if event is None:
                return
    finally:
        the_hub.unsubscribe(subscription)
        logger.debug("order events: a stream ended, %s left in this process", len(the_hub.subscriptions))
