//! Dynamic shovels as RabbitMQ's `rabbitmq_shovel` sees them: the one
//! check of a `shovel` parameter's value ([`parse`]: on PUT
//! `/api/parameters/shovel/...`, on a definitions import, and by the
//! server when it starts the shovel from the stored value), and
//! `GET /api/shovels[/{vhost}]` (rabbitmq_shovel_management's rows) from
//! the board the server keeps ([`ShovelBoard`]).

use std::sync::Arc;

use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::http::{bad_request, method_not_allowed, Req};

/// The component name of shovel parameters.
pub const COMPONENT: &str = "shovel";

/// When the source message is acked (RabbitMQ's `ack-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// `on-confirm` (the default).
    OnConfirm,
    /// `on-publish`.
    OnPublish,
    /// `no-ack`.
    NoAck,
}

/// A checked shovel definition (RabbitMQ 3.10's `amqp091` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct ShovelDef {
    /// `src-uri` (the first of a list).
    pub src_uri: String,
    /// `src-queue`.
    pub src_queue: String,
    /// `dest-uri` (the first of a list).
    pub dest_uri: String,
    /// `dest-exchange` (None with `dest-queue`, or neither: the default exchange).
    pub dest_exchange: Option<String>,
    /// `dest-exchange-key` (None: each message's own routing key).
    pub dest_exchange_key: Option<String>,
    /// `dest-queue`: publish through the default exchange with this key.
    pub dest_queue: Option<String>,
    /// `ack-mode`.
    pub ack_mode: AckMode,
    /// `src-prefetch-count` (legacy `prefetch-count`); default 1000.
    pub prefetch_count: u16,
    /// `reconnect-delay` in seconds; default 1.
    pub reconnect_delay_secs: f64,
    /// `dest-add-forward-headers` (legacy `add-forward-headers`).
    pub add_forward_headers: bool,
}

/// Keys warren accepts in a shovel's value (others: "Unrecognised terms").
const KNOWN: [&str; 17] = [
    "src-protocol",
    "src-uri",
    "src-queue",
    "src-exchange",
    "src-exchange-key",
    "src-prefetch-count",
    "prefetch-count",
    "src-delete-after",
    "delete-after",
    "dest-protocol",
    "dest-uri",
    "dest-exchange",
    "dest-exchange-key",
    "dest-queue",
    "ack-mode",
    "reconnect-delay",
    "add-forward-headers",
];

/// Also known (3.10's names for the legacy ones above).
const KNOWN_MORE: [&str; 2] = ["dest-add-forward-headers", "dest-add-timestamp-header"];

/// RabbitMQ's answer text for a failed check.
fn failed(errors: &[String]) -> String {
    format!("Validation failed\n\n{}\n", errors.join("\n"))
}

fn uri(v: Option<&Value>, key: &str, name: &str, errors: &mut Vec<String>) -> String {
    let first = match v {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str),
        None => {
            errors.push(format!("Key <<\"{key}\">> not found in {name}"));
            return String::new();
        }
        _ => None,
    };
    match first {
        Some(u) if u.starts_with("amqp://") || u.starts_with("amqps://") => u.to_string(),
        Some(u) => {
            errors.push(format!("\"{u}\" not a valid URI: unexpected_uri_scheme"));
            String::new()
        }
        None => {
            errors.push(format!("{key} should be a URI or a list of URIs"));
            String::new()
        }
    }
}

fn text(d: &Map<String, Value>, key: &str, errors: &mut Vec<String>) -> Option<String> {
    match d.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            errors.push(format!("{key} should be binary, actually was {v}"));
            None
        }
    }
}

/// Checks a shovel parameter's value (`name`: the parameter's name, for
/// the texts). Err: the 400 reason, RabbitMQ's wording where it has one;
/// what warren does not do (`src-exchange`, `src-delete-after` other than
/// `never`, other protocols than `amqp091`) is refused, never ignored.
pub fn parse(name: &str, value: &Value) -> Result<ShovelDef, String> {
    let Some(d) = value.as_object() else {
        return Err(failed(&[format!("{name}: the value must be an object")]));
    };
    let mut errors = Vec::new();
    let unknown: Vec<&str> = d
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k) && !KNOWN_MORE.contains(k))
        .collect();
    if !unknown.is_empty() {
        errors.push(format!("Unrecognised terms {unknown:?} in {name}"));
    }
    for key in ["src-protocol", "dest-protocol"] {
        if let Some(p) = d.get(key).filter(|p| p.as_str() != Some("amqp091")) {
            errors.push(format!(
                "{key} {p} is not supported by warren (only amqp091)"
            ));
        }
    }
    let src_uri = uri(d.get("src-uri"), "src-uri", name, &mut errors);
    let dest_uri = uri(d.get("dest-uri"), "dest-uri", name, &mut errors);
    let src_queue = text(d, "src-queue", &mut errors);
    let src_exchange = text(d, "src-exchange", &mut errors);
    match (&src_queue, &src_exchange) {
        (None, None) => errors.push("Must specify 'src-exchange' or 'src-queue'".into()),
        (Some(_), Some(_)) => errors.push("Cannot specify 'src-exchange' and 'src-queue'".into()),
        (None, Some(_)) => errors.push("src-exchange is not supported by warren yet".into()),
        (Some(_), None) => {}
    }
    let dest_exchange = text(d, "dest-exchange", &mut errors);
    let dest_exchange_key = text(d, "dest-exchange-key", &mut errors);
    let dest_queue = text(d, "dest-queue", &mut errors);
    if dest_exchange.is_some() && dest_queue.is_some() {
        errors.push("Cannot specify 'dest-exchange' and 'dest-queue'".into());
    }
    let ack_mode = match d.get("ack-mode").map(|v| v.as_str()) {
        None | Some(Some("on-confirm")) => AckMode::OnConfirm,
        Some(Some("on-publish")) => AckMode::OnPublish,
        Some(Some("no-ack")) => AckMode::NoAck,
        Some(_) => {
            errors.push("ack-mode should be one of [on-confirm, on-publish, no-ack]".into());
            AckMode::OnConfirm
        }
    };
    for key in ["src-delete-after", "delete-after"] {
        match d.get(key) {
            None => {}
            Some(Value::String(s)) if s == "never" => {}
            Some(v @ (Value::Number(_) | Value::String(_))) if is_delete_after(v) => errors.push(
                format!("{key} {v} is not supported by warren yet (only \"never\")"),
            ),
            Some(v) => errors.push(format!(
                "{key} should be number, \"never\" or \"queue-length\", actually was {v}"
            )),
        }
    }
    let number = |key: &str, errors: &mut Vec<String>| match d.get(key) {
        None => None,
        Some(v) => match v.as_f64().filter(|n| *n >= 0.0) {
            Some(n) => Some(n),
            None => {
                errors.push(format!("{key} should be a number, actually was {v}"));
                None
            }
        },
    };
    let prefetch =
        number("src-prefetch-count", &mut errors).or(number("prefetch-count", &mut errors));
    let prefetch_count = match prefetch {
        None => 1000,
        Some(n) if (1.0..=f64::from(u16::MAX)).contains(&n) => n as u16,
        Some(n) => {
            errors.push(format!("src-prefetch-count {n} is out of range (1..65535)"));
            1000
        }
    };
    let reconnect_delay_secs = number("reconnect-delay", &mut errors).unwrap_or(1.0);
    let mut flag = |key: &str| match d.get(key) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            errors.push(format!("{key} should be boolean, actually was {v}"));
            false
        }
    };
    let add_forward_headers = flag("add-forward-headers") | flag("dest-add-forward-headers");
    if flag("dest-add-timestamp-header") {
        errors.push("dest-add-timestamp-header is not supported by warren yet".into());
    }
    if !errors.is_empty() {
        return Err(failed(&errors));
    }
    Ok(ShovelDef {
        src_uri,
        src_queue: src_queue.unwrap_or_default(),
        dest_uri,
        dest_exchange,
        dest_exchange_key,
        dest_queue,
        ack_mode,
        prefetch_count,
        reconnect_delay_secs,
        add_forward_headers,
    })
}

fn is_delete_after(v: &Value) -> bool {
    v.is_number() || v.as_str() == Some("queue-length")
}

/// Parses and checks a stored value (JSON text).
pub fn parse_text(name: &str, text: &str) -> Result<ShovelDef, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    parse(name, &v)
}

/// `amqp://user:pass@host/vh` → `amqp://host/vh` (RabbitMQ's
/// `amqp_uri:remove_credentials`): what `/api/shovels` shows.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => uri.to_string(),
    }
}

/// One running (or failed) dynamic shovel, as the server reports it.
#[derive(Debug, Clone)]
pub struct ShovelRow {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// `starting`, `running` or `terminated`.
    pub state: &'static str,
    /// Why it terminated (with `terminated`).
    pub reason: Option<String>,
    /// The checked definition (None when the stored value fails the check).
    pub def: Option<ShovelDef>,
    /// When it entered the state (ms since the epoch).
    pub since_ms: u64,
}

/// The server's current shovel rows, swapped in whole when one changes.
pub type ShovelBoard = Arc<arc_swap::ArcSwap<Vec<ShovelRow>>>;

fn row_json(node: &str, r: &ShovelRow) -> Value {
    let mut m = Map::new();
    m.insert("node".into(), json!(node));
    m.insert(
        "timestamp".into(),
        json!(crate::views::date_time(r.since_ms)),
    );
    m.insert("name".into(), json!(r.name));
    m.insert("vhost".into(), json!(r.vhost));
    m.insert("type".into(), json!("dynamic"));
    m.insert("state".into(), json!(r.state));
    if let Some(reason) = &r.reason {
        m.insert("reason".into(), json!(reason));
    }
    if let (Some(d), false) = (&r.def, r.state == "starting") {
        m.insert("src_uri".into(), json!(redact(&d.src_uri)));
        m.insert("src_protocol".into(), json!("amqp091"));
        m.insert("dest_protocol".into(), json!("amqp091"));
        m.insert("dest_uri".into(), json!(redact(&d.dest_uri)));
        m.insert("src_queue".into(), json!(d.src_queue));
        if let Some(q) = &d.dest_queue {
            m.insert("dest_queue".into(), json!(q));
        } else {
            m.insert(
                "dest_exchange".into(),
                json!(d.dest_exchange.as_deref().unwrap_or("")),
            );
            if let Some(k) = &d.dest_exchange_key {
                m.insert("dest_exchange_key".into(), json!(k));
            }
        }
    }
    Value::Object(m)
}

/// `GET /api/shovels[/{vhost}]`.
pub(crate) fn list(app: &crate::App, req: &Req, rest: &[&str]) -> Response {
    if req.method != axum::http::Method::GET && req.method != axum::http::Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let vhost = match rest {
        [] => None,
        [v] => Some(*v),
        _ => return crate::http::not_found(),
    };
    let rows = app.shovels.load();
    let items = rows
        .iter()
        .filter(|r| vhost.is_none_or(|v| v == r.vhost))
        .map(|r| row_json(&app.node, r))
        .collect();
    crate::list::respond(req, items)
}

/// The check of a PUT of a `shovel` parameter: Some(400) when it fails.
pub(crate) fn refuse(name: &str, value: &Value) -> Option<Response> {
    parse(name, value).err().map(|e| bad_request(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_legacy_names_and_refusals() {
        let v = json!({"src-uri": ["amqp://a", "amqp://b"], "src-queue": "q",
            "dest-uri": "amqps://u:p@h/v", "dest-queue": "d", "prefetch-count": 5,
            "add-forward-headers": true, "src-delete-after": "never"});
        let d = parse("s", &v).expect("valid");
        assert_eq!((d.src_uri.as_str(), d.prefetch_count), ("amqp://a", 5));
        assert_eq!(
            (d.ack_mode, d.reconnect_delay_secs),
            (AckMode::OnConfirm, 1.0)
        );
        assert!(d.add_forward_headers);
        let refused = |v: Value| parse("s", &v).expect_err("refused");
        let e = refused(
            json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://",
            "src-delete-after": "queue-length"}),
        );
        assert!(e.contains("not supported"), "{e}");
        let e = refused(json!({"src-uri": "amqp://", "src-exchange": "x", "dest-uri": "amqp://"}));
        assert!(e.contains("src-exchange is not supported"), "{e}");
        let e = refused(
            json!({"src-uri": 5, "src-queue": "q", "dest-uri": "amqp://",
            "reconnect-delay": "soon"}),
        );
        assert!(
            e.contains("src-uri should be") && e.contains("reconnect-delay"),
            "{e}"
        );
    }

    #[test]
    fn redact_drops_credentials_only() {
        assert_eq!(redact("amqp://u:p@h:5672/%2f"), "amqp://h:5672/%2f");
        assert_eq!(redact("amqp://"), "amqp://");
        assert_eq!(redact("amqp://h/a@b"), "amqp://h/a@b");
    }
}
