//! Prometheus metrics of the kit (prometheus-client), one [`Metrics`] per [`crate::Kit`].

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a per-reason / per-role counter.
pub type Labels = Vec<(String, String)>;

/// Smallest handler-duration bucket, seconds.
const HANDLER_BUCKET_MIN_SECS: f64 = 0.0005;
/// Number of handler-duration buckets (doubling: 0.5 ms .. ~16 s).
const HANDLER_BUCKET_COUNT: u16 = 16;

/// Every counter the kit keeps. All are atomics: updating one takes no lock.
pub struct Metrics {
    /// The registry all metrics live in (add your own to it too).
    pub registry: Registry,
    /// Messages handed to `basic.publish`.
    pub published: Counter,
    /// Publishes confirmed (`basic.ack`) and routed.
    pub confirmed: Counter,
    /// Mandatory publishes returned unroutable.
    pub returned: Counter,
    /// Publishes nacked by the broker.
    pub nacked: Counter,
    /// Publishes re-sent after a connection or channel loss (same message id).
    pub republished: Counter,
    /// Deliveries handed to a handler.
    pub consumed: Counter,
    /// Deliveries acknowledged after success.
    pub acked: Counter,
    /// Deliveries scheduled for a later retry through the broker.
    pub retried: Counter,
    /// Deliveries sent to the dead-letter queue (poison or attempts exhausted).
    pub dead_lettered: Counter,
    /// Deliveries given back with requeue (not now / drain), not counted as failures.
    pub requeued: Counter,
    /// Duplicate deliveries acked by the inbox without running the handler.
    pub duplicates: Counter,
    /// Handler run time, seconds.
    pub handler_duration: Histogram,
    /// Successful reconnects, by role (`publish` / `consume`).
    pub reconnects: Family<Labels, Counter>,
    /// Channels re-opened after the broker closed them or cancelled a consumer, by reason (`406`, `404`, `cancel`, ...).
    pub channel_recoveries: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates the metrics, registered under the `service_kit` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("service_kit");
        let m = Metrics {
            published: Counter::default(),
            confirmed: Counter::default(),
            returned: Counter::default(),
            nacked: Counter::default(),
            republished: Counter::default(),
            consumed: Counter::default(),
            acked: Counter::default(),
            retried: Counter::default(),
            dead_lettered: Counter::default(),
            requeued: Counter::default(),
            duplicates: Counter::default(),
            handler_duration: Histogram::new(exponential_buckets(
                HANDLER_BUCKET_MIN_SECS,
                2.0,
                HANDLER_BUCKET_COUNT,
            )),
            reconnects: Family::default(),
            channel_recoveries: Family::default(),
            registry: Registry::default(),
        };
        let counters: [(&str, &str, &Counter); 11] = [
            ("published", "Messages published", &m.published),
            (
                "confirmed",
                "Publishes confirmed by the broker",
                &m.confirmed,
            ),
            (
                "returned",
                "Mandatory publishes returned unroutable",
                &m.returned,
            ),
            ("nacked", "Publishes nacked by the broker", &m.nacked),
            (
                "republished",
                "Publishes re-sent after a connection loss",
                &m.republished,
            ),
            ("consumed", "Deliveries handed to handlers", &m.consumed),
            ("acked", "Deliveries acknowledged", &m.acked),
            (
                "retried",
                "Deliveries scheduled for a delayed retry",
                &m.retried,
            ),
            (
                "dead_lettered",
                "Deliveries sent to the dead-letter queue",
                &m.dead_lettered,
            ),
            (
                "requeued",
                "Deliveries requeued (not a failure)",
                &m.requeued,
            ),
            (
                "duplicates",
                "Duplicate deliveries skipped by the inbox",
                &m.duplicates,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "handler_duration_seconds",
            "Handler run time",
            m.handler_duration.clone(),
        );
        registry.register(
            "reconnects",
            "Reconnects to the broker",
            m.reconnects.clone(),
        );
        registry.register(
            "channel_recoveries",
            "Channels re-opened after a broker close or cancel",
            m.channel_recoveries.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a reconnect of `role`.
    pub fn reconnect(&self, role: &str) {
        self.reconnects
            .get_or_create(&vec![("role".into(), role.into())])
            .inc();
    }

    /// Counts a channel recovery caused by `reason`.
    pub fn channel_recovery(&self, reason: &str) {
        self.channel_recoveries
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    /// The value of the channel-recovery counter for `reason`.
    pub fn channel_recoveries_for(&self, reason: &str) -> u64 {
        self.channel_recoveries
            .get_or_create(&vec![("reason".into(), reason.into())])
            .get()
    }

    /// The value of the reconnect counter for `role`.
    pub fn reconnects_for(&self, role: &str) -> u64 {
        self.reconnects
            .get_or_create(&vec![("role".into(), role.into())])
            .get()
    }

    /// Prometheus / OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
