#!/usr/bin/env bash
# Publish-with-confirm and consume throughput through service-kit vs raw lapin vs raw amqprs on the
# same broker (crates/service-kit/examples/bench_clients.rs), and the kit's overhead per message.
# Starts a warren of its own (fresh data folder, port below) and, if RABBITMQ_URL is set, runs the
# same cases against that RabbitMQ too; several rounds, then a Markdown table of the medians.
#
# Not part of the test suite or CI. Knobs (environment):
#   CLIENTS_BENCH_ROUNDS=3        rounds (each runs every client × size × case)
#   CLIENTS_BENCH_COUNT=50000     messages per case
#   CLIENTS_BENCH_SIZES=16,1024   body sizes, bytes
#   CLIENTS_BENCH_WINDOW=256      unconfirmed publishes allowed
#   CLIENTS_BENCH_PREFETCH=256    consumer prefetch
#   CLIENTS_BENCH_TRANSIENT=0     1: delivery mode 1 (default: persistent, the kit's default)
#   CLIENTS_BENCH_PROFILE=release cargo profile (debug: to check the script, numbers mean nothing)
#   CLIENTS_BENCH_BUILD=1         0: do not run cargo build
#   CLIENTS_BENCH_PORT=5699       warren's AMQP port
#   RABBITMQ_URL=                 e.g. amqp://guest:guest@127.0.0.1:5672/%2f
# Output: target/bench-clients/<UTC time>/ with raw.jsonl (every BENCH line) and results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${CLIENTS_BENCH_ROUNDS:-3}
COUNT=${CLIENTS_BENCH_COUNT:-50000}
SIZES=${CLIENTS_BENCH_SIZES:-16,1024}
WINDOW=${CLIENTS_BENCH_WINDOW:-256}
PREFETCH=${CLIENTS_BENCH_PREFETCH:-256}
PROFILE=${CLIENTS_BENCH_PROFILE:-release}
PORT=${CLIENTS_BENCH_PORT:-5699}

if [ "${CLIENTS_BENCH_BUILD:-1}" = 1 ]; then
    if [ "$PROFILE" = release ]; then
        cargo build --release -p warren -p service-kit --example bench_clients
    else
        cargo build -p warren -p service-kit --example bench_clients
    fi
fi
WARREN=target/$PROFILE/warren
BENCH=target/$PROFILE/examples/bench_clients

OUT=target/bench-clients/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
DATA=$OUT/warren-data
WARREN_PID=
cleanup() {
    if [ -n "$WARREN_PID" ]; then kill "$WARREN_PID" 2>/dev/null || true; wait "$WARREN_PID" 2>/dev/null || true; fi
    rm -rf "$DATA"
}
trap cleanup EXIT

"$WARREN" serve --bind 127.0.0.1 --port "$PORT" --management-port 0 --prometheus-port 0 \
    --data-dir "$DATA" >"$OUT/warren.log" 2>&1 &
WARREN_PID=$!
for _ in $(seq 3000); do
    grep -q "listening on" "$OUT/warren.log" && break
    kill -0 "$WARREN_PID" 2>/dev/null || { cat "$OUT/warren.log" >&2; exit 1; }
    sleep 0.01
done
grep -q "listening on" "$OUT/warren.log" || { echo "warren did not start" >&2; exit 1; }

BROKERS=("warren=amqp://guest:guest@127.0.0.1:$PORT/%2f")
if [ -n "${RABBITMQ_URL:-}" ]; then BROKERS+=("rabbitmq=$RABBITMQ_URL"); fi
EXTRA=()
if [ "${CLIENTS_BENCH_TRANSIENT:-0}" = 1 ]; then EXTRA+=(--transient); fi

for round in $(seq "$ROUNDS"); do
    for b in "${BROKERS[@]}"; do
        name=${b%%=*}
        url=${b#*=}
        echo "[bench-clients] round $round/$ROUNDS on $name" >&2
        "$BENCH" --url "$url" --broker "$name" --count "$COUNT" --sizes "$SIZES" \
            --window "$WINDOW" --prefetch "$PREFETCH" "${EXTRA[@]}" |
            tee -a "$OUT/raw.log" | sed -n 's/^BENCH //p' >>"$OUT/raw.jsonl"
    done
done

python3 - "$OUT/raw.jsonl" "$ROUNDS" "$PROFILE" >"$OUT/results.md" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds, profile = sys.argv[2], sys.argv[3]
groups = defaultdict(list)
for r in rows:
    groups[(r["broker"], r["case"], r["size"], r["client"])].append(r)
order = {"lapin": 0, "kit": 1, "amqprs": 2}
if rows:
    r0 = rows[0]
    print(f"{r0['count']} messages per case, window {r0['window']}, prefetch {r0['prefetch']}, "
          f"{'persistent' if r0['persistent'] else 'transient'}, median of {rounds} rounds "
          f"({profile} build). µs/msg = 1e6 / (msgs/s); \"vs lapin\" = µs/msg minus raw lapin's "
          f"(the kit's overhead per message on the kit rows).")
    print()
print("| broker | case | size (B) | client | msgs/s | µs/msg | vs lapin (µs/msg) | rounds |")
print("|---|---|---:|---|---:|---:|---:|---:|")
for key in sorted(groups, key=lambda k: (k[0], k[1] != "publish_confirm", k[2], order.get(k[3], 9))):
    g = groups[key]
    rate = statistics.median(x["msgs_per_s"] for x in g)
    us = statistics.median(x["us_per_msg"] for x in g)
    vs = [x["vs_lapin_us"] for x in g if x["vs_lapin_us"] is not None]
    vs_s = f"{statistics.median(vs):+.2f}" if vs and key[3] != "lapin" else "—"
    print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {rate:,.0f} | {us:.2f} | {vs_s} | {len(g)} |")
EOF
cat "$OUT/results.md"
echo "[bench-clients] results in $OUT/results.md, raw lines in $OUT/raw.jsonl" >&2
