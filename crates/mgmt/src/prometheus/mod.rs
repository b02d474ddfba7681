//! Prometheus metrics on port 15692, as the rabbitmq_prometheus plugin
//! serves them: `/metrics` (aggregated), `/metrics/per-object`,
//! `/metrics/detailed?family=…&vhost=…`, `/metrics/memory-breakdown`; text
//! exposition format, gzip when asked, unauthenticated unless
//! `prometheus_auth` is on (Basic auth, monitoring or administrator tag).
//!
//! A scrape reads the published statistics snapshot ([`Stats`]), the
//! store's and the logins' atomic counters and `/proc/self`: it never
//! takes the core lock (with `prometheus_auth`, the login reads the user's
//! record under it, as the API does). Names, types, labels
//! and units are RabbitMQ's; docs/metrics.md lists what stands in for the
//! Erlang VM metrics.

mod globals;
mod node;
mod objects;
mod text;
mod vm;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;

use crate::auth_attempts::AuthAttempts;
use crate::{Core, Stats};
use text::{Kind, Text};
pub use vm::StoreIo;

/// The metrics' Basic-auth challenge.
const REALM: &str = "Basic realm=\"RabbitMQ Prometheus\"";

/// Scrapes rendered at once; more wait (a scrape is short and bounded).
pub const SCRAPES_CONCURRENT_MAX: usize = 4;

/// `family=` / `vhost=` values accepted per request (more are ignored).
pub const QUERY_VALUES_MAX: usize = 64;

/// Node facts the server knows and the scrape reports.
#[derive(Clone)]
pub struct NodeProbe {
    /// The memory high watermark, bytes.
    pub memory_limit_bytes: u64,
    /// The free-disk low watermark, bytes.
    pub disk_free_limit_bytes: u64,
    /// Free bytes on the data directory's disk now (None: no data dir).
    pub disk_free: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
    /// The store's I/O counters now (None: no data dir).
    pub store_io: Arc<dyn Fn() -> Option<StoreIo> + Send + Sync>,
}

/// The metrics listener's settings.
#[derive(Clone)]
pub struct PromConfig {
    /// Address and port (RabbitMQ: 15692).
    pub addr: SocketAddr,
    /// What only the server knows.
    pub probe: NodeProbe,
    /// Require Basic auth of a user tagged monitoring or administrator
    /// (`prometheus_auth`; off by default, as RabbitMQ's).
    pub auth: bool,
    /// Login counters (shown; the metrics' own logins add to `http`).
    pub auth_attempts: Arc<AuthAttempts>,
}

/// Everything a scrape needs.
pub(crate) struct Prom {
    /// The server's facts.
    pub probe: NodeProbe,
    /// The published snapshot.
    pub stats: Arc<Stats>,
    /// `rabbit@<hostname>`.
    pub node: String,
    /// The cluster's permanent id (the one `/api` reports).
    pub cluster_id: String,
    /// Start time, for uptime.
    pub started: std::time::Instant,
    /// Start time, seconds since the epoch.
    pub started_unix_s: u64,
    /// Bounds concurrent scrapes (`SCRAPES_CONCURRENT_MAX`).
    pub permits: tokio::sync::Semaphore,
    /// Whether a scrape must log in (`PromConfig::auth`).
    pub auth: bool,
    /// Login counters.
    pub auth_attempts: Arc<AuthAttempts>,
    /// The core, for logins only.
    pub core: Arc<dyn Core>,
}

/// Which families a scrape writes, and how.
pub(crate) struct Select {
    /// Sum over objects, no labels (`/metrics`).
    pub aggregate: bool,
    /// Families asked for (`/metrics/detailed`); None = all.
    pub families: Option<Vec<String>>,
    /// Vhosts asked for; empty = all.
    pub vhosts: Vec<String>,
    /// Emit `queue_info`.
    pub info: bool,
}

impl Select {
    /// Whether family `f` is written.
    pub fn family(&self, f: &str) -> bool {
        self.families
            .as_ref()
            .is_none_or(|fs| fs.iter().any(|x| x == f))
    }

    /// Whether objects of vhost `v` are written.
    pub fn vhost(&self, v: &str) -> bool {
        self.vhosts.is_empty() || self.vhosts.iter().any(|x| x == v)
    }
}

/// Binds the metrics listener.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("binding prometheus listener {addr}: {e}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The metrics endpoints: one state shared by every listener they are
/// served on (HTTP and HTTPS).
#[derive(Clone)]
pub struct Metrics {
    /// The scrapes' state.
    prom: Arc<Prom>,
}

impl Metrics {
    /// The endpoints over the published snapshot; `core` serves logins.
    pub fn new(config: PromConfig, stats: Arc<Stats>, core: Arc<dyn Core>) -> Metrics {
        let started_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Metrics {
            prom: Arc::new(Prom {
                probe: config.probe,
                stats,
                node: crate::node_name(),
                cluster_id: crate::cluster_id(),
                started: std::time::Instant::now(),
                started_unix_s,
                permits: tokio::sync::Semaphore::new(SCRAPES_CONCURRENT_MAX),
                auth: config.auth,
                auth_attempts: config.auth_attempts,
                core,
            }),
        }
    }

    /// Serves the metrics on `listener` until `shutdown` resolves.
    pub async fn serve<L: crate::HttpListener<Addr = SocketAddr>>(
        self,
        listener: L,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(self.prom)
            .into_make_service_with_connect_info::<crate::Peer>();
        axum::serve(crate::Accepting(listener), router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// With `prometheus_auth`, the API's login check (`http::authenticate`)
/// and then the tag rule: monitoring or administrator. Every refusal is a
/// 401 carrying the challenge, so a scraper knows to send credentials.
fn login(p: &Prom, headers: &HeaderMap, peer: SocketAddr) -> Result<(), Response> {
    if !p.auth {
        return Ok(());
    }
    let with_challenge = |mut r: Response| {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        r
    };
    let (_, tags) = crate::http::authenticate(&*p.core, &p.auth_attempts, headers, peer, REALM)
        .map_err(with_challenge)?;
    if crate::admin::is_monitor(&tags) {
        Ok(())
    } else {
        Err(with_challenge(plain(
            StatusCode::UNAUTHORIZED,
            "Not monitoring user\n",
        )))
    }
}

async fn handle(
    State(p): State<Arc<Prom>>,
    ConnectInfo(crate::Peer(peer)): ConnectInfo<crate::Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    if let Err(r) = login(&p, &headers, peer) {
        return r;
    }
    let Ok(_permit) = p.permits.acquire().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let query = parse_query(uri.query().unwrap_or(""));
    let body = match uri.path().trim_end_matches('/') {
        "/metrics" => render(&p, "aggregated", all(true)),
        "/metrics/per-object" => render(&p, "per-object", all(false)),
        "/metrics/detailed" => {
            let pick = |k: &str| -> Vec<String> {
                query
                    .iter()
                    .filter(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let sel = Select {
                aggregate: false,
                families: Some(pick("family")),
                vhosts: pick("vhost"),
                info: true,
            };
            render(&p, "detailed", sel)
        }
        "/metrics/memory-breakdown" => memory_breakdown(&p),
        _ => return plain(StatusCode::NOT_FOUND, "Not Found\n"),
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut resp = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        match enc.write_all(body.as_bytes()).and_then(|_| enc.finish()) {
            Ok(z) => {
                let mut r = Response::new(Body::from(z));
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(_) => Response::new(Body::from(body)),
        }
    } else {
        Response::new(Body::from(body))
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

fn all(aggregate: bool) -> Select {
    Select {
        aggregate,
        families: None,
        vhosts: Vec::new(),
        info: !aggregate,
    }
}

/// One scrape's body. `/metrics/detailed` prefixes object and node
/// families with `rabbitmq_detailed_` and writes only those asked for.
fn render(p: &Prom, endpoint: &str, sel: Select) -> String {
    let published = p.stats.load();
    let s = &*published.now;
    let detailed = sel.families.is_some();
    let mut t = Text::new(if detailed {
        "rabbitmq_detailed_"
    } else {
        "rabbitmq_"
    });
    node::info(&mut t, p, endpoint);
    let proc_ = node::ProcStats::read();
    if sel.family("node_coarse_metrics") || sel.family("node_metrics") {
        node::node(&mut t, p, &proc_, s.connections.len());
    }
    if sel.family("connection_churn_metrics") {
        globals::churn(&mut t, s);
    }
    if sel.family("node_persister_metrics") {
        if let Some(io) = (p.probe.store_io)() {
            vm::persister(&mut t, &io);
        }
    }
    if sel.family("auth_attempt_metrics") {
        vm::auth(&mut t, &p.auth_attempts);
    }
    objects::queues(&mut t, &sel, s);
    objects::exchanges(&mut t, &sel, s);
    objects::channels(&mut t, &sel, s);
    objects::connections(&mut t, &sel, s);
    if !detailed {
        globals::object_totals(&mut t, s);
        globals::global(&mut t, s, &globals::Totals::of(s));
        globals::alarms(&mut t, s);
        node::start_time(&mut t, p);
        let uptime_ms = u64::try_from(p.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        vm::erlang_vm(&mut t, &proc_, uptime_ms);
    }
    t.out
}

/// `rabbitmq_memory_*_bytes`: what warren can attribute (docs/metrics.md).
fn memory_breakdown(p: &Prom) -> String {
    let published = p.stats.load();
    let s = &*published.now;
    let mut t = Text::new("rabbitmq_");
    node::info(&mut t, p, "memory-breakdown");
    let (mut classic, mut quorum) = (0u64, 0u64);
    for q in &s.queues {
        match q.kind {
            "quorum" => quorum += q.ready_bytes,
            _ => classic += q.ready_bytes,
        }
    }
    let rss = node::ProcStats::read().rss_bytes;
    let rows = [
        (
            "memory_classic_queue_erlang_process_bytes",
            "Memory held by classic queues' ready message bodies",
            classic,
        ),
        (
            "memory_quorum_queue_erlang_process_bytes",
            "Memory held by quorum queues' ready message bodies",
            quorum,
        ),
        (
            "memory_other_system_bytes",
            "Resident memory not attributed above",
            rss.saturating_sub(classic + quorum),
        ),
    ];
    for (name, help, v) in rows {
        t.single(name, Kind::Gauge, help, v as f64);
    }
    t.out
}

/// `k=v&k=v` pairs, percent-decoded (`+` is a space), at most
/// `QUERY_VALUES_MAX`.
fn parse_query(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .take(QUERY_VALUES_MAX)
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(kv), String::new()),
        })
        .collect()
}

fn plain(code: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests;
