"""VENUE_FAULTS (duplicates, gaps, dropped connections): our store still equals the venue's journal."""

import pytest

from exchange.models import ExecutionReportRecord
from tests.gateway.harness import (
    all_settled,
    assert_stored_equals_journal,
    new_orders,
    session_row,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_duplicates_gaps_and_disconnects_leave_every_execution_stored_once(processes):
    venue, gateway = processes(
        {
            "VENUE_FAULTS": "dup=0.05,gap=0.02,disconnect=0.01",
            "VENUE_MAX_FILLS": "5",
            "VENUE_FILL_INTERVAL": "0.05",
        }
    )
    venue.start("--seed", "11")
    gateway.start()
    orders = new_orders(40)
    wait_until(lambda: all_settled(venue, orders), timeout=40, message="orders filled and stored")
    assert_stored_equals_journal(venue)

    # Counters are published every second.
    row = wait_until(lambda: (r := session_row()).duplicates_ignored and r.resend_requests_sent and r)
    assert row.reports_stored == ExecutionReportRecord.objects.count()
    assert "gap" not in row.last_disconnect_reason
