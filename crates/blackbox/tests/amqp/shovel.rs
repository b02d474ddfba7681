//! Dynamic shovels (warren only: the tests SIGKILL and restart brokers).
//! Two warren processes: A with a shovel (a `shovel` parameter) from its
//! queue to B's exchange. Everything A confirmed reaches B at least once
//! through B crashing and A crashing mid-forwarding; DELETE stops it;
//! bad values are refused with RabbitMQ's texts; a definitions import
//! starts one (both ends `amqp://`: this node, in-process).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ExchangeKind};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{external_broker, uniq};
use crate::node::{connect_retry, Node};

const WAIT: Duration = Duration::from_secs(60);

/// A node with the management API on a free port; (node, API base URL).
async fn node_with_api() -> (Node, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port().to_string()
    };
    let node = Node::start(&["--management-port", &port]).await;
    let api = format!("http://127.0.0.1:{port}/api");
    wait_api(&api).await;
    (node, api)
}

async fn wait_api(api: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::Client::new()
            .get(format!("{api}/overview"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
        if matches!(r, Ok(ref r) if r.status() == StatusCode::OK) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "management API at {api} did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(method: Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .basic_auth("guest", Some("guest"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("HTTP request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Publishes `m{from}..m{to}` persistent to queue `q`, waiting for every confirm.
async fn publish(conn: &Connection, q: &str, from: usize, to: usize) {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirm");
    let mut pending = Vec::new();
    for i in from..to {
        let props = BasicProperties::default().with_delivery_mode(2);
        let body = format!("m{i}");
        let c = ch
            .basic_publish("", q, Default::default(), body.as_bytes(), props)
            .await
            .expect("publish");
        pending.push(c);
    }
    for c in pending {
        assert!(c.await.expect("confirm").is_ack(), "publish nacked");
    }
}

/// Copies seen at B: body → (copies, copies flagged `x-shovel-redelivered`).
type Seen = HashMap<String, (u32, u32)>;

/// Consumes `q` at `url` into `seen` until every `m0..m{n}` arrived (then
/// `linger` more, for trailing duplicates).
async fn drain(url: &str, q: &str, n: usize, seen: &mut Seen, linger: Duration) {
    let conn = connect_retry(url, WAIT).await;
    let ch = conn.create_channel().await.expect("channel");
    let mut c = ch
        .basic_consume(q, &uniq("drain"), Default::default(), FieldTable::default())
        .await
        .expect("consume");
    let deadline = Instant::now() + WAIT;
    let mut done_at: Option<Instant> = None;
    loop {
        let complete = (0..n).all(|i| seen.contains_key(&format!("m{i}")));
        if complete && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|t| t.elapsed() >= linger) {
            break;
        }
        let missing = (0..n)
            .filter(|i| !seen.contains_key(&format!("m{i}")))
            .count();
        assert!(
            Instant::now() < deadline,
            "{missing} of {n} never reached B"
        );
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(200), c.next()).await else {
            continue;
        };
        let d = d.expect("delivery");
        let flagged = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-shovel-redelivered").cloned())
            == Some(AMQPValue::Boolean(true));
        let e = seen
            .entry(String::from_utf8_lossy(&d.data).into_owned())
            .or_default();
        e.0 += 1;
        e.1 += u32::from(flagged);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let _ = conn.close(200, "").await;
}

/// Messages ready (not delivered) in `q`.
async fn ready(conn: &Connection, q: &str) -> u32 {
    let ch = conn.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let ok = ch
        .queue_declare(q, passive, FieldTable::default())
        .await
        .expect("passive declare");
    let _ = ch.close(200, "").await;
    ok.message_count()
}

async fn shovel_rows(api: &str) -> Vec<Value> {
    let (s, v) = call(Method::GET, &format!("{api}/shovels"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

async fn wait_state(api: &str, name: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = shovel_rows(api).await;
        if let Some(r) = rows
            .iter()
            .find(|r| r["name"] == name && r["state"] == state)
        {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "shovel {name} never {state}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_shovel_survives_both_ends_crashing() {
    if external_broker() {
        return;
    }
    let mut b = Node::start(&[]).await;
    let (mut a, api) = node_with_api().await;
    let (outbox, inbox, x) = (uniq("outbox"), uniq("inbox"), uniq("sx"));
    {
        let bc = connect_retry(&b.url(), WAIT).await;
        let ch = bc.create_channel().await.expect("channel");
        let xo = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(&x, ExchangeKind::Direct, xo, FieldTable::default())
            .await
            .expect("exchange");
        ch.queue_declare(&inbox, durable(), FieldTable::default())
            .await
            .expect("queue");
        ch.queue_bind(&inbox, &x, "k", Default::default(), FieldTable::default())
            .await
            .expect("bind");
        let _ = bc.close(200, "").await;
    }
    let ac = connect_retry(&a.url(), WAIT).await;
    let ch = ac.create_channel().await.expect("channel");
    ch.queue_declare(&outbox, durable(), FieldTable::default())
        .await
        .expect("queue");
    let value = json!({"value": {
        "src-uri": "amqp://", "src-queue": outbox,
        "dest-uri": b.url(), "dest-exchange": x, "dest-exchange-key": "k",
        "reconnect-delay": 0.2, "src-prefetch-count": 50,
    }});
    let put = format!("{api}/parameters/shovel/%2F/s1");
    let (s, v) = call(Method::PUT, &put, Some(value)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let row = wait_state(&api, "s1", "running").await;
    assert_eq!(
        (&row["vhost"], &row["type"]),
        (&json!("/"), &json!("dynamic"))
    );
    assert_eq!(row["src_uri"], "amqp://");
    let dest_uri = row["dest_uri"].as_str().unwrap_or_default();
    assert!(!dest_uri.contains("guest"), "credentials shown: {dest_uri}");
    assert_eq!(row["src_queue"].as_str(), Some(outbox.as_str()));

    // 1. Plain forwarding.
    publish(&ac, &outbox, 0, 200).await;
    // 2. B SIGKILLed mid-forwarding, restarted on the same port.
    //    A publisher keeps A busy (and the shovel forwarding) meanwhile.
    let publisher = {
        let (url, q) = (a.url(), outbox.clone());
        tokio::spawn(async move {
            let conn = connect_retry(&url, WAIT).await;
            for from in (200..1500).step_by(20) {
                publish(&conn, &q, from, from + 20).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Up to 3 crashes of B while the traffic lasts (at least the first).
    let mut kills = 0;
    while kills < 3 && (kills == 0 || !publisher.is_finished()) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            kills > 0 || !publisher.is_finished(),
            "B killed after the traffic ended: proves nothing"
        );
        b.kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.restart().await;
        wait_state(&api, "s1", "running").await;
    }
    let left = ready(&ac, &outbox).await;
    publisher.await.expect("publisher");
    // 3. A SIGKILLed mid-forwarding; the shovel comes back from the stored
    //    parameter.
    publish(&ac, &outbox, 1500, 2500).await;
    // Kill once the shovel is seen taking phase 3's messages.
    let deadline = Instant::now() + WAIT;
    let mut left_a = ready(&ac, &outbox).await;
    while left_a >= 1000 {
        assert!(Instant::now() < deadline, "the shovel does not consume");
        tokio::time::sleep(Duration::from_millis(5)).await;
        left_a = ready(&ac, &outbox).await;
    }
    drop(ac);
    a.kill();
    assert!(
        left_a > 0,
        "A killed after everything was forwarded: proves nothing"
    );
    eprintln!("shovel: killed B {kills} times ({left} ready on A after), A with {left_a} ready");
    a.restart().await;
    wait_api(&api).await;
    wait_state(&api, "s1", "running").await;

    let mut seen = Seen::new();
    drain(&b.url(), &inbox, 2500, &mut seen, Duration::from_secs(1)).await;
    let dups: Vec<_> = seen.iter().filter(|(_, (n, _))| *n > 1).collect();
    let unflagged = dups.iter().filter(|(_, (_, f))| *f == 0).count();
    eprintln!(
        "shovel: 2500 confirmed at A, {} distinct at B, {} duplicated ({} with no copy flagged x-shovel-redelivered)",
        seen.len(),
        dups.len(),
        unflagged
    );
    assert_eq!(seen.len(), 2500, "something other than m0..m2500 arrived");
    assert_eq!(unflagged, 0, "duplicates without x-shovel-redelivered");

    // 4. DELETE stops it: what is published afterwards stays on A.
    let (s, _) = call(Method::DELETE, &put, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + WAIT;
    while !shovel_rows(&api).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "shovel still listed after DELETE"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ac = connect_retry(&a.url(), WAIT).await;
    publish(&ac, &outbox, 2500, 2510).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        ready(&ac, &outbox).await,
        10,
        "the deleted shovel still consumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shovel_values_are_checked_and_definitions_start_one() {
    if external_broker() {
        return;
    }
    let (a, api) = node_with_api().await;
    let url = format!("{api}/parameters/shovel/%2F/bad");
    let cases = [
        (
            json!({"src-uri": "amqp://", "dest-uri": "amqp://"}),
            "Must specify 'src-exchange' or 'src-queue'",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "q"}),
            "Key <<\"dest-uri\">> not found in bad",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://", "dest-queue": "a", "dest-exchange": "b"}),
            "Cannot specify 'dest-exchange' and 'dest-queue'",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://", "ack-mode": "sometimes"}),
            "ack-mode",
        ),
        (
            json!({"src-uri": "http://x", "src-queue": "q", "dest-uri": "amqp://"}),
            "not a valid URI",
        ),
        (
            json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://", "colour": 1}),
            "Unrecognised terms",
        ),
    ];
    for (value, text) in cases {
        let (s, v) = call(Method::PUT, &url, Some(json!({ "value": value }))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{value}: {v}");
        let reason = v["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("Validation failed"), "{reason}");
        assert!(reason.contains(text), "{value}: {reason}");
    }
    assert!(shovel_rows(&api).await.is_empty());
    // A definitions import with a shovel between two queues of this node.
    let (src, dest) = (uniq("imp-src"), uniq("imp-dest"));
    let defs = json!({
        "queues": [
            {"name": src, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}},
            {"name": dest, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}},
        ],
        "parameters": [{"component": "shovel", "vhost": "/", "name": "imp", "value": {
            "src-uri": "amqp://", "src-queue": src, "dest-uri": "amqp://", "dest-queue": dest,
            "add-forward-headers": true,
        }}],
    });
    let (s, v) = call(Method::POST, &format!("{api}/definitions"), Some(defs)).await;
    assert!(s.is_success(), "import: {s} {v}");
    wait_state(&api, "imp", "running").await;
    let ac = connect_retry(&a.url(), WAIT).await;
    publish(&ac, &src, 0, 5).await;
    let mut seen = Seen::new();
    drain(&a.url(), &dest, 5, &mut seen, Duration::ZERO).await;
    assert_eq!(seen.len(), 5);
    // The forward header (RabbitMQ's x-shovelled).
    let ch = ac.create_channel().await.expect("channel");
    publish(&ac, &src, 5, 6).await;
    let deadline = Instant::now() + WAIT;
    let msg = loop {
        if let Some(m) = ch
            .basic_get(&dest, BasicGetOptions { no_ack: true })
            .await
            .expect("get")
        {
            break m;
        }
        assert!(Instant::now() < deadline, "m5 never moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let headers = msg
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let Some(AMQPValue::FieldArray(list)) = headers.inner().get("x-shovelled") else {
        panic!("no x-shovelled header: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(entry)) = list.as_slice().first() else {
        panic!("x-shovelled is not a list of tables: {list:?}");
    };
    let name = entry.inner().get("shovel-name");
    assert!(
        matches!(name, Some(AMQPValue::LongString(s)) if s.to_string() == "imp"),
        "{entry:?}"
    );
}
