//! Authentication attempts by protocol (RabbitMQ's `auth_attempt_metrics`:
//! `rabbitmq_auth_attempts_{,succeeded_,failed_}total{protocol}` and the
//! `/api/auth/attempts` counters). The AMQP handshake and the HTTP Basic
//! auth of the API and the metrics each count one attempt per login; they
//! only ever grow.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where a login came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// An AMQP 0-9-1 connection.
    Amqp091,
    /// The management API or the metrics (Basic auth).
    Http,
}

/// Protocols counted apart (index: [`AuthProtocol::index`]).
pub const AUTH_PROTOCOLS_MAX: usize = 2;

/// RabbitMQ's `protocol` label of each index.
pub const AUTH_PROTOCOL_LABELS: [&str; AUTH_PROTOCOLS_MAX] = ["amqp091", "http"];

impl AuthProtocol {
    /// The index in the per-protocol arrays.
    pub fn index(self) -> usize {
        match self {
            AuthProtocol::Amqp091 => 0,
            AuthProtocol::Http => 1,
        }
    }
}

/// The live counters, shared by the server (AMQP) and this crate (HTTP).
#[derive(Debug, Default)]
pub struct AuthAttempts {
    /// Successful logins per protocol.
    succeeded: [AtomicU64; AUTH_PROTOCOLS_MAX],
    /// Refused logins per protocol.
    failed: [AtomicU64; AUTH_PROTOCOLS_MAX],
}

/// One protocol's counts at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AuthCounts {
    /// Successful logins.
    pub succeeded: u64,
    /// Refused logins.
    pub failed: u64,
}

impl AuthAttempts {
    /// Counts one login of `protocol` that `ok` tells succeeded or not.
    pub fn record(&self, protocol: AuthProtocol, ok: bool) {
        let side = if ok { &self.succeeded } else { &self.failed };
        side[protocol.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Every protocol's counts now (index order of `AUTH_PROTOCOL_LABELS`).
    pub fn counts(&self) -> [AuthCounts; AUTH_PROTOCOLS_MAX] {
        std::array::from_fn(|i| AuthCounts {
            succeeded: self.succeeded[i].load(Ordering::Relaxed),
            failed: self.failed[i].load(Ordering::Relaxed),
        })
    }
}
