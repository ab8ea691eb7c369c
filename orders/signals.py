"""Signal receivers: they only hand work to the queue (STYLE)."""

from orders.tasks import enqueue_order_processing


def order_created_queue_processing(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        enqueue_order_processing(instance.pk, instance.instrument, instance.placement_attempts)
