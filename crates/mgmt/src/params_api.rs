//! `/api/policies`, `/api/operator-policies`, `/api/parameters`,
//! `/api/global-parameters`: stored in the core (`broker_core::params`);
//! bodies checked here (RabbitMQ's required keys, `apply-to` values,
//! pattern regexes).

use axum::http::Method;
use axum::response::Response;
use broker_core::inspect::Snapshot;
use broker_core::params::{Policy, PolicyKind};
use serde_json::{json, Value};

use broker_core::persist::Seq;
use broker_core::{AdminError, Broker};

use crate::http::{bad_request, created, method_not_allowed, no_content, not_found, ok, Req};
use crate::list::respond;
use crate::routes::check_name;
use crate::App;

/// Runs one durable change and answers once it is on disk: `yes` when it
/// created (put) or removed (delete) an entry, `no` otherwise.
fn change(
    app: &App,
    f: impl FnOnce(&mut Broker) -> Result<(bool, Seq), AdminError>,
    yes: fn() -> Response,
    no: fn() -> Response,
) -> Response {
    match crate::admin_perms::try_access(app, f) {
        Ok((true, seq)) => crate::admin::after(seq, yes()),
        Ok((false, seq)) => crate::admin::after(seq, no()),
        Err(e) => crate::admin_perms::answer(e),
    }
}

/// `apply-to` values RabbitMQ (and `rabbitmq_http_client`) accept.
const APPLY_TO: [&str; 6] = [
    "queues",
    "classic_queues",
    "quorum_queues",
    "streams",
    "exchanges",
    "all",
];

/// RabbitMQ 3.10's default global parameters (never exported).
fn default_globals(app: &App) -> Vec<(String, Value)> {
    vec![("internal_cluster_id".into(), json!(app.cluster_id))]
}

fn policy_json(vhost: &str, name: &str, p: &Policy) -> Value {
    json!({
        "vhost": vhost, "name": name, "pattern": p.pattern, "apply-to": p.apply_to,
        "priority": p.priority,
        "definition": serde_json::from_str::<Value>(&p.definition).unwrap_or(json!({})),
    })
}

pub(crate) fn parse_policy(body: &Value) -> Result<Policy, Response> {
    let pattern = body
        .get("pattern")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("pattern is required (a string)"))?;
    if regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .is_err()
    {
        return Err(bad_request(&format!("invalid pattern: {pattern}")));
    }
    let definition = match body.get("definition") {
        Some(d @ Value::Object(_)) => d.to_string(),
        _ => return Err(bad_request("definition is required (an object)")),
    };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|p| i16::try_from(*p).is_ok())
            .ok_or_else(|| bad_request("priority must be an integer"))?,
    };
    let apply_to = match body.get("apply-to") {
        None | Some(Value::Null) => "all",
        Some(Value::String(s)) if APPLY_TO.contains(&s.as_str()) => s.as_str(),
        Some(_) => {
            return Err(bad_request(&format!(
                "apply-to must be one of {}",
                APPLY_TO.join(", ")
            )))
        }
    };
    Ok(Policy {
        pattern: pattern.into(),
        apply_to: apply_to.into(),
        priority,
        definition,
    })
}

/// Policies of either kind; `rest` is the path after the table's name.
pub(crate) fn policies(
    app: &App,
    req: &Req,
    s: &Snapshot,
    kind: PolicyKind,
    rest: &[&str],
) -> Response {
    let table = match kind {
        PolicyKind::User => &s.params.policies,
        PolicyKind::Operator => &s.params.operator_policies,
    };
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let list = |vhost: Option<&str>| {
        table
            .iter()
            .filter(|((v, _), _)| vhost.is_none_or(|x| x == v))
            .map(|((v, n), p)| policy_json(v, n, p))
            .collect::<Vec<_>>()
    };
    match rest {
        [] if get => respond(req, list(None)),
        [v] if get => respond(req, list(Some(v))),
        [v, name] => {
            if let Err(e) = check_name(name) {
                return e;
            }
            match req.method {
                Method::GET | Method::HEAD => table
                    .get(&(v.to_string(), name.to_string()))
                    .map_or_else(not_found, |p| ok(policy_json(v, name, p))),
                Method::PUT => {
                    let body = match req.json() {
                        Ok(b) => b,
                        Err(e) => return e,
                    };
                    let p = match parse_policy(&body) {
                        Ok(p) => p,
                        Err(e) => return e,
                    };
                    let put = |c: &mut Broker| c.mgmt_set_policy(kind, v, name, p);
                    change(app, put, created, no_content)
                }
                Method::DELETE => {
                    let delete = |c: &mut Broker| c.mgmt_clear_policy(kind, v, name);
                    change(app, delete, no_content, not_found)
                }
                _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
            }
        }
        _ => method_not_allowed("GET, HEAD"),
    }
}

fn value_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Runtime parameters; `rest` is the path after `parameters`.
pub(crate) fn parameters(app: &App, req: &Req, s: &Snapshot, rest: &[&str]) -> Response {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let list = |c: Option<&str>, vh: Option<&str>| {
        s.params
            .parameters
            .iter()
            .filter(|((comp, v, _), _)| c.is_none_or(|x| x == comp) && vh.is_none_or(|x| x == v))
            .map(|((comp, v, n), val)| json!({"component": comp, "vhost": v, "name": n, "value": value_of(val)}))
            .collect::<Vec<_>>()
    };
    match rest {
        [] if get => respond(req, list(None, None)),
        [c] if get => respond(req, list(Some(c), None)),
        [c, v] if get => respond(req, list(Some(c), Some(v))),
        [c, v, name] => {
            if let Err(e) = check_name(name) {
                return e;
            }
            let key = (c.to_string(), v.to_string(), name.to_string());
            match req.method {
                Method::GET | Method::HEAD => s.params.parameters.get(&key).map_or_else(not_found, |val| {
                    ok(json!({"component": c, "vhost": v, "name": name, "value": value_of(val)}))
                }),
                Method::PUT => {
                    let body = match req.json() {
                        Ok(b) => b,
                        Err(e) => return e,
                    };
                    let Some(value) = body.get("value").filter(|v| !v.is_null()) else {
                        return bad_request("value is required");
                    };
                    if *c == crate::shovels::COMPONENT {
                        if let Some(refused) = crate::shovels::refuse(name, value) {
                            return refused;
                        }
                    }
                    let value = value.to_string();
                    let put = |core: &mut Broker| core.mgmt_set_parameter(c, v, name, value);
                    change(app, put, created, no_content)
                }
                Method::DELETE => {
                    let delete = |core: &mut Broker| core.mgmt_clear_parameter(c, v, name);
                    change(app, delete, no_content, not_found)
                }
                _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
            }
        }
        _ => method_not_allowed("GET, HEAD"),
    }
}

/// Global parameters (RabbitMQ always lists `cluster_name`).
pub(crate) fn globals(app: &App, req: &Req, s: &Snapshot, rest: &[&str]) -> Response {
    let all = || {
        let mut m: std::collections::BTreeMap<String, Value> =
            default_globals(app).into_iter().collect();
        for (k, v) in &s.params.global {
            m.insert(k.clone(), value_of(v));
        }
        m
    };
    match (rest, &req.method) {
        ([], &Method::GET | &Method::HEAD) => respond(
            req,
            all()
                .into_iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect(),
        ),
        ([name], &Method::GET | &Method::HEAD) => all()
            .remove(*name)
            .map_or_else(not_found, |v| ok(json!({"name": name, "value": v}))),
        ([name], &Method::PUT) => {
            if let Err(e) = check_name(name) {
                return e;
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(value) = body.get("value").filter(|v| !v.is_null()) else {
                return bad_request("value is required");
            };
            let value = value.to_string();
            let put = |c: &mut Broker| c.mgmt_set_global_parameter(name, value);
            change(app, put, created, no_content)
        }
        ([name], &Method::DELETE) => {
            let delete = |c: &mut Broker| c.mgmt_clear_global_parameter(name);
            change(app, delete, no_content, not_found)
        }
        _ => method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}
