//! Durability across restarts: definitions and persistent messages survive a
//! clean restart; transient things do not.
//!
//! Against warren the test starts its own node and restarts it with SIGTERM.
//! Against an external broker (WARREN_TEST_URL) it runs only when
//! WARREN_TEST_RESTART holds a shell command that restarts that broker, e.g.
//! `rabbitmqctl stop_app && rabbitmqctl start_app`.

use std::time::Duration;

use amq_protocol::types::{AMQPValue, FieldTable};
use lapin::options::*;
use lapin::{BasicProperties, Channel, ExchangeKind};

use crate::harness::*;
use crate::node::{connect_retry, Node};
use crate::raw::*;

enum Target {
    Warren(Node),
    External { url: String, restart: String },
}

impl Target {
    async fn new() -> Option<Target> {
        if external_broker() {
            let url = std::env::var("WARREN_TEST_URL").unwrap();
            match std::env::var("WARREN_TEST_RESTART") {
                Ok(cmd) if !cmd.is_empty() => Some(Target::External { url, restart: cmd }),
                _ => {
                    eprintln!("skipped: external broker and no WARREN_TEST_RESTART");
                    None
                }
            }
        } else {
            Some(Target::Warren(Node::start(&[]).await))
        }
    }

    fn broker(&self) -> Broker {
        match self {
            Target::Warren(n) => n.broker(),
            Target::External { url, .. } => Broker::at(url.clone()),
        }
    }

    /// Clean restart. `raw` is an open client connection: the broker must
    /// close it with 320 CONNECTION_FORCED while shutting down.
    async fn clean_restart(&mut self, mut raw: Raw) {
        match self {
            Target::Warren(node) => {
                node.sigterm();
                let close = raw.expect_connection_close().await;
                assert_eq!(close.reply_code, 320, "shutdown close: {close:?}");
                let st = node.wait_exit(Duration::from_secs(15)).await;
                assert!(st.success(), "warren exit status after SIGTERM: {st:?}");
                node.restart().await;
            }
            Target::External { restart, .. } => {
                let mut cmd = std::process::Command::new("sh");
                cmd.args(["-c", restart.as_str()]);
                let child = std::thread::spawn(move || cmd.status());
                let close = raw.expect_connection_close().await;
                assert_eq!(close.reply_code, 320, "shutdown close: {close:?}");
                let st = child.join().unwrap().expect("run restart command");
                assert!(st.success(), "restart command failed: {st:?}");
            }
        }
    }
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn dq() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

/// Publish with confirms; all must be acked.
async fn publish_all(ch: &Channel, ex: &str, key: &str, msgs: &[(&str, BasicProperties)]) {
    for (body, props) in msgs {
        let c = ch
            .basic_publish(
                ex,
                key,
                BasicPublishOptions::default(),
                body.as_bytes(),
                props.clone(),
            )
            .await
            .unwrap();
        assert!(within("confirm", c).await.unwrap().is_ack());
    }
}

/// Drain with basic.get no-ack: (body, redelivered).
async fn drain_flags(ch: &Channel, q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get(q, BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        out.push((
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.redelivered,
        ));
    }
    out
}

/// Whether a queue exists (passive declare on a throwaway channel).
async fn queue_exists(conn: &lapin::Connection, q: &str) -> bool {
    let ch = conn.create_channel().await.unwrap();
    let r = ch
        .queue_declare(
            q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match r {
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

async fn exchange_exists(conn: &lapin::Connection, ex: &str) -> bool {
    let ch = conn.create_channel().await.unwrap();
    let r = ch
        .exchange_declare(
            ex,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match r {
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

fn long_arg(name: &str, v: i64) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(name.into(), AMQPValue::LongLongInt(v));
    t
}

#[tokio::test]
async fn restart_keeps_durable_definitions() {
    let Some(mut target) = Target::new().await else {
        return;
    };
    let b = target.broker();
    let n = uniq("dur");
    let ex_direct = format!("{n}.direct");
    let ex_topic = format!("{n}.topic");
    let ex_fan = format!("{n}.fan");
    let ex_hdr = format!("{n}.hdr");
    let ex_transient = format!("{n}.transient-ex");
    let ex_ad = format!("{n}.autodel-ex");
    let q_main = format!("{n}.main");
    let q_fan = format!("{n}.fanq");
    let q_hdr = format!("{n}.hdrq");
    let q_transient = format!("{n}.transient-q");
    let q_excl = format!("{n}.excl");
    let q_ad_bound = format!("{n}.adbound");
    let q_empty = format!("{n}.empty");

    {
        let (conn, ch) = b.channel().await;
        ch.confirm_select(Default::default()).await.unwrap();
        ch.exchange_declare(
            &ex_direct,
            ExchangeKind::Direct,
            durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            &ex_topic,
            ExchangeKind::Topic,
            durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            &ex_fan,
            ExchangeKind::Fanout,
            durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            &ex_hdr,
            ExchangeKind::Headers,
            durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            &ex_transient,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Durable auto-delete exchange with a binding: survives (it is deleted
        // only when its last binding goes).
        ch.exchange_declare(
            &ex_ad,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

        ch.queue_declare(&q_main, dq(), long_arg("x-max-length", 1000))
            .await
            .unwrap();
        ch.queue_declare(&q_fan, dq(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare(&q_hdr, dq(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare(&q_empty, dq(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare(&q_ad_bound, dq(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare(
            &q_transient,
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Durable *and* exclusive: still gone after a restart.
        ch.queue_declare(
            &q_excl,
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

        ch.queue_bind(
            &q_main,
            &ex_direct,
            "k1",
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Exchange-to-exchange: topic --a.#--> fanout --> q_fan.
        ch.exchange_bind(
            &ex_fan,
            &ex_topic,
            "a.#",
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            &q_fan,
            &ex_fan,
            "",
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            &q_hdr,
            &ex_hdr,
            "",
            Default::default(),
            headers(&[("x-match", "all"), ("color", "red"), ("size", "L")]),
        )
        .await
        .unwrap();
        ch.queue_bind(
            &q_ad_bound,
            &ex_ad,
            "r",
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Durable queue bound to a non-durable exchange: that binding goes.
        ch.queue_bind(
            &q_main,
            &ex_transient,
            "kt",
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

        publish_all(
            &ch,
            &ex_direct,
            "k1",
            &[
                ("p1", persistent()),
                ("t1", BasicProperties::default()),
                ("p2", persistent()),
                ("t2", BasicProperties::default().with_delivery_mode(1)),
                ("p3", persistent()),
            ],
        )
        .await;
        publish_all(&ch, &ex_topic, "a.b", &[("f1", persistent())]).await;
        publish_all(&ch, &ex_topic, "b.a", &[("f-unrouted", persistent())]).await;
        publish_all(
            &ch,
            &ex_hdr,
            "",
            &[(
                "h1",
                persistent().with_headers(headers(&[("color", "red"), ("size", "L")])),
            )],
        )
        .await;
        publish_all(&ch, "", &q_transient, &[("nq1", persistent())]).await;
        publish_all(&ch, "", &q_excl, &[("xq1", persistent())]).await;

        // Consumed-and-acked persistent message must not come back.
        publish_all(&ch, "", &q_empty, &[("gone", persistent())]).await;
        let got = ch
            .basic_get(&q_empty, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("message");
        ch.basic_ack(got.delivery.delivery_tag, Default::default())
            .await
            .unwrap();
        // Ack is async: a round trip on the same channel orders it first.
        ch.basic_qos(0, Default::default()).await.unwrap();

        let raw = Raw::connect(&b).await;
        // Keep `conn` (owner of the exclusive queue) open across the restart:
        // the broker goes down under it.
        target.clean_restart(raw).await;
        drop(ch);
        drop(conn);
    }

    let b = target.broker();
    let conn = connect_retry(&b.url, Duration::from_secs(30)).await;
    let ch = conn.create_channel().await.unwrap();

    for ex in [&ex_direct, &ex_topic, &ex_fan, &ex_hdr, &ex_ad] {
        assert!(
            exchange_exists(&conn, ex).await,
            "durable exchange {ex} lost"
        );
    }
    assert!(
        !exchange_exists(&conn, &ex_transient).await,
        "non-durable exchange survived a restart"
    );
    for q in [&q_main, &q_fan, &q_hdr, &q_empty, &q_ad_bound] {
        assert!(queue_exists(&conn, q).await, "durable queue {q} lost");
    }
    assert!(
        !queue_exists(&conn, &q_transient).await,
        "non-durable queue survived a restart"
    );
    assert!(
        !queue_exists(&conn, &q_excl).await,
        "exclusive queue survived a restart"
    );

    // Kinds and arguments were kept: redeclaring differently is refused.
    {
        let c2 = conn.create_channel().await.unwrap();
        let e = c2
            .exchange_declare(
                &ex_hdr,
                ExchangeKind::Direct,
                durable(),
                FieldTable::default(),
            )
            .await;
        assert_eq!(expect_amqp_err(e).0, 406, "headers exchange kind not kept");
        let c3 = conn.create_channel().await.unwrap();
        let e = c3
            .queue_declare(&q_main, dq(), long_arg("x-max-length", 5))
            .await;
        assert_eq!(expect_amqp_err(e).0, 406, "queue arguments not kept");
        let c4 = conn.create_channel().await.unwrap();
        c4.queue_declare(&q_main, dq(), long_arg("x-max-length", 1000))
            .await
            .expect("same arguments redeclare");
    }

    // Persistent messages survive, in order; transient ones do not. Warren
    // flags every recovered message redelivered (AMQP allows this; RabbitMQ
    // does not flag never-delivered messages after a clean restart).
    let recovered_flag = matches!(target, Target::Warren(_));
    let check = |got: Vec<(String, bool)>, want: &[&str], what: &str| {
        let bodies: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(bodies, want, "{what}: recovered messages");
        if recovered_flag {
            assert!(
                got.iter().all(|(_, r)| *r),
                "{what}: recovered messages must be redelivered=true: {got:?}"
            );
        }
    };
    check(
        drain_flags(&ch, &q_main).await,
        &["p1", "p2", "p3"],
        "direct",
    );
    check(
        drain_flags(&ch, &q_fan).await,
        &["f1"],
        "exchange-to-exchange",
    );
    check(drain_flags(&ch, &q_hdr).await, &["h1"], "headers");
    check(
        drain_flags(&ch, &q_empty).await,
        &[],
        "acked before restart",
    );

    // Bindings still route (new messages, not redelivered).
    ch.confirm_select(Default::default()).await.unwrap();
    publish_all(&ch, &ex_direct, "k1", &[("n1", persistent())]).await;
    publish_all(&ch, &ex_topic, "a.x.y", &[("n2", persistent())]).await;
    publish_all(&ch, &ex_topic, "x.a", &[("n-unrouted", persistent())]).await;
    publish_all(
        &ch,
        &ex_hdr,
        "",
        &[
            (
                "n3",
                persistent().with_headers(headers(&[("color", "red"), ("size", "L")])),
            ),
            (
                "n-nomatch",
                persistent().with_headers(headers(&[("color", "red"), ("size", "S")])),
            ),
        ],
    )
    .await;
    publish_all(&ch, &ex_ad, "r", &[("n4", persistent())]).await;
    assert_eq!(drain_flags(&ch, &q_main).await, vec![("n1".into(), false)]);
    assert_eq!(drain_flags(&ch, &q_fan).await, vec![("n2".into(), false)]);
    assert_eq!(drain_flags(&ch, &q_hdr).await, vec![("n3".into(), false)]);
    assert_eq!(
        drain_flags(&ch, &q_ad_bound).await,
        vec![("n4".into(), false)]
    );

    // Clean up (matters on a shared broker).
    for q in [&q_main, &q_fan, &q_hdr, &q_empty, &q_ad_bound] {
        ch.queue_delete(q, Default::default()).await.unwrap();
    }
    for ex in [&ex_direct, &ex_topic, &ex_fan, &ex_hdr, &ex_ad] {
        ch.exchange_delete(ex, Default::default()).await.unwrap();
    }
    conn.close(200, "bye").await.unwrap();
}
