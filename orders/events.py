"""Writing the order event log (SPEC §10): called by ``orders/transitions.py`` only.

``events_record`` renders each order as the API shows it and inserts its events in
the caller's transaction, one multi-row INSERT per call, or per ``events_batch()``
block where a transition runs many times in one transaction (venue reports). In a
block, an event that repeats the order's event before it (a second
``partially_filled``) replaces that one: the state in between is never committed,
so no reader could have seen it, and a backlog of fills becomes one event per order
and batch. After the commit, with ``REDIS_URL``, one message wakes the streams
(``orders/event_stream.py``); that publish never raises into the caller.
"""

import contextlib
import itertools
import json
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderEvent, ReportCursor
from ordersite.db import insert_rows

logger = logging.getLogger("orders.events")

WAKE_CHANNEL = "orders:events"

_local = threading.local()

EVENT_COLUMNS = ("order", "owner", "name", "instrument", "status", "payload", "created_at")


def order_payload(order: Order) -> str:
    """The order as ``GET /orders/{id}`` shows its fields, as JSON text."""
    from orders.api.serializers import order_representation

    return json.dumps(order_representation(order), cls=DjangoJSONEncoder, separators=(",", ":"))


def events_record(changes: Iterable[tuple[Order, str]], now: datetime | None = None) -> int:
    """Record one event per ``(order, event name)``, the order as it is now; returns how many."""
    now = now or timezone.now()
    batch = getattr(_local, "batch", None)
    if batch is not None:
        return batch.record(changes, now)
    rows = [_event(order, name, now) for order, name in changes]
    events_insert(rows)
    return len(rows)


def _event(order: Order, name: str, now: datetime) -> OrderEvent:
    return OrderEvent(
        order_id=order.pk,
        owner_id=order.owner_id,
        name=name,
        instrument=order.instrument,
        status=order.status,
        payload=order_payload(order),
        created_at=now,
    )


class _Batch:
    """The events of one ``events_batch()`` block: snapshots of the orders, rendered at its end."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, datetime, dict]] = []  # (name, when, the order's field values)
        self.latest: dict = {}  # order pk -> index of its latest entry

    def record(self, changes: Iterable[tuple[Order, str]], now: datetime) -> int:
        count = 0
        for order, name in changes:
            entry = (name, now, order.__dict__.copy())
            index = self.latest.get(order.pk)
            if index is not None and self.entries[index][0] == name:
                self.entries[index] = entry  # the same event again: only the newer state is committed
            else:
                self.latest[order.pk] = len(self.entries)
                self.entries.append(entry)
            count += 1
        return count

    def rows(self) -> list[OrderEvent]:
        rows = []
        for name, now, values in self.entries:
            order = Order.__new__(Order)
            order.__dict__.update(values)
            rows.append(_event(order, name, now))
        return rows


@contextlib.contextmanager
def events_batch():
    """Collect the events recorded inside the block and insert them in one statement at its end.

    Use inside the transaction of the changes: an exception discards them with it.
    """
    if getattr(_local, "batch", None) is not None:
        yield  # already batching: the outer block inserts
        return
    _local.batch = _Batch()
    try:
        yield
        batch = _local.batch
    finally:
        _local.batch = None
    events_insert(batch.rows())


def events_insert(rows: list[OrderEvent]) -> None:
    """Insert prepared events in the caller's transaction; with Redis, wake the streams on commit."""
    if not rows:
        return
    # Plain multi-row INSERT ... VALUES: InnoDB gives its rows consecutive ids without
    # reserving spares (an INSERT ... SELECT may leave gaps; event_stream.py copes either way).
    insert_rows(rows, EVENT_COLUMNS)
    if settings.REDIS_URL:
        transaction.on_commit(_publish_wake, robust=True)


_redis = None


def _publish_wake() -> None:
    """Tell every web process that events committed. Best effort: the streams also poll."""
    global _redis
    try:
        if _redis is None:
            import redis

            _redis = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2)
        _redis.publish(WAKE_CHANNEL, b"1")
    except Exception as exc:  # never into the caller: its change is committed already
        logger.warning("order events: wake-up not published (%s); streams poll instead", exc)


PRUNE_BATCH = 5_000


def order_events_prune(*, older_than: timedelta, now: datetime | None = None) -> tuple[int, int]:
    """Delete events older than ``older_than``, oldest first; returns (how many, pruned through id).

    Walks the log in id order and stops at the first event young enough to keep, so
    what is left is every event after one id. That id is recorded (the
    ``order-events-pruned`` cursor, in the same transaction as each delete), and a
    stream resuming from before it is told that events were pruned.
    """
    from orders.event_stream import PRUNED_CURSOR

    cutoff = (now or timezone.now()) - older_than
    deleted = 0
    through = 0
    while True:
        batch = list(OrderEvent.objects.order_by("id").values_list("id", "created_at")[:PRUNE_BATCH])
        old = [event_id for event_id, created_at in itertools.takewhile(lambda row: row[1] < cutoff, batch)]
        if not old:
            break
        with transaction.atomic():
            deleted += OrderEvent.objects.filter(id__lte=old[-1]).delete()[0]
            cursor, _ = ReportCursor.objects.select_for_update().get_or_create(name=PRUNED_CURSOR)
            cursor.position = max(cursor.position, old[-1])
            cursor.updated_at = timezone.now()
            cursor.save(update_fields=["position", "updated_at"])
            through = cursor.position
        if len(old) < len(batch):
            break
    return deleted, through


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``90m``, ``30s`` (a whole number and a unit) as a timedelta; ValueError otherwise."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or not text[:-1].isascii():
        raise ValueError(f"{text!r} is not a duration like 7d, 12h, 90m or 30s")
    return timedelta(**{units[text[-1]]: int(text[:-1])})
