//! The notification worker: consumes `user.registered` through the kit's worker pool with the
//! idempotent inbox (a redelivered duplicate is acked, never mailed twice), sends the welcome mail
//! through the slow, rate-limited dependency, retries transient failures through the broker with
//! backoff and dead-letters poison (an unreadable event or a mailbox rejected for good).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use service_kit::{Delivery, Outcome};

use crate::ledger::Ledger;
use crate::mail::{Mail, MailError};
use crate::model::{now_micros, Registered};
use crate::observe::AppMetrics;

/// Users whose sends are remembered in the [`SentLog`] (older entries are dropped wholesale).
const SENT_LOG_USERS_MAX: usize = 100_000;

/// What the notifier did for one user (read by tests and the demo's logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Welcome mails sent to this user (1 when exactly-once held).
    pub count: u32,
    /// The trace id that arrived with the event (from the HTTP request's `traceparent`).
    pub trace_id: Option<String>,
    /// The attempt (1 = first delivery) that succeeded.
    pub attempt: u32,
}

/// Sends per user id.
#[derive(Default)]
pub struct SentLog {
    /// user id → what was sent.
    by_user: Mutex<HashMap<String, Sent>>,
}

impl SentLog {
    /// What was sent to `user_id`.
    pub fn get(&self, user_id: &str) -> Option<Sent> {
        self.by_user.lock().get(user_id).cloned()
    }

    fn record(&self, user_id: &str, trace_id: Option<String>, attempt: u32) {
        let mut m = self.by_user.lock();
        if !m.contains_key(user_id) && m.len() >= SENT_LOG_USERS_MAX {
            m.clear();
        }
        let e = m.entry(user_id.to_owned()).or_insert(Sent {
            count: 0,
            trace_id: None,
            attempt,
        });
        e.count += 1;
        e.trace_id = trace_id;
        e.attempt = attempt;
    }
}

/// The worker's state, shared by its handler tasks.
pub struct Notifier {
    /// The mail dependency.
    pub mail: Arc<Mail>,
    /// The service's metrics.
    pub metrics: Arc<AppMetrics>,
    /// What was sent.
    pub sent: SentLog,
    /// The benchmark's ledger (off unless `--ledger-dir`).
    pub ledger: Arc<Ledger>,
}

impl Notifier {
    /// Handles one delivery and says what the kit should do with it.
    pub async fn handle(&self, d: Delivery) -> Outcome {
        let ev: Registered = match serde_json::from_slice(&d.body) {
            Ok(ev) => ev,
            Err(e) => return Outcome::Poison(format!("unreadable user.registered event: {e}")),
        };
        let trace = d.trace_context();
        let trace_id = trace.as_ref().map(|t| t.trace_id.clone());
        tracing::info!(
            user = %ev.user.id,
            trace_id = trace_id.as_deref().unwrap_or("-"),
            attempt = d.attempt,
            "sending welcome mail"
        );
        match self.mail.send(&ev.user.email).await {
            Ok(()) => {
                self.ledger.sent(&ev.user.id, ev.accepted_at_us);
                self.sent.record(&ev.user.id, trace_id, d.attempt);
                complete(&self.metrics, ev.accepted_at_us);
                Outcome::Ack
            }
            Err(MailError::Transient(e)) => {
                self.metrics.mail_transient.inc();
                Outcome::Retry(e)
            }
            Err(MailError::Rejected(e)) => {
                self.metrics.mail_rejected.inc();
                Outcome::Poison(e)
            }
        }
    }
}

/// Counts one completed piece of work accepted at `accepted_at_us`.
pub fn complete(m: &AppMetrics, accepted_at_us: u64) {
    m.completed.inc();
    let secs = now_micros().saturating_sub(accepted_at_us) as f64 / 1e6;
    m.completion_latency.observe(secs);
}
