//! `warren ctl` (rabbitmqctl's commands over the management HTTP API): the
//! binary is run as an operator would, against a spawned warren and, when
//! its management plugin answers on 15672, against RabbitMQ (the output
//! must be the same: it is what rabbitmqctl 3.10 prints).

use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::both;
use crate::harness::{uniq, warren_bin};
use crate::mgmt::Target;

/// Exit code, standard output and standard error of `warren ctl ARGS`.
fn ctl(t: &Target, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(warren_bin())
        .arg("ctl")
        .args(["--url", &t.api])
        .args(args)
        .env_remove("WARREN_CTL_URL")
        .output()
        .expect("run warren ctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Standard output of a command that must succeed.
fn ok(t: &Target, args: &[&str]) -> String {
    let (code, out, err) = ctl(t, args);
    assert_eq!(code, 0, "warren ctl {args:?} failed: {out}{err}");
    out
}

/// Runs the command until its output has `line` (statistics lag by one
/// collection period: 100 ms for warren here, 5 s for RabbitMQ).
async fn until_line(t: &Target, args: &[&str], line: &str) -> String {
    until(t, args, |out| out.lines().any(|l| l == line)).await
}

/// Runs the command until its output satisfies `pred`.
async fn until(t: &Target, args: &[&str], pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ok(t, args);
        if pred(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "warren ctl {args:?}: condition not met by\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connect(t: &Target, name: &str) -> Connection {
    Connection::connect(
        &t.amqp,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .expect("connect")
}

async fn listings(t: &Target) {
    let q = uniq("ctl.q");
    let idle = uniq("ctl.idle");
    let conn = connect(t, &q).await;
    let ch = conn.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(10));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(&q, durable, args).await.expect("declare");
    ch.queue_declare(&idle, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("declare idle");
    ch.queue_bind(
        &q,
        "amq.topic",
        "a.#",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    for body in [b"one", b"two"] {
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    }
    ch.basic_qos(3, BasicQosOptions::default())
        .await
        .expect("qos");
    let _consumer = ch
        .basic_consume(
            &idle,
            "ctl-tag",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");

    // Banner, header and rows as rabbitmqctl prints them.
    let cols = [
        "list_queues",
        "name",
        "messages",
        "consumers",
        "durable",
        "arguments",
    ];
    let out = until_line(
        t,
        &cols,
        &format!("{q}\t2\t0\ttrue\t[{{\"x-max-length\",10}}]"),
    )
    .await;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Timeout: 60.0 seconds ..."));
    assert_eq!(lines.next(), Some("Listing queues for vhost / ..."));
    assert_eq!(
        lines.next(),
        Some("name\tmessages\tconsumers\tdurable\targuments")
    );
    until_line(
        t,
        &["-q", "list_queues", "name", "consumers"],
        &format!("{idle}\t1"),
    )
    .await;
    // --silent: no banner, no header.
    let out = ok(t, &["--silent", "list_queues", "name"]);
    assert!(out.lines().any(|l| l == q), "{out}");
    assert!(
        !out.contains("Listing") && !out.lines().any(|l| l == "name"),
        "{out}"
    );

    let out = ok(t, &["list_exchanges"]);
    assert!(
        out.starts_with("Listing exchanges for vhost / ...\nname\ttype\n"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "amq.topic\ttopic"), "{out}");
    assert!(
        out.lines().any(|l| l == "\tdirect"),
        "the default exchange: {out}"
    );

    let out = ok(t, &["list_bindings"]);
    assert!(out.starts_with(
        "Listing bindings for vhost /...\nsource_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\n"
    ), "{out}");
    assert!(
        out.lines()
            .any(|l| l == format!("amq.topic\texchange\t{q}\tqueue\ta.#\t[]")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == format!("\texchange\t{q}\tqueue\t{q}\t[]")),
        "{out}"
    );

    let out = ok(t, &["-q", "list_consumers"]);
    let row = out
        .lines()
        .find(|l| l.starts_with(&format!("{idle}\t")))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split('\t').collect();
    assert_eq!(cells.len(), 7, "{row}");
    assert_eq!(&cells[2..], ["ctl-tag", "true", "3", "true", "[]"], "{row}");

    let out = until(
        t,
        &[
            "-s",
            "list_connections",
            "user",
            "vhost",
            "state",
            "client_properties",
        ],
        // The state shows once the statistics have seen the connection.
        |o| {
            o.lines().any(|l| {
                l.starts_with("guest\t/\trunning\t[")
                    && l.contains(&format!("{{\"connection_name\",\"{q}\"}}"))
            })
        },
    )
    .await;
    assert!(!out.contains("Listing"), "{out}");
    let cols = [
        "-q",
        "list_channels",
        "user",
        "number",
        "prefetch_count",
        "consumer_count",
    ];
    until_line(t, &cols, "guest\t1\t3\t1").await;

    // Unknown info keys: rabbitmqctl's usage error.
    let (code, _, err) = ctl(t, &["list_queues", "name", "bogus_col"]);
    assert_eq!(code, 64);
    assert!(
        err.contains("Info key(s) bogus_col are not supported"),
        "{err}"
    );
    conn.close(200, "bye").await.ok();
}
both!(ctl_listings, super::listings);

async fn queue_and_connection_ops(t: &Target) {
    let q = uniq("ctl.ops");
    let conn = connect(t, &q).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("declare");
    for body in [b"one", b"two", b"six"] {
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    }
    until_line(
        t,
        &["-s", "list_queues", "name", "messages_ready"],
        &format!("{q}\t3"),
    )
    .await;

    // --if-empty refuses a queue with messages, and leaves it there.
    let (code, _, err) = ctl(t, &["delete_queue", &q, "--if-empty"]);
    assert_ne!(code, 0, "{err}");
    let out = ok(t, &["purge_queue", &q]);
    assert_eq!(out, format!("Purging queue '{q}' in vhost '/' ...\n"));
    until_line(
        t,
        &["-s", "list_queues", "name", "messages_ready"],
        &format!("{q}\t0"),
    )
    .await;
    let out = ok(t, &["delete_queue", &q, "--if-empty"]);
    assert_eq!(
        out,
        format!("Deleting queue '{q}' on vhost '/' if queue is empty ...\nQueue was successfully deleted with 0 ready messages\n")
    );
    let (code, out, err) = ctl(t, &["delete_queue", &q]);
    assert_eq!(
        (code, err.as_str()),
        (64, "Error:\nQueue not found\n"),
        "{out}"
    );
    let (code, _, err) = ctl(t, &["purge_queue", &q]);
    assert_eq!((code, err.as_str()), (69, "Error:\nnot_found\n"));

    // close_connection by the name list_connections prints: the client
    // gets 320 with the reason.
    let out = until(
        t,
        &["-s", "list_connections", "name", "client_properties"],
        |o| o.contains(&q),
    )
    .await;
    let name = out
        .lines()
        .find(|l| l.contains(&q))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_default()
        .to_string();
    let out = ok(t, &["close_connection", &name, "go away"]);
    assert_eq!(
        out,
        format!("Closing connection {name}, reason: go away...\n")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.status().connected() {
        assert!(Instant::now() < deadline, "connection not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, _) = ctl(t, &["close_connection", "no such connection", "x"]);
    assert_eq!(code, 69);
}
both!(
    ctl_queue_and_connection_ops,
    super::queue_and_connection_ops
);

async fn definitions_and_node(t: &Target) {
    let q = uniq("ctl.defs");
    let dir = std::env::temp_dir().join(uniq("ctl-defs"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("in.json");
    let defs = serde_json::json!({
        "queues": [{"name": q, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
        "bindings": [{"source": "amq.fanout", "vhost": "/", "destination": q,
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    });
    std::fs::write(&file, defs.to_string()).expect("write definitions");
    let path = file.to_string_lossy().into_owned();
    let out = ok(t, &["import_definitions", &path]);
    assert_eq!(
        out,
        format!("Importing definitions in JSON from a file at \"{path}\" ...\nSuccessfully started definition import. This process is asynchronous and can take some time.\n")
    );
    let out = ok(
        t,
        &["-s", "list_bindings", "source_name", "destination_name"],
    );
    assert!(
        out.lines().any(|l| l == format!("amq.fanout\t{q}")),
        "{out}"
    );

    let exported = dir.join("out.json");
    let epath = exported.to_string_lossy().into_owned();
    let out = ok(t, &["export_definitions", &epath]);
    assert_eq!(
        out,
        format!("Exporting definitions in JSON to a file at \"{epath}\" ...\n")
    );
    let text = std::fs::read_to_string(&exported).expect("exported file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("exported JSON");
    let names: Vec<&str> = v["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert!(names.contains(&q.as_str()), "{names:?}");
    let out = ok(t, &["export_definitions", "-"]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).is_ok(),
        "{out}"
    );
    // Not JSON: refused before anything is sent.
    std::fs::write(&file, "{not json").expect("write");
    let (code, _, err) = ctl(t, &["import_definitions", &path]);
    assert_eq!(code, 65, "{err}");
    ok(t, &["delete_queue", &q]);
    std::fs::remove_dir_all(&dir).ok();

    let out = ok(t, &["status"]);
    assert!(out.starts_with("Status of node "), "{out}");
    assert!(out.contains("\nAlarms\n\n(none)\n"), "{out}");
    assert!(
        out.contains(", protocol: amqp, purpose: AMQP 0-9-1 and AMQP 1.0\n"),
        "{out}"
    );
    let (code, out, _) = ctl(t, &["await_startup"]);
    assert_eq!((code, out.as_str()), (0, ""));
}
both!(ctl_definitions_and_node, super::definitions_and_node);

/// Nothing listens: await_startup gives up after --timeout with 75, other
/// commands fail with 69 (rabbitmqctl's codes); wrong credentials: 77.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_unreachable_and_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let run = |args: &[&str]| {
        Command::new(warren_bin())
            .args(["ctl", "--url", &url])
            .args(args)
            .output()
            .expect("run")
    };
    let start = Instant::now();
    let out = run(&["await_startup", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(run(&["list_queues"]).status.code(), Some(69));

    let t = Target::warren(&[]).await;
    let (code, _, err) = ctl(&t, &["--password", "wrong", "list_queues"]);
    assert_eq!(code, 77, "{err}");
}

async fn users_vhosts_permissions(t: &Target) {
    let u = uniq("ctl.u");
    let v = uniq("ctl.vh");
    let out = ok(t, &["add_user", &u, "-pw1"]);
    assert_eq!(out, format!("Adding user \"{u}\" ...\nDone. Don't forget to grant the user permissions to some virtual hosts! See 'rabbitmqctl help set_permissions' to learn more.\n"));
    let (code, _, err) = ctl(t, &["add_user", &u, "x"]);
    assert_eq!(
        (code, err),
        (70, format!("Error:\nUser \"{u}\" already exists\n"))
    );
    ok(t, &["change_password", &u, "pw2"]);
    let out = ok(t, &["set_user_tags", &u, "monitoring", "management"]);
    assert_eq!(
        out,
        format!("Setting tags for user \"{u}\" to [monitoring, management] ...\n")
    );
    let out = ok(t, &["-q", "list_users"]);
    assert!(out.starts_with("user\ttags\n"), "{out}");
    assert!(
        out.lines()
            .any(|l| l == format!("{u}\t[monitoring, management]")),
        "{out}"
    );

    assert_eq!(
        ok(t, &["add_vhost", &v]),
        format!("Adding vhost \"{v}\" ...\n")
    );
    assert!(ok(t, &["-s", "list_vhosts", "name", "tracing"])
        .lines()
        .any(|l| l == format!("{v}\tfalse")));
    let out = ok(t, &["set_permissions", "-p", &v, &u, "^ctl-", ".*", ""]);
    assert_eq!(
        out,
        format!("Setting permissions for user \"{u}\" in vhost \"{v}\" ...\n")
    );
    let out = ok(t, &["list_permissions", "-p", &v]);
    assert!(
        out.starts_with(&format!(
            "Listing permissions for vhost \"{v}\" ...\nuser\tconfigure\twrite\tread\n"
        )),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l == format!("{u}\t^ctl-\t.*\t")),
        "{out}"
    );
    ok(
        t,
        &[
            "set_topic_permissions",
            "-p",
            &v,
            &u,
            "amq.topic",
            "^a",
            "^b",
        ],
    );
    let out = ok(t, &["-s", "list_topic_permissions", "-p", &v]);
    assert_eq!(out, format!("{u}\tamq.topic\t^a\t^b\n"));
    ok(
        t,
        &["set_vhost_limits", "-p", &v, r#"{"max-connections": 10}"#],
    );
    assert_eq!(
        ok(t, &["-q", "list_vhost_limits", "-p", &v]),
        "{\"max-connections\":10}\n"
    );
    ok(t, &["set_user_limits", &u, r#"{"max-channels": 5}"#]);
    assert_eq!(
        ok(t, &["-q", "list_user_limits", "--user", &u]),
        "{\"max-channels\":5}\n"
    );

    // The new password (kept by set_user_tags) logs in to the vhost.
    let url = format!(
        "{}/{}",
        t.amqp.rsplit_once('/').map(|(b, _)| b).unwrap_or_default(),
        v
    )
    .replacen("guest:guest", &format!("{u}:pw2"), 1);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("login as the new user");
    conn.close(200, "bye").await.ok();

    ok(t, &["clear_permissions", "-p", &v, &u]);
    assert!(!ok(t, &["list_permissions", "-p", &v]).contains(&u));
    let (code, _, err) = ctl(
        t,
        &[
            "set_permissions",
            "-p",
            &v,
            "no-such-user",
            ".*",
            ".*",
            ".*",
        ],
    );
    assert_eq!(
        (code, err),
        (67, "Error:\nUser no-such-user does not exist\n".to_string())
    );
    ok(t, &["delete_user", &u]);
    let (code, _, err) = ctl(t, &["delete_user", &u]);
    assert_eq!(
        (code, err),
        (67, format!("Error:\nUser \"{u}\" does not exist\n"))
    );
    ok(t, &["delete_vhost", &v]);
    let (code, _, err) = ctl(t, &["delete_vhost", &v]);
    assert_eq!(
        (code, err),
        (65, format!("Virtual host '{v}' does not exist\n"))
    );
}

/// Users, vhosts, permissions and limits, on warren and RabbitMQ.
mod ctl_users_vhosts_permissions {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warren() {
        let t = crate::mgmt::Target::warren(&[]).await;
        super::users_vhosts_permissions(&t).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rabbitmq() {
        if let Some(t) = crate::mgmt::Target::rabbitmq().await {
            super::users_vhosts_permissions(&t).await;
        }
    }
}
