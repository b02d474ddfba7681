//! Permissions, topic permissions, vhost limits and user limits, with
//! RabbitMQ 3.10's shapes, codes and texts. The regexes are checked by
//! the core (`set_permissions`, `set_topic_permissions`): the one rule.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use broker_core::access::{PermissionRecord, TopicPermissionRecord, UserLimits, VhostLimits};
use broker_core::{AdminError, Broker};
use serde_json::{json, Map, Value};

use crate::admin::{after, bad_request_value, read};
use crate::http::{
    bad_request, created, error, method_not_allowed, no_content, not_found, ok, Req,
};
use crate::list::respond;
use crate::App;

/// Runs one access write and refreshes the snapshot; the core's error as is.
pub(crate) fn try_access<R>(
    app: &App,
    f: impl FnOnce(&mut Broker) -> Result<R, AdminError>,
) -> Result<R, AdminError> {
    let mut f = Some(f);
    let mut out = Err(AdminError::Store("core unavailable".into()));
    app.core.with_core(&mut |c: &mut Broker| {
        if let Some(f) = f.take() {
            out = f(c);
        }
    });
    crate::routes::refresh(app);
    out
}

/// RabbitMQ's answer to an access write's error (`not_found`: 404).
pub(crate) fn answer(e: AdminError) -> Response {
    match e {
        AdminError::NoUser(_) | AdminError::NoVhost(_) => not_found(),
        AdminError::Invalid(why) => bad_request(&why),
        AdminError::Store(why) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            &why,
        ),
    }
}

fn perm_json(p: &PermissionRecord) -> Value {
    json!({ "user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read })
}

fn topic_json(t: &TopicPermissionRecord) -> Value {
    json!({ "user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read })
}

/// `{"max-connections": n, "max-channels": n}`, only the limits set.
pub(crate) fn user_limits_json(l: &UserLimits) -> Value {
    let mut m = Map::new();
    if l.max_connections >= 0 {
        m.insert("max-connections".into(), json!(l.max_connections));
    }
    if l.max_channels >= 0 {
        m.insert("max-channels".into(), json!(l.max_channels));
    }
    Value::Object(m)
}

/// `{"max-connections": n, "max-queues": n}`, only the limits set.
pub(crate) fn vhost_limits_json(l: &VhostLimits) -> Value {
    let mut m = Map::new();
    if l.max_connections >= 0 {
        m.insert("max-connections".into(), json!(l.max_connections));
    }
    if l.max_queues >= 0 {
        m.insert("max-queues".into(), json!(l.max_queues));
    }
    Value::Object(m)
}

/// The string values of `keys`, or RabbitMQ's `[{key_missing,k},...]`.
fn required<'a>(body: &'a Value, keys: &[&str]) -> Result<Vec<&'a str>, Response> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| body.get(**k).is_none_or(Value::is_null))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(bad_request(&format!("[{}]", missing.join(","))));
    }
    keys.iter()
        .map(|k| {
            body.get(*k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request(&format!("{k} must be a string")))
        })
        .collect()
}

/// Permission writes name a user and a vhost that must exist.
fn perm_error(e: AdminError) -> Response {
    match e {
        AdminError::NoUser(_) | AdminError::NoVhost(_) => bad_request("vhost_or_user_not_found"),
        e => answer(e),
    }
}

pub(crate) fn route(app: &App, req: &Req, seg: &[&str]) -> Option<Response> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let perms = || read(app, |c| c.list_permissions());
    let topics = || read(app, |c| c.list_topic_permissions());
    let user_known = |u: &str| read(app, |c| c.get_user(u).is_some());
    let vhost_known = |v: &str| read(app, |c| c.vhost_exists(v));
    Some(match seg {
        ["permissions"] if get => respond(req, perms().iter().map(perm_json).collect()),
        ["vhosts", v, "permissions"] if get => {
            if !vhost_known(v) {
                return Some(not_found());
            }
            let items = perms()
                .iter()
                .filter(|p| p.vhost == *v)
                .map(perm_json)
                .collect();
            respond(req, items)
        }
        ["users", u, "permissions"] if get => {
            if !user_known(u) {
                return Some(not_found());
            }
            let items = perms()
                .iter()
                .filter(|p| p.user == *u)
                .map(perm_json)
                .collect();
            respond(req, items)
        }
        ["permissions", v, u] => permission(app, req, v, u, perms),
        ["topic-permissions"] if get => respond(req, topics().iter().map(topic_json).collect()),
        ["vhosts", v, "topic-permissions"] if get => {
            if !vhost_known(v) {
                return Some(not_found());
            }
            let items = topics()
                .iter()
                .filter(|t| t.vhost == *v)
                .map(topic_json)
                .collect();
            respond(req, items)
        }
        ["users", u, "topic-permissions"] if get => {
            if !user_known(u) {
                return Some(not_found());
            }
            let items = topics()
                .iter()
                .filter(|t| t.user == *u)
                .map(topic_json)
                .collect();
            respond(req, items)
        }
        ["topic-permissions", v, u] => topic_permission(app, req, v, u, None),
        ["topic-permissions", v, u, x] if req.method == Method::DELETE => {
            topic_permission(app, req, v, u, Some(x))
        }
        ["vhost-limits"] if get => respond(req, vhost_limits(app, None)),
        ["vhost-limits", v] if get => {
            if !vhost_known(v) {
                return Some(not_found());
            }
            respond(req, vhost_limits(app, Some(v)))
        }
        ["vhost-limits", v, name] => vhost_limit(app, req, v, name),
        ["user-limits"] if get => respond(req, user_limits(app, None)),
        ["user-limits", u] if get => {
            if !user_known(u) {
                return Some(not_found());
            }
            respond(req, user_limits(app, Some(u)))
        }
        ["user-limits", u, name] => user_limit(app, req, u, name),
        _ => return None,
    })
}

fn permission(
    app: &App,
    req: &Req,
    v: &str,
    u: &str,
    perms: impl Fn() -> Vec<PermissionRecord>,
) -> Response {
    let existing = perms().into_iter().find(|p| p.vhost == v && p.user == u);
    match req.method {
        Method::GET | Method::HEAD => existing.map_or_else(not_found, |p| ok(perm_json(&p))),
        Method::PUT => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let [c, w, r] = match required(&body, &["configure", "write", "read"]) {
                Ok(f) => [f[0], f[1], f[2]],
                Err(e) => return e,
            };
            let rec = PermissionRecord {
                user: u.into(),
                vhost: v.into(),
                configure: c.into(),
                write: w.into(),
                read: r.into(),
            };
            match try_access(app, |core| core.set_permissions(rec)) {
                Ok(seq) if existing.is_some() => after(seq, no_content()),
                Ok(seq) => after(seq, created()),
                Err(e) => perm_error(e),
            }
        }
        Method::DELETE => {
            if existing.is_none() {
                return not_found();
            }
            match try_access(app, |core| core.clear_permissions(u, v)) {
                Ok(seq) => after(seq, no_content()),
                Err(e) => answer(e),
            }
        }
        _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

/// `/topic-permissions/{v}/{u}` (GET: an array; PUT names the exchange in
/// the body; DELETE: all of the user's in the vhost) and
/// `/topic-permissions/{v}/{u}/{x}` (DELETE one).
fn topic_permission(app: &App, req: &Req, v: &str, u: &str, x: Option<&str>) -> Response {
    let mine: Vec<TopicPermissionRecord> = read(app, |c| c.list_topic_permissions())
        .into_iter()
        .filter(|t| t.vhost == v && t.user == u && x.is_none_or(|x| t.exchange == x))
        .collect();
    match req.method {
        Method::GET | Method::HEAD if !mine.is_empty() => {
            ok(Value::Array(mine.iter().map(topic_json).collect()))
        }
        Method::GET | Method::HEAD => not_found(),
        Method::PUT => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let [x, w, r] = match required(&body, &["exchange", "write", "read"]) {
                Ok(f) => [f[0], f[1], f[2]],
                Err(e) => return e,
            };
            if let Err(e) = crate::routes::check_name(x) {
                return e;
            }
            let existed = mine.iter().any(|t| t.exchange == x);
            let rec = TopicPermissionRecord {
                user: u.into(),
                vhost: v.into(),
                exchange: x.into(),
                write: w.into(),
                read: r.into(),
            };
            match try_access(app, |c| c.set_topic_permissions(rec)) {
                Ok(seq) if existed => after(seq, no_content()),
                Ok(seq) => after(seq, created()),
                Err(e) => perm_error(e),
            }
        }
        Method::DELETE if mine.is_empty() => not_found(),
        Method::DELETE => match try_access(app, |c| c.clear_topic_permissions(u, v, x)) {
            Ok(seq) => after(seq, no_content()),
            Err(e) => answer(e),
        },
        _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

fn vhost_limits(app: &App, only: Option<&str>) -> Vec<Value> {
    read(app, |c| c.list_vhosts())
        .iter()
        .filter(|(v, _)| only.is_none_or(|o| o == v.name))
        .map(|(v, l)| (v, vhost_limits_json(l)))
        .filter(|(_, l)| l.as_object().is_some_and(|m| !m.is_empty()))
        .map(|(v, l)| json!({ "vhost": v.name, "value": l }))
        .collect()
}

fn user_limits(app: &App, only: Option<&str>) -> Vec<Value> {
    read(app, |c| c.list_users())
        .iter()
        .filter(|(u, _)| only.is_none_or(|o| o == u.name))
        .map(|(u, l)| (u, user_limits_json(l)))
        .filter(|(_, l)| l.as_object().is_some_and(|m| !m.is_empty()))
        .map(|(u, l)| json!({ "user": u.name, "value": l }))
        .collect()
}

/// The `value` of a limit PUT (None on DELETE: no limit), or RabbitMQ's
/// validation text (`what` names the table in "Unrecognised terms").
fn limit_value(req: &Req, name: &str, known: &[&str], what: &str) -> Result<i64, Response> {
    if req.method == Method::DELETE {
        return Ok(-1);
    }
    let body = req.json()?;
    let Some(value) = body.get("value").filter(|v| !v.is_null()) else {
        return Err(bad_request("[{key_missing,value}]"));
    };
    if !known.contains(&name) {
        return Err(bad_request(&format!(
            "Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{value}}}] in {what}\n"
        )));
    }
    value.as_i64().ok_or_else(|| {
        bad_request(&format!(
            "Validation failed\n\n{name} should be a number, actually was {value}\n"
        ))
    })
}

fn vhost_limit(app: &App, req: &Req, v: &str, name: &str) -> Response {
    if req.method != Method::PUT && req.method != Method::DELETE {
        return method_not_allowed("PUT, DELETE");
    }
    let value = match limit_value(req, name, &["max-connections", "max-queues"], "limits") {
        Ok(n) => n,
        Err(e) => return e,
    };
    let current = read(app, |c| {
        c.list_vhosts()
            .into_iter()
            .find(|(r, _)| r.name == v)
            .map(|(_, l)| l)
    });
    let Some(mut l) = current else {
        return error(StatusCode::NOT_FOUND, "not_found", "vhost_not_found");
    };
    match name {
        "max-connections" => l.max_connections = value,
        "max-queues" => l.max_queues = value,
        // DELETE of a limit that cannot exist.
        _ => return no_content(),
    }
    match try_access(app, |c| c.set_vhost_limits(v, l)) {
        Ok(seq) => after(seq, no_content()),
        Err(e) => answer(e),
    }
}

fn user_limit(app: &App, req: &Req, u: &str, name: &str) -> Response {
    if req.method != Method::PUT && req.method != Method::DELETE {
        return method_not_allowed("PUT, DELETE");
    }
    let value = match limit_value(
        req,
        name,
        &["max-connections", "max-channels"],
        "user-limits",
    ) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let Some((_, mut l)) = read(app, |c| c.get_user(u)) else {
        return bad_request_value(json!(["no_such_user", u]));
    };
    match name {
        "max-connections" => l.max_connections = value,
        "max-channels" => l.max_channels = value,
        _ => return no_content(),
    }
    match try_access(app, |c| c.set_user_limits(u, l)) {
        Ok(seq) => after(seq, no_content()),
        Err(e) => answer(e),
    }
}
