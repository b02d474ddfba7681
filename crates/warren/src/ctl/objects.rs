//! The commands on queues, exchanges, bindings, connections, channels and
//! consumers: listings with rabbitmqctl's info keys, purge and delete.

use rabbitmq_http_client::error::Error as E;
use serde_json::Value;

use super::columns::{self, Kind};
use super::commands::usage;
use super::http::{seg, Api};
use super::{CtlArgs, CtlCommand, CtlError, Out};
use super::{EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE};

/// rabbitmqctl's default command timeout, in seconds (printed in the
/// `list_queues` banner).
const TIMEOUT_DEFAULT_SECS: u64 = 60;

/// Runs the object commands (`commands::dispatch` passes them on).
pub fn dispatch(api: &Api, out: &Out, args: &CtlArgs, cmd: &CtlCommand) -> Result<(), CtlError> {
    let v = args.vhost.as_str();
    let ve = seg(v);
    match cmd {
        CtlCommand::ListQueues { columns: named } => {
            let cols = columns::choose(&columns::QUEUES, named).map_err(usage)?;
            let secs = args.timeout.unwrap_or(TIMEOUT_DEFAULT_SECS);
            out.banner(&format!("Timeout: {secs}.0 seconds ..."));
            out.banner(&format!("Listing queues for vhost {v} ..."));
            listing(api, out, &columns::QUEUES, &cols, &format!("/queues/{ve}"))
        }
        CtlCommand::ListExchanges { columns: named } => {
            let cols = columns::choose(&columns::EXCHANGES, named).map_err(usage)?;
            out.banner(&format!("Listing exchanges for vhost {v} ..."));
            listing(
                api,
                out,
                &columns::EXCHANGES,
                &cols,
                &format!("/exchanges/{ve}"),
            )
        }
        CtlCommand::ListBindings { columns: named } => {
            let cols = columns::choose(&columns::BINDINGS, named).map_err(usage)?;
            out.banner(&format!("Listing bindings for vhost {v}..."));
            listing(
                api,
                out,
                &columns::BINDINGS,
                &cols,
                &format!("/bindings/{ve}"),
            )
        }
        CtlCommand::ListConnections { columns: named } => {
            let cols = columns::choose(&columns::CONNECTIONS, named).map_err(usage)?;
            out.banner("Listing connections ...");
            listing(api, out, &columns::CONNECTIONS, &cols, "/connections")
        }
        CtlCommand::ListChannels { columns: named } => {
            let cols = columns::choose(&columns::CHANNELS, named).map_err(usage)?;
            out.banner("Listing channels ...");
            listing(api, out, &columns::CHANNELS, &cols, "/channels")
        }
        CtlCommand::ListConsumers { columns: named } => {
            let cols = columns::choose(&columns::CONSUMERS, named).map_err(usage)?;
            out.banner(&format!("Listing consumers in vhost {v} ..."));
            listing(
                api,
                out,
                &columns::CONSUMERS,
                &cols,
                &format!("/consumers/{ve}"),
            )
        }
        CtlCommand::CloseConnection {
            connection,
            explanation,
        } => {
            out.banner(&format!(
                "Closing connection {connection}, reason: {explanation}..."
            ));
            api.client
                .close_connection(connection, Some(explanation), false)
                .map_err(|e| match e {
                    E::NotFound => {
                        CtlError::new(EX_UNAVAILABLE, format!("Connection {connection} not found"))
                    }
                    other => api.typed(other),
                })
        }
        CtlCommand::PurgeQueue { queue } => {
            out.banner(&format!("Purging queue '{queue}' in vhost '{v}' ..."));
            api.client.purge_queue(v, queue).map_err(|e| match e {
                E::NotFound => CtlError::new(EX_UNAVAILABLE, "not_found"),
                other => api.typed(other),
            })
        }
        CtlCommand::DeleteQueue {
            queue,
            if_unused,
            if_empty,
        } => delete_queue(api, out, v, queue, *if_unused, *if_empty),
        _ => Err(CtlError::new(EX_SOFTWARE, "command not dispatched")),
    }
}

/// GETs `path` and prints the named columns of every row.
fn listing(api: &Api, out: &Out, kind: &Kind, cols: &[String], path: &str) -> Result<(), CtlError> {
    let rows: Vec<String> = api
        .list(path)?
        .iter()
        .map(|r| columns::line(kind, r, cols))
        .collect();
    out.table(cols, &rows);
    Ok(())
}

/// `delete_queue [--if-unused] [--if-empty]`: prints how many ready
/// messages went with the queue, as rabbitmqctl does.
fn delete_queue(
    api: &Api,
    out: &Out,
    v: &str,
    queue: &str,
    if_unused: bool,
    if_empty: bool,
) -> Result<(), CtlError> {
    let mut conds = Vec::new();
    if if_empty {
        conds.push("if queue is empty ");
    }
    if if_unused {
        conds.push("if queue is unused ");
    }
    out.banner(&format!(
        "Deleting queue '{queue}' on vhost '{v}' {}...",
        conds.join("and ")
    ));
    let path = format!("/queues/{}/{}", seg(v), seg(queue));
    let not_found = || CtlError::new(EX_USAGE, "Queue not found");
    let info = api.get(&path)?.ok_or_else(not_found)?;
    let ready = info
        .get("messages_ready")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut query = Vec::new();
    if if_empty {
        query.push("if-empty=true");
    }
    if if_unused {
        query.push("if-unused=true");
    }
    let full = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    api.delete(&full)?.ok_or_else(not_found)?;
    out.banner(&format!(
        "Queue was successfully deleted with {ready} ready messages"
    ));
    Ok(())
}
