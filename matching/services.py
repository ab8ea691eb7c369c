"""Matching against the database: rows in, engine, fills and order updates out.

Under the instrument's lock, every order of the instrument that waits for a
matching pass is crossed, in arrival order, against the resting book; fills and
order updates commit in one transaction (SPEC §5). One pass takes every
instrument with orders waiting, each under its own lock, in one transaction.
"""

import functools
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from matching.engine import BookOrder, OrderBook
from matching.locks import instrument_ensure, instruments_lock
from matching.models import OrderMatch
from orders import transitions
from orders.models import Order
from orders.plans import RoutePlan
from ordersite import metrics
from ordersite.db import compiled_rows, insert_rows, retry_on_deadlock

# Upper bound on the incoming orders one pass takes per instrument; the rest wait for the next pass.
MATCH_BATCH_SIZE = 500
# Upper bound on the instruments one pass takes (one transaction; their locks in ISIN order).
PASS_INSTRUMENTS = 50
# How many orders this process remembers its passes took (oldest forgotten first).
TAKEN_MEMORY = 20_000

# Order id -> its placement_attempts when one of this process's committed passes took it.
_taken: dict[str, int] = {}


def order_taken_by_pass(order_id, attempts: int) -> bool:
    """Whether a pass of this process took the order while it waited after ``attempts`` attempts.

    Each wait of an order for a matching pass (its arrival, then a return to the book
    after an attempt) has its own ``placement_attempts``, so a task queued for that
    wait has nothing left to do. Not remembered (another process's pass, or forgotten):
    False, and the task asks the database.
    """
    return _taken.get(str(order_id)) == attempts


def _remember_taken(orders: list[Order]) -> None:
    for order in orders:
        _taken[str(order.pk)] = order.placement_attempts
    while len(_taken) > TAKEN_MEMORY:
        del _taken[next(iter(_taken))]


@retry_on_deadlock
def instrument_match_pending(*, isin: str, now: datetime | None = None) -> list[RoutePlan]:
    """Run a matching pass over ``isin``; return the orders it left resting, with due times.

    The same pass, in the same transaction, takes every other instrument with orders
    awaiting a match (up to ``PASS_INSTRUMENTS`` in all): their tasks then find their
    orders taken (``order_taken_by_pass``) and skip the database, so a pass's fixed
    statements serve every order that arrived since the last one.
    """
    isins = _instruments_awaiting(isin)
    if not isins:
        return []  # an earlier pass took this order with its batch
    for each in isins:
        instrument_ensure(each)
    with transaction.atomic():
        instruments_lock(isins)
        now = now or timezone.now()
        # Lock the rows by primary key, in key order: single-row compare-and-set
        # updates (claim, cancel, outcomes) lock the same key first, so the two
        # never wait on each other in opposite orders. A locking read returns the
        # latest version, so an order claimed or cancelled meanwhile is seen as such.
        ids = [pk for (pk,) in _in_book_or_pending(isins).values_list("pk")]
        books: dict[str, list[Order]] = {}
        for order in Order.objects.select_for_update().filter(pk__in=ids).order_by("pk"):
            if order.status in Order.WORKING_STATUSES:
                books.setdefault(order.instrument, []).append(order)
        passes = [_instrument_pass(each, books.get(each, []), now) for each in isins]
        passes = [each for each in passes if each.pending]
        if not passes:
            return []
        pending = [order for each in passes for order in each.pending]
        transaction.on_commit(functools.partial(_remember_taken, pending))
        return _save(passes, now)


def _instruments_awaiting(isin: str) -> list[str]:
    """Instruments with orders awaiting a match, PASS_INSTRUMENTS at most: ``isin`` first if it has any."""
    found = [
        each
        for (each,) in compiled_rows(
            "instruments awaiting match",
            lambda: (
                Order.objects.awaiting_match()
                .order_by()
                .values_list("instrument")
                .distinct()[: PASS_INSTRUMENTS - 1]
            ),
        )
    ]
    if isin in found:
        found.remove(isin)
    elif len(found) < PASS_INSTRUMENTS - 1:
        # The list is whole: ``isin`` has nothing awaiting.
        return found
    # Not known to be empty: the pass looks at it under its lock.
    return [isin, *found]


def _in_book_or_pending(isins: list[str]):
    return (
        Order.objects.working()
        .filter(instrument__in=isins)
        .filter(Q(needs_match=True) | Q(in_flight=False, remaining_quantity__gt=0))
        .order_by()
    )


@dataclass
class _Pass:
    """One instrument's part of a pass: the crossing done in memory, saved with the others."""

    isin: str
    pending: list[Order]
    rows: dict = field(default_factory=dict)
    matches: list[OrderMatch] = field(default_factory=list)
    changed: dict = field(default_factory=dict)
    plans: list[RoutePlan] = field(default_factory=list)


def _instrument_pass(isin: str, rows: list[Order], now: datetime) -> _Pass:
    """Cross the instrument's incoming orders, in arrival order, against its resting book."""
    pending = sorted((order for order in rows if order.needs_match), key=_arrival)[:MATCH_BATCH_SIZE]
    result = _Pass(isin=isin, pending=pending)
    if not pending:
        return result
    resting = [
        order
        for order in rows
        if not order.needs_match
        and not order.in_flight
        and order.remaining_quantity > 0
        and order.time_in_force not in transitions.IMMEDIATE  # IOC/FOK never rest
    ]
    result.rows = {order.pk: order for order in (*resting, *pending)}
    # Time priority is arrival order, as a sequence number for the engine.
    arrival = sorted(result.rows.values(), key=_arrival)
    sequence = {order.pk: position for position, order in enumerate(arrival)}
    book = OrderBook(_book_order(order, sequence) for order in resting)

    for order in pending:
        incoming = _book_order(order, sequence)
        # A FOK order goes to the venue whole: a partial internal cross would break all-or-nothing.
        fills = [] if order.time_in_force == Order.TimeInForce.FOK else book.match(incoming)
        for fill in fills:
            result.matches.append(
                OrderMatch(
                    buy_order_id=fill.buy_id,
                    sell_order_id=fill.sell_id,
                    instrument=isin,
                    quantity=fill.quantity,
                    price=fill.price,
                    matched_at=now,
                )
            )
            for order_id in (fill.incoming_id, fill.resting_id):
                fields = transitions.order_fill_internally(result.rows[order_id], fill.quantity, fill.price)
                result.changed.setdefault(order_id, set()).update(fields)
        result.changed.setdefault(order.pk, set()).update(transitions.order_finish_match_pass(order, now))
        if order.remaining_quantity > 0 and order.time_in_force not in transitions.IMMEDIATE:
            book.add(incoming)
    # Resting orders that were only partly filled keep the plan they already have.
    result.plans = [
        RoutePlan(order_id=order.pk, instrument=isin, route_at=order.route_at)
        for order in pending
        if order.remaining_quantity > 0
    ]
    return result


def _save(passes: list[_Pass], now: datetime) -> list[RoutePlan]:
    """Save every instrument's part of the pass: one INSERT of fills, one UPDATE, one INSERT of events."""
    matches = [match for each in passes for match in each.matches]
    insert_rows(matches)
    if matches:  # counted once committed: a deadlock victim's retry would count twice
        transaction.on_commit(functools.partial(metrics.fills_committed, len(matches)))
    changed, filled = {}, []
    for each in passes:
        changed.update({each.rows[order_id]: fields for order_id, fields in each.changed.items()})
        sides = (order_id for match in each.matches for order_id in (match.buy_order_id, match.sell_order_id))
        filled += [each.rows[order_id] for order_id in sorted(set(sides), key=str)]
    transitions.orders_save_match_pass(changed, filled, now)
    return [plan for each in passes for plan in each.plans]


def _arrival(order: Order) -> tuple:
    """Time priority: arrival order, ties broken by key."""
    return order.created_at, str(order.pk)


def _book_order(order: Order, sequence: dict) -> BookOrder:
    return BookOrder(
        id=order.pk,
        side=order.side,
        price=order.limit_price,
        remaining=order.remaining_quantity,
        sequence=sequence[order.pk],
    )
