"""The FIX 4.4 session layer, for either end of a connection (acceptor or initiator).

``Session`` is a state machine without I/O: bytes go in through ``data_received``,
bytes come out through the transport it is given (anything with ``write`` and
``close``), time comes in through ``tick``. It keeps sequence numbers and the
outbound messages in an injected ``SessionStore`` and commits the store before any
byte leaves. ``serve``, ``connect`` and ``run_initiator`` drive it over asyncio streams.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from exchange.fix.codec import (
    ADMIN_MSG_TYPES,
    FieldValue,
    GarbledMessage,
    Message,
    MsgType,
    SessionRejectReason,
    StreamParser,
    Tag,
    encode,
    parse_frame,
    utc_timestamp,
)

logger = logging.getLogger(__name__)


class SessionStore(Protocol):
    """Where a session keeps what must survive a restart.

    Nothing is durable until ``commit``; the session commits before it writes to
    the socket, so whatever the counterparty has seen is on disk.
    """

    def next_inbound_seq(self) -> int: ...

    def set_next_inbound(self, seq: int) -> None: ...

    def next_outbound_seq(self) -> int: ...

    def set_next_outbound(self, seq: int) -> None:
        """Consume sequence numbers without storing a message (admin messages, skips)."""

    def save_outbound(self, seq: int, raw: bytes) -> None:
        """Keep an application message for resends; the next outbound number becomes ``seq + 1``."""

    def outbound_range(self, begin: int, end: int) -> Iterable[tuple[int, bytes]]:
        """Stored messages with ``begin <= seq <= end``, in sequence order."""

    def reset(self) -> None:
        """Both sequence numbers back to 1 and the stored messages forgotten (ResetSeqNumFlag)."""

    def commit(self) -> None: ...


class MemorySessionStore:
    """A ``SessionStore`` in memory: for tests and throwaway clients."""

    def __init__(self) -> None:
        self.next_in = 1
        self.next_out = 1
        self.messages: dict[int, bytes] = {}
        self.commits = 0

    def next_inbound_seq(self) -> int:
        return self.next_in

    def set_next_inbound(self, seq: int) -> None:
        self.next_in = seq

    def next_outbound_seq(self) -> int:
        return self.next_out

    def set_next_outbound(self, seq: int) -> None:
        self.next_out = seq

    def save_outbound(self, seq: int, raw: bytes) -> None:
        self.messages[seq] = raw
        self.next_out = seq + 1

    def outbound_range(self, begin: int, end: int) -> Iterable[tuple[int, bytes]]:
        return [(seq, self.messages[seq]) for seq in sorted(self.messages) if begin <= seq <= end]

    def reset(self) -> None:
        self.next_in = self.next_out = 1
        self.messages.clear()

    def commit(self) -> None:
        self.commits += 1


@dataclass(frozen=True)
class Faults:
    """Probabilities, per outbound application message, of a fault (drills and tests).

    ``dup``: also send a PossDup copy; ``gap``: skip a sequence number first (it is
    gap-filled when asked for); ``disconnect``: drop the connection after sending.
    """

    dup: float = 0.0
    gap: float = 0.0
    disconnect: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``"dup=0.02,gap=0.005,disconnect=0.001"``; raises ``ValueError`` on anything else."""
        values: dict[str, float] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or name not in ("dup", "gap", "disconnect"):
                raise ValueError(f"fault {item!r}: expected dup=P, gap=P or disconnect=P")
            if name in values:
                raise ValueError(f"fault {name!r} given twice")
            try:
                probability = float(value)
            except ValueError:
                raise ValueError(f"fault {item!r}: {value.strip()!r} is not a number") from None
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"fault {item!r}: a probability is between 0 and 1")
            values[name] = probability
        return cls(**values)

    def __bool__(self) -> bool:
        return bool(self.dup or self.gap or self.disconnect)


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting logon"
    LOGGED_ON = "logged on"
    LOGOUT_SENT = "logout sent"


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


INITIATOR = "initiator"
# A resend longer than this goes out in slices, so heartbeats and live traffic keep flowing.
RESEND_CHUNK = 2000
ACCEPTOR = "acceptor"


class Session:
    """One FIX session (a pair of CompIDs); connections come and go, the session stays.

    ``on_app(message)`` receives each application message once, in sequence order.
    ``send(msg_type, body)`` sequences, stores and (when logged on) writes an
    application message; sent while disconnected, it waits in the store for the
    counterparty's ResendRequest.

    ``schedule(callback[, delay])`` runs a callback later on the session's loop; without
    it, every flush happens at once. A flush commits the store, then writes what is
    pending: nothing goes out before it is durable. What is read is flushed at the end
    of the read, what is sent on the next turn of the loop; with ``flush_delay`` both
    wait that long, so a busy session commits once per delay rather than once per read.
    """

    def __init__(
        self,
        *,
        sender_comp_id: str,
        target_comp_id: str,
        store: SessionStore,
        role: str,
        on_app: Callable[[Message], None],
        heartbeat_interval: int = 30,
        reset_on_logon: bool = False,
        faults: Faults | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        schedule: Callable[..., Any] | None = None,
        flush_delay: float = 0.0,
        on_logon: Callable[[], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        logon_timeout: float = 10.0,
        logout_timeout: float = 2.0,
        resend_timeout: float = 10.0,
    ) -> None:
        if role not in (INITIATOR, ACCEPTOR):
            raise ValueError(f"role must be {INITIATOR!r} or {ACCEPTOR!r}")
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.store = store
        self.role = role
        self.on_app = on_app
        self.heartbeat_interval = heartbeat_interval
        self.reset_on_logon = reset_on_logon
        self.faults = faults or Faults()
        self.rng = rng or random.Random()
        self.clock = clock
        self.schedule = schedule
        self.flush_delay = flush_delay
        self.on_logon = on_logon
        self.on_disconnect = on_disconnect
        self.logon_timeout = logon_timeout
        self.logout_timeout = logout_timeout
        self.resend_timeout = resend_timeout

        self.state = State.DISCONNECTED
        self.transport: Transport | None = None
        self.last_disconnect_reason = ""
        # Recovery events, for metrics and tests: garbled, duplicates_ignored, resend_requests_sent,
        # resend_requests_answered, gap_fills_received, rejects_sent.
        self.stats: Counter[str] = Counter()
        self._parser = StreamParser()
        self._pending: list[bytes] = []
        self._queue: dict[int, Message] = {}
        self._resend_until = 0  # awaiting a resend up to this inbound number (0: not awaiting)
        self._resend_at = 0.0
        self._connection_number = 0
        self._receiving = False
        self._flush_scheduled = False
        self._disconnect_after_flush = ""
        self._test_request_id: str | None = None
        self._test_request_at = 0.0
        self._test_request_count = 0
        self._connected_at = self._last_received = self._last_sent = self._logout_at = 0.0

    # --- properties ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.transport is not None

    @property
    def logged_on(self) -> bool:
        return self.state is State.LOGGED_ON

    @property
    def awaiting_resend(self) -> bool:
        """A gap in what we received is being recovered (a ResendRequest is outstanding)."""
        return bool(self._resend_until)

    @property
    def next_inbound_seq(self) -> int:
        return self.store.next_inbound_seq()

    @property
    def next_outbound_seq(self) -> int:
        return self.store.next_outbound_seq()

    # --- connection events -----------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:
        if self.transport is not None:
            raise RuntimeError("session already has a connection")
        self.transport = transport
        self._connection_number += 1
        self.state = State.AWAITING_LOGON
        self._parser = StreamParser()
        self._queue.clear()
        self._resend_until = 0
        self._test_request_id = None
        now = self.clock()
        self._connected_at = self._last_received = self._last_sent = now
        if self.role == INITIATOR:
            body: list[tuple[int, FieldValue]] = [
                (Tag.EncryptMethod, 0),
                (Tag.HeartBtInt, self.heartbeat_interval),
            ]
            if self.reset_on_logon:
                self.store.reset()
                body.append((Tag.ResetSeqNumFlag, "Y"))
            self._send_admin(MsgType.Logon, body)
            self.flush()

    def connection_lost(self, reason: str = "connection closed") -> None:
        if self.transport is None:
            return
        self.transport = None
        self.state = State.DISCONNECTED
        self._pending.clear()
        self._queue.clear()
        self._resend_until = 0
        self.last_disconnect_reason = reason
        logger.info("FIX session %s->%s disconnected: %s", self.sender_comp_id, self.target_comp_id, reason)
        if self.on_disconnect:
            self.on_disconnect(reason)

    def disconnect(self, reason: str) -> None:
        """Write what is pending, close the connection."""
        transport = self.transport
        if transport is None:
            return
        self.flush()
        transport.close()
        self.connection_lost(reason)

    def logout(self, text: str = "") -> None:
        """Start a clean logout; the connection closes when the counterparty answers (or times out)."""
        if self.state is State.LOGGED_ON:
            self._send_admin(MsgType.Logout, [(Tag.Text, text)] if text else [])
            self.state = State.LOGOUT_SENT
            self._logout_at = self.clock()
            self.flush()
        elif self.transport is not None:
            self.disconnect(text or "logout")

    def data_received(self, data: bytes) -> None:
        self._last_received = self.clock()
        self._test_request_id = None
        self._receiving = True
        try:
            for item in self._parser.feed(data):
                if self.transport is None:
                    break
                if isinstance(item, GarbledMessage):
                    self._on_garbled(item)
                else:
                    self._on_message(item)
        finally:
            self._receiving = False
        if self.flush_delay and self.schedule is not None:
            self._flush_soon()
        else:
            self.flush()

    # --- sending ---------------------------------------------------------------------

    def send(self, msg_type: str, body: Iterable[tuple[int, FieldValue]]) -> int:
        """Sequence, store and (when logged on) send an application message; returns its MsgSeqNum."""
        if msg_type in ADMIN_MSG_TYPES:
            raise ValueError(f"MsgType {msg_type!r} is a session message")
        faults = self.faults
        seq = self.store.next_outbound_seq()
        if faults.gap and self.rng.random() < faults.gap:
            seq += 1
            self.store.set_next_outbound(seq)
        sending_time = utc_timestamp()
        body = list(body)
        raw = encode(
            msg_type,
            body,
            sender=self.sender_comp_id,
            target=self.target_comp_id,
            seq=seq,
            sending_time=sending_time,
        )
        self.store.save_outbound(seq, raw)
        if self.state is State.LOGGED_ON:
            self._pending.append(raw)
            self._last_sent = self.clock()
            if faults.dup and self.rng.random() < faults.dup:
                self._pending.append(self._possdup_copy(msg_type, body, seq, sending_time))
            if faults.disconnect and self.rng.random() < faults.disconnect:
                self._disconnect_after_flush = "fault injection: disconnect"
        self._flush_soon()
        return seq

    def flush(self) -> None:
        """Commit the store, then write what is pending: nothing leaves before it is durable."""
        self._flush_scheduled = False
        self.store.commit()
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if self.transport is not None:
                self.transport.write(data)
        if self._disconnect_after_flush:
            reason, self._disconnect_after_flush = self._disconnect_after_flush, ""
            self.disconnect(reason)

    def _flush_soon(self) -> None:
        if self._receiving or self._flush_scheduled:
            return
        if self.schedule is None:
            self.flush()
        else:
            self._flush_scheduled = True
            if self.flush_delay:
                self.schedule(self.flush, self.flush_delay)
            else:
                self.schedule(self.flush)

    def _send_admin(self, msg_type: str, body: Iterable[tuple[int, FieldValue]]) -> None:
        seq = self.store.next_outbound_seq()
        raw = encode(msg_type, body, sender=self.sender_comp_id, target=self.target_comp_id, seq=seq)
        self.store.set_next_outbound(seq + 1)
        self._pending.append(raw)
        self._last_sent = self.clock()
        self._flush_soon()

    def _possdup_copy(self, msg_type: str, body: list, seq: int, orig_sending_time: str) -> bytes:
        return encode(
            msg_type,
            body,
            sender=self.sender_comp_id,
            target=self.target_comp_id,
            seq=seq,
            poss_dup=True,
            orig_sending_time=orig_sending_time,
        )

    def reject(self, message: Message, reason: str, text: str, ref_tag: int | None = None) -> None:
        """Session-level Reject (35=3) of ``message``; the message still counts as received."""
        body: list[tuple[int, FieldValue]] = [(Tag.RefSeqNum, message.seq or 0)]
        if ref_tag is not None:
            body.append((Tag.RefTagID, ref_tag))
        if message.msg_type:
            body.append((Tag.RefMsgType, message.msg_type))
        body += [(Tag.SessionRejectReason, reason), (Tag.Text, text)]
        self.stats["rejects_sent"] += 1
        logger.warning("FIX reject of seq %s: %s", message.seq, text)
        self._send_admin(MsgType.Reject, body)

    def _logout_and_disconnect(self, text: str) -> None:
        logger.warning("FIX session %s->%s: %s", self.sender_comp_id, self.target_comp_id, text)
        self._send_admin(MsgType.Logout, [(Tag.Text, text)])
        self.disconnect(text)

    # --- timers ----------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Heartbeats, test requests and timeouts; call often (every 0.1-1 s)."""
        if self.transport is None:
            return
        now = self.clock() if now is None else now
        if self.state is State.AWAITING_LOGON:
            if now - self._connected_at >= self.logon_timeout:
                self.disconnect("no Logon within the logon timeout")
            return
        if self.state is State.LOGOUT_SENT:
            if now - self._logout_at >= self.logout_timeout:
                self.disconnect("no Logout answer within the logout timeout")
            return
        if self._resend_until and now - self._resend_at >= self.resend_timeout:
            # The counterparty never filled the gap: ask again.
            seen, self._resend_until = self._resend_until, 0
            self._request_resend(self.store.next_inbound_seq(), seen)
        interval = self.heartbeat_interval
        if interval <= 0:
            self.flush()
            return
        if self._test_request_id is not None:
            if now - self._test_request_at >= interval:
                self.disconnect("heartbeat timeout: TestRequest not answered")
                return
        elif now - self._last_received >= interval * 1.2:
            self._test_request_count += 1
            self._test_request_id = f"TEST-{self._test_request_count}"
            self._test_request_at = now
            self._send_admin(MsgType.TestRequest, [(Tag.TestReqID, self._test_request_id)])
        if now - self._last_sent >= interval:
            self._send_admin(MsgType.Heartbeat, [])
        self.flush()

    # --- inbound ---------------------------------------------------------------------

    def _on_garbled(self, error: GarbledMessage) -> None:
        if self.state is State.AWAITING_LOGON:
            self._logout_and_disconnect(f"Garbled message before Logon: {error}")
        else:
            # FIX 4.4: a garbled message is ignored and consumes no sequence number; the
            # gap it leaves is recovered by ResendRequest when the next message arrives.
            self.stats["garbled"] += 1
            logger.warning("FIX session %s: garbled input ignored: %s", self.sender_comp_id, error)

    def _on_message(self, message: Message) -> None:
        if message.get(Tag.SenderCompID) != self.target_comp_id or (
            message.get(Tag.TargetCompID) != self.sender_comp_id
        ):
            text = (
                f"CompID problem: expected SenderCompID={self.target_comp_id} "
                f"TargetCompID={self.sender_comp_id}"
            )
            if self.state is not State.AWAITING_LOGON:
                self.reject(message, SessionRejectReason.CompIDProblem, text)
            self._logout_and_disconnect(text)
            return
        seq = message.seq
        if seq is None:
            self._logout_and_disconnect("MsgSeqNum(34) missing or not a number")
            return
        if self.state is State.AWAITING_LOGON:
            if message.msg_type != MsgType.Logon:
                self._logout_and_disconnect(f"First message must be Logon, got MsgType {message.msg_type!r}")
                return
            self._on_logon(message, seq)
            return
        self._sequence(message, seq)

    def _on_logon(self, message: Message, seq: int) -> None:
        interval = message.get(Tag.HeartBtInt)
        if interval is None or not interval.isdigit():
            self._logout_and_disconnect("Logon: HeartBtInt(108) missing or not a whole number")
            return
        reset = message.get(Tag.ResetSeqNumFlag) == "Y"
        if reset:
            if seq != 1:
                self._logout_and_disconnect("Logon with ResetSeqNumFlag=Y must have MsgSeqNum 1")
                return
            if self.role == ACCEPTOR:
                self.store.reset()
            else:
                self.store.set_next_inbound(1)
        expected = self.store.next_inbound_seq()
        if seq < expected:
            self._logout_and_disconnect(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        if self.role == ACCEPTOR:
            self.heartbeat_interval = int(interval)
            body: list[tuple[int, FieldValue]] = [(Tag.EncryptMethod, 0), (Tag.HeartBtInt, int(interval))]
            if reset:
                body.append((Tag.ResetSeqNumFlag, "Y"))
            self._send_admin(MsgType.Logon, body)
        self.state = State.LOGGED_ON
        logger.info("FIX session %s->%s logged on", self.sender_comp_id, self.target_comp_id)
        if seq > expected:
            # The Logon itself lies in the gap: the counterparty gap-fills it on resend.
            self._request_resend(expected, seq)
        else:
            self._advance(seq + 1)
        if self.on_logon:
            self.on_logon()

    def _request_resend(self, begin: int, seen: int) -> None:
        if self._resend_until and self._resend_until >= begin:
            self._resend_until = max(self._resend_until, seen)
            return
        self._resend_until = seen
        self._resend_at = self.clock()
        self.stats["resend_requests_sent"] += 1
        self._send_admin(MsgType.ResendRequest, [(Tag.BeginSeqNo, begin), (Tag.EndSeqNo, 0)])

    def _advance(self, next_seq: int) -> None:
        self.store.set_next_inbound(next_seq)

    def _sequence(self, message: Message, seq: int) -> None:
        msg_type = message.msg_type
        expected = self.store.next_inbound_seq()
        if msg_type == MsgType.SequenceReset and message.get(Tag.GapFillFlag) != "Y":
            self._sequence_reset(message, expected)
            self._drain_queue()
            return
        if seq > expected:
            if msg_type == MsgType.ResendRequest:
                # Answer at once: both sides waiting for the other's resend would deadlock.
                self._resend(message)
            elif msg_type == MsgType.Logout:
                if self.state is State.LOGGED_ON:
                    self._send_admin(MsgType.Logout, [])
                self.disconnect(f"Logout received: {message.get(Tag.Text) or ''}".rstrip(": "))
                return
            elif seq in self._queue:
                self.stats["duplicates_ignored"] += 1
            else:
                self._queue[seq] = message
            self._request_resend(expected, seq)
            return
        if seq < expected:
            if message.poss_dup:
                self.stats["duplicates_ignored"] += 1
                logger.debug("FIX duplicate seq %s ignored (expecting %s)", seq, expected)
            else:
                self._logout_and_disconnect(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        self._process(message, seq)
        self._drain_queue()

    def _drain_queue(self) -> None:
        while self._queue and self.transport is not None:
            expected = self.store.next_inbound_seq()
            for stale in [s for s in self._queue if s < expected]:
                del self._queue[stale]
            message = self._queue.pop(expected, None)
            if message is None:
                break
            self._process(message, expected)
        if self._resend_until and self.store.next_inbound_seq() > self._resend_until:
            self._resend_until = 0

    def _sequence_reset(self, message: Message, expected: int) -> None:
        new_seq = message.get(Tag.NewSeqNo)
        if new_seq is None or not new_seq.isdigit():
            self.reject(message, SessionRejectReason.RequiredTagMissing, "NewSeqNo(36) missing", Tag.NewSeqNo)
            return
        if int(new_seq) < expected:
            self.reject(
                message,
                SessionRejectReason.ValueIncorrect,
                f"Attempt to lower sequence number, invalid value NewSeqNo={new_seq}",
                Tag.NewSeqNo,
            )
            return
        self._advance(int(new_seq))

    def _process(self, message: Message, seq: int) -> None:
        """Handle a message whose MsgSeqNum is the expected one."""
        msg_type = message.msg_type
        if msg_type == MsgType.SequenceReset:  # GapFill
            new_seq = message.get(Tag.NewSeqNo)
            if new_seq is None or not new_seq.isdigit() or int(new_seq) <= seq:
                self.reject(
                    message,
                    SessionRejectReason.ValueIncorrect,
                    f"Attempt to lower sequence number, invalid value NewSeqNo={new_seq}",
                    Tag.NewSeqNo,
                )
                self._advance(seq + 1)
            else:
                self.stats["gap_fills_received"] += 1
                self._advance(int(new_seq))
            return
        self._advance(seq + 1)
        if msg_type == MsgType.Heartbeat or msg_type == MsgType.Reject:
            if msg_type == MsgType.Reject:
                logger.warning("FIX counterparty rejected our seq %s: %s", message.get(45), message.get(58))
        elif msg_type == MsgType.TestRequest:
            test_id = message.get(Tag.TestReqID)
            if test_id is None:
                self.reject(message, SessionRejectReason.RequiredTagMissing, "TestReqID(112) missing", 112)
            else:
                self._send_admin(MsgType.Heartbeat, [(Tag.TestReqID, test_id)])
        elif msg_type == MsgType.ResendRequest:
            self._resend(message)
        elif msg_type == MsgType.Logout:
            if self.state is State.LOGGED_ON:
                self._send_admin(MsgType.Logout, [])
            self.disconnect(f"Logout received: {message.get(Tag.Text) or ''}".rstrip(": "))
        elif msg_type == MsgType.Logon:
            self.reject(message, SessionRejectReason.ValueIncorrect, "Already logged on")
        elif not msg_type:
            self.reject(message, SessionRejectReason.InvalidMsgType, "MsgType(35) empty", Tag.MsgType)
        elif Tag.SendingTime not in message:
            self.reject(message, SessionRejectReason.RequiredTagMissing, "SendingTime(52) missing", 52)
        else:
            try:
                self.on_app(message)
            except Exception:
                logger.exception("FIX application handler failed on seq %s", seq)
                self.send(
                    MsgType.BusinessMessageReject,
                    [
                        (Tag.RefSeqNum, seq),
                        (Tag.RefMsgType, msg_type),
                        (Tag.BusinessRejectReason, "0"),
                        (Tag.Text, "Internal error"),
                    ],
                )

    def _resend(self, message: Message) -> None:
        begin_text, end_text = message.get(Tag.BeginSeqNo), message.get(Tag.EndSeqNo)
        valid = begin_text and begin_text.isdigit() and end_text and end_text.isdigit()
        if not valid or int(begin_text) < 1:
            text = "ResendRequest needs BeginSeqNo(7) >= 1 and EndSeqNo(16)"
            self.reject(message, SessionRejectReason.RequiredTagMissing, text)
            return
        last = self.store.next_outbound_seq() - 1
        begin, end = int(begin_text), int(end_text)
        if end == 0 or end > last:
            end = last
        if begin > end:
            return
        self.stats["resend_requests_answered"] += 1
        logger.info("FIX resending %s..%s to %s", begin, end, self.target_comp_id)
        self._resend_range(begin, end, self._connection_number)

    def _resend_range(self, cursor: int, end: int, connection: int) -> None:
        if connection != self._connection_number or self.transport is None:
            return  # the connection that asked is gone; the next one will ask again
        sent = 0
        for seq, raw in self.store.outbound_range(cursor, end):
            if sent >= RESEND_CHUNK and self.schedule is not None:
                self.schedule(functools.partial(self._continue_resend, cursor, end, connection))
                return
            stored = parse_frame(raw)
            if stored.msg_type in ADMIN_MSG_TYPES:
                continue
            if seq > cursor:
                self._pending.append(self._gap_fill(cursor, seq))
            self._pending.append(
                encode(
                    stored.msg_type,
                    [field for field in stored.body() if field[0] != Tag.MsgType],
                    sender=self.sender_comp_id,
                    target=self.target_comp_id,
                    seq=seq,
                    poss_dup=True,
                    orig_sending_time=stored.get(Tag.SendingTime),
                )
            )
            cursor = seq + 1
            sent += 1
        if cursor <= end:
            self._pending.append(self._gap_fill(cursor, end + 1))
        self._last_sent = self.clock()

    def _continue_resend(self, cursor: int, end: int, connection: int) -> None:
        self._resend_range(cursor, end, connection)
        self.flush()

    def _gap_fill(self, seq: int, new_seq: int) -> bytes:
        return encode(
            MsgType.SequenceReset,
            [(Tag.GapFillFlag, "Y"), (Tag.NewSeqNo, new_seq)],
            sender=self.sender_comp_id,
            target=self.target_comp_id,
            seq=seq,
            poss_dup=True,
            orig_sending_time=utc_timestamp(),
        )


# --- asyncio drivers -------------------------------------------------------------------


async def _tick_loop(session: Session, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        session.tick()


async def run_connection(
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    initial: bytes = b"",
    tick_period: float = 0.1,
) -> str:
    """Drive ``session`` over one connection until it closes; returns why it closed.

    Whatever ends it, an error of the store's included (even while sending the Logon),
    the session lets go of the connection, so the next one can be made.
    """
    ticker = None
    reason = "connection closed by peer"
    try:
        session.connection_made(writer)
        ticker = asyncio.create_task(_tick_loop(session, tick_period))
        if initial:
            session.data_received(initial)
        while session.transport is writer:
            data = await reader.read(256 * 1024)
            if not data:
                break
            session.data_received(data)
            if writer.transport.get_write_buffer_size() > 4 * 1024 * 1024:
                await writer.drain()
    except (ConnectionError, OSError) as error:
        reason = f"connection error: {error}"
    finally:
        if ticker is not None:
            ticker.cancel()
        if session.transport is writer:
            session.connection_lost(reason)
        else:
            reason = session.last_disconnect_reason or reason
        writer.close()
    return reason


def _unsequenced_logout(writer: asyncio.StreamWriter, sender: str, target: str, text: str) -> None:
    writer.write(encode(MsgType.Logout, [(Tag.Text, text)], sender=sender, target=target or "UNKNOWN", seq=1))


async def serve(
    session: Session,
    host: str,
    port: int,
    *,
    tick_period: float = 0.1,
) -> asyncio.Server:
    """Accept connections for ``session`` (an acceptor) on ``host:port``.

    A connection whose first message is not a Logon for this session's CompIDs, or
    that arrives while the session is connected, gets an unsequenced Logout (MsgSeqNum
    1, nothing stored) and is closed: it never touches the session's numbers.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = StreamParser()
        received = b""
        first: Message | GarbledMessage | None = None
        try:
            while first is None:
                data = await asyncio.wait_for(reader.read(65536), session.logon_timeout)
                if not data:
                    writer.close()
                    return
                received += data
                first = next(iter(parser.feed(data)), None)
        except (TimeoutError, ConnectionError, OSError):
            writer.close()
            return
        sender = session.sender_comp_id
        if isinstance(first, GarbledMessage):
            _unsequenced_logout(writer, sender, "", f"Garbled message before Logon: {first}")
        elif first.msg_type != MsgType.Logon:
            _unsequenced_logout(
                writer, sender, first.get(Tag.SenderCompID) or "", "First message must be Logon"
            )
        elif first.get(Tag.SenderCompID) != session.target_comp_id or first.get(Tag.TargetCompID) != sender:
            _unsequenced_logout(writer, sender, first.get(Tag.SenderCompID) or "", "Unknown session (CompID)")
        elif session.connected:
            _unsequenced_logout(writer, sender, session.target_comp_id, "Session already logged on")
        else:
            await run_connection(session, reader, writer, initial=received, tick_period=tick_period)
            return
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    return await asyncio.start_server(handle, host, port)


async def connect(session: Session, host: str, port: int, *, tick_period: float = 0.1) -> asyncio.Task:
    """Open a connection as initiator (the session sends its Logon); returns the task driving it."""
    reader, writer = await asyncio.open_connection(host, port)
    return asyncio.create_task(run_connection(session, reader, writer, tick_period=tick_period))


async def run_initiator(
    session: Session,
    host: str,
    port: int,
    *,
    reconnect_delay: float = 1.0,
    tick_period: float = 0.1,
) -> None:
    """Keep ``session`` connected: reconnect ``reconnect_delay`` seconds after any loss; cancel to stop."""
    while True:
        try:
            task = await connect(session, host, port, tick_period=tick_period)
            await task
        except (ConnectionError, OSError) as error:
            logger.info("FIX connect to %s:%s failed: %s", host, port, error)
        await asyncio.sleep(reconnect_delay)
