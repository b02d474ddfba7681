"""Channel/connection errors: reply codes and RabbitMQ's reply texts."""

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from helpers import expect_channel_error


def _still_usable(connection):
    assert connection.is_open
    ch = connection.channel()
    ch.queue_declare("", exclusive=True)
    ch.close()


def test_403_reserved_exchange_prefix(connection, channel, uniq):
    name = "amq.foo-" + uniq("x")
    expect_channel_error(
        lambda: channel.exchange_declare(name, exchange_type="direct"), 403,
        text=f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'")
    _still_usable(connection)


def test_403_reserved_queue_prefix(connection, channel, uniq):
    name = "amq.q-" + uniq("q")
    expect_channel_error(
        lambda: channel.queue_declare(name), 403,
        text=f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
    _still_usable(connection)


def test_404_passive_declare_missing_queue(connection, channel, uniq):
    q = uniq("missing")
    expect_channel_error(lambda: channel.queue_declare(q, passive=True), 404,
                         text=f"NOT_FOUND - no queue '{q}' in vhost '/'")
    _still_usable(connection)


def test_404_passive_declare_missing_exchange(connection, channel, uniq):
    x = uniq("missing")
    expect_channel_error(lambda: channel.exchange_declare(x, passive=True), 404,
                         text=f"NOT_FOUND - no exchange '{x}' in vhost '/'")
    _still_usable(connection)


def test_404_publish_to_missing_exchange(connection, channel, uniq):
    x = uniq("missing")
    channel.basic_publish(x, "rk", b"lost")
    # The error is asynchronous; the next synchronous call observes it.
    expect_channel_error(lambda: channel.queue_declare("", exclusive=True), 404,
                         text=f"NOT_FOUND - no exchange '{x}' in vhost '/'")
    _still_usable(connection)


def test_404_bind_to_missing_exchange(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("q"))
    channel.queue_declare(q)
    x = uniq("missing")
    expect_channel_error(lambda: channel.queue_bind(q, x, routing_key="k"), 404,
                         text=f"NOT_FOUND - no exchange '{x}' in vhost '/'")
    _still_usable(connection)


def test_404_consume_missing_queue(connection, channel, uniq):
    q = uniq("missing")
    expect_channel_error(
        lambda: channel.basic_consume(q, lambda *a: None), 404,
        text=f"NOT_FOUND - no queue '{q}' in vhost '/'")
    _still_usable(connection)


def test_406_redeclare_queue_different_durable(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("dur"))
    channel.queue_declare(q, durable=False)
    expect_channel_error(
        lambda: channel.queue_declare(q, durable=True), 406,
        text=(f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' "
              f"in vhost '/': received 'true' but current is 'false'"))
    _still_usable(connection)


def test_406_redeclare_exchange_different_type(connection, channel, cleanup, uniq):
    x = cleanup.exchange(uniq("x"))
    channel.exchange_declare(x, exchange_type="direct")
    expect_channel_error(
        lambda: channel.exchange_declare(x, exchange_type="topic"), 406,
        text=(f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' "
              f"in vhost '/': received 'topic' but current is 'direct'"))
    _still_usable(connection)


def test_406_ack_unknown_delivery_tag(connection, channel):
    channel.basic_ack(delivery_tag=42)
    expect_channel_error(lambda: channel.queue_declare("", exclusive=True), 406,
                         text="PRECONDITION_FAILED - unknown delivery tag 42")
    _still_usable(connection)


def test_406_double_ack(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("q"))
    channel.queue_declare(q)
    channel.basic_publish("", q, b"x")
    m = None
    for _ in range(100):
        m, _, _ = channel.basic_get(q)
        if m:
            break
        connection.process_data_events(time_limit=0.02)
    assert m is not None
    channel.basic_ack(m.delivery_tag)
    channel.basic_ack(m.delivery_tag)
    expect_channel_error(lambda: channel.queue_declare("", exclusive=True), 406,
                         text=f"PRECONDITION_FAILED - unknown delivery tag {m.delivery_tag}")


def test_406_queue_delete_if_unused(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("inuse"))
    channel.queue_declare(q)
    other = connection.channel()
    other.basic_consume(q, lambda *a: None)
    expect_channel_error(lambda: channel.queue_delete(q, if_unused=True), 406,
                         text=f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
    # still there; deleting without the flag works and reports 0 messages
    ch = connection.channel()
    assert ch.queue_delete(q).method.message_count == 0


def test_406_queue_delete_if_empty(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("notempty"))
    channel.queue_declare(q)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"1")
    channel.basic_publish("", q, b"2")
    expect_channel_error(lambda: channel.queue_delete(q, if_empty=True), 406,
                         text=f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
    ch = connection.channel()
    assert ch.queue_delete(q).method.message_count == 2


def test_queue_delete_if_empty_and_unused_ok(channel, uniq):
    q = uniq("fine")
    channel.queue_declare(q)
    assert channel.queue_delete(q, if_unused=True, if_empty=True).method.message_count == 0


def test_queue_delete_missing_is_ok(channel, uniq):
    # RabbitMQ 3.x: deleting a non-existent queue succeeds with count 0.
    assert channel.queue_delete(uniq("never")).method.message_count == 0


def test_exchange_delete_missing_is_ok(channel, uniq):
    channel.exchange_delete(uniq("never"))
    assert channel.is_open


def test_channel_error_does_not_affect_other_channels(connection, uniq):
    a = connection.channel()
    b = connection.channel()
    with pytest.raises(ChannelClosedByBroker):
        a.queue_declare(uniq("missing"), passive=True)
    assert not a.is_open
    assert b.is_open
    b.queue_declare("", exclusive=True)


def test_403_wrong_password(broker):
    params = pika.ConnectionParameters(
        host=broker.host, port=broker.port, virtual_host=broker.vhost,
        credentials=pika.PlainCredentials("guest", "definitely-wrong"),
        connection_attempts=1)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as ei:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(ei.value)


def test_530_unknown_vhost(broker, uniq):
    params = pika.ConnectionParameters(
        host=broker.host, port=broker.port, virtual_host=uniq("vhost"),
        credentials=pika.PlainCredentials(broker.username, broker.password),
        connection_attempts=1)
    vhost = params.virtual_host
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as ei:
        pika.BlockingConnection(params)
    # RabbitMQ: connection.close 530 "NOT_ALLOWED - vhost <name> not found"
    assert f"(530) 'NOT_ALLOWED - vhost {vhost} not found'" in str(ei.value)
