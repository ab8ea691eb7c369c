"""Writes to orders: create, cancel, reprocess (STYLE: services decide, ``transitions`` moves)."""

import logging
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from exchange.gateway import ExchangeError, get_exchange
from orders import transitions
from orders.errors import (
    ClientOrderIdConflict,
    ExchangeStatusUnknown,
    OrderNotCancellable,
    OrderNotReprocessable,
)
from orders.models import Order
from ordersite import metrics
from ordersite.db import retry_on_deadlock

logger = logging.getLogger("orders.services")


def order_create(
    *,
    owner,
    type: str,
    side: str,
    instrument: str,
    quantity: int,
    limit_price: Decimal | None = None,
    client_order_id: str | None = None,
    time_in_force: str = Order.TimeInForce.DAY,
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
        time_in_force=time_in_force,
    )
    try:
        # The post_save receiver queues processing inside this block: the queue
        # row (ORM broker) commits or rolls back together with the order.
        with transaction.atomic():
            order.save(force_insert=True)
            transitions.order_created(order)
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
    fields = ("type", "side", "instrument", "quantity", "limit_price", "time_in_force")
    return all(getattr(existing, name) == getattr(new, name) for name in fields)


@retry_on_deadlock
def order_cancel(*, order: Order) -> Order:
    """Cancel an order: at once in our book, or at the venue (SPEC §9).

    In the internal book with no exchange call in flight it is CANCELLED now. Working
    at the venue it becomes PENDING_CANCEL and the cancel goes out; the venue's answer
    makes it CANCELLED, or puts it back to working. Anything else is not cancellable.
    """
    from orders.venue import venue_cancel

    now = timezone.now()
    cancelled = transitions.order_cancel_in_book(order.pk, now) or venue_cancel(order, now)
    order.refresh_from_db()
    if not cancelled:
        raise OrderNotCancellable(order)
    return order


def order_reprocess(*, order: Order, exchange=None) -> Order:
    """Put a FAILED order's unfilled quantity back to work (SPEC §4: explicit reprocess).

    First the exchange is asked whether it holds the order (SPEC §6: only its answer
    ends the doubt). Held: the order is reconciled to SUBMITTED with what the
    exchange holds. Not held: it re-enters the pipeline as if it had just arrived —
    matched and placed quantities stay, the rest works again, the placement
    deadline restarts. No answer: nothing changes and ``ExchangeStatusUnknown`` says so.

    With the venue the question is an OrderStatusRequest and its answer a report:
    the order waits in flight for it (``_order_reprocess_via_venue``).
    """
    from orders.tasks import enqueue_order_processing

    if Order.objects.filter(pk=order.pk).values_list("status", flat=True).first() != Order.Status.FAILED:
        order.refresh_from_db()
        raise OrderNotReprocessable(order)
    if settings.EXCHANGE_TRANSPORT == "venue" and exchange is None:
        return _order_reprocess_via_venue(order)
    try:
        status = (exchange or get_exchange()).order_status(order.pk)
    except ExchangeError as exc:
        raise ExchangeStatusUnknown(order, exc) from exc
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.FAILED:
            raise OrderNotReprocessable(order)
        if status.held:
            transitions.order_reconcile_held(order, status.quantity)
            logger.error(
                "order %s: FAILED but the exchange holds %s; reconciled to SUBMITTED",
                order.pk,
                status.quantity,
                extra={"order_id": order.pk},
            )
            return order
        transitions.order_reprocess(order)
        enqueue_order_processing(order.pk, order.instrument, order.placement_attempts)
    return order


def _order_reprocess_via_venue(order: Order) -> Order:
    """Reprocess through the venue: in flight until it says whether it holds the order.

    "Unknown order" puts the order back in the book as a new arrival (orders/venue.py);
    a report that it holds it makes it what the venue says.
    """
    from orders.venue import venue_ask_status

    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.FAILED:
            raise OrderNotReprocessable(order)
        transitions.order_reprocess(order, awaiting_venue=True)
        venue_ask_status(order)
    return order
