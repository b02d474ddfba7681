#!/usr/bin/env bash
# rabbitmqadmin v2 (the Rust CLI from crates.io, installed by
# scripts/install-test-deps.sh) driving warren's management API: queues,
# exchanges, bindings, publish/get, purge, definitions export/import,
# health checks. Starts its own warren (WARREN_BIN, default
# target/debug/warren) on free ports. Prints "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."

BIN=${WARREN_BIN:-target/debug/warren}
# scripts/install-test-deps.sh installs it into ~/.cache/warren/tools/ (WARREN_SKIP_RABBITMQADMIN=1 skips both).
if [ "${WARREN_SKIP_RABBITMQADMIN:-0}" = 1 ]; then
    echo "rabbitmqadmin: skipped (WARREN_SKIP_RABBITMQADMIN=1)"
    exit 0
fi
ADMIN=${RABBITMQADMIN:-${RABBITMQADMIN_ROOT:-$HOME/.cache/warren/tools}/bin/rabbitmqadmin}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AMQP=$(free_port); HTTP=$(free_port)
LOG=$(mktemp)
"$BIN" serve --in-memory --bind 127.0.0.1 --port "$AMQP" --management-port "$HTTP" --prometheus-port 0 \
    --collect-statistics-interval-ms 100 >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG" "$DEFS"' EXIT
DEFS=$(mktemp --suffix .json)
for _ in $(seq 100); do
    curl -sf -u guest:guest "http://127.0.0.1:$HTTP/api/overview" >/dev/null && break
    sleep 0.1
done

R() { "$ADMIN" --host 127.0.0.1 --port "$HTTP" --username guest --password guest --non-interactive "$@"; }
passed=0; failed=0
check() { # name, command...; passes when the command succeeds
    local name=$1; shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /'
    fi
}
has() { # name, pattern, command...; passes when the output matches
    local name=$1 pat=$2; shift 2
    local out; out=$("$@" 2>&1)
    if grep -qE -- "$pat" <<<"$out"; then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name (no /$pat/ in:)"; echo "$out" | sed 's/^/     /'
    fi
}

Q=rmqa-q-$$; X=rmqa-x-$$
has   "show overview" "RabbitMQ version" R show overview
check "declare queue" R declare queue --name "$Q" --type classic --durable true
check "declare exchange" R declare exchange --name "$X" --type topic
check "declare binding" R declare binding --source "$X" --destination-type queue --destination "$Q" --routing-key "a.#"
has   "list queues" "^$Q " R list queues
has   "list exchanges" "^$X " R list exchanges
has   "list bindings" "$X +$Q +queue +a\.#" R list bindings
has   "publish routed" "routed" R publish message --exchange "$X" --routing-key a.b --payload hello
has   "get message" "hello" R get messages --queue "$Q" --count 1 --ack-mode ack_requeue_false
check "definitions export" R definitions export --file "$DEFS"
has   "export has the queue" "\"name\":\"$Q\"" cat "$DEFS"
check "purge queue" R purge queue --name "$Q"
check "delete binding" R delete binding --source "$X" --destination-type queue --destination "$Q" --routing-key "a.#"
check "delete queue" R delete queue --name "$Q"
check "delete exchange" R delete exchange --name "$X"
check "definitions import" R definitions import --file "$DEFS"
has   "queue back after import" "^$Q " R list queues
has   "binding back after import" "$X +$Q +queue" R list bindings
has   "health check: local alarms" "passed" R health_check local_alarms
has   "health check: port listener" "passed" R health_check port_listener --port "$AMQP"
check "list connections" R list connections
check "list channels" R list channels

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
