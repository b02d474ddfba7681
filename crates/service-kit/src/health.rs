//! A health-check hook: connection and consumer state, for `/healthz` or a readiness probe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared state the kit's tasks update; cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    /// Connection role → connected.
    connections: Arc<Mutex<BTreeMap<String, bool>>>,
    /// Consumer queue → consuming.
    consumers: Arc<Mutex<BTreeMap<String, bool>>>,
    /// Set by shutdown.
    stopping: Arc<AtomicBool>,
}

/// A snapshot of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Connection role → connected.
    pub connections: BTreeMap<String, bool>,
    /// Consumer queue → consuming.
    pub consumers: BTreeMap<String, bool>,
    /// The kit is shutting down.
    pub stopping: bool,
}

impl HealthReport {
    /// Everything connected and consuming, and not stopping.
    pub fn healthy(&self) -> bool {
        !self.stopping
            && self.connections.values().all(|v| *v)
            && self.consumers.values().all(|v| *v)
    }
}

impl Health {
    pub(crate) fn set_connection(&self, role: &str, up: bool) {
        if let Ok(mut m) = self.connections.lock() {
            m.insert(role.into(), up);
        }
    }

    pub(crate) fn set_consumer(&self, queue: &str, up: bool) {
        if let Ok(mut m) = self.consumers.lock() {
            m.insert(queue.into(), up);
        }
    }

    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The current state.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            connections: self
                .connections
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            consumers: self.consumers.lock().map(|m| m.clone()).unwrap_or_default(),
            stopping: self.stopping.load(Ordering::Relaxed),
        }
    }
}
