"""The invariant checker finds each kind of broken promise of SPEC §4, and says which order."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from exchange.models import ExchangeOrder
from matching.models import OrderMatch
from orders.invariants import invariant_violations
from orders.models import Order
from tests.factories import OrderFactory, UserFactory

pytestmark = pytest.mark.django_db


def _settled_pair():
    """A buy and a sell that crossed each other completely, as matching leaves them."""
    owner = UserFactory()
    buy = OrderFactory(owner=owner, side="buy", quantity=10, limit_price=Decimal("10.00"))
    sell = OrderFactory(owner=owner, side="sell", quantity=10, limit_price=Decimal("9.00"))
    OrderMatch.objects.create(buy_order=buy, sell_order=sell, instrument=buy.instrument, quantity=10, price=9)
    for order in (buy, sell):
        Order.objects.filter(pk=order.pk).update(
            matched_quantity=10,
            matched_notional=90,
            filled_quantity=10,
            filled_notional=90,
            remaining_quantity=0,
            status="MATCHED",
            needs_match=False,
        )
    return buy, sell


def _submitted(quantity=10, ledger_quantity=10):
    order = OrderFactory(quantity=quantity)
    Order.objects.filter(pk=order.pk).update(
        placed_quantity=quantity, remaining_quantity=0, status="SUBMITTED", needs_match=False
    )
    if ledger_quantity:
        ExchangeOrder.objects.create(
            order_id=order.pk, instrument=order.instrument, side=order.side, quantity=ledger_quantity
        )
    return order


def test_consistent_database_has_no_violations():
    _settled_pair()
    _submitted()
    OrderFactory()  # a new working order

    assert invariant_violations() == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"remaining_quantity": 3}, "quantity 10 != matched 10 + placed 0 + remaining 3"),
        (
            {"status": "CANCELLED", "remaining_quantity": 4, "matched_quantity": 6},
            "CANCELLED with remaining 4",
        ),
        ({"status": "OPEN"}, "OPEN with matches or placements"),
        ({"in_flight": True}, "terminal but in flight"),
    ],
)
def test_broken_order_quantities_and_statuses_are_reported(change, expected):
    buy, _ = _settled_pair()
    Order.objects.filter(pk=buy.pk).update(**change)

    violations = invariant_violations()

    assert any(str(buy.pk) in v and expected in v for v in violations), violations


def test_matches_that_do_not_sum_to_matched_quantity_are_reported():
    buy, _ = _settled_pair()
    OrderMatch.objects.filter(buy_order=buy).update(quantity=7)

    violations = invariant_violations()

    assert any(str(buy.pk) in v and "matches sum to 7" in v for v in violations), violations


def test_match_outside_both_limits_is_reported():
    buy, sell = _settled_pair()
    OrderMatch.objects.filter(buy_order=buy).update(price=Decimal("11.00"))  # above the buy limit

    assert any("wrong side, instrument or price" in v for v in invariant_violations())


def test_placement_the_exchange_does_not_know_or_disagrees_with_is_reported():
    unknown = _submitted(ledger_quantity=0)
    different = _submitted(quantity=10, ledger_quantity=8)

    violations = invariant_violations()

    assert any(str(unknown.pk) in v and "no record" in v for v in violations), violations
    assert any(str(different.pk) in v and "accepted 8" in v for v in violations), violations


def test_order_accepted_by_the_exchange_but_not_recorded_is_reported():
    order = OrderFactory(needs_match=False)
    ExchangeOrder.objects.create(
        order_id=order.pk, instrument=order.instrument, side=order.side, quantity=100
    )

    assert any(str(order.pk) in v and "not recorded as placed" in v for v in invariant_violations())


def test_command_exits_non_zero_and_lists_each_violation():
    buy, _ = _settled_pair()
    Order.objects.filter(pk=buy.pk).update(remaining_quantity=3)
    out = StringIO()

    with pytest.raises(CommandError, match="invariant violations"):
        call_command("check_invariants", stdout=out)

    assert str(buy.pk) in out.getvalue()


def test_command_says_so_when_everything_holds():
    _settled_pair()
    out = StringIO()

    call_command("check_invariants", stdout=out)

    assert "All invariants hold." in out.getvalue()
