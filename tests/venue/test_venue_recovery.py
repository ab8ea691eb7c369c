"""A venue killed mid-stream loses nothing it sent; faults on the wire are recovered by the session."""

import asyncio
import signal
from collections import Counter

from exchange.fix.codec import MsgType, Tag
from exchange.fix.session import MemorySessionStore
from tests.venue.harness import FixClient, run


def assert_every_report_once(client, venue):
    reports = [m for m in client.inbox if m.msg_type == MsgType.ExecutionReport]
    counts = Counter(m.get(Tag.ExecID) for m in reports)
    assert [exec_id for exec_id, n in counts.items() if n > 1] == []
    journaled = {e["exec_id"] for e in venue.executions()}
    assert set(counts) == journaled
    seqs = [m.seq for m in client.inbox]
    assert seqs == sorted(seqs)


def assert_filled(venue, ids, quantity):
    orders = venue.orders()
    fills = Counter()
    for execution in venue.executions():
        fills[execution["cl_ord_id"]] += execution["last_qty"]
    for cl_ord_id in ids:
        assert (orders[cl_ord_id]["status"], orders[cl_ord_id]["cum_qty"]) == ("FILLED", quantity)
        assert fills[cl_ord_id] == quantity


def test_sigkill_mid_stream_then_restart_resends_every_report_exactly_once(venue_process):
    venue = venue_process(VENUE_MAX_FILLS="5", VENUE_FILL_INTERVAL="0.05").start()
    ids = [f"k-{n}" for n in range(40)]

    async def scenario():
        async with FixClient(venue.port) as client:
            for cl_ord_id in ids:
                client.new_order(cl_ord_id, 100)
            await client.until(lambda: sum(m.get(Tag.ExecType) == "F" for m in client.inbox) >= 20)
            venue.kill()
            await client.until(lambda: not client.session.connected)
            sent_before = len(client.inbox)
            await asyncio.sleep(0.2)
            venue.start()
            await client.until(lambda: all(client.done(c) for c in ids), timeout=20)
            return client, sent_before

    client, sent_before = run(scenario())
    assert 0 < sent_before < len(client.inbox)
    assert_every_report_once(client, venue)
    assert_filled(venue, ids, 100)


def test_orders_sent_while_the_venue_is_down_are_taken_after_its_restart(venue_process):
    venue = venue_process(VENUE_FILL_INTERVAL="0.05").start()
    ids = [f"queued-{n}" for n in range(5)]

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("before", 10)
            await client.until(lambda: client.done("before"))
            venue.kill()
            await client.until(lambda: not client.session.connected)
            for cl_ord_id in ids:
                client.new_order(cl_ord_id, 10)  # numbered and stored on our side only
            venue.start()
            await client.until(lambda: all(client.done(c) for c in ids))
            return client

    client = run(scenario())
    assert_every_report_once(client, venue)
    assert_filled(venue, ["before", *ids], 10)


def test_day_orders_of_a_past_day_expire_when_the_venue_comes_back(venue_process):
    venue = venue_process(VENUE_DAY_SECONDS="1", VENUE_FILL_INTERVAL="30").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("day-old", 10, tif="0")
            await client.until(lambda: client.reports("day-old"))
            venue.kill()  # before the day ends (or just after: then it expired already)
            await client.until(lambda: not client.session.connected)
            await asyncio.sleep(1.1)
            venue.start()
            await client.until(lambda: client.done("day-old"))
            return client

    client = run(scenario())
    assert client.exec_types("day-old") == ["0", "C"]
    assert venue.orders()["day-old"]["status"] == "EXPIRED"
    assert_every_report_once(client, venue)


def test_reports_produced_while_the_client_is_away_are_recovered_after_logon(venue_process):
    venue = venue_process(VENUE_MAX_FILLS="3", VENUE_FILL_INTERVAL="0.1").start()
    ids = [f"away-{n}" for n in range(10)]
    store, inbox = MemorySessionStore(), []

    async def scenario():
        async with FixClient(venue.port, store=store, inbox=inbox) as client:
            for cl_ord_id in ids:
                client.new_order(cl_ord_id, 30)
            await client.until(lambda: all(client.reports(c) for c in ids))
        received_before = len(inbox)
        await asyncio.sleep(0.6)  # the orders fill meanwhile
        async with FixClient(venue.port, store=store, inbox=inbox) as client:
            await client.until(lambda: all(client.done(c) for c in ids))
            return client, received_before

    client, received_before = run(scenario())
    assert client.session.stats["resend_requests_sent"] == 1
    assert len(inbox) > received_before
    assert_every_report_once(client, venue)
    assert_filled(venue, ids, 30)


def test_faults_dup_gap_disconnect_are_recovered_by_the_session(venue_process):
    venue = venue_process(
        VENUE_FAULTS="dup=0.1,gap=0.05,disconnect=0.02", VENUE_MAX_FILLS="5", VENUE_FILL_INTERVAL="0.02"
    ).start("--seed", "11")
    ids = [f"f-{n}" for n in range(60)]

    async def scenario():
        async with FixClient(venue.port) as client:
            disconnects = []
            client.session.on_disconnect = disconnects.append
            for cl_ord_id in ids:
                client.new_order(cl_ord_id, 50)
            await client.until(lambda: all(client.done(c) for c in ids), timeout=30)
            return client, disconnects

    client, disconnects = run(scenario())
    assert disconnects, "the disconnect fault never fired"
    stats = client.session.stats
    assert stats["resend_requests_sent"] and stats["duplicates_ignored"] + stats["gap_fills_received"]
    assert_every_report_once(client, venue)
    assert_filled(venue, ids, 50)


def test_sigterm_logs_the_client_out_cleanly(venue_process):
    venue = venue_process().start()

    async def scenario():
        async with FixClient(venue.port) as client:
            reasons = []
            client.session.on_disconnect = reasons.append
            venue.proc.send_signal(signal.SIGTERM)
            await client.until(lambda: reasons)
            return reasons

    reasons = run(scenario())
    assert reasons[0] == "Logout received: Venue shutting down"
    assert venue.stop() == 0
