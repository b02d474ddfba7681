//! The HTTP side of `warren ctl`: the `rabbitmq_http_client` crate's typed
//! calls for changes, and plain JSON reads (through the same reqwest) for
//! listings, so that any info key RabbitMQ's API has can be printed.

use std::time::Duration;

use rabbitmq_http_client::blocking_api::{Client, HttpClientError};
use reqwest::StatusCode;
use serde_json::Value;

use super::{CtlError, EX_DATAERR, EX_NOPERM, EX_SOFTWARE, EX_UNAVAILABLE};

/// How long a TCP (and TLS) connect to the API may take, in seconds.
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// How long one API request may take, in seconds (rabbitmqctl's default
/// command timeout is 60 s).
pub const REQUEST_TIMEOUT_SECS: u64 = 60;

/// A connection to one broker's management API.
pub struct Api {
    /// The typed client (`.../api` endpoint, Basic auth).
    pub client: Client<String, String, String>,
    /// The plain HTTP client used for JSON reads and the few writes the
    /// typed client has no call for.
    raw: reqwest::blocking::Client,
    /// `http(s)://host:port/api`, without a trailing slash.
    base: String,
    /// Basic auth user name.
    username: String,
    /// Basic auth password.
    password: String,
}

/// Percent-encodes one path segment the way RabbitMQ's clients do
/// (everything but unreserved characters, so `/` becomes `%2F`).
pub fn seg(s: &str) -> String {
    const KEEP: &[u8] = b"-._~";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || KEEP.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    /// Builds the clients for `url` (e.g. `http://127.0.0.1:15672`).
    pub fn new(url: &str, username: &str, password: &str) -> Result<Api, CtlError> {
        // https URLs use rustls with the ring provider; installing it twice
        // is harmless (the second call reports the first is there).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let trimmed = url.trim_end_matches('/');
        let base = if trimmed.ends_with("/api") {
            trimmed.to_string()
        } else {
            format!("{trimmed}/api")
        };
        let raw = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS))
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
            .build()
            .map_err(|e| CtlError::new(EX_SOFTWARE, format!("cannot build an HTTP client: {e}")))?;
        let client = Client::from_http_client(
            raw.clone(),
            base.clone(),
            username.to_string(),
            password.to_string(),
        );
        Ok(Api {
            client,
            raw,
            base,
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// The API's base URL (for messages).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` (already encoded, starting with `/`): `None` on 404.
    pub fn get(&self, path: &str) -> Result<Option<Value>, CtlError> {
        let resp = self
            .raw
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = resp.text().map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| CtlError::new(EX_SOFTWARE, format!("bad JSON from {path}: {e}")))
    }

    /// GET a listing: a JSON array (a 404, e.g. an unknown vhost, is empty).
    pub fn list(&self, path: &str) -> Result<Vec<Value>, CtlError> {
        match self.get(path)? {
            Some(Value::Array(rows)) => Ok(rows),
            Some(_) => Err(CtlError::new(
                EX_SOFTWARE,
                format!("{path}: expected a JSON array"),
            )),
            None => Ok(Vec::new()),
        }
    }

    /// PUT a JSON body to `path` (already encoded).
    pub fn put(&self, path: &str, body: &Value) -> Result<(), CtlError> {
        let resp = self
            .raw
            .put(format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
            .json(body)
            .send()
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(status_error(status, &text))
        }
    }

    /// DELETE `path` (already encoded, with its query): `None` on 404.
    pub fn delete(&self, path: &str) -> Result<Option<()>, CtlError> {
        let resp = self
            .raw
            .delete(format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if status == StatusCode::NOT_FOUND {
            Ok(None)
        } else if status.is_success() {
            Ok(Some(()))
        } else {
            Err(status_error(status, &text))
        }
    }

    /// The error for a broker that does not answer (rabbitmqctl exits 69).
    fn unreachable(&self, e: &reqwest::Error) -> CtlError {
        CtlError::new(
            EX_UNAVAILABLE,
            format!(
                "unable to perform an operation on node at {}. Please see diagnostics information and suggestions below.\n\n{e}",
                self.base
            ),
        )
    }

    /// Maps an error of the typed client to a message and exit code.
    pub fn typed(&self, e: HttpClientError) -> CtlError {
        use rabbitmq_http_client::error::Error as E;
        match e {
            E::NotFound => CtlError::new(EX_DATAERR, "not_found"),
            E::ClientErrorResponse {
                status_code,
                error_details,
                body,
                ..
            }
            | E::ServerErrorResponse {
                status_code,
                error_details,
                body,
                ..
            } => {
                let reason = error_details
                    .as_ref()
                    .and_then(|d| d.reason().map(str::to_string))
                    .or(body)
                    .unwrap_or_default();
                status_error(status_code, &reason)
            }
            E::RequestError { error, .. } => self.unreachable(&error),
            other => CtlError::new(EX_SOFTWARE, other.to_string()),
        }
    }
}

/// An error status with its body's `reason` (or the body itself).
fn status_error(status: StatusCode, body: &str) -> CtlError {
    let reason = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("reason")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    let code = match status.as_u16() {
        401 | 403 => EX_NOPERM,
        400 | 404 => EX_DATAERR,
        _ => EX_SOFTWARE,
    };
    CtlError::new(
        code,
        format!(
            "{} {}: {reason}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    )
}
