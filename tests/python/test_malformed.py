"""Raw-socket tests: malformed / out-of-order traffic.

Each test asserts exactly what RabbitMQ 3.10.8 answers, and that a pika
connection opened *before* the abuse is still usable afterwards (the broker
must only kill the offending connection).

Reply texts observed from RabbitMQ 3.10.8 (recorded verbatim; tests assert
the reply code, the class/method ids and the stable prefix of the text):

  bad protocol header (any) -> writes b"AMQP\\x00\\x00\\x09\\x01", then closes.
      (Note: RabbitMQ *accepts* the legacy 0-8 header b"AMQP\\x01\\x01\\x08\\x00"
      and 0-9 b"AMQP\\x01\\x01\\x00\\x09" and answers connection.start, so
      those are not used as "wrong" headers here.)
  frame larger than negotiated frame_max (4096 -> max payload 4088):
      501 "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,5000,4088}"
      class 0 method 0
  wrong frame-end octet:
      501 "FRAME_ERROR - type 1, all octets = <<0,10,0,50>>: {invalid_frame_end_marker,0}"
      class 0 method 0
  content body with no method/header on an open channel:
      505 "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
      class 0 method 0
  content header with no method:
      505 "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
      class 0 method 0
  basic.publish followed by a body frame (header missing):
      505 "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
      class 60 method 40
  method (queue.declare) on a never-opened channel:
      504 "CHANNEL_ERROR - expected 'channel.open'"  class 50 method 10
  basic.publish on a never-opened channel (RabbitMQ answers only once the
  content is complete):
      504 "CHANNEL_ERROR - expected 'channel.open'"  class 60 method 40
  channel.open on a channel that is already open:
      504 "CHANNEL_ERROR - second 'channel.open' seen"  class 20 method 10
  heartbeat frame on a non-zero channel (NOT 501!):
      505 "UNEXPECTED_FRAME - type 8, all octets = <<>>"  class 0 method 0
  unknown frame type 9:
      501 "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame"  class 0 method 0
  unknown method id (e.g. class 60 method 255, or class 99):
      RabbitMQ sends NO connection.close at all: the connection process
      crashes with {unknown_method_id,{60,255}} and the socket is reset.
      The test accepts that, or a connection.close with 503 or 540.
"""

import socket
import time
import uuid

import pytest

import amqp_raw as raw
from amqp_raw import RawConn

FRAME_ERROR = 501
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_IMPLEMENTED = 540


@pytest.fixture
def bystander(broker):
    """A pika connection opened before the abuse; check() proves it still works."""
    conn = broker.connect()
    ch = conn.channel()
    q = f"pytest.bystander.{uuid.uuid4().hex}"
    ch.queue_declare(q, auto_delete=False)

    class B:
        def check(self):
            assert conn.is_open, "bystander connection was closed by the broker"
            body = uuid.uuid4().bytes
            ch.basic_publish("", q, body)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                m, props, got = ch.basic_get(q, auto_ack=True)
                if m is not None:
                    assert got == body
                    return
                conn.process_data_events(time_limit=0.05)
            pytest.fail("bystander could not consume its own message")

    b = B()
    yield b
    try:
        ch.queue_delete(q)
        conn.close()
    except Exception:
        pass


@pytest.fixture
def rawconn(broker):
    conns = []

    def make():
        c = RawConn(broker.host, broker.port)
        conns.append(c)
        return c
    yield make
    for c in conns:
        c.close()


def assert_socket_closes(c, timeout=5.0):
    """After close-ok the broker must close the TCP connection."""
    rest = c.read_until_eof(timeout)
    # Only (possibly) heartbeats may arrive after connection.close-ok.
    assert rest == b"" or set(rest) <= set(raw.heartbeat(0)), rest


def abuse(rawconn, payload, open_channel=True, frame_max=131072):
    c = rawconn()
    c.handshake(frame_max=frame_max)
    if open_channel:
        c.open_channel(1)
    c.send(payload)
    close = c.expect_connection_close()
    assert_socket_closes(c)
    return close


# ------------------------------------------------------------ protocol header
@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x02",   # wrong revision
    b"AMQP\x00\x01\x00\x00",   # AMQP 1.0 (plugin not enabled)
    b"AMQP\x03\x01\x00\x00",   # unknown protocol id
], ids=["0-9-2", "1.0", "protoid3"])
def test_wrong_protocol_header(rawconn, bystander, header):
    c = rawconn()
    c.send(header)
    data = c.read_until_eof()
    assert data == b"AMQP\x00\x00\x09\x01"
    bystander.check()


@pytest.mark.parametrize("junk", [
    bytes(range(200, 216)),
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["random", "http"])
def test_garbage_instead_of_header(rawconn, bystander, junk):
    c = rawconn()
    c.send(junk)
    data = c.read_until_eof()
    assert data == b"AMQP\x00\x00\x09\x01"
    bystander.check()


# ------------------------------------------------------------ after handshake
def test_handshake_by_hand_then_clean_close(rawconn, bystander):
    c = rawconn()
    c.handshake()
    c.open_channel(1)
    c.send(raw.method(0, 10, 50, b"\x00\xc8" + raw.shortstr("bye") + b"\x00\x00\x00\x00"))
    ch, cls, mth, _ = c.read_method()
    assert (ch, cls, mth) == (0, 10, 51)
    # (RabbitMQ leaves closing the TCP socket to the client here.)
    bystander.check()


def test_amqplain_login(rawconn, bystander):
    """AMQPLAIN (a LOGIN/PASSWORD field table) works like PLAIN."""
    c = rawconn()
    c.handshake(mechanism="AMQPLAIN")
    c.open_channel(1)
    bystander.check()


def test_amqplain_wrong_password_is_refused(rawconn, bystander):
    c = rawconn()
    with pytest.raises(Exception):
        c.handshake(mechanism="AMQPLAIN", password="wrong")
    bystander.check()


def test_truncated_frame_then_socket_close(rawconn, bystander):
    c = rawconn()
    c.handshake()
    c.open_channel(1)
    full = raw.queue_declare(1, f"pytest.trunc.{uuid.uuid4().hex}")
    c.send(full[: len(full) // 2])
    time.sleep(0.2)
    c.close()
    bystander.check()
    # A fresh connection works too.
    c2 = rawconn()
    c2.handshake()
    c2.open_channel(1)


def test_oversized_frame(rawconn, bystander):
    close = abuse(rawconn, raw.frame(raw.FRAME_METHOD, 0, b"\x00" * 5000),
                  open_channel=False, frame_max=4096)
    assert close["reply_code"] == FRAME_ERROR
    assert close["reply_text"].startswith("FRAME_ERROR")
    assert (close["class_id"], close["method_id"]) == (0, 0)
    bystander.check()


def test_oversized_frame_size_field_only(rawconn, bystander):
    # Only the header claims a huge size; the broker must not wait for 1 MB.
    import struct
    payload = struct.pack(">BHI", 1, 0, 10 ** 6) + b"\x00" * 100
    close = abuse(rawconn, payload, open_channel=False, frame_max=4096)
    assert close["reply_code"] == FRAME_ERROR
    assert close["reply_text"].startswith("FRAME_ERROR")
    bystander.check()


def test_oversized_body_frame_on_channel(rawconn, bystander):
    payload = (raw.basic_publish(1, "", "nowhere")
               + raw.content_header(1, 10000)
               + raw.body(1, b"x" * 5000))
    close = abuse(rawconn, payload, frame_max=4096)
    assert close["reply_code"] == FRAME_ERROR
    assert close["reply_text"].startswith("FRAME_ERROR")
    bystander.check()


def test_wrong_frame_end(rawconn, bystander):
    payload = raw.frame(raw.FRAME_METHOD, 1, b"\x00\x32\x00\x0a", end=0x00)
    close = abuse(rawconn, payload)
    assert close["reply_code"] == FRAME_ERROR
    assert close["reply_text"].startswith("FRAME_ERROR")
    assert (close["class_id"], close["method_id"]) == (0, 0)
    bystander.check()


def test_body_without_header(rawconn, bystander):
    close = abuse(rawconn, raw.body(1, b"hello"))
    assert close["reply_code"] == UNEXPECTED_FRAME
    assert close["reply_text"] == (
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
    assert (close["class_id"], close["method_id"]) == (0, 0)
    bystander.check()


def test_header_without_method(rawconn, bystander):
    close = abuse(rawconn, raw.content_header(1, 5))
    assert close["reply_code"] == UNEXPECTED_FRAME
    assert close["reply_text"] == (
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
    assert (close["class_id"], close["method_id"]) == (0, 0)
    bystander.check()


def test_publish_then_body_without_header(rawconn, bystander):
    close = abuse(rawconn, raw.basic_publish(1, "", "q") + raw.body(1, b"hello"))
    assert close["reply_code"] == UNEXPECTED_FRAME
    assert close["reply_text"] == (
        "UNEXPECTED_FRAME - expected content header for class 60, "
        "got non content header frame instead")
    assert (close["class_id"], close["method_id"]) == (60, 40)
    bystander.check()


def test_method_on_unopened_channel(rawconn, bystander):
    close = abuse(rawconn, raw.queue_declare(3, "whatever"), open_channel=False)
    assert close["reply_code"] == CHANNEL_ERROR
    assert close["reply_text"] == "CHANNEL_ERROR - expected 'channel.open'"
    assert (close["class_id"], close["method_id"]) == (50, 10)
    bystander.check()


def test_publish_on_unopened_channel(rawconn, bystander):
    payload = (raw.basic_publish(3, "", "foo") + raw.content_header(3, 1)
               + raw.body(3, b"x"))
    close = abuse(rawconn, payload, open_channel=False)
    assert close["reply_code"] == CHANNEL_ERROR
    assert close["reply_text"] == "CHANNEL_ERROR - expected 'channel.open'"
    assert (close["class_id"], close["method_id"]) == (60, 40)
    bystander.check()


def test_second_channel_open(rawconn, bystander):
    close = abuse(rawconn, raw.channel_open(1))
    assert close["reply_code"] == CHANNEL_ERROR
    assert close["reply_text"] == "CHANNEL_ERROR - second 'channel.open' seen"
    assert (close["class_id"], close["method_id"]) == (20, 10)
    bystander.check()


@pytest.mark.parametrize("channel,open_first", [(1, True), (5, False)],
                         ids=["open-channel", "unopened-channel"])
def test_heartbeat_on_nonzero_channel(rawconn, bystander, channel, open_first):
    close = abuse(rawconn, raw.heartbeat(channel), open_channel=open_first)
    # RabbitMQ 3.10 answers 505 here, not 501.
    assert close["reply_code"] == UNEXPECTED_FRAME
    assert close["reply_text"].startswith("UNEXPECTED_FRAME - type 8")
    assert (close["class_id"], close["method_id"]) == (0, 0)
    bystander.check()


def test_unknown_frame_type(rawconn, bystander):
    close = abuse(rawconn, raw.frame(9, 1, b"abc"))
    assert close["reply_code"] == FRAME_ERROR
    assert close["reply_text"].startswith("FRAME_ERROR - type 9")
    assert close["reply_text"].endswith("unknown_frame")
    bystander.check()


@pytest.mark.parametrize("channel,class_id,method_id", [
    (1, 60, 255), (0, 10, 99), (1, 99, 10)],
    ids=["basic.255", "connection.99", "class99"])
def test_unknown_method(rawconn, bystander, channel, class_id, method_id):
    """RabbitMQ 3.10 resets the socket without a connection.close.

    Accepted: that, or a connection.close with 503 COMMAND_INVALID /
    540 NOT_IMPLEMENTED.  Not accepted: ignoring the frame.
    """
    c = rawconn()
    c.handshake()
    c.open_channel(1)
    c.send(raw.method(channel, class_id, method_id, b"\x00\x00"))
    try:
        close = c.expect_connection_close()
    except raw.Closed:
        close = None
    except ConnectionResetError:
        close = None
    except socket.timeout:
        pytest.fail("broker ignored an unknown method id")
    if close is not None:
        assert close["reply_code"] in (COMMAND_INVALID, NOT_IMPLEMENTED), close
        try:
            c.read_until_eof()
        except ConnectionResetError:
            pass
    bystander.check()


# ------------------------------------------------------------ well-formed raw
def test_connection_start_and_tune_values(rawconn):
    import struct
    c = rawconn()
    c.send(raw.PROTOCOL_HEADER)
    ch, cls, mth, args = c.read_method()
    assert (ch, cls, mth) == (0, 10, 10)
    assert args[0:2] == b"\x00\x09"          # version-major 0, minor 9
    tlen, = struct.unpack(">I", args[2:6])
    server_props = args[6:6 + tlen]
    for cap in (b"publisher_confirms", b"basic.nack", b"consumer_cancel_notify",
                b"exchange_exchange_bindings", b"per_consumer_qos",
                b"authentication_failure_close", b"connection.blocked"):
        assert cap in server_props, cap
    rest = args[6 + tlen:]
    mlen, = struct.unpack(">I", rest[:4])
    mechanisms = rest[4:4 + mlen].split(b" ")
    assert b"PLAIN" in mechanisms
    llen, = struct.unpack(">I", rest[4 + mlen:8 + mlen])
    assert rest[8 + mlen:8 + mlen + llen] == b"en_US"


def test_server_heartbeats_on_channel_zero(rawconn):
    c = rawconn()
    c.handshake(heartbeat=1)
    ftype, ch, payload = c.read_frame(timeout=4)
    assert (ftype, ch, payload) == (raw.FRAME_HEARTBEAT, 0, b"")
    c.send(raw.heartbeat(0))


def test_empty_consumer_tag_is_server_generated(rawconn, broker):
    import struct
    c = rawconn()
    c.handshake()
    c.open_channel(1)
    q = f"pytest.rawctag.{uuid.uuid4().hex}"
    c.send(raw.queue_declare(1, q, exclusive=True))
    assert c.read_method()[1:3] == (50, 11)
    # basic.consume: reserved u16, queue, consumer-tag "", bits, arguments
    c.send(raw.method(1, 60, 20, struct.pack(">H", 0) + raw.shortstr(q)
                      + raw.shortstr("") + b"\x00" + raw.table({})))
    ch, cls, mth, args = c.read_method()
    assert (ch, cls, mth) == (1, 60, 21)
    tag = args[1:1 + args[0]].decode()
    assert tag.startswith("amq.ctag-"), tag


def test_float_header_values_roundtrip(rawconn, broker):
    """pika cannot encode floats (and mis-decodes 'd'/'f'/'b'), so publish
    and basic.get by hand and compare the content-header bytes exactly."""
    import struct
    q = f"pytest.rawfloat.{uuid.uuid4().hex}"
    conn = broker.connect()
    try:
        pch = conn.channel()
        pch.queue_declare(q)
        c = rawconn()
        c.handshake()
        c.open_channel(1)
        c.send(raw.method(1, 85, 10, b"\x00"))        # confirm.select
        assert c.read_method()[1:3] == (85, 11)
        fields = (raw.shortstr("d") + b"d" + struct.pack(">d", 2.5)
                  + raw.shortstr("f") + b"f" + struct.pack(">f", 0.25)
                  + raw.shortstr("b") + b"b" + struct.pack(">b", -3)
                  + raw.shortstr("s") + b"s" + struct.pack(">h", -300))
        hdr_table = struct.pack(">I", len(fields)) + fields
        body = b"floaty"
        c.send(raw.basic_publish(1, "", q)
               + raw.content_header(1, len(body), flags=0x2000, props=hdr_table)
               + raw.body(1, body))
        assert c.read_method()[1:3] == (60, 80)       # basic.ack
        # basic.get: reserved u16, queue, no-ack=1
        c.send(raw.method(1, 60, 70, struct.pack(">H", 0) + raw.shortstr(q) + b"\x01"))
        ch, cls, mth, args = c.read_method()
        assert (ch, cls, mth) == (1, 60, 71)
        ftype, ch, payload = c.read_frame()
        assert (ftype, ch) == (raw.FRAME_HEADER, 1)
        class_id, weight, size, flags = struct.unpack(">HHQH", payload[:14])
        assert (class_id, weight, size, flags) == (60, 0, len(body), 0x2000)
        assert payload[14:] == hdr_table
        ftype, ch, payload = c.read_frame()
        assert (ftype, ch, payload) == (raw.FRAME_BODY, 1, body)
        # pika still sees the message count right afterwards (queue now empty)
        assert pch.queue_declare(q, passive=True).method.message_count == 0
    finally:
        try:
            conn.channel().queue_delete(q)
            conn.close()
        except Exception:
            pass
