//! Dynamic shovels (RabbitMQ's `rabbitmq_shovel`): every runtime
//! parameter of component `shovel` runs one `warren_shovel::Shovel`. The
//! one rule: the running set follows the stored parameters. A task reads
//! them from the core every `SHOVEL_SCAN_INTERVAL_MS` and starts what is
//! new, stops what was deleted, restarts what changed — so a PUT or DELETE
//! on `/api/parameters/shovel/...`, a definitions import and the stored
//! parameters at boot all take the same path. It also publishes the
//! shovels' states for `/api/shovels` (`mgmt::ShovelBoard`).
//!
//! A URI with an empty host (`amqp://`, `amqp://user:pass@/vhost`:
//! RabbitMQ's "this node") is reached in-process (a socketpair served by
//! this node's connection code), as `guest` unless the URI names a user;
//! any other URI over TCP (lapin).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use lapin::{Connection, ConnectionProperties};
use mgmt::shovels::{AckMode, ShovelDef};
use mgmt::{ShovelBoard, ShovelRow};
use tokio::sync::watch;
use warren_shovel::{Shovel, ShovelConfig, State};

use crate::node::InProcess;
use crate::Shared;

/// How often the stored shovel parameters are compared with the running
/// shovels (and the board refreshed).
const SHOVEL_SCAN_INTERVAL_MS: u64 = 250;

/// How long stopping one shovel (closing its two connections) may take
/// before it is aborted.
const SHOVEL_STOP_TIMEOUT_MS: u64 = 2_000;

/// Longest reconnect delay taken from a parameter (a day).
const RECONNECT_DELAY_MAX_SECS: f64 = 86_400.0;

/// One running shovel and the stored value it was started from.
struct Running {
    /// The parameter's JSON text (a change restarts the shovel).
    value: String,
    /// The checked definition (None: the value failed the check).
    def: Option<ShovelDef>,
    /// The shovel (None: the value failed the check; reported terminated).
    shovel: Option<Shovel>,
    /// Why it could not start (with `shovel` None).
    refused: Option<String>,
    /// When it was refused (ms since the epoch).
    refused_ms: u64,
}

/// The in-process form of `url` when its host is empty, else None.
fn local_uri(url: &str) -> Option<lapin::uri::AMQPUri> {
    let rest = url.strip_prefix("amqp://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(end);
    let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    if !host.is_empty() {
        return None;
    }
    let userinfo = auth.rsplit_once('@').map(|(u, _)| u);
    let with_host = match userinfo {
        Some(u) => format!("amqp://{u}@localhost{tail}"),
        None => format!("amqp://localhost{tail}"),
    };
    with_host.parse().ok()
}

/// Opens a shovel's connections: in-process for this node, else TCP.
fn connector(local: InProcess) -> warren_shovel::Connector {
    Arc::new(move |url: &str, props: ConnectionProperties| {
        let url = url.to_string();
        let local = local.clone();
        Box::pin(async move {
            match local_uri(&url) {
                Some(uri) => {
                    warren_shovel::inproc::connect_stream(local.connect(), uri, props).await
                }
                None => Connection::connect(&url, props).await,
            }
        })
    })
}

/// The shovel's settings from a checked definition.
fn config(vhost: &str, name: &str, d: &ShovelDef) -> ShovelConfig {
    let (exchange, key) = match &d.dest_queue {
        Some(q) => (String::new(), Some(q.clone())),
        None => (
            d.dest_exchange.clone().unwrap_or_default(),
            d.dest_exchange_key.clone(),
        ),
    };
    let mut c = ShovelConfig::new(&d.src_uri, &d.src_queue, &d.dest_uri, &exchange);
    c.name = format!("shovel {vhost}/{name}");
    c.dest_routing_key = key;
    c.window_messages = d.prefetch_count;
    c.reconnect_delay =
        Duration::from_secs_f64(d.reconnect_delay_secs.clamp(0.0, RECONNECT_DELAY_MAX_SECS));
    c.ack_mode = match d.ack_mode {
        AckMode::OnConfirm => warren_shovel::AckMode::OnConfirm,
        AckMode::OnPublish => warren_shovel::AckMode::OnPublish,
        AckMode::NoAck => warren_shovel::AckMode::NoAck,
    };
    if d.add_forward_headers {
        // RabbitMQ's x-shovelled entry (URIs without credentials).
        let mut h: Vec<(String, String)> = vec![
            ("shovelled-by".into(), mgmt::node_name()),
            ("shovel-type".into(), "dynamic".into()),
            ("shovel-name".into(), name.into()),
            ("shovel-vhost".into(), vhost.into()),
            ("src-uri".into(), mgmt::shovels::redact(&d.src_uri)),
            ("dest-uri".into(), mgmt::shovels::redact(&d.dest_uri)),
            ("src-queue".into(), d.src_queue.clone()),
        ];
        match &d.dest_queue {
            Some(q) => h.push(("dest-queue".into(), q.clone())),
            None => {
                h.push(("dest-exchange".into(), exchange.clone()));
                if let Some(k) = &d.dest_exchange_key {
                    h.push(("dest-exchange-key".into(), k.clone()));
                }
            }
        }
        c.forward_headers = Some(h);
    }
    c
}

fn now_ms() -> u64 {
    UNIX_EPOCH.elapsed().map_or(0, |d| d.as_millis() as u64)
}

fn start(vhost: &str, name: &str, value: String, local: &InProcess) -> Running {
    match mgmt::shovels::parse_text(name, &value) {
        Ok(def) => {
            tracing::info!(vhost, name, "starting dynamic shovel");
            let shovel = Shovel::start_with(config(vhost, name, &def), connector(local.clone()));
            Running {
                value,
                def: Some(def),
                shovel: Some(shovel),
                refused: None,
                refused_ms: 0,
            }
        }
        Err(e) => {
            tracing::warn!(vhost, name, "shovel parameter refused: {e}");
            Running {
                value,
                def: None,
                shovel: None,
                refused: Some(e),
                refused_ms: now_ms(),
            }
        }
    }
}

fn row(vhost: &str, name: &str, r: &Running) -> ShovelRow {
    let (state, reason, since_ms) = match &r.shovel {
        None => ("terminated", r.refused.clone(), r.refused_ms),
        Some(s) => {
            let st = s.status();
            let since = st
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            match st.state {
                State::Starting => ("starting", None, since),
                State::Running => ("running", None, since),
                State::Terminated(why) => ("terminated", Some(why), since),
            }
        }
    };
    ShovelRow {
        vhost: vhost.into(),
        name: name.into(),
        state,
        reason,
        def: r.def.clone(),
        since_ms,
    }
}

/// Stops a shovel, aborting it after `SHOVEL_STOP_TIMEOUT_MS`.
async fn stop_one(s: Shovel) {
    let limit = Duration::from_millis(SHOVEL_STOP_TIMEOUT_MS);
    let _ = tokio::time::timeout(limit, s.stop()).await;
}

/// Runs the shovels the stored parameters ask for until `stop` turns true,
/// then stops them all (closing their connections).
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    local: InProcess,
    board: ShovelBoard,
    mut stop: watch::Receiver<bool>,
) {
    let mut running: BTreeMap<(String, String), Running> = BTreeMap::new();
    let mut interval = tokio::time::interval(Duration::from_millis(SHOVEL_SCAN_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let wanted: BTreeMap<(String, String), String> = shared
            .core
            .lock()
            .list_parameters(mgmt::shovels::COMPONENT)
            .into_iter()
            .map(|(v, n, val)| ((v, n), val))
            .collect();
        let gone: Vec<(String, String)> = running
            .iter()
            .filter(|(k, r)| wanted.get(*k) != Some(&r.value))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(Running {
                shovel: Some(s), ..
            }) = running.remove(&k)
            {
                tracing::info!(vhost = %k.0, name = %k.1, "stopping dynamic shovel");
                stop_one(s).await;
            }
        }
        for (k, value) in wanted {
            if let std::collections::btree_map::Entry::Vacant(e) = running.entry(k) {
                let (v, n) = e.key();
                let r = start(v, n, value, &local);
                e.insert(r);
            }
        }
        let rows: Vec<ShovelRow> = running.iter().map(|((v, n), r)| row(v, n, r)).collect();
        board.store(Arc::new(rows));
    }
    for (_, r) in running {
        if let Some(s) = r.shovel {
            stop_one(s).await;
        }
    }
    board.store(Arc::new(Vec::new()));
}

#[cfg(test)]
mod tests {
    use super::local_uri;

    #[test]
    fn empty_host_is_this_node() {
        let u = local_uri("amqp://").expect("local");
        assert_eq!(
            (u.authority.userinfo.username.as_str(), u.vhost.as_str()),
            ("guest", "/")
        );
        let u = local_uri("amqp://bob:pw@/%2fx").expect("local");
        assert_eq!(
            (u.authority.userinfo.username.as_str(), u.vhost.as_str()),
            ("bob", "/x")
        );
        assert!(local_uri("amqp://localhost").is_none());
        assert!(local_uri("amqp://u@h:5672/").is_none());
        assert!(local_uri("amqps://").is_none());
    }
}
