"""Bad input over the FIX session gets a clear FIX answer and never crashes the venue or stores anything."""

import socket
import subprocess
import sys

from exchange.fix.codec import GarbledMessage, MsgType, SessionRejectReason, StreamParser, Tag, encode
from tests.venue.harness import ROOT, FixClient, run


def exchange_raw(port: int, data: bytes, timeout: float = 3.0) -> list:
    """Send ``data`` on a fresh connection; the messages received until the venue closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return [m for m in StreamParser().feed(received) if not isinstance(m, GarbledMessage)]


def logon(sender="BROKER", target="VENUE", seq=1):
    return encode(MsgType.Logon, [(98, 0), (108, 30)], sender=sender, target=target, seq=seq)


def test_connections_that_do_not_start_with_a_valid_logon_get_a_logout(venue_process):
    venue = venue_process().start()
    cases = {
        b"GET / HTTP/1.1\r\nHost: venue\r\n\r\n": "Garbled",
        encode(MsgType.NewOrderSingle, [(11, "x")], sender="BROKER", target="VENUE", seq=1): "must be Logon",
        logon(sender="SOMEONE"): "Unknown session",
        logon(target="OTHER"): "Unknown session",
        logon().replace(b"10=", b"10=1")[:-1]: "Garbled",
    }
    for data, text in cases.items():
        (answer,) = exchange_raw(venue.port, data)
        assert answer.msg_type == MsgType.Logout
        assert text in answer.get(Tag.Text)
    # None of it touched the session's sequence numbers or the journal.
    assert venue.journal("SELECT next_inbound, next_outbound FROM fix_session") == [(1, 1)]
    assert venue.orders() == {}


def test_second_connection_for_a_logged_on_session_is_refused(venue_process):
    venue = venue_process().start()

    async def scenario():
        async with FixClient(venue.port) as client:
            (answer,) = exchange_raw(venue.port, logon(seq=5))
            assert answer.get(Tag.Text) == "Session already logged on"
            assert client.session.logged_on

    run(scenario())


def test_malformed_messages_in_session_are_rejected_and_nothing_is_stored(venue_process):
    venue = venue_process().start()

    async def scenario():
        async with FixClient(venue.port) as client:
            client.send(MsgType.NewOrderSingle, [(Tag.Symbol, "US0378331005"), (Tag.Side, "1")])  # no ClOrdID
            client.send("R", [(131, "q1")])  # QuoteRequest: not supported here
            seq = client.session.next_outbound_seq
            client.session.store.set_next_outbound(seq + 1)  # sent, as far as our side knows
            garbled = encode(
                MsgType.NewOrderSingle,
                [(11, "garbled-1"), (55, "US0378331005"), (54, "1"), (38, 5), (40, "1")],
                sender="BROKER",
                target="VENUE",
                seq=seq,
            ).replace(b"38=5", b"38=6")
            client.session.transport.write(b"\x00\xffnoise" + garbled)
            client.send(MsgType.OrderStatusRequest, [(Tag.ClOrdID, "garbled-1")])  # seq after the garbled one
            await client.until(lambda: client.reports("garbled-1"))
            return client

    client = run(scenario())
    assert (
        client.session.stats["resend_requests_answered"] == 1
    )  # the venue noticed the gap the garbled message left
    reject = next(m for m in client.inbox if m.msg_type == MsgType.BusinessMessageReject)
    assert (reject.get(Tag.RefMsgType), reject.get(Tag.BusinessRejectReason)) == ("R", "3")
    (status,) = client.reports("garbled-1")
    assert status.get(Tag.Text) == "Unknown order"
    assert venue.orders() == {}
    assert venue.executions() == []


def test_missing_cl_ord_id_gets_a_session_reject_naming_the_tag(venue_process):
    venue = venue_process().start()
    with socket.create_connection(("127.0.0.1", venue.port), timeout=3) as sock:
        sock.sendall(logon())
        body = [(55, "US0378331005"), (54, "1")]
        sock.sendall(encode(MsgType.NewOrderSingle, body, sender="BROKER", target="VENUE", seq=2))
        parser, messages = StreamParser(), []
        while len(messages) < 2:
            messages += list(parser.feed(sock.recv(65536)))
    logon_answer, reject = messages
    assert (logon_answer.msg_type, reject.msg_type) == (MsgType.Logon, MsgType.Reject)
    assert reject.get(Tag.RefSeqNum) == "2"
    assert reject.get(Tag.SessionRejectReason) == SessionRejectReason.RequiredTagMissing
    assert reject.get(Tag.RefTagID) == "11"
    assert venue.orders() == {}


def test_a_bad_fault_spec_stops_the_venue_at_start_with_a_clear_error(tmp_path):
    env = {"VENUE_FAULTS": "dup=lots", "DJANGO_SECRET_KEY": "x", "VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "run_venue", "--db", str(tmp_path / "v.sqlite3"), "--port", "0"],
        cwd=ROOT,
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "VENUE_FAULTS='dup=lots'" in result.stderr and "is not a number" in result.stderr


def test_a_silent_client_gets_a_test_request_then_is_disconnected(venue_process):
    venue = venue_process().start()
    silent_logon = encode(MsgType.Logon, [(98, 0), (108, 1)], sender="BROKER", target="VENUE", seq=1)
    messages = exchange_raw(venue.port, silent_logon, timeout=6)  # returns when the venue hangs up
    kinds = [m.msg_type for m in messages]
    assert kinds[0] == MsgType.Logon
    assert MsgType.TestRequest in kinds
    assert MsgType.Heartbeat in kinds
