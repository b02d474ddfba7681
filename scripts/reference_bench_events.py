"""The mid-run events of scripts/reference_bench.py: a worker SIGKILLed and restarted, and the
broker SIGKILLed and restarted on the same data folder (RabbitMQ: `rabbitmqctl stop_app` /
`start_app`, only with REF_BENCH_RABBITMQ_RESTART=1 since it stops a shared broker). The API and
the notifier run as separate processes (`--role api`, `--role notifier`) on one ledger folder;
open-loop load runs through the event; lost = accepted ids never sent (must be 0: persistent,
confirm awaited), duplicates = extra sends, with the HTTP latency, the end-to-end latency before /
around / after the event and the backlog every second.
"""
import os
import shutil
import subprocess
import tempfile
import time

import __main__ as h  # reference_bench.py, run as the script
from reference_bench_ledger import Ledger, Sampler, percentile

EVENT_SECONDS = float(os.environ.get("REF_BENCH_EVENT_SECONDS", "30"))
EVENT_LOAD = float(os.environ.get("REF_BENCH_EVENT_LOAD", "0.5"))
EVENT_DOWN_SECONDS = float(os.environ.get("REF_BENCH_EVENT_DOWN_SECONDS", "3"))
# Query knobs of the load (e.g. "confirm=0&persistent=0": a control run that should lose work).
EVENT_QUERY = os.environ.get("REF_BENCH_EVENT_QUERY", "")
RABBITMQ_RESTART = os.environ.get("REF_BENCH_RABBITMQ_RESTART") == "1"
RABBITMQCTL = os.environ.get("REF_BENCH_RABBITMQCTL", "rabbitmqctl")
# After the restart, this long counts as "around the event" for the end-to-end latency.
AROUND_AFTER_SECONDS = 5.0

# name -> (broker, what is killed)
EVENTS = {
    "worker-kill": ("warren", "worker"),
    "broker-restart": ("warren", "broker"),
    "rabbitmq-worker-kill": ("rabbitmq", "worker"),
    "rabbitmq-broker-restart": ("rabbitmq", "broker"),
}
DESCRIBE = {
    "worker-kill": "notifier process SIGKILLed, restarted (same inbox)",
    "broker-restart": "warren SIGKILLed, restarted on its data folder",
    "rabbitmq-worker-kill": "notifier SIGKILLed against RabbitMQ",
    "rabbitmq-broker-restart": "rabbitmqctl stop_app / start_app",
}


def skip_reason(name, rabbit_listening):
    broker, what = EVENTS[name]
    if broker == "rabbitmq" and not rabbit_listening:
        return f"{name}: no RabbitMQ listening on 127.0.0.1:5672"
    if broker == "rabbitmq" and what == "broker" and not RABBITMQ_RESTART:
        return (f"{name}: not run (it stops the RabbitMQ other work may share; "
                "REF_BENCH_RABBITMQ_RESTART=1 runs it with rabbitmqctl stop_app / start_app)")
    return None


def rabbitmqctl(*args):
    r = subprocess.run([RABBITMQCTL, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"rabbitmqctl {' '.join(args)} failed: {r.stderr[-1000:]}")


def slowest_ms(res):
    v = res.get("summary", {}).get("slowest")
    return None if v is None else v * 1000.0


def run_event(name, capacity):
    broker, what = EVENTS[name]
    ldir = tempfile.mkdtemp(prefix="refbench-ledger-")
    w = h.Warren() if broker == "warren" else None
    url = w.url if w else h.RABBIT_URL
    prefix = f"refbench-{name}-{os.getpid()}"
    api = worker = sampler = None
    try:
        api = h.Service(url, prefix, ldir, role="api")
        worker = h.Service(url, prefix, ldir, role="notifier")
        ledger = Ledger(ldir)
        users = api.base + "/users" + (f"?{EVENT_QUERY}" if EVENT_QUERY else "")
        h.run_oha(users, requests=h.WARMUP_REQUESTS, connections=8, tag=f"{name}-warmup")
        ledger.wait_sent(ledger.ids_since(0), h.DRAIN_SECONDS)
        rate = max(1, round(capacity * EVENT_LOAD))
        t0 = time.time()
        sampler = Sampler(ledger, url, f"{prefix}.notify", t0)
        sampler.start()
        mark = ledger.mark()
        cmd = h.oha_cmd(users, rate=rate, seconds=EVENT_SECONDS, connections=h.connections_for(rate))
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(EVENT_SECONDS / 3)
        t_event = time.time() - t0
        if what == "worker":
            worker.kill9()
        elif w:
            w.kill9()
        else:
            rabbitmqctl("stop_app")
        time.sleep(EVENT_DOWN_SECONDS)
        t_back = time.time() - t0
        if what == "worker":
            worker.start()
        elif w:
            w.start()
        else:
            rabbitmqctl("start_app")
        t_up = time.time() - t0
        out, err = load.communicate()
        res, cmd_s = h.oha_result(cmd, load.returncode, out, err, f"{name}-load")
        ids = ledger.ids_since(mark)
        drained = ledger.wait_sent(ids, h.DRAIN_SECONDS)
        time.sleep(2)
        samples = sampler.stop()
        sampler = None
        lost, dups, completed, _ = ledger.account(ids)
        phases = {"before": [], "around": [], "after": []}
        per_second = {}
        for i in ids:
            e = ledger.sent.get(i)
            if e is None:
                continue
            t_acc = ledger.accepted[i] / 1e6 - t0
            ms = (e[1] - ledger.accepted[i]) / 1000.0
            phase = ("before" if t_acc < t_event else
                     "around" if t_acc < t_up + AROUND_AFTER_SECONDS else "after")
            phases[phase].append(ms)
            per_second.setdefault(int(t_acc), []).append(ms)
        pre = [b for t, b, _ in samples if t < t_event]
        pre_max = max(pre) if pre else 0
        peak = max((b for _, b, _ in samples), default=0)
        # Back to the pre-event backlog: the first sample after the peak (after the restart) at it.
        t_peak = max(((b, t) for t, b, _ in samples if t >= t_event), default=(0, t_up))[1]
        recovered = next((t for t, b, _ in samples if t > max(t_peak, t_up) and b <= max(pre_max, 1)), None)
        return {
            "event": name, "what": DESCRIBE[name], "rate": rate, "requests": h.all_count(res),
            "accepted": h.ok_count(res), "accepted_ids": len(ids), "completed": completed,
            "lost": lost, "duplicates": dups, "refused": h.all_count(res) - h.ok_count(res),
            "p50_ms": h.pct(res, "p50"), "p99_ms": h.pct(res, "p99"), "max_ms": slowest_ms(res),
            "e2e_p99_before_ms": percentile(phases["before"], 0.99),
            "e2e_p99_around_ms": percentile(phases["around"], 0.99),
            "e2e_p99_after_ms": percentile(phases["after"], 0.99),
            "backlog_before": pre_max, "backlog_peak": peak,
            "recovered_s": None if recovered is None else recovered - t_up, "drain_s": drained,
            "t_event": t_event, "t_back": t_back, "t_up": t_up, "samples": samples,
            "e2e_per_second": sorted((t, percentile(v, 0.99)) for t, v in per_second.items()),
            "command": cmd_s,
        }
    finally:
        if sampler:
            sampler.stop()
        for s in (api, worker):
            if s:
                s.stop()
        if w:
            w.stop()
        shutil.rmtree(ldir, ignore_errors=True)


def report_lines(rows, skipped):
    f = h.fmt
    lines = ["", "Mid-run events (API and notifier as separate processes, open loop at "
             f"{EVENT_LOAD:g}× inline capacity for {EVENT_SECONDS:g} s, the event at a third, "
             f"down {EVENT_DOWN_SECONDS:g} s{'; POST /users?' + EVENT_QUERY if EVENT_QUERY else ''}):", "",
             "| event | what | offered req/s | accepted | refused | lost | duplicates | HTTP p50 / p99 / max ms | "
             "e2e p99 ms before / around / after | backlog before → peak | back to it s after restart | drain s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['event']} | {r['what']} | {r['rate']} | {r['accepted']} | {r['refused']} | {r['lost']} | "
            f"{r['duplicates']} | {f(r['p50_ms'])} / {f(r['p99_ms'])} / {f(r['max_ms'])} | "
            f"{f(r['e2e_p99_before_ms'], 0)} / {f(r['e2e_p99_around_ms'], 0)} / {f(r['e2e_p99_after_ms'], 0)} | "
            f"{r['backlog_before']} → {r['backlog_peak']} | {f(r['recovered_s'])} | {f(r['drain_s'])} |")
    lines += ["", "refused = requests not answered 2xx (503 while the broker is down: the client "
              "retries; nothing was promised). lost = ids accepted (202 after the confirm) but never "
              "mailed; duplicates = mails sent again after a kill between the mail call and the "
              "inbox commit + ack (at-least-once, visible to the mail service)."]
    lines += [f"Skipped: {s}" for s in skipped]
    return lines


def plot_axes(ax, r):
    t = [s[0] for s in r["samples"]]
    ax.plot(t, [s[1] for s in r["samples"]], label="backlog (accepted − mailed)")
    ax.plot(t, [s[2] for s in r["samples"]], label="queue ready (broker)", linestyle="--")
    for x, c in ((r["t_event"], "red"), (r["t_up"], "green")):
        ax.axvline(x, color=c, linewidth=0.8)
    ax.set_ylabel("messages")
    ax2 = ax.twinx()
    pts = r["e2e_per_second"]
    ax2.plot([p[0] for p in pts], [p[1] for p in pts], color="grey", marker=".", linewidth=0.8,
             label="e2e p99 ms (by accept second)")
    ax2.set_yscale("log")
    ax2.set_ylabel("e2e p99 ms")
    ax.set_title(f"{r['event']}: {r['what']} (red: kill, green: back)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax2.legend(fontsize=7, loc="upper right")
