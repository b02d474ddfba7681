//! Users, vhosts, permissions and topic permissions through lapin, with
//! RabbitMQ 3.10's texts. Against RabbitMQ (WARREN_TEST_URL) the tenant is
//! created with rabbitmqctl (RABBITMQCTL must name it, else these tests
//! are skipped); against warren a node is started with a bootstrap file
//! (`--definitions`). The restart test SIGKILLs warren and restarts it
//! without the file: users and permissions come from the data dir.

use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::harness::{
    async_channel_error, expect_amqp_err, external_broker, uniq, watch_errors, within, Broker,
};
use crate::node::Node;

const PASSWORD: &str = "s3cret";

struct Tenant {
    /// A handle with the broker's address (guest's URL).
    broker: Broker,
    user: String,
    vhost: String,
    /// The warren node, when the test runs one.
    node: Option<Node>,
    /// rabbitmqctl, when the test runs against RabbitMQ (for cleanup).
    ctl: Option<String>,
    bootstrap: Option<std::path::PathBuf>,
}

impl Drop for Tenant {
    fn drop(&mut self) {
        if let Some(ctl) = &self.ctl {
            for args in [
                vec!["delete_vhost", self.vhost.as_str()],
                vec!["delete_user", self.user.as_str()],
            ] {
                let _ = std::process::Command::new(ctl).args(args).output();
            }
        }
        if let Some(p) = &self.bootstrap {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// rabbitmqctl-style commands creating the tenant (vhost first in args).
fn setup(user: &str, vhost: &str) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        s(&["add_vhost", vhost]),
        s(&["add_user", user, PASSWORD]),
        s(&[
            "set_permissions",
            "-p",
            vhost,
            user,
            r"^(ok|amq\.gen.*)",
            r"^(ok|amq\.topic)",
            r"^(ok|amq\.topic)",
        ]),
        s(&[
            "set_topic_permissions",
            "-p",
            vhost,
            user,
            "amq.topic",
            r"^{username}\.",
            r"^r\.",
        ]),
    ]
}

async fn tenant() -> Option<Tenant> {
    let user = uniq("alice");
    let vhost = uniq("tenant");
    let cmds = setup(&user, &vhost);
    if external_broker() {
        let Ok(ctl) = std::env::var("RABBITMQCTL") else {
            eprintln!("skipped: RABBITMQCTL not set, cannot create users on the broker");
            return None;
        };
        for c in &cmds {
            let out = std::process::Command::new(&ctl)
                .args(c)
                .output()
                .expect("rabbitmqctl");
            assert!(out.status.success(), "{c:?}: {out:?}");
        }
        return Some(Tenant {
            broker: crate::harness::broker().await,
            user,
            vhost,
            node: None,
            ctl: Some(ctl),
            bootstrap: None,
        });
    }
    // The same commands as bootstrap lines: `set_permissions -p V U ...`
    // becomes `set_permissions V U ...`.
    let lines: Vec<String> = cmds
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.get(1).map(String::as_str) == Some("-p") {
                c.remove(1);
            }
            c.join(" ")
        })
        .collect();
    let path = std::env::temp_dir().join(uniq("bootstrap"));
    std::fs::write(&path, lines.join("\n")).expect("write bootstrap");
    let p = path.to_string_lossy().to_string();
    let node = Node::start(&["--definitions", &p]).await;
    Some(Tenant {
        broker: node.broker(),
        user,
        vhost,
        node: Some(node),
        ctl: None,
        bootstrap: Some(path),
    })
}

impl Tenant {
    async fn connect(&self) -> lapin::Result<Connection> {
        let url = self.broker.url_with(&self.user, PASSWORD, &self.vhost);
        within(
            "connect",
            Connection::connect(&url, ConnectionProperties::default()),
        )
        .await
    }

    fn refused(&self, kind: &str, name: &str) -> (u16, String) {
        (
            403,
            format!(
                "ACCESS_REFUSED - access to {kind} '{name}' in vhost '{}' refused for user '{}'",
                self.vhost, self.user
            ),
        )
    }

    fn topic_refused(&self, key: &str) -> (u16, String) {
        (
            403,
            format!(
                "ACCESS_REFUSED - access to topic '{key}' in exchange 'amq.topic' in vhost '{}' refused for user '{}'",
                self.vhost, self.user
            ),
        )
    }

    /// The refusals and successes every test checks.
    async fn check_matrix(&self) {
        let conn = self.connect().await.expect("alice connects");
        let declare = |ch: lapin::Channel, q: &'static str| async move {
            ch.queue_declare(q, QueueDeclareOptions::default(), FieldTable::default())
                .await
                .map(|_| ())
        };
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(
            expect_amqp_err(declare(ch, "nope").await),
            self.refused("queue", "nope")
        );
        let ch = conn.create_channel().await.unwrap();
        declare(ch.clone(), "ok").await.expect("declare ok");
        let r = ch
            .queue_bind(
                "ok",
                "amq.topic",
                "x",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_eq!(expect_amqp_err(r), self.topic_refused("x"));
        let ch = conn.create_channel().await.unwrap();
        ch.queue_bind(
            "ok",
            "amq.topic",
            "r.x",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind with topic read");
        let r = ch
            .basic_consume(
                "nope",
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_eq!(expect_amqp_err(r), self.refused("queue", "nope"));
        // Publishes: the channel error comes asynchronously.
        for (exchange, key, expect) in [
            ("", "ok", self.refused("exchange", "amq.default")),
            ("amq.topic", "x.y", self.topic_refused("x.y")),
        ] {
            let ch = conn.create_channel().await.unwrap();
            let seen = watch_errors(&ch);
            let _ = ch
                .basic_publish(
                    exchange,
                    key,
                    Default::default(),
                    b"m",
                    BasicProperties::default(),
                )
                .await;
            assert_eq!(async_channel_error(&seen).await, expect);
        }
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        let key = format!("{}.y", self.user);
        let c = ch
            .basic_publish(
                "amq.topic",
                &key,
                Default::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        assert!(within("confirm", c).await.unwrap().is_ack());
        let _ = conn.close(200, "bye").await;
    }
}

#[tokio::test]
async fn permission_matrix_and_vhost_refusal() {
    let Some(t) = tenant().await else { return };
    t.check_matrix().await;
    // No permission in "/": refused at connection.open.
    let url = t.broker.url_with(&t.user, PASSWORD, "/");
    let r = within(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    assert_eq!(
        expect_amqp_err(r),
        (
            530,
            format!(
                "NOT_ALLOWED - access to vhost '/' refused for user '{}'",
                t.user
            )
        )
    );
}

#[tokio::test]
async fn users_and_permissions_survive_sigkill() {
    if external_broker() {
        eprintln!("skipped: needs to kill and restart warren itself");
        return;
    }
    let Some(mut t) = tenant().await else { return };
    t.check_matrix().await;
    let node = t.node.as_mut().expect("a warren node");
    node.kill();
    node.clear_extra();
    node.restart().await;
    t.broker = node.broker();
    t.check_matrix().await;
}
