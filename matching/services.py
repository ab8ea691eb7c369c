"""Matching against the database: rows in, engine, fills and order updates out.

Under the instrument's lock, every order of the instrument that waits for a
matching pass is crossed, in arrival order, against the resting book; fills and
order updates commit in one transaction (SPEC §5).
"""

import functools
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from matching.engine import BookOrder, OrderBook
from matching.locks import instrument_ensure, instrument_lock
from matching.models import OrderMatch
from orders import transitions
from orders.models import Order
from orders.plans import RoutePlan
from ordersite import metrics
from ordersite.db import compiled_rows, retry_on_deadlock

# Upper bound on the incoming orders one pass takes; the rest wait for the next pass.
MATCH_BATCH_SIZE = 500
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
    """Run one matching pass over ``isin``; return the orders it left resting, with due times."""
    if not compiled_rows(("awaiting match", isin), lambda: _awaiting_match(isin).values_list("pk")[:1]):
        return []  # an earlier pass took this order with its batch
    instrument_ensure(isin)
    with transaction.atomic():
        instrument_lock(isin)
        now = now or timezone.now()
        # Lock the rows by primary key, in key order: single-row compare-and-set
        # updates (claim, cancel, outcomes) lock the same key first, so the two
        # never wait on each other in opposite orders. A locking read returns the
        # latest version, so an order claimed or cancelled meanwhile is seen as such.
        ids = [
            pk for (pk,) in compiled_rows(("book", isin), lambda: _in_book_or_pending(isin).values_list("pk"))
        ]
        rows = [
            order
            for order in Order.objects.select_for_update().filter(pk__in=ids).order_by("pk")
            if order.status in Order.WORKING_STATUSES
        ]
        pending = sorted(
            (order for order in rows if order.needs_match), key=lambda o: (o.created_at, str(o.pk))
        )[:MATCH_BATCH_SIZE]
        if not pending:
            return []
        resting = [
            order
            for order in rows
            if not order.needs_match
            and not order.in_flight
            and order.remaining_quantity > 0
            and order.time_in_force not in transitions.IMMEDIATE  # IOC/FOK never rest
        ]
        transaction.on_commit(functools.partial(_remember_taken, pending))
        return _match(isin, pending, resting, now)


def _awaiting_match(isin: str):
    return Order.objects.awaiting_match().filter(instrument=isin)


def _in_book_or_pending(isin: str):
    return (
        Order.objects.working()
        .filter(instrument=isin)
        .filter(Q(needs_match=True) | Q(in_flight=False, remaining_quantity__gt=0))
    )


def _match(isin: str, pending: list[Order], resting: list[Order], now: datetime) -> list[RoutePlan]:
    rows = {order.pk: order for order in (*resting, *pending)}
    # Time priority is arrival order, as a sequence number for the engine.
    sequence = {
        order.pk: position
        for position, order in enumerate(sorted(rows.values(), key=lambda o: (o.created_at, str(o.pk))))
    }
    book = OrderBook(_book_order(order, sequence) for order in resting)
    matches: list[OrderMatch] = []
    changed: dict[object, set[str]] = {}

    for order in pending:
        incoming = _book_order(order, sequence)
        # A FOK order goes to the venue whole: a partial internal cross would break all-or-nothing.
        fills = [] if order.time_in_force == Order.TimeInForce.FOK else book.match(incoming)
        for fill in fills:
            price = fill.price
            matches.append(
                OrderMatch(
                    buy_order_id=fill.buy_id,
                    sell_order_id=fill.sell_id,
                    instrument=isin,
                    quantity=fill.quantity,
                    price=price,
                    matched_at=now,
                )
            )
            for order_id in (fill.incoming_id, fill.resting_id):
                fields = transitions.order_fill_internally(rows[order_id], fill.quantity, price)
                changed.setdefault(order_id, set()).update(fields)
        changed.setdefault(order.pk, set()).update(transitions.order_finish_match_pass(order, now))
        if order.remaining_quantity > 0 and order.time_in_force not in transitions.IMMEDIATE:
            book.add(incoming)

    OrderMatch.objects.bulk_create(matches)
    if matches:  # counted once committed: a deadlock victim's retry would count twice
        transaction.on_commit(functools.partial(metrics.fills_committed, len(matches)))
    filled = {order_id for match in matches for order_id in (match.buy_order_id, match.sell_order_id)}
    transitions.orders_save_match_pass(
        {rows[order_id]: fields for order_id, fields in changed.items()},
        [rows[order_id] for order_id in sorted(filled, key=str)],
        now,
    )
    # Resting orders that were only partly filled keep the plan they already have.
    return [
        RoutePlan(order_id=order.pk, instrument=isin, route_at=order.route_at)
        for order in pending
        if order.remaining_quantity > 0
    ]


def _book_order(order: Order, sequence: dict) -> BookOrder:
    return BookOrder(
        id=order.pk,
        side=order.side,
        price=order.limit_price,
        remaining=order.remaining_quantity,
        sequence=sequence[order.pk],
    )
