//! Exchanges, queues, bindings, publish and get.

use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use broker_core::direct::{BindingSpec, ExchangeSpec, GetAckMode, QueueSpec};
use broker_core::inspect::Snapshot;
use broker_core::AmqpError;
use serde_json::{json, Value};

use crate::http::{bad_request, created, method_not_allowed, no_content, not_found, ok, Req};
use crate::list::respond;
use crate::routes::{args_field, bool_field, check_name, str_field, vhost_known, write};
use crate::views;
use crate::App;

pub(crate) fn exchange_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    cx: &crate::rows::Ctx,
    v: &str,
    x: &str,
) -> Response {
    if let Err(e) = check_name(x) {
        return e;
    }
    match req.method {
        Method::GET | Method::HEAD => {
            let Some(ex) = s
                .exchanges
                .iter()
                .find(|e| &*e.vhost == v && e.name.as_str() == x)
            else {
                return not_found();
            };
            ok(crate::rows::exchange_json(ex, cx))
        }
        Method::PUT => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let spec = (|| -> Result<ExchangeSpec, Response> {
                // RabbitMQ 3.10 declares a direct exchange when `type` is absent.
                let kind = str_field(&body, "type")?.unwrap_or("direct");
                Ok(ExchangeSpec {
                    name: x.to_string(),
                    kind: kind.to_string(),
                    durable: bool_field(&body, "durable", true)?,
                    auto_delete: bool_field(&body, "auto_delete", false)?,
                    internal: bool_field(&body, "internal", false)?,
                    arguments: args_field(&body)?,
                })
            })();
            let spec = match spec {
                Ok(s) => s,
                Err(e) => return e,
            };
            if !vhost_known(s, v) {
                return not_found();
            }
            let user = req.user.clone();
            match write(app, |c| {
                c.mgmt_declare_exchange(v, &user, spec)
                    .map_err(invalid_type)
            }) {
                Ok(true) => created(),
                Ok(false) => no_content(),
                Err(e) => e,
            }
        }
        Method::DELETE => {
            let user = req.user.clone();
            let if_unused = req.flag("if-unused");
            match write(app, |c| c.mgmt_delete_exchange(v, &user, x, if_unused)) {
                Ok(()) => no_content(),
                Err(e) => e,
            }
        }
        _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

/// RabbitMQ's management checks the type itself ("invalid exchange type");
/// the AMQP text for the same refusal says "unknown exchange type".
pub(crate) fn invalid_type(mut e: AmqpError) -> AmqpError {
    if e.text.contains("unknown exchange type") {
        e.text = e
            .text
            .replacen("unknown exchange type", "invalid exchange type", 1);
    }
    e
}

pub(crate) fn publish(app: &App, req: &Req, v: &str, x: &str) -> Response {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let parsed = (|| -> Result<(String, Vec<u8>, bytes::Bytes), Response> {
        let rk = str_field(&body, "routing_key")?
            .ok_or_else(|| bad_request("routing_key is required"))?;
        let payload =
            str_field(&body, "payload")?.ok_or_else(|| bad_request("payload is required"))?;
        let enc = str_field(&body, "payload_encoding")?.unwrap_or("string");
        let data = crate::json::decode_payload(payload, enc).map_err(|e| bad_request(&e))?;
        let props = crate::json::to_properties(body.get("properties").unwrap_or(&Value::Null))
            .map_err(|e| bad_request(&e))?;
        check_name(rk)?;
        Ok((rk.to_string(), data, props))
    })();
    let (rk, data, props) = match parsed {
        Ok(p) => p,
        Err(e) => return e,
    };
    let user = req.user.clone();
    match write(app, |c| c.mgmt_publish(v, &user, x, &rk, &props, &data)) {
        Ok(routed) => ok(json!({ "routed": routed })),
        Err(e) => e,
    }
}

pub(crate) fn queue_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    cx: &crate::rows::Ctx,
    v: &str,
    q: &str,
) -> Response {
    if let Err(e) = check_name(q) {
        return e;
    }
    match req.method {
        Method::GET | Method::HEAD => {
            let Some(qv) = s
                .queues
                .iter()
                .find(|x| &*x.vhost == v && x.name.as_str() == q)
            else {
                return not_found();
            };
            ok(crate::rows::queue_json(qv, cx))
        }
        Method::PUT => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let spec = (|| -> Result<QueueSpec, Response> {
                if bool_field(&body, "exclusive", false)? {
                    return Err(bad_request(
                        "exclusive queues cannot be declared through the API",
                    ));
                }
                Ok(QueueSpec {
                    name: q.to_string(),
                    durable: bool_field(&body, "durable", true)?,
                    auto_delete: bool_field(&body, "auto_delete", false)?,
                    arguments: args_field(&body)?,
                })
            })();
            let spec = match spec {
                Ok(s) => s,
                Err(e) => return e,
            };
            if !vhost_known(s, v) {
                return not_found();
            }
            let user = req.user.clone();
            match write(app, |c| c.mgmt_declare_queue(v, &user, spec)) {
                Ok(true) => created(),
                Ok(false) => no_content(),
                Err(e) => e,
            }
        }
        Method::DELETE => {
            let user = req.user.clone();
            let (if_unused, if_empty) = (req.flag("if-unused"), req.flag("if-empty"));
            match write(app, |c| {
                c.mgmt_delete_queue(v, &user, q, if_unused, if_empty)
            }) {
                Ok(()) => no_content(),
                Err(e) => e,
            }
        }
        _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

pub(crate) fn get_messages(app: &App, req: &Req, v: &str, q: &str) -> Response {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let count = match body.get("count") {
        None => 1,
        Some(c) => match c
            .as_u64()
            .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        {
            Some(n) => n,
            None => return bad_request("count must be an integer"),
        },
    };
    let mode = match str_field(&body, "ackmode") {
        Ok(Some("ack_requeue_true")) => GetAckMode::AckRequeueTrue,
        Ok(Some("ack_requeue_false")) => GetAckMode::AckRequeueFalse,
        Ok(Some("reject_requeue_true")) => GetAckMode::RejectRequeueTrue,
        Ok(Some("reject_requeue_false")) => GetAckMode::RejectRequeueFalse,
        Ok(_) => return bad_request("ackmode must be one of ack_requeue_true, ack_requeue_false, reject_requeue_true, reject_requeue_false"),
        Err(e) => return e,
    };
    let base64 = match str_field(&body, "encoding") {
        Ok(Some("base64")) => true,
        Ok(Some("auto")) | Ok(None) => false,
        Ok(Some(_)) => return bad_request("encoding must be auto or base64"),
        Err(e) => return e,
    };
    let truncate = body
        .get("truncate")
        .and_then(|t| {
            t.as_u64()
                .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
        })
        .map(|t| t as usize);
    let user = req.user.clone();
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    match write(app, |c| c.mgmt_get(v, &user, q, count, mode)) {
        Ok(msgs) => ok(Value::Array(msgs.iter().map(|m| {
            let (payload, enc) = crate::json::payload(&m.body, base64, truncate);
            json!({ "payload_bytes": m.body.len(), "redelivered": m.redelivered, "exchange": m.exchange, "routing_key": m.routing_key,
                    "message_count": m.message_count, "properties": crate::json::properties(&m.properties), "payload": payload, "payload_encoding": enc })
        }).collect())),
        Err(e) => e,
    }
}

pub(crate) fn binding_pair(
    app: &App,
    req: &Req,
    s: &Snapshot,
    v: &str,
    src: &str,
    to_queue: bool,
    dst: &str,
) -> Response {
    match req.method {
        Method::GET | Method::HEAD => {
            let items = s
                .bindings
                .iter()
                .filter(|b| {
                    &*b.vhost == v
                        && b.source.as_str() == src
                        && b.to_queue == to_queue
                        && b.destination.as_str() == dst
                })
                .map(crate::rows::BindingRow::Of)
                .collect::<Vec<_>>();
            respond(req, items)
        }
        Method::POST => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let spec = (|| -> Result<BindingSpec, Response> {
                let rk = str_field(&body, "routing_key")?.unwrap_or("");
                check_name(rk)?;
                Ok(BindingSpec {
                    source: src.into(),
                    destination: dst.into(),
                    to_queue,
                    routing_key: rk.into(),
                    arguments: args_field(&body)?,
                })
            })();
            let spec = match spec {
                Ok(s) => s,
                Err(e) => return e,
            };
            let key = views::props_key(&spec.routing_key, &spec.arguments);
            let user = req.user.clone();
            match write(app, |c| c.mgmt_binding(v, &user, spec, true)) {
                Ok(()) => {
                    let mut resp = created();
                    let kind = if to_queue { "q" } else { "e" };
                    let absolute = format!(
                        "/api/bindings/{}/e/{}/{kind}/{}/{}",
                        views::quote(v),
                        views::quote(src),
                        views::quote(dst),
                        views::quote(&key)
                    );
                    let location = relative(&req.raw_path, &absolute);
                    if let Ok(h) = HeaderValue::from_str(&location) {
                        resp.headers_mut().insert(header::LOCATION, h);
                    }
                    resp
                }
                Err(e) => e,
            }
        }
        _ => method_not_allowed("GET, HEAD, POST"),
    }
}

/// `target` relative to the directory of `from` (both absolute paths), as
/// RabbitMQ (cowboy) writes a binding's `Location`.
pub(crate) fn relative(from: &str, target: &str) -> String {
    let dir: Vec<&str> = from.split('/').collect();
    let dir = &dir[..dir.len().saturating_sub(1)];
    let to: Vec<&str> = target.split('/').collect();
    let common = dir.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = "../".repeat(dir.len() - common);
    out.push_str(&to[common..].join("/"));
    out
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn binding_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    v: &str,
    src: &str,
    to_queue: bool,
    dst: &str,
    props: &str,
) -> Response {
    let Some(b) = s.bindings.iter().find(|b| {
        &*b.vhost == v
            && b.source.as_str() == src
            && b.to_queue == to_queue
            && b.destination.as_str() == dst
            && views::props_key(&b.routing_key, &b.arguments) == props
    }) else {
        return not_found();
    };
    match req.method {
        Method::GET | Method::HEAD => ok(views::binding(b)),
        Method::DELETE => {
            let spec = BindingSpec {
                source: src.into(),
                destination: dst.into(),
                to_queue,
                routing_key: b.routing_key.to_string(),
                arguments: b.arguments.clone(),
            };
            let user = req.user.clone();
            match write(app, |c| c.mgmt_binding(v, &user, spec, false)) {
                Ok(()) => no_content(),
                Err(e) => e,
            }
        }
        _ => method_not_allowed("GET, HEAD, DELETE"),
    }
}
