"""GET /orders/{id} lists the order's executions: internal matches and venue fills (SPEC §9)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from orders.selectors import execution_list_for_order
from tests.contract import DETAIL_FIELDS, EXECUTION_FIELDS
from tests.factories import ExecutionFactory, OrderFactory, OrderMatchFactory, UserFactory

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def iso(value):
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture
def filled_buy(api):
    """A buy of 100: 30 @ 10.00 matched internally, then 50 filled at the venue in two lots, 20 left."""
    buy = OrderFactory(
        owner=api.user,
        limit_price=Decimal("11.00"),
        status=Order.Status.PARTIALLY_FILLED,
        needs_match=False,
        matched_quantity=30,
        matched_notional=Decimal("300.00"),
        placed_quantity=70,
        remaining_quantity=20,
        filled_quantity=80,
        filled_notional=Decimal("300.00") + 20 * Decimal("10.1250") + 30 * Decimal("10.5000"),
    )
    seller = OrderFactory(
        owner=UserFactory(),
        side=Order.Side.SELL,
        quantity=30,
        remaining_quantity=0,
        matched_quantity=30,
        status=Order.Status.MATCHED,
    )
    # Created out of time order: the list sorts by when they executed, not by row id.
    second_fill = ExecutionFactory(
        order=buy,
        exec_id="VX-2",
        quantity=30,
        price=Decimal("10.5000"),
        cum_quantity=50,
        executed_at=T0 + timedelta(seconds=3),
    )
    first_fill = ExecutionFactory(
        order=buy,
        exec_id="VX-1",
        quantity=20,
        price=Decimal("10.1250"),
        cum_quantity=20,
        executed_at=T0 + timedelta(seconds=2),
    )
    match = OrderMatchFactory(
        buy_order=buy,
        sell_order=seller,
        quantity=30,
        price=Decimal("10.00"),
        matched_at=T0 + timedelta(seconds=1),
    )
    return buy, seller, match, [first_fill, second_fill]


def test_detail_lists_matches_and_venue_fills_oldest_first(api, filled_buy):
    buy, _, match, (first_fill, second_fill) = filled_buy

    response = api.get(f"/orders/{buy.id}")

    assert response.status_code == 200, response.content
    assert response.json()["executions"] == [
        {
            "exec_id": f"M{match.id}",
            "source": "internal",
            "quantity": 30,
            "price": "10.0000",
            "executed_at": iso(match.matched_at),
        },
        {
            "exec_id": "VX-1",
            "source": "venue",
            "quantity": 20,
            "price": "10.1250",
            "executed_at": iso(first_fill.executed_at),
        },
        {
            "exec_id": "VX-2",
            "source": "venue",
            "quantity": 30,
            "price": "10.5000",
            "executed_at": iso(second_fill.executed_at),
        },
    ]


def test_detail_keeps_the_matches_list_as_it_was(api, filled_buy):
    buy, _, match, _ = filled_buy

    body = api.get(f"/orders/{buy.id}").json()

    assert DETAIL_FIELDS <= set(body)
    assert body["matches"] == [
        {"id": match.id, "quantity": 30, "price": "10.00", "matched_at": iso(match.matched_at)}
    ]


def test_filled_quantity_is_the_sum_of_the_executions_and_average_fill_price_their_mean(api, filled_buy):
    buy, _, _, _ = filled_buy

    body = api.get(f"/orders/{buy.id}").json()

    assert all(set(execution) == EXECUTION_FIELDS for execution in body["executions"])
    assert sum(execution["quantity"] for execution in body["executions"]) == body["filled_quantity"] == 80
    # (30 * 10.00 + 20 * 10.125 + 30 * 10.50) / 80 = 10.21875
    assert body["average_fill_price"] == "10.2188"
    assert body["average_match_price"] == "10.0000"
    assert body["status"] == "PARTIALLY_FILLED"
    assert (
        body["filled_quantity"] + body["remaining_quantity"] + body["cancelled_quantity"] == body["quantity"]
    )


def test_list_shows_the_fill_fields_but_not_the_executions(api, filled_buy):
    buy, _, _, _ = filled_buy

    item = next(i for i in api.get("/orders").json()["results"] if i["id"] == str(buy.id))

    assert item["filled_quantity"] == 80
    assert item["average_fill_price"] == "10.2188"
    assert "executions" not in item


def test_the_counterparty_sees_only_its_own_side_of_the_match(api_for, filled_buy):
    _, seller, match, _ = filled_buy

    body = api_for(seller.owner).get(f"/orders/{seller.id}").json()

    assert [e["exec_id"] for e in body["executions"]] == [f"M{match.id}"]


def test_fills_of_other_orders_are_not_shown(api, filled_buy):
    other = OrderFactory(owner=api.user)
    ExecutionFactory(order=OrderFactory(owner=api.user), exec_id="ELSEWHERE")

    body = api.get(f"/orders/{other.id}").json()

    assert body["executions"] == []


def test_executions_at_the_same_instant_keep_cumulative_quantity_order(db):
    order = OrderFactory()
    at = T0
    for exec_id, cum in [("C", 30), ("A", 10), ("B", 20)]:
        ExecutionFactory(order=order, exec_id=exec_id, quantity=10, cum_quantity=cum, executed_at=at)

    assert [e.exec_id for e in execution_list_for_order(order=order)] == ["A", "B", "C"]


def test_execution_list_takes_two_queries(db, filled_buy, django_assert_num_queries):
    buy, _, _, _ = filled_buy

    with django_assert_num_queries(2):
        executions = execution_list_for_order(order=buy)

    assert len(executions) == 3


def test_retrieve_query_count_does_not_grow_with_executions(api, filled_buy, django_assert_max_num_queries):
    buy, seller, _, _ = filled_buy
    for n in range(10):
        ExecutionFactory(order=buy, exec_id=f"MORE-{n}", quantity=1, cum_quantity=51 + n)
        OrderMatchFactory(buy_order=buy, sell_order=seller, quantity=1)
    api.get(f"/orders/{buy.id}")  # warm the token cache

    # The order, its matches, its venue fills.
    with django_assert_max_num_queries(3):
        response = api.get(f"/orders/{buy.id}")

    assert len(response.json()["executions"]) == 23
    assert len(response.json()["matches"]) == 11
