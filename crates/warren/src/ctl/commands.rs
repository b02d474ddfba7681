//! The commands on users, vhosts, permissions, limits, definitions and the
//! node; `dispatch` sends every command to its function.

use rabbitmq_http_client::commons::{UserLimitTarget, VirtualHostLimitTarget};
use rabbitmq_http_client::error::Error as E;
use rabbitmq_http_client::password_hashing;
use rabbitmq_http_client::requests::{
    EnforcedLimitParams, Permissions, TopicPermissions, UserParams, VirtualHostParams,
};
use serde_json::{json, Value};

use super::http::{seg, Api};
use super::{columns, node, objects, CtlArgs, CtlCommand, CtlError, Out};
use super::{EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE};

/// Runs the command.
pub fn dispatch(api: &Api, out: &Out, args: &CtlArgs) -> Result<(), CtlError> {
    let v = args.vhost.as_str();
    match &args.command {
        CtlCommand::AddUser { username, password } => add_user(api, out, username, password),
        CtlCommand::DeleteUser { username } => {
            out.banner(&format!("Deleting user \"{username}\" ..."));
            api.client
                .delete_user(username, false)
                .map_err(|e| no_user(api, e, username))
        }
        CtlCommand::ChangePassword { username, password } => {
            out.banner(&format!("Changing password for user \"{username}\" ..."));
            let user = get_user(api, username)?;
            let tags = tag_list(user.get("tags")).join(",");
            let hash = hash_password(password);
            api.client
                .create_user(&UserParams::new(username, &hash, &tags))
                .map_err(|e| api.typed(e))
        }
        CtlCommand::SetUserTags { username, tags } => {
            out.banner(&format!(
                "Setting tags for user \"{username}\" to [{}] ...",
                tags.join(", ")
            ));
            let user = get_user(api, username)?;
            // A PUT without a password hash clears the password: keep it.
            let body = json!({
                "password_hash": user.get("password_hash").cloned().unwrap_or(json!("")),
                "hashing_algorithm": user.get("hashing_algorithm").cloned()
                    .unwrap_or(json!("rabbit_password_hashing_sha256")),
                "tags": tags.join(","),
            });
            api.put(&format!("/users/{}", seg(username)), &body)
        }
        CtlCommand::ListUsers => {
            out.banner("Listing users ...");
            let rows: Vec<String> = api
                .list("/users")?
                .iter()
                .map(|u| format!("{}\t{}", text(u, "name"), columns::tags(u.get("tags"))))
                .collect();
            out.table(&header(&["user", "tags"]), &rows);
            Ok(())
        }
        CtlCommand::AddVhost {
            name: vhost,
            description,
            tags,
            default_queue_type,
        } => {
            out.banner(&format!("Adding vhost \"{vhost}\" ..."));
            let tag_vec: Option<Vec<&str>> = tags.as_deref().map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect()
            });
            let params = VirtualHostParams {
                name: vhost,
                description: description.as_deref(),
                tags: tag_vec,
                default_queue_type: default_queue_type.as_deref().map(Into::into),
                tracing: false,
            };
            api.client.create_vhost(&params).map_err(|e| api.typed(e))
        }
        CtlCommand::DeleteVhost { name: vhost } => {
            out.banner(&format!("Deleting vhost \"{vhost}\" ..."));
            api.client.delete_vhost(vhost, false).map_err(|e| match e {
                E::NotFound => {
                    CtlError::bare(EX_DATAERR, format!("Virtual host '{vhost}' does not exist"))
                }
                other => api.typed(other),
            })
        }
        CtlCommand::ListVhosts { columns: named } => {
            let cols = columns::choose(&columns::VHOSTS, named).map_err(usage)?;
            out.banner("Listing vhosts ...");
            let rows: Vec<String> = api
                .list("/vhosts")?
                .iter()
                .map(|r| vhost_line(r, &cols))
                .collect();
            out.table(&cols, &rows);
            Ok(())
        }
        CtlCommand::SetPermissions {
            username,
            conf,
            write,
            read,
        } => {
            out.banner(&format!(
                "Setting permissions for user \"{username}\" in vhost \"{v}\" ..."
            ));
            user_and_vhost(api, username, v)?;
            let p = Permissions {
                user: username,
                vhost: v,
                configure: conf,
                read,
                write,
            };
            api.client.declare_permissions(&p).map_err(|e| api.typed(e))
        }
        CtlCommand::ClearPermissions { username } => {
            out.banner(&format!(
                "Clearing permissions for user \"{username}\" in vhost \"{v}\" ..."
            ));
            api.client
                .clear_permissions(v, username, true)
                .map_err(|e| api.typed(e))
        }
        CtlCommand::ListPermissions => {
            out.banner(&format!("Listing permissions for vhost \"{v}\" ..."));
            let rows = api.list(&format!("/vhosts/{}/permissions", seg(v)))?;
            let keys = ["user", "configure", "write", "read"];
            out.table(&header(&keys), &plain_rows(&rows, &keys));
            Ok(())
        }
        CtlCommand::ListUserPermissions { username } => {
            out.banner(&format!("Listing permissions for user \"{username}\" ..."));
            let rows = api.list(&format!("/users/{}/permissions", seg(username)))?;
            let keys = ["vhost", "configure", "write", "read"];
            out.table(&header(&keys), &plain_rows(&rows, &keys));
            Ok(())
        }
        CtlCommand::SetTopicPermissions {
            username,
            exchange,
            write,
            read,
        } => {
            out.banner(&format!(
                "Setting topic permissions on \"{exchange}\" for user \"{username}\" in vhost \"{v}\" ..."
            ));
            user_and_vhost(api, username, v)?;
            let p = TopicPermissions {
                user: username,
                vhost: v,
                write,
                read,
                exchange,
            };
            api.client
                .declare_topic_permissions(&p)
                .map_err(|e| api.typed(e))
        }
        CtlCommand::ListTopicPermissions => {
            out.banner(&format!("Listing topic permissions for vhost \"{v}\" ..."));
            let rows = api.list(&format!("/vhosts/{}/topic-permissions", seg(v)))?;
            let keys = ["user", "exchange", "write", "read"];
            out.table(&header(&keys), &plain_rows(&rows, &keys));
            Ok(())
        }
        CtlCommand::SetVhostLimits { definition } => {
            out.banner(&format!(
                "Setting vhost limits to \"{definition}\" for vhost \"{v}\" ..."
            ));
            set_vhost_limits(api, v, definition)
        }
        CtlCommand::ListVhostLimits => {
            out.banner(&format!("Listing limits for vhost \"{v}\" ..."));
            print_limits(&api.list(&format!("/vhost-limits/{}", seg(v)))?);
            Ok(())
        }
        CtlCommand::SetUserLimits {
            username,
            definition,
        } => {
            out.banner(&format!(
                "Setting user limits to \"{definition}\" for user \"{username}\" ..."
            ));
            set_user_limits(api, username, definition)
        }
        CtlCommand::ListUserLimits { user } => {
            out.banner(&format!("Listing limits for user \"{user}\" ..."));
            print_limits(&api.list(&format!("/user-limits/{}", seg(user)))?);
            Ok(())
        }
        CtlCommand::ExportDefinitions { path } => {
            let defs = api
                .client
                .export_cluster_wide_definitions_as_string()
                .map_err(|e| api.typed(e))?;
            if path == "-" {
                println!("{defs}");
                return Ok(());
            }
            out.banner(&format!(
                "Exporting definitions in JSON to a file at \"{path}\" ..."
            ));
            std::fs::write(path, defs)
                .map_err(|e| CtlError::new(EX_SOFTWARE, format!("cannot write {path}: {e}")))
        }
        CtlCommand::ImportDefinitions { path } => {
            node::import_definitions(api, out, path.as_deref())
        }
        CtlCommand::Status => node::status(api, out),
        CtlCommand::AwaitStartup => node::await_startup(api, args.timeout),
        other => objects::dispatch(api, out, args, other),
    }
}

/// A usage error (exit 64), e.g. an unknown info key.
pub fn usage(message: String) -> CtlError {
    CtlError::bare(EX_USAGE, format!("Error (argument validation): {message}"))
}

/// Header cells.
pub fn header(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// A string field ("" when absent).
pub fn text(row: &Value, key: &str) -> String {
    row.get(key).map(columns::cell).unwrap_or_default()
}

/// Rows of plain fields.
fn plain_rows(rows: &[Value], keys: &[&str]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = keys.iter().map(|k| text(r, k)).collect();
            cells.join("\t")
        })
        .collect()
}

/// One `list_vhosts` row (`tracing` is false when the API omits it).
fn vhost_line(row: &Value, cols: &[String]) -> String {
    let cells: Vec<String> = cols
        .iter()
        .map(|c| match (c.as_str(), row.get(c.as_str())) {
            ("tracing", None) => "false".to_string(),
            ("tags", v) => columns::tags(v),
            (_, v) => v.map(columns::cell).unwrap_or_default(),
        })
        .collect();
    cells.join("\t")
}

/// A user's tags as a list.
fn tag_list(v: Option<&Value>) -> Vec<String> {
    let printed = columns::tags(v);
    printed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(", ")
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// rabbit_password_hashing_sha256 of `password` with a fresh salt.
fn hash_password(password: &str) -> String {
    let salt = password_hashing::salt();
    password_hashing::base64_encoded_salted_password_hash_sha256(&salt, password)
}

/// `add_user`: refused when the user exists (a PUT would overwrite it).
fn add_user(api: &Api, out: &Out, username: &str, password: &str) -> Result<(), CtlError> {
    out.banner(&format!("Adding user \"{username}\" ..."));
    if api.get(&format!("/users/{}", seg(username)))?.is_some() {
        return Err(CtlError::new(
            EX_SOFTWARE,
            format!("User \"{username}\" already exists"),
        ));
    }
    let hash = hash_password(password);
    api.client
        .create_user(&UserParams::new(username, &hash, ""))
        .map_err(|e| api.typed(e))?;
    out.banner("Done. Don't forget to grant the user permissions to some virtual hosts! See 'rabbitmqctl help set_permissions' to learn more.");
    Ok(())
}

/// The user's record, or rabbitmqctl's "does not exist" error.
fn get_user(api: &Api, username: &str) -> Result<Value, CtlError> {
    api.get(&format!("/users/{}", seg(username)))?
        .ok_or_else(|| CtlError::new(EX_NOUSER, format!("User \"{username}\" does not exist")))
}

/// A 404 from a user endpoint as rabbitmqctl reports it.
fn no_user(
    api: &Api,
    e: rabbitmq_http_client::blocking_api::HttpClientError,
    username: &str,
) -> CtlError {
    match e {
        E::NotFound => CtlError::new(EX_NOUSER, format!("User \"{username}\" does not exist")),
        other => api.typed(other),
    }
}

/// The checks rabbitmqctl makes before setting permissions (user first).
fn user_and_vhost(api: &Api, username: &str, vhost: &str) -> Result<(), CtlError> {
    if api.get(&format!("/users/{}", seg(username)))?.is_none() {
        return Err(CtlError::new(
            EX_NOUSER,
            format!("User {username} does not exist"),
        ));
    }
    if api.get(&format!("/vhosts/{}", seg(vhost)))?.is_none() {
        return Err(CtlError::new(
            EX_UNAVAILABLE,
            format!("Virtual host {vhost} does not exist"),
        ));
    }
    Ok(())
}

/// Parses a limits definition: a JSON object of integers.
fn limits(definition: &str, known: &[&str]) -> Result<Vec<(String, i64)>, CtlError> {
    let parsed: Value = serde_json::from_str(definition)
        .map_err(|e| CtlError::new(EX_DATAERR, format!("could not parse JSON document: {e}")))?;
    let Value::Object(map) = parsed else {
        return Err(CtlError::new(
            EX_DATAERR,
            "the limits must be a JSON object",
        ));
    };
    map.iter()
        .map(|(k, v)| match (known.contains(&k.as_str()), v.as_i64()) {
            (true, Some(n)) => Ok((k.clone(), n)),
            (false, _) => Err(CtlError::new(
                EX_DATAERR,
                format!("Validation failed\n\n[{{<<\"{k}\">>,{v}}}] are not recognised limits"),
            )),
            (true, None) => Err(CtlError::new(
                EX_DATAERR,
                format!("Validation failed\n\n{k} must be an integer"),
            )),
        })
        .collect()
}

/// rabbitmqctl replaces the whole definition: limits not named are cleared.
fn set_vhost_limits(api: &Api, vhost: &str, definition: &str) -> Result<(), CtlError> {
    let known = ["max-connections", "max-queues"];
    let given = limits(definition, &known)?;
    let target = |k: &str| match k {
        "max-connections" => VirtualHostLimitTarget::MaxConnections,
        _ => VirtualHostLimitTarget::MaxQueues,
    };
    for (k, n) in &given {
        api.client
            .set_vhost_limit(vhost, EnforcedLimitParams::new(target(k), *n))
            .map_err(|e| api.typed(e))?;
    }
    for k in known.iter().filter(|k| !given.iter().any(|(g, _)| g == *k)) {
        match api.client.clear_vhost_limit(vhost, target(k)) {
            Ok(()) | Err(E::NotFound) => {}
            Err(e) => return Err(api.typed(e)),
        }
    }
    Ok(())
}

/// As `set_vhost_limits`, for a user.
fn set_user_limits(api: &Api, user: &str, definition: &str) -> Result<(), CtlError> {
    let known = ["max-connections", "max-channels"];
    let given = limits(definition, &known)?;
    let target = |k: &str| match k {
        "max-connections" => UserLimitTarget::MaxConnections,
        _ => UserLimitTarget::MaxChannels,
    };
    for (k, n) in &given {
        api.client
            .set_user_limit(user, EnforcedLimitParams::new(target(k), *n))
            .map_err(|e| api.typed(e))?;
    }
    for k in known.iter().filter(|k| !given.iter().any(|(g, _)| g == *k)) {
        match api.client.clear_user_limit(user, target(k)) {
            Ok(()) | Err(E::NotFound) => {}
            Err(e) => return Err(api.typed(e)),
        }
    }
    Ok(())
}

/// `list_vhost_limits` / `list_user_limits`: the limits object as JSON.
fn print_limits(rows: &[Value]) {
    for r in rows {
        if let Some(v) = r.get("value") {
            println!("{v}");
        }
    }
}
