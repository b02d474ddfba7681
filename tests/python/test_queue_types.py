"""x-queue-type (classic, quorum) and quorum-queue delivery semantics, as
RabbitMQ 3.10 has them: declare rules, equivalence, x-delivery-count,
x-delivery-limit, where returned messages go, global qos refused."""

import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker

from helpers import drain, expect_channel_error, message_count, pump_until

QUORUM = {"x-queue-type": "quorum"}


def _declare(ch, name, durable=True, exclusive=False, auto_delete=False, args=None, passive=False):
    return ch.queue_declare(name, durable=durable, exclusive=exclusive,
                            auto_delete=auto_delete, arguments=args, passive=passive)


def _quorum(connection, cleanup, uniq, **extra):
    q = cleanup.queue(uniq("qq"))
    ch = connection.channel()
    _declare(ch, q, args={**QUORUM, **extra})
    ch.close()
    return q


def _err(connection, fn, code, text):
    ch = connection.channel()
    expect_channel_error(lambda: fn(ch), code, text=text)


def test_quorum_declare_redeclare_and_passive(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq)
    ch = connection.channel()
    assert _declare(ch, q, args=QUORUM).method.queue == q
    assert _declare(ch, q, durable=False, passive=True).method.queue == q
    _err(connection, lambda c: _declare(c, q), 406,
         f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
         "received none but current is the value 'quorum' of type 'longstr'")
    _err(connection, lambda c: _declare(c, q, args={"x-queue-type": "classic"}), 406,
         f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
         "received 'classic' but current is 'quorum'")
    _err(connection, lambda c: _declare(c, q, durable=False, args=QUORUM), 406,
         f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
         "received 'false' but current is 'true'")


def test_classic_queue_type_equivalence(connection, cleanup, uniq):
    ch = connection.channel()
    plain = cleanup.queue(uniq("c"))
    explicit = cleanup.queue(uniq("c"))
    _declare(ch, plain)
    _declare(ch, explicit, args={"x-queue-type": "classic"})
    # A missing x-queue-type and 'classic' are the same.
    _declare(ch, plain, args={"x-queue-type": "classic"})
    _declare(ch, explicit)
    _err(connection, lambda c: _declare(c, plain, args=QUORUM), 406,
         f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{plain}' in vhost '/': "
         "received the value 'quorum' of type 'longstr' but current is none")
    _err(connection, lambda c: _declare(c, explicit, args=QUORUM), 406,
         f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{explicit}' in vhost '/': "
         "received 'quorum' but current is 'classic'")


@pytest.mark.parametrize("durable,exclusive,auto_delete,prop", [
    (False, False, False, "non-durable"),
    (True, True, False, "exclusive-owner"),
    (True, False, True, "auto-delete"),
    (False, True, True, "auto-delete"),
])
def test_quorum_properties_refused(connection, uniq, durable, exclusive, auto_delete, prop):
    q = uniq("qq")
    _err(connection, lambda c: _declare(c, q, durable=durable, exclusive=exclusive,
                                        auto_delete=auto_delete, args=QUORUM), 406,
         f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'")


def test_quorum_server_named_refused(connection):
    _err(connection, lambda c: _declare(c, "", args=QUORUM), 406,
         "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue")


@pytest.mark.parametrize("value,detail", [
    ("bogus", "\"unsupported queue type 'bogus'\""),
    ("Quorum", "\"unsupported queue type 'Quorum'\""),
    (5, "{unacceptable_type,signedint}"),
])
def test_invalid_queue_type(connection, uniq, value, detail):
    q = uniq("bad")
    _err(connection, lambda c: _declare(c, q, args={"x-queue-type": value}), 406,
         f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': {detail}")


def test_stream_refused(broker, connection, uniq):
    if not broker.is_warren:
        pytest.skip("RabbitMQ 3.10 has streams; warren refuses them as an unsupported type")
    q = uniq("stream")
    _err(connection, lambda c: _declare(c, q, args={"x-queue-type": "stream"}), 406,
         f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': "
         "\"unsupported queue type 'stream'\"")


@pytest.mark.parametrize("key,value", [
    ("x-max-priority", 5),
    ("x-queue-mode", "lazy"),
    ("x-queue-master-locator", "min-masters"),
    ("x-queue-version", 2),
    ("x-max-age", "1D"),
])
def test_quorum_refuses_classic_arguments(connection, uniq, key, value):
    q = uniq("qq")
    _err(connection, lambda c: _declare(c, q, args={**QUORUM, key: value}), 406,
         f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/' "
         "of queue type rabbit_quorum_queue")


@pytest.mark.parametrize("key,value", [
    ("x-delivery-limit", 3),
    ("x-dead-letter-strategy", "at-least-once"),
    ("x-quorum-initial-group-size", 1),
    ("x-max-in-memory-length", 5),
    ("x-queue-leader-locator", "balanced"),
])
def test_classic_refuses_quorum_arguments(connection, uniq, key, value):
    q = uniq("c")
    _err(connection, lambda c: _declare(c, q, args={key: value}), 406,
         f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/' "
         "of queue type rabbit_classic_queue")


@pytest.mark.parametrize("key,value", [
    ("x-overflow", "reject-publish-dlx"),
    ("x-delivery-limit", "not-a-number"),
    ("x-dead-letter-strategy", "at-most-once"),
    ("x-quorum-initial-group-size", 3),
    ("x-max-in-memory-bytes", 100),
    ("x-single-active-consumer", True),
    ("x-unknown-thing", 1),
])
def test_quorum_accepts(connection, cleanup, uniq, key, value):
    q = cleanup.queue(uniq("qq"))
    ch = connection.channel()
    assert _declare(ch, q, args={**QUORUM, key: value}).method.queue == q


@pytest.mark.parametrize("key,value,detail", [
    ("x-quorum-initial-group-size", 0, "{value_zero,0}"),
    ("x-max-in-memory-length", "a", "\"expected integer, got longstr\""),
    ("x-dead-letter-strategy", "foo", "invalid_dlx_strategy"),
    ("x-queue-leader-locator", "foo", "invalid_queue_locator_arg"),
])
def test_quorum_argument_values(connection, uniq, key, value, detail):
    q = uniq("qq")
    _err(connection, lambda c: _declare(c, q, args={**QUORUM, key: value}), 406,
         f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/': {detail}")


def _get(ch, q):
    method, props, body = ch.basic_get(q)
    assert method is not None, "expected a message"
    return method, (props.headers or {}), body


def test_delivery_count_on_get(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq)
    ch = connection.channel()
    ch.basic_publish("", q, b"m", properties=pika.BasicProperties(headers={"a": 1}))
    pump_until(connection, lambda: message_count(connection, q) == 1)
    for n in range(3):
        method, headers, body = _get(ch, q)
        assert body == b"m"
        assert method.redelivered == (n > 0)
        # Every get-ok of a quorum queue carries the count, 0 included.
        assert headers == {"a": 1, "x-delivery-count": n}
        ch.basic_nack(method.delivery_tag, requeue=True)


def _consume_one(connection, ch, q):
    got = []

    def on(c, method, props, body):
        got.append((method, props.headers or {}, body))

    tag = ch.basic_consume(q, on)
    pump_until(connection, lambda: got)
    ch.basic_cancel(tag)
    assert got, "expected a delivery"
    return got[0]


def test_delivery_count_on_consume_every_return_counts(broker, connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq)
    ch = connection.channel()
    ch.basic_publish("", q, b"m")
    pump_until(connection, lambda: message_count(connection, q) == 1)
    method, headers, _ = _consume_one(connection, ch, q)
    assert not method.redelivered and "x-delivery-count" not in headers
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, headers, _ = _consume_one(connection, ch, q)
    assert method.redelivered and headers["x-delivery-count"] == 1
    ch.basic_recover(requeue=True)
    method, headers, _ = _consume_one(connection, ch, q)
    assert headers["x-delivery-count"] == 2
    ch.close()
    ch2 = connection.channel()
    method, headers, _ = _consume_one(connection, ch2, q)
    assert headers["x-delivery-count"] == 3
    connection.close()
    other = broker.connect()
    try:
        ch3 = other.channel()
        method, headers, _ = _consume_one(other, ch3, q)
        assert headers["x-delivery-count"] == 4
        ch3.basic_ack(method.delivery_tag)
    finally:
        other.close()


def test_delivery_limit_dead_letters(connection, cleanup, uniq):
    ch = connection.channel()
    dlx = cleanup.exchange(uniq("dlx"))
    dlq = cleanup.queue(uniq("dlq"))
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    q = _quorum(connection, cleanup, uniq, **{"x-delivery-limit": 2, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"one", properties=pika.BasicProperties(headers={"a": 1}))
    pump_until(connection, lambda: message_count(connection, q) == 1)
    for n in range(3):
        method, headers, _ = _get(ch, q)
        assert headers["x-delivery-count"] == n
        ch.basic_nack(method.delivery_tag, requeue=True)
    assert pump_until(connection, lambda: message_count(connection, dlq) == 1)
    assert message_count(connection, q) == 0
    method, props, body = ch.basic_get(dlq, auto_ack=True)
    assert body == b"one"
    h = props.headers
    assert h["a"] == 1 and "x-delivery-count" not in h
    assert h["x-first-death-reason"] == "delivery_limit"
    assert h["x-first-death-queue"] == q
    death = h["x-death"][0]
    assert death["reason"] == "delivery_limit" and death["queue"] == q
    assert death["count"] == 1 and death["routing-keys"] == [q] and death["exchange"] == ""


def test_delivery_limit_without_dlx_drops(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq, **{"x-delivery-limit": 0})
    ch = connection.channel()
    ch.basic_publish("", q, b"m")
    pump_until(connection, lambda: message_count(connection, q) == 1)
    method, headers, _ = _get(ch, q)
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert pump_until(connection, lambda: message_count(connection, q) == 0)


def test_delivery_limit_counts_channel_close(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq, **{"x-delivery-limit": 1})
    ch = connection.channel()
    ch.basic_publish("", q, b"m")
    pump_until(connection, lambda: message_count(connection, q) == 1)
    for _ in range(2):
        c = connection.channel()
        _consume_one(connection, c, q)
        c.close()
    assert pump_until(connection, lambda: message_count(connection, q) == 0)


def _two_out_one_in(connection, q):
    """Publishes 1, 2, 3; gets 1 and 2 unacked; returns (channel, m1, m2)."""
    ch = connection.channel()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    pump_until(connection, lambda: message_count(connection, q) == 3)
    m1 = ch.basic_get(q)[0]
    m2 = ch.basic_get(q)[0]
    return ch, m1, m2


def test_return_order_without_limit_is_tail(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq)
    ch, m1, m2 = _two_out_one_in(connection, q)
    ch.basic_nack(m2.delivery_tag, requeue=True)
    ch.basic_nack(m1.delivery_tag, requeue=True)
    pump_until(connection, lambda: message_count(connection, q) == 3)
    assert drain(ch, q) == [b"3", b"2", b"1"]


def test_return_order_with_limit_is_head(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq, **{"x-delivery-limit": 5})
    ch, m1, m2 = _two_out_one_in(connection, q)
    ch.basic_nack(m2.delivery_tag, requeue=True)
    ch.basic_nack(m1.delivery_tag, requeue=True)
    pump_until(connection, lambda: message_count(connection, q) == 3)
    assert drain(ch, q) == [b"2", b"1", b"3"]


def test_return_order_on_channel_close_is_head(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq)
    ch, m1, m2 = _two_out_one_in(connection, q)
    ch.close()
    pump_until(connection, lambda: message_count(connection, q) == 3)
    assert drain(connection.channel(), q) == [b"1", b"2", b"3"]


def test_classic_requeue_order_unchanged(connection, cleanup, uniq):
    q = cleanup.queue(uniq("c"))
    connection.channel().queue_declare(q)
    ch, m1, m2 = _two_out_one_in(connection, q)
    ch.basic_nack(m2.delivery_tag, requeue=True)
    ch.basic_nack(m1.delivery_tag, requeue=True)
    m, props, _ = ch.basic_get(q, auto_ack=True)
    assert m.redelivered and not (props.headers or {}).get("x-delivery-count")
    assert drain(ch, q) == [b"2", b"3"]


def test_global_qos_refused_on_quorum_consume(connection, cleanup, uniq):
    q = _quorum(connection, cleanup, uniq)
    ch = connection.channel()
    ch.basic_qos(prefetch_count=0, global_qos=True)
    ch.basic_consume(q, lambda *a: None)
    ch2 = connection.channel()
    ch2.basic_qos(prefetch_count=5, global_qos=True)
    with pytest.raises(ConnectionClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == (
        f"NOT_IMPLEMENTED - queue '{q}' in vhost '/' does not support global qos")
