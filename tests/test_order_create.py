"""POST /orders: what a valid order stores and returns, and which orders are refused (SPEC §3)."""

import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from orders.errors import LIMIT_PRICE_PROHIBITED, LIMIT_PRICE_REQUIRED
from orders.models import Order
from orders.tasks import PROCESS_ORDER_TASK
from tests.contract import REPRESENTATION_FIELDS

ISIN = "US0378331005"


def market(**overrides):
    return {
        "type": "market",
        "side": "buy",
        "instrument": ISIN,
        "quantity": 10,
        **overrides,
    }


def limit(**overrides):
    return {
        "type": "limit",
        "side": "sell",
        "instrument": ISIN,
        "limit_price": "12.34",
        "quantity": 10,
        **overrides,
    }


def post_order(api, payload, path="/orders"):
    return api.post(path, payload, format="json")


def assert_nothing_stored():
    assert Order.objects.count() == 0
    assert OrmQ.objects.count() == 0


def assert_rejected(response, field, message=None):
    assert response.status_code == 400, response.content
    assert field in response.json()
    if message is not None:
        assert response.json()[field] == [message]
    assert_nothing_stored()


# --- accepted orders ------------------------------------------------------


def test_market_order_is_created_with_the_full_representation(api):
    response = post_order(api, market(client_order_id="abc-1"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert REPRESENTATION_FIELDS <= set(body)
    order = Order.objects.get()
    assert body["id"] == str(order.id)
    uuid.UUID(body["id"])
    assert body["client_order_id"] == "abc-1"
    assert body["type"] == "market"
    assert body["side"] == "buy"
    assert body["instrument"] == ISIN
    assert body["limit_price"] is None
    assert body["quantity"] == 10
    assert body["matched_quantity"] == 0
    assert body["placed_quantity"] == 0
    assert body["remaining_quantity"] == 10
    assert body["average_match_price"] is None
    assert body["status"] == "OPEN"
    assert body["failure_reason"] == ""
    datetime.fromisoformat(body["created_at"])
    datetime.fromisoformat(body["updated_at"])


def test_limit_order_is_created_with_its_price_as_a_decimal_string(api):
    response = post_order(api, limit(limit_price="12.5"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "limit"
    assert body["side"] == "sell"
    assert body["limit_price"] == "12.50"
    assert body["client_order_id"] is None
    assert Order.objects.get().limit_price == Decimal("12.50")


def test_limit_price_may_be_a_json_number(api):
    response = post_order(api, limit(limit_price=99.99))

    assert response.status_code == 201, response.content
    assert response.json()["limit_price"] == "99.99"


def test_new_order_is_stored_open_with_everything_remaining(api):
    response = post_order(api, limit(quantity=250))

    assert response.status_code == 201
    order = Order.objects.get()
    assert order.owner == api.user
    assert order.status == Order.Status.OPEN
    assert order.quantity == 250
    assert order.remaining_quantity == 250
    assert order.matched_quantity == 0
    assert order.placed_quantity == 0
    assert not order.in_flight


def test_new_order_queues_exactly_one_processing_task_for_itself(api):
    response = post_order(api, market())

    assert response.status_code == 201
    queued = OrmQ.objects.get()
    assert queued.func() == PROCESS_ORDER_TASK
    assert list(queued.args()) == [response.json()["id"], response.json()["instrument"], 0]


def test_queue_row_is_written_inside_the_orders_transaction(api):
    # Under the test's outer transaction the service's atomic block is a savepoint:
    # both inserts must happen before it is released (the outbox of SPEC §4).
    with CaptureQueriesContext(connection) as captured:
        response = post_order(api, market())

    assert response.status_code == 201
    sql = [q["sql"].upper() for q in captured.captured_queries]
    order_insert = next(i for i, q in enumerate(sql) if "INSERT INTO `ORDERS_ORDER`" in q)
    queue_insert = next(i for i, q in enumerate(sql) if "INSERT INTO `DJANGO_Q_ORMQ`" in q)
    opened = max(i for i, q in enumerate(sql[:order_insert]) if q.startswith("SAVEPOINT"))
    released = next(i for i, q in enumerate(sql) if i > queue_insert and q.startswith("RELEASE SAVEPOINT"))
    assert opened < order_insert < queue_insert < released
    assert sql[released].split()[-1] == sql[opened].split()[-1]  # the same savepoint


def test_instrument_is_upper_cased(api):
    response = post_order(api, market(instrument="us0378331005"))

    assert response.status_code == 201, response.content
    assert response.json()["instrument"] == ISIN
    assert Order.objects.get().instrument == ISIN


@pytest.mark.parametrize("path", ["/orders", "/orders/"])
def test_create_works_with_and_without_trailing_slash(api, path):
    response = post_order(api, market(), path=path)

    assert response.status_code == 201, response.content
    assert Order.objects.count() == 1


@pytest.mark.parametrize("isin", ["US0378331005", "US5949181045", "DE000BAY0017", "GB0002634946"])
def test_valid_isins_are_accepted(api, isin):
    response = post_order(api, market(instrument=isin))

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("quantity", [1, 1_000_000_000])
def test_quantity_bounds_are_inclusive(api, quantity):
    response = post_order(api, market(quantity=quantity))

    assert response.status_code == 201, response.content
    assert response.json()["quantity"] == quantity
    assert response.json()["remaining_quantity"] == quantity


@pytest.mark.parametrize("price", ["0.01", "1", "1.5", "999999999999.99"])
def test_limit_prices_within_precision_are_accepted(api, price):
    response = post_order(api, limit(limit_price=price))

    assert response.status_code == 201, response.content
    assert Decimal(response.json()["limit_price"]) == Decimal(price)


def test_market_order_with_explicit_null_limit_price_is_accepted(api):
    response = post_order(api, market(limit_price=None))

    assert response.status_code == 201, response.content
    assert response.json()["limit_price"] is None


def test_client_order_id_of_64_chars_is_accepted(api):
    response = post_order(api, market(client_order_id="x" * 64))

    assert response.status_code == 201, response.content
    assert response.json()["client_order_id"] == "x" * 64


# --- refused orders -------------------------------------------------------


def test_limit_order_without_limit_price_is_refused_with_the_spec_message(api):
    payload = limit()
    del payload["limit_price"]

    assert_rejected(post_order(api, payload), "limit_price", LIMIT_PRICE_REQUIRED)


def test_limit_order_with_null_limit_price_is_refused_with_the_spec_message(api):
    assert_rejected(post_order(api, limit(limit_price=None)), "limit_price", LIMIT_PRICE_REQUIRED)


@pytest.mark.parametrize("price", ["10.00", 10, "0.01"])
def test_market_order_with_limit_price_is_refused_with_the_spec_message(api, price):
    response = post_order(api, market(limit_price=price))

    assert_rejected(response, "limit_price", LIMIT_PRICE_PROHIBITED)


@pytest.mark.parametrize(
    "isin",
    [
        "US0378331006",  # wrong check digit
        "US0378331004",  # wrong check digit
        "DE000BAY0018",  # wrong check digit
        "US037833100",  # 11 chars
        "US03783310055",  # 13 chars
        "1S0378331005",  # country code must be letters
        "U10378331005",  # country code must be letters
        "US037833100A",  # check digit must be a digit
        "US-378331005",  # punctuation
        "US 378331005",  # space inside
        "",
        "US03783310０5",  # a non-ASCII digit
    ],
)
def test_invalid_isin_is_refused(api, isin):
    assert_rejected(post_order(api, market(instrument=isin)), "instrument")


@pytest.mark.parametrize("price", ["10.001", "0.005", 10.125, "1e-3"])
def test_limit_price_with_more_than_two_decimal_places_is_refused(api, price):
    assert_rejected(post_order(api, limit(limit_price=price)), "limit_price")


@pytest.mark.parametrize("price", ["0", "0.00", 0, "-0.01", "-10", -1])
def test_limit_price_not_above_zero_is_refused(api, price):
    assert_rejected(post_order(api, limit(limit_price=price)), "limit_price")


@pytest.mark.parametrize("price", ["1000000000000.00", "1e20"])
def test_limit_price_beyond_the_column_precision_is_refused(api, price):
    assert_rejected(post_order(api, limit(limit_price=price)), "limit_price")


@pytest.mark.parametrize("quantity", [0, -1, 1_000_000_001, 10**30])
def test_quantity_out_of_bounds_is_refused(api, quantity):
    assert_rejected(post_order(api, market(quantity=quantity)), "quantity")


@pytest.mark.parametrize("quantity", [1.0, 1.5, 10.0, 1e3])
def test_float_quantity_is_refused(api, quantity):
    assert_rejected(post_order(api, market(quantity=quantity)), "quantity")


@pytest.mark.parametrize("quantity", [True, False])
def test_boolean_quantity_is_refused(api, quantity):
    assert_rejected(post_order(api, market(quantity=quantity)), "quantity")


@pytest.mark.parametrize("quantity", ["10", "1", "ten", ""])
def test_string_quantity_is_refused(api, quantity):
    assert_rejected(post_order(api, market(quantity=quantity)), "quantity")


@pytest.mark.parametrize("price", [True, False])
def test_boolean_limit_price_is_refused(api, price):
    assert_rejected(post_order(api, limit(limit_price=price)), "limit_price")


def test_client_order_id_of_65_chars_is_refused(api):
    assert_rejected(post_order(api, market(client_order_id="x" * 65)), "client_order_id")


@pytest.mark.parametrize("field", ["price", "owner", "status", "id", "matched_quantity"])
def test_unknown_field_is_refused(api, field):
    assert_rejected(post_order(api, market(**{field: "1"})), field)
