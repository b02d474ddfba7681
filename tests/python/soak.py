"""Soak: publishers, consumers, queue and connection churn, and SIGKILL +
restart of warren, for SOAK_SECONDS, with the invariants checked every
SOAK_CHECK_SECONDS. Run by scripts/soak.sh (an hour by default, not in CI);
tests/python/test_soak.py runs a short one in the test suite.

Invariants, checked at every check point (publishers pause, kills wait):
  * the broker answers (a fresh connection declares a queue) within 30 s;
  * no confirmed persistent message is lost: every message confirmed so far
    has been delivered within SOAK_DRAIN_SECONDS of the pause;
  * no duplicate unless redelivered: a message delivered twice was flagged
    redelivered the second time (every recovered message is);
  * the broker's RSS stays under SOAK_RSS_MAX_BYTES.
Prints one line per check and a final JSON line; exits 1 on a violation.

Environment: SOAK_SECONDS (3600), SOAK_CHECK_SECONDS (60), SOAK_KILL_MIN_S /
SOAK_KILL_MAX_S (seconds between SIGKILLs, 10 / 30), SOAK_RSS_MAX_BYTES
(512 MiB), SOAK_PUBLISHERS (2), SOAK_QUEUES (3), SOAK_SEED, SOAK_DRAIN_SECONDS
(30), SOAK_WARREN_ARGS (extra `warren serve` arguments), WARREN_BIN,
WARREN_PERF_BIN (queue and connection churn; skipped if absent).
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pika

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def env_int(name, default):
    return int(os.environ.get(name, default))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Warren:
    """One warren on a fixed port and data folder, killed and restarted."""

    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.port = binary, data_dir, free_port()
        self.log = open(log_path, "a", buffering=1)
        self.proc = None
        self.kills = 0
        # e.g. `--in-memory`, to see the checks catch a broker that loses data.
        self.extra = os.environ.get("SOAK_WARREN_ARGS", "").split()

    def start(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--bind", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", self.data_dir, "--management-port", "0",
                 "--prometheus-port", "0", *self.extra],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    time.sleep(0.05)
            if time.monotonic() >= deadline:
                raise RuntimeError("warren did not start listening")
            time.sleep(0.2)  # exited (port still held): try again

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_bytes(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def params(self):
        return pika.ConnectionParameters(
            host="127.0.0.1", port=self.port, heartbeat=10, socket_timeout=5,
            blocked_connection_timeout=10, connection_attempts=1)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.confirmed = set()    # ids confirmed by the broker
        self.received = set()     # ids delivered at least once
        self.published = 0
        self.deliveries = 0
        self.redelivered_dups = 0
        self.violations = []
        self.stop = threading.Event()
        self.running = threading.Event()  # publishers may publish
        self.running.set()


def publisher(w, st, p, queues, rng):
    seq = 0
    while not st.stop.is_set():
        try:
            conn = pika.BlockingConnection(w.params())
            ch = conn.channel()
            ch.confirm_delivery()
            while not st.stop.is_set():
                if not st.running.is_set():
                    time.sleep(0.05)
                    continue
                q = queues[rng.randrange(len(queues))]
                mid = f"P{p}:{seq}"
                seq += 1
                with st.lock:
                    st.published += 1
                ch.basic_publish("", q, mid.encode(),
                                 pika.BasicProperties(delivery_mode=2), mandatory=True)
                with st.lock:
                    st.confirmed.add(mid)
        except Exception:  # killed broker, nack, ...: unknown outcome, retry
            time.sleep(0.2)


def consumer(w, st, q):
    while not st.stop.is_set():
        try:
            conn = pika.BlockingConnection(w.params())
            ch = conn.channel()
            ch.basic_qos(prefetch_count=100)
            for method, _props, body in ch.consume(q, inactivity_timeout=0.5):
                if st.stop.is_set():
                    break
                if method is None:
                    continue
                mid = body.decode()
                with st.lock:
                    st.deliveries += 1
                    if mid in st.received:
                        if method.redelivered:
                            st.redelivered_dups += 1
                        else:
                            st.violations.append(f"{mid} delivered twice, redelivered=false")
                    st.received.add(mid)
                ch.basic_ack(method.delivery_tag)
        except Exception:
            time.sleep(0.2)


def churn(w, st, perf):
    """warren-perf queue-churn and connection-churn, over and over."""
    while not st.stop.is_set():
        uri = f"amqp://guest:guest@127.0.0.1:{w.port}/%2f"
        for args in (["queue-churn", "--count", "200"],
                     ["connection-churn", "--count", "100", "--concurrency", "4"]):
            subprocess.run([perf, *args, "--uri", uri], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
        time.sleep(0.5)


def answers(w, queue, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = pika.BlockingConnection(w.params())
            conn.channel().queue_declare(queue, durable=True)
            conn.close()
            return True
        except Exception:
            time.sleep(0.2)
    return False


def check(w, st, queues, drain_s, rss_max, started, n):
    """Pauses publishers, waits for every confirmed message, checks."""
    st.running.clear()
    time.sleep(1.0)  # publishes in flight get their confirm
    ok = answers(w, queues[0])
    if not ok:
        st.violations.append("broker did not answer within 30 s")
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline:
        with st.lock:
            missing = st.confirmed - st.received
        if not missing:
            break
        time.sleep(0.2)
    with st.lock:
        missing = st.confirmed - st.received
        if missing:
            st.violations.append(
                f"{len(missing)} confirmed messages never delivered, e.g. {sorted(missing)[:5]}")
        rss = w.rss_bytes()
        if rss > rss_max:
            st.violations.append(f"rss {rss} > {rss_max}")
        line = (f"check {n} at {time.monotonic() - started:.0f}s: published {st.published} "
                f"confirmed {len(st.confirmed)} delivered {st.deliveries} "
                f"redelivered duplicates {st.redelivered_dups} kills {w.kills} "
                f"rss {rss >> 20} MiB violations {len(st.violations)}")
    print(line, flush=True)
    st.running.set()
    return rss


def main():
    seconds = env_int("SOAK_SECONDS", 3600)
    check_s = env_int("SOAK_CHECK_SECONDS", 60)
    kill_min, kill_max = env_int("SOAK_KILL_MIN_S", 10), env_int("SOAK_KILL_MAX_S", 30)
    rss_max = env_int("SOAK_RSS_MAX_BYTES", 512 << 20)
    seed = env_int("SOAK_SEED", int(time.time()))
    drain_s = env_int("SOAK_DRAIN_SECONDS", 30)
    rng = random.Random(seed)
    binary = os.environ.get("WARREN_BIN") or os.path.join(REPO_ROOT, "target/debug/warren")
    perf = os.environ.get("WARREN_PERF_BIN") or os.path.join(REPO_ROOT, "target/debug/warren-perf")
    tmp = tempfile.mkdtemp(prefix="warren-soak-")
    print(f"soak: {seconds}s, checks every {check_s}s, kills every {kill_min}-{kill_max}s, "
          f"seed {seed}, log {tmp}/warren.log", flush=True)
    w = Warren(binary, os.path.join(tmp, "data"), os.path.join(tmp, "warren.log"))
    w.start()
    st = State()
    queues = [f"soak.q{i}" for i in range(env_int("SOAK_QUEUES", 3))]
    for q in queues:
        if not answers(w, q):
            raise SystemExit("warren does not answer")
    threads = [threading.Thread(target=publisher, args=(w, st, p, queues, random.Random(seed + p)),
                                daemon=True) for p in range(env_int("SOAK_PUBLISHERS", 2))]
    threads += [threading.Thread(target=consumer, args=(w, st, q), daemon=True) for q in queues]
    if os.path.exists(perf):
        threads.append(threading.Thread(target=churn, args=(w, st, perf), daemon=True))
    else:
        print(f"soak: no {perf}: no queue/connection churn", flush=True)
    for t in threads:
        t.start()
    started = time.monotonic()
    next_check = started + check_s
    next_kill = started + rng.uniform(kill_min, kill_max)
    n, rss_peak = 0, 0
    while True:
        now = time.monotonic()
        if now >= started + seconds or now >= next_check:
            n += 1
            rss_peak = max(rss_peak, check(w, st, queues, drain_s, rss_max, started, n))
            next_check = time.monotonic() + check_s
            if now >= started + seconds or st.violations:
                break
        elif now >= next_kill:
            w.kill()
            w.start()
            next_kill = time.monotonic() + rng.uniform(kill_min, kill_max)
        time.sleep(0.1)
    st.stop.set()
    for t in threads:
        t.join(timeout=10)
    w.stop()
    summary = {"seconds": round(time.monotonic() - started), "seed": seed, "checks": n,
               "published": st.published, "confirmed": len(st.confirmed),
               "delivered": st.deliveries, "redelivered_duplicates": st.redelivered_dups,
               "kills": w.kills, "rss_peak_bytes": rss_peak, "violations": st.violations}
    print(json.dumps(summary), flush=True)
    if st.violations:
        print(f"soak FAILED; data and log kept in {tmp}", flush=True)
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
    print("soak passed", flush=True)


if __name__ == "__main__":
    main()
