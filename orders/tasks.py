"""django-q2 tasks: thin wrappers that take an id and call a service (STYLE)."""

import logging

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

from ordersite import metrics
from ordersite.db import retry_once_on_lost_connection

logger = logging.getLogger("orders.tasks")

PROCESS_ORDER_TASK = "orders.tasks.process_order"
SWEEP_TASK = "orders.tasks.sweep"


def enqueue_order_processing(order_id, instrument: str, attempts: int) -> None:
    """Queue the processing of one order, durably with the caller's transaction.

    ``attempts`` is the order's ``placement_attempts`` now: it names this wait for a
    matching pass (each later one follows another placement attempt), so a worker
    whose own pass already took the order in it can skip the task
    (``orders.pipeline.order_process``).

    With the ORM broker on the default database the queue row is written in the
    caller's transaction (an outbox for free); with Redis it is pushed only once
    the transaction has committed; a failed push is logged, never raised, because
    the order is stored by then, and the sweeper re-drives it.
    """
    # The instrument rides along so the worker need not look the order up to find its book.
    args = (PROCESS_ORDER_TASK, str(order_id), instrument, attempts)
    if "orm" in settings.Q_CLUSTER:
        async_task(*args, task_name=f"process-{order_id}", broker=_broker())
    else:
        transaction.on_commit(lambda: _push_after_commit(order_id, args))


_brokers: dict = {}


def _broker():
    """This process's broker for the configured queue (django-q2 builds one per task otherwise)."""
    key = repr((Conf.BROKER_CLASS, Conf.ORM, Conf.REDIS, Conf.CLUSTER_NAME))
    broker = _brokers.get(key)
    if broker is None:
        broker = _brokers[key] = get_broker()
    return broker


def _push_after_commit(order_id, args) -> None:
    try:
        async_task(*args, task_name=f"process-{order_id}", broker=_broker())
    except Exception as exc:
        metrics.processing_push_failed()
        logger.error(
            "order %s: stored, but queueing its processing failed (%s: %s); the sweeper will re-drive it",
            order_id,
            type(exc).__name__,
            exc,
            extra={"order_id": order_id},
        )


@retry_once_on_lost_connection
def process_order(order_id: str, instrument: str | None = None, attempts: int | None = None) -> None:
    from orders.pipeline import order_process

    order_process(order_id=order_id, instrument=instrument, attempts=attempts)


@retry_once_on_lost_connection
def sweep() -> None:
    from orders.pipeline import pipeline_sweep

    pipeline_sweep()
