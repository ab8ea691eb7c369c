"""On every logon the gateway asks the venue about each order it may hold and that is not final."""

import uuid

import pytest

from exchange.models import ExecutionReportRecord, OutboxMessage
from exchange.selectors import unsettled_cl_ord_ids
from tests.gateway.harness import logged_on, new_orders, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _status_requests() -> set[str]:
    return set(OutboxMessage.objects.filter(kind="status_request").values_list("cl_ord_id", flat=True))


def test_logon_sends_status_requests_for_orders_not_final_and_for_the_hook(processes):
    extra = str(uuid.uuid4())
    venue, gateway = processes(
        {"VENUE_FILL_INTERVAL": "60"},
        {
            "GATEWAY_RECONCILE_HOOK": "tests.gateway.reconcile_hook.extra_cl_ord_ids",
            "GATEWAY_TEST_EXTRA_IDS": extra,
        },
    )
    venue.start()
    gateway.start()
    working = new_orders(3)
    [rejected] = new_orders(1, symbol="US0000000001")  # not an ISIN: the venue refuses it for good
    wait_until(
        lambda: ExecutionReportRecord.objects.filter(order_cl_ord_id__in=working + [rejected]).count() == 4
    )
    assert ExecutionReportRecord.objects.get(order_cl_ord_id=rejected).ord_status == "8"
    assert sorted(unsettled_cl_ord_ids()) == sorted(working)
    assert not OutboxMessage.objects.filter(kind="status_request", settled_at__isnull=True).exists()
    assert _status_requests() == {extra}  # the first logon: the hook's only

    assert gateway.stop() == 0  # SIGTERM: a clean Logout
    assert not logged_on()
    gateway.start()
    wait_until(lambda: _status_requests() == {extra, *working}, message="status requests on logon")
    wait_until(lambda: ExecutionReportRecord.objects.filter(exec_type="I").count() == 5, message="answers")

    answers = dict(
        ExecutionReportRecord.objects.filter(exec_type="I").values_list("order_cl_ord_id", "ord_status")
    )
    # The working orders are held (New); the hook's order is not (Rejected, unknown order).
    assert answers == {**{c: "0" for c in working}, extra: "8"}
    assert sorted(unsettled_cl_ord_ids()) == sorted(working)
    assert not OutboxMessage.objects.filter(kind="status_request", settled_at__isnull=True).exists()
