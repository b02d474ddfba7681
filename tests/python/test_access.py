"""Users, vhosts, permissions, topic permissions and limits through pika,
each operation allowed and refused with RabbitMQ 3.10's codes and texts.

Against RabbitMQ (``AMQP_URL`` set) the tenant is created with rabbitmqctl
(``RABBITMQCTL`` must name it, e.g. ``/usr/sbin/rabbitmqctl``; otherwise
these tests are skipped) and deleted afterwards. Against warren a second
warren process is started with a bootstrap file (``--definitions``) doing
the same, on its own data dir, so the restart test can reopen it.
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pika
import pytest
from pika.exceptions import (ChannelClosedByBroker, ConnectionClosedByBroker,
                             ProbableAccessDeniedError,
                             ProbableAuthenticationError)

from conftest import STARTUP_TIMEOUT, Broker, _WarrenProcess, warren_binary

TAG = uuid.uuid4().hex[:8]
VHOST = f"pytest.access.{TAG}"
LIMITED_VHOST = f"pytest.limited.{TAG}"
USER = f"pytest.alice.{TAG}"
LIMITED_USER = f"pytest.bob.{TAG}"
PASSWORD = "s3cret"

PERMS = (r"^(ok|amq\.gen.*)", r"^(ok|amq\.topic)", r"^(ok|amq\.topic)")
TOPIC = ("amq.topic", r"^{username}\.", r"^r\.")

# rabbitmqctl commands; the warren bootstrap file takes the same ones.
SETUP = [
    ["add_vhost", VHOST],
    ["add_vhost", LIMITED_VHOST],
    ["add_user", USER, PASSWORD],
    ["add_user", LIMITED_USER, PASSWORD],
    ["set_permissions", "-p", VHOST, USER, *PERMS],
    ["set_topic_permissions", "-p", VHOST, USER, *TOPIC],
    ["set_permissions", "-p", LIMITED_VHOST, LIMITED_USER, ".*", ".*", ".*"],
    ["set_vhost_limits", "-p", LIMITED_VHOST,
     '{"max-connections": 2, "max-queues": 1}'],
    ["set_user_limits", LIMITED_USER, '{"max-channels": 2}'],
]


def bootstrap_line(cmd):
    """A rabbitmqctl command as a warren bootstrap line."""
    name, *args = cmd
    if "-p" in args:
        i = args.index("-p")
        vhost = args[i + 1]
        args = [vhost] + args[:i] + args[i + 2:]
    if name in ("set_vhost_limits", "set_user_limits"):
        import json
        target, limits = args
        args = [target] + [f"{k}={v}" for k, v in json.loads(limits).items()]
    return " ".join([name, *args])


class Tenant:
    def __init__(self, host, port, warren=None, data_dir=None, defs=None):
        self.host, self.port = host, port
        self.warren, self.data_dir, self.defs = warren, data_dir, defs

    def params(self, user=USER, password=PASSWORD, vhost=VHOST):
        return pika.ConnectionParameters(
            host=self.host, port=self.port, virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password),
            connection_attempts=1, socket_timeout=10)

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))


@pytest.fixture(scope="module")
def tenant(broker):
    if not broker.is_warren:
        ctl = os.environ.get("RABBITMQCTL")
        if not ctl:
            pytest.skip("RABBITMQCTL not set: cannot create users on RabbitMQ")
        for cmd in SETUP:
            subprocess.run([ctl, *cmd], check=True, capture_output=True)
        try:
            yield Tenant(broker.host, broker.port)
        finally:
            for cmd in (["delete_vhost", VHOST], ["delete_vhost", LIMITED_VHOST],
                        ["delete_user", USER], ["delete_user", LIMITED_USER]):
                subprocess.run([ctl, *cmd], capture_output=True)
        return
    tmp = tempfile.mkdtemp(prefix="warren-access-")
    data_dir = os.path.join(tmp, "data")
    defs = os.path.join(tmp, "bootstrap.txt")
    with open(defs, "w") as f:
        f.write("\n".join(bootstrap_line(c) for c in SETUP) + "\n")
    wp = _WarrenProcess(warren_binary(), ["--definitions", defs], data_dir=data_dir)
    try:
        port = wp.wait_port(STARTUP_TIMEOUT)
        t = Tenant("127.0.0.1", port, warren=wp, data_dir=data_dir, defs=defs)
        yield t
    finally:
        t_wp = getattr(locals().get("t"), "warren", wp)
        t_wp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def refused(kind, name, vhost=VHOST, user=USER):
    return (f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' "
            f"refused for user '{user}'")


def topic_refused(key, exchange="amq.topic"):
    return (f"ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' "
            f"in vhost '{VHOST}' refused for user '{USER}'")


def on_channel(tenant, fn):
    """Runs fn(channel) on a fresh connection; returns None or (code, text)."""
    c = tenant.connect()
    try:
        ch = c.channel()
        try:
            fn(ch)
        except ChannelClosedByBroker as e:
            return (e.reply_code, e.reply_text)
        return None
    finally:
        if c.is_open:
            c.close()


def confirm_publish(exchange, key):
    def go(ch):
        ch.confirm_delivery()
        ch.basic_publish(exchange, key, b"m")
    return go


CASES = [
    ("queue.declare refused", lambda ch: ch.queue_declare("nope"),
     (403, refused("queue", "nope"))),
    ("queue.declare allowed", lambda ch: ch.queue_declare("ok"), None),
    ("server-named queue allowed", lambda ch: ch.queue_declare(""), None),
    ("passive declare: no check in 3.10",
     lambda ch: ch.queue_declare("nope", passive=True),
     (404, f"NOT_FOUND - no queue 'nope' in vhost '{VHOST}'")),
    ("exchange.declare refused", lambda ch: ch.exchange_declare("nope"),
     (403, refused("exchange", "nope"))),
    ("exchange.delete refused", lambda ch: ch.exchange_delete("nope"),
     (403, refused("exchange", "nope"))),
    ("queue.delete refused", lambda ch: ch.queue_delete("nope"),
     (403, refused("queue", "nope"))),
    ("dead-letter exchange needs write",
     lambda ch: ch.queue_declare("ok.dlx", arguments={"x-dead-letter-exchange": "zz"}),
     (403, refused("exchange", "zz"))),
    ("basic.get refused", lambda ch: ch.basic_get("nope"),
     (403, refused("queue", "nope"))),
    ("basic.consume refused",
     lambda ch: ch.basic_consume("nope", lambda *a: None),
     (403, refused("queue", "nope"))),
    ("queue.purge refused", lambda ch: ch.queue_purge("nope"),
     (403, refused("queue", "nope"))),
    ("bind needs write on the queue",
     lambda ch: ch.queue_bind("nope", "amq.topic", "r.x"),
     (403, refused("queue", "nope"))),
    ("bind needs read on the exchange",
     lambda ch: ch.queue_bind("ok", "amq.direct", "k"),
     (403, refused("exchange", "amq.direct"))),
    ("bind checks topic read", lambda ch: ch.queue_bind("ok", "amq.topic", "x"),
     (403, topic_refused("x"))),
    ("bind allowed", lambda ch: ch.queue_bind("ok", "amq.topic", "r.x"), None),
    ("publish to the default exchange refused", confirm_publish("", "ok"),
     (403, refused("exchange", "amq.default"))),
    ("publish checks topic write", confirm_publish("amq.topic", "x.y"),
     (403, topic_refused("x.y"))),
    ("publish allowed", confirm_publish("amq.topic", f"{USER}.y"), None),
    ("publish to a missing exchange: permission first",
     confirm_publish("missing", "k"), (403, refused("exchange", "missing"))),
]


@pytest.mark.parametrize("name,fn,expect", CASES, ids=[c[0] for c in CASES])
def test_permission_matrix(tenant, name, fn, expect):
    if expect is None or "bind" in name or "consume" in name or "get" in name \
            or "purge" in name:
        # The queue the allowed operations use.
        assert on_channel(tenant, lambda ch: ch.queue_declare("ok")) is None
    assert on_channel(tenant, fn) == expect


def test_vhost_without_permission_and_bad_password(tenant):
    with pytest.raises(ProbableAccessDeniedError) as ei:
        tenant.connect(vhost="/")
    assert f"NOT_ALLOWED - access to vhost '/' refused for user '{USER}'" in str(ei.value)
    with pytest.raises(ProbableAuthenticationError) as ei:
        tenant.connect(password="wrong")
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" \
        in str(ei.value)


def test_limits(tenant):
    kw = dict(user=LIMITED_USER, vhost=LIMITED_VHOST)
    a = tenant.connect(**kw)
    b = tenant.connect(**kw)
    try:
        with pytest.raises(ProbableAccessDeniedError) as ei:
            tenant.connect(**kw)
        assert (f"NOT_ALLOWED - access to vhost '{LIMITED_VHOST}' refused for user "
                f"'{LIMITED_USER}': connection limit (2) is reached") in str(ei.value)
        ch = a.channel()
        ch.queue_declare("q1", auto_delete=True)
        with pytest.raises(ChannelClosedByBroker) as ei:
            ch.queue_declare("q2")
        assert ei.value.reply_code == 406
        assert ei.value.reply_text == (
            f"PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost "
            f"'{LIMITED_VHOST}' (1) is reached")
        a.channel()
        a.channel()
        # The user's channel limit counts over both connections.
        with pytest.raises(ConnectionClosedByBroker) as ei:
            b.channel()
        assert ei.value.reply_code == 530
        assert ei.value.reply_text == (
            f"NOT_ALLOWED - number of channels opened for user '{LIMITED_USER}' has "
            f"reached the maximum allowed user limit of (2)")
    finally:
        for c in (a, b):
            if c.is_open:
                c.close()


def test_update_secret_is_accepted_for_plain(tenant):
    # RabbitMQ 3.10's internal backend accepts any new secret for PLAIN and
    # the connection carries on.
    c = tenant.connect()
    try:
        c.update_secret("anything", "rotation")
        assert c.channel().is_open
    finally:
        c.close()


def test_restart_keeps_users_and_permissions(tenant, broker):
    if not broker.is_warren:
        pytest.skip("restarts only the warren under test")
    tenant.warren.stop()
    # No bootstrap file this time: everything comes from the data dir.
    wp = _WarrenProcess(warren_binary(), data_dir=tenant.data_dir)
    tenant.warren = wp
    tenant.port = wp.wait_port(STARTUP_TIMEOUT)
    assert on_channel(tenant, lambda ch: ch.queue_declare("nope")) == \
        (403, refused("queue", "nope"))
    assert on_channel(tenant, confirm_publish("amq.topic", "x.y")) == \
        (403, topic_refused("x.y"))
    with pytest.raises(ProbableAccessDeniedError):
        tenant.connect(vhost="/")
    guest = Broker(host="127.0.0.1", port=tenant.port)
    guest.connect().close()
