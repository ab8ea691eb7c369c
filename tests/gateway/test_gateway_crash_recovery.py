"""SIGKILL of either process mid-stream: after restart nothing is missing and nothing doubled."""

import time
import uuid

import pytest

from exchange.models import ExecutionReportRecord, OutboxMessage
from exchange.services import outbox_cancel
from tests.gateway.harness import (
    all_settled,
    assert_stored_equals_journal,
    logged_on,
    new_orders,
    session_row,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_gateway_killed_during_a_firehose_stores_every_report_once_after_restart(processes):
    venue, gateway = processes()
    venue.start("--firehose", "3000")
    gateway.start()
    orders = new_orders(4, quantity=1_000_000)
    wait_until(lambda: ExecutionReportRecord.objects.count() > 1500, message="the stream running")
    gateway.kill()
    stored_at_kill = ExecutionReportRecord.objects.count()
    # Decided while the gateway is down: sent when it is back.
    later = new_orders(2, quantity=1_000_000)
    time.sleep(0.5)
    gateway.start()
    wait_until(
        lambda: ExecutionReportRecord.objects.count() > stored_at_kill + 3000, message="the stream resumed"
    )
    for order in orders + later:
        outbox_cancel(cl_ord_id=str(uuid.uuid4()), orig_cl_ord_id=order)
    wait_until(lambda: all_settled(venue, orders + later), timeout=30, message="orders cancelled and stored")

    assert_stored_equals_journal(venue)
    assert len(venue.executions()) > stored_at_kill + 3000
    assert not OutboxMessage.objects.filter(sent_seq__isnull=True).exists()
    assert session_row().reports_stored == ExecutionReportRecord.objects.count()


def test_venue_killed_mid_stream_then_restarted_loses_and_doubles_nothing(processes):
    venue, gateway = processes({"VENUE_MAX_FILLS": "5", "VENUE_FILL_INTERVAL": "0.2"})
    venue.start()
    gateway.start()
    orders = new_orders(20)
    wait_until(
        lambda: ExecutionReportRecord.objects.filter(exec_type="F").count() > 20, message="fills flowing"
    )
    venue.kill()
    wait_until(lambda: not logged_on(), timeout=5, message="the gateway noticing")
    more = new_orders(5)  # decided while the venue is down
    venue.start()
    wait_until(lambda: all_settled(venue, orders + more), timeout=30, message="orders filled and stored")

    assert_stored_equals_journal(venue)
    assert set(venue.orders()) == set(orders + more)
