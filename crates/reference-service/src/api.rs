//! The HTTP API: `POST /users` (validate, store, publish `user.registered` persistent with an
//! awaited confirm, 202), `GET /users/{id}`, `GET /users/{id}/score` (RPC to the scorer).
//!
//! With `--bench-knobs`, `POST /users` takes the benchmark's query knobs: `inline=1` (send the mail
//! in the handler, as before the guide's change), `confirm=0` (fire-and-forget: no confirm),
//! `persistent=0` (transient), `conn=per-request` (a new connection per request, as the guide did).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use serde::Deserialize;
use service_kit::http::{error_response, IDEMPOTENCY_KEY};
use service_kit::{KitError, Message, Publisher, RpcClient, TraceContext};

use crate::direct::Direct;
use crate::ledger::Ledger;
use crate::mail::{Mail, MailError};
use crate::model::{now_micros, parse_new_user, Registered, Score, User, USER_REGISTERED};
use crate::notifier::complete;
use crate::observe::AppMetrics;

/// Largest accepted `POST /users` body, bytes.
const USER_BODY_BYTES_MAX: usize = 16 * 1024;
/// Users kept in memory at most (then `POST /users` answers 503).
const USERS_MAX: usize = 1_000_000;
/// Longest `Idempotency-Key`, bytes.
const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// The in-memory user store.
#[derive(Default)]
pub struct Users {
    /// Store state.
    inner: Mutex<UsersInner>,
}

/// Users and the idempotency keys that created them.
#[derive(Default)]
struct UsersInner {
    /// id → user.
    by_id: HashMap<String, User>,
    /// `Idempotency-Key` → user id.
    by_key: HashMap<String, String>,
}

impl Users {
    /// The user with this id.
    pub fn get(&self, id: &str) -> Option<User> {
        self.inner.lock().by_id.get(id).cloned()
    }

    /// Registered users.
    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    /// True when nobody registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the API's handlers share.
#[derive(Clone)]
pub struct Api {
    /// Publishes with confirms over the kit's shared channels.
    pub publisher: Publisher,
    /// Calls the scorer.
    pub rpc: RpcClient,
    /// The store.
    pub users: Arc<Users>,
    /// Fire-and-forget and connection-per-request publishing (benchmark knobs).
    pub direct: Arc<Direct>,
    /// The mail dependency for `inline=1`.
    pub mail: Arc<Mail>,
    /// The service's metrics.
    pub metrics: Arc<AppMetrics>,
    /// The benchmark's ledger (off unless `--ledger-dir`).
    pub ledger: Arc<Ledger>,
    /// The events exchange.
    pub exchange: String,
    /// The score RPC queue.
    pub score_queue: String,
    /// Whether the benchmark knobs are accepted.
    pub bench_knobs: bool,
}

/// The API's routes.
pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/users", post(register))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/score", get(score))
        .layer(DefaultBodyLimit::max(USER_BODY_BYTES_MAX))
        .with_state(api)
}

/// The benchmark knobs of `POST /users`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// `1`: do the slow work in the handler.
    inline: Option<u8>,
    /// `0`: publish without waiting for (or asking) a confirm.
    confirm: Option<u8>,
    /// `0`: transient message.
    persistent: Option<u8>,
    /// `per-request`: a new connection for this request; `shared` (default): the kit's channels.
    conn: Option<String>,
}

impl Knobs {
    fn any(&self) -> bool {
        self.inline.is_some()
            || self.confirm.is_some()
            || self.persistent.is_some()
            || self.conn.is_some()
    }
}

/// A JSON error answer.
pub fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": msg.into() }).to_string();
    json(status, body)
}

fn json(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

async fn register(
    State(api): State<Api>,
    Query(knobs): Query<Knobs>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accepted_at_us = now_micros();
    let new = match parse_new_user(&body) {
        Ok(u) => u,
        Err(e) => {
            api.metrics.invalid.inc();
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    if knobs.any() && !api.bench_knobs {
        return error(
            StatusCode::BAD_REQUEST,
            "benchmark knobs are off (start with --bench-knobs)",
        );
    }
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_BYTES_MAX => Some(k.to_owned()),
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid Idempotency-Key"),
    };
    let Some(user) = store(&api.users, new.email, new.name, key.as_deref()) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "user store full");
    };
    if knobs.inline == Some(1) {
        return match api.mail.send(&user.email).await {
            Ok(()) => {
                api.metrics.accepted.inc();
                api.ledger.accepted(&user.id, accepted_at_us);
                api.ledger.sent(&user.id, accepted_at_us);
                complete(&api.metrics, accepted_at_us);
                json(StatusCode::CREATED, user_json(&user, None))
            }
            Err(MailError::Transient(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
            Err(MailError::Rejected(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        };
    }
    let trace = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .unwrap_or_else(TraceContext::new_root);
    let event = Registered {
        user: user.clone(),
        accepted_at_us,
    };
    let body = match serde_json::to_vec(&event) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // A retried request (same Idempotency-Key) republishes the same message id: the inbox drops it.
    let id = key.unwrap_or_else(|| format!("user.registered.{}", user.id));
    let mut msg = Message::new(&api.exchange, USER_REGISTERED, body)
        .with_id(&id)
        .with_trace(&trace);
    if knobs.persistent == Some(0) {
        msg = msg.transient();
    }
    let confirm = knobs.confirm != Some(0);
    let published = if knobs.conn.as_deref() == Some("per-request") {
        api.direct.publish_on_new_connection(msg, confirm).await
    } else if !confirm {
        api.direct.publish_fire_and_forget(msg).await
    } else {
        api.publisher.publish(msg).await
    };
    match published {
        Ok(message_id) => {
            api.metrics.accepted.inc();
            api.ledger.accepted(&user.id, accepted_at_us);
            tracing::debug!(user = %user.id, trace_id = %trace.trace_id, "registered");
            let mut r = json(StatusCode::ACCEPTED, user_json(&user, Some(&message_id)));
            if let Ok(v) = HeaderValue::from_str(&format!("/users/{}", user.id)) {
                r.headers_mut().insert("location", v);
            }
            r
        }
        Err(e) => {
            api.metrics.publish_failed.inc();
            error_response(&e)
        }
    }
}

/// Stores a new user, or returns the one an earlier request with the same key created.
fn store(users: &Users, email: String, name: String, key: Option<&str>) -> Option<User> {
    let mut u = users.inner.lock();
    if let Some(existing) = key
        .and_then(|k| u.by_key.get(k))
        .and_then(|id| u.by_id.get(id))
    {
        return Some(existing.clone());
    }
    if u.by_id.len() >= USERS_MAX {
        return None;
    }
    let user = User {
        id: service_kit::message::new_id(),
        email,
        name,
    };
    u.by_id.insert(user.id.clone(), user.clone());
    if let Some(k) = key {
        u.by_key.insert(k.to_owned(), user.id.clone());
    }
    Some(user)
}

fn user_json(u: &User, message_id: Option<&str>) -> String {
    serde_json::json!({ "id": u.id, "email": u.email, "name": u.name, "message_id": message_id })
        .to_string()
}

async fn get_user(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.users.get(&id) {
        Some(u) => json(StatusCode::OK, user_json(&u, None)),
        None => error(StatusCode::NOT_FOUND, "no such user"),
    }
}

async fn score(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let Some(user) = api.users.get(&id) else {
        return error(StatusCode::NOT_FOUND, "no such user");
    };
    let req = match serde_json::to_vec(&user) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match api.rpc.call("", &api.score_queue, &req).await {
        Ok(reply) => match serde_json::from_slice::<Score>(&reply.body) {
            Ok(s) => json(StatusCode::OK, serde_json::json!(s).to_string()),
            Err(_) => error(StatusCode::BAD_GATEWAY, reply.text()),
        },
        Err(KitError::RpcTimeout(t)) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("scorer did not answer within {t:?}"),
        ),
        Err(e) => error_response(&e),
    }
}
