"""Writing the order event log (SPEC §10): called by ``orders/transitions.py`` only.

``events_record`` renders each order as the API shows it and inserts its events in
the caller's transaction, one multi-row INSERT per call, or per ``events_batch()``
block where a transition runs many times in one transaction (venue reports). After
the commit, with ``REDIS_URL``, one message wakes the streams (``orders/event_stream.py``);
that publish never raises into the caller.
"""

import contextlib
import json
import logging
import threading
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderEvent

logger = logging.getLogger("orders.events")

WAKE_CHANNEL = "orders:events"

_local = threading.local()


def order_payload(order: Order) -> str:
    """The order as ``GET /orders/{id}`` shows its fields, as JSON text."""
    from orders.api.serializers import order_representation

    return json.dumps(order_representation(order), cls=DjangoJSONEncoder, separators=(",", ":"))


def events_record(changes: Iterable[tuple[Order, str]], now: datetime | None = None) -> int:
    """Insert one event per ``(order, event name)``, the order as it is now; returns how many."""
    now = now or timezone.now()
    rows = [
        OrderEvent(
            order_id=order.pk,
            owner_id=order.owner_id,
            name=name,
            instrument=order.instrument,
            status=order.status,
            payload=order_payload(order),
            created_at=now,
        )
        for order, name in changes
    ]
    if not rows:
        return 0
    batch = getattr(_local, "batch", None)
    if batch is not None:
        batch.extend(rows)
    else:
        _insert(rows)
    return len(rows)


@contextlib.contextmanager
def events_batch():
    """Collect the events recorded inside the block and insert them in one statement at its end.

    Use inside the transaction of the changes: an exception discards them with it.
    """
    if getattr(_local, "batch", None) is not None:
        yield  # already batching: the outer block inserts
        return
    _local.batch = []
    try:
        yield
        rows = _local.batch
    finally:
        _local.batch = None
    _insert(rows)


def _insert(rows: list[OrderEvent]) -> None:
    if not rows:
        return
    # Plain multi-row INSERT ... VALUES: InnoDB gives its rows consecutive ids without
    # reserving spares (an INSERT ... SELECT may leave gaps; event_stream.py copes either way).
    OrderEvent.objects.bulk_create(rows, batch_size=1000)
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
