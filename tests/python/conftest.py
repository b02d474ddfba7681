"""Shared fixtures for the differential AMQP 0-9-1 test suite.

The suite is written against RabbitMQ 3.10 (which defines correct behaviour)
and is run against warren.

* If ``AMQP_URL`` is set (e.g. ``amqp://guest:guest@127.0.0.1:5672/%2F``) the
  tests talk to that broker.
* Otherwise the warren binary (``WARREN_BIN``, default
  ``<repo>/target/debug/warren``) is started once per session with
  ``serve --bind 127.0.0.1 --port 0 --data-dir <tmpdir>``; the port is parsed
  from the ``listening on 127.0.0.1:PORT`` line it prints on stderr.

Every test uses unique queue / exchange names (see ``uniq``) because other
people may use the same broker concurrently.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass

import pika
import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
STARTUP_TIMEOUT = 20.0


@dataclass
class Broker:
    host: str
    port: int
    vhost: str = "/"
    username: str = "guest"
    password: str = "guest"
    is_warren: bool = False
    log_path: str = ""

    def params(self, **kw):
        kw.setdefault("blocked_connection_timeout", 10)
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("connection_attempts", 3)
        kw.setdefault("retry_delay", 0.5)
        return pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.username, self.password),
            **kw,
        )

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def log_tail(self, n=60):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "r", errors="replace") as f:
            return "".join(deque(f, maxlen=n))


class _WarrenProcess:
    def __init__(self, binary, extra_args=(), data_dir=None):
        self.tmpdir = tempfile.mkdtemp(prefix="warren-pytest-")
        # A given data_dir (kept by the caller) lets a test restart warren
        # on the same durable state.
        self.data_dir = data_dir or os.path.join(self.tmpdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.tmpdir, "warren.log")
        self._log = open(self.log_path, "w", buffering=1)
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1", "--port", "0",
             "--data-dir", self.data_dir,
             # 15672 is RabbitMQ's too: tests that want the API pass a port.
             *([] if "--management-port" in extra_args else ["--management-port", "0"]),
             *([] if "--prometheus-port" in extra_args else ["--prometheus-port", "0"]),
             # Likewise the HTTPS ports (15671, 15691) a TLS certificate opens.
             *([] if "--management-tls-port" in extra_args else ["--management-tls-port", "0"]),
             *([] if "--prometheus-tls-port" in extra_args else ["--prometheus-tls-port", "0"]),
             *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.PIPE,
        )
        self.port = None
        self._port_found = threading.Event()
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self):
        # Read stderr line by line for the whole life of the process: parse the
        # port from the first "listening on" line, copy everything to the log.
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            try:
                self._log.write(line)
            except ValueError:  # log closed at teardown
                pass
            if self.port is None:
                m = LISTEN_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._port_found.set()
        self._port_found.set()  # EOF: unblock the waiter

    def wait_port(self, timeout):
        self._port_found.wait(timeout)
        if self.port is None:
            rc = self.proc.poll()
            self.stop()
            tail = open(self.log_path, errors="replace").read()[-4000:]
            raise RuntimeError(
                f"warren did not report 'listening on 127.0.0.1:PORT' within "
                f"{timeout}s (exit code {rc}); log:\n{tail}")
        return self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._drainer.join(timeout=5)
        try:
            self._log.close()
        except Exception:
            pass


_BROKER = None


def warren_binary():
    """The warren binary under test (``WARREN_BIN``, default target/debug)."""
    binary = os.environ.get("WARREN_BIN",
                            os.path.join(REPO_ROOT, "target", "debug", "warren"))
    if not os.path.isabs(binary):
        binary = os.path.join(REPO_ROOT, binary)
    return binary


@pytest.fixture(scope="session")
def broker():
    global _BROKER
    url = os.environ.get("AMQP_URL")
    if url:
        u = urllib.parse.urlparse(url)
        vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
        b = Broker(host=u.hostname or "127.0.0.1", port=u.port or 5672,
                   vhost=vhost,
                   username=urllib.parse.unquote(u.username or "guest"),
                   password=urllib.parse.unquote(u.password or "guest"))
        _BROKER = b
        yield b
        _BROKER = None
        return

    binary = warren_binary()
    if not os.path.exists(binary):
        pytest.exit(f"warren binary not found at {binary}; build it or set "
                    f"AMQP_URL", returncode=3)
    wp = _WarrenProcess(binary)
    try:
        port = wp.wait_port(STARTUP_TIMEOUT)
        b = Broker(host="127.0.0.1", port=port, is_warren=True,
                   log_path=wp.log_path)
        _BROKER = b
        yield b
    finally:
        _BROKER = None
        wp.stop()
        if os.environ.get("WARREN_KEEP_TMP"):
            print(f"warren tmpdir kept: {wp.tmpdir}", file=sys.stderr)
        else:
            shutil.rmtree(wp.tmpdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and _BROKER is not None and _BROKER.is_warren:
        tail = _BROKER.log_tail()
        if tail:
            rep.sections.append(("warren log (tail)", tail))


@pytest.fixture
def uniq():
    """Return a function producing unique names: uniq('q') -> 'q-<hex>'."""
    tag = uuid.uuid4().hex[:12]

    def make(prefix="t"):
        return f"pytest.{prefix}.{tag}.{uuid.uuid4().hex[:8]}"
    return make


class Cleanup:
    """Records queues/exchanges to delete at test end on a fresh connection."""

    def __init__(self, broker):
        self.broker = broker
        self.queues = []
        self.exchanges = []

    def queue(self, name):
        self.queues.append(name)
        return name

    def exchange(self, name):
        self.exchanges.append(name)
        return name

    def run(self):
        if not self.queues and not self.exchanges:
            return
        try:
            conn = self.broker.connect()
        except Exception:
            return
        try:
            for kind, names in (("q", self.queues), ("x", self.exchanges)):
                for n in names:
                    try:
                        ch = conn.channel()
                        if kind == "q":
                            ch.queue_delete(n)
                        else:
                            ch.exchange_delete(n)
                        ch.close()
                    except Exception:
                        pass
        finally:
            try:
                conn.close()
            except Exception:
                pass


@pytest.fixture
def cleanup(broker):
    c = Cleanup(broker)
    yield c
    c.run()


class Connections:
    """Factory for extra connections, all closed at test end."""

    def __init__(self, broker):
        self.broker = broker
        self.conns = []

    def __call__(self, **kw):
        c = self.broker.connect(**kw)
        self.conns.append(c)
        return c

    def close_all(self):
        for c in self.conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass


@pytest.fixture
def connect(broker):
    f = Connections(broker)
    yield f
    f.close_all()


@pytest.fixture
def connection(connect):
    return connect()


@pytest.fixture
def channel(connection):
    ch = connection.channel()
    yield ch


def wait_for(pred, timeout=5.0, conn=None, interval=0.05):
    """Poll pred() until true; pump conn's I/O while waiting if given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if conn is not None:
            conn.process_data_events(time_limit=interval)
        else:
            time.sleep(interval)
    return pred()
