"""Outbox rows as FIX messages (no database: unsaved rows), and the reconnect backoff."""

import random
from decimal import Decimal

import pytest

from exchange.fix.codec import MsgType, Tag
from exchange.fix_gateway import backoff_delay, outbox_fix_message
from exchange.models import OutboxMessage


def test_a_limit_order_becomes_a_new_order_single():
    row = OutboxMessage(
        kind="new_order",
        cl_ord_id="order-1",
        symbol="US0378331005",
        side="sell",
        order_qty=100,
        ord_type="limit",
        price=Decimal("101.5000"),
        time_in_force="ioc",
    )
    msg_type, body = outbox_fix_message(row)
    fields = dict(body)
    assert msg_type == MsgType.NewOrderSingle
    assert (fields[Tag.ClOrdID], fields[Tag.Side], fields[Tag.OrderQty]) == ("order-1", "2", 100)
    assert (fields[Tag.OrdType], fields[Tag.Price], fields[Tag.TimeInForce]) == ("2", "101.5", "3")
    assert Tag.TransactTime in fields


def test_cancel_and_status_request():
    cancel = OutboxMessage(kind="cancel", cl_ord_id="c-1", orig_cl_ord_id="order-1", side="buy")
    assert outbox_fix_message(cancel)[0] == MsgType.OrderCancelRequest
    assert dict(outbox_fix_message(cancel)[1])[Tag.OrigClOrdID] == "order-1"
    status = OutboxMessage(kind="status_request", cl_ord_id="order-1")
    assert outbox_fix_message(status) == (MsgType.OrderStatusRequest, [(Tag.ClOrdID, "order-1")])


@pytest.mark.parametrize(
    "row",
    [
        OutboxMessage(
            kind="new_order", cl_ord_id="o", symbol="X", side="hold", order_qty=1, ord_type="market"
        ),
        OutboxMessage(kind="new_order", cl_ord_id="o", symbol="X", side="buy", order_qty=1, ord_type="limit"),
        OutboxMessage(kind="cancel", cl_ord_id="c"),
        OutboxMessage(kind="amend", cl_ord_id="o"),
        OutboxMessage(kind="status_request", cl_ord_id=""),
    ],
)
def test_a_row_that_cannot_be_a_fix_message_is_refused(row):
    with pytest.raises(ValueError):
        outbox_fix_message(row)


def test_backoff_grows_to_the_cap_with_jitter():
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 30, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(15 <= d <= 30 for d in delays[-3:])
