"""A scripted counterparty for session tests: it encodes what a test sends and parses what comes back."""

from exchange.fix.codec import GarbledMessage, Message, MsgType, StreamParser, Tag, encode
from exchange.fix.session import ACCEPTOR, MemorySessionStore, Session


class RecordingTransport:
    def __init__(self):
        self.parser = StreamParser()
        self.received: list[Message] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        for item in self.parser.feed(data):
            assert not isinstance(item, GarbledMessage), item
            self.received.append(item)

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[Message]:
        messages, self.received = self.received, []
        return messages


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Peer:
    """The other end: CompIDs swapped, its own outbound sequence."""

    def __init__(self, session: Session, transport: RecordingTransport):
        self.session = session
        self.transport = transport
        self.seq = 1

    def raw(self, msg_type, body=(), *, seq=None, poss_dup=False, sender=None, target=None):
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        return encode(
            msg_type,
            list(body),
            sender=sender or self.session.target_comp_id,
            target=target or self.session.sender_comp_id,
            seq=seq,
            poss_dup=poss_dup,
            orig_sending_time="20260101-00:00:00.000" if poss_dup else None,
        )

    def send(self, msg_type, body=(), **kwargs) -> list[Message]:
        self.session.data_received(self.raw(msg_type, body, **kwargs))
        return self.transport.take()

    def logon(self, heartbeat=30, reset=False, **kwargs) -> list[Message]:
        body = [(Tag.EncryptMethod, 0), (Tag.HeartBtInt, heartbeat)]
        if reset:
            body.append((Tag.ResetSeqNumFlag, "Y"))
        return self.send(MsgType.Logon, body, **kwargs)


def acceptor(store=None, **kwargs):
    """A logged-off acceptor session VENUE<-BROKER, its transport, peer, clock and app inbox."""
    inbox: list[Message] = []
    clock = Clock()
    session = Session(
        sender_comp_id="VENUE",
        target_comp_id="BROKER",
        store=store or MemorySessionStore(),
        role=ACCEPTOR,
        on_app=inbox.append,
        clock=clock,
        **kwargs,
    )
    transport = RecordingTransport()
    session.connection_made(transport)
    return session, Peer(session, transport), clock, inbox


def types(messages):
    return [message.msg_type for message in messages]
