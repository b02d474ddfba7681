"""Queues and consumers: acks, prefetch, get, exclusive/auto-delete, tx, etc."""

import threading
import time
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from helpers import drain, expect_channel_error, message_count, pump_until, queue_exists


def _fill(ch, q, n, prefix="m"):
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", q, f"{prefix}{i}".encode())


# ------------------------------------------------------------------ work queue
def test_work_queue_prefetch_fairness(connection, cleanup, uniq):
    """prefetch_count=1: a consumer that has not acked gets nothing more."""
    q = cleanup.queue(uniq("work"))
    setup = connection.channel()
    setup.queue_declare(q)

    slow_ch = connection.channel()
    fast_ch = connection.channel()
    slow_ch.basic_qos(prefetch_count=1)
    fast_ch.basic_qos(prefetch_count=1)
    slow, fast = [], []

    def on_slow(ch, method, props, body):
        slow.append((method.delivery_tag, body))   # never acks (yet)

    def on_fast(ch, method, props, body):
        fast.append(body)
        ch.basic_ack(method.delivery_tag)

    slow_ch.basic_consume(q, on_slow)
    fast_ch.basic_consume(q, on_fast)
    n = 20
    _fill(setup, q, n)
    assert pump_until(connection, lambda: len(slow) + len(fast) == n, timeout=10)
    connection.process_data_events(time_limit=0.2)
    assert len(slow) == 1, slow
    assert len(fast) == n - 1
    assert sorted([b for _, b in slow] + fast) == sorted(f"m{i}".encode() for i in range(n))
    # Once the slow consumer acks it can receive again.
    slow_ch.basic_ack(slow[0][0])
    setup.basic_publish("", q, b"late")
    assert pump_until(connection, lambda: len(slow) + len(fast) == n + 1, timeout=5)


def test_work_queue_threads_slow_and_fast(broker, cleanup, uniq):
    """Two real consumers on their own connections; the fast one gets more."""
    q = cleanup.queue(uniq("work2"))
    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        counts = {"slow": 0, "fast": 0}
        lock = threading.Lock()
        total = 30
        done = threading.Event()
        ready = threading.Barrier(3)
        errors = []

        def worker(name, delay):
            try:
                c = broker.connect()
                wch = c.channel()
                wch.basic_qos(prefetch_count=1)

                def cb(chan, method, props, body):
                    if delay:
                        time.sleep(delay)
                    chan.basic_ack(method.delivery_tag)
                    with lock:
                        counts[name] += 1
                        if counts["slow"] + counts["fast"] >= total:
                            done.set()
                wch.basic_consume(q, cb)
                ready.wait(10)
                deadline = time.monotonic() + 15
                while not done.is_set() and time.monotonic() < deadline:
                    c.process_data_events(time_limit=0.05)
                c.close()
            except Exception as e:  # pragma: no cover
                errors.append(e)
                done.set()

        threads = [threading.Thread(target=worker, args=("slow", 0.25)),
                   threading.Thread(target=worker, args=("fast", 0))]
        for t in threads:
            t.start()
        ready.wait(10)
        _fill(ch, q, total)
        assert done.wait(20)
        for t in threads:
            t.join(20)
        assert not errors, errors
        assert counts["slow"] + counts["fast"] == total
        assert counts["fast"] > counts["slow"], counts
        assert counts["slow"] >= 1
    finally:
        conn.close()


def test_manual_ack_unacked_requeued_on_channel_close(connection, cleanup, uniq):
    q = cleanup.queue(uniq("unacked"))
    ch = connection.channel()
    ch.queue_declare(q)
    _fill(ch, q, 3)
    c2 = connection.channel()
    got = drain(c2, q, auto_ack=False)
    assert got == [b"m0", b"m1", b"m2"]
    assert message_count(connection, q) == 0
    c2.close()
    assert pump_until(connection, lambda: message_count(connection, q) == 3)
    c3 = connection.channel()
    m, props, body = c3.basic_get(q, auto_ack=True)
    assert body == b"m0" and m.redelivered is True


def test_nack_requeue_redelivers(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("nack"))
    channel.queue_declare(q)
    _fill(channel, q, 1)
    m, _, body = channel.basic_get(q)
    assert m.redelivered is False
    channel.basic_nack(m.delivery_tag, requeue=True)
    m2, _, body2 = channel.basic_get(q)
    assert m2 is not None
    assert m2.redelivered is True
    assert body2 == body == b"m0"
    assert m2.delivery_tag > m.delivery_tag
    channel.basic_nack(m2.delivery_tag, requeue=False)   # dropped
    assert channel.basic_get(q)[0] is None


def test_nack_requeue_with_consumer(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("nackc"))
    channel.queue_declare(q)
    seen = []

    def cb(ch, method, props, body):
        seen.append((method.redelivered, body))
        if len(seen) == 1:
            ch.basic_nack(method.delivery_tag, requeue=True)
        else:
            ch.basic_ack(method.delivery_tag)
    channel.basic_consume(q, cb)
    pub = connection.channel()
    pub.basic_publish("", q, b"again")
    assert pump_until(connection, lambda: len(seen) >= 2)
    assert seen[:2] == [(False, b"again"), (True, b"again")]


def test_basic_reject(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("rej"))
    channel.queue_declare(q)
    _fill(channel, q, 1)
    m, _, _ = channel.basic_get(q)
    channel.basic_reject(m.delivery_tag, requeue=True)
    m2, _, body = channel.basic_get(q)
    assert m2.redelivered and body == b"m0"
    channel.basic_reject(m2.delivery_tag, requeue=False)
    assert channel.basic_get(q)[0] is None


def test_ack_multiple(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("multi"))
    channel.queue_declare(q)
    _fill(channel, q, 5)
    tags = [channel.basic_get(q)[0].delivery_tag for _ in range(5)]
    assert tags == sorted(tags)
    channel.basic_ack(tags[2], multiple=True)
    channel.close()
    # 2 un-acked messages go back
    assert pump_until(connection, lambda: message_count(connection, q) == 2)


def test_basic_get_ok_and_empty(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("get"))
    channel.queue_declare(q)
    _fill(channel, q, 3)
    m, props, body = channel.basic_get(q, auto_ack=True)
    assert body == b"m0"
    assert m.message_count == 2
    assert m.redelivered is False
    assert m.exchange == ""
    assert m.routing_key == q
    assert m.delivery_tag == 1
    m, _, body = channel.basic_get(q, auto_ack=True)
    assert (body, m.message_count, m.delivery_tag) == (b"m1", 1, 2)
    m, _, body = channel.basic_get(q, auto_ack=True)
    assert (body, m.message_count) == (b"m2", 0)
    assert channel.basic_get(q, auto_ack=True) == (None, None, None)


# ------------------------------------------------------------------ RPC
def test_rpc_reply_to_correlation_id(broker, cleanup, uniq):
    rpc_q = cleanup.queue(uniq("rpc"))
    server_conn = broker.connect()
    client_conn = broker.connect()
    stop = threading.Event()
    ready = threading.Event()
    errors = []
    try:
        sch = server_conn.channel()
        sch.queue_declare(rpc_q)
        sch.basic_qos(prefetch_count=1)

        def on_request(ch, method, props, body):
            ch.basic_publish("", props.reply_to, body.upper(),
                             pika.BasicProperties(correlation_id=props.correlation_id))
            ch.basic_ack(method.delivery_tag)

        sch.basic_consume(rpc_q, on_request)

        def serve():
            try:
                ready.set()
                while not stop.is_set():
                    server_conn.process_data_events(time_limit=0.05)
            except Exception as e:  # pragma: no cover
                errors.append(e)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        ready.wait(5)

        cch = client_conn.channel()
        reply_q = cch.queue_declare("", exclusive=True).method.queue
        assert reply_q.startswith("amq.gen-")
        responses = {}
        cch.basic_consume(reply_q,
                          lambda ch, m, p, b: responses.__setitem__(p.correlation_id, b),
                          auto_ack=True)
        requests = {str(uuid.uuid4()): f"req-{i}".encode() for i in range(5)}
        for corr, body in requests.items():
            cch.basic_publish("", rpc_q, body,
                              pika.BasicProperties(reply_to=reply_q, correlation_id=corr))
        assert pump_until(client_conn, lambda: len(responses) == len(requests), timeout=10)
        assert responses == {c: b.upper() for c, b in requests.items()}
    finally:
        stop.set()
        t.join(5)
        server_conn.close()
        client_conn.close()
    assert not errors


def test_direct_reply_to(connection, cleanup, uniq):
    rpc_q = cleanup.queue(uniq("drt"))
    srv = connection.channel()
    srv.queue_declare(rpc_q)
    cli = connection.channel()
    replies = []
    cli.basic_consume("amq.rabbitmq.reply-to",
                      lambda ch, m, p, b: replies.append((p.correlation_id, b)),
                      auto_ack=True)
    cli.basic_publish("", rpc_q, b"ping",
                      pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                           correlation_id="c1"))
    m = None
    assert pump_until(connection, lambda: srv.queue_declare(rpc_q, passive=True)
                      .method.message_count == 1)
    m, props, body = srv.basic_get(rpc_q, auto_ack=True)
    assert props.reply_to.startswith("amq.rabbitmq.reply-to.")
    srv.basic_publish("", props.reply_to, b"pong",
                      pika.BasicProperties(correlation_id=props.correlation_id))
    assert pump_until(connection, lambda: replies)
    assert replies == [("c1", b"pong")]


# ------------------------------------------------------------------ confirms
def test_publisher_confirms_many(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("confirm"))
    channel.queue_declare(q)
    channel.confirm_delivery()
    n = 300
    for i in range(n):
        # BlockingChannel waits for each basic.ack; a nack would raise NackError
        channel.basic_publish("", q, str(i).encode())
    assert message_count(connection, q) == n
    assert drain(channel, q) == [str(i).encode() for i in range(n)]


def test_confirm_select_ok_and_delivery_tags(broker, cleanup, uniq):
    """Use the async channel API to observe the confirm delivery tags."""
    q = cleanup.queue(uniq("conftags"))
    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        acks = []
        impl = ch._impl  # pika's underlying async channel
        selected = []
        impl.confirm_delivery(ack_nack_callback=lambda f: acks.append(
            (type(f.method).__name__, f.method.delivery_tag, f.method.multiple)),
            callback=lambda f: selected.append(f))
        assert pump_until(conn, lambda: selected)
        for i in range(10):
            impl.basic_publish("", q, b"x")
        assert pump_until(conn, lambda: sum(1 for a in acks) > 0 and
                          max(a[1] for a in acks) == 10)
        assert all(a[0] == "Ack" for a in acks)
        # Tags are acked in order, possibly with multiple=True.
        covered = set()
        last = 0
        for _, tag, multiple in acks:
            assert tag > last
            covered |= set(range(last + 1, tag + 1)) if multiple else {tag}
            last = tag
        assert covered == set(range(1, 11))
    finally:
        conn.close()


# ------------------------------------------------------------------ queue kinds
def test_server_named_queue(channel):
    ok = channel.queue_declare("", exclusive=True)
    assert ok.method.queue.startswith("amq.gen-")
    assert len(ok.method.queue) > len("amq.gen-")
    assert ok.method.message_count == 0
    assert ok.method.consumer_count == 0
    other = channel.queue_declare("", exclusive=True).method.queue
    assert other != ok.method.queue


def test_declare_ok_counts(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("counts"))
    ok = channel.queue_declare(q)
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == (q, 0, 0)
    _fill(channel, q, 3)
    ok = channel.queue_declare(q)
    assert (ok.method.message_count, ok.method.consumer_count) == (3, 0)
    cons = connection.channel()
    cons.basic_qos(prefetch_count=1)
    got = []
    cons.basic_consume(q, lambda ch, m, p, b: got.append(m.delivery_tag))
    assert pump_until(connection, lambda: got)
    ok = channel.queue_declare(q, passive=True)
    # 1 delivered-but-unacked, 2 ready
    assert (ok.method.message_count, ok.method.consumer_count) == (2, 1)
    cons2 = connection.channel()
    cons2.basic_qos(prefetch_count=1)
    cons2.basic_consume(q, lambda ch, m, p, b: None)
    connection.process_data_events(time_limit=0.1)
    ok = channel.queue_declare(q, passive=True)
    assert ok.method.consumer_count == 2
    assert ok.method.message_count == 1


def test_exclusive_queue(broker, connect, uniq):
    q = uniq("excl")
    owner = connect()
    och = owner.channel()
    och.queue_declare(q, exclusive=True)
    och.basic_publish("", q, b"mine")
    other = connect()
    expect_channel_error(
        lambda: other.channel().queue_declare(q), 405,
        prefix=f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'")
    expect_channel_error(
        lambda: other.channel().queue_declare(q, passive=True), 405,
        prefix=f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'")
    expect_channel_error(
        lambda: other.channel().basic_consume(q, lambda *a: None), 405,
        prefix=f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'")
    assert other.is_open
    # the owner can use it from another channel
    assert owner.channel().queue_declare(q, passive=True).method.message_count == 1
    owner.close()
    assert pump_until(other, lambda: not queue_exists(other, q), timeout=5)


def test_exclusive_consumer(connection, cleanup, uniq):
    q = cleanup.queue(uniq("exclcons"))
    a = connection.channel()
    a.queue_declare(q)
    a.basic_consume(q, lambda *x: None, exclusive=True)
    b = connection.channel()
    expect_channel_error(
        lambda: b.basic_consume(q, lambda *x: None), 403,
        text=f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")


def test_auto_delete_queue_deleted_after_last_consumer_cancels(connection, cleanup, uniq):
    q = cleanup.queue(uniq("autodel"))
    ch = connection.channel()
    ch.queue_declare(q, auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    ch2 = connection.channel()
    t2 = ch2.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    connection.process_data_events(time_limit=0.1)
    assert queue_exists(connection, q)  # one consumer left
    ch2.basic_cancel(t2)
    assert pump_until(connection, lambda: not queue_exists(connection, q), timeout=5)


def test_auto_delete_queue_without_consumers_survives(connection, cleanup, uniq):
    q = cleanup.queue(uniq("autodel2"))
    ch = connection.channel()
    ch.queue_declare(q, auto_delete=True)
    connection.process_data_events(time_limit=0.2)
    assert queue_exists(connection, q)


def test_auto_delete_exchange_deleted_after_last_unbind(connection, cleanup, uniq):
    x = cleanup.exchange(uniq("adx"))
    q = cleanup.queue(uniq("adxq"))
    ch = connection.channel()
    ch.exchange_declare(x, exchange_type="direct", auto_delete=True)
    ch.queue_declare(q)
    ch.queue_bind(q, x, routing_key="k")
    ch.queue_unbind(q, x, routing_key="k")

    def exists():
        c = connection.channel()
        try:
            c.exchange_declare(x, passive=True)
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            return False
        c.close()
        return True
    assert pump_until(connection, lambda: not exists(), timeout=5)


def test_queue_purge_returns_count(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("purge"))
    channel.queue_declare(q)
    _fill(channel, q, 7)
    assert channel.queue_purge(q).method.message_count == 7
    assert channel.queue_purge(q).method.message_count == 0
    assert channel.basic_get(q)[0] is None


def test_queue_delete_returns_count(channel, uniq):
    q = uniq("del")
    channel.queue_declare(q)
    _fill(channel, q, 4)
    assert channel.queue_delete(q).method.message_count == 4


# ------------------------------------------------------------------ tx
def test_transactions_rollback_and_commit(connection, cleanup, uniq):
    q = cleanup.queue(uniq("tx"))
    ch = connection.channel()
    ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    assert message_count(connection, q) == 0   # not visible before commit
    ch.tx_rollback()
    assert message_count(connection, q) == 0
    ch.basic_publish("", q, b"c")
    ch.basic_publish("", q, b"d")
    ch.tx_commit()
    assert message_count(connection, q) == 2
    assert drain(connection.channel(), q) == [b"c", b"d"]


def test_transactional_ack(connection, cleanup, uniq):
    q = cleanup.queue(uniq("txack"))
    ch = connection.channel()
    ch.queue_declare(q)
    _fill(connection.channel(), q, 1)
    ch.tx_select()
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()   # the ack is discarded, message still unacked
    ch.close()
    assert pump_until(connection, lambda: message_count(connection, q) == 1)


def test_tx_commit_without_select_is_406(connection, channel):
    expect_channel_error(channel.tx_commit, 406,
                         text="PRECONDITION_FAILED - channel is not transactional")


def test_confirm_after_tx_is_406(channel):
    channel.tx_select()
    expect_channel_error(channel.confirm_delivery, 406,
                         text="PRECONDITION_FAILED - cannot switch from tx to confirm mode")


# ------------------------------------------------------------------ flow/recover/cancel/qos
def test_channel_flow(connection, channel):
    assert channel.flow(True) is True
    # RabbitMQ 3.x does not support flow(active=false) from clients: it
    # closes the whole *connection* with 540.
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        channel.flow(False)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == "NOT_IMPLEMENTED - active=false"
    assert not connection.is_open


def test_basic_recover_requeue(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("recover"))
    channel.queue_declare(q)
    _fill(channel, q, 2)
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append((m.redelivered, b)))
    assert pump_until(connection, lambda: len(got) == 2)
    assert got == [(False, b"m0"), (False, b"m1")]
    channel.basic_recover(requeue=True)
    assert pump_until(connection, lambda: len(got) == 4)
    assert sorted(got[2:]) == [(True, b"m0"), (True, b"m1")]


def test_consumer_cancel(connection, channel, cleanup, uniq):
    q = cleanup.queue(uniq("cancel"))
    channel.queue_declare(q)
    got = []
    tag = channel.basic_consume(q, lambda ch, m, p, b: got.append(b), auto_ack=True,
                                consumer_tag="my-tag-" + uniq("c"))
    assert tag.startswith("my-tag-")
    pub = connection.channel()
    pub.confirm_delivery()
    pub.basic_publish("", q, b"before")
    assert pump_until(connection, lambda: got == [b"before"])
    assert channel.queue_declare(q, passive=True).method.consumer_count == 1
    channel.basic_cancel(tag)
    assert channel.consumer_tags == []
    pub.basic_publish("", q, b"after")
    connection.process_data_events(time_limit=0.2)
    assert got == [b"before"]
    ok = channel.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (1, 0)


def test_broker_cancels_consumer_when_queue_deleted(connection, cleanup, uniq):
    q = cleanup.queue(uniq("bcancel"))
    ch = connection.channel()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    connection.channel().queue_delete(q)
    assert pump_until(connection, lambda: cancelled)
    assert cancelled == [tag]
    assert ch.is_open


def _count_deliveries(connection, ch, queues, wait=0.4):
    got = []
    for q in queues:
        ch.basic_consume(q, lambda c, m, p, b: got.append(b))
    connection.process_data_events(time_limit=wait)
    pump_until(connection, lambda: False, timeout=wait)
    return got


def test_basic_qos_global_vs_per_consumer(connection, cleanup, uniq):
    qa, qb = cleanup.queue(uniq("qa")), cleanup.queue(uniq("qb"))
    setup = connection.channel()
    for q in (qa, qb):
        setup.queue_declare(q)
        _fill(setup, q, 5)
    # per-consumer (global=False, the RabbitMQ interpretation): 2 each
    ch = connection.channel()
    ch.basic_qos(prefetch_count=2, global_qos=False)
    assert len(_count_deliveries(connection, ch, [qa, qb])) == 4
    ch.close()   # requeues everything
    # global=True: shared by all consumers of the channel
    ch = connection.channel()
    ch.basic_qos(prefetch_count=2, global_qos=True)
    assert len(_count_deliveries(connection, ch, [qa, qb])) == 2
    ch.close()


def test_qos_prefetch_size_not_implemented(connection, channel):
    # RabbitMQ closes the whole connection (not just the channel) with 540.
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        channel.basic_qos(prefetch_size=1000)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1000)"
    assert not connection.is_open


# ------------------------------------------------------------------ heartbeat
def test_heartbeat_negotiation_keeps_idle_connection_open(broker):
    conn = broker.connect(heartbeat=2)
    try:
        assert conn._impl.params.heartbeat == 2
        ch = conn.channel()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.25)
        assert conn.is_open
        assert ch.is_open
        ch.queue_declare("", exclusive=True)
    finally:
        conn.close()
