#!/usr/bin/env python3
"""Driver of scripts/reference-bench.sh (run that, not this): starts warren (and uses RabbitMQ if
it listens), one reference-service per variant, offers open-loop load with oha, scrapes the
service's /metrics for completed work and end-to-end latency, and writes results.md / .csv / .png.
"""
import csv
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

OHA = os.environ["REF_BENCH_OHA"]
OUT = os.environ["REF_BENCH_OUT"]
WARREN = os.environ["REF_BENCH_WARREN"]
SERVICE = os.environ["REF_BENCH_SERVICE"]
SMOKE = os.environ.get("REF_BENCH_SMOKE") == "1"
SECONDS = float(os.environ.get("REF_BENCH_SECONDS", "10"))
RATES = [float(r) for r in os.environ.get("REF_BENCH_RATES", "0.1 0.25 0.5 0.75 1.0 1.25 1.5").split()]
P99_MS = float(os.environ.get("REF_BENCH_P99_MS", "100"))
MAIL_LATENCY_MS = os.environ.get("REF_BENCH_MAIL_LATENCY_MS", "20")
MAIL_CONCURRENCY = os.environ.get("REF_BENCH_MAIL_CONCURRENCY", "8")
DRAIN_SECONDS = float(os.environ.get("REF_BENCH_DRAIN_SECONDS", "60"))
CAPACITY_SECONDS = float(os.environ.get("REF_BENCH_CAPACITY_SECONDS", "5"))
BURST = os.environ.get("REF_BENCH_BURST", "1") == "1"
RABBIT_URL = os.environ.get("AMQP_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
BODY = '{"email":"bench@example.com","name":"Bench"}'

# name -> (broker, query string of POST /users)
VARIANTS = {
    "inline": ("warren", "inline=1"),
    "publish": ("warren", ""),
    "fire-and-forget": ("warren", "confirm=0"),
    "transient": ("warren", "persistent=0"),
    "per-request": ("warren", "conn=per-request&confirm=0&persistent=0"),
    "per-request-confirm": ("warren", "conn=per-request"),
    "rabbitmq-publish": ("rabbitmq", ""),
    "rabbitmq-per-request": ("rabbitmq", "conn=per-request&confirm=0&persistent=0"),
}
DESCRIBE = {
    "inline": "mail sent in the handler (before the guide's change)",
    "publish": "publish-and-return: persistent, confirm awaited, kit's shared channels",
    "fire-and-forget": "shared channel, no confirm (persistent)",
    "transient": "confirm awaited, transient message",
    "per-request": "the guide: new connection per request, no confirm, transient",
    "per-request-confirm": "new connection per request, persistent, confirm awaited",
    "rabbitmq-publish": "publish-and-return against RabbitMQ",
    "rabbitmq-per-request": "the guide against RabbitMQ",
}
# Load-generator connections per step: enough for the offered rate at ~0.5 s latency, bounded.
OHA_CONNECTIONS_MIN, OHA_CONNECTIONS_MAX = 32, 1000
BURST_REQUESTS = 2000
WARMUP_REQUESTS = 200


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(what, cond, timeout=30.0):
    start = time.time()
    while not cond():
        if time.time() - start > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except Exception as e:  # connection refused, 503, ...
        return getattr(e, "code", 0), ""


class Warren:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="refbench-warren-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [WARREN, "serve", "--bind", "127.0.0.1", "--port", str(self.port),
             "--management-port", "0", "--prometheus-port", "0", "--data-dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("warren", lambda: listening("127.0.0.1", self.port))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    def __init__(self, url, prefix):
        self.dir = tempfile.mkdtemp(prefix="refbench-svc-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [SERVICE, "--mode", "remote", "--url", url, "--role", "all", "--bench-knobs",
             "--http", f"127.0.0.1:{self.port}", "--prefix", prefix, "--data-dir", self.dir,
             "--mail-latency-ms", MAIL_LATENCY_MS, "--mail-concurrency", MAIL_CONCURRENCY,
             "--mail-rate-per-sec", "1000000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"})
        wait_for("the service's /health", lambda: http_get(self.base + "/health")[0] == 200)

    def metrics(self):
        _, text = http_get(self.base + "/metrics")
        counters, buckets = {}, []
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, value = line.rsplit(" ", 1)
            if name.startswith('refsvc_completion_latency_seconds_bucket{le="'):
                le = name.split('"')[1]
                buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
            else:
                try:
                    counters[name] = float(value)
                except ValueError:
                    pass
        return counters, buckets

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def quantile(before, after, q):
    """Upper bound of the histogram bucket holding quantile q of the observations between scrapes."""
    delta = [(le, a - b) for (le, a), (_, b) in zip(after, before or [(le, 0.0) for le, _ in after])]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return None
    for le, n in delta:
        if n >= q * total:
            return le * 1000.0
    return None


def oha_output_flags():
    h = subprocess.run([OHA, "--help"], capture_output=True, text=True).stdout
    return ["--output-format", "json"] if "--output-format" in h else ["-j"]


OHA_JSON = None


def run_oha(url, rate=None, seconds=None, requests=None, connections=OHA_CONNECTIONS_MIN, tag=""):
    # -w: requests still running at the deadline are waited for, not counted as errors.
    cmd = [OHA, "--no-tui", "-w", *OHA_JSON, "-m", "POST", "-T", "application/json", "-d", BODY,
           "-c", str(connections)]
    if rate is not None:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd += ["-z", f"{seconds}s"] if seconds is not None else ["-n", str(requests)]
    cmd.append(url)
    r = subprocess.run(cmd, capture_output=True, text=True)
    with open(os.path.join(OUT, f"oha-{tag}.json"), "w") as f:
        f.write(r.stdout)
    if r.returncode != 0:
        raise SystemExit(f"oha failed ({' '.join(cmd)}): {r.stderr[-2000:]}")
    return json.loads(r.stdout), " ".join(cmd)


def ok_count(res):
    return sum(n for code, n in res.get("statusCodeDistribution", {}).items() if str(code).startswith("2"))


def all_count(res):
    return sum(res.get("statusCodeDistribution", {}).values()) + sum(res.get("errorDistribution", {}).values())


def pct(res, key):
    v = res.get("latencyPercentiles", {}).get(key)
    return None if v is None else v * 1000.0


def step(svc, variant, query, rate, label):
    url = svc.base + "/users" + (f"?{query}" if query else "")
    before, b_buckets = svc.metrics()
    t0 = time.time()
    if rate == "burst":
        res, cmd = run_oha(url, requests=BURST_REQUESTS, connections=BURST_REQUESTS // 4,
                           tag=f"{variant}-burst")
        duration = res.get("summary", {}).get("total", time.time() - t0)
    else:
        conns = int(min(OHA_CONNECTIONS_MAX, max(OHA_CONNECTIONS_MIN, rate / 2)))
        res, cmd = run_oha(url, rate=rate, seconds=SECONDS, connections=conns, tag=f"{variant}-{label}")
        duration = SECONDS
    accepted = ok_count(res)
    completed_name = "refsvc_completed_total"
    target = before.get(completed_name, 0) + accepted
    drain_start = time.time()
    while svc.metrics()[0].get(completed_name, 0) < target and time.time() - drain_start < DRAIN_SECONDS:
        time.sleep(0.1)
    drained = time.time() - drain_start
    after, a_buckets = svc.metrics()
    completed = after.get(completed_name, 0) - before.get(completed_name, 0)
    return {
        "variant": variant, "offered": label, "requests": all_count(res), "accepted": accepted,
        "accepted_per_s": accepted / duration if duration else 0,
        "p50_ms": pct(res, "p50"), "p99_ms": pct(res, "p99"), "p999_ms": pct(res, "p99.9"),
        "completed": int(completed), "completed_per_s": completed / (duration + drained),
        "e2e_p50_ms": quantile(b_buckets, a_buckets, 0.5), "e2e_p99_ms": quantile(b_buckets, a_buckets, 0.99),
        "lost": int(accepted - completed), "drain_s": drained, "command": cmd,
    }


def inline_capacity(url):
    res, _ = run_oha(url + "/users?inline=1", seconds=CAPACITY_SECONDS, connections=64, tag="capacity")
    return max(1.0, ok_count(res) / CAPACITY_SECONDS)


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu})"


def report(rows, capacity, skipped):
    with open(os.path.join(OUT, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"Reference service (crates/reference-service), `scripts/reference-bench.sh`{' (SMOKE: numbers meaningless)' if SMOKE else ''}.",
        f"Machine: {machine()}. Mail dependency: {MAIL_LATENCY_MS} ms per call, {MAIL_CONCURRENCY} in flight "
        f"(so at most {1000 * int(MAIL_CONCURRENCY) / max(1, int(MAIL_LATENCY_MS)):.0f} mails/s). "
        f"Inline capacity measured: {capacity:.0f} req/s. Steps of {SECONDS:g} s, open loop (oha -q, latency corrected).",
        "",
        f"| variant | what | accepted req/s at p99 ≤ {P99_MS:g} ms | max completed work/s | lost (sum) |",
        "|---|---|---|---|---|",
    ]
    for v in dict.fromkeys(r["variant"] for r in rows):
        vr = [r for r in rows if r["variant"] == v]
        ok = [r["accepted_per_s"] for r in vr if r["p99_ms"] is not None and r["p99_ms"] <= P99_MS and r["offered"] != "burst"]
        lines.append(f"| {v} | {DESCRIBE[v]} | {fmt(max(ok) if ok else None, 0)} | "
                     f"{fmt(max(r['completed_per_s'] for r in vr), 0)} | {sum(r['lost'] for r in vr)} |")
    lines += ["", "| variant | offered req/s | accepted | accepted/s | p50 ms | p99 ms | p99.9 ms | completed/s | e2e p50 ms | e2e p99 ms | lost | drain s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['offered']} | {r['accepted']}/{r['requests']} | {fmt(r['accepted_per_s'], 0)} | "
                     f"{fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['p999_ms'])} | {fmt(r['completed_per_s'], 0)} | "
                     f"{fmt(r['e2e_p50_ms'])} | {fmt(r['e2e_p99_ms'])} | {r['lost']} | {fmt(r['drain_s'])} |")
    lines += ["", "End-to-end (e2e) latency: from the API accepting the request to the mail being sent, "
              "read from the service's histogram (bucket upper bounds). lost = accepted − completed after "
              f"the drain wait (≤ {DRAIN_SECONDS:g} s); must be 0 where the confirm is awaited."]
    lines += [f"Skipped: {s}" for s in skipped]
    lines += ["", "Example step command: `" + rows[-1]["command"] + "`", "", "![latency against offered load](latency.png)"]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    print(md)


def plot(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for v in dict.fromkeys(r["variant"] for r in rows):
        pts = [(float(r["offered"]), r["p50_ms"], r["p99_ms"]) for r in rows
               if r["variant"] == v and r["offered"] != "burst" and r["p99_ms"] is not None]
        if not pts:
            continue
        x = [p[0] for p in pts]
        line, = ax.plot(x, [p[2] for p in pts], marker="o", label=f"{v} p99")
        ax.plot(x, [p[1] for p in pts], linestyle="--", color=line.get_color(), label=f"{v} p50")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, requests/s")
    ax.set_ylabel("HTTP latency, ms")
    ax.axhline(P99_MS, color="grey", linewidth=0.8)
    ax.set_title("reference service: HTTP latency against offered load")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "latency.png"), dpi=120)


def main():
    global OHA_JSON
    OHA_JSON = oha_output_flags()
    wanted = os.environ.get("REF_BENCH_VARIANTS", "").split() or list(VARIANTS)
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    rabbit = listening("127.0.0.1", 5672)
    skipped = []
    rows, capacity = [], None
    for v in wanted:
        broker, query = VARIANTS[v]
        if broker == "rabbitmq" and not rabbit:
            skipped.append(f"{v}: no RabbitMQ listening on 127.0.0.1:5672")
            continue
        w = Warren() if broker == "warren" else None
        svc = Service(w.url if w else RABBIT_URL, f"refbench-{v}-{os.getpid()}")
        try:
            # Warm-up (connections, channels, caches), not reported.
            run_oha(svc.base + "/users" + (f"?{query}" if query else ""), requests=WARMUP_REQUESTS,
                    connections=8, tag=f"{v}-warmup")
            if capacity is None:
                capacity = inline_capacity(svc.base)
                print(f"inline capacity ≈ {capacity:.0f} req/s", file=sys.stderr)
            for frac in RATES:
                rate = max(1, round(capacity * frac))
                rows.append(step(svc, v, query, rate, str(rate)))
                print(f"{v} @ {rate}/s: {rows[-1]['accepted']} accepted, p99 {fmt(rows[-1]['p99_ms'])} ms, "
                      f"lost {rows[-1]['lost']}", file=sys.stderr)
            if BURST:
                rows.append(step(svc, v, query, "burst", "burst"))
        finally:
            svc.stop()
            if w:
                w.stop()
    if not rows:
        raise SystemExit("nothing ran: " + "; ".join(skipped))
    if any(VARIANTS[v][0] == "rabbitmq" for v in wanted) and rabbit:
        skipped.append("RabbitMQ runs leave durable queues refbench-*.notify / .score / .dlq behind "
                       "(delete them with rabbitmqctl or the management UI)")
    report(rows, capacity, skipped)
    plot(rows)
    print(f"written: {OUT}/results.md, results.csv, latency.png", file=sys.stderr)


if __name__ == "__main__":
    main()
