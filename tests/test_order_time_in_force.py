"""POST /orders and GET /orders with a time in force: day (default), gtc, ioc, fok (SPEC §9)."""

from urllib.parse import urlencode

import pytest
from django_q.models import OrmQ

from orders.errors import CLIENT_ORDER_ID_CONFLICT
from orders.models import Order
from tests.factories import OrderFactory

ISIN = "US0378331005"


def limit(**overrides):
    return {
        "type": "limit",
        "side": "buy",
        "instrument": ISIN,
        "limit_price": "10.50",
        "quantity": 100,
        **overrides,
    }


def post_order(api, payload):
    return api.post("/orders", payload, format="json")


@pytest.mark.parametrize("time_in_force", ["day", "gtc", "ioc", "fok"])
def test_each_time_in_force_is_accepted_stored_and_shown(api, time_in_force):
    response = post_order(api, limit(time_in_force=time_in_force))

    assert response.status_code == 201, response.content
    assert response.json()["time_in_force"] == time_in_force
    assert Order.objects.get().time_in_force == time_in_force
    assert api.get(f"/orders/{response.json()['id']}").json()["time_in_force"] == time_in_force


def test_time_in_force_defaults_to_day(api):
    response = post_order(api, limit())

    assert response.status_code == 201, response.content
    assert response.json()["time_in_force"] == "day"
    assert Order.objects.get().time_in_force == Order.TimeInForce.DAY


def test_market_orders_take_a_time_in_force_too(api):
    response = post_order(api, limit(type="market", limit_price=None, time_in_force="ioc"))

    assert response.status_code == 201, response.content
    assert response.json()["time_in_force"] == "ioc"


@pytest.mark.parametrize(
    "value",
    ["DAY", "Day", " day", "gfd", "opg", "", None, 0, 1, True, ["day"], {"day": True}],
    ids=repr,
)
def test_time_in_force_outside_the_choices_is_400_and_stores_nothing(api, value):
    response = post_order(api, limit(time_in_force=value))

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["time_in_force"]
    assert Order.objects.count() == 0
    assert OrmQ.objects.count() == 0


def test_replay_with_the_same_time_in_force_returns_the_same_order(api):
    first = post_order(api, limit(client_order_id="tif-1", time_in_force="gtc"))
    replay = post_order(api, limit(client_order_id="tif-1", time_in_force="gtc"))

    assert first.status_code == 201, first.content
    assert replay.status_code == 200, replay.content
    assert replay.json()["id"] == first.json()["id"]


def test_replay_leaving_out_time_in_force_means_day(api):
    first = post_order(api, limit(client_order_id="tif-1", time_in_force="day"))
    replay = post_order(api, limit(client_order_id="tif-1"))

    assert replay.status_code == 200, replay.content
    assert replay.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(("first", "second"), [("day", "gtc"), ("ioc", "fok"), (None, "ioc")])
def test_replay_with_another_time_in_force_is_a_conflict_and_stores_nothing_new(api, first, second):
    given = {} if first is None else {"time_in_force": first}
    original = post_order(api, limit(client_order_id="tif-1", **given))

    response = post_order(api, limit(client_order_id="tif-1", time_in_force=second))

    assert original.status_code == 201, original.content
    assert response.status_code == 409, response.content
    assert response.json() == {"detail": CLIENT_ORDER_ID_CONFLICT}
    order = Order.objects.get()
    assert order.time_in_force == (first or "day")
    assert OrmQ.objects.count() == 1


# --- GET /orders?time_in_force= --------------------------------------------------------------


def list_ids(api, **params):
    response = api.get(f"/orders?{urlencode(params, doseq=True)}")
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["results"]}


def test_list_filters_by_time_in_force(api):
    orders = {tif: OrderFactory(owner=api.user, time_in_force=tif) for tif in Order.TimeInForce.values}

    for tif, order in orders.items():
        assert list_ids(api, time_in_force=tif) == {str(order.id)}


def test_time_in_force_filter_combines_with_the_others(api):
    wanted = OrderFactory(owner=api.user, time_in_force="gtc", side=Order.Side.SELL)
    OrderFactory(owner=api.user, time_in_force="gtc", side=Order.Side.BUY)
    OrderFactory(owner=api.user, time_in_force="day", side=Order.Side.SELL)

    assert list_ids(api, time_in_force="gtc", side="sell") == {str(wanted.id)}


@pytest.mark.parametrize(
    "status",
    [
        Order.Status.SUBMITTED,
        Order.Status.PARTIALLY_FILLED,
        Order.Status.FILLED,
        Order.Status.PENDING_CANCEL,
        Order.Status.EXPIRED,
        Order.Status.REJECTED,
    ],
)
def test_status_filter_takes_the_venue_statuses(api, status):
    wanted = OrderFactory(owner=api.user, status=status, needs_match=False)
    OrderFactory(owner=api.user)

    assert list_ids(api, status=status) == {str(wanted.id)}
    assert list_ids(api, status=[status, "OPEN"]) == {str(o.id) for o in Order.objects.all()}
