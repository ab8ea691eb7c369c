"""GET /orders/{id}: one order with its matches (SPEC §3); its executions: tests/test_order_executions.py."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from tests.factories import OrderFactory, OrderMatchFactory, UserFactory

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def iso(value):
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture
def matched_buy(api):
    """A buy of 100 filled 30 @ 10.00 then 20 @ 10.50 against two sellers; 50 still working."""
    buy = OrderFactory(
        owner=api.user,
        limit_price=Decimal("11.00"),
        status=Order.Status.PARTIAL,
        matched_quantity=50,
        remaining_quantity=50,
        matched_notional=30 * Decimal("10.00") + 20 * Decimal("10.50"),
    )
    sells = [
        OrderFactory(
            owner=UserFactory(),
            side=Order.Side.SELL,
            limit_price=price,
            quantity=qty,
            remaining_quantity=0,
            matched_quantity=qty,
            status=Order.Status.MATCHED,
            matched_notional=price * qty,
        )
        for price, qty in [(Decimal("10.00"), 30), (Decimal("10.50"), 20)]
    ]
    later = OrderMatchFactory(
        buy_order=buy,
        sell_order=sells[1],
        quantity=20,
        price=Decimal("10.50"),
        matched_at=T0 + timedelta(seconds=2),
    )
    earlier = OrderMatchFactory(
        buy_order=buy,
        sell_order=sells[0],
        quantity=30,
        price=Decimal("10.00"),
        matched_at=T0 + timedelta(seconds=1),
    )
    return buy, sells, [earlier, later]


def test_order_is_returned_with_its_representation(api):
    order = OrderFactory(owner=api.user, client_order_id="r-1")

    response = api.get(f"/orders/{order.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(order.id)
    assert body["client_order_id"] == "r-1"
    assert body["type"] == "limit"
    assert body["side"] == "buy"
    assert body["instrument"] == order.instrument
    assert body["limit_price"] == "10.00"
    assert body["quantity"] == body["remaining_quantity"] == 100
    assert body["matched_quantity"] == body["placed_quantity"] == 0
    assert body["average_match_price"] is None
    assert body["status"] == "OPEN"
    assert body["failure_reason"] == ""
    assert body["matches"] == []
    assert body["executions"] == []
    assert body["time_in_force"] == "day"
    assert body["filled_quantity"] == body["cancelled_quantity"] == 0
    assert body["average_fill_price"] is None


@pytest.mark.parametrize("suffix", ["", "/"])
def test_retrieve_works_with_and_without_trailing_slash(api, suffix):
    order = OrderFactory(owner=api.user)

    response = api.get(f"/orders/{order.id}{suffix}")

    assert response.status_code == 200
    assert response.json()["id"] == str(order.id)


def test_matches_are_listed_oldest_first_with_their_fields(api, matched_buy):
    buy, _, (earlier, later) = matched_buy

    response = api.get(f"/orders/{buy.id}")

    assert response.status_code == 200
    assert response.json()["matches"] == [
        {
            "id": earlier.id,
            "quantity": 30,
            "price": "10.00",
            "matched_at": iso(earlier.matched_at),
        },
        {
            "id": later.id,
            "quantity": 20,
            "price": "10.50",
            "matched_at": iso(later.matched_at),
        },
    ]


def test_average_match_price_is_the_quantity_weighted_mean(api, matched_buy):
    buy, _, _ = matched_buy

    body = api.get(f"/orders/{buy.id}").json()

    # (30 * 10.00 + 20 * 10.50) / 50 = 10.20
    assert Decimal(body["average_match_price"]) == Decimal("10.20")
    assert body["matched_quantity"] == 50
    assert body["remaining_quantity"] == 50
    assert body["status"] == "PARTIAL"


def test_matched_quantity_equals_the_sum_of_the_shown_matches(api, matched_buy):
    buy, _, _ = matched_buy

    body = api.get(f"/orders/{buy.id}").json()

    assert sum(m["quantity"] for m in body["matches"]) == body["matched_quantity"]


def test_sell_side_order_shows_the_same_match(api_for, matched_buy):
    _, sells, (earlier, _) = matched_buy
    seller = api_for(sells[0].owner)

    body = seller.get(f"/orders/{sells[0].id}").json()

    assert [m["id"] for m in body["matches"]] == [earlier.id]
    assert Decimal(body["average_match_price"]) == Decimal("10.00")
    assert body["status"] == "MATCHED"


def test_matches_of_other_orders_are_not_shown(api, matched_buy):
    buy, _, _ = matched_buy
    other_buy = OrderFactory(owner=api.user)

    body = api.get(f"/orders/{other_buy.id}").json()

    assert body["matches"] == []
    assert len(api.get(f"/orders/{buy.id}").json()["matches"]) == 2


def test_counterparty_is_not_revealed_in_matches(api, matched_buy):
    buy, sells, _ = matched_buy

    content = api.get(f"/orders/{buy.id}").content.decode()

    assert all(str(sell.id) not in content for sell in sells)
    assert all(sell.owner.username not in content for sell in sells)


def test_another_clients_order_is_not_found(api):
    theirs = OrderFactory(owner=UserFactory())

    response = api.get(f"/orders/{theirs.id}")

    assert response.status_code == 404


def test_staff_can_retrieve_any_order_with_its_matches(staff_api, matched_buy):
    buy, _, _ = matched_buy

    response = staff_api.get(f"/orders/{buy.id}")

    assert response.status_code == 200
    assert len(response.json()["matches"]) == 2


def test_failed_order_shows_its_failure_reason(api):
    order = OrderFactory(
        owner=api.user,
        status=Order.Status.FAILED,
        remaining_quantity=0,
        failure_reason="Exchange rejected: instrument halted",
    )

    body = api.get(f"/orders/{order.id}").json()

    assert body["status"] == "FAILED"
    assert body["failure_reason"] == "Exchange rejected: instrument halted"
    assert body["remaining_quantity"] == 0


def test_retrieve_query_count_does_not_grow_with_matches(api, matched_buy, django_assert_max_num_queries):
    buy, sells, _ = matched_buy
    for _ in range(10):
        OrderMatchFactory(buy_order=buy, sell_order=sells[0], quantity=1, price=Decimal("10.00"))
    api.get(f"/orders/{buy.id}")  # warm the token cache

    # The order, its matches and its venue fills.
    with django_assert_max_num_queries(3):
        response = api.get(f"/orders/{buy.id}")

    assert len(response.json()["matches"]) == 12
