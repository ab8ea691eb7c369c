"""Accepted orders fill over time, within their limit price, as the journal records."""

from decimal import Decimal

from exchange.fix.codec import ExecType, MsgType, OrdStatus, Tag
from tests.venue.harness import MICROSOFT, FixClient, run


def test_orders_are_accepted_then_filled_to_their_quantity_within_the_limit(venue_process):
    venue = venue_process(VENUE_MAX_FILLS="4").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("buy-1", 100, side="1", price="20.00")  # below the market: fills at <= 20
            client.new_order("sell-1", 57, side="2", price="500.00", symbol=MICROSOFT)  # fills at >= 500
            client.new_order("mkt-1", 10, price=None)
            await client.until(lambda: all(client.done(c) for c in ("buy-1", "sell-1", "mkt-1")))
            return client.inbox

    inbox = run(scenario())
    for cl_ord_id, quantity, check in (
        ("buy-1", 100, lambda px: px <= Decimal("20.00")),
        ("sell-1", 57, lambda px: px >= Decimal("500.00")),
        ("mkt-1", 10, lambda px: px > 0),
    ):
        reports = [m for m in inbox if m.get(Tag.ClOrdID) == cl_ord_id]
        assert reports[0].get(Tag.ExecType) == ExecType.New and reports[0].get(Tag.OrdStatus) == OrdStatus.New
        trades = [m for m in reports if m.get(Tag.ExecType) == ExecType.Trade]
        assert 1 <= len(trades) <= 4
        assert sum(int(m.get(Tag.LastQty)) for m in trades) == quantity
        assert all(check(Decimal(m.get(Tag.LastPx))) for m in trades)
        assert [m.get(Tag.OrdStatus) for m in trades] == ["1"] * (len(trades) - 1) + ["2"]
        last = trades[-1]
        assert (last.get(Tag.CumQty), last.get(Tag.LeavesQty)) == (str(quantity), "0")
        for tag in (Tag.ExecID, Tag.OrderID, Tag.AvgPx, Tag.Side, Tag.Symbol):
            assert last.get(tag)
        assert len(last.get(Tag.TransactTime)) == len("20260101-00:00:00.000")
        notional = sum(Decimal(m.get(Tag.LastPx)) * int(m.get(Tag.LastQty)) for m in trades)
        assert Decimal(last.get(Tag.AvgPx)) == (notional / quantity).quantize(Decimal("0.0001"))

    # The journal holds what was reported, execution by execution.
    orders = venue.orders()
    assert {c: (o["status"], o["cum_qty"], o["leaves_qty"]) for c, o in orders.items()} == {
        "buy-1": ("FILLED", 100, 0),
        "sell-1": ("FILLED", 57, 0),
        "mkt-1": ("FILLED", 10, 0),
    }
    assert orders["sell-1"]["side"] == "sell" and orders["sell-1"]["instrument"] == MICROSOFT
    assert orders["buy-1"]["time_in_force"] == "gtc"
    reported = {
        m.get(Tag.ExecID): (
            m.get(Tag.ClOrdID),
            m.get(Tag.ExecType),
            int(m.get(Tag.LastQty) or 0),
            m.get(Tag.LastPx),
        )
        for m in inbox
        if m.msg_type == MsgType.ExecutionReport
    }
    journaled = {
        e["exec_id"]: (e["cl_ord_id"], e["exec_type"], e["last_qty"], e["last_px"])
        for e in venue.executions()
    }
    assert reported == journaled
