# Helpers for scripts/bench.sh (sourced, not run): starting and stopping the
# brokers, the idle-connection holder, and run_case. Expects from bench.sh:
# ROOT RUN_DIR PERF BIN[warren] (and BIN[baseline] in baseline mode)
# WARREN_PORT BENCH_* knobs.

log() { echo "[bench $(date +%T)] $*" >&2; }

# in_list WORD "LIST": WORD is one of the space-separated LIST.
in_list() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# want CASE: the case is selected (BENCH_CASES empty = every case).
want() { [ -z "$BENCH_CASES" ] || in_list "$1" "$BENCH_CASES"; }

declare -A PID=() URI=()
WARREN_PID=
WARREN_FLAVOR=warren # which binary WARREN_PID runs: warren (new) or baseline (old)
WARREN_STARTS=0
RABBIT_NODE=
RABBIT_PID=
IDLE_PID=
RELAY_PID=

cleanup() {
  if [ -n "$IDLE_PID" ]; then kill "$IDLE_PID" 2>/dev/null || true; fi
  if [ -n "$WARREN_PID" ]; then kill "$WARREN_PID" 2>/dev/null || true; fi
  if [ -n "$RABBIT_NODE" ]; then rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true; fi
  if [ -n "$RELAY_PID" ]; then kill "$RELAY_PID" 2>/dev/null || true; fi
  if [ -n "${POLL_PID:-}" ]; then kill "$POLL_PID" 2>/dev/null || true; fi
}

# start_warren [keep]: BIN[$WARREN_FLAVOR] on a fresh data dir unless "keep" (recovery runs).
start_warren() {
  local data=$RUN_DIR/warren-data
  [ "${1:-}" = keep ] || rm -rf "$data"
  WARREN_STARTS=$((WARREN_STARTS + 1))
  WARREN_LOG=$RUN_DIR/warren.$WARREN_STARTS.$WARREN_FLAVOR.log
  WARREN_T0=$(date +%s.%N)
  # The management API is off for the measured build (the baseline has none),
  # unless a case asks for it (WARREN_HTTP=1) or for the AMQPS listener (WARREN_TLS=1).
  local extra=()
  WARREN_CONF=$(warren_conf)
  if [ "$WARREN_FLAVOR" = warren ]; then
    if [ "${WARREN_HTTP:-0}" = 1 ]; then
      extra=(--management-port "$WARREN_MGMT_PORT" --prometheus-port "$WARREN_PROM_PORT")
    else
      extra=(--management-port 0 --prometheus-port 0)
    fi
    if [ "${WARREN_TLS:-0}" = 1 ]; then
      extra+=(--tls-port "$WARREN_TLS_PORT" --tls-cert-file "$TLS_DIR/server.pem"
              --tls-key-file "$TLS_DIR/server.key" --management-tls-port 0 --prometheus-tls-port 0)
    fi
  fi
  "${BIN[$WARREN_FLAVOR]}" serve --port "$WARREN_PORT" "${extra[@]}" --data-dir "$data" >"$WARREN_LOG" 2>&1 &
  WARREN_PID=$!
  for _ in $(seq 12000); do
    grep -q "listening on" "$WARREN_LOG" && { PID[$WARREN_FLAVOR]=$WARREN_PID; return 0; }
    kill -0 "$WARREN_PID" 2>/dev/null || break
    sleep 0.01
  done
  log "$WARREN_FLAVOR (${BIN[$WARREN_FLAVOR]}) did not start:"; cat "$WARREN_LOG" >&2; exit 1
}

stop_warren() { # stop_warren [SIGNAL]
  [ -n "$WARREN_PID" ] || return 0
  kill -"${1:-TERM}" "$WARREN_PID" 2>/dev/null || true
  wait "$WARREN_PID" 2>/dev/null || true
  WARREN_PID=
}

# use_warren FLAVOR: that binary serves the next run. In baseline mode every run
# gets a freshly started process on a fresh data dir (so before and after start
# alike); otherwise a running new warren is kept, as before baseline mode existed.
# SETTLE_S: seconds to wait after a start (memory cases).
# A running warren is reused only if it was started with the listeners the case
# wants (WARREN_HTTP, WARREN_TLS).
warren_conf() { echo "http=${WARREN_HTTP:-0} tls=${WARREN_TLS:-0}"; }
use_warren() {
  if [ -n "$WARREN_PID" ] && [ "$WARREN_FLAVOR" = "$1" ] && [ -z "$BENCH_BASELINE" ] \
      && [ "$WARREN_CONF" = "$(warren_conf)" ]; then
    return 0
  fi
  stop_warren
  WARREN_FLAVOR=$1
  start_warren
  [ "${SETTLE_S:-0}" = 0 ] || sleep "$SETTLE_S"
}

stop_rabbit() {
  [ -n "$RABBIT_NODE" ] || return 0
  rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  # wait for the beam process to go away (it holds the port)
  for _ in $(seq 100); do kill -0 "$RABBIT_PID" 2>/dev/null || break; sleep 0.1; done
  RABBIT_NODE=
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
    RABBIT_DIR=$d
    mkdir -p "$d/mnesia" "$d/log" && echo "[]." >"$d/enabled_plugins" && chown -R rabbitmq:rabbitmq "$d"
    RABBIT_NODE=warrenbench$$-$RABBIT_STARTS@localhost
    RABBIT_PORT=${RABBIT_PORT:-5674}
    rabbit_config "$d"
    (cd /var/lib/rabbitmq && env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=$RABBIT_NODE \
      RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config \
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
  PID[rabbitmq]=$RABBIT_PID
}

# rabbit_config DIR: rabbitmq.conf and advanced.config of the private node. The
# management and Prometheus plugins are off (enabled_plugins is empty) until
# rabbit_http_on; their ports are set in advanced.config, which (unlike
# rabbitmq.conf) accepts keys of plugins that are not enabled. With certificates
# in TLS_DIR (make_certs), an AMQPS listener on RABBIT_TLS_PORT.
rabbit_config() {
  local d=$1
  : >"$d/rabbitmq.conf"
  if [ -n "${TLS_DIR:-}" ] && [ -f "$TLS_DIR/server.pem" ]; then
    cat >"$d/rabbitmq.conf" <<EOF_CONF
listeners.ssl.default = $RABBIT_TLS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF_CONF
  fi
  cat >"$d/advanced.config" <<EOF_ADV
[{rabbitmq_management, [{tcp_config, [{port, $RABBIT_MGMT_PORT}]}]},
 {rabbitmq_prometheus, [{tcp_config, [{port, $RABBIT_PROM_PORT}]}]}].
EOF_ADV
  chown rabbitmq:rabbitmq "$d/rabbitmq.conf" "$d/advanced.config"
}

# rabbit_http_on: the management and Prometheus plugins on the private node (until
# its next restart: start_rabbit writes an empty enabled_plugins). Fails in
# "system" mode (the shared node is not reconfigured).
rabbit_http_on() {
  [ "$BENCH_RABBIT" = dedicated ] && [ -n "$RABBIT_NODE" ] || return 1
  [ "${RABBIT_HTTP_STARTS:-}" = "$RABBIT_STARTS" ] && return 0
  # rabbitmq-plugins edits the node's enabled_plugins file itself: give it the same path.
  RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins \
    rabbitmq-plugins -n "$RABBIT_NODE" enable rabbitmq_management rabbitmq_prometheus >&2 || return 1
  local _
  for _ in $(seq 100); do
    curl -sf -u guest:guest "http://127.0.0.1:$RABBIT_MGMT_PORT/api/overview" >/dev/null \
      && curl -sf "http://127.0.0.1:$RABBIT_PROM_PORT/metrics" >/dev/null && break
    sleep 0.2
  done
  RABBIT_HTTP_STARTS=$RABBIT_STARTS
}

# make_certs: a CA and a server certificate for localhost / 127.0.0.1 (EC P-256,
# openssl CLI) in TLS_DIR, readable by the private RabbitMQ node.
make_certs() {
  TLS_DIR=$RUN_DIR/tls
  [ -f "$TLS_DIR/server.pem" ] && return 0
  mkdir -p "$TLS_DIR"
  (cd "$TLS_DIR" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
      -out ca.pem -days 30 -subj /CN=warren-bench-ca &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
      -out server.csr -subj /CN=localhost &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 30 -extfile server.ext) >/dev/null 2>&1 || { log "openssl failed to make certificates"; return 1; }
  chmod 644 "$TLS_DIR"/*
  chown -R rabbitmq:rabbitmq "$TLS_DIR" 2>/dev/null || true
}

# Fresh brokers (empty data dirs) for scenarios that measure memory growth.
fresh_brokers() {
  stop_warren; WARREN_FLAVOR=warren; start_warren
  if [ "$BENCH_RABBIT" = dedicated ]; then stop_rabbit; start_rabbit; fi
}

# Limit on waiting for the idle-connection holder to open all its connections, in seconds.
IDLE_OPEN_TIMEOUT_S=600

# start_idle_holder BROKER CASE: warren-perf idle-connections holds $HOLD_IDLE
# connections to BROKER in the background; returns once all are open.
start_idle_holder() {
  local err=$RUN_DIR/$2.$1.idle.stderr
  : >"$err"
  "$PERF" idle-connections --uri "${URI[$1]}" --count "$HOLD_IDLE" --hold 1000000 \
    --broker-pid "${PID[$1]}" >/dev/null 2>"$err" &
  IDLE_PID=$!
  local waited=0
  until grep -q "connections open" "$err"; do
    if ! kill -0 "$IDLE_PID" 2>/dev/null || [ $waited -ge $((IDLE_OPEN_TIMEOUT_S * 10)) ]; then
      log "idle-connection holder for $1 failed (see $err)"
      stop_idle_holder
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  log "$(grep -m1 "connections open" "$err") (holder for $1)"
}

# Ends the holder (its sockets close with the process) and gives the broker a
# moment to tear the connections down before the next run.
stop_idle_holder() {
  [ -n "$IDLE_PID" ] || return 0
  kill "$IDLE_PID" 2>/dev/null || true
  wait "$IDLE_PID" 2>/dev/null || true
  IDLE_PID=
  sleep 2
}

# run_case CASE ROUNDS warren-perf-args... ; "{URI}" and "{PID}" are substituted per
# broker. Brokers alternate within each round (baseline, warren, rabbitmq) so drift
# (page cache, thermal, other load) hits all alike. Per-call environment:
# BROKERS (which brokers), ROUND_OFFSET (numbering of the result files),
# CASE_TIMEOUT (seconds per run), HOLD_IDLE (idle connections held during each run),
# SETTLE_S (see use_warren), WANT_CASE (the BENCH_CASES name selecting this run, when
# CASE is one of its parts), URI_VAR (name of the associative array of URIs, default
# URI), CASE_BEFORE / CASE_AFTER (functions called as FN BROKER RESULT_FILE right
# before and after each run: setup, background load; CASE_BEFORE failing marks the
# run failed).
declare -A CASE_ARGS=()
run_case() {
  local case=$1 rounds=$2; shift 2
  want "${WANT_CASE:-$case}" || return 0
  local -n uris=${URI_VAR:-URI}
  local limit=${CASE_TIMEOUT:-$((BENCH_SECONDS * 3 + 300))}
  local note=""
  [ -z "${HOLD_IDLE:-}" ] || note=" (while warren-perf idle-connections --count $HOLD_IDLE holds connections open)"
  echo "[$case] warren-perf $* --json FILE$note" >>"$RUN_DIR/commands.txt"
  CASE_ARGS[$case]=$(printf '%q ' "$@")
  local round broker
  for round in $(seq "$rounds"); do
    for broker in $BROKERS; do
      if [ "$broker" = baseline ] && in_list "${WANT_CASE:-$case}" "$BENCH_BASELINE_SKIP"; then continue; fi
      if [ "$broker" != rabbitmq ]; then use_warren "$broker"; fi
      local args=() a
      for a in "$@"; do
        a=${a//\{URI\}/${uris[$broker]:-}}
        args+=("${a//\{PID\}/${PID[$broker]}}")
      done
      local n=$((round + ${ROUND_OFFSET:-0}))
      local out=$RUN_DIR/${case}__${broker}__$n.json
      log "$case / $broker / round $n"
      if [ -n "${HOLD_IDLE:-}" ] && ! start_idle_holder "$broker" "$case"; then
        echo "{\"error\":\"idle-connection holder failed\"}" >"$out"
        continue
      fi
      if [ -z "${uris[$broker]:-}" ]; then
        echo "{\"error\":\"not run: ${SKIP_WHY:-no URI for $broker}\"}" >"$out"
        continue
      fi
      if [ -n "${CASE_BEFORE:-}" ] && ! "$CASE_BEFORE" "$broker" "$out"; then
        log "FAILED: $case setup on $broker (see $case.$broker.stderr)"
        echo "{\"error\":\"setup failed, see $case.$broker.stderr\"}" >"$out"
        continue
      fi
      local rc=0
      timeout "$limit" "$PERF" "${args[@]}" --json "$out" \
        >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/$case.$broker.stderr" || rc=$?
      [ -z "${HOLD_IDLE:-}" ] || stop_idle_holder
      [ -z "${CASE_AFTER:-}" ] || "$CASE_AFTER" "$broker" "$out" || true
      if [ $rc -ne 0 ]; then
        local why="failed (exit $rc), see $case.$broker.stderr"
        [ $rc -ne 124 ] || why="timed out after $limit s"
        log "FAILED: $case against $broker: $why"
        echo "{\"error\":\"$why\"}" >"$out"
        kill -0 "${PID[$broker]}" 2>/dev/null || { log "$broker is gone!"; exit 1; }
      fi
      echo "$case $broker $round $(awk '/VmRSS/ {print $2}' "/proc/${PID[$broker]}/status") KiB" \
        >>"$RUN_DIR/rss-after-case.txt"
    done
  done
}
