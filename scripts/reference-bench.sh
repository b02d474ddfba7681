#!/usr/bin/env bash
# The guide's claim, measured honestly: the reference service (crates/reference-service) with
# the same slow "mail" work, inline in the HTTP handler vs publish-and-return, confirm awaited
# vs fire-and-forget, persistent vs transient, a connection per request (as the guide did) vs
# the kit's shared channels, warren vs RabbitMQ. Open-loop load at fixed rates with oha (`-q`,
# `--latency-correction`), from 10% to 150% of the inline capacity, plus a burst.
#
# Not part of the test suite or CI. Knobs (environment):
#   REF_BENCH_SMOKE=1         tiny run (< 60 s, debug build, two variants, two rates): checks the
#                             script works; its numbers mean nothing
#   REF_BENCH_SECONDS=10      duration of each load step
#   REF_BENCH_RATES="0.1 0.25 0.5 0.75 1.0 1.25 1.5"   offered load, fractions of inline capacity
#   REF_BENCH_VARIANTS=""     only these variants (space separated; empty = all):
#                             inline publish fire-and-forget transient per-request
#                             per-request-confirm rabbitmq-publish rabbitmq-per-request
#   REF_BENCH_P99_MS=100      the p99 target for "accepted req/s at p99 target"
#   REF_BENCH_MAIL_LATENCY_MS=20  REF_BENCH_MAIL_CONCURRENCY=8   the slow dependency
#   REF_BENCH_DRAIN_SECONDS=60    how long to wait for the workers to finish after a step
#   REF_BENCH_PROFILE=release     cargo profile of warren and the service (smoke: debug)
#   REF_BENCH_EVENTS="worker-kill broker-restart rabbitmq-worker-kill rabbitmq-broker-restart"
#                             mid-run events ("none": skip); API and notifier as separate processes
#   REF_BENCH_EVENT_SECONDS=30  REF_BENCH_EVENT_LOAD=0.5  REF_BENCH_EVENT_DOWN_SECONDS=3
#                             load through each event (fraction of inline capacity), the event at a
#                             third of it, down this long before the restart
#   REF_BENCH_EVENT_QUERY=""  query knobs of the events' load ("confirm=0&persistent=0": a control
#                             run where a broker restart must show lost > 0)
#   REF_BENCH_RABBITMQ_RESTART=0  1: rabbitmq-broker-restart runs `rabbitmqctl stop_app/start_app`
#                             (REF_BENCH_RABBITMQCTL=rabbitmqctl); off by default: a shared broker
#   REF_BENCH_BUILD=1         0: do not run cargo build
#   AMQP_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f  RabbitMQ (skipped if not listening)
# Output: target/reference-bench/<UTC time>/ with results.md (a table for docs/benchmarks.md),
# results.csv, events.csv, backlog.csv, latency.png, backlog.png and each step's raw oha JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${REF_BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
    PROFILE=${REF_BENCH_PROFILE:-debug}
    export REF_BENCH_SECONDS=${REF_BENCH_SECONDS:-3}
    export REF_BENCH_RATES=${REF_BENCH_RATES:-"0.25 1.0"}
    export REF_BENCH_VARIANTS=${REF_BENCH_VARIANTS:-"inline publish"}
    export REF_BENCH_DRAIN_SECONDS=${REF_BENCH_DRAIN_SECONDS:-8}
    export REF_BENCH_CAPACITY_SECONDS=${REF_BENCH_CAPACITY_SECONDS:-2}
    export REF_BENCH_BURST=${REF_BENCH_BURST:-0}
    export REF_BENCH_EVENTS=${REF_BENCH_EVENTS:-"worker-kill broker-restart"}
    export REF_BENCH_EVENT_SECONDS=${REF_BENCH_EVENT_SECONDS:-9}
else
    PROFILE=${REF_BENCH_PROFILE:-release}
fi

# The load tool: oha from crates.io, cached outside the checkout (like rabbitmqadmin in
# scripts/install-test-deps.sh). Debian's wrk is closed-loop only (no fixed rate), so not used.
OHA_VERSION=1.16.0
TOOLS=${REF_BENCH_TOOLS:-$HOME/.cache/warren/tools}
OHA="$TOOLS/bin/oha"
if ! "$OHA" --version 2>/dev/null | grep -q "$OHA_VERSION"; then
    echo "installing oha $OHA_VERSION into $TOOLS (once; takes a few minutes)" >&2
    cargo install --quiet --locked --root "$TOOLS" --version "$OHA_VERSION" oha
fi

# The plots: matplotlib from PyPI into the project's .venv; pika for the queue-depth sampler.
VENV=.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import matplotlib, pika' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'matplotlib==3.10.8' 'pika==1.3.2'
fi

if [ "${REF_BENCH_BUILD:-1}" = 1 ]; then
    if [ "$PROFILE" = release ]; then
        cargo build --release -p warren -p warren-reference-service
    else
        cargo build -p warren -p warren-reference-service
    fi
fi

OUT=target/reference-bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
export REF_BENCH_OHA="$OHA" REF_BENCH_OUT="$OUT" REF_BENCH_SMOKE="$SMOKE"
export REF_BENCH_WARREN="target/$PROFILE/warren"
export REF_BENCH_SERVICE="target/$PROFILE/reference-service"
exec "$VENV/bin/python" scripts/reference_bench.py
