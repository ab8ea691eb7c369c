"""IOC and FOK execute at once or not at all; DAY orders expire at the end of the venue's day."""

from exchange.fix.codec import ExecType, OrdStatus, Tag
from exchange.venue.venue import EXPIRED_TEXT
from tests.venue.harness import FixClient, run


def test_ioc_fills_what_it_can_and_cancels_the_rest_fok_all_or_nothing(venue_process):
    venue = venue_process(VENUE_FILL_INTERVAL="30").start("--seed", "3")
    ids = [f"ioc-{n}" for n in range(15)] + [f"fok-{n}" for n in range(15)]

    async def scenario():
        async with FixClient(venue.port) as client:
            for cl_ord_id in ids:
                client.new_order(cl_ord_id, 100, tif="3" if cl_ord_id.startswith("ioc") else "4")
            await client.until(lambda: all(client.done(c) for c in ids))
            return client

    client = run(scenario())
    outcomes = set()
    for cl_ord_id in ids:
        reports = client.reports(cl_ord_id)
        assert reports[0].get(Tag.ExecType) == ExecType.New
        trades = [m for m in reports if m.get(Tag.ExecType) == ExecType.Trade]
        filled = sum(int(m.get(Tag.LastQty)) for m in trades)
        cancels = [m for m in reports if m.get(Tag.ExecType) == ExecType.Canceled]
        cancelled = 100 - filled if cancels else 0
        assert filled + cancelled == 100, cl_ord_id
        assert len(trades) <= 1 and len(cancels) <= 1
        assert reports[-1].get(Tag.LeavesQty) == "0"
        if cl_ord_id.startswith("fok"):
            assert filled in (0, 100)
            outcomes.add(filled)
        row = venue.orders()[cl_ord_id]
        assert (row["cum_qty"], row["leaves_qty"]) == (filled, 0)
        assert row["status"] == ("FILLED" if filled == 100 else "CANCELLED")
    assert outcomes == {0, 100}  # both outcomes seen over 15 FOK orders


def test_day_orders_expire_at_the_end_of_the_trading_day_gtc_orders_rest(venue_process):
    venue = venue_process(VENUE_DAY_SECONDS="1", VENUE_FILL_INTERVAL="30").start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.new_order("day-1", 10, tif="0")
            client.new_order("gtc-1", 10, tif="1")
            await client.until(lambda: client.done("day-1"), timeout=3)
            client.status("gtc-1")
            await client.until(lambda: len(client.reports("gtc-1")) == 2)
            return client

    client = run(scenario())
    expired = client.reports("day-1")[-1]
    assert (expired.get(Tag.ExecType), expired.get(Tag.OrdStatus)) == (ExecType.Expired, OrdStatus.Expired)
    assert (expired.get(Tag.LeavesQty), expired.get(Tag.CumQty)) == ("0", "0")
    assert expired.get(Tag.Text) == EXPIRED_TEXT
    assert client.reports("gtc-1")[-1].get(Tag.OrdStatus) == OrdStatus.New
    orders = venue.orders()
    assert (orders["day-1"]["status"], orders["gtc-1"]["status"]) == ("EXPIRED", "NEW")
