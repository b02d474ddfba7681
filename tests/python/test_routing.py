"""Exchange routing: fanout, direct, topic, headers, default exchange, mandatory."""

import pytest

from helpers import drain, pump_until


def _setup(ch, cleanup, uniq, xtype, bindings):
    """Declare exchange of xtype and one queue per binding key/args.

    bindings: list of (queue_label, routing_key, arguments)
    Returns (exchange, {label: queue_name}).
    """
    x = cleanup.exchange(uniq(xtype))
    ch.exchange_declare(x, exchange_type=xtype, auto_delete=False)
    queues = {}
    for label, key, args in bindings:
        if label not in queues:
            queues[label] = cleanup.queue(uniq("q-" + label))
            ch.queue_declare(queues[label])
        ch.queue_bind(queues[label], x, routing_key=key, arguments=args)
    return x, queues


def test_fanout_to_several_queues(channel, cleanup, uniq):
    x, qs = _setup(channel, cleanup, uniq, "fanout",
                   [("a", "", None), ("b", "ignored", None), ("c", "x.y", None)])
    channel.confirm_delivery()
    for i in range(3):
        channel.basic_publish(x, f"whatever.{i}", f"m{i}".encode())
    for label, q in qs.items():
        assert drain(channel, q) == [b"m0", b"m1", b"m2"], label


def test_direct_routing(channel, cleanup, uniq):
    x, qs = _setup(channel, cleanup, uniq, "direct", [
        ("err", "error", None),
        ("all", "error", None), ("all", "info", None), ("all", "warning", None),
    ])
    channel.confirm_delivery()
    for key in ["info", "error", "debug", "warning", "error", "Error"]:
        channel.basic_publish(x, key, key.encode())
    assert drain(channel, qs["err"]) == [b"error", b"error"]
    assert drain(channel, qs["all"]) == [b"info", b"error", b"warning", b"error"]


def test_direct_double_binding_delivers_once(channel, cleanup, uniq):
    x, qs = _setup(channel, cleanup, uniq, "direct",
                   [("a", "k", None), ("a", "k", None)])
    x2 = cleanup.exchange(uniq("fan"))
    channel.exchange_declare(x2, exchange_type="fanout")
    channel.queue_bind(qs["a"], x2, routing_key="k1")
    channel.queue_bind(qs["a"], x2, routing_key="k2")
    channel.confirm_delivery()
    channel.basic_publish(x, "k", b"once")
    channel.basic_publish(x2, "zzz", b"once-fanout")
    assert drain(channel, qs["a"]) == [b"once", b"once-fanout"]


def test_default_exchange_routes_by_queue_name(channel, cleanup, uniq):
    q = cleanup.queue(uniq("dflt"))
    channel.queue_declare(q)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"hello")
    assert drain(channel, q) == [b"hello"]


# Patterns and keys; expectations are what RabbitMQ 3.10 does.
TOPIC_PATTERNS = {
    "p_star_orange_star": "*.orange.*",
    "p_star_star_rabbit": "*.*.rabbit",
    "p_lazy_hash": "lazy.#",
    "p_hash": "#",
    "p_a_hash_b": "a.#.b",
    "p_a_star_b": "a.*.b",
    "p_star": "*",
    "p_hash_x": "#.x",
    "p_a_hash": "a.#",
    "p_exact": "a.b",
    "p_empty": "",
}

TOPIC_EXPECT = {
    "quick.orange.rabbit": {"p_star_orange_star", "p_star_star_rabbit", "p_hash"},
    "lazy.orange.elephant": {"p_star_orange_star", "p_lazy_hash", "p_hash"},
    "quick.orange.fox": {"p_star_orange_star", "p_hash"},
    "lazy.brown.fox": {"p_lazy_hash", "p_hash"},
    "lazy.pink.rabbit": {"p_star_star_rabbit", "p_lazy_hash", "p_hash"},
    "quick.brown.fox": {"p_hash"},
    "orange": {"p_hash", "p_star"},
    "quick.orange.male.rabbit": {"p_hash"},
    "lazy": {"p_lazy_hash", "p_hash", "p_star"},          # '#' matches zero words
    "lazy.orange.male.rabbit": {"p_lazy_hash", "p_hash"},
    "a.b": {"p_a_hash_b", "p_hash", "p_a_hash", "p_exact"},  # a.#.b with zero words
    "a.x.b": {"p_a_hash_b", "p_a_star_b", "p_hash", "p_a_hash"},
    "a.x.y.b": {"p_a_hash_b", "p_hash", "p_a_hash"},
    "a..b": {"p_a_hash_b", "p_a_star_b", "p_hash", "p_a_hash"},  # empty word
    "x": {"p_hash", "p_hash_x", "p_star"},
    "y.x": {"p_hash", "p_hash_x"},
    ".x": {"p_hash", "p_hash_x"},
    "a": {"p_a_hash", "p_hash", "p_star"},
    "": {"p_hash", "p_empty"},  # RabbitMQ: "*" does NOT match the empty key
    "a.": {"p_a_hash", "p_hash"},
}


def test_topic_routing(channel, cleanup, uniq):
    x, qs = _setup(channel, cleanup, uniq, "topic",
                   [(label, pat, None) for label, pat in TOPIC_PATTERNS.items()])
    channel.confirm_delivery()
    for key in TOPIC_EXPECT:
        channel.basic_publish(x, key, key.encode() or b"<empty>")
    got = {label: set(drain(channel, q)) for label, q in qs.items()}
    mismatches = []
    for key, expected in TOPIC_EXPECT.items():
        body = key.encode() or b"<empty>"
        actual = {label for label, bodies in got.items() if body in bodies}
        if actual != expected:
            mismatches.append((key, sorted(actual), sorted(expected)))
    assert not mismatches, mismatches


def test_topic_unbind(channel, cleanup, uniq):
    x, qs = _setup(channel, cleanup, uniq, "topic", [("a", "s.*", None)])
    channel.confirm_delivery()
    channel.basic_publish(x, "s.1", b"1")
    channel.queue_unbind(qs["a"], x, routing_key="s.*")
    channel.basic_publish(x, "s.2", b"2")
    assert drain(channel, qs["a"]) == [b"1"]


HEADERS_BINDINGS = [
    ("all", "", {"x-match": "all", "format": "pdf", "type": "report"}),
    ("any", "", {"x-match": "any", "format": "pdf", "type": "report"}),
    ("default", "", {"format": "pdf", "type": "report"}),  # default is all
    ("allx", "", {"x-match": "all", "format": "pdf", "x-tag": "t1"}),
    ("anyx", "", {"x-match": "any", "x-tag": "t1"}),
    ("all_with_x", "", {"x-match": "all-with-x", "format": "pdf", "x-tag": "t1"}),
    ("any_with_x", "", {"x-match": "any-with-x", "x-tag": "t1"}),
    ("int", "", {"x-match": "all", "n": 42}),
]

HEADERS_EXPECT = [
    # (message headers, expected labels)
    ({"format": "pdf", "type": "report"},
     {"all", "any", "default", "allx"}),
    ({"format": "pdf", "type": "log"}, {"any", "allx"}),
    ({"format": "zip", "type": "report"}, {"any"}),
    ({"format": "pdf", "type": "report", "extra": 1},
     {"all", "any", "default", "allx"}),
    ({"format": "pdf", "x-tag": "t1"}, {"any", "allx", "all_with_x", "any_with_x"}),
    ({"x-tag": "t1"}, {"any_with_x"}),
    ({"n": 42}, {"int"}),
    ({"n": "42"}, set()),
    ({}, set()),
    (None, set()),
]


def test_headers_routing(channel, cleanup, uniq):
    x, qs = _setup(channel, cleanup, uniq, "headers", HEADERS_BINDINGS)
    channel.confirm_delivery()
    import pika
    for i, (hdrs, _) in enumerate(HEADERS_EXPECT):
        channel.basic_publish(x, "ignored", str(i).encode(),
                              pika.BasicProperties(headers=hdrs))
    got = {label: set(drain(channel, q)) for label, q in qs.items()}
    mismatches = []
    for i, (hdrs, expected) in enumerate(HEADERS_EXPECT):
        actual = {label for label, b in got.items() if str(i).encode() in b}
        if actual != expected:
            mismatches.append((hdrs, sorted(actual), sorted(expected)))
    assert not mismatches, mismatches


def test_exchange_to_exchange_binding(channel, cleanup, uniq):
    src = cleanup.exchange(uniq("src"))
    dst = cleanup.exchange(uniq("dst"))
    channel.exchange_declare(src, exchange_type="topic")
    channel.exchange_declare(dst, exchange_type="direct")
    q = cleanup.queue(uniq("e2e"))
    channel.queue_declare(q)
    channel.queue_bind(q, dst, routing_key="a.b")
    channel.exchange_bind(destination=dst, source=src, routing_key="a.*")
    channel.confirm_delivery()
    channel.basic_publish(src, "a.b", b"yes")
    channel.basic_publish(src, "a.c", b"no")  # passes src, but dst has no a.c
    channel.basic_publish(src, "b.b", b"no2")
    assert drain(channel, q) == [b"yes"]


def test_mandatory_unroutable_returns_312(connection, channel, cleanup, uniq):
    x = cleanup.exchange(uniq("mand"))
    channel.exchange_declare(x, exchange_type="direct")
    returned = []
    channel.add_on_return_callback(
        lambda ch, method, props, body: returned.append((method, props, body)))
    import pika
    channel.basic_publish(x, "nobody-home", b"boomerang",
                          pika.BasicProperties(message_id="m-1", content_type="text/plain"),
                          mandatory=True)
    assert pump_until(connection, lambda: returned, timeout=5)
    method, props, body = returned[0]
    assert method.reply_code == 312
    assert method.reply_text == "NO_ROUTE"
    assert method.exchange == x
    assert method.routing_key == "nobody-home"
    assert body == b"boomerang"
    assert props.message_id == "m-1"
    assert props.content_type == "text/plain"


def test_mandatory_with_confirms_raises_unroutable(channel, cleanup, uniq):
    import pika.exceptions
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        channel.basic_publish("", uniq("nonexistent-queue"), b"x", mandatory=True)
    msgs = ei.value.messages
    assert len(msgs) == 1
    assert msgs[0].method.reply_code == 312
    assert msgs[0].body == b"x"


def test_non_mandatory_unroutable_is_dropped_silently(connection, channel, uniq):
    returned = []
    channel.add_on_return_callback(lambda *a: returned.append(a))
    channel.confirm_delivery()
    channel.basic_publish("", uniq("nonexistent-queue"), b"x")  # acked, no error
    connection.process_data_events(time_limit=0.2)
    assert returned == []
    assert channel.is_open
