"""The invariants of SPEC §4 and §9, checked over the whole database (and the venue's journal).

Each check is one query returning the offending rows; ``invariant_violations``
lists every violation with the order id. Used by tests, benchmarks and operators.

Two quantity rules: §4's ``matched + placed + remaining == quantity`` for orders
the venue never reported on (the in-process exchange keeps nothing working), and
§9's ``filled + remaining + cancelled == quantity`` for every order but one
SUBMITTED to the in-process exchange, whose placed quantity is neither.
"""

import sqlite3
from pathlib import Path

from django.conf import settings
from django.db.models import F, Q, Sum

from exchange.models import ExchangeOrder
from matching.models import OrderMatch
from orders.models import Execution, Order

S = Order.Status


def invariant_violations(limit: int = 100) -> list[str]:
    violations: list[str] = []
    for check in (
        _quantities,
        _leaves,
        _fills,
        _statuses,
        _match_sums,
        _match_sides,
        _ledger,
        _venue_journal,
    ):
        violations.extend(check(limit))
    return violations


def _quantities(limit):
    bad = (
        Order.objects.filter(venue_status="")
        .filter(
            Q(status__in=[S.OPEN, S.PARTIAL, S.MATCHED, S.SUBMITTED])
            & ~Q(quantity=F("matched_quantity") + F("placed_quantity") + F("remaining_quantity"))
            | Q(status__in=[S.CANCELLED, S.FAILED])
            & (~Q(remaining_quantity=0) | Q(quantity__lt=F("matched_quantity") + F("placed_quantity")))
        )
        .values_list("pk", "status", "quantity", "matched_quantity", "placed_quantity", "remaining_quantity")
    )
    return [
        f"order {pk}: {status} quantity {q} != matched {m} + placed {p} + remaining {r}"
        if status not in (S.CANCELLED, S.FAILED)
        else f"order {pk}: {status} with remaining {r} (matched {m}, placed {p} of {q})"
        for pk, status, q, m, p, r in bad[:limit]
    ]


def _leaves(limit):
    in_process_submitted = Q(status=S.SUBMITTED, venue_status="")
    bad = (
        Order.objects.exclude(in_process_submitted)
        .exclude(quantity=F("filled_quantity") + F("remaining_quantity") + F("cancelled_quantity"))
        .values_list(
            "pk", "status", "quantity", "filled_quantity", "remaining_quantity", "cancelled_quantity"
        )
    )
    return [
        f"order {pk}: {status} quantity {q} != filled {f} + remaining {r} + cancelled {c}"
        for pk, status, q, f, r, c in bad[:limit]
    ]


def _fills(limit):
    """Fills are the internal matches plus the venue's executions, quantity by quantity."""
    bad = (
        Order.objects.annotate(venue=Sum("venue_executions__quantity", default=0))
        .exclude(filled_quantity=F("matched_quantity") + F("venue"))
        .values_list("pk", "filled_quantity", "matched_quantity", "venue")
    )
    return [f"order {pk}: filled {f} != matched {m} + venue executions {v}" for pk, f, m, v in bad[:limit]]


def _statuses(limit):
    rules = {
        "OPEN with matches or placements": Q(status=S.OPEN)
        & (Q(matched_quantity__gt=0) | Q(placed_quantity__gt=0)),
        "PARTIAL without matches": Q(status=S.PARTIAL) & Q(matched_quantity=0),
        "MATCHED but not fully matched": Q(status=S.MATCHED) & ~Q(matched_quantity=F("quantity")),
        "SUBMITTED without a placement": Q(status=S.SUBMITTED) & Q(placed_quantity=0),
        "terminal but in flight": Q(status__in=Order.TERMINAL_STATUSES, in_flight=True),
        "FILLED but not fully filled": Q(status=S.FILLED) & ~Q(filled_quantity=F("quantity")),
        "at the venue but never reported on by it": Q(
            status__in=Order.AT_VENUE_STATUSES[1:], venue_status=""
        ),
    }
    out = []
    for label, condition in rules.items():
        out += [
            f"order {pk}: {label}"
            for pk in Order.objects.filter(condition).values_list("pk", flat=True)[:limit]
        ]
    return out


def _match_sums(limit):
    out = []
    for field, side in (("buy_matches", Order.Side.BUY), ("sell_matches", Order.Side.SELL)):
        bad = (
            Order.objects.filter(side=side)
            .annotate(total=Sum(f"{field}__quantity", default=0))
            .exclude(total=F("matched_quantity"))
            .values_list("pk", "total", "matched_quantity")
        )
        out += [
            f"order {pk}: matches sum to {total}, matched_quantity is {m}" for pk, total, m in bad[:limit]
        ]
    return out


def _match_sides(limit):
    bad = OrderMatch.objects.filter(
        ~Q(buy_order__side=Order.Side.BUY)
        | ~Q(sell_order__side=Order.Side.SELL)
        | ~Q(buy_order__instrument=F("instrument"))
        | ~Q(sell_order__instrument=F("instrument"))
        | Q(buy_order__limit_price__lt=F("price"))
        | Q(sell_order__limit_price__gt=F("price"))
    ).values_list("pk", "buy_order_id", "sell_order_id")
    return [f"match {pk} ({b} x {s}): wrong side, instrument or price" for pk, b, s in bad[:limit]]


def _ledger(limit):
    out = []
    placed = {
        pk: qty
        # The in-process exchange's ledger; orders the venue reported on are checked in _venue_journal.
        for pk, qty in Order.objects.filter(placed_quantity__gt=0, venue_status="").values_list(
            "pk", "placed_quantity"
        )
    }
    ledger = dict(ExchangeOrder.objects.values_list("order_id", "quantity"))
    for pk, qty in placed.items():
        if pk not in ledger:
            out.append(f"order {pk}: placed {qty} but the exchange has no record of it")
        elif ledger[pk] != qty:
            out.append(f"order {pk}: placed {qty} but the exchange accepted {ledger[pk]}")
    # Accepted at the exchange but not (yet) recorded: only fine while the call is in flight.
    unrecorded = set(ledger) - set(placed)
    if unrecorded:
        not_in_flight = Order.objects.filter(pk__in=unrecorded, in_flight=False).values_list("pk", flat=True)
        out += [f"order {pk}: accepted by the exchange but not recorded as placed" for pk in not_in_flight]
    return out[:limit]


def _venue_journal(limit):
    """Our venue fills per order equal the venue journal's; what the venue holds is our placed quantity."""
    path = Path(settings.VENUE_DB)
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as journal:
        fills = dict(
            journal.execute(
                "SELECT cl_ord_id, SUM(last_qty) FROM venue_execution "
                "WHERE exec_type = 'F' GROUP BY cl_ord_id"
            )
        )
        held = dict(journal.execute("SELECT cl_ord_id, quantity FROM venue_order WHERE status != 'REJECTED'"))
    ours = {
        str(pk): quantity
        for pk, quantity in Execution.objects.values("order_id")
        .annotate(total=Sum("quantity"))
        .values_list("order_id", "total")
    }
    placed = {
        str(pk): quantity
        for pk, quantity in Order.objects.exclude(venue_status="").values_list("pk", "placed_quantity")
    }
    in_flight = {str(pk) for pk in Order.objects.in_flight().values_list("pk", flat=True)}
    out = []
    for cl_ord_id in sorted(set(fills) | set(ours)):
        if fills.get(cl_ord_id, 0) != ours.get(cl_ord_id, 0):
            out.append(
                f"order {cl_ord_id}: venue fills {ours.get(cl_ord_id, 0)}, "
                f"the venue's journal has {fills.get(cl_ord_id, 0)}"
            )
    for cl_ord_id, quantity in held.items():
        if cl_ord_id in in_flight:
            continue  # its answer is on its way
        if placed.get(cl_ord_id) != quantity:
            out.append(f"order {cl_ord_id}: the venue holds {quantity}, placed is {placed.get(cl_ord_id, 0)}")
    return out[:limit]
