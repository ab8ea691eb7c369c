"""POST /orders/{id}/cancel: only an order resting in the book with no call in flight (SPEC §3)."""

import pytest
from django.contrib.auth.models import Permission

from orders.api.permissions import CANCEL_NEEDS_PERMISSION
from orders.errors import OrderNotCancellable
from orders.models import Order
from tests.factories import OrderFactory, UserFactory


def cancel(client, order, suffix=""):
    return client.post(f"/orders/{order.id}/cancel{suffix}")


def assert_unchanged(order):
    before = (
        order.status,
        order.remaining_quantity,
        order.matched_quantity,
        order.placed_quantity,
        order.updated_at,
    )
    order.refresh_from_db()
    assert (
        order.status,
        order.remaining_quantity,
        order.matched_quantity,
        order.placed_quantity,
        order.updated_at,
    ) == before


@pytest.mark.parametrize("suffix", ["", "/"])
def test_cancelling_an_open_order_returns_it_cancelled(api, suffix):
    order = OrderFactory(owner=api.user)

    response = cancel(api, order, suffix)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(order.id)
    assert body["status"] == "CANCELLED"
    assert body["remaining_quantity"] == 0
    assert body["quantity"] == 100


def test_cancelled_order_is_stored_out_of_the_book(api):
    order = OrderFactory(owner=api.user, route_at=None)

    cancel(api, order)

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.remaining_quantity == 0
    assert order.needs_match is False
    assert order.route_at is None
    assert order.matched_quantity == order.placed_quantity == 0


def test_cancel_shows_on_a_later_read(api):
    order = OrderFactory(owner=api.user)
    cancel(api, order)

    body = api.get(f"/orders/{order.id}").json()

    assert body["status"] == "CANCELLED"
    assert body["remaining_quantity"] == 0


def test_cancelling_a_partially_matched_order_keeps_what_was_matched(api):
    order = OrderFactory(
        owner=api.user,
        status=Order.Status.PARTIAL,
        matched_quantity=40,
        remaining_quantity=60,
    )

    response = cancel(api, order)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "CANCELLED"
    assert body["matched_quantity"] == 40
    assert body["remaining_quantity"] == 0


def test_cancelling_twice_is_a_conflict(api):
    order = OrderFactory(owner=api.user)
    first = cancel(api, order)

    second = cancel(api, order)

    assert first.status_code == 200
    assert second.status_code == 409
    order.refresh_from_db()
    assert second.json() == {"detail": str(OrderNotCancellable(order))}
    assert order.status == Order.Status.CANCELLED


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        (Order.Status.MATCHED, {"matched_quantity": 100, "remaining_quantity": 0}),
        (Order.Status.SUBMITTED, {"placed_quantity": 100, "remaining_quantity": 0}),
        (Order.Status.FAILED, {"remaining_quantity": 0, "failure_reason": "rejected"}),
        (Order.Status.CANCELLED, {"remaining_quantity": 0}),
    ],
)
def test_cancelling_a_finished_order_is_a_conflict_and_changes_nothing(api, status, fields):
    order = OrderFactory(owner=api.user, status=status, **fields)

    response = cancel(api, order)

    assert response.status_code == 409, response.content
    assert response.json() == {"detail": str(OrderNotCancellable(order))}
    assert status in response.json()["detail"]
    assert_unchanged(order)


@pytest.mark.parametrize("status", [Order.Status.OPEN, Order.Status.PARTIAL])
def test_cancelling_an_order_with_an_exchange_call_in_flight_is_a_conflict(api, status):
    order = OrderFactory(owner=api.user, status=status, in_flight=True, needs_match=False)

    response = cancel(api, order)

    assert response.status_code == 409, response.content
    assert "with an exchange call in flight" in response.json()["detail"]
    assert_unchanged(order)
    assert order.in_flight is True


def test_cancelling_another_clients_order_is_not_found(api):
    theirs = OrderFactory(owner=UserFactory())

    response = cancel(api, theirs)

    assert response.status_code == 404
    assert_unchanged(theirs)


@pytest.fixture
def cancelling_staff_api(api_for):
    """A staff user's API client with the permission to cancel any client's order."""
    clerk = UserFactory(username="cancelling-clerk", is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="cancel_order", content_type__app_label="orders")
    )
    return api_for(clerk)


def test_staff_with_the_cancel_permission_can_cancel_any_clients_order(cancelling_staff_api):
    order = OrderFactory(owner=UserFactory())

    response = cancel(cancelling_staff_api, order)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "CANCELLED"
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_staff_without_the_cancel_permission_see_but_cannot_cancel_another_clients_order(staff_api):
    order = OrderFactory(owner=UserFactory())
    assert staff_api.get(f"/orders/{order.id}").status_code == 200

    response = cancel(staff_api, order)

    assert response.status_code == 403, response.content
    assert response.json() == {"detail": CANCEL_NEEDS_PERMISSION}
    assert "orders.cancel_order" in response.json()["detail"]
    assert_unchanged(order)
    assert order.status == Order.Status.OPEN


def test_staff_cancel_their_own_orders_without_the_permission(staff_api):
    order = OrderFactory(owner=staff_api.user)

    response = cancel(staff_api, order)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "CANCELLED"


def test_the_permission_is_checked_before_the_order_state(staff_api):
    finished = OrderFactory(owner=UserFactory(), status=Order.Status.CANCELLED, remaining_quantity=0)

    assert cancel(staff_api, finished).status_code == 403


def test_staff_cannot_cancel_a_finished_order_either(cancelling_staff_api):
    order = OrderFactory(
        owner=UserFactory(),
        status=Order.Status.SUBMITTED,
        placed_quantity=100,
        remaining_quantity=0,
    )

    response = cancel(cancelling_staff_api, order)

    assert response.status_code == 409
    assert_unchanged(order)


def test_cancel_ignores_a_request_body(api):
    order = OrderFactory(owner=api.user)

    response = api.post(f"/orders/{order.id}/cancel", {"status": "OPEN"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"


def test_cancelling_one_order_leaves_the_others_alone(api):
    order = OrderFactory(owner=api.user)
    sibling = OrderFactory(owner=api.user)

    cancel(api, order)

    assert_unchanged(sibling)
    assert sibling.status == Order.Status.OPEN


# --- orders at the venue (SPEC §9) -------------------------------------------------------------


def test_cancel_answers_202_when_the_cancel_goes_to_the_venue(api, monkeypatch):
    # The view's mapping alone: order_cancel answers PENDING_CANCEL for an order at the
    # venue (the venue cancel itself is tested with the gateway).
    order = OrderFactory(
        owner=api.user, status=Order.Status.SUBMITTED, needs_match=False, placed_quantity=100
    )

    def cancel_at_venue(*, order):
        order.status = Order.Status.PENDING_CANCEL
        return order

    monkeypatch.setattr("orders.api.views.order_cancel", cancel_at_venue)

    response = cancel(api, order)

    assert response.status_code == 202, response.content
    assert response.json()["id"] == str(order.id)
    assert response.json()["status"] == "PENDING_CANCEL"


@pytest.mark.parametrize(
    "status", [Order.Status.PENDING_CANCEL, Order.Status.FILLED, Order.Status.EXPIRED, Order.Status.REJECTED]
)
def test_cancelling_an_order_already_being_cancelled_or_finished_at_the_venue_is_a_conflict(api, status):
    order = OrderFactory(owner=api.user, status=status, needs_match=False, remaining_quantity=0)

    response = cancel(api, order)

    assert response.status_code == 409, response.content
    assert_unchanged(order)
