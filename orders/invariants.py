"""The invariants of SPEC §4, checked over the whole database.

Each check is one query returning the offending rows; ``invariant_violations``
lists every violation with the order id. Used by tests, benchmarks and operators.
"""

from django.db.models import F, Q, Sum

from exchange.models import ExchangeOrder
from matching.models import OrderMatch
from orders.models import Order

S = Order.Status


def invariant_violations(limit: int = 100) -> list[str]:
    violations: list[str] = []
    for check in (_quantities, _statuses, _match_sums, _match_sides, _ledger):
        violations.extend(check(limit))
    return violations


def _quantities(limit):
    bad = Order.objects.filter(
        Q(status__in=[S.OPEN, S.PARTIAL, S.MATCHED, S.SUBMITTED])
        & ~Q(quantity=F("matched_quantity") + F("placed_quantity") + F("remaining_quantity"))
        | Q(status__in=[S.CANCELLED, S.FAILED])
        & (~Q(remaining_quantity=0) | Q(quantity__lt=F("matched_quantity") + F("placed_quantity")))
    ).values_list("pk", "status", "quantity", "matched_quantity", "placed_quantity", "remaining_quantity")
    return [
        f"order {pk}: {status} quantity {q} != matched {m} + placed {p} + remaining {r}"
        if status not in (S.CANCELLED, S.FAILED)
        else f"order {pk}: {status} with remaining {r} (matched {m}, placed {p} of {q})"
        for pk, status, q, m, p, r in bad[:limit]
    ]


def _statuses(limit):
    rules = {
        "OPEN with matches or placements": Q(status=S.OPEN)
        & (Q(matched_quantity__gt=0) | Q(placed_quantity__gt=0)),
        "PARTIAL without matches": Q(status=S.PARTIAL) & Q(matched_quantity=0),
        "MATCHED but not fully matched": Q(status=S.MATCHED) & ~Q(matched_quantity=F("quantity")),
        "SUBMITTED without a placement": Q(status=S.SUBMITTED) & Q(placed_quantity=0),
        "terminal but in flight": Q(status__in=Order.TERMINAL_STATUSES, in_flight=True),
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
        for pk, qty in Order.objects.filter(placed_quantity__gt=0).values_list("pk", "placed_quantity")
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
