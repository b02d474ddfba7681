//! The endpoints: (method, decoded segments) → handler. Reads use the
//! snapshot; writes call the core's `mgmt_*` entry points, then refresh
//! the snapshot so a GET right after a PUT sees the object.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use broker_core::inspect::Snapshot;
use broker_core::AmqpError;
use serde_json::{json, Value};

use crate::http::{
    amqp_error, bad_request, error, method_not_allowed, no_content, not_found, ok, Req,
};
use crate::info::*;
use crate::list::{respond, Row};
use crate::objects::*;
use crate::rows::{self, BindingRow};
use crate::views::{self, Rates};
use crate::App;

/// Longest object name (AMQP short strings).
pub(crate) const NAME_BYTES_MAX: usize = 255;

/// `amq.default` in a path is the default exchange.
pub(crate) fn exchange_name(s: &str) -> &str {
    if s == "amq.default" {
        ""
    } else {
        s
    }
}

/// Runs a write on the core and republishes the snapshot (so a GET right
/// after a PUT sees the object, as with RabbitMQ).
pub(crate) fn write<R>(
    app: &App,
    f: impl FnOnce(&mut broker_core::Broker) -> Result<R, AmqpError>,
) -> Result<R, Response> {
    let r = apply(app, f);
    refresh(app);
    r
}

/// Republishes the snapshot now.
pub(crate) fn refresh(app: &App) {
    let mut snap = None;
    app.core.with_core(&mut |core| snap = Some(core.snapshot()));
    if let Some(s) = snap {
        app.stats.publish(s);
    }
}

/// Runs a write on the core (one lock acquisition), without refreshing.
pub(crate) fn apply<R>(
    app: &App,
    f: impl FnOnce(&mut broker_core::Broker) -> Result<R, AmqpError>,
) -> Result<R, Response> {
    let mut f = Some(f);
    let mut out = None;
    app.core.with_core(&mut |core| {
        if let Some(f) = f.take() {
            out = Some(f(core));
        }
    });
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

pub(crate) fn check_name(n: &str) -> Result<(), Response> {
    if n.len() > NAME_BYTES_MAX {
        return Err(bad_request(&format!(
            "name longer than {NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn bool_field(body: &Value, k: &str, default: bool) -> Result<bool, Response> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(_) => Err(bad_request(&format!("{k} must be a boolean"))),
    }
}

pub(crate) fn str_field<'a>(body: &'a Value, k: &str) -> Result<Option<&'a str>, Response> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(&format!("{k} must be a string"))),
    }
}

pub(crate) fn args_field(body: &Value) -> Result<amqp_codec::FieldTable, Response> {
    crate::json::to_table(body.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| bad_request(&e))
}

pub(crate) fn vhost_known(s: &Snapshot, v: &str) -> bool {
    s.vhosts.iter().any(|x| &**x == v)
}

pub(crate) fn route(app: &App, req: &Req) -> Response {
    let seg: Vec<&str> = req.seg.iter().map(String::as_str).collect();
    let published = app.stats.load();
    let snap = &*published.now;
    let before = &published.prev;
    let r = Rates::of(snap, before.snapshot());
    let stats = !req.flag("disable_stats");
    let cx = rows::Ctx {
        node: &app.node,
        r: &r,
        before,
        stats,
        totals: req.flag("enable_queue_totals"),
        samples: stats
            .then(|| crate::samples::Asked::of(req, &app.stats, snap.taken_at_ms))
            .flatten(),
    };
    let m = &req.method;
    let get = *m == Method::GET || *m == Method::HEAD;
    if let Some(r) = crate::admin::route(app, req, &seg) {
        return r;
    }
    match seg.as_slice() {
        ["overview"] if get => {
            let mut v = overview(app, snap, &r);
            crate::samples::overview(&mut v, req, &app.stats.history());
            ok(v)
        }
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
        ["extensions"] if get => ok(json!([])),
        ["auth"] if get => ok(json!({ "oauth_enabled": false })),
        // whoami, vhosts, users, permissions, limits: `admin.rs`.
        ["connections"] if get => respond(req, rows::conns(snap, &cx, None)),
        ["vhosts", v, "connections"] if get => respond(req, rows::conns(snap, &cx, Some(v))),
        ["connections", name] => connection_one(app, req, snap, &cx, name),
        ["connections", name, "channels"] if get => {
            let Some(c) = snap
                .connections
                .iter()
                .find(|c| views::conn_name(c) == *name)
            else {
                return not_found();
            };
            respond(req, rows::chans(snap, &cx, |ch, _| ch.conn == c.id))
        }
        ["channels"] if get => respond(req, rows::chans(snap, &cx, |_, _| true)),
        ["vhosts", v, "channels"] if get => {
            respond(req, rows::chans(snap, &cx, |_, c| &*c.vhost == *v))
        }
        ["channels", name] if get => {
            rows::chans(snap, &cx, |ch, c| views::channel_name(ch, c) == *name)
                .into_iter()
                .next()
                .map_or_else(not_found, |c| ok(c.into_json()))
        }
        ["consumers"] if get => respond(req, rows::consumers(snap, &app.node, None)),
        ["consumers", v] if get => respond(req, rows::consumers(snap, &app.node, Some(v))),
        ["exchanges"] if get => respond(req, rows::exchanges(snap, &cx, None)),
        ["exchanges", v] if get => {
            if !vhost_known(snap, v) {
                return not_found();
            }
            respond(req, rows::exchanges(snap, &cx, Some(v)))
        }
        ["exchanges", v, x] => exchange_one(app, req, snap, &cx, v, exchange_name(x)),
        ["exchanges", v, x, "bindings", dir] if get => {
            let x = exchange_name(x);
            let src = *dir == "source";
            if *dir != "source" && *dir != "destination" {
                return not_found();
            }
            let items: Vec<BindingRow> = snap
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
                .map(BindingRow::Of)
                .collect();
            respond(req, items)
        }
        ["exchanges", v, x, "publish"] if *m == Method::POST => {
            publish(app, req, v, exchange_name(x))
        }
        ["queues"] if get => respond(req, rows::queues(snap, &cx, None)),
        ["queues", v] if get => {
            if !vhost_known(snap, v) {
                return not_found();
            }
            respond(req, rows::queues(snap, &cx, Some(v)))
        }
        ["queues", v, q] => queue_one(app, req, snap, &cx, v, q),
        ["queues", v, q, "bindings"] if get => {
            let Some(qv) = snap
                .queues
                .iter()
                .find(|x| &*x.vhost == *v && x.name.as_str() == *q)
            else {
                return not_found();
            };
            let mut items = vec![BindingRow::Default(qv)];
            items.extend(
                snap.bindings
                    .iter()
                    .filter(|b| &*b.vhost == *v && b.to_queue && b.destination.as_str() == *q)
                    .map(BindingRow::Of),
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
        ["bindings"] if get => respond(req, rows::bindings(snap, None)),
        ["bindings", v] if get => respond(req, rows::bindings(snap, Some(v))),
        ["bindings", v, "e", s, kind @ ("q" | "e"), d] => {
            binding_pair(app, req, snap, v, exchange_name(s), *kind == "q", d)
        }
        ["bindings", v, "e", s, kind @ ("q" | "e"), d, props] => {
            binding_one(app, req, snap, v, exchange_name(s), *kind == "q", d, props)
        }
        ["definitions"] if get => {
            let mut d = definitions(snap, None);
            crate::admin_defs::export(app, &mut d);
            ok(d)
        }
        ["definitions"] if *m == Method::POST => crate::defs::import(app, req, snap, None),
        ["definitions", v] if *m == Method::POST => {
            if !vhost_known(snap, v) {
                return not_found();
            }
            crate::defs::import(app, req, snap, Some(v))
        }
        ["definitions", v] if get => {
            if vhost_known(snap, v) {
                ok(definitions(snap, Some(v)))
            } else {
                not_found()
            }
        }
        ["health", "checks", rest @ ..] if get => health(app, snap, rest),
        ["policies", rest @ ..] => {
            crate::params_api::policies(app, req, snap, broker_core::params::PolicyKind::User, rest)
        }
        ["operator-policies", rest @ ..] => crate::params_api::policies(
            app,
            req,
            snap,
            broker_core::params::PolicyKind::Operator,
            rest,
        ),
        ["parameters", rest @ ..] => crate::params_api::parameters(app, req, snap, rest),
        ["shovels", rest @ ..] => crate::shovels::list(app, req, rest),
        ["global-parameters", rest @ ..] => crate::params_api::globals(app, req, snap, rest),
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
