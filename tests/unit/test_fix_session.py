"""The FIX session state machine: logon, sequence numbers, gaps, duplicates, resends, timeouts."""

import asyncio
import sqlite3

import pytest

from exchange.fix.codec import MsgType, SessionRejectReason, Tag
from exchange.fix.session import INITIATOR, Faults, MemorySessionStore, Session, connect
from exchange.fix.sqlite_store import SqliteSessionStore
from tests.unit.fix_helpers import Clock, RecordingTransport, acceptor, types


def logged_on(**kwargs):
    session, peer, clock, inbox = acceptor(**kwargs)
    assert types(peer.logon()) == [MsgType.Logon]
    return session, peer, clock, inbox


def order(cl_ord_id="c1"):
    return [(Tag.ClOrdID, cl_ord_id)]


def test_logon_is_answered_and_sequence_numbers_advance():
    session, peer, clock, inbox = logged_on()
    assert session.logged_on
    assert session.next_inbound_seq == 2
    assert session.next_outbound_seq == 2
    peer.send(MsgType.NewOrderSingle, order())
    assert [m.get(Tag.ClOrdID) for m in inbox] == ["c1"]
    assert session.next_inbound_seq == 3


def test_first_message_other_than_logon_ends_the_connection():
    session, peer, clock, inbox = acceptor()
    out = peer.send(MsgType.NewOrderSingle, order())
    assert types(out) == [MsgType.Logout]
    assert "must be Logon" in out[0].get(Tag.Text)
    assert peer.transport.closed and not session.connected
    assert inbox == []


def test_wrong_comp_id_is_rejected_and_logged_out():
    session, peer, clock, inbox = logged_on()
    out = peer.send(MsgType.NewOrderSingle, order(), sender="INTRUDER")
    assert types(out) == [MsgType.Reject, MsgType.Logout]
    assert out[0].get(Tag.SessionRejectReason) == SessionRejectReason.CompIDProblem
    assert not session.connected and inbox == []


def test_gap_sends_one_resend_request_and_queues_until_filled():
    session, peer, clock, inbox = logged_on()
    peer.seq = 4  # messages 2 and 3 lost
    out = peer.send(MsgType.NewOrderSingle, order("c4"))
    assert types(out) == [MsgType.ResendRequest]
    assert (out[0].get(Tag.BeginSeqNo), out[0].get(Tag.EndSeqNo)) == ("2", "0")
    assert types(peer.send(MsgType.NewOrderSingle, order("c5"))) == []  # no second request
    assert inbox == []
    # The resend: 2 is an application message, 3 an admin one gap-filled, then 4 and 5 again.
    peer.send(MsgType.NewOrderSingle, order("c2"), seq=2, poss_dup=True)
    peer.send(MsgType.SequenceReset, [(Tag.GapFillFlag, "Y"), (Tag.NewSeqNo, 4)], seq=3, poss_dup=True)
    peer.send(MsgType.NewOrderSingle, order("c4"), seq=4, poss_dup=True)
    peer.send(MsgType.NewOrderSingle, order("c5"), seq=5, poss_dup=True)
    assert [m.get(Tag.ClOrdID) for m in inbox] == ["c2", "c4", "c5"]
    assert session.next_inbound_seq == 6


def test_possdup_duplicate_below_expected_is_ignored():
    session, peer, clock, inbox = logged_on()
    peer.send(MsgType.NewOrderSingle, order("c1"))
    out = peer.send(MsgType.NewOrderSingle, order("c1"), seq=2, poss_dup=True)
    assert out == [] and session.connected
    assert len(inbox) == 1 and session.next_inbound_seq == 3


def test_too_low_without_possdup_ends_the_session():
    session, peer, clock, inbox = logged_on()
    peer.send(MsgType.NewOrderSingle, order("c1"))
    out = peer.send(MsgType.NewOrderSingle, order("c9"), seq=2)
    assert types(out) == [MsgType.Logout]
    assert out[0].get(Tag.Text) == "MsgSeqNum too low, expecting 3 but received 2"
    assert not session.connected and len(inbox) == 1


def test_gap_fill_advances_and_reset_cannot_go_backwards():
    session, peer, clock, inbox = logged_on()
    peer.send(MsgType.SequenceReset, [(Tag.GapFillFlag, "Y"), (Tag.NewSeqNo, 10)])
    assert session.next_inbound_seq == 10
    out = peer.send(MsgType.SequenceReset, [(Tag.NewSeqNo, 5)], seq=10)
    assert types(out) == [MsgType.Reject]
    assert out[0].get(Tag.SessionRejectReason) == SessionRejectReason.ValueIncorrect
    peer.send(MsgType.SequenceReset, [(Tag.NewSeqNo, 20)], seq=999)  # Reset mode ignores MsgSeqNum
    assert session.next_inbound_seq == 20


def test_resend_replays_application_messages_and_gap_fills_admin_ones():
    session, peer, clock, inbox = logged_on()
    session.send(MsgType.ExecutionReport, [(Tag.ExecID, "e1")])  # 2
    clock.now += 31
    session.tick()  # 3: Heartbeat, 4: TestRequest... whatever admin went out
    session.send(MsgType.ExecutionReport, [(Tag.ExecID, "e2")])
    last = session.next_outbound_seq - 1
    peer.transport.take()
    peer.seq = 2
    out = peer.send(MsgType.ResendRequest, [(Tag.BeginSeqNo, 1), (Tag.EndSeqNo, 0)])
    assert [(m.msg_type, m.seq) for m in out][:2] == [
        (MsgType.SequenceReset, 1),
        (MsgType.ExecutionReport, 2),
    ]
    assert out[0].get(Tag.NewSeqNo) == "2" and out[0].get(Tag.GapFillFlag) == "Y"
    assert all(m.poss_dup for m in out)
    assert out[1].get(Tag.ExecID) == "e1" and out[1].get(Tag.OrigSendingTime)
    assert out[-1].msg_type == MsgType.ExecutionReport and out[-1].seq == last
    assert out[-2].msg_type == MsgType.SequenceReset and out[-2].get(Tag.NewSeqNo) == str(last)


def test_messages_sent_while_disconnected_are_stored_and_resent_after_logon():
    session, peer, clock, inbox = logged_on()
    session.connection_lost("test")
    session.send(MsgType.ExecutionReport, [(Tag.ExecID, "offline")])
    transport = RecordingTransport()
    session.connection_made(transport)
    peer.transport = transport
    out = peer.logon()
    assert types(out) == [MsgType.Logon]
    assert out[0].seq == 3  # 2 is the stored report, the peer asks for it
    out = peer.send(MsgType.ResendRequest, [(Tag.BeginSeqNo, 2), (Tag.EndSeqNo, 2)])
    assert [(m.msg_type, m.get(Tag.ExecID), m.poss_dup) for m in out] == [
        (MsgType.ExecutionReport, "offline", True)
    ]


def test_test_request_then_disconnect_when_the_peer_goes_silent():
    session, peer, clock, inbox = logged_on()
    session.heartbeat_interval = 10
    clock.now += 12.5
    session.tick()
    out = peer.transport.take()
    assert MsgType.TestRequest in types(out)
    test_id = next(m for m in out if m.msg_type == MsgType.TestRequest).get(Tag.TestReqID)
    clock.now += 10
    session.tick()
    assert not session.connected and "heartbeat timeout" in session.last_disconnect_reason
    assert test_id


def test_test_request_answered_keeps_the_session():
    session, peer, clock, inbox = logged_on()
    session.heartbeat_interval = 10
    clock.now += 12.5
    session.tick()
    test_id = next(m for m in peer.transport.take() if m.msg_type == MsgType.TestRequest).get(Tag.TestReqID)
    peer.send(MsgType.Heartbeat, [(Tag.TestReqID, test_id)])
    clock.now += 5
    session.tick()
    assert session.connected


def test_peer_test_request_is_answered_with_its_id():
    session, peer, clock, inbox = logged_on()
    out = peer.send(MsgType.TestRequest, [(Tag.TestReqID, "abc")])
    assert types(out) == [MsgType.Heartbeat] and out[0].get(Tag.TestReqID) == "abc"


def test_logout_is_answered_and_closes():
    session, peer, clock, inbox = logged_on()
    out = peer.send(MsgType.Logout, [(Tag.Text, "bye")])
    assert types(out) == [MsgType.Logout]
    assert not session.connected


def test_reset_seq_num_flag_starts_both_sides_at_one():
    store = MemorySessionStore()
    store.next_in, store.next_out = 50, 70
    session, peer, clock, inbox = acceptor(store=store)
    out = peer.logon(reset=True)
    assert out[0].seq == 1 and out[0].get(Tag.ResetSeqNumFlag) == "Y"
    assert session.next_inbound_seq == 2 and session.next_outbound_seq == 2


def test_outbound_message_is_committed_before_it_is_written():
    events = []

    class Store(MemorySessionStore):
        def commit(self):
            events.append("commit")

    class Transport(RecordingTransport):
        def write(self, data):
            events.append("write")
            super().write(data)

    session = Session(
        sender_comp_id="BROKER", target_comp_id="VENUE", store=Store(), role=INITIATOR, on_app=print
    )
    session.connection_made(Transport())
    assert events[:2] == ["commit", "write"]


def test_a_store_failing_while_the_logon_is_sent_does_not_keep_the_session_connected():
    """make chaos's MySQL crash: the gateway reconnected while the database was still down.

    The Logon's commit failed inside ``connection_made``; the session kept that dead
    connection and refused every later one ("session already has a connection").
    """

    class DatabaseDown(Exception):
        pass

    class Store(MemorySessionStore):
        down = True

        def commit(self):
            if self.down:
                raise DatabaseDown("database unreachable")
            super().commit()

    async def drill():
        received = []

        async def accept(reader, writer):
            received.append(await reader.read(4096))
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        store = Store()
        session = Session(
            sender_comp_id="BROKER", target_comp_id="VENUE", store=store, role=INITIATOR, on_app=print
        )
        with pytest.raises(DatabaseDown):
            await (await connect(session, "127.0.0.1", port))
        assert session.transport is None and not session.connected
        store.down = False
        await (await connect(session, "127.0.0.1", port))
        server.close()
        await server.wait_closed()
        return received

    received = asyncio.run(drill())

    assert b"35=A" in received[-1]  # the second connection sent its Logon


def test_sqlite_store_keeps_numbers_and_messages_across_reopen(tmp_path):
    path = tmp_path / "s.sqlite3"
    store = SqliteSessionStore(sqlite3.connect(path), "S")
    store.save_outbound(1, b"one")
    store.set_next_outbound(3)
    store.set_next_inbound(9)
    store.commit()
    again = SqliteSessionStore(sqlite3.connect(path), "S")
    assert (again.next_inbound_seq(), again.next_outbound_seq()) == (9, 3)
    assert list(again.outbound_range(1, 10)) == [(1, b"one")]


def test_gap_fault_skips_a_number_that_resend_gap_fills():
    session, peer, clock, inbox = logged_on(faults=Faults(gap=1.0))
    seq = session.send(MsgType.ExecutionReport, [(Tag.ExecID, "e1")])
    assert seq == 3
    assert [m.seq for m in peer.transport.take()] == [3]
    out = peer.send(MsgType.ResendRequest, [(Tag.BeginSeqNo, 2), (Tag.EndSeqNo, 0)])
    assert [(m.msg_type, m.seq) for m in out] == [(MsgType.SequenceReset, 2), (MsgType.ExecutionReport, 3)]


def test_faults_parse_strictly():
    assert Faults.parse("dup=0.02, gap=0.005,disconnect=0.001") == Faults(0.02, 0.005, 0.001)
    assert not Faults.parse("")
    for bad in ("dup", "dup=x", "dupe=0.1", "gap=2", "dup=0.1,dup=0.2"):
        try:
            Faults.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_initiator_sends_logon_and_accepts_the_answer():
    inbox = []
    clock = Clock()
    session = Session(
        sender_comp_id="BROKER",
        target_comp_id="VENUE",
        store=MemorySessionStore(),
        role=INITIATOR,
        on_app=inbox.append,
        heartbeat_interval=5,
        clock=clock,
    )
    transport = RecordingTransport()
    session.connection_made(transport)
    (logon,) = transport.take()
    assert logon.msg_type == MsgType.Logon and logon.get(Tag.HeartBtInt) == "5"
    from exchange.fix.codec import encode

    answer = [(Tag.EncryptMethod, 0), (Tag.HeartBtInt, 5)]
    session.data_received(encode(MsgType.Logon, answer, sender="VENUE", target="BROKER", seq=1))
    assert session.logged_on


def test_a_long_resend_goes_out_in_slices(monkeypatch):
    from exchange.fix import session as session_module

    monkeypatch.setattr(session_module, "RESEND_CHUNK", 3)
    scheduled = []
    session, peer, clock, inbox = logged_on(schedule=scheduled.append)
    for n in range(7):
        session.send(MsgType.ExecutionReport, [(Tag.ExecID, f"e{n}")])  # seqs 2..8
    session.flush()
    peer.transport.take()
    out = peer.send(MsgType.ResendRequest, [(Tag.BeginSeqNo, 2), (Tag.EndSeqNo, 0)])
    while scheduled:
        scheduled.pop(0)()
        out += peer.transport.take()
    assert [m.get(Tag.ExecID) for m in out] == [f"e{n}" for n in range(7)]
    assert [m.seq for m in out] == list(range(2, 9))


def test_with_a_flush_delay_reads_and_sends_are_committed_together_before_anything_goes_out():
    scheduled = []
    session, peer, clock, inbox = logged_on()
    session.schedule = lambda callback, delay=0.0: scheduled.append((delay, callback))
    session.flush_delay = 0.05
    commits = session.store.commits
    peer.send(MsgType.NewOrderSingle, order("c1"))
    peer.send(MsgType.TestRequest, [(Tag.TestReqID, "t1")])
    session.send(MsgType.ExecutionReport, [(Tag.ExecID, "e1")])
    # Both reads are taken in; nothing is committed or written until the one flush runs.
    assert [m.get(Tag.ClOrdID) for m in inbox] == ["c1"]
    assert session.store.commits == commits and peer.transport.take() == []
    assert [delay for delay, _ in scheduled] == [0.05]
    scheduled.pop()[1]()
    assert session.store.commits == commits + 1
    assert types(peer.transport.take()) == [MsgType.Heartbeat, MsgType.ExecutionReport]


def test_an_unfilled_gap_is_asked_for_again():
    session, peer, clock, inbox = logged_on()
    peer.seq = 5
    assert types(peer.send(MsgType.NewOrderSingle, order("c5"))) == [MsgType.ResendRequest]
    clock.now += session.resend_timeout + 1
    session.tick()
    again = [m for m in peer.transport.take() if m.msg_type == MsgType.ResendRequest]
    assert [(m.get(Tag.BeginSeqNo), m.get(Tag.EndSeqNo)) for m in again] == [("2", "0")]


def test_message_without_sending_time_is_rejected_and_still_counted():
    session, peer, clock, inbox = logged_on()
    raw = peer.raw(MsgType.NewOrderSingle, order("c1"))
    start = raw.index(b"\x0152=") + 1
    end = raw.index(b"\x01", start) + 1
    body = raw[raw.index(b"35=") : -7].replace(raw[start:end], b"")
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    framed = head + body
    framed += b"10=%03d\x01" % (sum(framed) % 256)
    session.data_received(framed)
    (reject,) = peer.transport.take()
    assert reject.msg_type == MsgType.Reject
    assert (reject.get(Tag.SessionRejectReason), reject.get(Tag.RefTagID)) == ("1", "52")
    assert inbox == [] and session.next_inbound_seq == 3


def test_session_layer_and_venue_import_nothing_of_ours_nor_django():
    import subprocess
    import sys

    code = (
        "import sys, exchange.fix.session, exchange.fix.sqlite_store, exchange.venue.server;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'orders', 'matching', 'django'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
