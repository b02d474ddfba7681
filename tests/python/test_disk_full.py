"""A full disk is a pause, not an outage; disk space is returned.

Each test mounts its own small tmpfs (64 MiB) as warren's data folder, so
the disk really fills. Mounting needs root (CI and the dev machines run as
root); elsewhere the tests are skipped with a message saying so. Runs only
against warren (it starts its own processes)."""

import errno
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pika
import pytest

from conftest import REPO_ROOT, STARTUP_TIMEOUT, Broker, _WarrenProcess

pytestmark = pytest.mark.skipif(bool(os.environ.get("AMQP_URL")),
                                reason="needs its own warren processes")

FS_SIZE = 64 << 20
BODY = 64 << 10
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def binary():
    b = os.environ.get("WARREN_BIN",
                       os.path.join(REPO_ROOT, "target", "debug", "warren"))
    return b if os.path.isabs(b) else os.path.join(REPO_ROOT, b)


@pytest.fixture
def small_fs():
    """A 64 MiB tmpfs mounted in a fresh temp dir (skipped if not allowed)."""
    mnt = tempfile.mkdtemp(prefix="warren-smallfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)


class Warren(_WarrenProcess):
    """A warren process whose data folder is `data_dir`."""

    def __init__(self, data_dir, *args):
        self.tmpdir = tempfile.mkdtemp(prefix="warren-diskfull-")
        os.makedirs(data_dir, exist_ok=True)
        conf = os.path.join(self.tmpdir, "warren.conf")
        with open(conf, "w") as f:
            # A small reserve and fast retries keep the test short.
            f.write("store_reserve_bytes = 2097152\nstore_retry_interval_ms = 100\n")
        self.log_path = os.path.join(self.tmpdir, "warren.log")
        self._log = open(self.log_path, "w", buffering=1)
        self.proc = subprocess.Popen(
            [binary(), "serve", "--bind", "127.0.0.1", "--port", "0",
             "--data-dir", data_dir, "--config", conf,
             "--management-port", "0", "--prometheus-port", "0", *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.PIPE)
        self.port = None
        self._port_found = threading.Event()
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        self.broker = Broker(host="127.0.0.1", port=self.wait_port(STARTUP_TIMEOUT),
                             is_warren=True, log_path=self.log_path)

    def log(self):
        return open(self.log_path, errors="replace").read()

    def close(self):
        self.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def fill(path):
    """Writes a filler file until the disk is full; returns its path."""
    name = os.path.join(path, "filler")
    chunk = b"\0" * (1 << 20)
    with open(name, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    # Smaller writes take the last partial MiB.
    with open(name, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return name


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def drain(ch, queue):
    """basic.get with ack until empty; returns the bodies' ids."""
    got = []
    while True:
        m, _, body = ch.basic_get(queue, auto_ack=False)
        if m is None:
            return got
        got.append(body[:16].rstrip(b" ").decode())
        ch.basic_ack(m.delivery_tag)


def body(tag):
    return tag.encode().ljust(16) + b"x" * (BODY - 16)


def test_alarm_fires_before_the_disk_fills(small_fs):
    """A flat-out persistent publisher with confirms is blocked while free
    space is still above zero: the check follows the bytes written, not
    only the clock."""
    data = os.path.join(small_fs, "data")
    # Free space after start is ~46 MiB (reserve and one arena segment);
    # a 30 MB limit leaves a margin of ~18 MB, written in well under a second.
    w = Warren(data, "--disk-free-limit-bytes", str(30_000_000))
    try:
        blocked = threading.Event()
        state = {"confirmed": 0, "nacked": 0, "min_free": free_bytes(small_fs),
                 "error": None}

        def publish():
            # basic_publish waits for its confirm, which a blocked
            # connection never gets: run it beside the test.
            try:
                conn = w.broker.connect(blocked_connection_timeout=None)
                conn.add_on_connection_blocked_callback(lambda *_: blocked.set())
                ch = conn.channel()
                ch.confirm_delivery()
                q = ch.queue_declare("flat-out", durable=True).method.queue
                while True:
                    try:
                        ch.basic_publish("", q, body(f"m{state['confirmed']}"), PERSISTENT)
                        state["confirmed"] += 1
                    except pika.exceptions.NackError:
                        state["nacked"] += 1
                        return
                    state["min_free"] = min(state["min_free"], free_bytes(small_fs))
            except Exception as e:  # reported by the test
                state["error"] = repr(e)

        t = threading.Thread(target=publish, daemon=True)
        t.start()
        # (pika runs the connection.blocked callback only between calls,
        # so the test reads the broker's log line instead.)
        alarmed = lambda: "resource alarm: low on disk" in w.log()
        paused = lambda: "store paused" in w.log()
        wait_for(lambda: alarmed() or paused() or state["nacked"] or state["error"], 30,
                 "the free-disk alarm")
        assert not paused(), "the disk filled up before the alarm"
        assert state["error"] is None, state["error"]
        assert state["nacked"] == 0, "a publish was nacked: the disk filled up"
        # Publishers are blocked: no confirm arrives any more.
        before = state["confirmed"]
        time.sleep(1)
        assert state["confirmed"] <= before + 1
        assert state["min_free"] > 0 and free_bytes(small_fs) > 0
        assert "store paused" not in w.log()
        confirmed = state["confirmed"]
        assert confirmed > 10
    finally:
        w.close()


def test_full_disk_pauses_and_recovers_by_itself(small_fs):
    """Limit 0 (no alarm), then the disk is filled: the store pauses
    (publishers blocked, nothing confirmed lost), a consumer draining the
    queue frees the space, and the store resumes without a restart; after a
    restart every confirmed, unconsumed message is there exactly once."""
    data = os.path.join(small_fs, "data")
    w = Warren(data, "--disk-free-limit-bytes", "0")
    try:
        setup = w.broker.connect()
        sch = setup.channel()
        sch.confirm_delivery()
        q = sch.queue_declare("full", durable=True).method.queue
        for i in range(200):
            sch.basic_publish("", q, body(f"a{i}"), PERSISTENT)
        setup.close()
        filler = fill(small_fs)

        blocked = threading.Event()
        state = {"confirmed": [], "nacked": [], "error": None, "after_resume": 0}
        resumed = threading.Event()
        stop = threading.Event()

        def publish():
            try:
                conn = w.broker.connect(blocked_connection_timeout=None)
                conn.add_on_connection_blocked_callback(lambda *_: blocked.set())
                ch = conn.channel()
                ch.confirm_delivery()
                i = 0
                while not stop.is_set():
                    tag = f"b{i}"
                    i += 1
                    try:
                        ch.basic_publish("", q, body(tag), PERSISTENT)
                        state["confirmed"].append(tag)
                        if resumed.is_set():
                            state["after_resume"] += 1
                    except pika.exceptions.NackError:
                        state["nacked"].append(tag)
                        time.sleep(0.05)
                conn.close()
            except Exception as e:  # reported by the main thread
                state["error"] = repr(e)

        t = threading.Thread(target=publish, daemon=True)
        t.start()
        wait_for(lambda: "store paused" in w.log(), 20, "the store to pause")
        wait_for(lambda: "resource alarm details: disk full" in w.log(), 10,
                 "the alarm blocking publishers")
        assert "store failed" not in w.log()

        # Consumers carry on while paused: drain everything, which settles
        # the store's segment and gives its space back.
        cons = w.broker.connect()
        cch = cons.channel()
        consumed = drain(cch, q)
        assert len(consumed) >= 200, len(consumed)
        wait_for(lambda: "store resumed" in w.log(), 20, "the store to resume")
        resumed.set()
        wait_for(lambda: state["after_resume"] >= 5 or state["error"], 20,
                 "publishes confirmed again after the resume")
        stop.set()
        t.join(timeout=20)
        assert state["error"] is None, state["error"]
        consumed += drain(cch, q)
        cons.close()
        w.stop()
        os.remove(filler)

        w2 = Warren(data, "--disk-free-limit-bytes", "0")
        try:
            conn = w2.broker.connect()
            ch = conn.channel()
            after = drain(ch, q)
            conn.close()
        finally:
            w2.close()
        seen = consumed + after
        assert len(seen) == len(set(seen)), "a message was delivered twice"
        missing = set(state["confirmed"]) - set(seen)
        assert not missing, f"confirmed messages lost: {sorted(missing)[:10]}"
        assert {f"a{i}" for i in range(200)} <= set(consumed)
    finally:
        w.close()


def test_disk_space_returns_after_purge_and_drain(small_fs):
    """Queued messages take disk space; a purge and a drain give it back
    within seconds (store segments deleted, arena spares released)."""
    data = os.path.join(small_fs, "data")
    w = Warren(data, "--disk-free-limit-bytes", "0")
    try:
        conn = w.broker.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        for name in ["purged", "drained"]:
            ch.queue_declare(name, durable=True)
        time.sleep(0.5)
        baseline = used_bytes(small_fs)
        for name in ["purged", "drained"]:
            for i in range(150):
                ch.basic_publish("", name, body(f"{name[0]}{i}"), PERSISTENT)
            full = used_bytes(small_fs)
            # Each message is on disk (store and arena): at least its body.
            assert full - baseline > 150 * BODY, (full, baseline)
            if name == "purged":
                ch.queue_purge(name)
            else:
                assert len(drain(ch, name)) == 150
            slack = 1 << 20
            wait_for(lambda: used_bytes(small_fs) <= baseline + slack, 10,
                     f"disk usage back to {baseline} after {name} "
                     f"(now {used_bytes(small_fs)})")
        conn.close()
    finally:
        w.close()
