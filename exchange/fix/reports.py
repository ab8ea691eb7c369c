"""Inbound application messages (ExecutionReport, OrderCancelReject, …) as flat records.

Pure: no database. ``inbound_record`` turns a parsed message into the column values
of ``exchange.ExecutionReportRecord``; a malformed value becomes ``None``/empty,
never an exception (the raw text is kept whole).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from exchange.fix.codec import Message, MsgType, OrdStatus, Tag

# An order in one of these states is done at the venue: no further execution can come.
FINAL_ORD_STATUSES = frozenset({OrdStatus.Filled, OrdStatus.Canceled, OrdStatus.Rejected, OrdStatus.Expired})
_QTY = Decimal("0.0001")
_PX = Decimal("0.000001")
_MAX = Decimal("1e16")
_ID_LENGTH = 64


def fix_timestamp(value: str | None) -> datetime | None:
    """``YYYYMMDD-HH:MM:SS[.sss]`` (UTC) as an aware datetime; ``None`` when malformed."""
    if not value or len(value) < 17 or value[8] != "-":
        return None
    try:
        micro = int((value[18:24] + "000000")[:6]) if len(value) > 18 else 0
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[12:14]),
            int(value[15:17]),
            micro,
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _decimal(value: bytes | None, step: Decimal) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value.decode("latin-1"))
    except InvalidOperation:
        return None
    if not number.is_finite() or abs(number) >= _MAX:
        return None
    return number.quantize(step)


def _text(value: bytes | None, length: int) -> str:
    return value.decode("latin-1")[:length] if value else ""


def dedupe_key(msg_type: str, fields: dict[int, bytes]) -> str:
    """What makes a message the same message when it comes again (docs/decisions.md, "FIX gateway")."""
    exec_id = fields.get(Tag.ExecID)
    if msg_type == MsgType.ExecutionReport and exec_id:
        return exec_id.decode("latin-1")[:96]
    if msg_type == MsgType.OrderCancelReject and fields.get(Tag.ClOrdID):
        return f"9:{_text(fields[Tag.ClOrdID], 90)}"
    ref = fields.get(Tag.RefSeqNum) or fields.get(Tag.MsgSeqNum) or b""
    sent = fields.get(Tag.OrigSendingTime) or fields.get(Tag.SendingTime) or b""
    return f"{msg_type}:{_text(ref, 20)}:{_text(sent, 30)}"[:96]


def inbound_record(message: Message) -> dict:
    """Column values of an ``ExecutionReportRecord`` for ``message`` (all but ``received_at``)."""
    fields = dict(message.fields)
    msg_type = message.msg_type
    cl_ord_id = _text(fields.get(Tag.ClOrdID), _ID_LENGTH)
    orig_cl_ord_id = _text(fields.get(Tag.OrigClOrdID), _ID_LENGTH)
    seq = fields.get(Tag.MsgSeqNum, b"0")
    return {
        "session_seq": int(seq) if seq.isdigit() else 0,
        "poss_dup": fields.get(Tag.PossDupFlag) == b"Y",
        "msg_type": msg_type[:4],
        "dedupe_key": dedupe_key(msg_type, fields),
        "order_cl_ord_id": orig_cl_ord_id or cl_ord_id,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": orig_cl_ord_id,
        "venue_order_id": _text(fields.get(Tag.OrderID), _ID_LENGTH),
        "exec_id": _text(fields.get(Tag.ExecID), _ID_LENGTH),
        "exec_type": _text(fields.get(Tag.ExecType), 2),
        "ord_status": _text(fields.get(Tag.OrdStatus), 2),
        "last_qty": _decimal(fields.get(Tag.LastQty), _QTY),
        "last_px": _decimal(fields.get(Tag.LastPx), _PX),
        "cum_qty": _decimal(fields.get(Tag.CumQty), _QTY),
        "leaves_qty": _decimal(fields.get(Tag.LeavesQty), _QTY),
        "avg_px": _decimal(fields.get(Tag.AvgPx), _PX),
        "transact_time": fix_timestamp(_text(fields.get(Tag.TransactTime), 30)),
        "ord_rej_reason": _text(fields.get(Tag.OrdRejReason), 8),
        "cxl_rej_reason": _text(fields.get(Tag.CxlRejReason), 8),
        "text": _text(fields.get(Tag.Text), 255),
        "raw": message.raw.decode("latin-1"),
    }


def is_final_report(record: dict) -> bool:
    """An ExecutionReport saying its order is done at the venue (filled, cancelled, rejected, expired)."""
    return record["msg_type"] == MsgType.ExecutionReport and record["ord_status"] in FINAL_ORD_STATUSES
