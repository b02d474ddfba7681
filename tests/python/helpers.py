"""Small helpers shared by the pika-based tests."""

import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker


def drain(ch, queue, auto_ack=True, timeout=0.0):
    """basic.get until get-empty; return the list of bodies.

    With timeout > 0 keep polling until that much time passed without a
    message (used where delivery to the queue may lag).
    """
    out = []
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            if time.monotonic() >= deadline:
                return out
            ch.connection.process_data_events(time_limit=0.05)
            continue
        out.append(body)


def message_count(conn, queue):
    """Ready-message count of a queue via passive declare on a fresh channel."""
    ch = conn.channel()
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        if ch.is_open:
            ch.close()


def queue_exists(conn, queue):
    ch = conn.channel()
    try:
        ch.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    ch.close()
    return True


def expect_channel_error(fn, code, text=None, prefix=None):
    """Run fn(); it must raise ChannelClosedByBroker with the given code/text."""
    with pytest.raises(ChannelClosedByBroker) as ei:
        fn()
    assert ei.value.reply_code == code, ei.value
    if text is not None:
        assert ei.value.reply_text == text, ei.value.reply_text
    if prefix is not None:
        assert ei.value.reply_text.startswith(prefix), ei.value.reply_text
    return ei.value


def pump_until(conn, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return False
        conn.process_data_events(time_limit=0.05)
    return True


def props(**kw):
    return pika.BasicProperties(**kw)
