//! One request: limits (concurrency, body size, time), path splitting and
//! decoding, Basic auth, RabbitMQ's error bodies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use crate::auth_attempts::{AuthAttempts, AuthProtocol};
use crate::App;

/// A request as the endpoint handlers see it.
pub(crate) struct Req {
    /// HTTP method.
    pub method: Method,
    /// Path segments after `/api`, each percent-decoded after splitting.
    pub seg: Vec<String>,
    /// The path as sent (for relative `Location` headers).
    pub raw_path: String,
    /// Query parameters (decoded; `+` is a space there).
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The body (at most `http_body_bytes_max`).
    pub body: bytes::Bytes,
    /// The authenticated user.
    pub user: String,
    /// Its tags (empty for the unauthenticated probes).
    pub tags: Vec<String>,
    /// The vhosts it may see (None: all, for administrator and
    /// monitoring), the one visibility rule of `admin::visible`.
    pub vhosts: Option<Vec<String>>,
}

impl Req {
    /// A query flag (`true`).
    pub fn flag(&self, k: &str) -> bool {
        self.query.get(k).is_some_and(|v| v == "true")
    }

    /// The body as JSON (empty = `{}`); 400 on malformed JSON.
    pub fn json(&self) -> Result<Value, Response> {
        let body = self
            .body
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&self.body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(bad_request("body must be a JSON object")),
            Err(e) => Err(bad_request(&format!("malformed JSON: {e}"))),
        }
    }
}

/// A JSON response.
pub(crate) fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// RabbitMQ's `{"error":…,"reason":…}` with a status.
pub(crate) fn error(status: StatusCode, error: &str, reason: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "reason": reason })),
    )
        .into_response()
}

pub(crate) fn bad_request(reason: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}

pub(crate) fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) fn created() -> Response {
    StatusCode::CREATED.into_response()
}

pub(crate) fn method_not_allowed(allow: &str) -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method Not Allowed",
    );
    if let Ok(v) = HeaderValue::from_str(allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// An AMQP error from a management call, as RabbitMQ maps it
/// (`rabbit_mgmt_util:direct_request`): 404 for not_found, 401 "Access
/// refused." for access_refused, 400 with the AMQP text (without its
/// `CODE_NAME - ` prefix) otherwise.
pub(crate) fn amqp_error(e: &broker_core::AmqpError) -> Response {
    use amqp_codec::reply;
    match e.code {
        reply::NOT_FOUND => not_found(),
        reply::ACCESS_REFUSED => error(
            StatusCode::UNAUTHORIZED,
            "not_authorised",
            "Access refused.",
        ),
        _ => bad_request(e.text.split_once(" - ").map_or(e.text.as_str(), |(_, r)| r)),
    }
}

/// Splits the raw path on `/` and percent-decodes each segment.
fn segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix("/api")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let mut out = Vec::new();
    for s in rest.split('/') {
        let d = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
        out.push(d.into_owned());
    }
    if out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    Some(out)
}

fn query(q: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        m.insert(dec(k), dec(v));
    }
    m
}

/// Paths answered without credentials (RabbitMQ's probe-style checks).
fn unauthenticated(seg: &[String]) -> bool {
    matches!(
        seg.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["auth"]
            | ["health", "checks", "is-in-service"]
            | ["health", "checks", "ready-to-serve-clients"]
            | ["health", "checks", "below-node-connection-limit"]
    )
}

/// The API's Basic-auth challenge (RabbitMQ's realm).
pub(crate) const API_REALM: &str = "Basic realm=\"RabbitMQ Management\"";

/// A 401 with `WWW-Authenticate: <challenge>` and no body.
pub(crate) fn challenge(challenge: &'static str) -> Response {
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// The Basic-auth user and its tags, or the 401 RabbitMQ sends: the one
/// login check of the API and of the metrics (`prometheus_auth`).
/// `realm` is the challenge sent when no credentials came. Every request
/// that carried credentials counts one attempt (protocol `http`).
pub(crate) fn authenticate(
    core: &dyn crate::Core,
    attempts: &AuthAttempts,
    headers: &HeaderMap,
    peer: SocketAddr,
    realm: &'static str,
) -> Result<(String, Vec<String>), Response> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge(realm));
    };
    let Some(b64) = auth.to_str().ok().and_then(|a| a.strip_prefix("Basic ")) else {
        return Err(challenge(realm));
    };
    let result = check_basic(core, b64, peer);
    attempts.record(AuthProtocol::Http, result.is_ok());
    result
}

/// Checks the credentials of a `Basic` header's base64 against the user
/// store (never panics on malformed input: each flaw is a 401).
fn check_basic(
    core: &dyn crate::Core,
    b64: &str,
    peer: SocketAddr,
) -> Result<(String, Vec<String>), Response> {
    let refused = || error(StatusCode::UNAUTHORIZED, "not_authorized", "Login failed");
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return Err(refused());
    };
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return Err(refused());
    };
    let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
    if pass.is_empty() {
        return Err(refused());
    }
    let (Ok(user), Ok(pass)) = (std::str::from_utf8(user), std::str::from_utf8(pass)) else {
        return Err(refused());
    };
    let loopback = peer.ip().is_loopback();
    // The user's record is read under the core lock; the password is
    // hashed and compared after releasing it.
    let (mut record, mut loopback_only) = (None, false);
    core.with_core(&mut |core| {
        record = core.login_record(user, loopback);
        loopback_only = record.is_none() && !loopback && core.login_record(user, true).is_some();
    });
    match record {
        Some(r) if r.verify(pass) => Ok((user.to_string(), r.tags.clone())),
        None if loopback_only => Err(error(
            StatusCode::UNAUTHORIZED,
            "not_authorized",
            "User can only log in via localhost",
        )),
        _ => Err(refused()),
    }
}

/// The one axum handler: `/api`, and the console's files (`console.rs`).
pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(crate::Peer(peer)): ConnectInfo<crate::Peer>,
    request: axum::extract::Request,
) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "too many concurrent requests",
        );
    };
    let timeout = Duration::from_millis(app.config.request_timeout_ms);
    match tokio::time::timeout(timeout, serve_one(&app, peer, request)).await {
        Ok(r) => r,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "request timed out",
        ),
    }
}

async fn serve_one(app: &App, peer: SocketAddr, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(r) = crate::console::serve(&parts.method, parts.uri.path()) {
        return r;
    }
    let Some(seg) = segments(parts.uri.path()) else {
        return not_found();
    };
    let (user, tags, vhosts) = if unauthenticated(&seg) {
        (String::new(), Vec::new(), None)
    } else {
        let (user, tags) = match authenticate(
            &*app.core,
            &app.config.auth_attempts,
            &parts.headers,
            peer,
            API_REALM,
        ) {
            Ok(u) => u,
            Err(r) => return r,
        };
        if let Err(r) = crate::admin::management_user(&tags) {
            return r;
        }
        let vhosts = crate::admin::visible(app, &user, &tags);
        (user, tags, vhosts)
    };
    let limit = app.config.http_body_bytes_max;
    let body = match axum::body::to_bytes(Body::new(body), limit).await {
        Ok(b) => b,
        Err(_) => {
            return bad_request(&format!("request body larger than {limit} bytes"));
        }
    };
    let req = Req {
        method: parts.method,
        seg,
        raw_path: parts.uri.path().to_string(),
        query: query(parts.uri.query()),
        headers: parts.headers,
        body,
        user,
        tags,
        vhosts,
    };
    let mut r = crate::routes::route(app, &req);
    if let Some(&crate::admin::Durable(seq)) = r.extensions().get() {
        crate::admin::wait_durable(app, seq).await;
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_decoded_after_splitting() {
        let s = segments("/api/queues/%2F/a%2Fb%2Dc").unwrap();
        assert_eq!(s, vec!["queues", "/", "a/b-c"]);
        assert_eq!(segments("/api/").unwrap(), Vec::<String>::new());
        assert!(segments("/other").is_none());
    }
}
