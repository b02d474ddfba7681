#!/usr/bin/env bash
# warren vs RabbitMQ with warren-perf (and, in baseline mode, warren before vs after);
# writes the results into docs/benchmarks.md (between the bench:begin/bench:end markers).
#
# Not part of the test suite. Knobs (environment):
#   BENCH_SECONDS=10        duration of each timed run
#   BENCH_ROUNDS=3          rounds per scenario and broker (medians are reported)
#   BENCH_CASES=""          run only these cases (space-separated; empty = all). Cases:
#                             sink relay tp-1p1c-16B tp-1p1c-1KiB tp-persistent-confirm
#                             tp-10p10c10q-256B latency-1k-persistent persistent-publish-1p
#                             persistent-publish-10p connection-churn queue-churn priority-10
#                             delayed publish-drain idle-connections latency-idle-conns
#                             topology big-queue recovery tp-permissions tls-1p1c
#                             api-under-load scrape-10k
#                           e.g. BENCH_CASES="tp-1p1c-16B priority-10" for a quick check
#   BENCH_BASELINE=/path/to/old/warren  baseline mode: every warren case also runs against
#                           this binary, rounds alternating (baseline, warren, rabbitmq, ...),
#                           each warren run on a freshly started process with a fresh data
#                           dir; the report adds a before/after table (medians, after/before,
#                           a flag on rows more than 5% worse). Build it with the same profile.
#   BENCH_BASELINE_SKIP="priority-10 delayed tp-permissions tls-1p1c api-under-load scrape-10k"
#                           cases not run against the baseline: features newer than it (at
#                           44e7b82 x-max-priority is accepted but ignored, so priority-10
#                           would measure a FIFO queue, x-delayed-message is refused with 503;
#                           users, TLS, the management API and Prometheus came later); set
#                           to "" for a baseline that has them
#   BENCH_BASELINE_REV      label of the baseline (default: git rev of the checkout holding it)
#   BENCH_BUILD=1           0: do not run cargo build (use the existing target/release)
#   BENCH_DRAIN_COUNT=1000000   messages in the publish-then-drain scenario (fresh
#                           brokers for every round, so the RSS growth is clean)
#   BENCH_BIG_COUNT=10000000    messages in the "many queued" scenario (warren only)
#   BENCH_RECOVERY_COUNTS="1000000 10000000"  persistent backlogs for the recovery runs
#   BENCH_RECOVERY_SIGNAL=KILL  how warren is stopped before the recovery restart
#   BENCH_IDLE_CONNS=10000  idle connections, for idle-connections and latency-idle-conns
#                           (needs ulimit -n above this)
#   BENCH_CHURN_COUNT=2000  connections / queues in the churn scenarios
#   BENCH_DELAYED_COUNT=100000  delayed messages (warren only: RabbitMQ has no
#                           delayed-message plugin here), delays spread over
#   BENCH_DELAYED_MIN_MS=2000 .. BENCH_DELAYED_MIN_MS + BENCH_DELAYED_WINDOW_MS=10000
#   BENCH_TOPOLOGY_QUEUES=10000, BENCH_TOPOLOGY_BINDINGS=100000  topology size (both brokers)
#   BENCH_TOPOLOGY_MESSAGES=20000  messages published through each of its two exchanges
#                           (the topic exchange holds half the bindings; a publish there
#                           costs RabbitMQ and older warrens a lot: keep this modest)
#   BENCH_TOPOLOGY_ROUNDS=1 rounds of the topology case (a RabbitMQ run takes ~1.5 min)
#   BENCH_TOPOLOGY_TIMEOUT=900  seconds a topology run may take; a slower one is reported
#                           as "timed out after N s"
#   BENCH_MANY_QUEUES=10000 queues held during api-under-load and scrape-10k (both brokers)
#   WARREN_MGMT_PORT=15673 WARREN_PROM_PORT=15693 WARREN_TLS_PORT=5676  warren's HTTP and
#                           AMQPS ports for the cases that use them (off otherwise)
#   RABBIT_MGMT_PORT=15674 RABBIT_PROM_PORT=15694 RABBIT_TLS_PORT=5675  the same for the
#                           private RabbitMQ node (plugins enabled only for those cases)
#   BENCH_PROFILE=1         perf-record warren during each case in BENCH_PROFILE_CASES
#   BENCH_PROFILE_CASES="tp-1p1c-16B ..."  cases to profile (report.py shows the
#                           profiles of the cases whose targets are not met)
#   BENCH_RABBIT=dedicated  start a private RabbitMQ node on port 5674 (own fd limit,
#                           no load from others); "system" uses the node on 5672
#   BENCH_OUT=docs/benchmarks.md
#
# Smoke run (minutes; numbers meaningless, do not commit them):
#   BENCH_SECONDS=1 BENCH_ROUNDS=1 BENCH_DRAIN_COUNT=10000 BENCH_BIG_COUNT=10000 \
#   BENCH_RECOVERY_COUNTS=10000 BENCH_IDLE_CONNS=200 BENCH_CHURN_COUNT=100 \
#   BENCH_DELAYED_COUNT=1000 BENCH_DELAYED_MIN_MS=200 BENCH_DELAYED_WINDOW_MS=500 \
#   BENCH_TOPOLOGY_QUEUES=100 BENCH_TOPOLOGY_BINDINGS=1000 BENCH_TOPOLOGY_MESSAGES=1000 \
#   BENCH_MANY_QUEUES=300 BENCH_PROFILE=0 BENCH_OUT=/tmp/bench-smoke.md scripts/bench.sh
# (BENCH_SECONDS=1 often leaves a run with no complete one-second sample: its rates
# show as 0; use 2 to see numbers.)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CASES=${BENCH_CASES:-}
BENCH_BASELINE=${BENCH_BASELINE:-}
BENCH_BASELINE_SKIP=${BENCH_BASELINE_SKIP-"priority-10 delayed tp-permissions tls-1p1c api-under-load scrape-10k"}
BENCH_BUILD=${BENCH_BUILD:-1}
BENCH_DRAIN_COUNT=${BENCH_DRAIN_COUNT:-1000000}
BENCH_IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
BENCH_CHURN_COUNT=${BENCH_CHURN_COUNT:-2000}
BENCH_BIG_COUNT=${BENCH_BIG_COUNT:-10000000}
BENCH_RECOVERY_COUNTS=${BENCH_RECOVERY_COUNTS:-"1000000 10000000"}
BENCH_RECOVERY_SIGNAL=${BENCH_RECOVERY_SIGNAL:-KILL}
BENCH_DELAYED_COUNT=${BENCH_DELAYED_COUNT:-100000}
BENCH_DELAYED_MIN_MS=${BENCH_DELAYED_MIN_MS:-2000}
BENCH_DELAYED_WINDOW_MS=${BENCH_DELAYED_WINDOW_MS:-10000}
BENCH_TOPOLOGY_QUEUES=${BENCH_TOPOLOGY_QUEUES:-10000}
BENCH_TOPOLOGY_BINDINGS=${BENCH_TOPOLOGY_BINDINGS:-100000}
BENCH_TOPOLOGY_MESSAGES=${BENCH_TOPOLOGY_MESSAGES:-20000}
BENCH_TOPOLOGY_ROUNDS=${BENCH_TOPOLOGY_ROUNDS:-1}
BENCH_TOPOLOGY_TIMEOUT=${BENCH_TOPOLOGY_TIMEOUT:-900}
BENCH_MANY_QUEUES=${BENCH_MANY_QUEUES:-10000}
WARREN_MGMT_PORT=${WARREN_MGMT_PORT:-15673}
WARREN_PROM_PORT=${WARREN_PROM_PORT:-15693}
WARREN_TLS_PORT=${WARREN_TLS_PORT:-5676}
RABBIT_MGMT_PORT=${RABBIT_MGMT_PORT:-15674}
RABBIT_PROM_PORT=${RABBIT_PROM_PORT:-15694}
RABBIT_TLS_PORT=${RABBIT_TLS_PORT:-5675}
BENCH_PROFILE=${BENCH_PROFILE:-1}
BENCH_PROFILE_CASES=${BENCH_PROFILE_CASES:-"tp-1p1c-16B tp-1p1c-1KiB tp-persistent-confirm tp-10p10c10q-256B persistent-publish-1p persistent-publish-10p latency-1k-persistent publish-drain"}
BENCH_RABBIT=${BENCH_RABBIT:-dedicated}
BENCH_OUT=${BENCH_OUT:-docs/benchmarks.md}
WARREN_PORT=${WARREN_PORT:-5673}
PERF=$ROOT/target/release/warren-perf
declare -A BIN=([warren]=$ROOT/target/release/warren)
# shellcheck source=bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"

ALL_CASES="sink relay tp-1p1c-16B tp-1p1c-1KiB tp-persistent-confirm tp-10p10c10q-256B
  latency-1k-persistent persistent-publish-1p persistent-publish-10p connection-churn queue-churn
  priority-10 delayed publish-drain idle-connections latency-idle-conns topology big-queue recovery
  tp-permissions tls-1p1c api-under-load scrape-10k"
for c in $BENCH_CASES; do
  in_list "$c" "$(echo $ALL_CASES)" || { log "unknown case in BENCH_CASES: $c (known: $(echo $ALL_CASES))"; exit 2; }
done
WARRENS=warren # the warren flavours every warren case runs against
if [ -n "$BENCH_BASELINE" ]; then
  [ -x "$BENCH_BASELINE" ] || { log "BENCH_BASELINE=$BENCH_BASELINE is not an executable"; exit 2; }
  BIN[baseline]=$(readlink -f "$BENCH_BASELINE")
  WARRENS="baseline warren"
  BENCH_BASELINE_REV=${BENCH_BASELINE_REV:-$(git -C "$(dirname "${BIN[baseline]}")" rev-parse --short HEAD 2>/dev/null || echo unknown)}
fi
BROKERS="$WARRENS rabbitmq"
RUN_DIR=$(mktemp -d /tmp/warren-bench.XXXXXX)
chmod 755 "$RUN_DIR" # the private RabbitMQ node runs as user rabbitmq

# --- file descriptors: 10k idle connections need >10k fds in every process ---------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((BENCH_IDLE_CONNS + 200)) ]; then
  BENCH_IDLE_CONNS=$((FD_LIMIT - 200))
  log "ulimit -n is $FD_LIMIT; idle connections reduced to $BENCH_IDLE_CONNS"
fi

# --- build -------------------------------------------------------------------------
if [ "$BENCH_BUILD" = 1 ]; then
  log "building warren and warren-perf (release)"
  cargo build --release -p warren -p warren-perf >&2
fi

# --- brokers -----------------------------------------------------------------------
trap cleanup EXIT
TLS_DIR=
if want tls-1p1c; then make_certs || TLS_DIR=; fi # before start_rabbit: its AMQPS listener
start_warren
start_rabbit
URI=([warren]="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2f"
     [baseline]="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2f"
     [rabbitmq]="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f")
log "warren pid $WARREN_PID on $WARREN_PORT; rabbitmq pid $RABBIT_PID on $RABBIT_PORT; results in $RUN_DIR"
[ -z "$BENCH_BASELINE" ] || log "baseline mode: ${BIN[baseline]} ($BENCH_BASELINE_REV) on $WARREN_PORT, alternating with warren"
: >"$RUN_DIR/commands.txt"

S=$BENCH_SECONDS
R=$BENCH_ROUNDS
if want sink; then
  # Generator ceiling: publish-only against the discard-everything sink.
  "$PERF" sink --port 0 >"$RUN_DIR/sink.out" 2>/dev/null &
  SINK_PID=$!
  sleep 0.5
  SINK_URI="amqp://guest:guest@$(sed -n 's/listening on //p' "$RUN_DIR/sink.out")/%2f"
  for c in none 1000; do
    conf=(); [ $c = none ] || conf=(--confirm "$c")
    "$PERF" throughput --uri "$SINK_URI" --consumers 0 --size 16 --duration "$S" "${conf[@]}" \
      --json "$RUN_DIR/sink-16B-confirm-$c.json" >>"$RUN_DIR/perf.log" 2>&1
  done
  kill "$SINK_PID"
fi

if want relay; then
  # Raw TCP relay baseline (see crates/warren-perf/src/relay.rs): pre-encoded
  # deliveries written to one socket, copied by a separate relay process to a second
  # socket, parsed and counted by the generator's consumer code.
  "$PERF" relay --port 0 >"$RUN_DIR/relay.out" 2>/dev/null &
  RELAY_PID=$!
  sleep 0.5
  RELAY_ADDR=$(sed -n 's/listening on //p' "$RUN_DIR/relay.out")
  for size in 16 1024; do
    echo "[relay-${size}B] warren-perf relay-throughput --addr RELAY --size $size --duration $S --json FILE" \
      >>"$RUN_DIR/commands.txt"
    for round in $(seq "$R"); do
      log "relay baseline ${size} B / round $round"
      "$PERF" relay-throughput --addr "$RELAY_ADDR" --size "$size" --duration "$S" \
        --json "$RUN_DIR/relay-${size}B__relay__${round}.json" >>"$RUN_DIR/perf.log" 2>&1 || true
    done
  done
  kill "$RELAY_PID"; RELAY_PID=
fi

T=(throughput --uri {URI} --duration "$S")
LAT=(latency --uri {URI} --duration "$S" --rate 1000 --size 16 --persistent --durable-queue
     --confirm 1000 --prefetch 1000 --multiple-ack 1)
run_case tp-1p1c-16B "$R" "${T[@]}" --size 16 --auto-ack
run_case tp-1p1c-1KiB "$R" "${T[@]}" --size 1024 --auto-ack
run_case tp-persistent-confirm "$R" "${T[@]}" --size 16 --persistent --durable-queue \
  --confirm 1000 --prefetch 1000 --multiple-ack 100
run_case tp-10p10c10q-256B "$R" "${T[@]}" --producers 10 --consumers 10 --queues 10 --size 256 \
  --prefetch 1000 --multiple-ack 100
run_case latency-1k-persistent "$R" "${LAT[@]}"
# Persistent publish rate with confirms, no consumers (issue 4): 1 and 10 publishers,
# one durable queue each.
run_case persistent-publish-1p "$R" "${T[@]}" --producers 1 --consumers 0 --queues 1 --size 16 \
  --persistent --durable-queue --confirm 1000
run_case persistent-publish-10p "$R" "${T[@]}" --producers 10 --consumers 0 --queues 10 --size 16 \
  --persistent --durable-queue --confirm 1000
run_case connection-churn "$R" connection-churn --uri {URI} --count "$BENCH_CHURN_COUNT"
run_case queue-churn "$R" queue-churn --uri {URI} --count "$BENCH_CHURN_COUNT"
# Priority queue: tp-1p1c-16B with x-max-priority 10, priorities 0..9 cycling.
run_case priority-10 "$R" "${T[@]}" --size 16 --auto-ack --max-priority 10
# Delayed messages (x-delayed-message exchange): warren only, RabbitMQ has no plugin here.
BROKERS=$WARRENS run_case delayed "$R" delayed --uri {URI} --count "$BENCH_DELAYED_COUNT" \
  --delay-min-ms "$BENCH_DELAYED_MIN_MS" --window-ms "$BENCH_DELAYED_WINDOW_MS"

# Memory scenarios: both brokers fresh (empty data dirs, just started) per round.
PD=(publish-drain --uri {URI} --count "$BENCH_DRAIN_COUNT" --size 16 --persistent --durable-queue
    --confirm 1000 --prefetch 1000 --multiple-ack 100 --broker-pid {PID})
if want publish-drain; then
  for round in $(seq "$R"); do
    log "fresh brokers for publish-drain round $round"
    fresh_brokers
    ROUND_OFFSET=$((round - 1)) run_case publish-drain 1 "${PD[@]}"
  done
fi
if want idle-connections; then
  log "fresh brokers for idle connections"
  fresh_brokers
  sleep 5 # let both settle after start-up before the "before" RSS
  SETTLE_S=5 run_case idle-connections 1 idle-connections --uri {URI} --count "$BENCH_IDLE_CONNS" \
    --hold 5 --broker-pid {PID}
fi
# Publish latency while BENCH_IDLE_CONNS idle connections are held open (same
# command as latency-1k-persistent).
if want latency-idle-conns; then
  log "fresh brokers for latency with $BENCH_IDLE_CONNS idle connections"
  fresh_brokers
  HOLD_IDLE=$BENCH_IDLE_CONNS run_case latency-idle-conns "$R" "${LAT[@]}"
fi
# Large topology (fresh brokers: a timed-out run may leave its queues behind).
if want topology; then
  log "fresh brokers for the topology"
  fresh_brokers
  CASE_TIMEOUT=$BENCH_TOPOLOGY_TIMEOUT run_case topology "$BENCH_TOPOLOGY_ROUNDS" topology --uri {URI} \
    --queues "$BENCH_TOPOLOGY_QUEUES" --bindings "$BENCH_TOPOLOGY_BINDINGS" \
    --messages "$BENCH_TOPOLOGY_MESSAGES" --deletes $((BENCH_TOPOLOGY_QUEUES / 10))
fi

# Many queued messages: warren only (RabbitMQ would need minutes and gigabytes; see notes).
if want big-queue; then
  log "fresh warren for $BENCH_BIG_COUNT queued messages"
  stop_warren
  BROKERS=$WARRENS run_case big-queue 1 publish-drain --uri {URI} --count "$BENCH_BIG_COUNT" \
    --size 16 --confirm 1000 --prefetch 1000 --multiple-ack 100 --broker-pid {PID}
fi

# Recovery: publish N persistent messages to a durable queue (confirmed), stop warren
# with SIG$BENCH_RECOVERY_SIGNAL, restart it on the same data dir and time start-up;
# then drain to check that every message came back. In baseline mode both binaries,
# alternating per backlog size; the baseline's files are recovery-N.baseline.*.
# recovery_run N FLAVOR
recovery_run() {
  local n=$1 flavor=$2 sfx=""
  [ "$flavor" = warren ] || sfx=.$flavor
  log "recovery of $n persistent messages ($flavor)"
  stop_warren; WARREN_FLAVOR=$flavor; start_warren
  local q=recovery-$n txt=$RUN_DIR/recovery-$n$sfx.txt
  "$PERF" publish-drain --uri "${URI[$flavor]}" --phase publish --queue "$q" --count "$n" --size 16 \
    --persistent --durable-queue --confirm 1000 --broker-pid "$WARREN_PID" \
    --json "$RUN_DIR/recovery-$n-publish$sfx.json" >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/recovery.stderr" \
    || log "FAILED: recovery publish of $n ($flavor)"
  du -sk "$RUN_DIR/warren-data" | awk '{print "data_dir_kib=" $1}' >"$txt"
  stop_warren "$BENCH_RECOVERY_SIGNAL"
  start_warren keep
  {
    echo "t0=$WARREN_T0"
    echo "rss_after_start_kib=$(awk '/VmRSS/ {print $2}' /proc/$WARREN_PID/status)"
    grep -m1 "recovered durable state" "$WARREN_LOG" | sed 's/^/recovered_line=/'
    grep -m1 "listening on" "$WARREN_LOG" | sed 's/^/listening_line=/'
  } >>"$txt"
  if [ "$flavor" = warren ] && [ "$BENCH_PROFILE" = 1 ] && command -v perf >/dev/null \
      && [ "$n" = "${BENCH_RECOVERY_COUNTS##* }" ]; then
    # Profile a second restart on the same data (the timed one above ran without perf).
    log "profiling the recovery of $n messages"
    stop_warren KILL
    perf record -g -o "$RUN_DIR/perf-recovery.data" -- "${BIN[warren]}" serve --port "$WARREN_PORT" --management-port 0 --prometheus-port 0 \
      --data-dir "$RUN_DIR/warren-data" >"$RUN_DIR/warren.recovery-profile.log" 2>&1 &
    PERF_REC=$!
    until grep -q "listening on" "$RUN_DIR/warren.recovery-profile.log"; do
      kill -0 "$PERF_REC" 2>/dev/null || break; sleep 0.05
    done
    grep -m1 "recovered durable state" "$RUN_DIR/warren.recovery-profile.log" \
      | sed 's/^/profiled_recovered_line=/' >>"$txt"
    kill -KILL "$(pgrep -P "$PERF_REC" -x warren)" 2>/dev/null || true
    wait "$PERF_REC" 2>/dev/null || true
    perf report -i "$RUN_DIR/perf-recovery.data" --stdio --no-children --sort symbol -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | sed -E 's/ +- +- *$//' | head -25 >"$RUN_DIR/profile-recovery.txt" || true
    perf report -i "$RUN_DIR/perf-recovery.data" --stdio --no-children --sort dso -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -6 >"$RUN_DIR/profile-dso-recovery.txt" || true
    rm -f "$RUN_DIR/perf-recovery.data"
    start_warren keep
  fi
  "$PERF" publish-drain --uri "${URI[$flavor]}" --phase drain --queue "$q" --count "$n" --size 16 \
    --durable-queue --prefetch 1000 --multiple-ack 100 --broker-pid "$WARREN_PID" \
    --json "$RUN_DIR/recovery-$n-drain$sfx.json" >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/recovery.stderr" \
    || log "FAILED: recovery drain of $n ($flavor)"
}
if want recovery; then
  for n in $BENCH_RECOVERY_COUNTS; do
    echo "[recovery-$n] warren-perf publish-drain --uri {URI} --phase publish --queue recovery-$n --count $n --size 16 --persistent --durable-queue --confirm 1000 --broker-pid {PID} --json FILE; kill -$BENCH_RECOVERY_SIGNAL; restart; warren-perf publish-drain --phase drain --queue recovery-$n ..." \
      >>"$RUN_DIR/commands.txt"
    for flavor in $WARRENS; do recovery_run "$n" "$flavor"; done
  done
fi

# Cases of issues 10 and 11 (users, TLS, the management API, Prometheus); see
# scripts/bench/cases10.sh.
# shellcheck source=bench/cases10.sh
. "$ROOT/scripts/bench/cases10.sh"

# Profiles: perf-record warren (fresh, call graphs via frame pointers where present)
# while each listed case runs once more against it.
if [ "$BENCH_PROFILE" = 1 ] && command -v perf >/dev/null; then
  for case in $BENCH_PROFILE_CASES; do
    [ -n "${CASE_ARGS[$case]:-}" ] || continue
    log "profiling warren under $case"
    stop_warren; WARREN_FLAVOR=warren; start_warren
    eval "args=(${CASE_ARGS[$case]})"
    a2=()
    for a in "${args[@]}"; do a=${a//\{URI\}/${URI[warren]}}; a2+=("${a//\{PID\}/$WARREN_PID}"); done
    perf record -g -o "$RUN_DIR/perf-$case.data" -p "$WARREN_PID" >/dev/null 2>&1 &
    PERF_REC=$!
    sleep 0.5
    "$PERF" "${a2[@]}" >>"$RUN_DIR/perf.log" 2>&1 || true
    kill -INT "$PERF_REC"; wait "$PERF_REC" 2>/dev/null || true
    perf report -i "$RUN_DIR/perf-$case.data" --stdio --no-children --sort symbol -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | sed -E 's/ +- +- *$//' | head -25 >"$RUN_DIR/profile-$case.txt" || true
    perf report -i "$RUN_DIR/perf-$case.data" --stdio --no-children --sort dso -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -6 >"$RUN_DIR/profile-dso-$case.txt" || true
    rm -f "$RUN_DIR/perf-$case.data"
  done
fi

[ -z "$WARREN_PID" ] || kill -0 "$WARREN_PID" 2>/dev/null || { log "warren died during the run"; exit 1; }
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -r)"
  echo "warren_rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo -dirty)"
  echo "rabbitmq=$(rabbitmqctl ${RABBIT_NODE:+-n "$RABBIT_NODE"} version 2>/dev/null || echo unknown)"
  echo "erlang=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' 2>/dev/null || echo unknown)"
  echo "seconds=$S"
  echo "rounds=$R"
  echo "rabbit_mode=$BENCH_RABBIT"
  echo "fd_limit=$FD_LIMIT"
  echo "recovery_signal=$BENCH_RECOVERY_SIGNAL"
  echo "big_count=$BENCH_BIG_COUNT"
  echo "idle_conns=$BENCH_IDLE_CONNS"
  echo "many_queues=$BENCH_MANY_QUEUES"
  echo "delayed_min_ms=$BENCH_DELAYED_MIN_MS"
  echo "delayed_window_ms=$BENCH_DELAYED_WINDOW_MS"
  echo "topology_timeout_s=$BENCH_TOPOLOGY_TIMEOUT"
  echo "cases=$BENCH_CASES"
  if [ -n "$BENCH_BASELINE" ]; then
    echo "baseline=${BIN[baseline]}"
    echo "baseline_rev=$BENCH_BASELINE_REV"
    echo "baseline_skip=$BENCH_BASELINE_SKIP"
  fi
  echo "perf=$(perf version 2>/dev/null || echo none)"
  echo "rustc=$(rustc --version 2>/dev/null || echo unknown)"
} >"$RUN_DIR/meta.txt"
case $BENCH_OUT in /*) ;; *) BENCH_OUT=$ROOT/$BENCH_OUT ;; esac
python3 "$ROOT/scripts/bench/report.py" "$RUN_DIR" "$BENCH_OUT"
log "wrote $BENCH_OUT (raw results in $RUN_DIR)"
