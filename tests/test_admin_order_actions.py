"""The order admin's actions (SPEC §7): state changes only through the services, reported per order."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django_q.models import OrmQ

from orders.errors import NOT_CANCELLABLE, NOT_REPROCESSABLE
from orders.models import Order
from tests.factories import ClerkFactory, FailedOrderFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

ORDERS_URL = reverse("admin:orders_order_changelist")


@pytest.fixture
def clerk_client(client):
    client.force_login(ClerkFactory())
    return client


def run_action(client, action: str, orders):
    response = client.post(
        ORDERS_URL,
        {"action": action, "_selected_action": [str(order.pk) for order in orders], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def test_reprocess_puts_failed_orders_back_to_work_and_skips_the_rest(clerk_client):
    failed = FailedOrderFactory(quantity=100)
    partly_matched = FailedOrderFactory(quantity=100, matched_quantity=40)
    working = OrderFactory()
    queued_before = OrmQ.objects.count()

    messages = run_action(clerk_client, "reprocess_selected", [failed, partly_matched, working])

    failed.refresh_from_db()
    partly_matched.refresh_from_db()
    working.refresh_from_db()
    assert (failed.status, failed.remaining_quantity, failed.failure_reason) == (Order.Status.OPEN, 100, "")
    assert (partly_matched.status, partly_matched.remaining_quantity) == (Order.Status.PARTIAL, 60)
    assert working.status == Order.Status.OPEN and working.remaining_quantity == 100
    assert OrmQ.objects.count() == queued_before + 2  # each reprocessed order's processing is queued
    success = [text for level, text in messages if level == "success"]
    assert len(success) == 1
    assert success[0].startswith("Reprocessed 2 orders, now back in the pipeline:")
    assert str(failed.pk) in success[0] and str(partly_matched.pk) in success[0]
    warnings = [text for level, text in messages if level == "warning"]
    assert warnings[0] == "Skipped 1 order of 3 selected:"
    reason = NOT_REPROCESSABLE.format(order_id=working.pk, status="OPEN")
    assert warnings[1] == f"Skipped: {reason}."


def test_reprocess_twice_changes_nothing_the_second_time(clerk_client):
    failed = FailedOrderFactory()
    run_action(clerk_client, "reprocess_selected", [failed])
    queued = OrmQ.objects.count()

    messages = run_action(clerk_client, "reprocess_selected", [failed])

    assert [level for level, _ in messages] == ["warning", "warning"]
    assert "is OPEN, not FAILED" in messages[1][1]
    assert OrmQ.objects.count() == queued


def test_cancel_cancels_resting_orders_and_says_why_it_skipped_the_others(clerk_client):
    resting = OrderFactory(needs_match=False)
    in_flight = OrderFactory(needs_match=False, in_flight=True)
    failed = FailedOrderFactory()

    messages = run_action(clerk_client, "cancel_selected", [resting, in_flight, failed])

    resting.refresh_from_db()
    in_flight.refresh_from_db()
    failed.refresh_from_db()
    assert (resting.status, resting.remaining_quantity) == (Order.Status.CANCELLED, 0)
    assert in_flight.status == Order.Status.OPEN and in_flight.remaining_quantity == 100
    assert failed.status == Order.Status.FAILED
    assert ("success", f"Cancelled 1 order, now cancelled: {resting.pk}.") in messages
    assert ("warning", "Skipped 2 orders of 3 selected:") in messages
    in_flight_reason = NOT_CANCELLABLE.format(
        order_id=in_flight.pk, status="OPEN", detail=" with an exchange call in flight"
    )
    assert ("warning", f"Skipped: {in_flight_reason}.") in messages
    assert (
        "warning",
        f"Skipped: {NOT_CANCELLABLE.format(order_id=failed.pk, status='FAILED', detail='')}.",
    ) in messages


def test_many_skipped_orders_are_summarised(clerk_client):
    orders = OrderFactory.create_batch(23)

    messages = run_action(clerk_client, "reprocess_selected", orders)

    assert messages[0] == ("warning", "Skipped 23 orders of 23 selected:")
    assert len(messages) == 1 + 20 + 1
    assert messages[-1] == ("warning", "… and 3 more skipped.")


def test_actions_need_their_permissions(client):
    viewer = StaffUserFactory()
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_order", content_type__app_label="orders")
    )
    client.force_login(viewer)
    failed, resting = FailedOrderFactory(), OrderFactory(needs_match=False)

    page = client.get(ORDERS_URL)
    assert page.status_code == 200
    assert "reprocess_selected" not in page.content.decode()
    assert "cancel_selected" not in page.content.decode()
    run_action(client, "reprocess_selected", [failed])
    run_action(client, "cancel_selected", [resting])

    assert Order.objects.get(pk=failed.pk).status == Order.Status.FAILED
    assert Order.objects.get(pk=resting.pk).status == Order.Status.OPEN


def test_clerks_see_both_actions_and_no_delete(clerk_client):
    html = clerk_client.get(ORDERS_URL).content.decode()

    assert "Reprocess selected failed orders" in html
    assert "Cancel selected orders" in html
    assert "delete_selected" not in html


def test_actions_leave_an_audit_trail_in_the_order_history(clerk_client):
    from django.contrib.admin.models import LogEntry

    failed = FailedOrderFactory()

    run_action(clerk_client, "reprocess_selected", [failed])

    entry = LogEntry.objects.get(object_id=str(failed.pk))
    assert entry.get_change_message() == "Reprocessed via the admin action."
    history = clerk_client.get(reverse("admin:orders_order_history", args=[failed.pk]))
    assert "Reprocessed via the admin action." in history.content.decode()


def test_failed_order_page_reprocesses_it_with_one_button(clerk_client):
    failed = FailedOrderFactory(quantity=100)
    page_url = reverse("admin:orders_order_change", args=[failed.pk])
    button_url = reverse("admin:orders_order_reprocess", args=[failed.pk])
    assert button_url.encode() in clerk_client.get(page_url).content

    response = clerk_client.post(button_url, follow=True)

    assert response.redirect_chain[-1][0] == page_url
    failed.refresh_from_db()
    assert failed.status == Order.Status.OPEN and failed.remaining_quantity == 100
    assert b"Reprocess this order" not in response.content  # no longer FAILED


def test_reprocess_button_needs_the_permission_and_a_post(client):
    failed = FailedOrderFactory()
    client.force_login(StaffUserFactory())
    button_url = reverse("admin:orders_order_reprocess", args=[failed.pk])

    assert client.get(button_url).status_code == 405
    assert client.post(button_url).status_code == 403
    failed.refresh_from_db()
    assert failed.status == Order.Status.FAILED
