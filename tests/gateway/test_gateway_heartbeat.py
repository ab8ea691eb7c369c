"""A venue that stops answering is detected by heartbeat/TestRequest and the session comes back."""

import os
import signal
import time

import pytest

from tests.gateway.harness import (
    all_settled,
    assert_stored_equals_journal,
    logged_on,
    new_orders,
    session_row,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_unanswered_test_request_drops_the_connection_and_the_gateway_reconnects(processes):
    venue, gateway = processes(
        {"VENUE_MAX_FILLS": "5", "VENUE_FILL_INTERVAL": "0.3"}, {"GATEWAY_HEARTBEAT_INTERVAL": "1"}
    )
    venue.start()
    gateway.start()
    orders = new_orders(5)
    wait_until(logged_on)
    os.kill(venue.proc.pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: "heartbeat timeout" in session_row().last_disconnect_reason,
            timeout=8,
            message="the heartbeat timeout",
        )
    finally:
        time.sleep(0.5)
        os.kill(venue.proc.pid, signal.SIGCONT)
    wait_until(logged_on, timeout=15, message="logged on again")
    wait_until(lambda: all_settled(venue, orders), timeout=20, message="orders filled and stored")
    assert_stored_equals_journal(venue)
