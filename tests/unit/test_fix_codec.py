"""The FIX codec: encoding with header and checksum, and a stream parser that survives garbage."""

import pytest

from exchange.fix.codec import GarbledMessage, Message, StreamParser, Tag, encode, parse_frame


def heartbeat(seq=1, **kwargs):
    return encode("0", [], sender="A", target="B", seq=seq, **kwargs)


def test_encoded_message_has_standard_header_in_order_and_valid_trailer():
    raw = encode("D", [(Tag.ClOrdID, "x1"), (Tag.OrderQty, 5)], sender="BROKER", target="VENUE", seq=7)
    message = parse_frame(raw)
    assert [tag for tag, _ in message.fields][:7] == [8, 9, 35, 49, 56, 34, 52]
    assert message.msg_type == "D"
    assert message.seq == 7
    assert message.get(Tag.ClOrdID) == "x1"
    assert message.get(Tag.OrderQty) == "5"
    assert message.fields[-1][0] == Tag.CheckSum


def test_possdup_message_carries_orig_sending_time():
    message = parse_frame(heartbeat(poss_dup=True, orig_sending_time="20260101-00:00:00.000"))
    assert message.poss_dup
    assert message.get(Tag.OrigSendingTime) == "20260101-00:00:00.000"


def test_stream_parser_yields_messages_split_across_reads():
    raw = heartbeat(1) + heartbeat(2)
    parser = StreamParser()
    out = []
    for byte in range(len(raw)):
        out += parser.feed(raw[byte : byte + 1])
    assert [message.seq for message in out] == [1, 2]


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda raw: raw.replace(b"10=", b"10=9")[: len(raw)],  # checksum altered
        lambda raw: raw.replace(b"35=0", b"35=1"),  # body changed, checksum stale
        lambda raw: raw.replace(b"9=45", b"9=46"),  # body length wrong
    ],
)
def test_garbled_message_is_reported_and_the_next_one_still_parses(corrupt):
    raw = heartbeat(1)
    assert b"9=45" in raw
    parser = StreamParser()
    out = list(parser.feed(corrupt(raw) + heartbeat(2)))
    assert isinstance(out[0], GarbledMessage)
    assert isinstance(out[-1], Message) and out[-1].seq == 2
    assert [item.seq for item in out if isinstance(item, Message)] == [2]


def test_bytes_outside_any_message_are_reported_as_garbage():
    out = list(StreamParser().feed(b"hello there, not FIX\r\n" + heartbeat(3)))
    assert isinstance(out[0], GarbledMessage)
    assert out[1].seq == 3


def test_parse_frame_rejects_non_numeric_tag():
    with pytest.raises(GarbledMessage):
        parse_frame(b"8=FIX.4.4\x019=5\x01x=1\x0110=000\x01")


def test_encoding_is_byte_for_byte_what_simplefix_makes():
    import simplefix

    body = [(Tag.ClOrdID, "ü-1"), (Tag.OrderQty, 5), (Tag.Text, b"raw\xffbytes"), (Tag.Price, "12.50")]
    ours = encode(
        "8",
        body,
        sender="VENUE",
        target="BROKER",
        seq=42,
        sending_time="20260101-12:00:00.123",
        poss_dup=True,
        orig_sending_time="20260101-11:00:00.000",
    )
    reference = simplefix.FixMessage()
    for tag, value in [
        (8, "FIX.4.4"),
        (35, "8"),
        (49, "VENUE"),
        (56, "BROKER"),
        (34, 42),
        (43, "Y"),
        (52, "20260101-12:00:00.123"),
        (122, "20260101-11:00:00.000"),
    ]:
        reference.append_pair(tag, value, header=True)
    for tag, value in body:
        reference.append_pair(tag, value)
    assert ours == reference.encode()
    assert parse_frame(ours).get(Tag.Text) == b"raw\xffbytes".decode("latin-1")
