//! The admin side of the API: the tag rules (who may call what, which
//! vhosts a user sees), waiting for a write to be durable, whoami, vhosts
//! and users. Permissions, topic permissions and limits are in
//! `admin_perms.rs`; their definitions sections in `admin_defs.rs`.
//!
//! Every write hashes passwords before taking the core lock, calls one of
//! the core's access entry points (`add_user`, `set_permissions`, ...) and
//! answers only once the store's returned seq is durable ([`Durable`]).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use broker_core::access::{HashAlgorithm, UserLimits, UserRecord, VhostRecord};
use broker_core::persist::Seq;
use broker_core::AdminError;
use broker_core::Broker;
use serde_json::{json, Value};

use crate::http::{bad_request, created, error, no_content, not_found, ok, Req};
use crate::list::respond;
use crate::routes::check_name;
use crate::App;

/// How often a write polls for its seq to become durable (the request
/// timeout bounds the wait: a failed store answers 503).
pub const DURABLE_POLL_MS: u64 = 2;

/// Tags that let a user use the API at all.
const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

/// A response extension: answer once store seq `0` is durable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Durable(pub Seq);

/// Polls the core until `seq` is durable.
pub(crate) async fn wait_durable(app: &App, seq: Seq) {
    loop {
        let mut done = false;
        app.core
            .with_core(&mut |c: &mut Broker| done = c.synced_seq() >= seq);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(DURABLE_POLL_MS)).await;
    }
}

/// `r`, answered once `seq` is durable.
pub(crate) fn after(seq: Seq, mut r: Response) -> Response {
    r.extensions_mut().insert(Durable(seq));
    r
}

fn has(tags: &[String], t: &str) -> bool {
    tags.iter().any(|x| x == t)
}

pub(crate) fn is_admin(tags: &[String]) -> bool {
    has(tags, "administrator")
}

pub(crate) fn is_monitor(tags: &[String]) -> bool {
    is_admin(tags) || has(tags, "monitoring")
}

pub(crate) fn is_policymaker(tags: &[String]) -> bool {
    is_admin(tags) || has(tags, "policymaker")
}

/// RabbitMQ's 401 for a user whose tags do not allow a call.
pub(crate) fn not_authorised(reason: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "not_authorised", reason)
}

/// Any API call needs one of the management tags.
pub(crate) fn management_user(tags: &[String]) -> Result<(), Response> {
    if tags.iter().any(|t| MANAGEMENT_TAGS.contains(&t.as_str())) {
        Ok(())
    } else {
        Err(not_authorised("Not management user"))
    }
}

/// The vhosts `user` may see: all for administrator and monitoring,
/// otherwise those it has permissions in.
pub(crate) fn visible(app: &App, user: &str, tags: &[String]) -> Option<Vec<String>> {
    if is_monitor(tags) {
        return None;
    }
    let mut out = Vec::new();
    app.core.with_core(&mut |c: &mut Broker| {
        out = c
            .list_permissions()
            .into_iter()
            .filter(|p| p.user == user)
            .map(|p| p.vhost)
            .collect();
    });
    Some(out)
}

/// May the request's user see `vhost`?
pub(crate) fn sees(req: &Req, vhost: &str) -> bool {
    req.vhosts
        .as_ref()
        .is_none_or(|vs| vs.iter().any(|v| v == vhost))
}

/// The list filter every list answer goes through (`list::respond`):
/// objects of vhosts the user cannot see are dropped, and a user without
/// monitoring sees only its own connections and channels.
pub(crate) fn only_visible<R: crate::list::Row>(req: &Req, mut items: Vec<R>) -> Vec<R> {
    if req.vhosts.is_some() {
        items.retain(|i| i.vhost().is_none_or(|v| sees(req, v)));
    }
    if !req.user.is_empty() && !is_monitor(&req.tags) {
        items.retain(|i| i.user().is_none_or(|u| u == req.user));
    }
    items
}

/// The tag rules of the paths served elsewhere: `Some(answer)` refuses.
fn gate(req: &Req, seg: &[&str]) -> Option<Response> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let admin = is_admin(&req.tags);
    let admin_only = match seg {
        ["users", ..]
        | ["permissions", ..]
        | ["topic-permissions", ..]
        | ["user-limits", ..]
        | ["definitions", ..]
        | ["operator-policies", ..]
        | ["global-parameters", ..]
        | ["vhosts", _, "permissions" | "topic-permissions"] => true,
        ["vhosts", _] | ["vhost-limits", ..] => !get,
        _ => false,
    };
    if admin_only && !admin {
        return Some(not_authorised("Not administrator user"));
    }
    if matches!(seg, ["nodes", ..]) && !is_monitor(&req.tags) {
        return Some(not_authorised("Not monitor user"));
    }
    if matches!(seg, ["policies", ..] | ["parameters", ..]) && !get && !is_policymaker(&req.tags) {
        return Some(not_authorised("User not authorised to access object"));
    }
    // A vhost the user cannot see is not found (RabbitMQ's
    // `user_matches_vhost`).
    let vhost = match seg {
        ["parameters", _, v, ..] => Some(*v),
        ["exchanges" | "queues" | "bindings" | "consumers" | "policies" | "vhost-limits"
        | "aliveness-test" | "vhosts", v, ..] => Some(*v),
        _ => None,
    };
    match vhost {
        Some(v) if !sees(req, v) => Some(not_found()),
        _ => None,
    }
}

/// The admin endpoints and the tag rules of every path; None: not an
/// admin path, for `routes::route`.
pub(crate) fn route(app: &App, req: &Req, seg: &[&str]) -> Option<Response> {
    if req.user.is_empty() {
        return None; // the unauthenticated probes
    }
    if let Some(refused) = gate(req, seg) {
        return Some(refused);
    }
    let get = req.method == Method::GET || req.method == Method::HEAD;
    Some(match seg {
        ["whoami"] if get => ok(json!({ "name": req.user, "tags": req.tags })),
        ["vhosts"] if get => {
            let all = read(app, |c| c.list_vhosts());
            let items = all
                .iter()
                .filter(|(v, _)| sees(req, &v.name))
                .map(|(v, _)| vhost_json(app, v))
                .collect();
            respond(req, items)
        }
        ["vhosts", v] => vhost_one(app, req, v),
        ["users"] if get => {
            let all = read(app, |c| c.list_users());
            respond(req, all.iter().map(|(u, l)| user_json(u, l)).collect())
        }
        ["users", "without-permissions"] if get => {
            let (users, perms) = read(app, |c| (c.list_users(), c.list_permissions()));
            let items = users
                .iter()
                .filter(|(u, _)| !perms.iter().any(|p| p.user == u.name))
                .map(|(u, l)| user_json(u, l))
                .collect();
            respond(req, items)
        }
        ["users", "bulk-delete"] if req.method == Method::POST => bulk_delete(app, req),
        ["users", u] => user_one(app, req, u),
        ["health", "checks", "virtual-hosts"] if get => ok(json!({ "status": "ok" })),
        _ => return crate::admin_perms::route(app, req, seg),
    })
}

/// Reads from the core under its lock (one acquisition).
pub(crate) fn read<R: Default>(app: &App, f: impl Fn(&Broker) -> R) -> R {
    let mut out = R::default();
    app.core.with_core(&mut |c: &mut Broker| out = f(c));
    out
}

/// Runs one access write; its seq, or RabbitMQ's answer to its error.
fn write_access(
    app: &App,
    f: impl FnOnce(&mut Broker) -> Result<Seq, AdminError>,
) -> Result<Seq, Response> {
    crate::admin_perms::try_access(app, f).map_err(crate::admin_perms::answer)
}

/// A bad request whose reason is a JSON value (RabbitMQ's Erlang terms,
/// e.g. `["not_base64","abc"]`).
pub(crate) fn bad_request_value(reason: Value) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "bad_request", "reason": reason })),
    )
        .into_response()
}

/// Tags as RabbitMQ accepts them: a CSV string or an array of strings.
pub(crate) fn tags_of(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()),
        Value::Array(a) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| "tags must be strings".to_string())
            })
            .filter(|t| t.as_ref().map_or(true, |s| !s.is_empty()))
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err("tags must be a comma-separated string or an array of strings".into()),
    }
}

pub(crate) fn vhost_json(app: &App, v: &VhostRecord) -> Value {
    let dqt = if v.default_queue_type.is_empty() {
        "classic"
    } else {
        &v.default_queue_type
    };
    json!({
        "name": v.name, "description": v.description, "tags": v.tags, "default_queue_type": dqt,
        "metadata": { "description": v.description, "tags": v.tags, "default_queue_type": dqt },
        "tracing": false, "cluster_state": { app.node.clone(): "running" },
    })
}

fn vhost_one(app: &App, req: &Req, name: &str) -> Response {
    let existing = read(app, |c| {
        c.list_vhosts()
            .into_iter()
            .find(|(v, _)| v.name == name)
            .map(|(v, _)| v)
    });
    match req.method {
        Method::GET | Method::HEAD => existing.map_or_else(not_found, |v| ok(vhost_json(app, &v))),
        Method::PUT => {
            if let Err(e) = check_name(name) {
                return e;
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let rec = match vhost_record(name, &body) {
                Ok(r) => r,
                Err(why) => return bad_request(&why),
            };
            let seq = match write_access(app, |c| c.add_vhost(rec)) {
                Ok(seq) => seq,
                Err(e) => return e,
            };
            if existing.is_some() {
                return after(seq, no_content());
            }
            // As RabbitMQ's API: the creator gets full permissions there.
            let all = broker_core::access::PermissionRecord {
                user: req.user.clone(),
                vhost: name.to_string(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            };
            match write_access(app, |c| c.set_permissions(all)) {
                Ok(seq2) => after(seq.max(seq2), created()),
                Err(e) => e,
            }
        }
        Method::DELETE => match write_access(app, |c| c.delete_vhost(name)) {
            Ok(seq) => after(seq, no_content()),
            Err(e) => e,
        },
        _ => crate::http::method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

/// A vhost's metadata from a PUT body or a definitions entry (top-level
/// keys, or `metadata` as newer exports write them).
pub(crate) fn vhost_record(name: &str, body: &Value) -> Result<VhostRecord, String> {
    let meta = body.get("metadata").filter(|m| m.is_object());
    let field = |k: &str| body.get(k).or_else(|| meta.and_then(|m| m.get(k)));
    let text = |k: &str| match field(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{k} must be a string")),
    };
    let default_queue_type = text("default_queue_type")?;
    if !matches!(
        default_queue_type.as_str(),
        "" | "classic" | "quorum" | "stream" | "undefined"
    ) {
        return Err(format!(
            "default_queue_type must be classic, quorum or stream, not {default_queue_type}"
        ));
    }
    Ok(VhostRecord {
        name: name.to_string(),
        description: text("description")?,
        tags: tags_of(field("tags").unwrap_or(&Value::Null))?,
        default_queue_type: if default_queue_type == "undefined" {
            String::new()
        } else {
            default_queue_type
        },
    })
}

pub(crate) fn user_json(u: &UserRecord, l: &UserLimits) -> Value {
    json!({
        "name": u.name,
        "password_hash": broker_core::password::encode_hash(&u.password_hash),
        "hashing_algorithm": u.algorithm.module_name(),
        "tags": u.tags,
        "limits": crate::admin_perms::user_limits_json(l),
    })
}

/// A user from a PUT body or a definitions entry: `password` (hashed
/// here, outside the core lock) or `password_hash` with an optional
/// `hashing_algorithm`; neither: no password login. `tags` is required
/// (`tags_not_present`) except in definitions (`defs`: the algorithm a
/// hash without `hashing_algorithm` uses there), where the legacy
/// `administrator: true` is also read.
pub(crate) fn user_record(
    name: &str,
    body: &Value,
    defs: Option<HashAlgorithm>,
) -> Result<UserRecord, Response> {
    let tags = match body.get("tags") {
        Some(t) => tags_of(t).map_err(|e| bad_request(&e))?,
        None if defs.is_some()
            && body.get("administrator").and_then(Value::as_bool) == Some(true) =>
        {
            vec!["administrator".to_string()]
        }
        None if defs.is_some() => Vec::new(),
        None => return Err(bad_request("tags_not_present")),
    };
    let algorithm = match body.get("hashing_algorithm") {
        None | Some(Value::Null) => defs.unwrap_or_default(),
        Some(Value::String(s)) => HashAlgorithm::from_module_name(s)
            .ok_or_else(|| bad_request(&format!("unknown hashing_algorithm {s}")))?,
        Some(_) => return Err(bad_request("hashing_algorithm must be a string")),
    };
    let password = body.get("password").filter(|p| !p.is_null());
    let hash = body.get("password_hash").filter(|p| !p.is_null());
    let (password_hash, algorithm) = match (password, hash) {
        (Some(_), Some(_)) => {
            return Err(bad_request("both_password_and_password_hash_are_provided"))
        }
        (Some(Value::String(p)), None) => (
            broker_core::password::hash_password(HashAlgorithm::Sha256, p),
            HashAlgorithm::Sha256,
        ),
        (Some(_), None) => return Err(bad_request("password must be a string")),
        (None, Some(Value::String(h))) => {
            let raw = broker_core::password::decode_hash(h)
                .ok_or_else(|| bad_request_value(json!(["not_base64", h])))?;
            (raw, algorithm)
        }
        (None, Some(_)) => return Err(bad_request("password_hash must be a string")),
        // No password login (RabbitMQ 3.10 stores a random one: the
        // same effect, without a secret nobody knows).
        (None, None) => (Vec::new(), HashAlgorithm::Sha256),
    };
    Ok(UserRecord {
        name: name.to_string(),
        password_hash,
        algorithm,
        tags,
    })
}

fn user_one(app: &App, req: &Req, name: &str) -> Response {
    let existing = read(app, |c| c.get_user(name));
    match req.method {
        Method::GET | Method::HEAD => {
            existing.map_or_else(not_found, |(u, l)| ok(user_json(&u, &l)))
        }
        Method::PUT => {
            if let Err(e) = check_name(name) {
                return e;
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let rec = match user_record(name, &body, None) {
                Ok(r) => r,
                Err(e) => return e,
            };
            match write_access(app, |c| c.add_user(rec)) {
                Ok(seq) if existing.is_some() => after(seq, no_content()),
                Ok(seq) => after(seq, created()),
                Err(e) => e,
            }
        }
        Method::DELETE => match write_access(app, |c| c.delete_user(name)) {
            Ok(seq) => after(seq, no_content()),
            Err(e) => e,
        },
        _ => crate::http::method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

/// `POST /users/bulk-delete {"users":[...]}`: all named users must exist
/// (RabbitMQ: `["no_such_user", name]`); nothing is deleted otherwise.
fn bulk_delete(app: &App, req: &Req) -> Response {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(names) = body
        .get("users")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<&str>>>())
    else {
        return bad_request("users must be an array of user names");
    };
    let known = read(app, |c| c.list_users());
    if let Some(missing) = names
        .iter()
        .find(|n| !known.iter().any(|(u, _)| u.name == **n))
    {
        return bad_request_value(json!(["no_such_user", missing]));
    }
    let mut last = 0;
    for n in names {
        match write_access(app, |c| c.delete_user(n)) {
            Ok(seq) => last = last.max(seq),
            // Deleted meanwhile by another request: nothing left to do.
            Err(_) => continue,
        }
    }
    after(last, no_content())
}
