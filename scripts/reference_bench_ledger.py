"""Per-id accounting and backlog sampling for scripts/reference_bench.py.

Ledger: reads the reference service's `--ledger-dir` files (accepted.log: `A id accepted_us`,
sent.<pid>.log: `S id accepted_us sent_us`, one per process that sends mails, so a killed and
restarted worker adds a file) incrementally. A step's work is the set of ids accepted during it:
lost = those never sent, duplicates = extra sends of them — warm-up work finishing inside a
step no longer counts against it.

Sampler: a thread that every second records the application backlog (accepted − sent, from the
ledger) and the broker's queue depth (ready messages, from a passive queue.declare over its own
AMQP connection; None while the broker is down).
"""
import glob
import os
import threading
import time

# A ledger file is read in chunks of at most this many bytes per refresh call iteration.
LEDGER_READ_BYTES_MAX = 8 * 1024 * 1024
SAMPLE_INTERVAL_S = 1.0


class Ledger:
    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.offsets = {}      # path -> bytes consumed (whole lines only)
        self.accepted = {}     # id -> accepted_us
        self.order = []        # ids in acceptance order (accepted.log order)
        self.sent = {}         # id -> [sends, first_sent_us, accepted_us]
        self.lock = threading.RLock()

    def _read(self, path):
        off = self.offsets.get(path, 0)
        with open(path, "rb") as f:
            f.seek(off)
            data = f.read(LEDGER_READ_BYTES_MAX)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offsets[path] = off + end + 1
        return data[:end].decode(errors="replace").split("\n")

    def refresh(self):
        with self.lock:
            acc = os.path.join(self.dir, "accepted.log")
            if os.path.exists(acc):
                for line in self._read(acc):
                    p = line.split()
                    if len(p) == 3 and p[0] == "A" and p[1] not in self.accepted:
                        self.accepted[p[1]] = int(p[2])
                        self.order.append(p[1])
            for path in sorted(glob.glob(os.path.join(self.dir, "sent.*.log"))):
                for line in self._read(path):
                    p = line.split()
                    if len(p) != 4 or p[0] != "S":
                        continue
                    e = self.sent.get(p[1])
                    if e is None:
                        self.sent[p[1]] = [1, int(p[3]), int(p[2])]
                    else:
                        e[0] += 1
                        e[1] = min(e[1], int(p[3]))

    def mark(self):
        """Position in acceptance order (ids accepted after it belong to what follows)."""
        self.refresh()
        return len(self.order)

    def ids_since(self, mark):
        self.refresh()
        return self.order[mark:]

    def unsent(self, ids):
        self.refresh()
        return [i for i in ids if i not in self.sent]

    def backlog(self):
        with self.lock:
            self.refresh()
            return len(self.accepted) - sum(1 for i in self.accepted if i in self.sent)

    def wait_sent(self, ids, timeout_s):
        """Waits until every id is sent (or timeout); returns the seconds waited."""
        start = time.time()
        while self.unsent(ids) and time.time() - start < timeout_s:
            time.sleep(0.1)
        return time.time() - start

    def account(self, ids):
        """lost, duplicates, sent count and the end-to-end latencies (ms) of `ids`."""
        self.refresh()
        lost = dups = 0
        e2e = []
        for i in ids:
            e = self.sent.get(i)
            if e is None:
                lost += 1
                continue
            dups += e[0] - 1
            e2e.append((e[1] - self.accepted[i]) / 1000.0)
        return lost, dups, len(ids) - lost, e2e


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Sampler(threading.Thread):
    """Samples (t, backlog, queue depth) every second until stop()."""

    def __init__(self, ledger, amqp_url, queue, t0=None):
        super().__init__(daemon=True)
        self.ledger, self.url, self.queue = ledger, amqp_url, queue
        self.t0 = t0 or time.time()
        self.samples = []   # (seconds since t0, backlog, queue ready or None)
        self.halt = threading.Event()
        self.conn = self.ch = None

    def depth(self):
        try:
            import pika
            if self.ch is None or not self.ch.is_open:
                params = pika.URLParameters(self.url)
                params.socket_timeout = params.blocked_connection_timeout = 1
                params.connection_attempts = 1
                self.conn = pika.BlockingConnection(params)
                self.ch = self.conn.channel()
            return self.ch.queue_declare(self.queue, passive=True).method.message_count
        except Exception:  # broker down, queue not declared yet, ...
            self.ch = None
            try:
                if self.conn is not None and self.conn.is_open:
                    self.conn.close()
            except Exception:
                pass
            self.conn = None
            return None

    def run(self):
        while not self.halt.is_set():
            t = time.time()
            self.samples.append((round(t - self.t0, 2), self.ledger.backlog(), self.depth()))
            self.halt.wait(max(0.0, SAMPLE_INTERVAL_S - (time.time() - t)))

    def stop(self):
        self.halt.set()
        self.join(timeout=5)
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        return self.samples
