"""FIX 4.4 messages on the wire: named tags and values, encoding, and a stream parser.

Both directions are ours, checked against simplefix in the tests: simplefix's encoder
costs 20 µs a message (the firehose encodes thousands a second), and its parser neither
verifies CheckSum nor resynchronises after garbage (docs/decisions.md, "FIX venue").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BEGIN_STRING = b"FIX.4.4"
SOH = b"\x01"
# A message longer than this is not something either side sends: treat as garbage.
MAX_BODY_LENGTH = 64 * 1024


class Tag:
    Account = 1
    AvgPx = 6
    BeginSeqNo = 7
    BeginString = 8
    BodyLength = 9
    CheckSum = 10
    ClOrdID = 11
    CumQty = 14
    EndSeqNo = 16
    ExecID = 17
    IDSource = 22
    LastPx = 31
    LastQty = 32
    MsgSeqNum = 34
    MsgType = 35
    NewSeqNo = 36
    OrderID = 37
    OrderQty = 38
    OrdStatus = 39
    OrdType = 40
    OrigClOrdID = 41
    PossDupFlag = 43
    Price = 44
    RefSeqNum = 45
    SecurityID = 48
    SenderCompID = 49
    SendingTime = 52
    Side = 54
    Symbol = 55
    TargetCompID = 56
    Text = 58
    TimeInForce = 59
    TransactTime = 60
    EncryptMethod = 98
    CxlRejReason = 102
    OrdRejReason = 103
    HeartBtInt = 108
    TestReqID = 112
    OrigSendingTime = 122
    GapFillFlag = 123
    ResetSeqNumFlag = 141
    ExecType = 150
    LeavesQty = 151
    RefTagID = 371
    RefMsgType = 372
    SessionRejectReason = 373
    BusinessRejectRefID = 379
    BusinessRejectReason = 380
    CxlRejResponseTo = 434


class MsgType:
    Heartbeat = "0"
    TestRequest = "1"
    ResendRequest = "2"
    Reject = "3"
    SequenceReset = "4"
    Logout = "5"
    ExecutionReport = "8"
    OrderCancelReject = "9"
    Logon = "A"
    NewOrderSingle = "D"
    OrderCancelRequest = "F"
    OrderStatusRequest = "H"
    BusinessMessageReject = "j"


# Session-level messages: never delivered to the application, gap-filled on resend.
ADMIN_MSG_TYPES = frozenset("012345A")


class ExecType:
    New = "0"
    Canceled = "4"
    PendingCancel = "6"
    Rejected = "8"
    Expired = "C"
    Trade = "F"
    OrderStatus = "I"


class OrdStatus:
    New = "0"
    PartiallyFilled = "1"
    Filled = "2"
    Canceled = "4"
    PendingCancel = "6"
    Rejected = "8"
    PendingNew = "A"
    Expired = "C"


class Side:
    Buy = "1"
    Sell = "2"


class OrdType:
    Market = "1"
    Limit = "2"


class TimeInForce:
    Day = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"


class OrdRejReason:
    UnknownSymbol = "1"
    OrderExceedsLimit = "3"
    UnknownOrder = "5"
    UnsupportedOrderCharacteristic = "11"
    IncorrectQuantity = "13"
    # Reserved by this venue for the transient refusal ("Connection not available").
    Other = "99"


class CxlRejReason:
    TooLateToCancel = "0"
    UnknownOrder = "1"


class SessionRejectReason:
    InvalidTagNumber = "0"
    RequiredTagMissing = "1"
    TagNotDefinedForMsgType = "2"
    UndefinedTag = "3"
    TagWithoutValue = "4"
    ValueIncorrect = "5"
    IncorrectDataFormat = "6"
    CompIDProblem = "9"
    SendingTimeAccuracy = "10"
    InvalidMsgType = "11"


class BusinessRejectReason:
    Other = "0"
    UnknownID = "1"
    UnsupportedMessageType = "3"
    ConditionallyRequiredFieldMissing = "5"


class GarbledMessage(ValueError):
    """Bytes that are not a well-formed FIX 4.4 message (bad BodyLength, CheckSum, framing)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed message: its fields in wire order and the raw bytes it came from."""

    fields: tuple[tuple[int, bytes], ...]
    raw: bytes

    @property
    def msg_type(self) -> str:
        return self.get(Tag.MsgType) or ""

    @property
    def seq(self) -> int | None:
        value = self.get(Tag.MsgSeqNum)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def poss_dup(self) -> bool:
        return self.get(Tag.PossDupFlag) == "Y"

    def get(self, tag: int, default: str | None = None) -> str | None:
        for field_tag, value in self.fields:
            if field_tag == tag:
                return value.decode("latin-1")
        return default

    def __contains__(self, tag: int) -> bool:
        return any(field_tag == tag for field_tag, _ in self.fields)

    def body(self) -> list[tuple[int, bytes]]:
        """Fields other than the standard header and trailer."""
        return [(tag, value) for tag, value in self.fields if tag not in _HEADER_TAGS]

    def __str__(self) -> str:
        return self.raw.replace(SOH, b"|").decode("latin-1")


_HEADER_TAGS = frozenset(
    {
        Tag.BeginString,
        Tag.BodyLength,
        Tag.MsgType,
        Tag.SenderCompID,
        Tag.TargetCompID,
        Tag.MsgSeqNum,
        Tag.SendingTime,
        Tag.PossDupFlag,
        Tag.OrigSendingTime,
        Tag.CheckSum,
    }
)


_second_cache: list = [None, ""]


def utc_timestamp(now: float | None = None) -> str:
    """FIX UTCTimestamp with milliseconds: ``YYYYMMDD-HH:MM:SS.sss``."""
    now = time.time() if now is None else now
    whole = int(now)
    if _second_cache[0] != whole:
        _second_cache[0], _second_cache[1] = whole, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(whole))
    return f"{_second_cache[1]}.{int((now - whole) * 1000):03d}"


FieldValue = str | int | bytes


def _text(value: FieldValue) -> str:
    if type(value) is bytes:
        # Round-trips any bytes (a stored message's fields) through the str join below.
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def encode(
    msg_type: str,
    body: Iterable[tuple[int, FieldValue]],
    *,
    sender: str,
    target: str,
    seq: int,
    sending_time: str | None = None,
    poss_dup: bool = False,
    orig_sending_time: str | None = None,
) -> bytes:
    """A complete FIX 4.4 message: standard header, ``body`` in the given order, trailer.

    Byte for byte what simplefix's ``FixMessage.encode`` makes of the same fields
    (tests/unit/test_fix_codec.py checks it), at a fifth of the cost: the venue
    encodes every execution report of the firehose.
    """
    header = f"35={msg_type}\x0149={sender}\x0156={target}\x0134={seq}\x01"
    if poss_dup:
        header += "43=Y\x01"
    header += f"52={sending_time or utc_timestamp()}\x01"
    if orig_sending_time:
        header += f"122={orig_sending_time}\x01"
    text = header + "".join([f"{tag}={_text(value)}\x01" for tag, value in body])
    payload = text.encode("utf-8", "surrogateescape")
    message = b"8=FIX.4.4\x019=%d\x01%s" % (len(payload), payload)
    return message + b"10=%03d\x01" % (sum(message) % 256)


def checksum(data: bytes) -> int:
    return sum(data) % 256


def parse_frame(frame: bytes) -> Message:
    """Parse and verify one complete message (``8=…`` up to and including ``10=nnn\\x01``)."""
    if not frame.startswith(b"8=") or not frame.endswith(SOH):
        raise GarbledMessage("not a FIX message")
    parts = frame[:-1].split(SOH)
    fields = []
    for part in parts:
        tag, eq, value = part.partition(b"=")
        if not eq or not tag.isdigit():
            raise GarbledMessage(f"malformed field {part[:20]!r}")
        fields.append((int(tag), value))
    if len(fields) < 4 or fields[0][0] != Tag.BeginString or fields[1][0] != Tag.BodyLength:
        raise GarbledMessage("BeginString and BodyLength must be the first two fields")
    if fields[-1][0] != Tag.CheckSum:
        raise GarbledMessage("CheckSum must be the last field")
    if fields[2][0] != Tag.MsgType:
        raise GarbledMessage("MsgType must be the third field")
    body_start = len(parts[0]) + len(parts[1]) + 2
    body_end = len(frame) - len(parts[-1]) - 1
    if not fields[1][1].isdigit() or int(fields[1][1]) != body_end - body_start:
        raise GarbledMessage("BodyLength does not match")
    expected = checksum(frame[:body_end])
    value = fields[-1][1]
    if len(value) != 3 or not value.isdigit() or int(value) != expected:
        raise GarbledMessage(f"CheckSum {value.decode('latin-1')!r} does not match {expected:03d}")
    return Message(tuple(fields), frame)


class StreamParser:
    """Cuts a byte stream into messages; garbled stretches come out as ``GarbledMessage`` items.

    After garbage the parser resynchronises at the next ``8=FIX.4.4`` (FIX: a garbled
    message is discarded without consuming a sequence number).
    """

    _START = b"8=" + BEGIN_STRING + SOH

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Message | GarbledMessage]:
        self._buffer += data
        buffer = self._buffer
        pos = 0
        while True:
            start = buffer.find(self._START, pos)
            if start < 0:
                # Keep a tail that may be the beginning of a start marker.
                keep = max(pos, len(buffer) - len(self._START) + 1)
                if keep > pos and buffer[pos:keep].strip():
                    yield GarbledMessage(f"{keep - pos} bytes outside any FIX 4.4 message")
                pos = keep
                break
            if start > pos:
                if buffer[pos:start].strip():
                    yield GarbledMessage(f"{start - pos} bytes outside any FIX 4.4 message")
                pos = start
            length_at = start + len(self._START)
            end_of_length = buffer.find(SOH, length_at)
            if end_of_length < 0:
                if len(buffer) - length_at > 12:
                    yield GarbledMessage("BodyLength missing")
                    pos = start + 1
                    continue
                break
            length_field = bytes(buffer[length_at:end_of_length])
            if not length_field.startswith(b"9=") or not length_field[2:].isdigit():
                yield GarbledMessage("BodyLength missing")
                pos = start + 1
                continue
            body_length = int(length_field[2:])
            if body_length > MAX_BODY_LENGTH:
                yield GarbledMessage("BodyLength too large")
                pos = start + 1
                continue
            trailer_at = end_of_length + 1 + body_length
            if len(buffer) < trailer_at + 7:
                break
            frame = bytes(buffer[start : trailer_at + 7])
            try:
                message = parse_frame(frame)
            except GarbledMessage as error:
                yield error
                pos = start + 1
                continue
            pos = trailer_at + 7
            yield message
        del buffer[:pos]
