"""Protocol edge cases where clients must see exactly what RabbitMQ 3.10 does.

Observed from RabbitMQ 3.10 (the reference; each test passes against it):

* After the broker closes a channel with a channel exception, every frame on
  that channel up to the client's channel.close-ok is discarded, content
  header and body frames included (even when the exception arrived between
  a publish's frames).
* A client channel.close that crosses the broker's channel.close is answered
  with channel.close-ok; the channel stays closing until the client's
  close-ok for the broker's close, which is accepted.
"""

import socket
import struct
import time
import uuid

import pytest

import amqp_raw as raw
from amqp_raw import RawConn

NOT_FOUND = 404


def unique(prefix):
    return f"pytest.edge.{prefix}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def rawconn(broker):
    conns = []

    def make(**hs):
        c = RawConn(broker.host, broker.port)
        conns.append(c)
        c.handshake(**hs)
        return c
    yield make
    for c in conns:
        c.close()


def close_args(args):
    code, = struct.unpack(">H", args[:2])
    tlen = args[2]
    text = args[3:3 + tlen].decode("utf-8", "replace")
    class_id, method_id = struct.unpack(">HH", args[3 + tlen:7 + tlen])
    return code, text, class_id, method_id


def channel_close(ch, code=200, text="bye"):
    return raw.method(ch, 20, 40, struct.pack(">H", code) + raw.shortstr(text)
                      + struct.pack(">HH", 0, 0))


def channel_close_ok(ch):
    return raw.method(ch, 20, 41)


def publish(ch, exchange, rk, body, split=False):
    """basic.publish + header + body (the body in two frames if split)."""
    out = raw.basic_publish(ch, exchange, rk) + raw.content_header(ch, len(body))
    if split and len(body) > 1:
        half = len(body) // 2
        return out + raw.body(ch, body[:half]) + raw.body(ch, body[half:])
    return out + raw.body(ch, body)


def methods_until(c, want, timeout=5.0):
    """Method frames read until (channel, class, method) == want (inclusive).
    Fails on a connection.close."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        ftype, ch, payload = c.read_frame(max(0.01, deadline - time.monotonic()))
        if ftype != raw.FRAME_METHOD:
            continue  # heartbeats, content of deliveries
        cls, mth = struct.unpack(">HH", payload[:4])
        m = (ch, cls, mth, payload[4:])
        seen.append(m)
        if m[:3] == (0, 10, 50):
            pytest.fail(f"connection closed: {close_args(m[3])}")
        if m[:3] == want:
            return seen


def assert_connection_usable(c, ch=7):
    """A fresh channel works: declare a queue, publish to it, get it back."""
    q = unique("alive")
    c.send(raw.channel_open(ch))
    methods_until(c, (ch, 20, 11))
    c.send(raw.queue_declare(ch, q, auto_delete=False, exclusive=True))
    methods_until(c, (ch, 50, 11))
    c.send(publish(ch, "", q, b"ping"))
    # basic.get, no-ack
    c.send(raw.method(ch, 60, 70, struct.pack(">H", 0) + raw.shortstr(q) + b"\x01"))
    seen = methods_until(c, (ch, 60, 71))
    assert seen[-1][:3] == (ch, 60, 71)


# ------------------------------------------------- 1. frames on a closing channel
@pytest.mark.parametrize("split", [False, True], ids=["one-body-frame", "two-body-frames"])
def test_publishes_pipelined_on_closing_channel_are_discarded(rawconn, split):
    c = rawconn()
    c.open_channel(1)
    missing = unique("nox")
    body = b"x" * 64
    # A burst of publishes to a missing exchange: the first raises 404, the
    # rest arrive on the closing channel.
    c.send(b"".join(publish(1, missing, "k", body, split) for _ in range(20)))
    seen = methods_until(c, (1, 20, 40))
    code, text, cls, mth = close_args(seen[-1][3])
    assert (code, cls, mth) == (NOT_FOUND, 60, 40)
    assert text == f"NOT_FOUND - no exchange '{missing}' in vhost '/'"
    # The client has not seen the close yet: more publishes (some split
    # across socket writes), then it answers close-ok and opens channels.
    for _ in range(5):
        p = publish(1, missing, "k", body, split)
        c.send(p[:10])
        time.sleep(0.02)
        c.send(p[10:])
    c.send(channel_close_ok(1))
    assert_connection_usable(c, 2)
    # Channel 1 can be opened again.
    assert_connection_usable(c, 1)


def test_error_between_header_and_body_discards_the_rest(rawconn):
    """A channel exception raised at the content header (message too large
    is not checked there by RabbitMQ, so use publish to a missing exchange
    with a multi-frame body): the remaining body frames are discarded."""
    c = rawconn(frame_max=4096)
    c.open_channel(1)
    missing = unique("nox")
    body = b"y" * 10000  # three body frames at frame_max 4096
    out = raw.basic_publish(1, missing, "k") + raw.content_header(1, len(body))
    for i in range(0, len(body), 4000):
        out += raw.body(1, body[i:i + 4000])
    c.send(out + out)
    seen = methods_until(c, (1, 20, 40))
    assert close_args(seen[-1][3])[0] == NOT_FOUND
    c.send(out)
    c.send(channel_close_ok(1))
    assert_connection_usable(c, 3)


# ------------------------------------------------- 2. crossing channel.close
def test_client_close_crossing_broker_close(rawconn):
    c = rawconn()
    c.open_channel(1)
    c.open_channel(2)
    missing = unique("noq")
    # passive declare of a missing queue -> broker channel.close 404;
    # the client closes the channel at the same time.
    c.send(raw.queue_declare(1, missing, passive=True) + channel_close(1))
    seen = methods_until(c, (1, 20, 41))
    kinds = [m[:3] for m in seen]
    assert kinds == [(1, 20, 40), (1, 20, 41)], kinds
    assert close_args(seen[0][3])[0] == NOT_FOUND
    # The client answers the broker's close with close-ok: accepted.
    c.send(channel_close_ok(1))
    # The other channel, and a reopened channel 1, keep working.
    q = unique("other")
    c.send(raw.queue_declare(2, q, exclusive=True))
    methods_until(c, (2, 50, 11))
    assert_connection_usable(c, 1)


# ------------------------------------------------- 3. cancelled consumer, queue.delete
def basic_consume(ch, q, tag, no_ack=False):
    return raw.method(ch, 60, 20, struct.pack(">H", 0) + raw.shortstr(q) + raw.shortstr(tag)
                      + struct.pack(">B", 2 if no_ack else 0) + raw.table({}))


def basic_cancel(ch, tag, nowait):
    return raw.method(ch, 60, 30, raw.shortstr(tag) + struct.pack(">B", 1 if nowait else 0))


def basic_ack(ch, tag):
    return raw.method(ch, 60, 80, struct.pack(">QB", tag, 0))


def basic_qos(ch, count):
    return raw.method(ch, 60, 10, struct.pack(">IHB", 0, count, 0))


def queue_delete(ch, q):
    return raw.method(ch, 50, 40, struct.pack(">H", 0) + raw.shortstr(q) + b"\x00")


NOTIFY = {"publisher_confirms": True, "consumer_cancel_notify": True,
          "basic.nack": True}


@pytest.mark.parametrize("nowait", [True, False], ids=["cancel-nowait", "cancel-wait"])
@pytest.mark.parametrize("ack_when", ["before-delete", "after-delete", "never"])
def test_cancelled_consumer_gets_no_cancel_on_queue_delete(rawconn, nowait, ack_when):
    c = rawconn(capabilities=NOTIFY)
    c.open_channel(1)
    q = unique("cq")
    c.send(raw.queue_declare(1, q))
    methods_until(c, (1, 50, 11))
    for i in range(5):
        c.send(publish(1, "", q, b"m%d" % i))
    c.send(basic_qos(1, 1))
    methods_until(c, (1, 60, 11))
    c.send(basic_consume(1, q, "ctag-edge"))
    seen = methods_until(c, (1, 60, 60))  # consume-ok, then one deliver
    tag, = struct.unpack(">Q", seen[-1][3][1 + seen[-1][3][0]:][:8])
    c.send(basic_cancel(1, "ctag-edge", nowait))
    if not nowait:
        methods_until(c, (1, 60, 31))
    if ack_when == "before-delete":
        c.send(basic_ack(1, tag))
    c.send(queue_delete(1, q))
    seen = methods_until(c, (1, 50, 41))
    if ack_when == "after-delete":
        c.send(basic_ack(1, tag))
    # A marker round trip: anything the broker sent meanwhile arrives first.
    c.send(raw.queue_declare(1, q, exclusive=True))
    seen += methods_until(c, (1, 50, 11))
    kinds = [m[:3] for m in seen]
    assert (1, 60, 30) not in kinds, kinds
    assert (1, 60, 60) not in kinds, kinds


# ------------------------------------------------- 4. unbind of what is not there
def _reply(excinfo):
    e = excinfo.value
    return e.args[0], e.args[1]


@pytest.mark.parametrize("missing", ["binding", "queue", "exchange", "both"])
def test_queue_unbind_of_missing_things_succeeds(connection, cleanup, missing):
    ch = connection.channel()
    q = unique("uq")
    x = unique("ux")
    if missing in ("binding", "exchange"):
        ch.queue_declare(cleanup.queue(q))
    if missing in ("binding", "queue"):
        ch.exchange_declare(cleanup.exchange(x), "direct")
    ch.queue_unbind(q, x, routing_key="k")
    assert ch.is_open
    # The channel is still usable.
    ch.queue_declare(unique("after"), exclusive=True)


@pytest.mark.parametrize("missing", ["binding", "source", "destination", "both"])
def test_exchange_unbind_of_missing_things_succeeds(connection, cleanup, missing):
    ch = connection.channel()
    src = unique("src")
    dst = unique("dst")
    if missing in ("binding", "destination"):
        ch.exchange_declare(cleanup.exchange(src), "direct")
    if missing in ("binding", "source"):
        ch.exchange_declare(cleanup.exchange(dst), "fanout")
    ch.exchange_unbind(dst, src, routing_key="k")
    assert ch.is_open
    ch.queue_declare(unique("after"), exclusive=True)


def test_queue_unbind_twice_succeeds(connection, cleanup):
    ch = connection.channel()
    q = cleanup.queue(unique("uq"))
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.direct", routing_key="k")
    ch.queue_unbind(q, "amq.direct", routing_key="k")
    ch.queue_unbind(q, "amq.direct", routing_key="k")
    assert ch.is_open


def test_queue_unbind_from_default_exchange_is_refused(connection, cleanup):
    import pika.exceptions
    ch = connection.channel()
    q = cleanup.queue(unique("uq"))
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_unbind(q, "", routing_key=q)
    assert _reply(ei) == (
        403, "ACCESS_REFUSED - operation not permitted on the default exchange")


# ------------------------------------------------- 5. declaring the default exchange
@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_declare_default_exchange_is_refused(connection, passive):
    import pika.exceptions
    ch = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare("", "direct", passive=passive)
    assert _reply(ei) == (
        403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    assert connection.is_open


# ------------------------------------------------- 6. channel_max
NOT_ALLOWED = 530


def expect_close(c, timeout=5.0):
    """The broker's connection.close (args decoded); answers close-ok."""
    deadline = time.monotonic() + timeout
    while True:
        ftype, ch, payload = c.read_frame(max(0.01, deadline - time.monotonic()))
        if ftype == raw.FRAME_METHOD and ch == 0 and payload[:4] == b"\x00\x0a\x00\x32":
            c.send(raw.method(0, 10, 51))
            return close_args(payload[4:])


def test_channel_max_limits_open_channels_not_numbers(rawconn):
    c = rawconn(channel_max=3)
    for n in (65535, 3000, 2):
        c.open_channel(n)
    c.send(channel_close(3000))
    methods_until(c, (3000, 20, 41))
    c.open_channel(40000)
    # A fourth channel at once is one too many.
    c.send(raw.channel_open(9))
    assert expect_close(c) == (
        NOT_ALLOWED,
        "NOT_ALLOWED - number of channels opened (3) has reached the "
        "negotiated channel_max (3)", 0, 0)


def test_channel_max_counts_a_closing_channel_until_close_ok(rawconn):
    c = rawconn(channel_max=1)
    c.open_channel(1)
    c.send(raw.queue_declare(1, unique("noq"), passive=True))
    methods_until(c, (1, 20, 40))
    c.send(channel_close_ok(1))
    c.open_channel(2)


@pytest.mark.parametrize("channel_max,frame_max", [
    (0, 131072), (3000, 131072), (10, 0), (10, 1000)],
    ids=["channel_max-0", "channel_max-above", "frame_max-0", "frame_max-below-min"])
def test_tune_ok_outside_the_offer_is_refused_silently(broker, channel_max, frame_max):
    """RabbitMQ 3.10 refuses a tune-ok asking for no limit (0) where it offered
    one, or above/below its limits ("negotiated channel_max = 0 (no limit) is
    higher than the maximum allowed value (2047)" in its log), but sends no
    connection.close: it closes the socket after its 3 s silent-close delay."""
    c = RawConn(broker.host, broker.port)
    try:
        c.send(raw.PROTOCOL_HEADER)
        c.read_method()
        c.send(raw.method(0, 10, 11, raw.table({"product": "edge"}) + raw.shortstr("PLAIN")
                          + raw.longstr(b"\x00guest\x00guest") + raw.shortstr("en_US")))
        ch, cls, mth, args = c.read_method()
        assert (cls, mth) == (10, 30)
        srv_ch_max, srv_frame_max = struct.unpack(">HI", args[:6])
        assert (srv_ch_max, srv_frame_max) == (2047, 131072)
        start = time.monotonic()
        c.send(raw.method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
        assert c.read_until_eof(8) == b""
        assert time.monotonic() - start >= 2.5
    finally:
        c.close()


# ------------------------------------------------- 7. close-ok is the last frame
def connection_close():
    return raw.method(0, 10, 50, b"\x00\xc8" + raw.shortstr("bye") + b"\x00\x00\x00\x00")


@pytest.mark.parametrize("confirms", [False, True], ids=["plain", "confirms"])
def test_nothing_follows_connection_close_ok(rawconn, confirms):
    """Publishes to a queue the same connection consumes from, then
    connection.close in the same write: whatever the broker sends, close-ok
    comes last; acks and deliveries only before it."""
    c = rawconn()
    c.open_channel(1)
    c.open_channel(2)
    q = unique("last")
    c.send(raw.queue_declare(1, q, exclusive=True))
    methods_until(c, (1, 50, 11))
    # Two manual-ack consumers with small prefetch, on channels 1 and 3:
    # closing channel 1 requeues its unacked messages, which must not go to
    # channel 3 after close-ok.
    c.open_channel(3)
    for ch in (1, 3):
        c.send(basic_qos(ch, 10))
        methods_until(c, (ch, 60, 11))
        c.send(basic_consume(ch, q, f"ctag-last-{ch}"))
        methods_until(c, (ch, 60, 21))
    if confirms:
        c.send(raw.method(2, 85, 10, b"\x00"))
        methods_until(c, (2, 85, 11))
    c.send(b"".join(publish(2, "", q, b"m%d" % i) for i in range(20)) + connection_close())
    frames = []
    deadline = time.monotonic() + 5
    while True:
        ftype, ch, payload = c.read_frame(max(0.01, deadline - time.monotonic()))
        frames.append((ftype, ch, payload[:4]))
        if ftype == raw.FRAME_METHOD and ch == 0 and payload[:4] == b"\x00\x0a\x00\x33":
            break
    # After close-ok: only EOF (or silence; the client closes the socket).
    c.sock.settimeout(0.5)
    try:
        rest = c.buf + c.sock.recv(65536)
    except socket.timeout:
        rest = c.buf
    assert rest == b"", f"{len(rest)} bytes after close-ok: {rest[:40]!r}"
