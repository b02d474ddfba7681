#!/usr/bin/env python3
"""HTTP load for bench.sh: GETs URLs in a loop until SIGTERM, then writes a JSON summary.

Usage: poll.py --out FILE [--interval S] [--user U --password P] URL [URL ...]
The URLs are requested one after the other on one keep-alive connection per host
(`--interval 0`: back to back; otherwise each round of URLs starts every S seconds,
as a Prometheus scrape does). The summary: requests, errors (non-200 or socket
errors, the first one's text), and per URL the request durations p50 / p99 / max in
ms and the median response size. Standard library only.
"""
import argparse
import base64
import http.client
import json
import signal
import statistics
import sys
import time
import urllib.parse

STOP = False


def stop(_sig, _frame):
    global STOP
    STOP = True


def pct(vals, p):
    s = sorted(vals)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--user")
    ap.add_argument("--password", default="")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take")
    ap.add_argument("urls", nargs="+")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    headers = {"Accept-Encoding": "identity"}
    if a.user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
    parsed = [urllib.parse.urlsplit(u) for u in a.urls]
    conns = {}
    durations = {u: [] for u in a.urls}
    sizes = {u: [] for u in a.urls}
    errors, first_error = 0, None
    while not STOP:
        t_round = time.monotonic()
        for url, p in zip(a.urls, parsed):
            if STOP:
                break
            conn = conns.get(p.netloc)
            if conn is None:
                conn = conns[p.netloc] = http.client.HTTPConnection(p.netloc, timeout=a.timeout)
            path = p.path + ("?" + p.query if p.query else "")
            t0 = time.monotonic()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conns.pop(p.netloc, None)
                errors += 1
                first_error = first_error or f"{url}: {e!r}"
                time.sleep(0.1)
                continue
            dt = (time.monotonic() - t0) * 1000
            if status != 200:
                errors += 1
                first_error = first_error or f"{url}: HTTP {status} {body[:200]!r}"
                continue
            durations[url].append(dt)
            sizes[url].append(len(body))
        if a.interval > 0:
            left = a.interval - (time.monotonic() - t_round)
            while left > 0 and not STOP:
                time.sleep(min(left, 0.05))
                left = a.interval - (time.monotonic() - t_round)
    out = {"requests": sum(len(v) for v in durations.values()), "errors": errors, "urls": {}}
    if first_error:
        out["first_error"] = first_error
    for url in a.urls:
        d = durations[url]
        out["urls"][url] = {"requests": len(d), "p50_ms": pct(d, 50), "p99_ms": pct(d, 99),
                            "max_ms": max(d) if d else None,
                            "bytes_median": statistics.median(sizes[url]) if sizes[url] else None}
    with open(a.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    sys.exit(main())
