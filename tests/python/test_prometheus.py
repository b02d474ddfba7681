"""Prometheus metrics (port 15692 as rabbitmq_prometheus serves them),
scraped by a real Prometheus (Debian's `prometheus` package, installed by
scripts/install-test-deps.sh): the target is up with no scrape error, and
the PromQL of RabbitMQ-Overview's panels (docs: mgmt-api.md §4.5) returns
data. Also checks /metrics/detailed, gzip and counters surviving deletion.

Runs only against warren (it starts its own warren and Prometheus)."""

import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pika
import pytest

from conftest import STARTUP_TIMEOUT, _WarrenProcess, warren_binary

pytestmark = pytest.mark.skipif(bool(os.environ.get("AMQP_URL")),
                                reason="needs its own warren process")

PROMETHEUS = shutil.which("prometheus")

# The join every RabbitMQ-Overview panel ends with (outside Kubernetes the
# namespace label is absent, which matches namespace="").
JOIN = ('* on(instance, job) group_left(rabbitmq_cluster, rabbitmq_node) '
        'rabbitmq_identity_info{rabbitmq_cluster="%s", namespace="", '
        'rabbitmq_endpoint="aggregated"}')

# One query per panel of RabbitMQ-Overview (gauges as they are, counters
# through rate()).
GAUGES = [
    "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
    "rabbitmq_connections", "rabbitmq_channels", "rabbitmq_queues",
    "rabbitmq_global_consumers", "rabbitmq_global_publishers",
    "rabbitmq_process_open_fds", "rabbitmq_process_max_fds",
    "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_resident_memory_limit_bytes",
    "rabbitmq_disk_space_available_bytes",
    "rabbitmq_disk_space_available_limit_bytes",
    "rabbitmq_erlang_uptime_seconds",
]
COUNTERS = [
    "rabbitmq_global_messages_received_total",
    "rabbitmq_global_messages_received_confirm_total",
    "rabbitmq_global_messages_routed_total",
    "rabbitmq_global_messages_confirmed_total",
    "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_unroutable_returned_total",
    "rabbitmq_global_messages_delivered_total",
    "rabbitmq_global_messages_delivered_consume_auto_ack_total",
    "rabbitmq_global_messages_delivered_consume_manual_ack_total",
    "rabbitmq_global_messages_delivered_get_auto_ack_total",
    "rabbitmq_global_messages_delivered_get_manual_ack_total",
    "rabbitmq_global_messages_get_empty_total",
    "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_queues_declared_total", "rabbitmq_queues_created_total",
    "rabbitmq_queues_deleted_total", "rabbitmq_channels_opened_total",
    "rabbitmq_channels_closed_total", "rabbitmq_connections_opened_total",
    "rabbitmq_connections_closed_total", "rabbitmq_message_size_bytes_count",
    "rabbitmq_message_size_bytes_sum",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.headers, r.read()


def promql(api, query):
    q = urllib.parse.urlencode({"query": query})
    _, _, body = http_get(f"{api}/api/v1/query?{q}")
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def series_value(body, series):
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return None


@pytest.fixture
def warren_with_metrics():
    metrics_port = free_port()
    wp = _WarrenProcess(warren_binary(), extra_args=[
        "--prometheus-port", str(metrics_port),
        "--collect-statistics-interval-ms", "200"])
    try:
        port = wp.wait_port(STARTUP_TIMEOUT)
        yield port, metrics_port
    finally:
        wp.stop()
        shutil.rmtree(wp.tmpdir, ignore_errors=True)


def traffic(port):
    """Publishes, consumes, gets and acks so every panel has something."""
    conn = pika.BlockingConnection(
        pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("prom.q", auto_delete=False).method.queue
    for i in range(20):
        ch.basic_publish("", q, b"x" * (10 * i))
    ch.basic_publish("", "prom.nowhere", b"dropped")
    for _ in range(5):
        m, _, _ = ch.basic_get(q, auto_ack=False)
        ch.basic_ack(m.delivery_tag)
    ch.basic_get(q, auto_ack=True)
    ch.queue_purge(q)
    ch.basic_get(q, auto_ack=True)  # empty
    return conn, ch, q


def persist(ch):
    """A persistent message into a durable queue: the store writes, syncs."""
    ch.queue_declare("prom.durable", durable=True)
    ch.basic_publish("", "prom.durable", b"kept",
                     pika.BasicProperties(delivery_mode=2))


def test_metrics_endpoints_answer_as_rabbitmq(warren_with_metrics):
    port, mport = warren_with_metrics
    conn, ch, q = traffic(port)
    time.sleep(0.5)  # one statistics period
    base = f"http://127.0.0.1:{mport}"
    status, headers, body = http_get(f"{base}/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'rabbitmq_endpoint="aggregated"' in text
    assert series_value(
        text, 'rabbitmq_global_messages_received_total{protocol="amqp091"}') == 21
    assert series_value(
        text, 'rabbitmq_global_messages_unroutable_dropped_total{protocol="amqp091"}') == 1
    assert series_value(
        text, 'rabbitmq_global_messages_get_empty_total'
              '{protocol="amqp091",queue_type="rabbit_classic_queue"}') == 1
    assert series_value(
        text, 'rabbitmq_message_size_bytes_bucket{protocol="amqp091",le="100"}') == 12  # 0..100 and "dropped"
    # Counters survive deletion: delete the queue, close the channel.
    ch.queue_delete(q)
    conn.close()
    time.sleep(0.5)
    _, _, body = http_get(f"{base}/metrics")
    text = body.decode()
    assert series_value(
        text, 'rabbitmq_global_messages_received_total{protocol="amqp091"}') == 21
    assert series_value(
        text, 'rabbitmq_global_messages_acknowledged_total'
              '{protocol="amqp091",queue_type="rabbit_classic_queue"}') == 5
    assert series_value(text, "rabbitmq_queues_deleted_total") == 1
    assert series_value(text, "rabbitmq_connections_closed_total") == 1
    # gzip when asked.
    _, headers, body = http_get(f"{base}/metrics/per-object",
                                {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert 'rabbitmq_endpoint="per-object"' in gzip.decompress(body).decode()
    # detailed: only the families asked for, rabbitmq_detailed_ prefix.
    _, _, body = http_get(f"{base}/metrics/detailed?family=queue_coarse_metrics"
                          f"&family=connection_churn_metrics&vhost=%2F")
    text = body.decode()
    assert "rabbitmq_detailed_connections_opened_total 1" in text
    assert "rabbitmq_detailed_queue_messages_ready" in text
    assert "rabbitmq_global_" not in text
    # The store's I/O, logins by protocol, the VM equivalents.
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.confirm_delivery()
    _, _, body = http_get(f"{base}/metrics")
    io_before = series_value(body.decode(), "rabbitmq_io_write_bytes_total")
    persist(ch)
    conn.close()
    _, _, body = http_get(f"{base}/metrics")
    text = body.decode()
    assert series_value(text, "rabbitmq_io_write_ops_total") > 0
    assert series_value(text, "rabbitmq_io_write_bytes_total") >= io_before + len(b"kept")
    assert series_value(text, "rabbitmq_io_sync_ops_total") > 0
    assert series_value(
        text, 'rabbitmq_auth_attempts_succeeded_total{protocol="amqp091"}') == 2
    assert series_value(
        text, 'rabbitmq_auth_attempts_failed_total{protocol="amqp091"}') == 0
    assert series_value(text, "erlang_vm_process_count") >= 1
    assert series_value(text, "rabbitmq_erlang_processes_limit") > 0
    _, _, body = http_get(f"{base}/metrics/memory-breakdown")
    assert b"rabbitmq_memory_other_system_bytes" in body
    with pytest.raises(urllib.error.HTTPError) as e:
        http_get(f"{base}/nope")
    assert e.value.code == 404


@pytest.mark.skipif(PROMETHEUS is None,
                    reason="prometheus not installed (scripts/install-test-deps.sh)")
def test_real_prometheus_scrapes_and_dashboard_queries_return_data(
        warren_with_metrics):
    port, mport = warren_with_metrics
    conn, ch, q = traffic(port)
    persist(ch)
    tmp = tempfile.mkdtemp(prefix="warren-prom-")
    web = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rabbitmq
    static_configs:
      - targets: ['127.0.0.1:{mport}']
  - job_name: rabbitmq-detailed
    metrics_path: /metrics/detailed
    params:
      family: [queue_coarse_metrics, queue_metrics]
    static_configs:
      - targets: ['127.0.0.1:{mport}']
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={cfg}",
         f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{web}"
    try:
        # Up, scraped at least 3 times (rate() needs two samples), no errors.
        deadline = time.time() + 20
        targets = []
        while time.time() < deadline:
            time.sleep(0.5)
            ch.basic_publish("", q, b"more")
            try:
                _, _, body = http_get(f"{api}/api/v1/targets")
            except OSError:
                continue
            targets = json.loads(body)["data"]["activeTargets"]
            ups = promql(api, 'count_over_time(up{job="rabbitmq"}[1m])')
            if (len(targets) == 2 and all(t["health"] == "up" for t in targets)
                    and ups and float(ups[0]["value"][1]) >= 3):
                break
        assert len(targets) == 2, targets
        for t in targets:
            assert t["health"] == "up" and t["lastError"] == "", t
        ident = promql(api, 'rabbitmq_identity_info{job="rabbitmq"}')
        assert len(ident) == 1, ident  # exactly one per target (group_left)
        cluster = ident[0]["metric"]["rabbitmq_cluster"]
        assert ident[0]["metric"]["rabbitmq_node"].startswith("rabbit@")
        join = JOIN % cluster
        empty = []
        for m in GAUGES:
            if not promql(api, f"sum({m} {join}) by(rabbitmq_node)"):
                empty.append(m)
        for m in COUNTERS:
            if not promql(api, f"sum(rate({m}[5s]) {join}) by(rabbitmq_node)"):
                empty.append(m)
        # The node table: uptime joined with build info and identity.
        node = ("rabbitmq_erlang_uptime_seconds * on(instance,job) "
                "group_left(rabbitmq_version, erlang_version) rabbitmq_build_info "
                + join)
        if not promql(api, node):
            empty.append("node table")
        buckets = promql(api, "sum(rate(rabbitmq_message_size_bytes_bucket[5s]) "
                              f"{join}) by(le)")
        if len(buckets) != 9:
            empty.append("message size buckets")
        # Families added after the dashboards' own: store I/O, logins, VM.
        for m in ["rabbitmq_io_write_ops_total", "rabbitmq_io_sync_ops_total",
                  "rabbitmq_io_sync_time_seconds_total",
                  'rabbitmq_auth_attempts_total{protocol="amqp091"}']:
            if not promql(api, f"sum({m} {join}) by(rabbitmq_node) > 0"):
                empty.append(m)
        if not promql(api, 'erlang_vm_process_count{job="rabbitmq"} > 0'):
            empty.append("erlang_vm_process_count")
        detailed = promql(api, 'rabbitmq_detailed_queue_messages_ready{queue="prom.q"}')
        if not detailed:
            empty.append("detailed queue_messages_ready")
        assert not empty, f"panels without data: {empty}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)
