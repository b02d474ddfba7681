//! List endpoints against a reference: every item's JSON built first, then
//! RabbitMQ's filter / sort / page / columns applied to the JSON (what the
//! API did before pages were built lazily). A few hundred objects of each
//! kind, two snapshots (so rates are non-zero), admin and restricted users.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use amqp_codec::{FieldTable, FieldValue, ShortStr};
use broker_core::inspect::{
    BindingView, ChannelView, ConnView, ConsumerView, ExchangeView, QueueView, Snapshot,
};
use broker_core::stats::{ChannelStats, ExchangeStats, QueueStats};
use broker_core::Broker;
use serde_json::{json, Value};

use crate::http::Req;
use crate::views::{self, Rates};
use crate::{App, Core, MgmtConfig, Stats};

struct NoCore;

impl Core for NoCore {
    fn with_core(&self, _f: &mut dyn FnMut(&mut Broker)) {}
}

const VHOSTS: [&str; 3] = ["/", "v1", "v2"];

/// A snapshot at `at_ms` whose counters grow with `round` (0, 1).
pub(crate) fn snapshot(n: usize, at_ms: u64, round: u64) -> Snapshot {
    let vh: Vec<Arc<str>> = VHOSTS.iter().map(|v| Arc::from(*v)).collect();
    let mut s = Snapshot {
        taken_at_ms: at_ms,
        vhosts: vh.clone(),
        ..Default::default()
    };
    for i in 0..n {
        // Out of order, mixed case, ties on most numbers.
        let k = (i * 37) % n;
        let name = if k.is_multiple_of(5) {
            format!("Q-{k:04}")
        } else {
            format!("q-{k:04}")
        };
        let mut arguments = FieldTable::default();
        if k.is_multiple_of(4) {
            arguments.insert("x-max-length".into(), FieldValue::I64((k % 9) as i64));
        }
        let busy = !k.is_multiple_of(3);
        let g = round * (k as u64 % 7);
        s.queues.push(QueueView {
            vhost: vh[k % 3].clone(),
            name: ShortStr::from(name.as_str()),
            durable: k.is_multiple_of(2),
            auto_delete: k.is_multiple_of(7),
            exclusive_owner: None,
            arguments,
            kind: "classic",
            ready: (k as u64 % 11) + g,
            unacked: k as u64 % 3,
            ready_bytes: (k as u64 % 11) * 10,
            consumers: (k % 4) as u32,
            last_used_ms: 1_700_000_000_000,
            stats: if busy {
                QueueStats {
                    publish: 100 + g * 3,
                    deliver: 50 + g,
                    ack: 40 + g,
                    get: k as u64 % 2,
                    redeliver: g / 2,
                    ..Default::default()
                }
            } else {
                QueueStats::default()
            },
        });
    }
    for i in 0..n / 3 {
        let k = (i * 13) % (n / 3);
        s.exchanges.push(ExchangeView {
            vhost: vh[k % 3].clone(),
            name: ShortStr::from(format!("x.{k:03}").as_str()),
            kind: ["direct", "fanout", "topic", "headers"][k % 4],
            durable: k % 2 == 1,
            auto_delete: false,
            internal: k.is_multiple_of(9),
            arguments: FieldTable::default(),
            stats: ExchangeStats {
                publish_in: (k as u64 % 5) * (1 + round * k as u64),
                unroutable: k as u64 % 2,
            },
        });
        s.bindings.push(BindingView {
            vhost: vh[k % 3].clone(),
            source: ShortStr::from(format!("x.{k:03}").as_str()),
            destination: ShortStr::from(format!("q-{:04}", (k * 7) % n).as_str()),
            to_queue: !k.is_multiple_of(6),
            routing_key: ShortStr::from(format!("rk.{}", k % 10).as_str()),
            arguments: FieldTable::default(),
        });
    }
    for i in 0..n / 6 {
        let id = ((i * 7) % (n / 6)) as u64 + 1;
        let peer: SocketAddr = format!("127.0.0.{}:{}", id % 4 + 1, 40_000 + id)
            .parse()
            .unwrap();
        s.connections.push(ConnView {
            id,
            user: if id.is_multiple_of(3) { "bob" } else { "admin" }.into(),
            vhost: vh[id as usize % 3].clone(),
            peer: Some(peer),
            local: Some("127.0.0.1:5672".parse().unwrap()),
            client_properties: Default::default(),
            connected_at_ms: 1_700_000_000_000 + id * 1000,
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat_s: 60,
            auth_mechanism: "PLAIN",
            channels: 2,
            closing: false,
            blocked: id.is_multiple_of(5),
            io: (id * 100 * (1 + round), id, id * 50 * (1 + round * id), id),
        });
        for number in 1..=2u16 {
            s.channels.push(ChannelView {
                conn: id,
                number,
                prefetch_count: (id as u32 % 4) * 10,
                global_prefetch_count: 0,
                unacked: id as u32 % 6,
                unconfirmed: 0,
                confirm: number == 2,
                transactional: false,
                uncommitted: 0,
                consumers: u32::from(number),
                closing: false,
                stats: if id.is_multiple_of(2) {
                    ChannelStats {
                        publish: id * (1 + round * id),
                        deliver: id,
                        ack: id / 2,
                        ..Default::default()
                    }
                } else {
                    ChannelStats::default()
                },
            });
            s.consumers.push(ConsumerView {
                conn: id,
                channel: number,
                tag: ShortStr::from(format!("ctag-{id}-{number}").as_str()),
                vhost: vh[id as usize % 3].clone(),
                queue: ShortStr::from(format!("q-{:04}", id as usize % n).as_str()),
                ack_required: number == 1,
                prefetch: 10,
                exclusive: false,
                priority: 0,
                active: true,
            });
        }
    }
    s
}

pub(crate) fn app(n: usize) -> App {
    let stats = Arc::new(Stats::default());
    stats.publish(snapshot(n, 1_000_000, 0));
    stats.publish(snapshot(n, 1_005_000, 1));
    App {
        config: MgmtConfig::default(),
        core: Arc::new(NoCore),
        stats,
        listeners: Vec::new(),
        permits: tokio::sync::Semaphore::new(1),
        node: "rabbit@test".into(),
        started: std::time::Instant::now(),
        cluster_id: "rabbitmq-cluster-id-test".into(),
        shovels: Default::default(),
    }
}

pub(crate) fn req(path: &str, query: &str, user: &str, vhosts: Option<Vec<String>>) -> Req {
    let query: HashMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let tags = if vhosts.is_none() {
        vec!["administrator".to_string()]
    } else {
        vec!["management".to_string()]
    };
    Req {
        method: axum::http::Method::GET,
        seg: path.split('/').map(String::from).collect(),
        raw_path: format!("/api/{path}"),
        query,
        headers: Default::default(),
        body: Default::default(),
        user: user.into(),
        tags,
        vhosts,
    }
}

fn bytes(r: axum::response::Response) -> bytes::Bytes {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(axum::body::to_bytes(r.into_body(), usize::MAX))
        .unwrap()
}

pub(crate) fn body(r: axum::response::Response) -> Value {
    serde_json::from_slice(&bytes(r)).unwrap()
}

// ---- the reference: every item's JSON first, then the query on the JSON ----

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn pick(v: &Value, columns: &[&str]) -> Value {
    let mut out = json!({});
    for c in columns {
        let Some(found) = at(v, c) else { continue };
        let mut slot = &mut out;
        let parts: Vec<&str> = c.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                slot[*p] = found.clone();
            } else {
                if !slot.get(*p).is_some_and(Value::is_object) {
                    slot[*p] = json!({});
                }
                slot = &mut slot[*p];
            }
        }
    }
    out
}

fn sort_key(v: &Value) -> (u8, f64, String) {
    match v {
        Value::Number(n) => (0, n.as_f64().unwrap_or(0.0), String::new()),
        Value::String(s) => (1, 0.0, s.to_lowercase()),
        Value::Bool(b) => (0, f64::from(u8::from(*b)), String::new()),
        _ => (0, 0.0, String::new()),
    }
}

fn reference_respond(req: &Req, mut items: Vec<Value>) -> Value {
    if let Some(vs) = &req.vhosts {
        items.retain(|i| {
            // A consumer's vhost is its queue's.
            i.get("vhost")
                .or_else(|| i.pointer("/queue/vhost"))
                .and_then(Value::as_str)
                .is_none_or(|v| vs.iter().any(|x| x == v))
        });
    }
    let monitor = req
        .tags
        .iter()
        .any(|t| t == "administrator" || t == "monitoring");
    if !monitor {
        items.retain(|i| {
            i.get("user")
                .and_then(Value::as_str)
                .is_none_or(|u| u == req.user)
        });
    }
    if let Some(field) = req.query.get("sort").filter(|s| !s.is_empty()) {
        items.sort_by(|a, b| {
            let (ka, kb) = (
                sort_key(at(a, field).unwrap_or(&Value::Null)),
                sort_key(at(b, field).unwrap_or(&Value::Null)),
            );
            ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal)
        });
        if req.flag("sort_reverse") {
            items.reverse();
        }
    }
    let columns: Option<Vec<&str>> = req
        .query
        .get("columns")
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect());
    let trim = |items: Vec<Value>| -> Vec<Value> {
        match &columns {
            Some(c) => items.iter().map(|v| pick(v, c)).collect(),
            None => items,
        }
    };
    let Some(page) = req.query.get("page") else {
        return Value::Array(trim(items));
    };
    let page: usize = page.parse().unwrap();
    let page_size = req
        .query
        .get("page_size")
        .map_or(100, |s| s.parse().unwrap());
    let total = items.len();
    if let Some(name) = req.query.get("name").filter(|n| !n.is_empty()) {
        if req.flag("use_regex") {
            let re = regex::RegexBuilder::new(name)
                .case_insensitive(true)
                .build()
                .unwrap();
            items.retain(|v| v["name"].as_str().is_some_and(|n| re.is_match(n)));
        } else {
            let needle = name.to_lowercase();
            items.retain(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.to_lowercase().contains(&needle))
            });
        }
    }
    let filtered = items.len();
    let page_count = filtered.div_ceil(page_size);
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    let items = trim(items);
    json!({
        "filtered_count": filtered, "item_count": items.len(), "items": items, "page": page,
        "page_count": page_count, "page_size": page_size, "total_count": total,
    })
}

fn by_vhost_and_name(v: &mut [Value]) {
    v.sort_by(|a, b| {
        (a["vhost"].as_str(), a["name"].as_str()).cmp(&(b["vhost"].as_str(), b["name"].as_str()))
    });
}

/// Every item of `path` as the API built it before (all of them, eagerly).
fn reference_items(app: &App, req: &Req) -> Vec<Value> {
    let p = app.stats.load();
    let (s, before) = (&*p.now, &p.prev);
    let r = Rates::of(s, before.snapshot());
    let stats = !req.flag("disable_stats");
    let seg: Vec<&str> = req.seg.iter().map(String::as_str).collect();
    let conn = |id: u64| s.connections.iter().find(|c| c.id == id);
    let chans = |keep: &dyn Fn(&ChannelView) -> bool| -> Vec<Value> {
        s.channels
            .iter()
            .filter(|ch| keep(ch))
            .filter_map(|ch| {
                let c = conn(ch.conn)?;
                Some(views::channel(
                    ch,
                    c,
                    &app.node,
                    &r,
                    before.channel(ch.conn, ch.number),
                ))
            })
            .collect()
    };
    let queues = |vhost: Option<&str>| -> Vec<Value> {
        let totals = req.flag("enable_queue_totals");
        let mut v: Vec<Value> = s
            .queues
            .iter()
            .filter(|q| vhost.is_none_or(|v| &*q.vhost == v))
            .map(|q| {
                let mut j = views::queue(q, &app.node, stats, &r, before.queue(q));
                if !stats && totals {
                    j["messages"] = json!(q.ready + q.unacked);
                    j["messages_ready"] = json!(q.ready);
                    j["messages_unacknowledged"] = json!(q.unacked);
                }
                j
            })
            .collect();
        by_vhost_and_name(&mut v);
        v
    };
    let exchanges = |vhost: Option<&str>| -> Vec<Value> {
        let mut v: Vec<Value> = s
            .exchanges
            .iter()
            .filter(|x| vhost.is_none_or(|v| &*x.vhost == v))
            .map(|x| views::exchange(x, stats, &r, before.exchange(x)))
            .collect();
        by_vhost_and_name(&mut v);
        v
    };
    let conns = |vhost: Option<&str>| -> Vec<Value> {
        s.connections
            .iter()
            .filter(|c| vhost.is_none_or(|v| &*c.vhost == v))
            .map(|c| views::connection(c, &app.node, &r, before.conn(c.id)))
            .collect()
    };
    let bindings = |vhost: Option<&str>| -> Vec<Value> {
        let mut items: Vec<Value> = s
            .queues
            .iter()
            .filter(|q| vhost.is_none_or(|v| &*q.vhost == v))
            .map(views::default_binding)
            .collect();
        items.extend(
            s.bindings
                .iter()
                .filter(|b| vhost.is_none_or(|v| &*b.vhost == v))
                .map(views::binding),
        );
        items
    };
    let consumers = |vhost: Option<&str>| -> Vec<Value> {
        s.consumers.iter().filter(|k| vhost.is_none_or(|v| &*k.vhost == v)).map(|k| {
            let details = conn(k.conn).map_or(json!({}), |c| {
                let cname = views::conn_name(c);
                json!({ "number": k.channel, "name": format!("{cname} ({})", k.channel), "connection_name": cname, "node": app.node,
                        "peer_host": c.peer.map(|p| p.ip().to_string()), "peer_port": c.peer.map(|p| p.port()), "user": c.user })
            });
            json!({
                "consumer_tag": k.tag.as_str(), "active": k.active, "activity_status": if k.active { "up" } else { "waiting" },
                "ack_required": k.ack_required, "prefetch_count": k.prefetch, "exclusive": k.exclusive,
                "arguments": if k.priority != 0 { json!({"x-priority": k.priority}) } else { json!({}) },
                "consumer_timeout": 1_800_000u64, "queue": { "name": k.queue.as_str(), "vhost": &*k.vhost }, "channel_details": details,
            })
        }).collect()
    };
    match seg.as_slice() {
        ["queues"] => queues(None),
        ["queues", v] => queues(Some(v)),
        ["exchanges"] => exchanges(None),
        ["exchanges", v] => exchanges(Some(v)),
        ["connections"] => conns(None),
        ["vhosts", v, "connections"] => conns(Some(v)),
        ["channels"] => chans(&|_| true),
        ["vhosts", v, "channels"] => chans(&|ch| conn(ch.conn).is_some_and(|c| &*c.vhost == *v)),
        ["connections", name, "channels"] => {
            let id = s
                .connections
                .iter()
                .find(|c| views::conn_name(c) == *name)
                .unwrap()
                .id;
            chans(&|ch| ch.conn == id)
        }
        ["bindings"] => bindings(None),
        ["bindings", v] => bindings(Some(v)),
        ["consumers"] => consumers(None),
        ["consumers", v] => consumers(Some(v)),
        ["exchanges", v, x, "bindings", "source"] => s
            .bindings
            .iter()
            .filter(|b| &*b.vhost == *v && b.source.as_str() == *x)
            .map(views::binding)
            .collect(),
        ["queues", v, q, "bindings"] => {
            let qv = s
                .queues
                .iter()
                .find(|x| &*x.vhost == *v && x.name.as_str() == *q)
                .unwrap();
            let mut items = vec![views::default_binding(qv)];
            items.extend(
                s.bindings
                    .iter()
                    .filter(|b| &*b.vhost == *v && b.to_queue && b.destination.as_str() == *q)
                    .map(views::binding),
            );
            items
        }
        other => panic!("no reference for {other:?}"),
    }
}

const QUERIES: &[&str] = &[
    "",
    "page=1",
    "page=2&page_size=50",
    "page=1&page_size=40&sort=messages",
    "page=2&page_size=30&sort=message_stats.publish_details.rate&sort_reverse=true",
    "page=1&page_size=30&sort=message_stats.deliver_get_details.rate",
    "page=1&page_size=25&sort=recv_oct_details.rate&sort_reverse=true",
    "page=1&page_size=25&sort=send_oct",
    "page=1&page_size=20&sort=message_stats.publish_in_details.rate&sort_reverse=true",
    "page=1&page_size=20&sort=message_stats.publish",
    "page=1&sort=name&columns=name,vhost,messages,message_stats.publish_details.rate",
    "sort=name&sort_reverse=true&columns=name,vhost",
    "sort=vhost",
    "page=1&page_size=10&name=q-00",
    "page=1&page_size=10&name=^Q-0.*[05]$&use_regex=true&sort=consumers",
    "page=3&page_size=7&sort=consumers&sort_reverse=true",
    "page=100&page_size=10",
    "page=1&page_size=15&sort=arguments.x-max-length&sort_reverse=true",
    "page=1&page_size=15&sort=channel_details.name",
    "page=1&page_size=15&sort=queue.name&columns=consumer_tag,queue.name",
    "page=1&page_size=15&sort=connection_details.peer_port",
    "page=1&page_size=15&sort=routing_key&sort_reverse=true",
    "page=1&page_size=15&sort=destination",
    "page=1&page_size=15&sort=properties_key",
    "page=1&page_size=12&sort=state&sort_reverse=true",
    "page=1&page_size=12&sort=prefetch_count",
    "page=1&page_size=12&sort=type",
    "page=1&page_size=12&sort=durable",
    "page=1&page_size=12&sort=idle_since",
    "page=1&page_size=12&sort=nonexistent.key&sort_reverse=true",
    "page=1&page_size=12&sort=messages&disable_stats=true",
    "page=1&page_size=12&sort=messages_ready&disable_stats=true&enable_queue_totals=true",
    "disable_stats=true&sort=message_stats.publish_in",
];

fn paths(app: &App) -> Vec<String> {
    let p = app.stats.load();
    let c = views::conn_name(&p.now.connections[0]);
    let q = p.now.bindings[1].destination.to_string();
    let v = &p.now.bindings[1].vhost;
    let enc = |s: &str| s.to_string();
    vec![
        "queues".into(),
        "queues/v1".into(),
        "exchanges".into(),
        "exchanges/v2".into(),
        "connections".into(),
        "vhosts/v1/connections".into(),
        "channels".into(),
        "vhosts/v2/channels".into(),
        format!("connections/{}/channels", enc(&c)),
        "bindings".into(),
        "bindings/v1".into(),
        "consumers".into(),
        "consumers/v2".into(),
        format!("exchanges/{v}/x.001/bindings/source"),
        format!("queues/{v}/{q}/bindings"),
    ]
}

#[test]
fn lists_match_the_eager_reference() {
    let app = app(300);
    let users: [(&str, Option<Vec<String>>); 2] = [
        ("admin", None),
        ("bob", Some(vec!["v1".to_string(), "v2".to_string()])),
    ];
    let mut compared = 0;
    for path in paths(&app) {
        for q in QUERIES {
            for (user, vhosts) in &users {
                let r = req(&path, q, user, vhosts.clone());
                let got = body(crate::routes::route(&app, &r));
                let want = reference_respond(&r, reference_items(&app, &r));
                assert_eq!(got, want, "GET /api/{path}?{q} as {user}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 15 * QUERIES.len() * 2);
}

#[test]
fn the_fixture_has_rates_ties_and_hidden_objects() {
    // Anti-vacuity: the comparison above means something only if sorting
    // by rates reorders, and restricted users see less.
    let app = app(300);
    let r = req(
        "queues",
        "page=1&page_size=500&sort=message_stats.publish_details.rate",
        "admin",
        None,
    );
    let v = body(crate::routes::route(&app, &r));
    let rates: Vec<f64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            q["message_stats"]["publish_details"]["rate"]
                .as_f64()
                .unwrap_or(0.0)
        })
        .collect();
    assert_eq!(rates.len(), 300);
    assert!(rates.windows(2).all(|w| w[0] <= w[1]));
    assert!(rates.last().copied().unwrap_or(0.0) > 0.0);
    let bob = req("connections", "", "bob", Some(vec!["/".into()]));
    let n = body(crate::routes::route(&app, &bob))
        .as_array()
        .unwrap()
        .len();
    assert!(n > 0 && n < 50, "bob sees {n} of 50 connections");
}

/// `cargo test -p mgmt --release -- --ignored --nocapture timing`:
/// 10,000 queues, one page, unpaged, and sorted by a rate.
#[test]
#[ignore]
fn timing_10k_queues() {
    let app = app(10_000);
    for q in [
        "page=1&page_size=100",
        "page=1&page_size=100&sort=message_stats.publish_details.rate&sort_reverse=true",
        "page=50&page_size=100&sort=name&name=q-1",
        "",
    ] {
        let r = req("queues", q, "admin", None);
        let t = std::time::Instant::now();
        let n = bytes(crate::routes::route(&app, &r)).len();
        eprintln!("/api/queues?{q}: {:?} ({n} bytes)", t.elapsed());
    }
}

/// Every leaf path of `v` (dotted), with its parents.
fn paths_of(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(p.clone());
            paths_of(x, &p, out);
        }
    }
}

/// Each key a row knows equals the key read from its JSON, on every path
/// any row of its kind has (so also where this row lacks the field).
fn keys_agree<R: crate::list::Row>(rows: &[R]) -> usize {
    let mut all = std::collections::BTreeSet::new();
    let jsons: Vec<Value> = rows.iter().map(|r| r.json()).collect();
    for j in &jsons {
        paths_of(j, "", &mut all);
    }
    all.insert("message_stats.publish_details.rate".into());
    all.insert("no.such.field".into());
    let mut known = 0;
    for (r, j) in rows.iter().zip(&jsons) {
        for p in &all {
            if let Some(k) = r.key(p) {
                assert_eq!(k, crate::list::key_at(j, p), "{p} of {j}");
                known += 1;
            }
        }
        let name = j.get("name").and_then(Value::as_str);
        assert_eq!(r.name().as_deref(), name);
        let vhost = j.get("vhost").or_else(|| j.pointer("/queue/vhost"));
        assert_eq!(r.vhost(), vhost.and_then(Value::as_str));
        assert_eq!(r.user(), j.get("user").and_then(Value::as_str));
    }
    known
}

#[test]
fn row_keys_agree_with_their_json() {
    use crate::rows;
    let app = app(300);
    let p = app.stats.load();
    let (s, before) = (&*p.now, &p.prev);
    let r = Rates::of(s, before.snapshot());
    for (stats, totals) in [(true, false), (false, false), (false, true)] {
        let cx = rows::Ctx {
            node: &app.node,
            r: &r,
            before,
            stats,
            totals,
            samples: None,
        };
        let known = [
            keys_agree(&rows::queues(s, &cx, None)),
            keys_agree(&rows::exchanges(s, &cx, None)),
            keys_agree(&rows::conns(s, &cx, None)),
            keys_agree(&rows::chans(s, &cx, |_, _| true)),
            keys_agree(&rows::consumers(s, &app.node, None)),
            keys_agree(&rows::bindings(s, None)),
        ];
        // Anti-vacuity: most keys come from the snapshot.
        assert!(known.iter().all(|n| *n > 300), "{known:?}");
    }
}
