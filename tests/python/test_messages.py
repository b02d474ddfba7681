"""Message content: all basic properties, header field types, large bodies."""

import datetime
import decimal
import os

import pika

from helpers import pump_until


def _roundtrip(connection, cleanup, uniq, body, properties):
    q = cleanup.queue(uniq("msg"))
    ch = connection.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, body, properties)
    # via basic.get
    m, p, b = ch.basic_get(q, auto_ack=False)
    assert m is not None
    ch.basic_nack(m.delivery_tag, requeue=True)
    # and via basic.deliver
    got = []
    ch.basic_consume(q, lambda c, mm, pp, bb: got.append((mm, pp, bb)), auto_ack=True)
    assert pump_until(connection, lambda: got, timeout=10)
    return (p, b), (got[0][1], got[0][2])


NESTED_HEADERS = {
    "str": "hello",
    "unicode": "h\u00e9llo \u2603",
    "int": 42,
    "neg": -7,
    "big": 2 ** 40,
    "true": True,
    "false": False,
    # (pika 1.3 cannot encode floats; see test_malformed.py for a raw one)
    "decimal": decimal.Decimal("3.14"),
    "timestamp": datetime.datetime(2021, 5, 4, 3, 2, 1),
    "bytes": b"\x00\x01\xfe\xff",
    "void": None,
    "array": [1, "two", True, [3, 4], {"k": "v"}],
    "table": {"inner": {"deep": [1, 2, {"deeper": "yes"}]}, "n": 1},
    "empty_table": {},
    "empty_array": [],
}


def test_all_basic_properties_roundtrip(connection, cleanup, uniq):
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=NESTED_HEADERS,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-123",
        reply_to="reply-queue",
        expiration="600000",
        message_id="msg-456",
        timestamp=1620000000,
        type="order.created",
        user_id="guest",          # must equal the authenticated user
        app_id="warren-tests",
        cluster_id="cluster-x",
    )
    body = b'{"hello": "world"}'
    for p, b in _roundtrip(connection, cleanup, uniq, body, props):
        assert b == body
        assert p.content_type == "application/json"
        assert p.content_encoding == "gzip"
        assert p.delivery_mode == 2
        assert p.priority == 7
        assert p.correlation_id == "corr-123"
        assert p.reply_to == "reply-queue"
        assert p.expiration == "600000"
        assert p.message_id == "msg-456"
        assert p.timestamp == 1620000000
        assert p.type == "order.created"
        assert p.user_id == "guest"
        assert p.app_id == "warren-tests"
        assert p.cluster_id == "cluster-x"
        h = p.headers
        assert h["str"] == b"hello" or h["str"] == "hello"
        for k in ("int", "neg", "big", "true", "false", "decimal",
                  "timestamp", "bytes", "void", "empty_table", "empty_array"):
            assert h[k] == NESTED_HEADERS[k], k
        assert type(h["true"]) is bool
        assert _s(h["unicode"]) == NESTED_HEADERS["unicode"]
        arr = h["array"]
        assert arr[0] == 1 and _s(arr[1]) == "two" and arr[2] is True
        assert arr[3] == [3, 4] and _s(arr[4]["k"]) == "v"
        t = h["table"]
        assert t["n"] == 1
        assert t["inner"]["deep"][:2] == [1, 2]
        assert _s(t["inner"]["deep"][2]["deeper"]) == "yes"
        assert set(h) == set(NESTED_HEADERS)


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def test_no_properties_roundtrip(connection, cleanup, uniq):
    for p, b in _roundtrip(connection, cleanup, uniq, b"plain", pika.BasicProperties()):
        assert b == b"plain"
        for name in ("content_type", "content_encoding", "headers", "delivery_mode",
                     "priority", "correlation_id", "reply_to", "expiration",
                     "message_id", "timestamp", "type", "user_id", "app_id",
                     "cluster_id"):
            assert getattr(p, name) is None, name


def test_empty_body_roundtrip(connection, cleanup, uniq):
    for p, b in _roundtrip(connection, cleanup, uniq, b"",
                           pika.BasicProperties(message_id="empty")):
        assert b == b""
        assert p.message_id == "empty"


def test_large_body_roundtrip(connection, cleanup, uniq):
    body = os.urandom(1024 * 1024 + 17)   # > frame_max (131072): many body frames
    for p, b in _roundtrip(connection, cleanup, uniq, body,
                           pika.BasicProperties(content_type="application/octet-stream")):
        assert len(b) == len(body)
        assert b == body


def test_wrong_user_id_is_406(connection, cleanup, uniq):
    from helpers import expect_channel_error
    q = cleanup.queue(uniq("uid"))
    ch = connection.channel()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="mallory"))
    expect_channel_error(lambda: ch.queue_declare(q, passive=True), 406,
                         text="PRECONDITION_FAILED - user_id property set to "
                              "'mallory' but authenticated user was 'guest'")


def test_per_message_ttl_expired_message_dropped(connection, cleanup, uniq):
    q = cleanup.queue(uniq("ttl"))
    ch = connection.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"gone", pika.BasicProperties(expiration="0"))
    ch.basic_publish("", q, b"stays", pika.BasicProperties(expiration="60000"))
    m, p, b = ch.basic_get(q, auto_ack=True)
    assert b == b"stays"
    assert ch.basic_get(q)[0] is None
