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

import reference_bench_events as events_mod
from reference_bench_ledger import Ledger, Sampler, percentile

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
    """A warren on a fixed port and data folder, so it can be SIGKILLed and restarted on them."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="refbench-warren-")
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [WARREN, "serve", "--bind", "127.0.0.1", "--port", str(self.port),
             "--management-port", "0", "--prometheus-port", "0", "--data-dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("warren", lambda: listening("127.0.0.1", self.port), timeout=120)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    """One reference-service process (`role` all, api or notifier), its ledger in `ledger_dir`."""

    def __init__(self, url, prefix, ledger_dir, role="all"):
        self.dir = tempfile.mkdtemp(prefix="refbench-svc-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cmd = [SERVICE, "--mode", "remote", "--url", url, "--role", role, "--bench-knobs",
                    "--http", f"127.0.0.1:{self.port}", "--prefix", prefix, "--data-dir", self.dir,
                    "--ledger-dir", ledger_dir,
                    "--mail-latency-ms", MAIL_LATENCY_MS, "--mail-concurrency", MAIL_CONCURRENCY,
                    "--mail-rate-per-sec", "1000000"]
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "RUST_LOG": "warn"})
        wait_for("the service's /health", lambda: http_get(self.base + "/health")[0] == 200, timeout=60)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def oha_output_flags():
    h = subprocess.run([OHA, "--help"], capture_output=True, text=True).stdout
    return ["--output-format", "json"] if "--output-format" in h else ["-j"]


OHA_JSON = None


def oha_cmd(url, rate=None, seconds=None, requests=None, connections=OHA_CONNECTIONS_MIN):
    # -w: requests still running at the deadline are waited for, not counted as errors.
    cmd = [OHA, "--no-tui", "-w", *OHA_JSON, "-m", "POST", "-T", "application/json", "-d", BODY,
           "-c", str(connections)]
    if rate is not None:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd += ["-z", f"{seconds}s"] if seconds is not None else ["-n", str(requests)]
    cmd.append(url)
    return cmd


def oha_result(cmd, returncode, stdout, stderr, tag):
    with open(os.path.join(OUT, f"oha-{tag}.json"), "w") as f:
        f.write(stdout)
    if returncode != 0:
        raise SystemExit(f"oha failed ({' '.join(cmd)}): {stderr[-2000:]}")
    return json.loads(stdout), " ".join(cmd)


def run_oha(url, rate=None, seconds=None, requests=None, connections=OHA_CONNECTIONS_MIN, tag=""):
    cmd = oha_cmd(url, rate, seconds, requests, connections)
    r = subprocess.run(cmd, capture_output=True, text=True)
    return oha_result(cmd, r.returncode, r.stdout, r.stderr, tag)


def connections_for(rate):
    return int(min(OHA_CONNECTIONS_MAX, max(OHA_CONNECTIONS_MIN, rate / 2)))


def ok_count(res):
    return sum(n for code, n in res.get("statusCodeDistribution", {}).items() if str(code).startswith("2"))


def all_count(res):
    return sum(res.get("statusCodeDistribution", {}).values()) + sum(res.get("errorDistribution", {}).values())


def pct(res, key):
    v = res.get("latencyPercentiles", {}).get(key)
    return None if v is None else v * 1000.0


def step(svc, ledger, variant, query, rate, label):
    """One load step; its work is the ids accepted during it (per-id accounting, see
    reference_bench_ledger.py), waited for up to DRAIN_SECONDS after the load stops."""
    url = svc.base + "/users" + (f"?{query}" if query else "")
    mark = ledger.mark()
    t0 = time.time()
    if rate == "burst":
        res, cmd = run_oha(url, requests=BURST_REQUESTS, connections=BURST_REQUESTS // 4,
                           tag=f"{variant}-burst")
        duration = res.get("summary", {}).get("total", time.time() - t0)
    else:
        res, cmd = run_oha(url, rate=rate, seconds=SECONDS, connections=connections_for(rate),
                           tag=f"{variant}-{label}")
        duration = SECONDS
    ids = ledger.ids_since(mark)
    drained = ledger.wait_sent(ids, DRAIN_SECONDS)
    lost, dups, completed, e2e = ledger.account(ids)
    return {
        "variant": variant, "offered": label, "requests": all_count(res), "accepted": ok_count(res),
        "accepted_ids": len(ids), "accepted_per_s": ok_count(res) / duration if duration else 0,
        "p50_ms": pct(res, "p50"), "p99_ms": pct(res, "p99"), "p999_ms": pct(res, "p99.9"),
        "completed": completed, "completed_per_s": completed / (duration + drained),
        "e2e_p50_ms": percentile(e2e, 0.5), "e2e_p99_ms": percentile(e2e, 0.99),
        "lost": lost, "duplicates": dups, "drain_s": drained, "t_start": t0, "command": cmd,
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


def write_csv(name, rows):
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("samples", "e2e_per_second")]
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def report(rows, capacity, skipped, events, event_skipped):
    write_csv("results.csv", rows)
    write_csv("events.csv", events)
    with open(os.path.join(OUT, "backlog.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "t_s", "backlog", "queue_ready"])
        for run, samples in BACKLOG.items():
            w.writerows([run, *s] for s in samples)
        for e in events:
            w.writerows([e["event"], *s] for s in e["samples"])
    lines = [
        f"Reference service (crates/reference-service), `scripts/reference-bench.sh`{' (SMOKE: numbers meaningless)' if SMOKE else ''}.",
        f"Machine: {machine()}. Mail dependency: {MAIL_LATENCY_MS} ms per call, {MAIL_CONCURRENCY} in flight "
        f"(so at most {1000 * int(MAIL_CONCURRENCY) / max(1, int(MAIL_LATENCY_MS)):.0f} mails/s). "
        f"Inline capacity measured: {capacity:.0f} req/s. Steps of {SECONDS:g} s, open loop (oha -q, latency corrected).",
    ]
    if rows:
        lines += [
            "",
            f"| variant | what | accepted req/s at p99 ≤ {P99_MS:g} ms | max completed work/s | lost (sum) | duplicates (sum) | max backlog |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in dict.fromkeys(r["variant"] for r in rows):
            vr = [r for r in rows if r["variant"] == v]
            ok = [r["accepted_per_s"] for r in vr if r["p99_ms"] is not None and r["p99_ms"] <= P99_MS and r["offered"] != "burst"]
            lines.append(f"| {v} | {DESCRIBE[v]} | {fmt(max(ok) if ok else None, 0)} | "
                         f"{fmt(max(r['completed_per_s'] for r in vr), 0)} | {sum(r['lost'] for r in vr)} | "
                         f"{sum(r['duplicates'] for r in vr)} | {max(r['backlog_max'] for r in vr)} |")
        lines += ["", "| variant | offered req/s | accepted | accepted/s | p50 ms | p99 ms | p99.9 ms | completed/s | e2e p50 ms | e2e p99 ms | lost | dups | backlog max | drain s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['variant']} | {r['offered']} | {r['accepted']}/{r['requests']} | {fmt(r['accepted_per_s'], 0)} | "
                         f"{fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['p999_ms'])} | {fmt(r['completed_per_s'], 0)} | "
                         f"{fmt(r['e2e_p50_ms'])} | {fmt(r['e2e_p99_ms'])} | {r['lost']} | {r['duplicates']} | "
                         f"{r['backlog_max']} | {fmt(r['drain_s'])} |")
        lines += ["", "Counted per request id from the service's ledger (`--ledger-dir`): a step's work is the "
                  "registrations accepted during it; completed = those mailed, lost = those never mailed after the "
                  f"drain wait (≤ {DRAIN_SECONDS:g} s; must be 0 where the confirm is awaited), dups = extra mails. "
                  "End-to-end (e2e) latency: from the API accepting the request to the mail being sent, per id. "
                  "Backlog: accepted − mailed, sampled every second (backlog.csv, backlog.png)."]
    lines += [f"Skipped: {s}" for s in skipped]
    if events or event_skipped:
        lines += events_mod.report_lines(events, event_skipped)
    if rows:
        lines += ["", "Example step command: `" + rows[-1]["command"] + "`", "",
                  "![latency against offered load](latency.png)"]
    lines += ["", "![backlog over time](backlog.png)"]
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
    plt.close(fig)


def plot_backlog(rows, events):
    """backlog.png: per variant, backlog and queue depth over time with the steps marked; per
    event, the same with the kill / restart marked and the end-to-end p99 per second."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = len(BACKLOG) + len(events)
    if panels == 0:
        return
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.6 * panels), squeeze=False)
    axes = [a[0] for a in axes]
    for ax, (v, samples) in zip(axes, BACKLOG.items()):
        t = [s[0] for s in samples]
        ax.plot(t, [s[1] for s in samples], label="backlog (accepted − mailed)")
        ax.plot(t, [s[2] for s in samples], linestyle="--", label="queue ready (broker)")
        for r in rows:
            if r["variant"] == v:
                ax.axvline(r["t_rel"], color="grey", linewidth=0.6)
                ax.annotate(f"{r['offered']}/s" if r["offered"] != "burst" else "burst", (r["t_rel"], 0),
                            fontsize=6, rotation=90, va="bottom")
        ax.set_ylabel("messages")
        ax.set_title(f"{v}: backlog every second (grey: step starts, offered req/s)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    for ax, e in zip(axes[len(BACKLOG):], events):
        events_mod.plot_axes(ax, e)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "backlog.png"), dpi=110)
    plt.close(fig)


# variant -> [(t_s, backlog, queue ready)], filled by main().
BACKLOG = {}


def run_variant(v, capacity, rows):
    broker, query = VARIANTS[v]
    ldir = tempfile.mkdtemp(prefix="refbench-ledger-")
    w = Warren() if broker == "warren" else None
    url = w.url if w else RABBIT_URL
    prefix = f"refbench-{v}-{os.getpid()}"
    svc = sampler = None
    try:
        svc = Service(url, prefix, ldir)
        ledger = Ledger(ldir)
        # Warm-up (connections, channels, caches), not reported; drained before the steps.
        run_oha(svc.base + "/users" + (f"?{query}" if query else ""), requests=WARMUP_REQUESTS,
                connections=8, tag=f"{v}-warmup")
        if capacity is None:
            capacity = inline_capacity(svc.base)
            print(f"inline capacity ≈ {capacity:.0f} req/s", file=sys.stderr)
        ledger.wait_sent(ledger.ids_since(0), DRAIN_SECONDS)
        t0 = time.time()
        sampler = Sampler(ledger, url, f"{prefix}.notify", t0)
        sampler.start()
        steps = [(max(1, round(capacity * frac)), None) for frac in RATES]
        if BURST:
            steps.append(("burst", "burst"))
        for rate, label in steps:
            r = step(svc, ledger, v, query, rate, label or str(rate))
            r["t_rel"] = round(r["t_start"] - t0, 2)
            r["backlog_max"] = max((b for t, b, _ in sampler.samples if t >= r["t_rel"]), default=0)
            rows.append(r)
            print(f"{v} @ {r['offered']}/s: {r['accepted']} accepted, p99 {fmt(r['p99_ms'])} ms, "
                  f"lost {r['lost']}, dups {r['duplicates']}, backlog max {r['backlog_max']}", file=sys.stderr)
        BACKLOG[v] = sampler.stop()
        sampler = None
        return capacity
    finally:
        if sampler:
            sampler.stop()
        if svc:
            svc.stop()
        if w:
            w.stop()
        shutil.rmtree(ldir, ignore_errors=True)


def main():
    global OHA_JSON
    OHA_JSON = oha_output_flags()
    wanted = os.environ.get("REF_BENCH_VARIANTS", "").split() or list(VARIANTS)
    if os.environ.get("REF_BENCH_VARIANTS") == "none":
        wanted = []
    unknown = [v for v in wanted if v not in VARIANTS]
    events = os.environ.get("REF_BENCH_EVENTS", " ".join(events_mod.EVENTS)).split()
    unknown += [e for e in events if e not in events_mod.EVENTS and e != "none"]
    events = [e for e in events if e != "none"]
    if unknown:
        raise SystemExit(f"unknown variants/events {unknown}; known: {list(VARIANTS)} {list(events_mod.EVENTS)}")
    rabbit = listening("127.0.0.1", 5672)
    skipped, event_skipped = [], []
    rows, capacity = [], None
    for v in wanted:
        if VARIANTS[v][0] == "rabbitmq" and not rabbit:
            skipped.append(f"{v}: no RabbitMQ listening on 127.0.0.1:5672")
            continue
        capacity = run_variant(v, capacity, rows)
    event_rows = []
    for e in events:
        why = events_mod.skip_reason(e, rabbit)
        if why:
            event_skipped.append(why)
            continue
        if capacity is None:
            w, ldir = Warren(), tempfile.mkdtemp(prefix="refbench-ledger-")
            svc = Service(w.url, f"refbench-capacity-{os.getpid()}", ldir)
            try:
                capacity = inline_capacity(svc.base)
            finally:
                svc.stop()
                w.stop()
                shutil.rmtree(ldir, ignore_errors=True)
        r = events_mod.run_event(e, capacity)
        event_rows.append(r)
        print(f"{e}: {r['accepted']} accepted, {r['refused']} refused, lost {r['lost']}, dups {r['duplicates']}, "
              f"backlog {r['backlog_before']} -> {r['backlog_peak']}", file=sys.stderr)
    if not rows and not event_rows:
        raise SystemExit("nothing ran: " + "; ".join(skipped + event_skipped))
    if rabbit and (any(VARIANTS[v][0] == "rabbitmq" for v in wanted)
                   or any(events_mod.EVENTS[e][0] == "rabbitmq" for e in events)):
        skipped.append("RabbitMQ runs leave durable queues refbench-*.notify / .score / .dlq behind "
                       "(delete them with rabbitmqctl or the management UI)")
    report(rows, capacity, skipped, event_rows, event_skipped)
    if rows:
        plot(rows)
    plot_backlog(rows, event_rows)
    print(f"written: {OUT}/results.md, results.csv, events.csv, backlog.csv, latency.png, backlog.png",
          file=sys.stderr)


if __name__ == "__main__":
    main()
