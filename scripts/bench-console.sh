#!/usr/bin/env bash
# Console page-load times with 10,000 queues (issue 11; docs/benchmarks.md): a release warren,
# BENCH_QUEUES queues declared through /api/definitions, Chromium headless through playwright-core
# (the console suite's setup: tests/console, Debian's chromium) timing, over BENCH_LOADS fresh
# logins: overview rendered after login, the queues page's first page, the next page, a name filter.
# Prints a Markdown table (p50 / p95 / max ms).
#
# Not part of the test suite or CI. Knobs (environment):
#   BENCH_QUEUES=10000   BENCH_LOADS=5
#   BENCH_PROFILE=release   cargo profile of warren (debug: quick check of the script)
#   BENCH_BUILD=1           0: do not run cargo build
#   BENCH_RABBITMQ=0        1: also RabbitMQ 3.10's own console on 127.0.0.1:15672 (guest/guest);
#                           declares BENCH_QUEUES queues benchconsole-* there and deletes them after
#   CHROMIUM=/usr/bin/chromium
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${BENCH_PROFILE:-release}
if [ "${BENCH_BUILD:-1}" = 1 ]; then
    if [ "$PROFILE" = release ]; then cargo build --release -p warren; else cargo build -p warren; fi
fi
[ -d tests/console/node_modules/playwright-core ] || (cd tests/console && npm ci --no-audit --no-fund --silent)
echo "console page load, $(nproc) CPUs, git $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), warren $PROFILE" >&2
# An ephemeral Prometheus port: 15692 may be taken by another broker on the machine.
WARREN_PROMETHEUS_PORT=${WARREN_PROMETHEUS_PORT:-0} WARREN_BIN="$PWD/target/$PROFILE/warren" exec node tests/console/bench-console.mjs
