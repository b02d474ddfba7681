//! Read-mostly endpoints: overview, nodes, vhosts, connections, channels,
//! consumers, definitions, health checks.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use broker_core::inspect::Snapshot;
use serde_json::{json, Value};

use crate::http::{bad_request, method_not_allowed, no_content, not_found, ok, Req};
use crate::routes::write;
use crate::views::{self, Rates};
use crate::App;

pub(crate) fn overview(app: &App, s: &Snapshot, r: &Rates) -> Value {
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
        "node": app.node, "protocol": l.protocol, "ip_address": l.addr.ip().to_string(), "port": l.addr.port(), "socket_opts": {}, "tls": l.tls(),
    })).collect();
    // One context per listener of the API (HTTP and HTTPS), as RabbitMQ.
    let contexts: Vec<Value> = app.listeners.iter().filter(|l| l.protocol == "http" || l.protocol == "https").map(|l| json!({
        "node": app.node, "description": "RabbitMQ Management", "path": "/", "port": l.addr.port().to_string(), "protocol": l.protocol,
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
        "contexts": contexts,
        "cluster_tags": {}, "node_tags": {},
    })
}

pub(crate) fn node(app: &App, s: &Snapshot) -> Value {
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

pub(crate) fn connection_one(
    app: &App,
    req: &Req,
    s: &Snapshot,
    cx: &crate::rows::Ctx,
    name: &str,
) -> Response {
    let Some(c) = s.connections.iter().find(|c| views::conn_name(c) == name) else {
        return not_found();
    };
    match req.method {
        Method::GET | Method::HEAD => ok(crate::rows::conn_json(c, cx)),
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

/// RabbitMQ's definitions export (exchanges, queues, bindings, policies,
/// parameters; users, vhosts and permissions join when the core has them).
pub(crate) fn definitions(s: &Snapshot, vhost: Option<&str>) -> Value {
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
    let definition = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(json!({}));
    let policies: Vec<Value> = s.params.policies.iter().filter(|((v, _), _)| keep(v))
        .map(|((v, n), p)| tag(json!({ "name": n, "pattern": p.pattern, "apply-to": p.apply_to, "definition": definition(&p.definition), "priority": p.priority }), v)).collect();
    let parameters: Vec<Value> = s
        .params
        .parameters
        .iter()
        .filter(|((_, v, _), _)| keep(v))
        .map(|((c, v, n), val)| {
            tag(
                json!({ "component": c, "name": n, "value": definition(val) }),
                v,
            )
        })
        .collect();
    let mut d = json!({ "rabbit_version": "3.10.0", "rabbitmq_version": "3.10.0", "product_name": "RabbitMQ", "product_version": "3.10.0",
        "parameters": parameters, "policies": policies, "queues": queues, "exchanges": exchanges, "bindings": bindings });
    if with_vhost {
        // Users, vhosts, permissions: replaced by `admin_defs::export`.
        d["users"] = json!([]);
        d["vhosts"] = Value::Array(s.vhosts.iter().map(|v| json!({ "name": &**v })).collect());
        d["permissions"] = json!([]);
        d["topic_permissions"] = json!([]);
        d["global_parameters"] = Value::Array(
            s.params
                .global
                .iter()
                .map(|(n, v)| json!({ "name": n, "value": definition(v) }))
                .collect(),
        );
    }
    d
}

pub(crate) fn health(app: &App, s: &Snapshot, rest: &[&str]) -> Response {
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
