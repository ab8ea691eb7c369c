"""Writes to orders: create, cancel, reprocess (STYLE: services own every write)."""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.errors import ClientOrderIdConflict, OrderNotCancellable, OrderNotReprocessable
from orders.models import Order
from ordersite import metrics
from ordersite.db import retry_on_deadlock


def order_create(
    *,
    owner,
    type: str,
    side: str,
    instrument: str,
    quantity: int,
    limit_price: Decimal | None = None,
    client_order_id: str | None = None,
) -> tuple[Order, bool]:
    """Store a new order and, in the same transaction, the intent to process it.

    Returns ``(order, created)``. A replay of the same ``client_order_id`` with the
    same payload returns the existing order with ``created=False``; with a
    different payload it raises ``ClientOrderIdConflict``.
    """
    order = Order(
        owner=owner,
        type=type,
        side=side,
        instrument=instrument,
        quantity=quantity,
        remaining_quantity=quantity,
        limit_price=limit_price,
        client_order_id=client_order_id,
    )
    try:
        # The post_save receiver queues processing inside this block: the queue
        # row (ORM broker) commits or rolls back together with the order.
        with transaction.atomic():
            order.save(force_insert=True)
    except IntegrityError:
        if client_order_id is None:
            raise
        existing = Order.objects.filter(owner=owner, client_order_id=client_order_id).first()
        if existing is None:
            raise
        if not _same_payload(existing, order):
            raise ClientOrderIdConflict() from None
        return existing, False
    metrics.order_accepted()
    return order, True


def _same_payload(existing: Order, new: Order) -> bool:
    fields = ("type", "side", "instrument", "quantity", "limit_price")
    return all(getattr(existing, name) == getattr(new, name) for name in fields)


@retry_on_deadlock
def order_cancel(*, order: Order) -> Order:
    """Cancel an order resting in the internal book with no exchange call in flight.

    One compare-and-set UPDATE: it waits for a matching pass holding the row and
    then sees its outcome, and it cannot overtake a claim for the exchange.
    """
    cancelled = Order.objects.filter(pk=order.pk, status__in=Order.WORKING_STATUSES, in_flight=False).update(
        status=Order.Status.CANCELLED,
        remaining_quantity=0,
        needs_match=False,
        route_at=None,
        updated_at=timezone.now(),
    )
    order.refresh_from_db()
    if not cancelled:
        raise OrderNotCancellable(order)
    return order


def order_reprocess(*, order: Order) -> Order:
    """Put a FAILED order's unfilled quantity back to work (SPEC §4: explicit reprocess).

    The order re-enters the pipeline as if it had just arrived: matched and placed
    quantities stay, the rest is working again, and the placement deadline restarts.
    """
    from orders.tasks import enqueue_order_processing

    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.FAILED:
            raise OrderNotReprocessable(order)
        order.remaining_quantity = order.quantity - order.matched_quantity - order.placed_quantity
        order.status = Order.Status.PARTIAL if order.matched_quantity else Order.Status.OPEN
        order.failure_reason = ""
        order.needs_match = True
        order.in_flight = False
        order.route_at = None
        order.first_attempt_at = None
        order.save_changes(
            "remaining_quantity",
            "status",
            "failure_reason",
            "needs_match",
            "in_flight",
            "route_at",
            "first_attempt_at",
        )
        enqueue_order_processing(order.pk, order.instrument)
    return order
