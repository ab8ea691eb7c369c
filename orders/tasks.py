"""django-q2 tasks: thin wrappers that take an id and call a service (STYLE)."""

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

PROCESS_ORDER_TASK = "orders.tasks.process_order"
SWEEP_TASK = "orders.tasks.sweep"


def enqueue_order_processing(order_id, instrument: str) -> None:
    """Queue the processing of one order, durably with the caller's transaction.

    With the ORM broker on the default database the queue row is written in the
    caller's transaction (an outbox for free); with Redis it is pushed only once
    the transaction has committed. The sweeper covers a push lost in between.
    """
    # The instrument rides along so the worker need not look the order up to find its book.
    args = (PROCESS_ORDER_TASK, str(order_id), instrument)
    if "orm" in settings.Q_CLUSTER:
        async_task(*args, task_name=f"process-{order_id}")
    else:
        transaction.on_commit(lambda: async_task(*args, task_name=f"process-{order_id}"))


def process_order(order_id: str, instrument: str | None = None) -> None:
    from orders.pipeline import order_process

    order_process(order_id=order_id, instrument=instrument)


def sweep() -> None:
    from orders.pipeline import pipeline_sweep

    pipeline_sweep()
