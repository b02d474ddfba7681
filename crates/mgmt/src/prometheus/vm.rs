//! Families read from outside the statistics snapshot: the store's I/O
//! counters (`node_persister_metrics`), authentication attempts
//! (`auth_attempt_metrics`) and the `erlang_vm_*` collectors' nearest
//! honest equivalents for this process (docs/metrics.md lists which).

use super::node::ProcStats;
use super::text::{Kind, Text};
use crate::auth_attempts::{AuthAttempts, AUTH_PROTOCOL_LABELS};

/// The store's I/O counters, as the server reads them from its syncer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreIo {
    /// Appends to the data folder's files.
    pub write_ops: u64,
    /// Bytes appended.
    pub write_bytes: u64,
    /// Time spent appending, microseconds.
    pub write_time_us: u64,
    /// File and folder syncs.
    pub sync_ops: u64,
    /// Time spent syncing, microseconds.
    pub sync_time_us: u64,
}

/// `rabbitmq_io_*` (RabbitMQ's `node_persister_metrics`): writes, bytes,
/// syncs and their time. Reads are page-cache reads of mapped segments
/// (no I/O call to count), so the read, seek and reopen counters are not
/// written.
pub fn persister(t: &mut Text, io: &StoreIo) {
    let us = |v: u64| v as f64 / 1e6;
    let rows = [
        (
            "io_write_ops_total",
            "Total number of I/O write operations",
            io.write_ops as f64,
        ),
        (
            "io_write_bytes_total",
            "Total number of I/O bytes written",
            io.write_bytes as f64,
        ),
        (
            "io_write_time_seconds_total",
            "Total I/O write time",
            us(io.write_time_us),
        ),
        (
            "io_sync_ops_total",
            "Total number of I/O sync operations",
            io.sync_ops as f64,
        ),
        (
            "io_sync_time_seconds_total",
            "Total I/O sync time",
            us(io.sync_time_us),
        ),
    ];
    for (name, help, v) in rows {
        t.single(name, Kind::Counter, help, v);
    }
}

/// `rabbitmq_auth_attempts_{,succeeded_,failed_}total{protocol}`.
pub fn auth(t: &mut Text, attempts: &AuthAttempts) {
    let counts = attempts.counts();
    /// A family's value from (succeeded, failed).
    type Pick = fn(u64, u64) -> u64;
    let rows: [(&str, &str, Pick); 3] = [
        (
            "auth_attempts_total",
            "Total number of authentication attempts",
            |ok, failed| ok + failed,
        ),
        (
            "auth_attempts_succeeded_total",
            "Total number of successful authentication attempts",
            |ok, _| ok,
        ),
        (
            "auth_attempts_failed_total",
            "Total number of failed authentication attempts",
            |_, failed| failed,
        ),
    ];
    for (name, help, value) in rows {
        t.family(name, Kind::Counter, help);
        for (label, c) in AUTH_PROTOCOL_LABELS.iter().zip(counts) {
            t.sample(
                name,
                &[("protocol", label)],
                value(c.succeeded, c.failed) as f64,
            );
        }
    }
}

/// The `erlang_vm_*` families dashboards read, from this process: OS
/// threads stand in for Erlang processes, CPU time for runtime.
pub fn erlang_vm(t: &mut Text, proc_: &ProcStats, uptime_ms: u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows = [
        (
            "erlang_vm_process_count",
            Kind::Gauge,
            "The number of processes currently existing at the local node (here: OS threads).",
            proc_.threads as f64,
        ),
        (
            "erlang_vm_process_limit",
            Kind::Gauge,
            "The maximum number of simultaneously existing processes at the local node (here: the process limit).",
            proc_.max_processes as f64,
        ),
        (
            "erlang_vm_logical_processors_available",
            Kind::Gauge,
            "The detected number of logical processors available to the runtime system.",
            cpus as f64,
        ),
        (
            "erlang_vm_statistics_context_switches",
            Kind::Counter,
            "Total number of context switches since the system started (here: of this process's threads).",
            proc_.context_switches as f64,
        ),
        (
            "erlang_vm_statistics_runtime_milliseconds",
            Kind::Counter,
            "The sum of the runtime for all threads in the runtime system (here: user + system CPU time).",
            proc_.cpu_ms as f64,
        ),
        (
            "erlang_vm_statistics_wallclock_time_milliseconds",
            Kind::Counter,
            "Wall clock time since the node started.",
            uptime_ms as f64,
        ),
    ];
    for (name, kind, help, v) in rows {
        t.family_raw(name, kind, help);
        t.sample_raw(name, &[], v);
    }
}
