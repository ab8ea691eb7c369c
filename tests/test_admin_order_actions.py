"""The order admin's actions (SPEC §7): state changes only through the services, reported per order."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django_q.models import OrmQ

from orders.errors import NOT_CANCELLABLE, NOT_REPROCESSABLE
from orders.models import Order
from tests.factories import (
    VALID_ISINS,
    ClerkFactory,
    FailedOrderFactory,
    OrderFactory,
    StaffUserFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ORDERS_URL = reverse("admin:orders_order_changelist")


@pytest.fixture
def clerk_client(client):
    client.force_login(ClerkFactory())
    return client


def run_action(client, action: str, orders, **extra):
    response = client.post(
        ORDERS_URL,
        {"action": action, "_selected_action": [str(order.pk) for order in orders], "index": 0, **extra},
        follow=True,
    )
    assert response.status_code == 200
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def confirm_cancel(client, orders):
    """What the confirmation page's "Yes, I'm sure" button posts."""
    return run_action(client, "cancel_selected", orders, post="yes")


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


def test_confirmed_cancel_cancels_resting_orders_and_says_why_it_skipped_the_others(clerk_client):
    resting = OrderFactory(needs_match=False)
    in_flight = OrderFactory(needs_match=False, in_flight=True)
    failed = FailedOrderFactory()

    messages = confirm_cancel(clerk_client, [resting, in_flight, failed])

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


def ask_to_cancel(client, orders, url=ORDERS_URL, **extra):
    """Choose "Cancel selected orders" for ``orders`` on the list at ``url``: the confirmation page."""
    return client.post(
        url,
        {"action": "cancel_selected", "_selected_action": [str(o.pk) for o in orders], "index": 0, **extra},
    )


def hidden_fields(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)


def test_cancel_first_shows_the_selected_orders_and_cancels_nothing(clerk_client):
    resting = OrderFactory(
        owner=UserFactory(username="acme-fund"),
        instrument=VALID_ISINS[1],
        side=Order.Side.SELL,
        quantity=70,
        remaining_quantity=70,
        needs_match=False,
    )
    in_flight = OrderFactory(needs_match=False, in_flight=True, quantity=30, remaining_quantity=30)

    response = ask_to_cancel(clerk_client, [resting, in_flight])

    assert response.status_code == 200
    html = response.content.decode()
    assert "Are you sure you want to cancel the 2 selected orders?" in html
    start = html.index('<table id="orders-to-cancel">')
    table = html[start : html.index("</table>", start)]
    rows = table.split("<tr>")[2:]  # after the header row
    assert len(rows) == 2
    first = rows[0]
    for shown in (str(resting.pk), "acme-fund", VALID_ISINS[1], ">Sell<", ">70<", "order-status-open"):
        assert shown in first, shown
    assert str(in_flight.pk) in rows[1] and ">30<" in rows[1] and "in flight" in rows[1]
    assert 'value="Yes, I’m sure"' in html
    assert f'<a href="{ORDERS_URL}" class="button cancel-link">No, take me back</a>' in html
    for order in (resting, in_flight):
        order.refresh_from_db()
        assert order.status == Order.Status.OPEN
    assert not LogEntry.objects.exists()
    assert list(get_messages(response.wsgi_request)) == []


def test_yes_on_the_confirmation_page_cancels_exactly_the_listed_orders(clerk_client):
    first, second = OrderFactory(needs_match=False), OrderFactory(needs_match=False)
    page = ask_to_cancel(clerk_client, [first, second]).content.decode()
    form = hidden_fields(page)
    assert ("post", "yes") in form and ("action", "cancel_selected") in form

    response = clerk_client.post(ORDERS_URL, dict_of_lists(form), follow=True)

    assert response.redirect_chain[-1][0] == ORDERS_URL
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == Order.Status.CANCELLED
    (success,) = [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "success"]
    assert success.startswith("Cancelled 2 orders, now cancelled:")


def test_all_matching_the_filter_lists_them_and_confirming_cancels_only_those_listed(clerk_client):
    listed = OrderFactory(needs_match=False, instrument=VALID_ISINS[2])
    other_instrument = OrderFactory(needs_match=False, instrument=VALID_ISINS[3])
    filtered = f"{ORDERS_URL}?instrument={VALID_ISINS[2]}"

    page = ask_to_cancel(clerk_client, [listed], url=filtered, select_across=1).content.decode()
    arrived_later = OrderFactory(needs_match=False, instrument=VALID_ISINS[2])
    clerk_client.post(filtered, dict_of_lists(hidden_fields(page)))

    assert f'<a href="{filtered}" class="button cancel-link">' in page
    assert [pk for name, pk in hidden_fields(page) if name == "_selected_action"] == [str(listed.pk)]
    statuses = {
        o.pk: o.status
        for o in Order.objects.filter(pk__in=[listed.pk, other_instrument.pk, arrived_later.pk])
    }
    assert statuses == {
        listed.pk: Order.Status.CANCELLED,
        other_instrument.pk: Order.Status.OPEN,
        arrived_later.pk: Order.Status.OPEN,
    }


def test_a_selection_too_large_to_confirm_is_refused(clerk_client, monkeypatch):
    monkeypatch.setattr("orders.admin.orders.CANCEL_CONFIRM_LIMIT", 2)
    orders = OrderFactory.create_batch(3, needs_match=False)

    messages = run_action(clerk_client, "cancel_selected", orders)

    assert messages == [("error", "Select at most 2 orders to cancel at once; nothing was cancelled.")]
    assert not Order.objects.filter(status=Order.Status.CANCELLED).exists()


def dict_of_lists(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for name, value in fields:
        form.setdefault(name, []).append(value)
    return form


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
    confirm_cancel(client, [resting])

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
