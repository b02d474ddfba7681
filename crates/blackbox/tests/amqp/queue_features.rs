//! Queue arguments (RabbitMQ extensions): TTLs, dead-lettering with x-death,
//! length limits and overflow, x-expires; the retry-with-backoff pattern
//! built from them; direct reply-to.

use std::time::{Duration, Instant};

use lapin::message::BasicGetMessage;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};

use crate::harness::*;

fn table(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(k.into(), v);
    }
    t
}

fn long(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Declare an exclusive (so self-cleaning) queue with arguments.
async fn xq(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(
        name,
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

/// An auto-delete direct exchange with `q` bound to it by `key`.
async fn dlx(ch: &Channel, ex: &str, q: &str, key: &str) {
    ch.exchange_declare(
        ex,
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(q, ex, key, Default::default(), FieldTable::default())
        .await
        .unwrap();
}

async fn pub_props(ch: &Channel, ex: &str, key: &str, body: &str, props: BasicProperties) {
    ch.basic_publish(
        ex,
        key,
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await
    .unwrap();
}

async fn get(ch: &Channel, q: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(q, BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
}

/// Poll with basic.get until a message arrives (dead-lettering is async).
async fn wait_get(ch: &Channel, q: &str) -> BasicGetMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = get(ch, q).await {
            return m;
        }
        assert!(Instant::now() < deadline, "no message arrived on {q}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn body(m: &BasicGetMessage) -> String {
    String::from_utf8(m.delivery.data.clone()).unwrap()
}

fn bodies(ms: &[BasicGetMessage]) -> Vec<String> {
    ms.iter().map(body).collect()
}

async fn get_all(ch: &Channel, q: &str) -> Vec<BasicGetMessage> {
    let mut v = Vec::new();
    while let Some(m) = get(ch, q).await {
        v.push(m);
    }
    v
}

fn header<'a>(m: &'a BasicGetMessage, k: &str) -> Option<&'a AMQPValue> {
    m.delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(k))
}

fn x_death(m: &BasicGetMessage) -> Vec<FieldTable> {
    match header(m, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death element is not a table: {other:?}"),
            })
            .collect(),
        other => panic!("x-death missing or not an array: {other:?}"),
    }
}

/// Checks one x-death entry exactly as RabbitMQ 3.10 writes it.
fn check_death(
    t: &FieldTable,
    count: i64,
    reason: &str,
    queue: &str,
    exchange: &str,
    keys: &[&str],
) {
    let f = t.inner();
    assert_eq!(f.get("count"), Some(&long(count)), "x-death count in {t:?}");
    assert_eq!(
        f.get("reason"),
        Some(&text(reason)),
        "x-death reason in {t:?}"
    );
    assert_eq!(f.get("queue"), Some(&text(queue)), "x-death queue in {t:?}");
    assert_eq!(
        f.get("exchange"),
        Some(&text(exchange)),
        "x-death exchange in {t:?}"
    );
    let want_keys = AMQPValue::FieldArray(FieldArray::from(
        keys.iter().map(|k| text(k)).collect::<Vec<_>>(),
    ));
    assert_eq!(
        f.get("routing-keys"),
        Some(&want_keys),
        "x-death routing-keys in {t:?}"
    );
    assert!(
        matches!(f.get("time"), Some(AMQPValue::Timestamp(_))),
        "x-death time must be a timestamp: {t:?}"
    );
}

fn check_first_death(m: &BasicGetMessage, reason: &str, queue: &str, exchange: &str) {
    assert_eq!(header(m, "x-first-death-reason"), Some(&text(reason)));
    assert_eq!(header(m, "x-first-death-queue"), Some(&text(queue)));
    assert_eq!(header(m, "x-first-death-exchange"), Some(&text(exchange)));
}

#[tokio::test]
async fn message_ttl_expires_messages() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let short = uniq("ttl-short");
    let long_q = uniq("ttl-long");
    xq(&ch, &short, table(vec![("x-message-ttl", long(100))])).await;
    xq(&ch, &long_q, table(vec![("x-message-ttl", long(60_000))])).await;
    for q in [&short, &long_q] {
        publish_confirmed(&conn, "", q, &["m"]).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        get(&ch, &short).await.is_none(),
        "message outlived x-message-ttl"
    );
    assert_eq!(
        body(&get(&ch, &long_q).await.expect("unexpired message")),
        "m"
    );
    // x-message-ttl = 0: delivered only if a consumer can take it at once.
    let zero = uniq("ttl-zero");
    xq(&ch, &zero, table(vec![("x-message-ttl", long(0))])).await;
    publish_confirmed(&conn, "", &zero, &["z"]).await;
    assert!(get(&ch, &zero).await.is_none(), "ttl 0 message was kept");
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn per_message_expiration() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("expiration");
    xq(&ch, &q, FieldTable::default()).await;
    let p = BasicProperties::default();
    pub_props(
        &ch,
        "",
        &q,
        "short",
        p.clone().with_expiration("100".into()),
    )
    .await;
    pub_props(&ch, "", &q, "keep", p.clone()).await;
    pub_props(
        &ch,
        "",
        &q,
        "long",
        p.clone().with_expiration("60000".into()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = get_all(&ch, &q).await;
    assert_eq!(bodies(&got), ["keep", "long"]);
    // The remaining expiration is passed on to consumers.
    assert_eq!(
        got[1]
            .delivery
            .properties
            .expiration()
            .as_ref()
            .map(|s| s.as_str()),
        Some("60000")
    );
    // The lower of queue TTL and per-message expiration applies.
    let q2 = uniq("expiration-q");
    xq(&ch, &q2, table(vec![("x-message-ttl", long(100))])).await;
    pub_props(&ch, "", &q2, "m", p.with_expiration("60000".into())).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(get(&ch, &q2).await.is_none());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn dead_letter_on_reject() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let work = uniq("dl-work");
    let dead = uniq("dl-dead");
    let ex = uniq("dlx");
    xq(&ch, &dead, FieldTable::default()).await;
    dlx(&ch, &ex, &dead, "dlk").await;
    xq(
        &ch,
        &work,
        table(vec![
            ("x-dead-letter-exchange", text(&ex)),
            ("x-dead-letter-routing-key", text("dlk")),
        ]),
    )
    .await;
    let mut h = FieldTable::default();
    h.insert("app".into(), text("kept"));
    pub_props(
        &ch,
        "",
        &work,
        "r1",
        BasicProperties::default()
            .with_headers(h)
            .with_message_id("id-1".into()),
    )
    .await;
    // requeue=true does not dead-letter; requeue=false does.
    let m = ch
        .basic_get(&work, BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("message");
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: true },
    )
    .await
    .unwrap();
    let m = ch
        .basic_get(&work, BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("requeued message");
    assert!(m.delivery.redelivered);
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    let d = wait_get(&ch, &dead).await;
    assert_eq!(body(&d), "r1");
    assert_eq!(d.delivery.exchange.as_str(), ex);
    assert_eq!(d.delivery.routing_key.as_str(), "dlk");
    assert!(!d.delivery.redelivered);
    assert_eq!(
        d.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("id-1")
    );
    assert_eq!(header(&d, "app"), Some(&text("kept")));
    let deaths = x_death(&d);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    check_death(&deaths[0], 1, "rejected", &work, "", &[&work]);
    check_first_death(&d, "rejected", &work, "");
    assert!(get(&ch, &work).await.is_none());

    // basic.nack(requeue=false) dead-letters too.
    pub_props(&ch, "", &work, "r2", BasicProperties::default()).await;
    let m = wait_get_ack(&ch, &work).await;
    ch.basic_nack(
        m.delivery.delivery_tag,
        BasicNackOptions {
            requeue: false,
            multiple: false,
        },
    )
    .await
    .unwrap();
    let d = wait_get(&ch, &dead).await;
    assert_eq!(body(&d), "r2");
    check_death(&x_death(&d)[0], 1, "rejected", &work, "", &[&work]);
    conn.close(200, "bye").await.unwrap();
}

async fn wait_get_ack(ch: &Channel, q: &str) -> BasicGetMessage {
    within(
        "basic.get",
        ch.basic_get(q, BasicGetOptions { no_ack: false }),
    )
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no message on {q}"))
}

#[tokio::test]
async fn dead_letter_on_expiry() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("dlx-exp");
    let dead = uniq("exp-dead");
    let ttlq = uniq("exp-ttl");
    let plain = uniq("exp-plain");
    xq(&ch, &dead, FieldTable::default()).await;
    dlx(&ch, &ex, &dead, "dead").await;
    // Queue TTL; no x-dead-letter-routing-key: the original key is kept.
    xq(
        &ch,
        &ttlq,
        table(vec![
            ("x-message-ttl", long(50)),
            ("x-dead-letter-exchange", text(&ex)),
        ]),
    )
    .await;
    ch.queue_bind(&dead, &ex, &ttlq, Default::default(), FieldTable::default())
        .await
        .unwrap();
    pub_props(&ch, "", &ttlq, "e1", BasicProperties::default()).await;
    let d = wait_get(&ch, &dead).await;
    assert_eq!(body(&d), "e1");
    assert_eq!(d.delivery.routing_key.as_str(), ttlq);
    let deaths = x_death(&d);
    assert_eq!(deaths.len(), 1);
    check_death(&deaths[0], 1, "expired", &ttlq, "", &[&ttlq]);
    check_first_death(&d, "expired", &ttlq, "");

    // Per-message expiration: x-death records original-expiration and the
    // dead-lettered copy no longer has an expiration.
    xq(
        &ch,
        &plain,
        table(vec![
            ("x-dead-letter-exchange", text(&ex)),
            ("x-dead-letter-routing-key", text("dead")),
        ]),
    )
    .await;
    pub_props(
        &ch,
        "",
        &plain,
        "e2",
        BasicProperties::default().with_expiration("50".into()),
    )
    .await;
    let d = wait_get(&ch, &dead).await;
    assert_eq!(body(&d), "e2");
    assert_eq!(d.delivery.routing_key.as_str(), "dead");
    assert_eq!(d.delivery.properties.expiration(), &None);
    let deaths = x_death(&d);
    check_death(&deaths[0], 1, "expired", &plain, "", &[&plain]);
    assert_eq!(
        deaths[0].inner().get("original-expiration"),
        Some(&text("50"))
    );
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn max_length_drop_head_dead_letters() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("dlx-max");
    let dead = uniq("max-dead");
    let q = uniq("max");
    xq(&ch, &dead, FieldTable::default()).await;
    dlx(&ch, &ex, &dead, "over").await;
    xq(
        &ch,
        &q,
        table(vec![
            ("x-max-length", long(2)),
            ("x-dead-letter-exchange", text(&ex)),
            ("x-dead-letter-routing-key", text("over")),
        ]),
    )
    .await;
    publish_confirmed(&conn, "", &q, &["m1", "m2", "m3", "m4"]).await;
    assert_eq!(bodies(&get_all(&ch, &q).await), ["m3", "m4"]);
    let d1 = wait_get(&ch, &dead).await;
    let d2 = wait_get(&ch, &dead).await;
    assert_eq!((body(&d1), body(&d2)), ("m1".into(), "m2".into()));
    for d in [&d1, &d2] {
        check_death(&x_death(d)[0], 1, "maxlen", &q, "", &[&q]);
        check_first_death(d, "maxlen", &q, "");
    }
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn overflow_reject_publish_nacks() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let ex = uniq("dlx-rp");
    let dead = uniq("rp-dead");
    let q = uniq("rp");
    xq(&ch, &dead, FieldTable::default()).await;
    dlx(&ch, &ex, &dead, "x").await;
    xq(
        &ch,
        &q,
        table(vec![
            ("x-max-length", long(2)),
            ("x-overflow", text("reject-publish")),
            ("x-dead-letter-exchange", text(&ex)),
            ("x-dead-letter-routing-key", text("x")),
        ]),
    )
    .await;
    ch.confirm_select(Default::default()).await.unwrap();
    let mut acks = Vec::new();
    for m in ["a", "b", "c", "d"] {
        let c = ch
            .basic_publish("", &q, Default::default(), m.as_bytes(), Default::default())
            .await
            .unwrap();
        acks.push(within("confirm", c).await.unwrap().is_ack());
    }
    assert_eq!(acks, [true, true, false, false]);
    // The queue keeps the oldest; refused publishes are not dead-lettered.
    assert_eq!(bodies(&get_all(&ch, &q).await), ["a", "b"]);
    assert!(get(&ch, &dead).await.is_none());
    // Room again: accepted.
    let c = ch
        .basic_publish("", &q, Default::default(), b"e", Default::default())
        .await
        .unwrap();
    assert!(within("confirm", c).await.unwrap().is_ack());
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn max_length_bytes_drops_head() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("maxbytes");
    xq(&ch, &q, table(vec![("x-max-length-bytes", long(10))])).await;
    publish_confirmed(&conn, "", &q, &["aaaaa", "bbbbb", "ccccc"]).await;
    assert_eq!(bodies(&get_all(&ch, &q).await), ["bbbbb", "ccccc"]);
    // A single message larger than the limit is dropped at once.
    publish_confirmed(&conn, "", &q, &["0123456789X"]).await;
    assert!(get(&ch, &q).await.is_none());
    // Exactly at the limit fits.
    publish_confirmed(&conn, "", &q, &["0123456789"]).await;
    assert_eq!(bodies(&get_all(&ch, &q).await), ["0123456789"]);
    conn.close(200, "bye").await.unwrap();
}

async fn exists(conn: &lapin::Connection, q: &str) -> bool {
    let ch = conn.create_channel().await.unwrap();
    match ch
        .queue_declare(
            q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
    {
        Ok(_) => {
            ch.close(200, "ok").await.unwrap();
            true
        }
        Err(e) => {
            assert_eq!(amqp_err(&e).0, 404, "{e}");
            false
        }
    }
}

#[tokio::test]
async fn x_expires_deletes_unused_queue() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let q = uniq("expires");
    let used = uniq("expires-used");
    ch.queue_declare(
        &q,
        Default::default(),
        table(vec![("x-expires", long(200))]),
    )
    .await
    .unwrap();
    ch.queue_declare(
        &used,
        Default::default(),
        table(vec![("x-expires", long(200))]),
    )
    .await
    .unwrap();
    // A consumer keeps a queue in use.
    // (Bound to a variable: lapin cancels a consumer when it is dropped.)
    let _keep = ch
        .basic_consume(&used, "keep", Default::default(), FieldTable::default())
        .await
        .unwrap();
    assert!(exists(&conn, &q).await, "deleted too early");
    // A (passive) declare counts as use and restarts the timer, so poll more
    // slowly than x-expires.
    let deadline = Instant::now() + WAIT;
    while exists(&conn, &q).await {
        assert!(Instant::now() < deadline, "x-expires queue not deleted");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(exists(&conn, &used).await, "queue with a consumer expired");
    ch.basic_cancel("keep", Default::default()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while exists(&conn, &used).await {
        assert!(
            Instant::now() < deadline,
            "queue not deleted after its consumer left"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn retry_with_backoff_via_dead_letter_cycle() {
    let b = broker().await;
    let (conn, ch) = b.channel().await;
    let work = uniq("retry-work");
    let wait = uniq("retry-wait");
    // work --reject--> (default exchange, key=wait) --> wait --ttl--> (key=work) --> work
    xq(
        &ch,
        &work,
        table(vec![
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&wait)),
        ]),
    )
    .await;
    xq(
        &ch,
        &wait,
        table(vec![
            ("x-message-ttl", long(100)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&work)),
        ]),
    )
    .await;
    let mut consumer = ch
        .basic_consume(&work, "worker", Default::default(), FieldTable::default())
        .await
        .unwrap();
    pub_props(&ch, "", &work, "job", BasicProperties::default()).await;
    let mut last = Instant::now();
    for attempt in 1..=3i64 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, b"job");
        let headers = d.properties.headers().clone().unwrap_or_default();
        if attempt == 1 {
            assert!(headers.inner().get("x-death").is_none());
        } else {
            // Each trip through the wait queue takes at least its TTL.
            assert!(last.elapsed() >= Duration::from_millis(90), "no backoff");
            let deaths: Vec<FieldTable> = match headers.inner().get("x-death") {
                Some(AMQPValue::FieldArray(a)) => a
                    .as_slice()
                    .iter()
                    .map(|v| match v {
                        AMQPValue::FieldTable(t) => t.clone(),
                        o => panic!("{o:?}"),
                    })
                    .collect(),
                other => panic!("x-death: {other:?}"),
            };
            assert_eq!(deaths.len(), 2, "one entry per (queue, reason): {deaths:?}");
            // Most recent death first: expired from the wait queue.
            check_death(&deaths[0], attempt - 1, "expired", &wait, "", &[&wait]);
            check_death(&deaths[1], attempt - 1, "rejected", &work, "", &[&work]);
            assert_eq!(
                headers.inner().get("x-first-death-reason"),
                Some(&text("rejected"))
            );
            assert_eq!(
                headers.inner().get("x-first-death-queue"),
                Some(&text(&work))
            );
        }
        last = Instant::now();
        if attempt < 3 {
            d.reject(BasicRejectOptions { requeue: false })
                .await
                .unwrap();
        } else {
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    no_delivery(&mut consumer).await;
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn direct_reply_to_rpc() {
    let b = broker().await;
    let (conn, client) = b.channel().await;
    let server = conn.create_channel().await.unwrap();
    let rpc = uniq("rpc");
    xq(&server, &rpc, FieldTable::default()).await;
    let mut requests = server
        .basic_consume(&rpc, "srv", Default::default(), FieldTable::default())
        .await
        .unwrap();
    // The client must consume from the pseudo-queue in no-ack mode first.
    let mut replies = client
        .basic_consume(
            "amq.rabbitmq.reply-to",
            "cli",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..3 {
        pub_props(
            &client,
            "",
            &rpc,
            &format!("req{i}"),
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id(format!("c{i}").into()),
        )
        .await;
        let req = next_delivery(&mut requests).await;
        let reply_to = req
            .properties
            .reply_to()
            .as_ref()
            .expect("reply_to set")
            .to_string();
        assert!(
            reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > 22,
            "server sees a routable reply address, got {reply_to}"
        );
        req.ack(Default::default()).await.unwrap();
        pub_props(
            &server,
            "",
            &reply_to,
            &format!("resp{i}"),
            BasicProperties::default().with_correlation_id(format!("c{i}").into()),
        )
        .await;
        let resp = next_delivery(&mut replies).await;
        assert_eq!(resp.data, format!("resp{i}").as_bytes());
        assert_eq!(
            resp.properties
                .correlation_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some(format!("c{i}").as_str())
        );
    }
    // A bogus reply address is silently dropped (not an error).
    pub_props(
        &server,
        "",
        "amq.rabbitmq.reply-to.bogus",
        "x",
        BasicProperties::default(),
    )
    .await;
    server.basic_qos(0, Default::default()).await.unwrap();
    no_delivery(&mut replies).await;
    conn.close(200, "bye").await.unwrap();
}
