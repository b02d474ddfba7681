//! # service-kit
//!
//! What services need around an AMQP 0-9-1 broker (warren or RabbitMQ 3.x), on top of lapin:
//!
//! - [`Kit`]: two supervised connections (publish, consume) with jittered exponential reconnect,
//!   heartbeats, TLS (`amqps://`), the [`Topology`] re-declared on every connect;
//! - [`Publisher`]: awaitable per-message confirms, a bounded window per pooled channel, mandatory
//!   returns as errors, persistent + message id by default, backpressure with a deadline, resend of
//!   unconfirmed publishes after a reconnect (same id);
//! - [`Kit::consume`]: a worker pool with [`Outcome`]s (ack / retry later / poison / requeue),
//!   re-subscription after any channel close or cancel (reason logged and counted), graceful drain;
//! - broker retries ([`RetryPolicy`]): delayed exchange when the broker has it, TTL ladder otherwise;
//!   then the dead-letter queue with attempt count, first failure time and last error;
//! - [`Inbox`]: idempotent consumers with an on-disk id log;
//! - [`RpcClient`] / [`Kit::rpc_server`]: direct reply-to RPC;
//! - OpenTelemetry ([`spans`], [`trace`]): `publish` / `process` / RPC spans by the messaging
//!   conventions for RabbitMQ on the global tracer provider, W3C TraceContext + Baggage in the
//!   headers; [`Metrics`] (Prometheus); [`Health`];
//! - [`http`] (feature `axum`): 202 / 503 + `Retry-After` publish-and-return.
//!
//! ## Examples
//!
//! One runnable program per pattern in `examples/`, each a doc comment explaining the pattern (as
//! the RabbitMQ tutorials do) over a `run(url)` that does it end to end and checks its own outcome
//! (exit status 1 if it did not happen). Without `AMQP_URL` they start an in-memory warren inside
//! the process (`warren-embedded://examples`); with it they use that broker, e.g.
//! `AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f` for a RabbitMQ or warren on 5672. The test
//! suite runs every one against the warren it starts, or `AMQP_URL` (`tests/kit/examples.rs`).
//!
//! | pattern | run |
//! |---|---|
//! | work queue: tasks shared by workers, manual acks, fair dispatch | `cargo run -p service-kit --example work_queue` |
//! | publish/subscribe: a fanout exchange, every subscriber gets each message | `cargo run -p service-kit --example pub_sub` |
//! | routing: a direct exchange by severity, unroutable = 312 error | `cargo run -p service-kit --example routing` |
//! | topics: `*` and `#` binding patterns | `cargo run -p service-kit --example topics` |
//! | RPC: direct reply-to, correlation ids, timeouts | `cargo run -p service-kit --example rpc` |
//! | retries with backoff, poison messages, the dead-letter queue and its headers | `cargo run -p service-kit --example retry_dead_letter` |
//! | idempotent consumer: an on-disk inbox, duplicates across a worker restart | `cargo run -p service-kit --example idempotent_consumer` |
//! | HTTP publish-and-return: axum, 202 + message id, `Idempotency-Key` | `cargo run -p service-kit --example http_publish` |
//!
//! `examples/bench_clients.rs` (run by `scripts/bench-clients.sh`) measures publish-with-confirm
//! and consume throughput through the kit, raw lapin and raw amqprs on one broker.
//!
//! ## Tracing
//!
//! Install an OpenTelemetry tracer provider (`opentelemetry::global::set_tracer_provider`) and the
//! kit's spans are exported: publish inside your span (`.with_context(cx)` or an attached context)
//! and the `publish` span is its child; handlers run inside the `process` span, so spans they start
//! are its children; the context crosses the broker in `traceparent` / `tracestate` / `baggage`
//! headers. Without a provider everything is a no-op except passing an incoming context through.
//! Span names, kinds, attributes and the parent/link choice: [`spans`].

pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod health;
#[cfg(feature = "axum")]
pub mod http;
pub mod inbox;
pub mod message;
pub mod metrics;
pub mod publisher;
pub mod retry;
pub mod rpc;
pub mod spans;
pub mod topology;
pub mod trace;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, OnceCell};

pub use config::{Backoff, KitConfig};
pub use connection::Managed;
pub use consumer::{ConsumerConfig, ConsumerHandle, Outcome};
pub use error::{KitError, Result};
pub use health::{Health, HealthReport};
pub use inbox::{Claim, Inbox, InboxConfig};
pub use message::{Delivery, Message};
pub use metrics::Metrics;
pub use publisher::{Publisher, PublisherConfig};
pub use retry::{RetryMode, RetryPolicy};
pub use rpc::RpcClient;
pub use topology::Topology;
pub use trace::TraceContext;

/// Default RPC timeout per call.
const RPC_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// The kit: connections, metrics and health of one service.
pub struct Kit {
    /// Settings.
    cfg: KitConfig,
    /// Publishing connection.
    publish: Managed,
    /// Consuming connection (the same as `publish` when `shared_connection`).
    consume: Managed,
    /// Declarations replayed on every connect.
    topology: Arc<Mutex<Topology>>,
    /// Counters.
    metrics: Arc<Metrics>,
    /// Health state.
    health: Health,
    /// Shutdown signal for the supervisors.
    shutdown: watch::Sender<bool>,
    /// The publisher used for retry / DLQ copies and RPC replies.
    internal_publisher: Publisher,
    /// Whether the broker has delayed exchanges (probed once).
    delayed: OnceCell<bool>,
}

impl Kit {
    /// Starts the connections (in the background: this does not wait for the broker).
    pub fn start(cfg: KitConfig, topology: Topology) -> Kit {
        let metrics = Arc::new(Metrics::new());
        let health = Health::default();
        let topology = Arc::new(Mutex::new(topology));
        let (shutdown, rx) = watch::channel(false);
        let publish = Managed::start(
            cfg.clone(),
            "publish",
            topology.clone(),
            metrics.clone(),
            health.clone(),
            rx.clone(),
        );
        let consume = if cfg.shared_connection {
            publish.clone()
        } else {
            Managed::start(
                cfg.clone(),
                "consume",
                topology.clone(),
                metrics.clone(),
                health.clone(),
                rx,
            )
        };
        let internal_publisher =
            Publisher::new(publish.clone(), PublisherConfig::default(), metrics.clone());
        Kit {
            cfg,
            publish,
            consume,
            topology,
            metrics,
            health,
            shutdown,
            internal_publisher,
            delayed: OnceCell::new(),
        }
    }

    /// A publisher with its own channel pool.
    pub fn publisher(&self, cfg: PublisherConfig) -> Publisher {
        Publisher::new(self.publish.clone(), cfg, self.metrics.clone())
    }

    /// The publishing connection.
    pub fn publish_connection(&self) -> &Managed {
        &self.publish
    }

    /// The consuming connection.
    pub fn consume_connection(&self) -> &Managed {
        &self.consume
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The health state.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The retry transport `mode` resolves to on this broker.
    pub async fn resolve_retry_mode(&self, mode: RetryMode) -> RetryMode {
        match mode {
            RetryMode::Auto => {
                let has = *self
                    .delayed
                    .get_or_init(|| retry::broker_has_delayed_exchange(&self.cfg))
                    .await;
                if has {
                    RetryMode::DelayedExchange
                } else {
                    RetryMode::TtlLadder
                }
            }
            m => m,
        }
    }

    /// Starts a worker pool on `cfg.queue` running `handler` for each delivery.
    pub async fn consume<F, Fut>(&self, cfg: ConsumerConfig, handler: F) -> ConsumerHandle
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let handler: consumer::Handler = Arc::new(move |d| Box::pin(handler(d)));
        self.consume_boxed(cfg, handler, opentelemetry::trace::SpanKind::Consumer)
            .await
    }

    async fn consume_boxed(
        &self,
        cfg: ConsumerConfig,
        handler: consumer::Handler,
        span_kind: opentelemetry::trace::SpanKind,
    ) -> ConsumerHandle {
        let mode = self.resolve_retry_mode(cfg.retry.mode).await;
        let ctx = consumer::Ctx {
            cfg,
            mode,
            handler,
            publisher: self.internal_publisher.clone(),
            metrics: self.metrics.clone(),
            span_kind,
            peer: self.consume.peer().clone(),
        };
        consumer::start(
            ctx,
            self.consume.clone(),
            self.topology.clone(),
            self.health.clone(),
        )
    }

    /// An RPC client (on the publishing connection) with a 5 s default timeout.
    pub fn rpc_client(&self) -> RpcClient {
        RpcClient::new(self.publish.clone(), RPC_TIMEOUT_DEFAULT)
    }

    /// An RPC server on `queue`: `f` maps a request to the reply body.
    pub async fn rpc_server<F, Fut>(&self, cfg: ConsumerConfig, f: F) -> ConsumerHandle
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<u8>> + Send + 'static,
    {
        let h = rpc::server_handler(self.internal_publisher.clone(), f);
        self.consume_boxed(cfg, Arc::new(h), opentelemetry::trace::SpanKind::Server)
            .await
    }

    /// Stops reconnecting and closes the connections (drain consumers first with their handles).
    pub async fn shutdown(self) {
        self.health.set_stopping();
        let _ = self.shutdown.send(true);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
