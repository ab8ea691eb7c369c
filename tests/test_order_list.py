"""GET /orders: the caller's orders, newest first, cursor-paginated and filterable (SPEC §3)."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order
from tests.contract import REPRESENTATION_FIELDS
from tests.factories import OrderFactory, UserFactory

T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)


def ids(response):
    return [item["id"] for item in response.json()["results"]]


def order_at(minutes, **kwargs):
    return OrderFactory(created_at=T0 + timedelta(minutes=minutes), **kwargs)


def list_orders(client, **params):
    query = urlencode(params, doseq=True)
    response = client.get(f"/orders?{query}" if query else "/orders")
    assert response.status_code == 200, response.content
    return response


# --- order, shape, pagination ---------------------------------------------


def test_orders_are_listed_newest_first(api):
    oldest = order_at(1, owner=api.user)
    newest = order_at(3, owner=api.user)
    middle = order_at(2, owner=api.user)

    response = list_orders(api)

    assert ids(response) == [str(newest.id), str(middle.id), str(oldest.id)]


@pytest.mark.parametrize("path", ["/orders", "/orders/"])
def test_list_works_with_and_without_trailing_slash(api, path):
    order = OrderFactory(owner=api.user)

    response = api.get(path)

    assert response.status_code == 200
    assert ids(response) == [str(order.id)]


def test_list_items_use_the_order_representation(api):
    order = OrderFactory(owner=api.user, client_order_id="c-1")

    item = list_orders(api).json()["results"][0]

    assert item["id"] == str(order.id)
    assert item["client_order_id"] == "c-1"
    assert item["limit_price"] == "10.00"
    assert item["quantity"] == item["remaining_quantity"] == 100
    assert item["status"] == "OPEN"
    assert REPRESENTATION_FIELDS <= set(item)
    assert "executions" not in item  # GET /orders/{id} only


def test_empty_list_is_an_empty_page(api):
    body = list_orders(api).json()

    assert body == {"next": None, "previous": None, "results": []}


def test_cursor_pagination_walks_every_order_once_newest_first(api):
    orders = [order_at(i, owner=api.user) for i in range(7)]
    expected = [str(o.id) for o in reversed(orders)]

    seen = []
    response = list_orders(api, page_size=3)
    pages = 0
    while True:
        pages += 1
        seen.extend(ids(response))
        next_url = response.json()["next"]
        if next_url is None:
            break
        assert "cursor=" in next_url
        response = api.get(next_url)
        assert response.status_code == 200

    assert pages == 3
    assert seen == expected


def test_previous_link_returns_to_the_first_page(api):
    for i in range(5):
        order_at(i, owner=api.user)
    first = list_orders(api, page_size=2)

    second = api.get(first.json()["next"])
    back = api.get(second.json()["previous"])

    assert back.status_code == 200
    assert ids(back) == ids(first)


def test_orders_created_in_the_same_instant_are_all_paginated(api):
    same_time = [OrderFactory(owner=api.user, created_at=T0) for _ in range(5)]

    seen = []
    response = list_orders(api, page_size=2)
    while True:
        seen.extend(ids(response))
        if response.json()["next"] is None:
            break
        response = api.get(response.json()["next"])

    assert sorted(seen) == sorted(str(o.id) for o in same_time)


def test_page_size_limits_the_page(api):
    for i in range(4):
        order_at(i, owner=api.user)

    response = list_orders(api, page_size=2)

    assert len(ids(response)) == 2
    assert response.json()["next"] is not None


def test_page_size_is_capped(api):
    for i in range(3):
        order_at(i, owner=api.user)

    response = list_orders(api, page_size=100_000)

    assert len(ids(response)) == 3


def test_garbage_cursor_is_a_clear_4xx(api):
    response = api.get("/orders?cursor=garbage")

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


# --- who sees what --------------------------------------------------------


def test_client_sees_only_their_own_orders(api):
    mine = OrderFactory(owner=api.user)
    OrderFactory(owner=UserFactory())
    OrderFactory(owner=UserFactory(), client_order_id="x")

    response = list_orders(api)

    assert ids(response) == [str(mine.id)]


def test_client_with_no_orders_sees_none_of_the_others(api):
    OrderFactory(owner=UserFactory())

    assert ids(list_orders(api)) == []


def test_staff_see_every_clients_orders(staff_api):
    orders = [order_at(i, owner=UserFactory()) for i in range(3)]

    response = list_orders(staff_api)

    assert ids(response) == [str(o.id) for o in reversed(orders)]


def test_filters_do_not_widen_a_clients_view(api):
    OrderFactory(owner=UserFactory(), client_order_id="shared")
    mine = OrderFactory(owner=api.user, client_order_id="shared")

    response = list_orders(api, client_order_id="shared")

    assert ids(response) == [str(mine.id)]


# --- filters --------------------------------------------------------------


@pytest.fixture
def book(api):
    """A spread of the caller's orders, one per distinguishing attribute."""
    return {
        "open_buy": order_at(1, owner=api.user, status=Order.Status.OPEN, client_order_id="ob"),
        "partial_sell": order_at(
            2,
            owner=api.user,
            side=Order.Side.SELL,
            status=Order.Status.PARTIAL,
            instrument="DE000BAY0017",
        ),
        "cancelled_market": order_at(
            3,
            owner=api.user,
            market=True,
            status=Order.Status.CANCELLED,
            remaining_quantity=0,
        ),
        "matched": order_at(
            4,
            owner=api.user,
            status=Order.Status.MATCHED,
            remaining_quantity=0,
            matched_quantity=100,
            instrument="GB0002634946",
        ),
        "failed": order_at(
            5,
            owner=api.user,
            side=Order.Side.SELL,
            market=True,
            status=Order.Status.FAILED,
            remaining_quantity=0,
        ),
    }


def names(book, response):
    by_id = {str(order.id): name for name, order in book.items()}
    return {by_id[i] for i in ids(response)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "OPEN"}, {"open_buy"}),
        ({"status": ["OPEN", "CANCELLED"]}, {"open_buy", "cancelled_market"}),
        (
            {"status": ["PARTIAL", "MATCHED", "FAILED"]},
            {"partial_sell", "matched", "failed"},
        ),
        ({"status": "SUBMITTED"}, set()),
        ({"side": "sell"}, {"partial_sell", "failed"}),
        ({"side": "buy"}, {"open_buy", "cancelled_market", "matched"}),
        ({"type": "market"}, {"cancelled_market", "failed"}),
        ({"type": "limit"}, {"open_buy", "partial_sell", "matched"}),
        ({"instrument": "DE000BAY0017"}, {"partial_sell"}),
        ({"instrument": "de000bay0017"}, {"partial_sell"}),
        ({"instrument": "gB0002634946"}, {"matched"}),
        ({"instrument": "NL0000235190"}, set()),
        ({"client_order_id": "ob"}, {"open_buy"}),
        ({"client_order_id": "nope"}, set()),
        ({"side": "sell", "type": "market"}, {"failed"}),
        ({"status": ["OPEN", "FAILED"], "side": "sell"}, {"failed"}),
    ],
    ids=lambda value: urlencode(value, doseq=True) if isinstance(value, dict) else None,
)
def test_filter_selects_matching_orders(api, book, params, expected):
    response = list_orders(api, **params)

    assert names(book, response) == expected


def test_created_after_is_inclusive(api, book):
    response = list_orders(api, created_after=(T0 + timedelta(minutes=4)).isoformat())

    assert names(book, response) == {"matched", "failed"}


def test_created_before_is_exclusive(api, book):
    response = list_orders(api, created_before=(T0 + timedelta(minutes=2)).isoformat())

    assert names(book, response) == {"open_buy"}


def test_created_after_and_before_make_a_window(api, book):
    response = list_orders(
        api,
        created_after=(T0 + timedelta(minutes=2)).isoformat(),
        created_before=(T0 + timedelta(minutes=4)).isoformat(),
    )

    assert names(book, response) == {"partial_sell", "cancelled_market"}


def test_created_filters_accept_a_utc_z_suffix(api, book):
    after = (T0 + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")

    response = list_orders(api, created_after=after)

    assert names(book, response) == {"failed"}


def test_filtered_list_paginates_within_the_filter(api):
    wanted = [order_at(i, owner=api.user, side=Order.Side.SELL) for i in range(0, 10, 2)]
    for i in range(1, 10, 2):
        order_at(i, owner=api.user)

    seen = []
    response = list_orders(api, side="sell", page_size=2)
    while True:
        seen.extend(ids(response))
        if response.json()["next"] is None:
            break
        response = api.get(response.json()["next"])

    assert seen == [str(o.id) for o in reversed(wanted)]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "BOGUS"},
        {"status": "open"},
        {"status": ["OPEN", "NOPE"]},
        {"side": "long"},
        {"type": "stop"},
        {"time_in_force": "gfd"},
        {"time_in_force": "DAY"},
        {"status": "PARTIALLY-FILLED"},
        {"created_after": "yesterday"},
        {"created_before": "2024-13-01T00:00:00"},
        {"created_after": "2024-01-01T25:00:00"},
        {"instrument": "X" * 13},
        {"client_order_id": "x" * 65},
    ],
    ids=lambda value: urlencode(value, doseq=True)[:30],
)
def test_invalid_filter_value_is_400(api, params):
    OrderFactory(owner=api.user)

    response = api.get(f"/orders?{urlencode(params, doseq=True)}")

    assert response.status_code == 400, response.content
    assert set(params) <= set(response.json())


@pytest.mark.parametrize(
    "params",
    [
        {"created_after": "0001-01-01T00:00:00+14:00"},
        {"created_before": "9999-12-31T23:59:59-14:00"},
    ],
    ids=["before-year-1-in-utc", "after-year-9999-in-utc"],
)
def test_filter_date_outside_the_representable_range_is_400(api, params):
    OrderFactory(owner=api.user)

    response = api.get(f"/orders?{urlencode(params)}")

    assert response.status_code == 400, response.content


# --- query count ----------------------------------------------------------


def test_list_query_count_does_not_grow_with_the_number_of_orders(api, django_assert_max_num_queries):
    order_at(0, owner=api.user)
    api.get("/orders")  # warm the token cache so both requests do the same work
    with CaptureQueriesContext(connection) as one_order:
        assert api.get("/orders").status_code == 200
    for i in range(1, 30):
        order_at(i, owner=api.user, side=Order.Side.SELL if i % 2 else Order.Side.BUY)

    with django_assert_max_num_queries(len(one_order.captured_queries)):
        response = api.get("/orders")

    assert response.status_code == 200
    assert len(ids(response)) == 30


def test_list_of_30_orders_takes_at_most_two_queries(api, django_assert_max_num_queries):
    for i in range(30):
        order_at(i, owner=api.user)

    # The token lookup (uncached on a fresh process) and the page itself.
    with django_assert_max_num_queries(2):
        response = api.get("/orders")

    assert len(ids(response)) == 30


def test_staff_list_query_count_is_bounded(staff_api, django_assert_max_num_queries):
    for i in range(30):
        order_at(i, owner=UserFactory())

    with django_assert_max_num_queries(2):
        response = staff_api.get("/orders?status=OPEN&status=CANCELLED&side=buy")

    assert len(ids(response)) == 30
