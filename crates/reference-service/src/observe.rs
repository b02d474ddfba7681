//! The service's own metrics (`refsvc_*`, beside the kit's `service_kit_*`) and the `/health` and
//! `/metrics` routes every process serves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use service_kit::{Health, Metrics};

/// Smallest completion-latency bucket, seconds.
const LATENCY_BUCKET_MIN_SECS: f64 = 0.001;
/// Completion-latency buckets (factor 1.5: 1 ms .. ~190 s).
const LATENCY_BUCKET_COUNT: u16 = 30;

/// Counters of the service (all atomics).
pub struct AppMetrics {
    /// Where they are registered.
    registry: Registry,
    /// Registrations answered 202 (published and confirmed, or fire-and-forget) or done inline.
    pub accepted: Counter,
    /// Registrations refused with 400.
    pub invalid: Counter,
    /// Registrations whose publish failed (503 / 500).
    pub publish_failed: Counter,
    /// Welcome mails sent (the work completed), by the notifier or inline.
    pub completed: Counter,
    /// Mail calls that failed transiently (rate-limited or 421; retried later).
    pub mail_transient: Counter,
    /// Mails rejected for good (poison).
    pub mail_rejected: Counter,
    /// From the API accepting a registration to its mail being sent, seconds.
    pub completion_latency: Histogram,
    /// Score RPCs answered.
    pub scored: Counter,
}

impl AppMetrics {
    /// New metrics under the `refsvc` prefix.
    pub fn new() -> AppMetrics {
        let mut registry = Registry::with_prefix("refsvc");
        let m = AppMetrics {
            registry: Registry::default(),
            accepted: Counter::default(),
            invalid: Counter::default(),
            publish_failed: Counter::default(),
            completed: Counter::default(),
            mail_transient: Counter::default(),
            mail_rejected: Counter::default(),
            completion_latency: Histogram::new(exponential_buckets(
                LATENCY_BUCKET_MIN_SECS,
                1.5,
                LATENCY_BUCKET_COUNT,
            )),
            scored: Counter::default(),
        };
        let counters: [(&str, &str, &Counter); 7] = [
            ("accepted", "Registrations accepted", &m.accepted),
            ("invalid", "Registrations refused (400)", &m.invalid),
            (
                "publish_failed",
                "Registrations whose publish failed",
                &m.publish_failed,
            ),
            ("completed", "Welcome mails sent", &m.completed),
            (
                "mail_transient",
                "Mail calls failed transiently (retried)",
                &m.mail_transient,
            ),
            (
                "mail_rejected",
                "Mail calls rejected for good (dead-lettered)",
                &m.mail_rejected,
            ),
            ("scored", "Score RPCs answered", &m.scored),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "completion_latency_seconds",
            "From accepting a registration to its mail being sent",
            m.completion_latency.clone(),
        );
        AppMetrics { registry, ..m }
    }
}

impl Default for AppMetrics {
    fn default() -> Self {
        AppMetrics::new()
    }
}

/// What `/health` and `/metrics` read.
#[derive(Clone)]
pub struct Observed {
    /// The kit's metrics.
    pub kit: Arc<Metrics>,
    /// The service's metrics.
    pub app: Arc<AppMetrics>,
    /// The kit's connection and consumer state.
    pub health: Health,
}

impl Observed {
    /// Both expositions in one OpenMetrics text (one `# EOF` at the end).
    pub fn render(&self) -> String {
        let mut out = self.kit.render();
        if let Some(stripped) = out.strip_suffix("# EOF\n") {
            out.truncate(stripped.len());
        }
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.app.registry);
        out
    }
}

/// `/health` and `/metrics`.
pub fn routes(o: Observed) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(o)
}

async fn health(State(o): State<Observed>) -> Response {
    service_kit::http::health_response(&o.health)
}

async fn metrics(State(o): State<Observed>) -> Response {
    let mut r = o.render().into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
