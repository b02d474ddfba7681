//! The endpoints: (method, decoded segments) → handler. Reads use the
//! snapshot; writes call the core's `mgmt_*` entry points, then refresh
//! the snapshot so a GET right after a PUT sees the object.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use broker_core::direct::{BindingSpec, ExchangeSpec, GetAckMode, QueueSpec};
use broker_core::inspect::Snapshot;
use broker_core::AmqpError;
use serde_json::{json, Value};

use crate::http::{
    amqp_error, bad_request, created, error, method_not_allowed, no_content, not_found, ok, Req,
};
use crate::list::respond;
use crate::views::{self, Rates};
use crate::App;

/// Longest object name (AMQP short strings).
const NAME_BYTES_MAX: usize = 255;

/// `amq.default` in a path is the default exchange.
fn exchange_name(s: &str) -> &str {
    if s == "amq.default" {
        ""
    } else {
        s
    }
}

/// Runs a write on the core and republishes the snapshot.
fn write<R>(
    app: &App,
    f: impl FnOnce(&mut broker_core::Broker) -> Result<R, AmqpError>,
) -> Result<R, Response> {
    let mut f = Some(f);
    let mut out = None;
    let mut snap = None;
    app.core.with_core(&mut |core| {
        if let Some(f) = f.take() {
            out = Some(f(core));
            snap = Some(core.snapshot());
        }
    });
    if let Some(s) = snap {
        app.stats.publish(s);
    }
    match out {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(amqp_error(&e)),
        None => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "core unavailable",
        )),
    }
}

fn check_name(n: &str) -> Result<(), Response> {
    if n.len() > NAME_BYTES_MAX {
        return Err(bad_request(&format!(
            "name longer than {NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn bool_field(body: &Value, k: &str, default: bool) -> Result<bool, Response> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(_) => Err(bad_request(&format!("{k} must be a boolean"))),
    }
}

fn str_field<'a>(body: &'a Value, k: &str) -> Result<Option<&'a str>, Response> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(&format!("{k} must be a string"))),
    }
}

fn args_field(body: &Value) -> Result<amqp_codec::FieldTable, Response> {
    crate::json::to_table(body.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| bad_request(&e))
}

fn vhost_known(s: &Snapshot, v: &str) -> bool {
    s.vhosts.iter().any(|x| &**x == v)
}

pub(crate) fn route(app: &App, req: &Req) -> Response {
    let seg: Vec<&str> = req.seg.iter().map(String::as_str).collect();
    let published = app.stats.load();
    let snap = &*published.now;
    let before = published.before.as_deref();
    let r = Rates::of(snap, before);
    let stats = !req.flag("disable_stats");
    let m = &req.method;
    let get = *m == Method::GET || *m == Method::HEAD;
    match seg.as_slice() {
        ["overview"] if get => ok(overview(app, snap, &r)),
        ["cluster-name"] if get => ok(json!({ "name": app.node })),
        ["nodes"] if get => ok(json!([node(app, snap)])),
        ["nodes", n] if get => {
            if *n == app.node {
                ok(node(app, snap))
            } else {
                not_found()
            }
        }
        ["nodes", n, "memory"] if get => {
            if *n == app.node {
                ok(json!({"memory": "not_available"}))
            } else {
                not_found()
            }
        }
        ["whoami"] if get => {
            ok(json!({ "name": req.user, "tags": ["administrator"], "is_internal_user": true }))
        }
        ["extensions"] if get => ok(json!([])),
        ["auth"] if get => ok(json!({ "oauth_enabled": false })),
        ["vhosts"] if get => respond(req, snap.vhosts.iter().map(|v| vhost(v)).collect()),
        ["vhosts", v] if get => {
            if vhost_known(snap, v) {
                ok(vhost(v))
            } else {
                not_found()
            }
        }
        // PUT/DELETE vhosts, users, permissions, limits: wired when the
        // core has users and vhosts (another part of issue 10).
        ["connections"] if get => respond(req, conns(app, snap, &r, before, None)),
        ["vhosts", v, "connections"] if get => respond(req, conns(app, snap, &r, before, Some(v))),
        ["connections", name] => connection_one(app, req, snap, &r, before, name),
        ["connections", name, "channels"] if get => {
            let Some(c) = snap
                .connections
                .iter()
                .find(|c| views::conn_name(c) == *name)
            else {
                return not_found();
            };
            respond(req, chans(app, snap, &r, before, |ch| ch.conn == c.id))
        }
        ["channels"] if get => respond(req, chans(app, snap, &r, before, |_| true)),
        ["vhosts", v, "channels"] if get => {
            let ids: Vec<u64> = snap
                .connections
                .iter()
                .filter(|c| &*c.vhost == *v)
                .map(|c| c.id)
                .collect();
            respond(
                req,
                chans(app, snap, &r, before, |ch| ids.contains(&ch.conn)),
            )
        }
        ["channels", name] if get => {
            let all = chans(app, snap, &r, before, |_| true);
            all.into_iter()
                .find(|c| c["name"] == *name)
                .map_or_else(not_found, ok)
        }
        ["consumers"] if get => respond(req, consumers(app, snap, None)),
        ["consumers", v] if get => respond(req, consumers(app, snap, Some(v))),
        ["exchanges"] if get => respond(req, exchanges(snap, stats, &r, before, None)),
        ["exchanges", v] if get => {
            if !vhost_known(snap, v) {
                return not_found();
            }
            respond(req, exchanges(snap, stats, &r, before, Some(v)))
        }
        ["exchanges", v, x] => exchange_one(app, req, snap, stats, &r, before, v, exchange_name(x)),
        ["exchanges", v, x, "bindings", dir] if get => {
            let x = exchange_name(x);
            let src = *dir == "source";
            if *dir != "source" && *dir != "destination" {
                return not_found();
            }
            let items = snap
                .bindings
                .iter()
                .filter(|b| {
                    &*b.vhost == *v
                        && if src {
                            b.source.as_str() == x
                        } else {
                            !b.to_queue && b.destination.as_str() == x
                        }
                })
                .map(views::binding)
                .collect();
            respond(req, items)
        }
        ["exchanges", v, x, "publish"] if *m == Method::POST => {
            publish(app, req, v, exchange_name(x))
        }
        ["queues"] if get => respond(req, queues(app, snap, stats, req, &r, before, None)),
        ["queues", v] if get => {
            if !vhost_known(snap, v) {
                return not_found();
            }
            respond(req, queues(app, snap, stats, req, &r, before, Some(v)))
        }
        ["queues", v, q] => queue_one(app, req, snap, stats, &r, before, v, q),
        ["queues", v, q, "bindings"] if get => {
            let Some(qv) = snap
                .queues
                .iter()
                .find(|x| &*x.vhost == *v && x.name.as_str() == *q)
            else {
                return not_found();
            };
            let mut items = vec![views::default_binding(qv)];
            items.extend(
                snap.bindings
                    .iter()
                    .filter(|b| &*b.vhost == *v && b.to_queue && b.destination.as_str() == *q)
                    .map(views::binding),
            );
            respond(req, items)
        }
        ["queues", v, q, "contents"] if *m == Method::DELETE => {
            let user = req.user.clone();
            match write(app, |c| c.mgmt_purge_queue(v, &user, q)) {
                Ok(()) => no_content(),
                Err(e) => e,
            }
        }
        ["queues", v, q, "get"] if *m == Method::POST => get_messages(app, req, v, q),
        ["queues", _, _, "actions"] if *m == Method::POST => bad_request("unknown action"),
        ["bindings"] if get => respond(req, bindings(snap, None)),
        ["bindings", v] if get => respond(req, bindings(snap, Some(v))),
        ["bindings", v, "e", s, kind @ ("q" | "e"), d] => {
            binding_pair(app, req, snap, v, exchange_name(s), *kind == "q", d)
        }
        ["bindings", v, "e", s, kind @ ("q" | "e"), d, props] => {
            binding_one(app, req, snap, v, exchange_name(s), *kind == "q", d, props)
        }
        ["definitions"] if get => ok(definitions(snap, None)),
        ["definitions", v] if get => {
            if vhost_known(snap, v) {
                ok(definitions(snap, Some(v)))
            } else {
                not_found()
            }
        }
        ["health", "checks", rest @ ..] if get => health(app, snap, rest),
        ["aliveness-test", v] if get => {
            if vhost_known(snap, v) {
                ok(json!({"status": "ok"}))
            } else {
                not_found()
            }
        }
        _ if known_path(&seg) => method_not_allowed(allowed(&seg)),
        _ => not_found(),
    }
}

/// Paths that exist for some method (so others get 405, not 404).
fn known_path(seg: &[&str]) -> bool {
    matches!(
        seg,
        ["overview"]
            | ["cluster-name"]
            | ["whoami"]
            | ["vhosts"]
            | ["connections"]
            | ["channels"]
            | ["exchanges"]
            | ["exchanges", _]
            | ["queues"]
            | ["queues", _]
            | ["bindings"]
            | ["bindings", _]
            | ["definitions"]
            | ["nodes"]
            | ["extensions"]
            | ["exchanges", _, _, "publish"]
            | ["queues", _, _, "get"]
            | ["queues", _, _, "contents"]
    )
}

fn allowed(seg: &[&str]) -> &'static str {
    match seg {
        ["exchanges", _, _, "publish"] | ["queues", _, _, "get"] => "POST",
        ["queues", _, _, "contents"] => "DELETE",
        ["definitions"] => "GET, HEAD, POST",
        _ => "GET, HEAD",
    }
}

fn vhost(v: &str) -> Value {
    json!({
        "name": v, "description": if v == "/" { "Default virtual host" } else { "" }, "tags": [],
        "default_queue_type": "classic",
        "metadata": { "description": if v == "/" { "Default virtual host" } else { "" }, "tags": [], "default_queue_type": "classic" },
        "tracing": false, "cluster_state": { "rabbit": "running" },
    })
}

fn overview(app: &App, s: &Snapshot, r: &Rates) -> Value {
    let t = crate::stats::Totals::default();
    let hist = app.stats.history();
    let last = hist.last().copied().unwrap_or(t);
    let prev = hist.len().checked_sub(2).and_then(|i| hist.get(i)).copied();
    let mut qt = serde_json::Map::new();
    r.put(&mut qt, "messages", last.messages, prev.map(|p| p.messages));
    r.put(&mut qt, "messages_ready", last.ready, prev.map(|p| p.ready));
    r.put(
        &mut qt,
        "messages_unacknowledged",
        last.unacked,
        prev.map(|p| p.unacked),
    );
    let mut ms = serde_json::Map::new();
    r.put(&mut ms, "publish", last.publish, prev.map(|p| p.publish));
    r.put(
        &mut ms,
        "deliver_get",
        last.deliver_get,
        prev.map(|p| p.deliver_get),
    );
    r.put(&mut ms, "ack", last.ack, prev.map(|p| p.ack));
    r.put(
        &mut ms,
        "redeliver",
        last.redeliver,
        prev.map(|p| p.redeliver),
    );
    let listeners: Vec<Value> = app.listeners.iter().map(|l| json!({
        "node": app.node, "protocol": l.protocol, "ip_address": l.addr.ip().to_string(), "port": l.addr.port(), "socket_opts": {}, "tls": false,
    })).collect();
    let exchange_types: Vec<Value> = ["direct", "fanout", "topic", "headers"]
        .iter()
        .map(|t| json!({"name": t, "description": "", "enabled": true}))
        .collect();
    json!({
        "management_version": "3.10.0", "rates_mode": "basic",
        "sample_retention_policies": { "global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600] },
        "exchange_types": exchange_types,
        "product_version": "3.10.0", "product_name": "RabbitMQ", "rabbitmq_version": "3.10.0",
        "cluster_name": app.node, "erlang_version": "warren", "erlang_full_version": concat!("warren ", env!("CARGO_PKG_VERSION")),
        "disable_stats": false, "enable_queue_totals": false, "is_op_policy_updating_enabled": true,
        "default_queue_type": "classic",
        "message_stats": ms, "queue_totals": qt,
        "churn_rates": { "connection_created": 0, "connection_closed": 0, "queue_declared": 0, "queue_created": 0, "queue_deleted": 0, "channel_created": 0, "channel_closed": 0 },
        "object_totals": { "connections": s.connections.len(), "channels": s.channels.len(), "exchanges": s.exchanges.len(), "queues": s.queues.len(), "consumers": s.consumers.len() },
        "statistics_db_event_queue": 0, "node": app.node, "listeners": listeners,
        "contexts": [{ "node": app.node, "description": "RabbitMQ Management", "path": "/", "port": app.listeners.iter().find(|l| l.protocol == "http").map(|l| l.addr.port().to_string()) }],
        "cluster_tags": {}, "node_tags": {},
    })
}

fn node(app: &App, s: &Snapshot) -> Value {
    let uptime_ms = u32::try_from(app.started.elapsed().as_millis()).unwrap_or(u32::MAX);
    json!({
        "name": app.node, "type": "disc", "running": true, "being_drained": false, "uptime": uptime_ms,
        "mem_alarm": s.alarm.as_deref().is_some_and(|a| a.contains("memory")),
        "disk_free_alarm": s.alarm.as_deref().is_some_and(|a| a.contains("disk")),
        "rates_mode": "basic", "os_pid": std::process::id().to_string(), "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "enabled_plugins": ["rabbitmq_management"],
        "applications": [{ "name": "rabbit", "description": "RabbitMQ", "version": "3.10.0" }],
    })
}

fn conns(
    app: &App,
    s: &Snapshot,
    r: &Rates,
    before: Option<&Snapshot>,
    vhost: Option<&str>,
) -> Vec<Value> {
    s.connections
        .iter()
        .filter(|c| vhost.is_none_or(|v| &*c.vhost == v))
        .map(|c| {
            let b = before.and_then(|b| b.connections.iter().find(|x| x.id == c.id));
            views::connection(c, &app.node, r, b)
        })
        .collect()
}

fn connection_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    r: &Rates,
    before: Option<&Snapshot>,
    name: &str,
) -> Response {
    let Some(c) = s.connections.iter().find(|c| views::conn_name(c) == name) else {
        return not_found();
    };
    match req.method {
        Method::GET | Method::HEAD => ok(views::connection(
            c,
            &app.node,
            r,
            before.and_then(|b| b.connections.iter().find(|x| x.id == c.id)),
        )),
        Method::DELETE => {
            let reason = req
                .headers
                .get("x-reason")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Closed via management plugin")
                .to_string();
            let id = c.id;
            match write(app, |core| Ok(core.mgmt_close_connection(id, &reason))) {
                Ok(true) => no_content(),
                Ok(false) => not_found(),
                Err(e) => e,
            }
        }
        _ => method_not_allowed("GET, HEAD, DELETE"),
    }
}

fn chans(
    app: &App,
    s: &Snapshot,
    r: &Rates,
    before: Option<&Snapshot>,
    keep: impl Fn(&broker_core::inspect::ChannelView) -> bool,
) -> Vec<Value> {
    s.channels
        .iter()
        .filter(|ch| keep(ch))
        .filter_map(|ch| {
            let c = s.connections.iter().find(|c| c.id == ch.conn)?;
            let b = before.and_then(|b| {
                b.channels
                    .iter()
                    .find(|x| x.conn == ch.conn && x.number == ch.number)
            });
            Some(views::channel(ch, c, &app.node, r, b))
        })
        .collect()
}

fn consumers(app: &App, s: &Snapshot, vhost: Option<&str>) -> Vec<Value> {
    s.consumers.iter().filter(|k| vhost.is_none_or(|v| &*k.vhost == v)).map(|k| {
        let details = s.connections.iter().find(|c| c.id == k.conn).map_or(json!({}), |c| {
            let cname = views::conn_name(c);
            json!({ "number": k.channel, "name": format!("{cname} ({})", k.channel), "connection_name": cname, "node": app.node,
                    "peer_host": c.peer.map(|p| p.ip().to_string()), "peer_port": c.peer.map(|p| p.port()), "user": c.user })
        });
        json!({
            "consumer_tag": k.tag.as_str(), "active": k.active, "activity_status": if k.active { "up" } else { "waiting" },
            "ack_required": k.ack_required, "prefetch_count": k.prefetch, "exclusive": k.exclusive,
            "arguments": if k.priority != 0 { json!({"x-priority": k.priority}) } else { json!({}) },
            "consumer_timeout": 1_800_000u64, "queue": { "name": k.queue.as_str(), "vhost": &*k.vhost }, "channel_details": details,
        })
    }).collect()
}

fn exchanges(
    s: &Snapshot,
    stats: bool,
    r: &Rates,
    before: Option<&Snapshot>,
    vhost: Option<&str>,
) -> Vec<Value> {
    let mut v: Vec<Value> = s
        .exchanges
        .iter()
        .filter(|x| vhost.is_none_or(|v| &*x.vhost == v))
        .map(|x| {
            let b = before.and_then(|b| {
                b.exchanges
                    .iter()
                    .find(|y| y.vhost == x.vhost && y.name == x.name)
            });
            views::exchange(x, stats, r, b)
        })
        .collect();
    v.sort_by(|a, b| {
        (a["vhost"].as_str(), a["name"].as_str()).cmp(&(b["vhost"].as_str(), b["name"].as_str()))
    });
    v
}

#[allow(clippy::too_many_arguments)]
fn exchange_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    stats: bool,
    r: &Rates,
    before: Option<&Snapshot>,
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
            let b = before.and_then(|b| {
                b.exchanges
                    .iter()
                    .find(|y| y.vhost == ex.vhost && y.name == ex.name)
            });
            ok(views::exchange(ex, stats, r, b))
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
fn invalid_type(mut e: AmqpError) -> AmqpError {
    if e.text.contains("unknown exchange type") {
        e.text = e
            .text
            .replacen("unknown exchange type", "invalid exchange type", 1);
    }
    e
}

fn publish(app: &App, req: &Req, v: &str, x: &str) -> Response {
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

#[allow(clippy::too_many_arguments)]
fn queues(
    app: &App,
    s: &Snapshot,
    stats: bool,
    req: &Req,
    r: &Rates,
    before: Option<&Snapshot>,
    vhost: Option<&str>,
) -> Vec<Value> {
    let totals = req.flag("enable_queue_totals");
    let mut v: Vec<Value> = s
        .queues
        .iter()
        .filter(|q| vhost.is_none_or(|v| &*q.vhost == v))
        .map(|q| {
            let b = before.and_then(|b| {
                b.queues
                    .iter()
                    .find(|y| y.vhost == q.vhost && y.name == q.name)
            });
            let mut j = views::queue(q, &app.node, stats, r, b);
            if !stats && totals {
                j["messages"] = json!(q.ready + q.unacked);
                j["messages_ready"] = json!(q.ready);
                j["messages_unacknowledged"] = json!(q.unacked);
            }
            j
        })
        .collect();
    v.sort_by(|a, b| {
        (a["vhost"].as_str(), a["name"].as_str()).cmp(&(b["vhost"].as_str(), b["name"].as_str()))
    });
    v
}

#[allow(clippy::too_many_arguments)]
fn queue_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    stats: bool,
    r: &Rates,
    before: Option<&Snapshot>,
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
            let b = before.and_then(|b| {
                b.queues
                    .iter()
                    .find(|y| y.vhost == qv.vhost && y.name == qv.name)
            });
            ok(views::queue(qv, &app.node, stats, r, b))
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

fn get_messages(app: &App, req: &Req, v: &str, q: &str) -> Response {
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

fn bindings(s: &Snapshot, vhost: Option<&str>) -> Vec<Value> {
    let mut items: Vec<Value> = s
        .queues
        .iter()
        .filter(|q| vhost.is_none_or(|v| &*q.vhost == v))
        .map(views::default_binding)
        .collect();
    items.extend(
        s.bindings
            .iter()
            .filter(|b| vhost.is_none_or(|v| &*b.vhost == v))
            .map(views::binding),
    );
    items
}

fn binding_pair(
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
                .map(views::binding)
                .collect();
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
fn relative(from: &str, target: &str) -> String {
    let dir: Vec<&str> = from.split('/').collect();
    let dir = &dir[..dir.len().saturating_sub(1)];
    let to: Vec<&str> = target.split('/').collect();
    let common = dir.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = "../".repeat(dir.len() - common);
    out.push_str(&to[common..].join("/"));
    out
}

#[allow(clippy::too_many_arguments)]
fn binding_one(
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

/// RabbitMQ's definitions export (exchanges/queues/bindings; users,
/// vhosts and permissions join when the core has them).
fn definitions(s: &Snapshot, vhost: Option<&str>) -> Value {
    let keep = |v: &str| vhost.is_none_or(|x| x == v);
    let with_vhost = vhost.is_none();
    let tag = |mut j: Value, v: &str| {
        if with_vhost {
            j["vhost"] = json!(v);
        }
        j
    };
    let queues: Vec<Value> = s.queues.iter().filter(|q| keep(&q.vhost) && q.exclusive_owner.is_none())
        .map(|q| tag(json!({ "name": q.name.as_str(), "durable": q.durable, "auto_delete": q.auto_delete, "arguments": crate::json::table(&q.arguments) }), &q.vhost)).collect();
    let exchanges: Vec<Value> = s.exchanges.iter().filter(|x| keep(&x.vhost) && !x.name.is_empty() && !x.name.as_str().starts_with("amq."))
        .map(|x| tag(json!({ "name": x.name.as_str(), "type": x.kind, "durable": x.durable, "auto_delete": x.auto_delete, "internal": x.internal, "arguments": crate::json::table(&x.arguments) }), &x.vhost)).collect();
    let bindings: Vec<Value> = s.bindings.iter().filter(|b| keep(&b.vhost))
        .map(|b| tag(json!({ "source": b.source.as_str(), "destination": b.destination.as_str(), "destination_type": if b.to_queue { "queue" } else { "exchange" }, "routing_key": b.routing_key.as_str(), "arguments": crate::json::table(&b.arguments) }), &b.vhost)).collect();
    let mut d = json!({ "rabbit_version": "3.10.0", "rabbitmq_version": "3.10.0", "product_name": "RabbitMQ", "product_version": "3.10.0",
        "parameters": [], "policies": [], "queues": queues, "exchanges": exchanges, "bindings": bindings });
    if with_vhost {
        // Hooks for the users/vhosts/permissions part of issue 10.
        d["users"] = json!([]);
        d["vhosts"] = Value::Array(s.vhosts.iter().map(|v| json!({ "name": &**v })).collect());
        d["permissions"] = json!([]);
        d["topic_permissions"] = json!([]);
        d["global_parameters"] = json!([]);
    }
    d
}

fn health(app: &App, s: &Snapshot, rest: &[&str]) -> Response {
    let failed = |reason: String, extra: Value| {
        let mut body = json!({ "status": "failed", "reason": reason });
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    use axum::response::IntoResponse;
    match rest {
        ["alarms"] | ["local-alarms"] => match &s.alarm {
            None => ok(json!({ "status": "ok" })),
            Some(a) => failed(
                "There are alarms in effect in the cluster".into(),
                json!({ "alarms": [{ "node": app.node, "resource": if a.contains("memory") { "memory" } else { "disk" } }] }),
            ),
        },
        ["certificate-expiration", within, unit] => {
            if within.parse::<u64>().is_err()
                || !matches!(*unit, "days" | "weeks" | "months" | "years")
            {
                return bad_request("invalid certificate expiration window");
            }
            ok(json!({ "status": "ok" }))
        }
        ["port-listener", port] => {
            let Ok(p) = port.parse::<u16>() else {
                return bad_request(&format!("{port} is not a valid port"));
            };
            let ports: Vec<u16> = app.listeners.iter().map(|l| l.addr.port()).collect();
            if ports.contains(&p) {
                ok(json!({ "status": "ok", "port": p }))
            } else {
                failed(
                    format!("No active listener on port {p}"),
                    json!({ "missing": p, "ports": ports }),
                )
            }
        }
        ["protocol-listener", protos] => {
            let active: Vec<&str> = app.listeners.iter().map(|l| l.protocol).collect();
            let norm = |p: &str| {
                match p {
                    "amqp091" | "amqp0-9-1" | "amqp0.9.1" | "amqp10" | "amqp1.0" => "amqp",
                    "management" | "http" => "http",
                    other => other,
                }
                .to_string()
            };
            let missing: Vec<String> = protos
                .split(',')
                .map(norm)
                .filter(|p| !active.contains(&p.as_str()))
                .collect();
            if missing.is_empty() {
                ok(json!({ "status": "ok", "protocols": active }))
            } else {
                failed(
                    format!("No active listener for protocol(s) {}", missing.join(",")),
                    json!({ "missing": missing, "protocols": active }),
                )
            }
        }
        ["virtual-hosts"] => ok(json!({ "status": "ok" })),
        ["node-is-quorum-critical"] => {
            ok(json!({ "status": "ok", "reason": "single node cluster" }))
        }
        ["is-in-service"] | ["ready-to-serve-clients"] | ["below-node-connection-limit"] => {
            ok(json!({ "status": "ok" }))
        }
        _ => not_found(),
    }
}
