"""POST /orders with a client_order_id: replays return the first order, never a second (SPEC §3)."""

import pytest
from django_q.models import OrmQ

from orders.errors import CLIENT_ORDER_ID_CONFLICT
from orders.models import Order
from tests.factories import UserFactory

ISIN = "US0378331005"


def limit(**overrides):
    return {
        "type": "limit",
        "side": "buy",
        "instrument": ISIN,
        "limit_price": "10.50",
        "quantity": 100,
        "client_order_id": "order-1",
        **overrides,
    }


def test_replay_with_the_same_payload_returns_the_same_order_with_200(api):
    first = api.post("/orders", limit(), format="json")
    replay = api.post("/orders", limit(), format="json")

    assert first.status_code == 201, first.content
    assert replay.status_code == 200, replay.content
    assert replay.json() == first.json()
    assert Order.objects.count() == 1
    assert OrmQ.objects.count() == 1


def test_many_replays_still_store_one_order(api):
    responses = [api.post("/orders", limit(), format="json") for _ in range(4)]

    assert [r.status_code for r in responses] == [201, 200, 200, 200]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Order.objects.count() == 1
    assert OrmQ.objects.count() == 1


@pytest.mark.parametrize(
    "replay",
    [
        limit(instrument=ISIN.lower()),  # upper-cased to the same instrument
        limit(limit_price="10.5"),  # the same price written differently
        limit(limit_price=10.5),  # ... or as a JSON number
    ],
    ids=["lower-case-instrument", "price-without-trailing-zero", "price-as-number"],
)
def test_replay_of_an_equivalent_payload_returns_the_same_order(api, replay):
    first = api.post("/orders", limit(), format="json")
    response = api.post("/orders", replay, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1


def test_replay_of_a_market_order_returns_the_same_order(api):
    payload = {
        "type": "market",
        "side": "sell",
        "instrument": ISIN,
        "quantity": 5,
        "client_order_id": "m-1",
    }
    first = api.post("/orders", payload, format="json")
    replay = api.post("/orders", payload, format="json")

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"side": "sell"},
        {"quantity": 101},
        {"limit_price": "10.51"},
        {"instrument": "US5949181045"},
        {"type": "market", "limit_price": None},
    ],
    ids=["side", "quantity", "limit_price", "instrument", "type"],
)
def test_replay_with_a_different_payload_is_a_conflict_and_stores_nothing_new(api, changed):
    first = api.post("/orders", limit(), format="json")
    response = api.post("/orders", limit(**changed), format="json")

    assert first.status_code == 201
    assert response.status_code == 409, response.content
    assert response.json() == {"detail": CLIENT_ORDER_ID_CONFLICT}
    order = Order.objects.get()
    assert str(order.id) == first.json()["id"]
    assert order.side == "buy" and order.quantity == 100
    assert OrmQ.objects.count() == 1


def test_conflicting_replay_does_not_change_the_first_order(api):
    first = api.post("/orders", limit(), format="json")
    api.post("/orders", limit(quantity=5), format="json")
    replay = api.post("/orders", limit(), format="json")

    assert replay.status_code == 200
    assert replay.json() == first.json()


def test_two_clients_may_use_the_same_client_order_id(api, api_for):
    other = api_for(UserFactory())

    mine = api.post("/orders", limit(), format="json")
    theirs = other.post("/orders", limit(), format="json")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert Order.objects.filter(client_order_id="order-1").count() == 2
    assert {o.owner for o in Order.objects.all()} == {api.user, other.user}
    assert OrmQ.objects.count() == 2


def test_orders_without_client_order_id_are_never_deduplicated(api):
    payload = limit()
    del payload["client_order_id"]

    first = api.post("/orders", payload, format="json")
    second = api.post("/orders", payload, format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert Order.objects.count() == 2
    assert OrmQ.objects.count() == 2


def test_different_client_order_ids_make_different_orders(api):
    first = api.post("/orders", limit(client_order_id="a"), format="json")
    second = api.post("/orders", limit(client_order_id="b"), format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert Order.objects.count() == 2


@pytest.mark.parametrize(("first_id", "second_id"), [("order-a", "ORDER-A"), ("cafe", "café")])
def test_client_order_ids_differing_only_in_case_or_accents_are_different_keys(api, first_id, second_id):
    first = api.post("/orders", limit(client_order_id=first_id), format="json")
    second = api.post("/orders", limit(client_order_id=second_id), format="json")

    assert first.status_code == 201
    assert second.status_code == 201, second.content
    assert second.json()["client_order_id"] == second_id
    assert Order.objects.count() == 2
