"""Inbound application messages as flat records: parsed values, dedupe keys, and no exception on bad input."""

from datetime import UTC, datetime
from decimal import Decimal

from exchange.fix.codec import MsgType, Tag, encode, parse_frame
from exchange.fix.reports import dedupe_key, fix_timestamp, inbound_record, is_final_report


def _message(msg_type, body, *, seq=7, poss_dup=False):
    raw = encode(
        msg_type,
        body,
        sender="VENUE",
        target="BROKER",
        seq=seq,
        sending_time="20260102-03:04:05.678",
        poss_dup=poss_dup,
        orig_sending_time="20260102-03:04:05.000" if poss_dup else None,
    )
    return parse_frame(raw)


FILL = [
    (Tag.OrderID, "V1"),
    (Tag.ClOrdID, "order-1"),
    (Tag.ExecID, "V1-2"),
    (Tag.ExecType, "F"),
    (Tag.OrdStatus, "1"),
    (Tag.LastQty, 30),
    (Tag.LastPx, "101.25"),
    (Tag.LeavesQty, 70),
    (Tag.CumQty, 30),
    (Tag.AvgPx, "101.2500"),
    (Tag.TransactTime, "20260102-03:04:05.123"),
]


def test_an_execution_report_is_parsed_and_keyed_by_its_exec_id():
    record = inbound_record(_message(MsgType.ExecutionReport, FILL, poss_dup=True))
    assert record["dedupe_key"] == "V1-2" and record["exec_id"] == "V1-2"
    assert (record["session_seq"], record["poss_dup"], record["msg_type"]) == (7, True, "8")
    assert record["order_cl_ord_id"] == record["cl_ord_id"] == "order-1"
    assert (record["last_qty"], record["last_px"], record["cum_qty"]) == (30, Decimal("101.25"), 30)
    assert record["transact_time"] == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert record["raw"].startswith("8=FIX.4.4\x01")
    assert not is_final_report(record)


def test_a_cancel_report_belongs_to_the_original_order():
    body = [
        (Tag.ClOrdID, "cancel-1"),
        (Tag.OrigClOrdID, "order-1"),
        (Tag.ExecID, "V1-3"),
        (Tag.ExecType, "4"),
    ]
    record = inbound_record(_message(MsgType.ExecutionReport, body + [(Tag.OrdStatus, "4")]))
    assert (record["order_cl_ord_id"], record["cl_ord_id"]) == ("order-1", "cancel-1")
    assert is_final_report(record)


def test_a_cancel_reject_is_keyed_by_the_cancel_requests_cl_ord_id_and_settles_nothing():
    body = [
        (Tag.ClOrdID, "cancel-2"),
        (Tag.OrigClOrdID, "order-1"),
        (Tag.OrdStatus, "8"),
        (Tag.CxlRejReason, "1"),
    ]
    record = inbound_record(_message(MsgType.OrderCancelReject, body))
    assert record["dedupe_key"] == "9:cancel-2"
    assert record["cxl_rej_reason"] == "1"
    assert not is_final_report(record)


def test_a_business_reject_is_keyed_by_what_it_refers_to_and_its_original_sending_time():
    body = [(Tag.RefSeqNum, 12), (Tag.RefMsgType, "D"), (Tag.BusinessRejectReason, "0")]
    first = inbound_record(_message(MsgType.BusinessMessageReject, body))
    again = inbound_record(_message(MsgType.BusinessMessageReject, body, poss_dup=True))
    assert first["dedupe_key"] == "j:12:20260102-03:04:05.678"
    assert again["dedupe_key"] == "j:12:20260102-03:04:05.000"


def test_malformed_values_are_kept_raw_and_stored_as_empty():
    body = [(Tag.ExecID, "X"), (Tag.LastQty, "lots"), (Tag.CumQty, "1e99"), (Tag.TransactTime, "yesterday")]
    record = inbound_record(_message(MsgType.ExecutionReport, body))
    assert (record["last_qty"], record["cum_qty"], record["transact_time"]) == (None, None, None)
    assert "32=lots" in record["raw"]


def test_fix_timestamps_with_and_without_milliseconds():
    assert fix_timestamp("20260102-03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert fix_timestamp("20260102-03:04:05.5") == datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    assert fix_timestamp("20261302-03:04:05") is None
    assert dedupe_key("8", {}) == "8::"
