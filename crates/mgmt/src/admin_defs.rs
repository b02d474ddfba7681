//! The access sections of cluster definitions — `users`, `vhosts`,
//! `permissions`, `topic_permissions`, and vhost limits (RabbitMQ 3.x
//! keeps them as the runtime parameter `vhost-limits`/`limits`) — in
//! RabbitMQ's format: exported with the stored hashes (an export imports
//! into RabbitMQ, its users keep their passwords), imported with the
//! whole file checked before anything is applied.

use axum::response::Response;
use broker_core::access::{
    HashAlgorithm, Limit, PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord,
    VhostLimits, VhostRecord,
};
use broker_core::persist::Seq;
use serde_json::{json, Value};

use crate::admin::{read, user_json, user_record, vhost_record};
use crate::admin_perms::{answer, try_access, vhost_limits_json};
use crate::http::bad_request;
use crate::routes::NAME_BYTES_MAX;
use crate::App;

/// The runtime-parameter component RabbitMQ stores vhost limits under.
pub const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";

/// The access part of one definitions file, checked.
#[derive(Default)]
pub(crate) struct AccessPlan {
    /// Users with their limits (when the file gives them).
    users: Vec<(UserRecord, Option<UserLimits>)>,
    /// Vhosts.
    vhosts: Vec<VhostRecord>,
    /// Vhost limits (from `vhosts[].limits` or `vhost-limits` parameters).
    vhost_limits: Vec<(String, VhostLimits)>,
    /// Permissions.
    permissions: Vec<PermissionRecord>,
    /// Topic permissions.
    topic: Vec<TopicPermissionRecord>,
}

impl AccessPlan {
    /// Vhosts the file creates (later sections may use them).
    pub(crate) fn vhost_names(&self) -> impl Iterator<Item = &str> {
        self.vhosts.iter().map(|v| v.name.as_str())
    }
}

/// Adds the access sections to an export (`info::definitions`, cluster form).
pub(crate) fn export(app: &App, d: &mut Value) {
    let (users, vhosts, perms, topics) = read(app, |c| {
        (
            c.list_users(),
            c.list_vhosts(),
            c.list_permissions(),
            c.list_topic_permissions(),
        )
    });
    d["users"] = users.iter().map(|(u, l)| user_json(u, l)).collect();
    d["vhosts"] = vhosts
        .iter()
        .map(|(v, _)| {
            let mut j = json!({ "name": v.name, "description": v.description, "tags": v.tags,
                "metadata": { "description": v.description, "tags": v.tags } });
            if !v.default_queue_type.is_empty() {
                j["default_queue_type"] = json!(v.default_queue_type);
                j["metadata"]["default_queue_type"] = json!(v.default_queue_type);
            }
            j
        })
        .collect();
    d["permissions"] = perms
        .iter()
        .map(|p| json!({ "user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read }))
        .collect();
    d["topic_permissions"] = topics
        .iter()
        .map(|t| json!({ "user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read }))
        .collect();
    let limits = vhosts.iter().filter_map(|(v, l)| {
        let value = vhost_limits_json(l);
        value.as_object().is_some_and(|m| !m.is_empty()).then(|| {
            json!({ "vhost": v.name, "component": VHOST_LIMITS_COMPONENT, "name": "limits", "value": value })
        })
    });
    if let Some(Value::Array(params)) = d.get_mut("parameters") {
        params.extend(limits);
    }
}

fn items<'a>(d: &'a Value, key: &str) -> Result<&'a [Value], String> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{key} must be an array")),
    }
}

fn text<'a>(o: &'a Value, key: &str, what: &str) -> Result<&'a str, String> {
    let s = o
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: {key} must be a string"))?;
    if s.len() > NAME_BYTES_MAX {
        return Err(format!("{what}: {key} longer than {NAME_BYTES_MAX} bytes"));
    }
    Ok(s)
}

/// A limit from a `{"max-…": n}` object (absent: no limit).
fn limit(o: &Value, key: &str, what: &str) -> Result<Limit, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(-1),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("{what}: {key} must be an integer")),
    }
}

/// Checks a limits object's keys (RabbitMQ refuses unknown ones).
fn limits_object<'a>(v: &'a Value, known: &[&str], what: &str) -> Result<&'a Value, String> {
    let Some(m) = v.as_object() else {
        return Err(format!("{what}: limits must be an object"));
    };
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("{what}: unknown limit {k}"));
    }
    Ok(v)
}

/// The algorithm of a user hash without `hashing_algorithm`: MD5 in
/// exports of RabbitMQ 3.5 and older, else SHA-256 (RabbitMQ's rule).
fn default_algorithm(d: &Value) -> HashAlgorithm {
    let version = d
        .get("rabbit_version")
        .or_else(|| d.get("rabbitmq_version"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) if !version.is_empty() && (major, minor) <= (3, 5) => {
            HashAlgorithm::Md5
        }
        _ => HashAlgorithm::Sha256,
    }
}

/// Checks the access sections (passwords are hashed here, outside the
/// core lock). `parameters` entries of the `vhost-limits` component are
/// taken here; `defs.rs` skips them.
pub(crate) fn plan(d: &Value) -> Result<AccessPlan, Response> {
    plan_inner(d).map_err(|e| match e {
        Fail::Text(t) => bad_request(&t),
        Fail::Answer(r) => r,
    })
}

enum Fail {
    Text(String),
    Answer(Response),
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Text(s)
    }
}

fn plan_inner(d: &Value) -> Result<AccessPlan, Fail> {
    let mut p = AccessPlan::default();
    let alg = default_algorithm(d);
    for u in items(d, "users")? {
        let name = text(u, "name", "user")?;
        let rec = user_record(name, u, Some(alg)).map_err(Fail::Answer)?;
        let limits = match u.get("limits").filter(|l| !l.is_null()) {
            None => None,
            Some(l) => {
                let l = limits_object(l, &["max-connections", "max-channels"], "user")?;
                Some(UserLimits {
                    max_connections: limit(l, "max-connections", "user")?,
                    max_channels: limit(l, "max-channels", "user")?,
                })
            }
        };
        p.users.push((rec, limits));
    }
    for v in items(d, "vhosts")? {
        let name = text(v, "name", "vhost")?;
        p.vhosts.push(vhost_record(name, v)?);
        if let Some(l) = v.get("limits").filter(|l| !l.is_null()) {
            let l = limits_object(l, &["max-connections", "max-queues"], "vhost")?;
            if l.as_object().is_some_and(|m| !m.is_empty()) {
                p.vhost_limits.push((name.to_string(), vhost_limits(l)?));
            }
        }
    }
    for par in items(d, "parameters")? {
        if par.get("component").and_then(Value::as_str) != Some(VHOST_LIMITS_COMPONENT) {
            continue;
        }
        let v = text(par, "vhost", "vhost limits")?;
        let value = par.get("value").unwrap_or(&Value::Null);
        let l = limits_object(value, &["max-connections", "max-queues"], "vhost limits")?;
        p.vhost_limits.push((v.to_string(), vhost_limits(l)?));
    }
    for x in items(d, "permissions")? {
        let what = "permission";
        p.permissions.push(PermissionRecord {
            user: text(x, "user", what)?.into(),
            vhost: text(x, "vhost", what)?.into(),
            configure: text(x, "configure", what)?.into(),
            write: text(x, "write", what)?.into(),
            read: text(x, "read", what)?.into(),
        });
    }
    for x in items(d, "topic_permissions")? {
        let what = "topic permission";
        p.topic.push(TopicPermissionRecord {
            user: text(x, "user", what)?.into(),
            vhost: text(x, "vhost", what)?.into(),
            exchange: text(x, "exchange", what)?.into(),
            write: text(x, "write", what)?.into(),
            read: text(x, "read", what)?.into(),
        });
    }
    Ok(p)
}

fn vhost_limits(l: &Value) -> Result<VhostLimits, String> {
    Ok(VhostLimits {
        max_connections: limit(l, "max-connections", "vhost")?,
        max_queues: limit(l, "max-queues", "vhost")?,
    })
}

/// Checks what only the core knows: the users and vhosts the permissions
/// name exist (in the file or already). Called before anything is applied.
pub(crate) fn check_refs(app: &App, p: &AccessPlan) -> Result<(), Response> {
    let (users, vhosts) = read(app, |c| (c.list_users(), c.list_vhosts()));
    let user_ok = |u: &str| {
        p.users.iter().any(|(r, _)| r.name == u) || users.iter().any(|(r, _)| r.name == u)
    };
    let vhost_ok =
        |v: &str| p.vhosts.iter().any(|r| r.name == v) || vhosts.iter().any(|(r, _)| r.name == v);
    let refs = p
        .permissions
        .iter()
        .map(|x| (x.user.as_str(), x.vhost.as_str()))
        .chain(p.topic.iter().map(|x| (x.user.as_str(), x.vhost.as_str())));
    for (u, v) in refs {
        if !user_ok(u) {
            return Err(bad_request(&format!("user '{u}' does not exist")));
        }
        if !vhost_ok(v) {
            return Err(bad_request(&format!("vhost '{v}' does not exist")));
        }
    }
    for (v, _) in &p.vhost_limits {
        if !vhost_ok(v) {
            return Err(bad_request(&format!("vhost '{v}' does not exist")));
        }
    }
    Ok(())
}

/// Applies the plan in RabbitMQ's order (users, vhosts, limits,
/// permissions, topic permissions); the highest seq written. An error
/// stops the import there (as RabbitMQ's).
pub(crate) fn apply(app: &App, p: AccessPlan) -> Result<Seq, Response> {
    let mut last: Seq = 0;
    let mut step = |r: Result<Seq, broker_core::AdminError>| match r {
        Ok(seq) => {
            last = last.max(seq);
            Ok(())
        }
        Err(e) => Err(answer(e)),
    };
    let mut user_limits = Vec::new();
    for (u, l) in p.users {
        if let Some(l) = l {
            user_limits.push((u.name.clone(), l));
        }
        step(try_access(app, |c| c.add_user(u)))?;
    }
    for v in p.vhosts {
        step(try_access(app, |c| c.add_vhost(v)))?;
    }
    for (u, l) in user_limits {
        step(try_access(app, |c| c.set_user_limits(&u, l)))?;
    }
    for (v, l) in p.vhost_limits {
        step(try_access(app, |c| c.set_vhost_limits(&v, l)))?;
    }
    for x in p.permissions {
        step(try_access(app, |c| c.set_permissions(x)))?;
    }
    for x in p.topic {
        step(try_access(app, |c| c.set_topic_permissions(x)))?;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_only_for_old_exports() {
        assert_eq!(default_algorithm(&json!({})), HashAlgorithm::Sha256);
        let v = |s: &str| json!({ "rabbit_version": s });
        assert_eq!(default_algorithm(&v("3.5.7")), HashAlgorithm::Md5);
        assert_eq!(default_algorithm(&v("2.8.1")), HashAlgorithm::Md5);
        assert_eq!(default_algorithm(&v("3.6.0")), HashAlgorithm::Sha256);
        assert_eq!(default_algorithm(&v("3.10.7")), HashAlgorithm::Sha256);
    }
}
