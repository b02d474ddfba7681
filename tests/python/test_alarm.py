"""Resource alarm: below the free-disk limit warren blocks publishers with
connection.blocked (RabbitMQ's behaviour), while consumers carry on. As in
RabbitMQ 3.10, a connection is blocked (and told) at its first publish under
the alarm, not before: an idle one is not notified.

Runs only against warren (it needs a broker started with a huge
--disk-free-limit-bytes so the alarm is raised at once)."""

import os
import threading

import pika
import pytest

from conftest import REPO_ROOT, STARTUP_TIMEOUT, Broker, _WarrenProcess

pytestmark = pytest.mark.skipif(bool(os.environ.get("AMQP_URL")),
                                reason="needs its own warren process")


@pytest.fixture
def alarmed_broker():
    binary = os.environ.get("WARREN_BIN",
                            os.path.join(REPO_ROOT, "target", "debug", "warren"))
    if not os.path.isabs(binary):
        binary = os.path.join(REPO_ROOT, binary)
    wp = _WarrenProcess(binary, extra_args=["--disk-free-limit-bytes",
                                            str(10 ** 18)])
    try:
        port = wp.wait_port(STARTUP_TIMEOUT)
        yield Broker(host="127.0.0.1", port=port, is_warren=True,
                     log_path=wp.log_path)
    finally:
        wp.stop()


def test_low_disk_blocks_publishers_not_consumers(alarmed_broker):
    blocked = threading.Event()
    pub = alarmed_broker.connect(blocked_connection_timeout=None)
    pub.add_on_connection_blocked_callback(lambda *_: blocked.set())
    # The alarm is checked about once a second after start: wait for it.
    deadline = 50
    while "resource alarm: low on disk" not in alarmed_broker.log_tail(200) and deadline:
        pub.process_data_events(time_limit=0.1)
        deadline -= 1
    # Not publishing yet: not blocked, not told.
    pub.process_data_events(time_limit=0.3)
    assert not blocked.is_set(), "connection.blocked before any publish"
    pch = pub.channel()
    q = "alarm-held-%d" % os.getpid()
    pch.queue_declare(q)
    pch.basic_publish("", q, b"held")
    deadline = 50
    while not blocked.is_set() and deadline:
        pub.process_data_events(time_limit=0.1)
        deadline -= 1
    assert blocked.is_set(), "expected connection.blocked"

    cons = alarmed_broker.connect()
    ch = cons.channel()
    # The blocked publish was not taken; a consuming connection keeps working.
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    q2 = ch.queue_declare("", exclusive=True).method.queue
    assert ch.basic_get(q2, auto_ack=True) == (None, None, None)
    ch.queue_delete(q2)
    ch.queue_delete(q)
    cons.close()
    # `pub` is not closed: a blocked connection is not read (its
    # connection.close neither, as in RabbitMQ); the broker is stopped.
