"""Every change of an order's state, and nothing else: the one module that writes status.

Each transition is a named function. Where it can race (claims, exchange outcomes,
cancels) it is a compare-and-set UPDATE whose WHERE clause states the state it
leaves, and it returns how many orders it moved; where the caller holds the row
locks (a matching pass, a reprocess) it changes the loaded order and saves the
named fields. Services decide; this module only moves orders between states
(SPEC §4-§6, docs/architecture.md). Nothing here logs or talks to the exchange.

Every change a client can see also writes its order event (SPEC §10,
``orders/events.py``) in the same transaction: a compare-and-set transition locks
the rows its WHERE clause names, moves exactly those and records an event for each,
so an event exists if and only if its change committed.
"""

import functools
import operator
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.events import events_record
from orders.models import Order, OrderEvent
from ordersite.db import update_rows

S = Order.Status
E = OrderEvent.Name
IMMEDIATE = (Order.TimeInForce.IOC, Order.TimeInForce.FOK)

# --- Internal matching (the caller holds the instrument lock and the rows) ----------


def order_fill_internally(order: Order, quantity: int, price: Decimal) -> set[str]:
    """One internal fill against ``order``; returns the fields it changed (unsaved)."""
    order.matched_quantity += quantity
    order.matched_notional += price * quantity
    order.filled_quantity += quantity
    order.filled_notional += price * quantity
    order.remaining_quantity -= quantity
    order.status = S.MATCHED if order.remaining_quantity == 0 else S.PARTIAL
    return {
        "matched_quantity",
        "matched_notional",
        "filled_quantity",
        "filled_notional",
        "remaining_quantity",
        "status",
    }


def order_finish_match_pass(order: Order, now: datetime) -> set[str]:
    """The incoming order had its pass: what is left rests, due at the exchange after the window."""
    order.needs_match = False
    fields = {"needs_match"}
    if order.remaining_quantity > 0 and order.route_at is None:
        # IOC and FOK never rest in the internal book: what is left goes out at once.
        window = 0 if order.time_in_force in IMMEDIATE else settings.MATCHING_WINDOW
        order.route_at = now + timedelta(seconds=window)
        fields.add("route_at")
    return fields


def order_save(order: Order, fields: Iterable[str]) -> None:
    order.save_changes(*sorted(fields))


def orders_save_match_pass(changed: dict, filled: Iterable, now: datetime) -> None:
    """Save a matching pass (``{order: fields}``, rows locked) and record the fills' events.

    An order fully matched internally is ``matched``; one partly matched is
    ``partially_filled``: its filled quantity grew, as with a venue fill (SPEC §9
    counts internal matches as executions). One event per order per pass.

    One UPDATE for the pass: every order gets the union of the changed fields, which
    for an order that did not change one is the value read under its row lock.
    """
    if changed:
        stamp = timezone.now()
        for order in changed:
            order.updated_at = stamp
        update_rows(list(changed), sorted(set().union(*changed.values(), {"updated_at"})))
    events_record(
        ((order, E.MATCHED if order.status == S.MATCHED else E.PARTIALLY_FILLED) for order in filled), now
    )


def order_created(order: Order) -> None:
    """A new order was inserted (the caller's transaction): its ``accepted`` event."""
    events_record([(order, E.ACCEPTED)], order.created_at)


def _move(rows, name: str | None, now: datetime, **changes) -> int:
    """Compare-and-set: lock the orders ``rows`` selects, move exactly those, record ``name`` for each.

    The locking read takes the rows in key order (as matching does); the UPDATE then
    names them by key, so the events are for exactly the rows that moved.
    """
    with transaction.atomic():
        ids = list(rows.select_for_update().order_by("pk").values_list("pk", flat=True))
        if not ids:
            return 0
        moved = Order.objects.filter(pk__in=ids).update(**changes)
        if name is not None:
            events_record(((order, name) for order in Order.objects.filter(pk__in=ids).order_by("pk")), now)
    return moved


# --- Exchange claims and outcomes (compare-and-set) ------------------------------------


def orders_claim_for_call(order_ids: list, now: datetime) -> int:
    """Take due orders out of the book for a new exchange attempt each.

    Only orders still resting and due are claimed; matching reads the book with row
    locks, so an order is either crossed internally or sent, never both.
    """
    if not order_ids:
        return 0
    return (
        Order.objects.resting()
        .filter(pk__in=order_ids)
        .filter(Q(route_at__isnull=True) | Q(route_at__lte=now))
        .update(
            in_flight=True,
            placement_attempts=F("placement_attempts") + 1,
            last_attempt_at=now,
            first_attempt_at=Coalesce("first_attempt_at", Value(now, output_field=DateTimeField())),
            updated_at=now,
        )
    )


def orders_claim_for_status(attempts: list[tuple], now: datetime) -> int:
    """Claim in-flight orders whose ``(order id, attempt)`` outcome is unknown, to ask the exchange.

    The order stays in flight; only the attempt still holding the order matches.
    """
    if not attempts:
        return 0
    return Order.objects.filter(_current(attempts)).update(last_attempt_at=now, updated_at=now)


def orders_accept(attempts: list[tuple], now: datetime) -> int:
    """The exchange holds the remainders sent by these ``(order id, attempt)``: SUBMITTED.

    One UPDATE for the batch; nothing changes an order's quantities while it is in
    flight, so the remainder in the row is the one that was sent.
    """
    if not attempts:
        return 0
    return _move(
        Order.objects.filter(_current(attempts)), E.SUBMITTED, now, **_submitted(F("remaining_quantity"), now)
    )


def order_accept_other_quantity(order_id, attempt: int, quantity: int, now: datetime) -> int:
    """SUBMITTED with what the exchange holds, which is not the remainder we sent.

    The exchange's figure becomes the placed quantity, as the truth about what is
    live there; the caller reports the difference.
    """
    return _move(
        Order.objects.filter(_current([(order_id, attempt)])),
        E.SUBMITTED,
        now,
        **_submitted(Value(quantity), now),
        last_error=f"The exchange holds {quantity}, not the remainder that was sent",
    )


def _submitted(placed, now: datetime) -> dict:
    return {
        "placed_quantity": F("placed_quantity") + placed,
        "remaining_quantity": 0,
        "status": S.SUBMITTED,
        "in_flight": False,
        "route_at": None,
        "updated_at": now,
    }


def order_return_to_book(order_id, attempt: int, *, retry_at: datetime, error: str, now: datetime) -> int:
    """The exchange definitely does not hold the order: back in the book, due again at ``retry_at``.

    It waits for a matching pass first (``needs_match``), so it can cross what
    arrived while it was away.
    """
    return Order.objects.filter(_current([(order_id, attempt)])).update(
        in_flight=False, needs_match=True, route_at=retry_at, last_error=error, updated_at=now
    )


def order_fail(order_id, attempt: int, *, reason: str, error: str, now: datetime) -> int:
    """Placement gave up on an order the exchange definitely does not hold: FAILED."""
    return _move(
        Order.objects.filter(_current([(order_id, attempt)])),
        E.FAILED,
        now,
        status=S.FAILED,
        failure_reason=reason,
        last_error=error,
        cancelled_quantity=F("quantity") - F("filled_quantity"),
        remaining_quantity=0,
        in_flight=False,
        route_at=None,
        updated_at=now,
    )


def order_apply_venue(
    order: Order,
    fields,
    *,
    venue_status: str,
    venue_cum_quantity: int,
    venue_notional: Decimal,
    placed_quantity: int,
    failure_reason: str,
    now: datetime,
    save: bool = True,
) -> None:
    """What the venue reported, folded (``orders/reports.py``), onto a locked order row.

    ``fields`` are the public fields the fold computed (status, filled, remaining,
    cancelled); the order is out of flight once the venue has answered about it.
    With ``save=False`` only the instance changes: the caller writes ``VENUE_FIELDS``
    (the batch apply writes each order once per batch). Its event, if the change is
    one a client sees, is named by ``_venue_event`` and recorded in the caller's
    transaction either way, with the order as it is after this report.
    """
    before = (order.status, order.filled_quantity)
    order.status = fields.status
    order.filled_quantity = fields.filled_quantity
    order.filled_notional = order.matched_notional + venue_notional
    order.remaining_quantity = fields.remaining_quantity
    order.cancelled_quantity = fields.cancelled_quantity
    order.placed_quantity = placed_quantity
    order.venue_status = venue_status
    order.venue_cum_quantity = venue_cum_quantity
    order.in_flight = False
    order.route_at = None
    order.failure_reason = failure_reason
    order.updated_at = now
    if save:
        order.save(update_fields=VENUE_FIELDS)
    name = _venue_event(*before, order)
    if name is not None:
        events_record([(order, name)], now)


def _venue_event(status_before: str, filled_before: int, order: Order) -> str | None:
    """The event a venue report makes of an order's change, or None when a client sees none."""
    final = {S.FILLED: E.FILLED, S.CANCELLED: E.CANCELLED, S.EXPIRED: E.EXPIRED, S.REJECTED: E.REJECTED}
    if order.status in final:
        return final[order.status] if order.status != status_before else None
    if status_before == S.PENDING_CANCEL and order.status != S.PENDING_CANCEL:
        return E.CANCEL_REJECTED  # back to working: the venue refused the cancel
    if order.filled_quantity > filled_before:
        return E.PARTIALLY_FILLED
    if order.status == S.SUBMITTED and status_before != S.SUBMITTED:
        return E.SUBMITTED
    return None


VENUE_FIELDS = (
    "status",
    "filled_quantity",
    "filled_notional",
    "remaining_quantity",
    "cancelled_quantity",
    "placed_quantity",
    "venue_status",
    "venue_cum_quantity",
    "in_flight",
    "route_at",
    "failure_reason",
    "updated_at",
)


def order_request_venue_cancel(order_id, now: datetime) -> int:
    """PENDING_CANCEL for an order working at the venue with no call in flight (the cancel goes out).

    Only an order the venue itself has reported on (``venue_status``): the in-process
    exchange of SPEC §6 takes no cancels.
    """
    return (
        Order.objects.filter(pk=order_id, status__in=(S.SUBMITTED, S.PARTIALLY_FILLED), in_flight=False)
        .exclude(venue_status="")
        .update(status=S.PENDING_CANCEL, updated_at=now)
    )


def _current(attempts: list[tuple]) -> Q:
    """Orders still in flight for the given ``(order id, attempt)``: a stale attempt matches nothing."""
    return Q(status__in=Order.WORKING_STATUSES, in_flight=True) & functools.reduce(
        operator.or_, (Q(pk=pk, placement_attempts=attempt) for pk, attempt in attempts)
    )


# --- Cancel and reprocess ---------------------------------------------------------------

REPROCESS_FIELDS = (
    "remaining_quantity",
    "cancelled_quantity",
    "status",
    "failure_reason",
    "needs_match",
    "in_flight",
    "route_at",
    "first_attempt_at",
)
RECONCILE_FIELDS = (
    "placed_quantity",
    "remaining_quantity",
    "status",
    "failure_reason",
    "in_flight",
    "route_at",
)


def order_cancel_in_book(order_id, now: datetime) -> int:
    """CANCELLED, while the order is working in our book with no exchange call in flight.

    It waits for a matching pass holding the row and then sees its outcome, and it
    cannot overtake a claim for the exchange.
    """
    return _move(
        Order.objects.working().filter(pk=order_id, in_flight=False),
        E.CANCELLED,
        now,
        status=S.CANCELLED,
        # In our book nothing is placed: what is not filled is what is cancelled.
        cancelled_quantity=F("quantity") - F("filled_quantity"),
        remaining_quantity=0,
        needs_match=False,
        route_at=None,
        updated_at=now,
    )


def order_reprocess(order: Order, *, awaiting_venue: bool = False) -> None:
    """A FAILED order (row locked) the exchange does not hold goes back to work as a new arrival.

    Matched and placed quantities stay; the rest works again and the placement
    deadline restarts. ``awaiting_venue``: the venue has yet to say it does not hold
    the order, so it waits in flight (out of the book) for that answer.
    """
    order.remaining_quantity = order.quantity - order.matched_quantity - order.placed_quantity
    order.cancelled_quantity = 0
    order.status = S.PARTIAL if order.matched_quantity else S.OPEN
    order.failure_reason = ""
    order.needs_match = not awaiting_venue
    order.in_flight = awaiting_venue
    order.route_at = None
    order.first_attempt_at = None
    order_save(order, REPROCESS_FIELDS)
    # It works again as if it had just arrived: to a client, accepted again.
    events_record([(order, E.ACCEPTED)], order.updated_at)


def order_reconcile_held(order: Order, quantity: int) -> None:
    """A FAILED order (row locked) that the exchange says it holds: SUBMITTED with that quantity."""
    order.placed_quantity += quantity
    order.remaining_quantity = 0
    order.cancelled_quantity = 0
    order.status = S.SUBMITTED
    order.failure_reason = ""
    order.in_flight = False
    order.route_at = None
    order_save(order, RECONCILE_FIELDS)
    events_record([(order, E.SUBMITTED)], order.updated_at)
