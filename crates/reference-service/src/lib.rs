//! # warren-reference-service
//!
//! The guides' user-registration system, built the way it should be, on service-kit:
//!
//! - **api** (axum): `POST /users` validates (400 with a clear error), stores the user in memory,
//!   publishes `user.registered` persistent and waits for the broker's confirm, then answers 202;
//!   `GET /users/{id}`; `GET /users/{id}/score` asks the scorer over RPC (direct reply-to).
//! - **notifier**: consumes `user.registered` with the kit's idempotent inbox and sends a welcome
//!   mail through a simulated slow, rate-limited dependency ([`mail`]); transient failures are
//!   retried through the broker with backoff, poison goes to `{queue}.dlq`.
//! - **scorer**: the RPC server behind the score endpoint.
//!
//! The HTTP request's `traceparent` travels in the message headers to the notifier (logged there,
//! kept in [`notifier::SentLog`]). Every process serves `/health` and `/metrics`.
//!
//! [`System::start`] runs the roles [`Settings`] asks for, against an embedded warren (the default:
//! everything in one process) or a broker by URL (warren or RabbitMQ, one process per role).

pub mod api;
pub mod direct;
pub mod ledger;
pub mod mail;
pub mod model;
pub mod notifier;
pub mod observe;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use service_kit::{
    ConsumerConfig, ConsumerHandle, Inbox, InboxConfig, Kit, KitConfig, RetryPolicy, Topology,
};
use tokio::sync::watch;

use crate::ledger::Ledger;
use crate::mail::{Mail, MailConfig};
use crate::model::{score_of, Score, User, USER_REGISTERED};
use crate::notifier::{Notifier, SentLog};
use crate::observe::{AppMetrics, Observed};
pub use crate::settings::{Mode, Role, Settings};

/// Message ids the notifier's inbox remembers at most.
const INBOX_IDS_MAX: usize = 1_000_000;
/// How long the inbox remembers a message id.
const INBOX_AGE_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// The broker objects of one system (all named after `--prefix`).
#[derive(Debug, Clone)]
pub struct Names {
    /// Topic exchange the events go to.
    pub exchange: String,
    /// The notifier's queue (bound with `user.registered`).
    pub notify_queue: String,
    /// Its dead-letter queue.
    pub notify_dlq: String,
    /// The scorer's RPC queue.
    pub score_queue: String,
}

impl Names {
    /// The names for `prefix`.
    pub fn new(prefix: &str) -> Names {
        let notify_queue = format!("{prefix}.notify");
        Names {
            exchange: format!("{prefix}.events"),
            notify_dlq: service_kit::retry::dlq_name(&notify_queue),
            notify_queue,
            score_queue: format!("{prefix}.score"),
        }
    }
}

/// A running system (the roles of one process).
pub struct System {
    /// The kit (connections, metrics, health).
    kit: Kit,
    /// The embedded broker, in `--mode embedded`.
    broker: Option<warren_embedded::Broker>,
    /// The broker URL the kit uses.
    pub url: String,
    /// The HTTP listener's address.
    pub http_addr: SocketAddr,
    /// Stops the HTTP server.
    http_stop: watch::Sender<bool>,
    /// The HTTP server task.
    http_task: tokio::task::JoinHandle<()>,
    /// The notifier and scorer worker pools.
    consumers: Vec<ConsumerHandle>,
    /// The notifier, if this process runs it.
    pub notifier: Option<Arc<Notifier>>,
    /// The user store, if this process runs the API.
    pub users: Option<Arc<api::Users>>,
    /// Metrics and health.
    pub observed: Observed,
    /// Broker object names.
    pub names: Names,
}

impl System {
    /// Starts the roles `s` asks for (the HTTP listener is bound when this returns; the broker
    /// connections come up in the background).
    pub async fn start(s: Settings) -> anyhow::Result<System> {
        s.check()?;
        let data = s.data_dir();
        std::fs::create_dir_all(&data).with_context(|| format!("{}", data.display()))?;
        let (broker, url) = match s.mode {
            Mode::Embedded => {
                let cfg = if s.in_memory {
                    warren_embedded::Config::in_memory()
                } else {
                    warren_embedded::Config::durable(data.join("broker"))
                };
                let b = warren_embedded::Broker::start(cfg.name(&s.broker_name)).await?;
                let url = b.url();
                (Some(b), url)
            }
            Mode::Remote => (None, s.url.clone().context("--url")?),
        };
        let names = Names::new(&s.prefix);
        let topology = Topology::new()
            .exchange(&names.exchange, "topic")
            .queue(&names.notify_queue)
            .bind(&names.notify_queue, &names.exchange, USER_REGISTERED)
            .queue(&names.score_queue);
        let mut kc = KitConfig::new(url.clone());
        kc.connection_name = format!("reference-service.{:?}", s.role).to_lowercase();
        let kit = Kit::start(kc, topology);
        let app = Arc::new(AppMetrics::new());
        let mail = Arc::new(Mail::new(MailConfig {
            concurrency: s.mail_concurrency,
            latency: Duration::from_millis(s.mail_latency_ms),
            rate_per_sec: s.mail_rate_per_sec,
            rate_wait: Duration::from_millis(s.mail_rate_wait_ms),
        }));
        let ledger = Arc::new(match &s.ledger_dir {
            Some(dir) => Ledger::open(dir, s.role.api(), s.role.api() || s.role.notifier())?,
            None => Ledger::off(),
        });
        let mut consumers = Vec::new();
        let mut notifier = None;
        if s.role.notifier() {
            let n = Arc::new(Notifier {
                mail: mail.clone(),
                metrics: app.clone(),
                sent: SentLog::default(),
                ledger: ledger.clone(),
            });
            consumers.push(start_notifier(&kit, &s, &names, &data, n.clone()).await?);
            notifier = Some(n);
        }
        if s.role.scorer() {
            consumers.push(start_scorer(&kit, &names, app.clone()).await);
        }
        let observed = Observed {
            kit: kit.metrics().clone(),
            app: app.clone(),
            health: kit.health().clone(),
        };
        let mut router = observe::routes(observed.clone()).route("/", get(index));
        let mut users = None;
        if s.role.api() {
            let u = Arc::new(api::Users::default());
            users = Some(u.clone());
            router = router.merge(api::routes(api::Api {
                publisher: kit.publisher(service_kit::PublisherConfig::default()),
                rpc: kit.rpc_client(),
                users: u,
                direct: Arc::new(direct::Direct::new(
                    kit.publish_connection().clone(),
                    url.clone(),
                )),
                mail,
                metrics: app,
                ledger,
                exchange: names.exchange.clone(),
                score_queue: names.score_queue.clone(),
                bench_knobs: s.bench_knobs,
            }));
        }
        let listener = tokio::net::TcpListener::bind(s.http)
            .await
            .with_context(|| format!("binding {}", s.http))?;
        let http_addr = listener.local_addr()?;
        let (http_stop, mut stop_rx) = watch::channel(false);
        let http_task = tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.changed().await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(%http_addr, role = ?s.role, mode = ?s.mode, %url, "reference service up");
        Ok(System {
            kit,
            broker,
            url,
            http_addr,
            http_stop,
            http_task,
            consumers,
            notifier,
            users,
            observed,
            names,
        })
    }

    /// The kit (for tests and programs built on the system).
    pub fn kit(&self) -> &Kit {
        &self.kit
    }

    /// Stops HTTP, drains the workers, closes the connections and stops the embedded broker.
    pub async fn shutdown(self) {
        let _ = self.http_stop.send(true);
        let _ = self.http_task.await;
        for c in self.consumers {
            c.shutdown().await;
        }
        self.kit.shutdown().await;
        if let Some(b) = self.broker {
            b.shutdown().await;
        }
    }
}

async fn start_notifier(
    kit: &Kit,
    s: &Settings,
    names: &Names,
    data: &std::path::Path,
    n: Arc<Notifier>,
) -> anyhow::Result<ConsumerHandle> {
    let inbox = Inbox::open(InboxConfig {
        path: data.join(format!("{}.inbox.log", s.prefix)),
        max_ids: INBOX_IDS_MAX,
        max_age: INBOX_AGE_MAX,
    })?;
    let mut cfg = ConsumerConfig::new(&names.notify_queue);
    cfg.prefetch = s.prefetch;
    cfg.concurrency = s.worker_concurrency;
    cfg.inbox = Some(Arc::new(inbox));
    cfg.retry = RetryPolicy {
        max_attempts: s.max_attempts,
        delays: s.retry_delays(),
        ..RetryPolicy::default()
    };
    Ok(kit
        .consume(cfg, move |d| {
            let n = n.clone();
            async move { n.handle(d).await }
        })
        .await)
}

async fn start_scorer(kit: &Kit, names: &Names, app: Arc<AppMetrics>) -> ConsumerHandle {
    let cfg = ConsumerConfig::new(&names.score_queue);
    kit.rpc_server(cfg, move |d| {
        let app = app.clone();
        async move {
            let reply = match serde_json::from_slice::<User>(&d.body) {
                Ok(u) => {
                    app.scored.inc();
                    serde_json::json!(Score {
                        score: score_of(&u),
                        id: u.id,
                    })
                }
                Err(e) => serde_json::json!({ "error": format!("bad score request: {e}") }),
            };
            reply.to_string().into_bytes()
        }
    })
    .await
}

async fn index() -> &'static str {
    "warren reference service\n\
     POST /users {\"email\":..,\"name\":..}  -> 202 (published, confirmed)\n\
     GET  /users/{id}                       -> the user\n\
     GET  /users/{id}/score                 -> score over RPC\n\
     GET  /health, /metrics\n"
}
