# Cases of issues 10 and 11 for scripts/bench.sh (sourced after the other cases,
# so that the listeners and plugins they turn on do not touch the earlier ones):
#   tp-permissions  tp-1p1c-16B as a non-guest user with permissions on its own vhost,
#                   beside the same run as guest on "/" (same broker processes);
#   tls-1p1c        1p1c 16 B and 1 KiB over AMQPS beside plain TCP (same processes);
#   api-under-load  BENCH_MANY_QUEUES queues; tp-1p1c-16B and a 1000 msg/s latency run,
#                   each without and with the management API polled back to back;
#   scrape-10k      the same with /metrics/per-object scraped once a second.
# Every case writes its parts as separate result files (CASE-PART__BROKER__N.json) and
# alternates the parts within each round. Expects bench.sh's variables and lib.sh.

# --- tp-permissions ----------------------------------------------------------------
PERM_VHOST=perm-vhost
PERM_USER=perm-user
PERM_PASS=perm-pass
# configure/read: the user's own queues; write: those and the default exchange
# (a publish to "" is checked as a write on amq.default, as RabbitMQ does).
PERM_CONFIGURE='^perm-.*'
PERM_WRITE='^(perm-.*|amq\.default)$'
PERM_READ='^perm-.*'
declare -A URI_PERM=([warren]="amqp://$PERM_USER:$PERM_PASS@127.0.0.1:$WARREN_PORT/$PERM_VHOST"
                     [rabbitmq]="amqp://$PERM_USER:$PERM_PASS@127.0.0.1:$RABBIT_PORT/$PERM_VHOST")
declare -A PERM_DONE=()

# mgmt_put PATH JSON: a PUT to warren's management API as guest (201 or 204 expected).
mgmt_put() {
  local code
  code=$(curl -s -o /dev/stderr -w '%{http_code}' -u guest:guest -X PUT -H 'content-type: application/json' \
    --data "$2" "http://127.0.0.1:$WARREN_MGMT_PORT/api/$1")
  case $code in 201 | 204) return 0 ;; *) echo "PUT /api/$1 -> HTTP $code" >&2; return 1 ;; esac
}

# perm_setup BROKER FILE: the vhost, the user, its permissions and topic permissions
# (once per broker process): warren through its management API, RabbitMQ through
# rabbitmqctl.
perm_setup() {
  local broker=$1 err=$RUN_DIR/tp-permissions.$1.stderr starts
  if [ "$broker" = rabbitmq ]; then starts=${RABBIT_STARTS:-0}; else starts=$WARREN_STARTS; fi
  [ "${PERM_DONE[$broker]:-}" = "$starts" ] && return 0
  local json_w=${PERM_WRITE//\\/\\\\}
  if [ "$broker" = rabbitmq ]; then
    local ctl=(rabbitmqctl ${RABBIT_NODE:+-n "$RABBIT_NODE"})
    { "${ctl[@]}" add_vhost "$PERM_VHOST" || true
      "${ctl[@]}" add_user "$PERM_USER" "$PERM_PASS" || "${ctl[@]}" change_password "$PERM_USER" "$PERM_PASS"
      "${ctl[@]}" set_permissions -p "$PERM_VHOST" "$PERM_USER" "$PERM_CONFIGURE" "$PERM_WRITE" "$PERM_READ" &&
      "${ctl[@]}" set_topic_permissions -p "$PERM_VHOST" "$PERM_USER" amq.topic "$PERM_WRITE" "$PERM_READ"
    } >>"$err" 2>&1 || return 1
  else
    { mgmt_put "vhosts/$PERM_VHOST" '{}' &&
      mgmt_put "users/$PERM_USER" "{\"password\":\"$PERM_PASS\",\"tags\":\"\"}" &&
      mgmt_put "permissions/$PERM_VHOST/$PERM_USER" \
        "{\"configure\":\"$PERM_CONFIGURE\",\"write\":\"$json_w\",\"read\":\"$PERM_READ\"}" &&
      mgmt_put "topic-permissions/$PERM_VHOST/$PERM_USER" \
        "{\"exchange\":\"amq.topic\",\"write\":\"$json_w\",\"read\":\"$PERM_READ\"}"
    } 2>>"$err" || return 1
  fi
  PERM_DONE[$broker]=$starts
}

if want tp-permissions; then
  for round in $(seq "$R"); do
    WANT_CASE=tp-permissions WARREN_HTTP=1 ROUND_OFFSET=$((round - 1)) \
      run_case tp-permissions-guest 1 "${T[@]}" --size 16 --auto-ack
    WANT_CASE=tp-permissions WARREN_HTTP=1 ROUND_OFFSET=$((round - 1)) URI_VAR=URI_PERM \
      CASE_BEFORE=perm_setup run_case tp-permissions 1 "${T[@]}" --size 16 --auto-ack --queue-prefix perm-q
  done
fi

# --- tls-1p1c ----------------------------------------------------------------------
if want tls-1p1c; then
  declare -A URI_TLS=()
  TLS_SKIP=""
  if [ -z "$TLS_DIR" ]; then
    TLS_SKIP="no certificates (openssl failed)"
  else
    URI_TLS[warren]="amqps://guest:guest@127.0.0.1:$WARREN_TLS_PORT/%2f?cacertfile=$TLS_DIR/ca.pem"
    if [ "$BENCH_RABBIT" = dedicated ] && [ -n "$RABBIT_NODE" ] &&
        rabbitmqctl -n "$RABBIT_NODE" status 2>/dev/null | grep -q "port: $RABBIT_TLS_PORT, protocol: amqp/ssl"; then
      URI_TLS[rabbitmq]="amqps://guest:guest@127.0.0.1:$RABBIT_TLS_PORT/%2f?cacertfile=$TLS_DIR/ca.pem"
    else
      TLS_SKIP="RabbitMQ has no AMQPS listener (needs BENCH_RABBIT=dedicated)"
      log "tls-1p1c: $TLS_SKIP"
    fi
  fi
  for round in $(seq "$R"); do
    for size in 16 1024; do
      label=${size}B; [ "$size" = 16 ] || label=1KiB
      WANT_CASE=tls-1p1c WARREN_TLS=1 ROUND_OFFSET=$((round - 1)) \
        run_case "tls-1p1c-$label-tcp" 1 "${T[@]}" --size "$size" --auto-ack
      WANT_CASE=tls-1p1c WARREN_TLS=1 ROUND_OFFSET=$((round - 1)) URI_VAR=URI_TLS SKIP_WHY=$TLS_SKIP \
        run_case "tls-1p1c-$label" 1 "${T[@]}" --size "$size" --auto-ack
    done
  done
fi

# --- api-under-load and scrape-10k -------------------------------------------------
declare -A HTTP_BASE=([warren]="http://127.0.0.1:$WARREN_MGMT_PORT" [rabbitmq]="http://127.0.0.1:$RABBIT_MGMT_PORT")
declare -A PROM_BASE=([warren]="http://127.0.0.1:$WARREN_PROM_PORT" [rabbitmq]="http://127.0.0.1:$RABBIT_PROM_PORT")
declare -A HELD=()
HOLD_SETTLE_S=6 # seconds after declaring the held queues (> the 5 s statistics interval)
POLL_PID=

# hold_queues BROKER FILE: BENCH_MANY_QUEUES queues in place (once per broker process).
hold_queues() {
  local broker=$1 starts
  if [ "$broker" = rabbitmq ]; then starts=${RABBIT_STARTS:-0}; else starts=$WARREN_STARTS; fi
  [ "${HELD[$broker]:-}" = "$starts" ] && return 0
  log "declaring $BENCH_MANY_QUEUES queues on $broker"
  "$PERF" declare-queues --uri "${URI[$broker]}" --count "$BENCH_MANY_QUEUES" --prefix bench-held \
    --json "$RUN_DIR/declare-queues.$broker.json" >>"$RUN_DIR/perf.log" 2>>"$RUN_DIR/declare-queues.$broker.stderr" ||
    return 1
  # Both brokers publish their statistics every 5 s (collect_statistics_interval):
  # let a snapshot with the held queues in it be taken before measuring.
  sleep "$HOLD_SETTLE_S"
  HELD[$broker]=$starts
}

# start_poller BROKER FILE URL... (after hold_queues): scripts/bench/poll.py in the
# background; POLL_INTERVAL seconds between rounds of URLs (0: back to back).
start_poller() {
  local broker=$1 out=$2; shift 2
  hold_queues "$broker" "$out" || return 1
  python3 "$ROOT/scripts/bench/poll.py" --out "$out.poll" --interval "${POLL_INTERVAL:-0}" \
    --user guest --password guest "$@" 2>>"$RUN_DIR/poll.stderr" &
  POLL_PID=$!
  sleep 0.5 # let the first requests start
}
poll_api() {
  start_poller "$1" "$2" "${HTTP_BASE[$1]}/api/queues?page=1&page_size=100" "${HTTP_BASE[$1]}/api/overview"
}
poll_scrape() { POLL_INTERVAL=1 start_poller "$1" "$2" "${PROM_BASE[$1]}/metrics/per-object"; }

# stop_poller BROKER FILE: ends the poller and adds its numbers to the run's JSON as
# poll_requests, poll_errors, poll_first_error and pollI_{p50,p99,max}_ms,
# pollI_bytes for the I-th URL.
stop_poller() {
  [ -n "$POLL_PID" ] || return 0
  kill -TERM "$POLL_PID" 2>/dev/null || true
  wait "$POLL_PID" 2>/dev/null || true
  POLL_PID=
  python3 - "$2" "$2.poll" <<'EOF_PY'
import json, sys
out, poll = sys.argv[1], sys.argv[2]
try:
    res = json.load(open(out))
except (OSError, ValueError):
    res = {"error": "no result"}
try:
    p = json.load(open(poll))
except (OSError, ValueError):
    p = {"requests": 0, "errors": 0, "first_error": "poller wrote no summary", "urls": {}}
res["poll_requests"] = p["requests"]
res["poll_errors"] = p["errors"]
if "first_error" in p:
    res["poll_first_error"] = p["first_error"]
for i, u in enumerate(p["urls"].values()):
    for k in ("p50_ms", "p99_ms", "max_ms"):
        if u.get(k) is not None:
            res[f"poll{i}_{k}"] = u[k]
    if u.get("bytes_median") is not None:
        res[f"poll{i}_bytes"] = u["bytes_median"]
json.dump(res, open(out, "w"))
EOF_PY
}

# loaded_case CASE BEFORE_FN: CASE-tp / CASE-lat without the load (queues held) and
# CASE-tp-loaded / CASE-lat-loaded with it, alternating; fresh brokers first (the
# held queues and the plugins go with the next fresh start).
LAT_T=(latency --uri {URI} --duration "$S" --rate 1000 --size 16 --prefetch 1000 --multiple-ack 1)
loaded_case() {
  local case=$1 start_fn=$2 round
  want "$case" || return 0
  log "fresh brokers for $case ($BENCH_MANY_QUEUES queues, HTTP listeners on)"
  stop_warren; WARREN_FLAVOR=warren; WARREN_HTTP=1 start_warren
  if [ "$BENCH_RABBIT" = dedicated ]; then stop_rabbit; start_rabbit; fi
  local -A uri_http=([warren]=${URI[warren]})
  local skip=""
  if rabbit_http_on; then
    uri_http[rabbitmq]=${URI[rabbitmq]}
  else
    skip="needs the private node (BENCH_RABBIT=dedicated) with rabbitmq_management/rabbitmq_prometheus"
    log "$case: RabbitMQ $skip"
  fi
  for round in $(seq "$R"); do
    WANT_CASE=$case WARREN_HTTP=1 ROUND_OFFSET=$((round - 1)) URI_VAR=uri_http SKIP_WHY=$skip \
      CASE_BEFORE=hold_queues run_case "$case-tp" 1 "${T[@]}" --size 16 --auto-ack
    WANT_CASE=$case WARREN_HTTP=1 ROUND_OFFSET=$((round - 1)) URI_VAR=uri_http SKIP_WHY=$skip \
      CASE_BEFORE=$start_fn CASE_AFTER=stop_poller run_case "$case-tp-loaded" 1 "${T[@]}" --size 16 --auto-ack
    WANT_CASE=$case WARREN_HTTP=1 ROUND_OFFSET=$((round - 1)) URI_VAR=uri_http SKIP_WHY=$skip \
      CASE_BEFORE=hold_queues run_case "$case-lat" 1 "${LAT_T[@]}"
    WANT_CASE=$case WARREN_HTTP=1 ROUND_OFFSET=$((round - 1)) URI_VAR=uri_http SKIP_WHY=$skip \
      CASE_BEFORE=$start_fn CASE_AFTER=stop_poller run_case "$case-lat-loaded" 1 "${LAT_T[@]}"
  done
}
loaded_case api-under-load poll_api
loaded_case scrape-10k poll_scrape
