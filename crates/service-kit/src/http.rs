//! axum integration: publish-with-confirm → `202 Accepted` + message id; a blocked broker or a
//! full confirm window past the deadline → `503` + `Retry-After`; `Idempotency-Key` → message id.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::KitError;
use crate::health::Health;
use crate::message::Message;
use crate::metrics::Metrics;
use crate::publisher::Publisher;

/// Request header whose value becomes the message id.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Response header carrying the message id.
pub const MESSAGE_ID: &str = "message-id";
/// Seconds suggested in `Retry-After` on 503.
pub const RETRY_AFTER_SECS: u64 = 1;
/// Longest `Idempotency-Key` accepted (a message id is a short string).
const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// Publishes `msg` with confirm and maps the result to an HTTP response.
pub async fn publish_and_accept(
    publisher: &Publisher,
    headers: &HeaderMap,
    mut msg: Message,
) -> Response {
    if let Some(key) = headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok()) {
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
            return (StatusCode::BAD_REQUEST, "invalid Idempotency-Key").into_response();
        }
        msg = msg.with_id(key);
    }
    match publisher.publish(msg).await {
        Ok(id) => {
            let mut r =
                (StatusCode::ACCEPTED, format!("{{\"message_id\":\"{id}\"}}")).into_response();
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert(MESSAGE_ID, v);
            }
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => error_response(&e),
    }
}

/// The HTTP form of a kit error.
pub fn error_response(e: &KitError) -> Response {
    if e.is_backpressure() {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(RETRY_AFTER_SECS));
        return r;
    }
    let status = match e {
        KitError::Returned { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string()).into_response()
}

/// `/healthz`: 200 when connected and consuming, else 503; the body lists each part.
pub fn health_response(h: &Health) -> Response {
    let r = h.report();
    let status = if r.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{r:?}")).into_response()
}

/// `/metrics`: the Prometheus text exposition.
pub fn metrics_response(m: &Metrics) -> Response {
    let mut r = m.render().into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
