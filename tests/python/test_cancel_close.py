"""Consumer cancel and connection close as unmodified clients see them.

Observed from RabbitMQ 3.10 (the reference; each test passes against it):

* A consumer the client cancelled gets no basic.cancel when its queue is
  then deleted, even with deliveries in flight and acks arriving from
  another thread (pika's event-loop consumer, prefetch 1, acks through
  ``add_callback_threadsafe``, cancel then queue.delete on the same
  channel). A consumer that was not cancelled does get one.
* After the client's connection.close the broker answers close-ok and
  leaves closing the socket to the client; when the client's FIN arrives
  it closes abortively (RST: RabbitMQ's default ``{linger, {true, 0}}``),
  so a client reading after its half-close sees ECONNRESET, not an EOF.
"""

import queue
import random
import socket
import threading
import time
import uuid

import pytest

import amqp_raw as raw
from amqp_raw import RawConn

#: Deliveries the consumer takes before the worker cancels it.
CANCEL_AFTER_MESSAGES = 30
#: Longest the worker waits before acking one delivery (seconds).
ACK_DELAY_MAX_S = 0.001
#: How long the consumer keeps reading after queue.delete-ok (seconds).
LINGER_AFTER_DELETE_S = 0.3


def unique(prefix):
    return f"pytest.cxl.{prefix}.{uuid.uuid4().hex[:12]}"


def _publish_until(broker, q, stop):
    """Publishes to `q` on its own connection until `stop` is set."""
    conn = broker.connect()
    ch = conn.channel()
    i = 0
    try:
        while not stop.is_set():
            ch.basic_publish("", q, b"m%d" % i)
            i += 1
            if i % 50 == 0:
                conn.process_data_events(0)
    except Exception:
        pass  # the queue went away under us: unroutable, fine
    finally:
        try:
            conn.close()
        except Exception:
            pass


@pytest.mark.parametrize("round_", range(3))
def test_cancelled_consumer_threaded_acks_then_queue_delete(broker, round_):
    conn = broker.connect()
    ch = conn.channel()
    q = unique("flow")
    control = unique("control")
    ch.queue_declare(q)
    ch.queue_declare(control)
    ch.basic_qos(prefetch_count=1)
    # Every basic.cancel frame the broker sends on this channel, before
    # pika filters those for consumers it is cancelling itself.
    broker_cancels = []
    ch._impl.add_on_cancel_callback(
        lambda frame: broker_cancels.append(frame.method.consumer_tag))
    stop = threading.Event()
    publisher = threading.Thread(target=_publish_until, args=(broker, q, stop))
    publisher.start()
    work = queue.Queue()
    done = {"deleted": False, "finished": False}

    def cancel_and_delete():
        ch.basic_cancel(tag)
        ch.queue_delete(q)
        done["deleted"] = True
        # Not stop_consuming: that would cancel the control consumer too.
        conn.call_later(LINGER_AFTER_DELETE_S, lambda: done.update(finished=True))

    def worker():
        n = 0
        while True:
            item = work.get()
            if item is None:
                return
            time.sleep(random.uniform(0, ACK_DELAY_MAX_S))
            conn.add_callback_threadsafe(
                lambda t=item: ch.basic_ack(t) if ch.is_open else None)
            n += 1
            if n == CANCEL_AFTER_MESSAGES:
                conn.add_callback_threadsafe(cancel_and_delete)

    acker = threading.Thread(target=worker)
    acker.start()
    try:
        tag = ch.basic_consume(q, lambda c, m, p, b: work.put(m.delivery_tag))
        control_tag = ch.basic_consume(control, lambda *a: None)
        deadline = time.monotonic() + 20
        while not done["finished"] and time.monotonic() < deadline:
            conn.process_data_events(0.01)
    finally:
        stop.set()
        work.put(None)
        publisher.join(10)
        acker.join(10)
    assert done["deleted"]
    conn.process_data_events(0.1)
    assert broker_cancels == [], broker_cancels
    # The control: a consumer that was not cancelled is told.
    ch.queue_delete(control)
    deadline = time.monotonic() + 5
    while not broker_cancels and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    assert broker_cancels == [control_tag]
    assert ch.is_open
    conn.close()


def connection_close():
    return raw.method(0, 10, 50, b"\x00\xc8" + raw.shortstr("bye") + b"\x00\x00\x00\x00")


def test_client_close_then_half_close_is_answered_with_reset(broker):
    c = RawConn(broker.host, broker.port)
    try:
        c.handshake()
        c.open_channel(1)
        c.send(connection_close())
        assert c.read_method()[:3] == (0, 10, 51)
        # The broker waits for the client to close the socket.
        c.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)
        c.sock.shutdown(socket.SHUT_WR)
        c.sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            data = c.sock.recv(1)
            pytest.fail(f"clean close instead of a reset: {data!r}")
    finally:
        c.close()
