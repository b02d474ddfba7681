"""rabbitmqadmin v2 (the Rust CLI from crates.io, installed into ~/.cache/warren/tools/ by
scripts/install-test-deps.sh) driving warren's management HTTP API: users,
vhosts, permissions, queues, exchanges, bindings and definitions, checked
through the API and through pika.

A warren with its API on a free port is started for this module; with
AMQP_URL set (a RabbitMQ run) the API on 127.0.0.1:15672 is used instead.
WARREN_SKIP_RABBITMQADMIN=1 skips the module (the install step is skipped
the same way); otherwise a missing binary is a failure.
"""

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pika
import pytest

from conftest import REPO_ROOT, STARTUP_TIMEOUT, _WarrenProcess, warren_binary

ADMIN = os.environ.get("RABBITMQADMIN") or os.path.join(
    os.environ.get("RABBITMQADMIN_ROOT")
    or os.path.join(os.path.expanduser("~"), ".cache", "warren", "tools"),
    "bin", "rabbitmqadmin")

if os.environ.get("WARREN_SKIP_RABBITMQADMIN") == "1":
    pytest.skip("WARREN_SKIP_RABBITMQADMIN=1", allow_module_level=True)



def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The target: rabbitmqadmin's connection options and a JSON reader."""

    def __init__(self, amqp_port, http_port, is_warren):
        self.amqp_port = amqp_port
        self.http_port = http_port
        self.is_warren = is_warren

    def admin(self, *args, check=True):
        """Runs rabbitmqadmin against the target; returns its stdout."""
        cmd = [ADMIN, "--host", "127.0.0.1", "--port", str(self.http_port),
               "--username", "guest", "--password", "guest", "--non-interactive",
               *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, f"{args}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def get(self, path):
        """GET /api/PATH as guest: (status, JSON or None)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/api{path}")
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None

    def wait_for(self, path, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = self.get(path)
            except urllib.error.URLError as e:
                # The AMQP listener's log line can come before the API's
                # listener is up: refused until then.
                status, body = None, str(e.reason)
            if status == 200 and pred(body):
                return body
            assert time.monotonic() < deadline, f"{path}: {status} {body}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def api():
    if not os.path.exists(ADMIN):
        pytest.fail(f"{ADMIN} missing: run ./scripts/install-test-deps.sh")
    if os.environ.get("AMQP_URL"):
        yield Api(5672, 15672, False)
        return
    http_port = _free_port()
    wp = _WarrenProcess(warren_binary(), ["--management-port", str(http_port),
                                          "--collect-statistics-interval-ms", "100"])
    try:
        port = wp.wait_port(STARTUP_TIMEOUT)
        a = Api(port, http_port, True)
        a.wait_for("/overview", lambda _: True)
        yield a
    finally:
        wp.stop()


def _names(rows):
    return {r["name"] for r in rows}


def test_queues_exchanges_bindings(api, uniq):
    x, q = uniq("adm.x"), uniq("adm.q")
    api.admin("declare", "exchange", "--name", x, "--type", "topic")
    api.admin("declare", "queue", "--name", q, "--type", "classic", "--durable", "true")
    api.admin("declare", "binding", "--source", x, "--destination-type", "queue",
              "--destination", q, "--routing-key", "a.#")
    assert api.get(f"/exchanges/%2F/{x}")[1]["type"] == "topic"
    assert api.get(f"/queues/%2F/{q}")[1]["durable"] is True
    out = api.admin("list", "bindings").stdout
    assert x in out and q in out and "a.#" in out
    assert any(b["source"] == x and b["routing_key"] == "a.#"
               for b in api.get(f"/queues/%2F/{q}/bindings")[1])

    api.admin("publish", "message", "--exchange", x, "--routing-key", "a.b", "--payload", "hi")
    api.wait_for(f"/queues/%2F/{q}", lambda v: v.get("messages") == 1)
    assert q in api.admin("list", "queues").stdout
    api.admin("purge", "queue", "--name", q)
    api.wait_for(f"/queues/%2F/{q}", lambda v: v.get("messages") == 0)

    api.admin("delete", "binding", "--source", x, "--destination-type", "queue",
              "--destination", q, "--routing-key", "a.#")
    assert not any(b["source"] == x for b in api.get(f"/queues/%2F/{q}/bindings")[1])
    api.admin("delete", "queue", "--name", q)
    api.admin("delete", "exchange", "--name", x)
    assert api.get(f"/queues/%2F/{q}")[0] == 404
    assert api.get(f"/exchanges/%2F/{x}")[0] == 404
    # Deleting what is not there is an error unless --idempotently.
    assert api.admin("delete", "queue", "--name", q, check=False).returncode != 0
    api.admin("delete", "queue", "--name", q, "--idempotently")


def test_definitions_export_import(api, uniq, tmp_path):
    q = uniq("adm.defs")
    api.admin("declare", "queue", "--name", q, "--type", "classic", "--durable", "true")
    f = tmp_path / "defs.json"
    api.admin("definitions", "export", "--file", str(f))
    defs = json.loads(f.read_text())
    assert q in _names(defs["queues"])
    # Import only this queue back (the broker may be shared: a whole
    # export would re-create what others deleted meanwhile).
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"queues": [d for d in defs["queues"] if d["name"] == q]}))
    api.admin("delete", "queue", "--name", q)
    assert api.get(f"/queues/%2F/{q}")[0] == 404
    api.admin("definitions", "import", "--file", str(mine))
    assert api.get(f"/queues/%2F/{q}")[1]["durable"] is True
    api.admin("delete", "queue", "--name", q)


def test_users_vhosts_permissions(api, uniq):
    v, u = uniq("adm.vh"), uniq("adm.u")
    api.admin("declare", "vhost", "--name", v)
    api.admin("declare", "user", "--name", u, "--password", "s3cret", "--tags", "management")
    api.admin("declare", "permissions", "-V", v, "--username", u,
              "--configure", "^adm-", "--write", ".*", "--read", ".*")
    assert v in _names(api.get("/vhosts")[1])
    assert api.get(f"/users/{u}")[1]["tags"] == ["management"]
    assert u in api.admin("list", "users").stdout
    assert v in api.admin("list", "vhosts").stdout
    perms = api.get(f"/permissions/{v}/{u}")[1]
    assert (perms["configure"], perms["write"], perms["read"]) == ("^adm-", ".*", ".*")

    # The user logs in with that password, inside the permissions.
    params = pika.ConnectionParameters("127.0.0.1", api.amqp_port, v,
                                       pika.PlainCredentials(u, "s3cret"))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("adm-ok")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("not-allowed")
    assert e.value.reply_code == 403
    conn.close()

    api.admin("delete", "user", "--name", u)
    api.admin("delete", "vhost", "--name", v)
    assert api.get(f"/users/{u}")[0] == 404
    assert api.get(f"/vhosts/{v}")[0] == 404
