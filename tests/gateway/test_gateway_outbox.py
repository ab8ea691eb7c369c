"""Outbox rows become FIX messages at the venue, and its answers are stored, parsed and keyed."""

import os
import uuid

import pytest
from rest_framework.test import APIClient

from exchange.models import ExecutionReportRecord, OutboxMessage
from exchange.selectors import report_batch_after, reports_for_order
from exchange.services import outbox_cancel, outbox_status_request
from tests.gateway.harness import (
    all_settled,
    assert_stored_equals_journal,
    logged_on,
    new_orders,
    outbox_sent,
    session_row,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_new_orders_reach_the_venue_and_every_execution_is_stored_once(processes):
    # The gateway's counters go where this test run's /metrics reads them.
    venue, gateway = processes(
        {"VENUE_MAX_FILLS": "3"}, {"PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"]}
    )
    venue.start()
    gateway.start()
    orders = new_orders(5)
    wait_until(lambda: all_settled(venue, orders), message="orders filled and stored")

    assert set(venue.orders()) == set(orders)
    assert_stored_equals_journal(venue)
    rows = OutboxMessage.objects.filter(cl_ord_id__in=orders)
    assert [row.cl_ord_id for row in rows if not (row.sent_seq and row.sent_at and row.settled_at)] == []
    fills = reports_for_order(cl_ord_id=orders[0])
    assert [r.exec_type for r in fills][0] == "0" and fills.last().ord_status == "2"
    assert sum(r.last_qty for r in fills if r.exec_type == "F") == 100
    # The cursor read gives every stored message once, in commit order.
    seen, cursor = [], 0
    while batch := report_batch_after(cursor=cursor, limit=7):
        seen += [r.id for r in batch]
        cursor = batch[-1].id
    assert seen == sorted(ExecutionReportRecord.objects.values_list("id", flat=True))
    assert session_row().reports_stored == ExecutionReportRecord.objects.count()
    metrics = APIClient().get("/metrics").content.decode()
    assert f"fix_gateway_reports_stored_total {float(ExecutionReportRecord.objects.count())}" in metrics
    assert 'fix_gateway_outbox_sent_total{kind="new_order"} 5.0' in metrics
    assert "fix_gateway_report_lag_seconds_bucket" in metrics


def test_cancel_and_status_requests_are_answered_and_keyed(processes):
    venue, gateway = processes({"VENUE_FILL_INTERVAL": "30"})
    venue.start()
    gateway.start()
    wait_until(logged_on)
    [order] = new_orders(1)
    wait_until(lambda: reports_for_order(cl_ord_id=order).exists())
    outbox_status_request(cl_ord_id=order, side="sell")
    cancel_id, late_cancel_id, unknown = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    outbox_cancel(cl_ord_id=cancel_id, orig_cl_ord_id=order, side="sell")
    outbox_cancel(cl_ord_id=late_cancel_id, orig_cl_ord_id=order, side="sell")
    outbox_status_request(cl_ord_id=unknown)
    wait_until(lambda: ExecutionReportRecord.objects.filter(order_cl_ord_id=unknown).exists())

    answers = list(
        reports_for_order(cl_ord_id=order).values_list("msg_type", "exec_type", "ord_status", "cl_ord_id")
    )
    assert answers == [
        ("8", "0", "0", order),
        ("8", "I", "0", order),  # status answer: its own ExecID, stored like any report
        ("8", "6", "6", cancel_id),
        ("8", "4", "4", cancel_id),
        ("9", "", "4", late_cancel_id),  # too late: an OrderCancelReject, keyed by the cancel's ClOrdID
    ]
    reject = ExecutionReportRecord.objects.get(msg_type="9")
    assert reject.dedupe_key == f"9:{late_cancel_id}" and reject.orig_cl_ord_id == order
    not_held = ExecutionReportRecord.objects.get(order_cl_ord_id=unknown)
    assert (not_held.exec_type, not_held.ord_status, not_held.ord_rej_reason) == ("I", "8", "5")
    assert outbox_sent([order, cancel_id, late_cancel_id, unknown])
    assert OutboxMessage.objects.get(cl_ord_id=order, kind="new_order").settled_at is not None
    assert_stored_equals_journal(venue)
