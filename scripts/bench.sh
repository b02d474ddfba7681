#!/usr/bin/env bash
# warren vs RabbitMQ with warren-perf; writes the results table into
# docs/benchmarks.md (between the bench:begin/bench:end markers).
#
# Not part of the test suite. Knobs (environment):
#   BENCH_SECONDS=10        duration of each timed run
#   BENCH_ROUNDS=3          rounds per scenario and broker (medians are reported)
#   BENCH_DRAIN_COUNT=1000000   messages in the publish-then-drain scenario (fresh
#                           brokers for every round, so the RSS growth is clean)
#   BENCH_BIG_COUNT=10000000    messages in the "many queued" scenario (warren only)
#   BENCH_RECOVERY_COUNTS="1000000 10000000"  persistent backlogs for the recovery runs
#   BENCH_RECOVERY_SIGNAL=KILL  how warren is stopped before the recovery restart
#   BENCH_IDLE_CONNS=10000  idle connections (needs ulimit -n above this)
#   BENCH_CHURN_COUNT=2000  connections / queues in the churn scenarios
#   BENCH_PROFILE=1         perf-record warren during each case in BENCH_PROFILE_CASES
#   BENCH_PROFILE_CASES="tp-1p1c-16B ..."  cases to profile (report.py shows the
#                           profiles of the cases whose targets are not met)
#   BENCH_RABBIT=dedicated  start a private RabbitMQ node on port 5674 (own fd limit,
#                           no load from others); "system" uses the node on 5672
#   BENCH_OUT=docs/benchmarks.md
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_DRAIN_COUNT=${BENCH_DRAIN_COUNT:-1000000}
BENCH_IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
BENCH_CHURN_COUNT=${BENCH_CHURN_COUNT:-2000}
BENCH_BIG_COUNT=${BENCH_BIG_COUNT:-10000000}
BENCH_RECOVERY_COUNTS=${BENCH_RECOVERY_COUNTS:-"1000000 10000000"}
BENCH_RECOVERY_SIGNAL=${BENCH_RECOVERY_SIGNAL:-KILL}
BENCH_PROFILE=${BENCH_PROFILE:-1}
BENCH_PROFILE_CASES=${BENCH_PROFILE_CASES:-"tp-1p1c-16B tp-1p1c-1KiB tp-persistent-confirm tp-10p10c10q-256B persistent-publish-1p persistent-publish-10p latency-1k-persistent publish-drain"}
BENCH_RABBIT=${BENCH_RABBIT:-dedicated}
BENCH_OUT=${BENCH_OUT:-docs/benchmarks.md}
WARREN_PORT=${WARREN_PORT:-5673}
RUN_DIR=$(mktemp -d /tmp/warren-bench.XXXXXX)
chmod 755 "$RUN_DIR" # the private RabbitMQ node runs as user rabbitmq
PERF=$ROOT/target/release/warren-perf
WARREN=$ROOT/target/release/warren
log() { echo "[bench $(date +%T)] $*" >&2; }

# --- file descriptors: 10k idle connections need >10k fds in every process ---------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((BENCH_IDLE_CONNS + 200)) ]; then
  BENCH_IDLE_CONNS=$((FD_LIMIT - 200))
  log "ulimit -n is $FD_LIMIT; idle connections reduced to $BENCH_IDLE_CONNS"
fi

# --- build -------------------------------------------------------------------------
log "building warren and warren-perf (release)"
cargo build --release -p warren -p warren-perf >&2

# --- brokers -----------------------------------------------------------------------
WARREN_PID=
RABBIT_NODE=
cleanup() {
  if [ -n "$WARREN_PID" ]; then kill "$WARREN_PID" 2>/dev/null || true; fi
  if [ -n "$RABBIT_NODE" ]; then rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true; fi
  if [ -n "${RELAY_PID:-}" ]; then kill "$RELAY_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# start_warren [keep]: a fresh data dir unless "keep" (recovery runs).
WARREN_STARTS=0
start_warren() {
  local data=$RUN_DIR/warren-data
  [ "${1:-}" = keep ] || rm -rf "$data"
  WARREN_STARTS=$((WARREN_STARTS + 1))
  WARREN_LOG=$RUN_DIR/warren.$WARREN_STARTS.log
  WARREN_T0=$(date +%s.%N)
  "$WARREN" serve --port "$WARREN_PORT" --management-port 0 --data-dir "$data" >"$WARREN_LOG" 2>&1 &
  WARREN_PID=$!
  for _ in $(seq 12000); do
    grep -q "listening on" "$WARREN_LOG" && { PID[warren]=$WARREN_PID; return 0; }
    kill -0 "$WARREN_PID" 2>/dev/null || break
    sleep 0.01
  done
  log "warren did not start:"; cat "$WARREN_LOG" >&2; exit 1
}

stop_warren() { # stop_warren [SIGNAL]
  [ -n "$WARREN_PID" ] || return 0
  kill -"${1:-TERM}" "$WARREN_PID" 2>/dev/null || true
  wait "$WARREN_PID" 2>/dev/null || true
  WARREN_PID=
}

stop_rabbit() {
  [ -n "$RABBIT_NODE" ] || return 0
  rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  # wait for the beam process to go away (it holds the port)
  for _ in $(seq 100); do kill -0 "$RABBIT_PID" 2>/dev/null || break; sleep 0.1; done
  RABBIT_NODE=
}

# Fresh brokers (empty data dirs) for scenarios that measure memory growth.
fresh_brokers() {
  stop_warren; start_warren
  if [ "$BENCH_RABBIT" = dedicated ]; then stop_rabbit; start_rabbit; PID[rabbitmq]=$RABBIT_PID; fi
}

start_rabbit() {
  if ! command -v rabbitmq-server >/dev/null; then
    log "installing rabbitmq-server"
    apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >&2
  fi
  if [ "$BENCH_RABBIT" = dedicated ] && id rabbitmq >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    # A private node: its own port, data and fd limit (su/PAM would reset ulimit -n,
    # setpriv keeps it), and no queues or load from anyone else.
    RABBIT_STARTS=$((${RABBIT_STARTS:-0} + 1))
    local d=$RUN_DIR/rabbit.$RABBIT_STARTS
    mkdir -p "$d/mnesia" "$d/log" && echo "[]." >"$d/enabled_plugins" && chown -R rabbitmq:rabbitmq "$d"
    RABBIT_NODE=warrenbench$$-$RABBIT_STARTS@localhost
    RABBIT_PORT=${RABBIT_PORT:-5674}
    (cd /var/lib/rabbitmq && env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=$RABBIT_NODE \
      RABBITMQ_NODE_PORT=$RABBIT_PORT RABBITMQ_DIST_PORT=$((RABBIT_PORT + 20000)) \
      RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log \
      RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins RABBITMQ_PID_FILE=$d/pid \
      setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
      /usr/lib/rabbitmq/bin/rabbitmq-server -detached)
    # The node registers with epmd a few seconds after -detached returns.
    for _ in $(seq 60); do
      rabbitmqctl -n "$RABBIT_NODE" await_startup >/dev/null 2>&1 && break
      sleep 1
    done
    rabbitmqctl -n "$RABBIT_NODE" await_startup >&2
    RABBIT_PID=$(cat "$d/pid")
  else
    RABBIT_PORT=5672
    if ! rabbitmqctl status >/dev/null 2>&1; then
      log "starting rabbitmq-server"
      rabbitmq-server -detached
    fi
    rabbitmqctl await_startup >&2
    RABBIT_PID=$(rabbitmqctl eval 'os:getpid().' | tr -d '"')
  fi
}

declare -A PID=()
start_warren
start_rabbit
declare -A URI=([warren]="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2f"
                [rabbitmq]="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f")
PID[warren]=$WARREN_PID
PID[rabbitmq]=$RABBIT_PID
log "warren pid $WARREN_PID on $WARREN_PORT; rabbitmq pid $RABBIT_PID on $RABBIT_PORT; results in $RUN_DIR"
: >"$RUN_DIR/commands.txt"

# run_case CASE ROUNDS warren-perf-args... ; "{URI}" and "{PID}" are substituted per broker.
# Brokers alternate within each round so drift (page cache, thermal) hits both alike.
declare -A CASE_ARGS=()
BROKERS="warren rabbitmq"
run_case() {
  local case=$1 rounds=$2; shift 2
  echo "[$case] warren-perf $* --json FILE" >>"$RUN_DIR/commands.txt"
  CASE_ARGS[$case]=$(printf '%q ' "$@")
  for round in $(seq "$rounds"); do
    for broker in $BROKERS; do
      local args=() a
      for a in "$@"; do
        a=${a//\{URI\}/${URI[$broker]}}
        args+=("${a//\{PID\}/${PID[$broker]}}")
      done
      local out=$RUN_DIR/${case}__${broker}__${round}.json
      [ -z "${ROUND_OFFSET:-}" ] || out=$RUN_DIR/${case}__${broker}__$((round + ROUND_OFFSET)).json
      log "$case / $broker / round $round"
      if ! timeout $((BENCH_SECONDS * 3 + 300)) "$PERF" "${args[@]}" --json "$out" \
          >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/$case.$broker.stderr"; then
        log "FAILED: $case against $broker (see $RUN_DIR/$case.$broker.stderr)"
        echo "{\"error\":\"failed, see stderr\"}" >"$out"
        kill -0 "${PID[$broker]}" 2>/dev/null || { log "$broker is gone!"; exit 1; }
      fi
      echo "$case $broker $round $(awk '/VmRSS/ {print $2}' "/proc/${PID[$broker]}/status") KiB" \
        >>"$RUN_DIR/rss-after-case.txt"
    done
  done
}

S=$BENCH_SECONDS
R=$BENCH_ROUNDS
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

T=(throughput --uri {URI} --duration "$S")
run_case tp-1p1c-16B "$R" "${T[@]}" --size 16 --auto-ack
run_case tp-1p1c-1KiB "$R" "${T[@]}" --size 1024 --auto-ack
run_case tp-persistent-confirm "$R" "${T[@]}" --size 16 --persistent --durable-queue \
  --confirm 1000 --prefetch 1000 --multiple-ack 100
run_case tp-10p10c10q-256B "$R" "${T[@]}" --producers 10 --consumers 10 --queues 10 --size 256 \
  --prefetch 1000 --multiple-ack 100
run_case latency-1k-persistent "$R" latency --uri {URI} --duration "$S" --rate 1000 --size 16 \
  --persistent --durable-queue --confirm 1000 --prefetch 1000 --multiple-ack 1
# Persistent publish rate with confirms, no consumers (issue 4): 1 and 10 publishers,
# one durable queue each.
run_case persistent-publish-1p "$R" "${T[@]}" --producers 1 --consumers 0 --queues 1 --size 16 \
  --persistent --durable-queue --confirm 1000
run_case persistent-publish-10p "$R" "${T[@]}" --producers 10 --consumers 0 --queues 10 --size 16 \
  --persistent --durable-queue --confirm 1000
run_case connection-churn "$R" connection-churn --uri {URI} --count "$BENCH_CHURN_COUNT"
run_case queue-churn "$R" queue-churn --uri {URI} --count "$BENCH_CHURN_COUNT"

# Memory scenarios: both brokers fresh (empty data dirs, just started) per round.
PD=(publish-drain --uri {URI} --count "$BENCH_DRAIN_COUNT" --size 16 --persistent --durable-queue
    --confirm 1000 --prefetch 1000 --multiple-ack 100 --broker-pid {PID})
for round in $(seq "$R"); do
  log "fresh brokers for publish-drain round $round"
  fresh_brokers
  ROUND_OFFSET=$((round - 1)) run_case publish-drain 1 "${PD[@]}"
done
log "fresh brokers for idle connections"
fresh_brokers
sleep 5 # let both settle after start-up before the "before" RSS
run_case idle-connections 1 idle-connections --uri {URI} --count "$BENCH_IDLE_CONNS" --hold 5 \
  --broker-pid {PID}

# Many queued messages: warren only (RabbitMQ would need minutes and gigabytes; see notes).
log "fresh warren for $BENCH_BIG_COUNT queued messages"
stop_warren; start_warren
BROKERS=warren run_case big-queue 1 publish-drain --uri {URI} --count "$BENCH_BIG_COUNT" --size 16 \
  --confirm 1000 --prefetch 1000 --multiple-ack 100 --broker-pid {PID}

# Recovery: publish N persistent messages to a durable queue (confirmed), stop warren
# with SIG$BENCH_RECOVERY_SIGNAL, restart it on the same data dir and time start-up;
# then drain to check that every message came back.
for n in $BENCH_RECOVERY_COUNTS; do
  log "recovery of $n persistent messages"
  stop_warren; start_warren
  q=recovery-$n
  echo "[recovery-$n] warren-perf publish-drain --uri {URI} --phase publish --queue $q --count $n --size 16 --persistent --durable-queue --confirm 1000 --broker-pid {PID} --json FILE; kill -$BENCH_RECOVERY_SIGNAL; restart; warren-perf publish-drain --phase drain --queue $q ..." \
    >>"$RUN_DIR/commands.txt"
  "$PERF" publish-drain --uri "${URI[warren]}" --phase publish --queue "$q" --count "$n" --size 16 \
    --persistent --durable-queue --confirm 1000 --broker-pid "$WARREN_PID" \
    --json "$RUN_DIR/recovery-$n-publish.json" >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/recovery.stderr" \
    || log "FAILED: recovery publish of $n"
  du -sk "$RUN_DIR/warren-data" | awk '{print "data_dir_kib=" $1}' >"$RUN_DIR/recovery-$n.txt"
  stop_warren "$BENCH_RECOVERY_SIGNAL"
  start_warren keep
  {
    echo "t0=$WARREN_T0"
    echo "rss_after_start_kib=$(awk '/VmRSS/ {print $2}' /proc/$WARREN_PID/status)"
    grep -m1 "recovered durable state" "$WARREN_LOG" | sed 's/^/recovered_line=/'
    grep -m1 "listening on" "$WARREN_LOG" | sed 's/^/listening_line=/'
  } >>"$RUN_DIR/recovery-$n.txt"
  if [ "$BENCH_PROFILE" = 1 ] && command -v perf >/dev/null && [ "$n" = "${BENCH_RECOVERY_COUNTS##* }" ]; then
    # Profile a second restart on the same data (the timed one above ran without perf).
    log "profiling the recovery of $n messages"
    stop_warren KILL
    perf record -g -o "$RUN_DIR/perf-recovery.data" -- "$WARREN" serve --port "$WARREN_PORT" --management-port 0 \
      --data-dir "$RUN_DIR/warren-data" >"$RUN_DIR/warren.recovery-profile.log" 2>&1 &
    PERF_REC=$!
    until grep -q "listening on" "$RUN_DIR/warren.recovery-profile.log"; do
      kill -0 "$PERF_REC" 2>/dev/null || break; sleep 0.05
    done
    grep -m1 "recovered durable state" "$RUN_DIR/warren.recovery-profile.log" \
      | sed 's/^/profiled_recovered_line=/' >>"$RUN_DIR/recovery-$n.txt"
    kill -KILL "$(pgrep -P "$PERF_REC" -x warren)" 2>/dev/null || true
    wait "$PERF_REC" 2>/dev/null || true
    perf report -i "$RUN_DIR/perf-recovery.data" --stdio --no-children --sort symbol -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | sed -E 's/ +- +- *$//' | head -25 >"$RUN_DIR/profile-recovery.txt" || true
    perf report -i "$RUN_DIR/perf-recovery.data" --stdio --no-children --sort dso -g none 2>/dev/null \
      | grep -E '^ +[0-9]' | head -6 >"$RUN_DIR/profile-dso-recovery.txt" || true
    rm -f "$RUN_DIR/perf-recovery.data"
    start_warren keep
  fi
  "$PERF" publish-drain --uri "${URI[warren]}" --phase drain --queue "$q" --count "$n" --size 16 \
    --durable-queue --prefetch 1000 --multiple-ack 100 --broker-pid "$WARREN_PID" \
    --json "$RUN_DIR/recovery-$n-drain.json" >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/recovery.stderr" \
    || log "FAILED: recovery drain of $n"
done

# Profiles: perf-record warren (fresh, call graphs via frame pointers where present)
# while each listed case runs once more against it.
if [ "$BENCH_PROFILE" = 1 ] && command -v perf >/dev/null; then
  for case in $BENCH_PROFILE_CASES; do
    [ -n "${CASE_ARGS[$case]:-}" ] || continue
    log "profiling warren under $case"
    stop_warren; start_warren
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

kill -0 "$WARREN_PID" 2>/dev/null || { log "warren died during the run"; exit 1; }
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
  echo "perf=$(perf version 2>/dev/null || echo none)"
  echo "rustc=$(rustc --version 2>/dev/null || echo unknown)"
} >"$RUN_DIR/meta.txt"
case $BENCH_OUT in /*) ;; *) BENCH_OUT=$ROOT/$BENCH_OUT ;; esac
python3 "$ROOT/scripts/bench/report.py" "$RUN_DIR" "$BENCH_OUT"
log "wrote $BENCH_OUT (raw results in $RUN_DIR)"
