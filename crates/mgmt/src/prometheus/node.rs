//! The info metrics every endpoint carries (the dashboards' join keys) and
//! the node gauges, read from `/proc` at scrape time (outside the core).

use super::text::{Kind, Text};
use super::Prom;

/// The version RabbitMQ clients and dashboards are shown (as `/api/overview`).
pub const RABBITMQ_VERSION: &str = "3.10.0";

/// `rabbitmq_identity_info` and `rabbitmq_build_info` (labels only, value 1).
pub fn info(t: &mut Text, p: &Prom, endpoint: &str) {
    t.family_raw(
        "rabbitmq_identity_info",
        Kind::Untyped,
        "RabbitMQ node & cluster identity info",
    );
    t.sample_raw(
        "rabbitmq_identity_info",
        &[
            ("rabbitmq_node", &p.node),
            ("rabbitmq_cluster", &p.node),
            ("rabbitmq_cluster_permanent_id", &p.cluster_id),
            ("rabbitmq_endpoint", endpoint),
        ],
        1.0,
    );
    t.family_raw(
        "rabbitmq_build_info",
        Kind::Untyped,
        "RabbitMQ & Erlang/OTP version info",
    );
    t.sample_raw(
        "rabbitmq_build_info",
        &[
            ("rabbitmq_version", RABBITMQ_VERSION),
            ("prometheus_plugin_version", RABBITMQ_VERSION),
            ("prometheus_client_version", "4.9.1"),
            // No Erlang here: the runtime that stands in for it.
            (
                "erlang_version",
                concat!("warren-", env!("CARGO_PKG_VERSION")),
            ),
            ("product_name", "warren"),
            ("product_version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
}

/// What `/proc/self` says about this process.
#[derive(Debug, Default)]
pub struct ProcStats {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit of open files.
    pub max_fds: u64,
    /// OS threads (the nearest equivalent of Erlang processes).
    pub threads: u64,
    /// The soft limit of processes (threads) for this user.
    pub max_processes: u64,
    /// Voluntary and involuntary context switches of every thread.
    pub context_switches: u64,
    /// User + system CPU time of every thread, milliseconds.
    pub cpu_ms: u64,
}

/// Clock ticks per second of `/proc/self/stat`'s CPU times (Linux's
/// `USER_HZ`, 100 on every architecture it exports to user space).
const PROC_TICKS_PER_S: u64 = 100;

/// Threads whose `/proc/self/task/*/status` a scrape reads at most (the
/// context-switch sum covers the first ones only beyond that).
pub const PROC_TASKS_READ_MAX: usize = 256;

/// A `Name:  value` line's first number.
fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A `/proc/self/limits` row's soft limit (0 when absent; `unlimited` is
/// `u64::MAX`).
fn limit(limits: &str, row: &str) -> u64 {
    limits
        .lines()
        .find_map(|l| l.strip_prefix(row))
        .and_then(|r| r.split_whitespace().next())
        .map_or(0, |v| {
            if v == "unlimited" {
                u64::MAX
            } else {
                v.parse().unwrap_or(0)
            }
        })
}

/// utime + stime of `/proc/self/stat` (fields 14 and 15, counted after
/// the parenthesised command name), milliseconds.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    // `rest` starts at field 3 (state): utime is the 12th from there.
    let mut f = rest.split_whitespace().skip(11);
    let mut next = || f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ticks = next() + next();
    ticks * 1000 / PROC_TICKS_PER_S
}

/// Context switches summed over the process's threads.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .take(PROC_TASKS_READ_MAX)
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status_field(&s, "voluntary_ctxt_switches:")
                + status_field(&s, "nonvoluntary_ctxt_switches:")
        })
        .sum()
}

impl ProcStats {
    /// Reads them now (zeros where `/proc` is unavailable).
    pub fn read() -> ProcStats {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        ProcStats {
            rss_bytes: status_field(&status, "VmRSS:") * 1024,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
            max_fds: limit(&limits, "Max open files"),
            threads: status_field(&status, "Threads:"),
            max_processes: limit(&limits, "Max processes"),
            context_switches: context_switches(),
            cpu_ms: cpu_ms(),
        }
    }
}

/// The node families (`node_coarse_metrics` and `node_metrics`), plus the
/// socket gauges older dashboards show.
pub fn node(t: &mut Text, p: &Prom, proc_: &ProcStats, connections: usize) {
    let uptime_s = p.started.elapsed().as_secs_f64();
    t.single(
        "process_open_fds",
        Kind::Gauge,
        "Open file descriptors",
        proc_.open_fds as f64,
    );
    t.single(
        "process_open_tcp_sockets",
        Kind::Gauge,
        "Open TCP sockets (client connections)",
        connections as f64,
    );
    t.single(
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Memory used in bytes",
        proc_.rss_bytes as f64,
    );
    let disk = (p.probe.disk_free)();
    if let Some(free) = disk {
        t.single(
            "disk_space_available_bytes",
            Kind::Gauge,
            "Disk space available in bytes",
            free as f64,
        );
    }
    t.single(
        "erlang_processes_used",
        Kind::Gauge,
        "Erlang processes used (here: OS threads)",
        proc_.threads as f64,
    );
    t.single(
        "erlang_scheduler_context_switches_total",
        Kind::Counter,
        "Total number of Erlang scheduler context switches (here: of the process's threads)",
        proc_.context_switches as f64,
    );
    t.single(
        "erlang_processes_limit",
        Kind::Gauge,
        "Erlang processes limit (here: the process limit)",
        proc_.max_processes as f64,
    );
    t.single(
        "process_max_fds",
        Kind::Gauge,
        "Open file descriptors limit",
        proc_.max_fds as f64,
    );
    t.single(
        "process_max_tcp_sockets",
        Kind::Gauge,
        "Open TCP sockets limit (the file descriptor limit)",
        proc_.max_fds as f64,
    );
    t.single(
        "resident_memory_limit_bytes",
        Kind::Gauge,
        "Memory high watermark in bytes",
        p.probe.memory_limit_bytes as f64,
    );
    t.single(
        "disk_space_available_limit_bytes",
        Kind::Gauge,
        "Free disk space low watermark in bytes",
        p.probe.disk_free_limit_bytes as f64,
    );
    t.single(
        "erlang_uptime_seconds",
        Kind::Gauge,
        "Node uptime",
        uptime_s,
    );
}

/// `process_start_time_seconds` (no prefix, as the Erlang client emits it).
pub fn start_time(t: &mut Text, p: &Prom) {
    t.family_raw(
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since unix epoch in seconds.",
    );
    t.sample_raw("process_start_time_seconds", &[], p.started_unix_s as f64);
}
