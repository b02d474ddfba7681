//! `POST /api/definitions[/{vhost}]`: RabbitMQ's definitions format.
//!
//! The whole file is checked first (shapes, types, names, vhosts) and
//! nothing is applied unless all of it is valid. Then exchanges, queues
//! and bindings are declared in that order, as RabbitMQ imports them; an
//! object that exists with other properties keeps its definition
//! (RabbitMQ's merge). Policies and (global) parameters are stored. Users,
//! vhosts, limits, permissions and topic permissions (cluster form only)
//! are checked and applied first, by `admin_defs.rs`.

use axum::response::Response;
use broker_core::direct::{BindingSpec, ExchangeSpec, QueueSpec};
use broker_core::inspect::Snapshot;
use broker_core::persist::Seq;
use broker_core::{AdminError, Broker};
use serde_json::Value;

use crate::http::{amqp_error, bad_request, no_content, Req};
use crate::routes::{apply, refresh, vhost_known, NAME_BYTES_MAX};
use crate::App;

/// Objects one import may declare (a bound on the time the import holds
/// the core lock, one object per lock acquisition).
pub const IMPORT_OBJECTS_MAX: usize = 100_000;

/// What one file declares, checked.
#[derive(Default)]
struct Plan {
    policies: Vec<(String, String, broker_core::params::Policy)>,
    parameters: Vec<(String, String, String, String)>,
    globals: Vec<(String, String)>,
    exchanges: Vec<(String, ExchangeSpec)>,
    queues: Vec<(String, QueueSpec)>,
    bindings: Vec<(String, BindingSpec)>,
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

fn flag(o: &Value, key: &str, default: bool, what: &str) -> Result<bool, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{what}: {key} must be a boolean")),
    }
}

fn args(o: &Value, what: &str) -> Result<amqp_codec::FieldTable, String> {
    crate::json::to_table(o.get("arguments").unwrap_or(&Value::Null))
        .map_err(|e| format!("{what}: {e}"))
}

/// The vhost of an object: its `vhost` key (cluster form) or the path's.
fn vhost_of(o: &Value, path_vhost: Option<&str>, what: &str) -> Result<String, String> {
    match path_vhost {
        Some(v) => Ok(v.to_string()),
        None => Ok(text(o, "vhost", what)?.to_string()),
    }
}

fn plan(
    d: &Value,
    path_vhost: Option<&str>,
    snap: &Snapshot,
    new_vhosts: &[&str],
) -> Result<Plan, String> {
    let mut p = Plan::default();
    for x in items(d, "exchanges")? {
        let what = "exchange";
        let v = vhost_of(x, path_vhost, what)?;
        let spec = ExchangeSpec {
            name: text(x, "name", what)?.into(),
            kind: text(x, "type", what)?.into(),
            durable: flag(x, "durable", true, what)?,
            auto_delete: flag(x, "auto_delete", false, what)?,
            internal: flag(x, "internal", false, what)?,
            arguments: args(x, what)?,
        };
        p.exchanges.push((v, spec));
    }
    for q in items(d, "queues")? {
        let what = "queue";
        let v = vhost_of(q, path_vhost, what)?;
        let mut arguments = args(q, what)?;
        // Exports of RabbitMQ 3.8+ (CLI) and 4.3 carry the type outside
        // the arguments.
        if let Some(t) = q.get("type").and_then(Value::as_str) {
            if arguments.get("x-queue-type").is_none() && t != "classic" {
                arguments.0.push((
                    amqp_codec::ShortStr::from("x-queue-type"),
                    amqp_codec::FieldValue::LongStr(bytes::Bytes::copy_from_slice(t.as_bytes())),
                ));
            }
        }
        let spec = QueueSpec {
            name: text(q, "name", what)?.into(),
            durable: flag(q, "durable", true, what)?,
            auto_delete: flag(q, "auto_delete", false, what)?,
            arguments,
        };
        p.queues.push((v, spec));
    }
    for b in items(d, "bindings")? {
        let what = "binding";
        let v = vhost_of(b, path_vhost, what)?;
        let to_queue = match text(b, "destination_type", what)? {
            "queue" => true,
            "exchange" => false,
            other => return Err(format!("binding: unknown destination_type {other}")),
        };
        let spec = BindingSpec {
            source: text(b, "source", what)?.into(),
            destination: text(b, "destination", what)?.into(),
            to_queue,
            routing_key: text(b, "routing_key", what)?.into(),
            arguments: args(b, what)?,
        };
        p.bindings.push((v, spec));
    }
    for pol in items(d, "policies")? {
        let what = "policy";
        let v = vhost_of(pol, path_vhost, what)?;
        let name = text(pol, "name", what)?.to_string();
        let policy = crate::params_api::parse_policy(pol).map_err(|_| {
            format!("policy '{name}': invalid pattern, definition, priority or apply-to")
        })?;
        p.policies.push((v, name, policy));
    }
    for par in items(d, "parameters")? {
        let what = "parameter";
        let v = vhost_of(par, path_vhost, what)?;
        let component = text(par, "component", what)?.to_string();
        if component == crate::admin_defs::VHOST_LIMITS_COMPONENT {
            continue; // vhost limits: admin_defs.rs
        }
        let name = text(par, "name", what)?.to_string();
        let value = par
            .get("value")
            .filter(|v| !v.is_null())
            .ok_or("parameter: value is required")?;
        if component == crate::shovels::COMPONENT {
            crate::shovels::parse(&name, value)?;
        }
        p.parameters.push((component, v, name, value.to_string()));
    }
    for g in items(d, "global_parameters")? {
        let what = "global parameter";
        let name = text(g, "name", what)?.to_string();
        let value = g
            .get("value")
            .filter(|v| !v.is_null())
            .ok_or("global parameter: value is required")?;
        // RabbitMQ's internal ones are never imported.
        if !name.starts_with("internal") {
            p.globals.push((name, value.to_string()));
        }
    }
    let total = p.exchanges.len()
        + p.queues.len()
        + p.bindings.len()
        + p.policies.len()
        + p.parameters.len();
    if total > IMPORT_OBJECTS_MAX {
        return Err(format!("more than {IMPORT_OBJECTS_MAX} objects"));
    }
    let vhosts = p
        .exchanges
        .iter()
        .map(|(v, _)| v)
        .chain(p.queues.iter().map(|(v, _)| v))
        .chain(p.bindings.iter().map(|(v, _)| v))
        .chain(p.policies.iter().map(|(v, _, _)| v))
        .chain(p.parameters.iter().map(|(_, v, _, _)| v));
    for v in vhosts {
        if !vhost_known(snap, v) && !new_vhosts.contains(&v.as_str()) {
            return Err(format!("vhost '{v}' does not exist"));
        }
    }
    Ok(p)
}

/// An import's error: precondition failures on objects that exist keep the
/// existing definition (RabbitMQ's merge); anything else stops the import.
fn keep_going(e: &broker_core::AmqpError) -> bool {
    e.code == amqp_codec::reply::PRECONDITION_FAILED && e.text.contains("inequivalent")
}

/// Handles the POST.
pub(crate) fn import(app: &App, req: &Req, snap: &Snapshot, path_vhost: Option<&str>) -> Response {
    let d = match req.json() {
        Ok(d) => d,
        Err(e) => return e,
    };
    // The access sections (cluster form): checked with the rest before
    // anything is applied, applied first.
    let access = match path_vhost {
        None => match crate::admin_defs::plan(&d) {
            Ok(a) => Some(a),
            Err(e) => return e,
        },
        Some(_) => None,
    };
    let new_vhosts: Vec<&str> = access
        .iter()
        .flat_map(crate::admin_defs::AccessPlan::vhost_names)
        .collect();
    let p = match plan(&d, path_vhost, snap, &new_vhosts) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    let seq = match access {
        None => 0,
        Some(a) => {
            if let Err(e) = crate::admin_defs::check_refs(app, &a) {
                return e;
            }
            match crate::admin_defs::apply(app, a) {
                Ok(seq) => seq,
                Err(e) => {
                    refresh(app);
                    return e;
                }
            }
        }
    };
    crate::admin::after(seq, import_objects(app, req, p))
}

/// Runs one durable policy or parameter change (one lock, no snapshot
/// refresh), raising `seq` to its store seq.
fn store(
    app: &App,
    seq: &mut Seq,
    f: impl FnOnce(&mut Broker) -> Result<(bool, Seq), AdminError>,
) -> Result<(), Response> {
    let mut f = Some(f);
    let mut out = Err(AdminError::Store("core unavailable".into()));
    app.core.with_core(&mut |c: &mut Broker| {
        if let Some(f) = f.take() {
            out = f(c);
        }
    });
    let (_, s) = out.map_err(crate::admin_perms::answer)?;
    *seq = (*seq).max(s);
    Ok(())
}

/// Applies the checked objects (after the access sections).
fn import_objects(app: &App, req: &Req, p: Plan) -> Response {
    let user = req.user.clone();
    let step = |r: Result<(), broker_core::AmqpError>| match r {
        Err(e) if !keep_going(&e) => Err(amqp_error(&e)),
        _ => Ok(()),
    };
    // Stored (not yet applied to queues); durable before the answer.
    let mut seq = 0;
    for (name, value) in p.globals {
        if let Err(e) = store(app, &mut seq, |c| c.mgmt_set_global_parameter(&name, value)) {
            return e;
        }
    }
    for (v, name, policy) in p.policies {
        let kind = broker_core::params::PolicyKind::User;
        if let Err(e) = store(app, &mut seq, |c| {
            c.mgmt_set_policy(kind, &v, &name, policy)
        }) {
            refresh(app);
            return e;
        }
    }
    for (c, v, name, value) in p.parameters {
        if let Err(e) = store(app, &mut seq, |core| {
            core.mgmt_set_parameter(&c, &v, &name, value)
        }) {
            refresh(app);
            return e;
        }
    }
    for (v, x) in p.exchanges {
        let r = apply(app, |c| Ok(c.mgmt_declare_exchange(&v, &user, x).map(drop)));
        if let Err(e) = r.and_then(step) {
            refresh(app);
            return e;
        }
    }
    for (v, q) in p.queues {
        let r = apply(app, |c| Ok(c.mgmt_declare_queue(&v, &user, q).map(drop)));
        if let Err(e) = r.and_then(step) {
            refresh(app);
            return e;
        }
    }
    for (v, b) in p.bindings {
        let r = apply(app, |c| Ok(c.mgmt_binding(&v, &user, b, true)));
        if let Err(e) = r.and_then(step) {
            refresh(app);
            return e;
        }
    }
    refresh(app);
    crate::admin::after(seq, no_content())
}
