"""NewOrderSingle, cancels and status requests against the real venue process."""

import time

from exchange.fix.codec import CxlRejReason, ExecType, MsgType, OrdRejReason, OrdStatus, Tag
from exchange.venue.venue import DUPLICATE_TEXT, TRANSIENT_TEXT, UNKNOWN_ORDER_TEXT
from tests.venue.harness import FixClient, run


def test_transient_refusal_holds_nothing_and_the_same_cl_ord_id_can_be_retried(venue_process):
    venue = venue_process(EXCHANGE_FAILURE_RATE="0.5").start("--seed", "7")
    refusals = []

    async def scenario():
        async with FixClient(venue.port) as client:
            for n in range(8):
                cl_ord_id = f"retry-{n}"
                for _attempt in range(30):
                    before = len(client.reports(cl_ord_id))
                    client.new_order(cl_ord_id, 10)
                    await client.until(lambda c=cl_ord_id, b=before: len(client.reports(c)) > b)
                    answer = client.reports(cl_ord_id)[before]
                    if answer.get(Tag.ExecType) == ExecType.New:
                        break
                    assert answer.get(Tag.ExecType) == ExecType.Rejected
                    assert answer.get(Tag.OrdStatus) == OrdStatus.Rejected
                    assert answer.get(Tag.OrdRejReason) == OrdRejReason.Other
                    assert answer.get(Tag.Text) == TRANSIENT_TEXT
                    assert venue.journal("SELECT 1 FROM venue_order WHERE cl_ord_id = ?", (cl_ord_id,)) == []
                    refusals.append(cl_ord_id)
                    # Not held: a status request says so.
                    before_status = len(client.reports(cl_ord_id))
                    client.status(cl_ord_id)
                    await client.until(lambda c=cl_ord_id, b=before_status: len(client.reports(c)) > b)
                    assert client.reports(cl_ord_id)[-1].get(Tag.Text) == UNKNOWN_ORDER_TEXT
                else:
                    raise AssertionError("never accepted")

    run(scenario())
    assert refusals, "with a 50 % failure rate some attempt must have been refused"
    assert len(venue.orders()) == 8


def test_repeated_new_order_single_is_never_a_second_order(venue_process):
    venue = venue_process(EXCHANGE_LATENCY="0.2", VENUE_FILL_INTERVAL="5").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("dup-1", 10)
            client.new_order("dup-1", 10)  # inside the latency window
            await client.until(lambda: len(client.reports("dup-1")) == 2)
            client.new_order("dup-1", 99)  # after acceptance, even with another quantity
            await client.until(lambda: len(client.reports("dup-1")) == 3)
            return client.reports("dup-1")

    new, again, later = run(scenario())
    assert new.get(Tag.ExecType) == ExecType.New
    for answer in (again, later):
        assert answer.get(Tag.ExecType) == ExecType.OrderStatus
        assert answer.get(Tag.OrdStatus) == OrdStatus.New
        assert answer.get(Tag.OrderID) == new.get(Tag.OrderID)
        assert answer.get(Tag.OrderQty) == "10"
        assert answer.get(Tag.Text) == DUPLICATE_TEXT
    assert venue.journal("SELECT cl_ord_id, quantity FROM venue_order") == [("dup-1", 10)]
    assert venue.journal("SELECT exec_type FROM venue_execution") == [("0",)]


def test_status_of_an_unknown_order_is_a_definite_not_held(venue_process):
    venue = venue_process().start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.status("never-sent")
            await client.until(lambda: client.reports("never-sent"))
            return client.reports("never-sent")[0]

    answer = run(scenario())
    assert answer.get(Tag.ExecType) == ExecType.OrderStatus
    assert answer.get(Tag.OrdStatus) == OrdStatus.Rejected
    assert answer.get(Tag.OrdRejReason) == OrdRejReason.UnknownOrder
    assert answer.get(Tag.Text) == UNKNOWN_ORDER_TEXT
    assert venue.orders() == {}


def test_status_sent_right_after_the_order_is_answered_with_its_outcome(venue_process):
    venue = venue_process(EXCHANGE_LATENCY="0.3", VENUE_FILL_INTERVAL="5").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("early-1", 10)
            client.status("early-1")
            await client.until(lambda: len(client.reports("early-1")) == 2)
            return client.reports("early-1")

    new, status = run(scenario())
    assert new.get(Tag.ExecType) == ExecType.New
    assert status.get(Tag.ExecType) == ExecType.OrderStatus
    assert status.get(Tag.OrdStatus) == OrdStatus.New
    assert (status.get(Tag.LeavesQty), status.get(Tag.CumQty)) == ("10", "0")


def test_many_new_orders_are_decided_concurrently(venue_process):
    venue = venue_process(EXCHANGE_LATENCY="0.5", VENUE_FILL_INTERVAL="30").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            started = time.monotonic()
            for n in range(300):
                client.new_order(f"c-{n}", 10)
            await client.until(lambda: len(client.inbox) >= 300)
            return time.monotonic() - started, client.inbox

    elapsed, inbox = run(scenario())
    assert elapsed < 5  # 300 × 0.5 s one after the other would take 150 s
    assert {m.get(Tag.ExecType) for m in inbox} == {ExecType.New}


def test_cancel_then_cancel_reject_when_too_late_or_unknown(venue_process):
    venue = venue_process(VENUE_FILL_INTERVAL="5").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("cx-1", 10)
            await client.until(lambda: client.reports("cx-1"))
            client.cancel("cx-1", "cancel-1")
            await client.until(lambda: client.done("cx-1"))
            client.cancel("cx-1", "cancel-2")
            client.cancel("nobody", "cancel-3")
            await client.until(
                lambda: len([m for m in client.inbox if m.msg_type == MsgType.OrderCancelReject]) == 2
            )
            return client

    client = run(scenario())
    new, pending, cancelled = client.reports("cx-1")
    assert (pending.get(Tag.ExecType), pending.get(Tag.OrdStatus)) == (ExecType.PendingCancel, "6")
    assert (cancelled.get(Tag.ExecType), cancelled.get(Tag.OrdStatus)) == (ExecType.Canceled, "4")
    assert cancelled.get(Tag.ClOrdID) == "cancel-1" and cancelled.get(Tag.OrigClOrdID) == "cx-1"
    assert (cancelled.get(Tag.LeavesQty), cancelled.get(Tag.CumQty)) == ("0", "0")
    too_late, unknown = (m for m in client.inbox if m.msg_type == MsgType.OrderCancelReject)
    assert too_late.get(Tag.CxlRejReason) == CxlRejReason.TooLateToCancel
    assert too_late.get(Tag.OrdStatus) == OrdStatus.Canceled
    assert too_late.get(Tag.CxlRejResponseTo) == "1"
    assert unknown.get(Tag.CxlRejReason) == CxlRejReason.UnknownOrder
    assert unknown.get(Tag.OrigClOrdID) == "nobody"
    assert venue.orders()["cx-1"]["status"] == "CANCELLED"
    assert [e["exec_type"] for e in venue.executions()] == ["0", "6", "4"]


def test_permanent_refusals_have_their_own_reasons_and_are_journaled(venue_process):
    venue = venue_process().start()
    cases = {
        "bad-isin": ({"symbol": "US0378331006"}, OrdRejReason.UnknownSymbol),
        "zero-qty": ({"quantity": 0}, OrdRejReason.IncorrectQuantity),
        "huge-qty": ({"quantity": 10**12}, OrdRejReason.OrderExceedsLimit),
        "no-price": ({"price": ""}, OrdRejReason.UnsupportedOrderCharacteristic),
        "bad-tif": ({"tif": "6"}, OrdRejReason.UnsupportedOrderCharacteristic),
    }

    async def scenario():
        async with FixClient(venue.port) as client:
            for cl_ord_id, (kwargs, _) in cases.items():
                if kwargs.get("price") == "":
                    client.send(
                        MsgType.NewOrderSingle,
                        [(11, cl_ord_id), (55, "US0378331005"), (54, "1"), (38, 5), (40, "2"), (59, "0")],
                    )
                else:
                    client.new_order(cl_ord_id, kwargs.pop("quantity", 5), **kwargs)
            await client.until(lambda: all(client.reports(c) for c in cases))
            client.new_order("bad-isin", 5)  # resent: the refusal stands
            await client.until(lambda: len(client.reports("bad-isin")) == 2)
            return client

    client = run(scenario())
    for cl_ord_id, (_, reason) in cases.items():
        (answer, *_) = client.reports(cl_ord_id)
        assert answer.get(Tag.ExecType) == ExecType.Rejected, cl_ord_id
        assert answer.get(Tag.OrdRejReason) == reason, cl_ord_id
        assert answer.get(Tag.Text)
    again = client.reports("bad-isin")[1]
    assert (again.get(Tag.ExecType), again.get(Tag.OrdStatus)) == (ExecType.OrderStatus, OrdStatus.Rejected)
    orders = venue.orders()
    assert {c: o["status"] for c, o in orders.items()} == dict.fromkeys(cases, "REJECTED")
    assert {c: o["reject_reason"] for c, o in orders.items()} == {c: r for c, (_, r) in cases.items()}


def test_cancel_sent_right_after_the_order_cancels_it_once_decided(venue_process):
    venue = venue_process(EXCHANGE_LATENCY="0.3", VENUE_FILL_INTERVAL="5").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("quick-1", 10)
            client.cancel("quick-1", "quick-cancel")
            await client.until(lambda: client.done("quick-1"))
            return client

    client = run(scenario())
    assert client.exec_types("quick-1") == [ExecType.New, ExecType.PendingCancel, ExecType.Canceled]
    assert not [m for m in client.inbox if m.msg_type == MsgType.OrderCancelReject]
    assert venue.orders()["quick-1"]["status"] == "CANCELLED"


def test_security_id_with_isin_source_is_accepted_like_symbol(venue_process):
    venue = venue_process().start()

    async def scenario():
        async with FixClient(venue.port) as client:
            body = [(11, "sid-1"), (48, "US0378331005"), (22, "4"), (54, "2"), (38, 3), (40, "1"), (59, "1")]
            client.send(MsgType.NewOrderSingle, body)
            body = [(11, "sid-2"), (48, "037833100"), (22, "1"), (54, "2"), (38, 3), (40, "1"), (59, "1")]
            client.send(MsgType.NewOrderSingle, body)  # a CUSIP: not ours
            await client.until(lambda: client.done("sid-1") and client.done("sid-2"))
            return client

    client = run(scenario())
    assert client.exec_types("sid-1")[0] == ExecType.New
    assert client.reports("sid-2")[0].get(Tag.OrdRejReason) == OrdRejReason.UnknownSymbol
    assert venue.orders()["sid-1"]["instrument"] == "US0378331005"
