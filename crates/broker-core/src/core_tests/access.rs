//! Users, vhosts, permissions, topic permissions and limits, as RabbitMQ
//! 3.10 enforces them (texts checked against it with pika, see
//! tests/python/test_access.py): every operation allowed and refused, the
//! publish check on the fast and the general path and its per-channel
//! cache dropped on a permission change, limits, vhost deletion, logins,
//! and what the store is asked to keep.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, Method, ShortStr};

use crate::access::{
    PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits, VhostRecord,
};
use crate::access_state::AccessRecord;
use crate::testkit::{Core, Out, Wire};

const U: &str = "alice";
const V: &str = "tenant";

/// A core with vhost `tenant`, user `alice` (password "pw") holding
/// RabbitMQ-style restricted permissions and a topic permission.
fn tenant_core(fast_path: bool) -> Core {
    let mut core = Core {
        fast_path,
        ..Core::default()
    };
    let b = &mut core.broker;
    b.add_vhost(VhostRecord {
        name: V.into(),
        ..Default::default()
    })
    .unwrap();
    b.add_user(UserRecord::with_password(U, "pw", vec![]))
        .unwrap();
    b.set_permissions(PermissionRecord {
        user: U.into(),
        vhost: V.into(),
        configure: r"^(ok|amq\.gen.*)".into(),
        write: r"^(ok|amq\.topic)".into(),
        read: r"^(ok|amq\.topic)".into(),
    })
    .unwrap();
    b.set_topic_permissions(TopicPermissionRecord {
        user: U.into(),
        vhost: V.into(),
        exchange: "amq.topic".into(),
        write: r"^{username}\.".into(),
        read: r"^r\.".into(),
    })
    .unwrap();
    core
}

/// The channel.close or connection.close in `outs`: (code, text).
fn closed(outs: &[Out]) -> Option<(u16, String)> {
    outs.iter().find_map(|o| match o.method() {
        Method::ChannelClose(c) => Some((c.reply_code, c.reply_text.to_string())),
        Method::ConnectionClose(c) => Some((c.reply_code, c.reply_text.to_string())),
        _ => None,
    })
}

fn refused(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '{V}' refused for user '{U}'"),
    )
}

/// Runs `m` on a fresh channel of a fresh alice connection.
fn run(core: &mut Core, m: Method) -> Vec<Out> {
    let mut c = core.connect_as(U, V).unwrap();
    core.open_channel(&mut c, 1);
    core.call(&mut c, 1, m)
}

fn qdecl(name: &str) -> Method {
    Method::QueueDeclare(amqp_codec::QueueDeclare {
        queue: ShortStr::from(name),
        ..Default::default()
    })
}

fn qbind(queue: &str, exchange: &str, key: &str) -> Method {
    Method::QueueBind(amqp_codec::QueueBind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        ..Default::default()
    })
}

#[test]
fn permission_matrix_as_rabbitmq() {
    let mut core = tenant_core(true);
    let mut admin = core.connect_as("guest", V).err().unwrap();
    assert_eq!(admin.code, 530, "guest has no permission in {V}");
    admin = core.connect_as(U, "/").err().unwrap();
    assert_eq!(
        admin.text,
        format!("NOT_ALLOWED - access to vhost '/' refused for user '{U}'")
    );
    assert_eq!(
        core.connect_as(U, "nope").err().unwrap().text,
        "NOT_ALLOWED - vhost nope not found"
    );

    // configure
    assert_eq!(
        closed(&run(&mut core, qdecl("nope"))),
        Some(refused("queue", "nope"))
    );
    assert_eq!(closed(&run(&mut core, qdecl("ok"))), None);
    assert_eq!(
        closed(&run(&mut core, qdecl(""))),
        None,
        "amq.gen-* allowed"
    );
    let passive = Method::QueueDeclare(amqp_codec::QueueDeclare {
        queue: "nope".into(),
        passive: true,
        ..Default::default()
    });
    assert_eq!(
        closed(&run(&mut core, passive)),
        Some((404, format!("NOT_FOUND - no queue 'nope' in vhost '{V}'"))),
        "passive declare: no permission check in 3.10"
    );
    let xdecl = Method::ExchangeDeclare(amqp_codec::ExchangeDeclare {
        exchange: "nope".into(),
        kind: "direct".into(),
        ..Default::default()
    });
    assert_eq!(
        closed(&run(&mut core, xdecl)),
        Some(refused("exchange", "nope"))
    );
    let qdel = Method::QueueDelete(amqp_codec::QueueDelete {
        queue: "nope".into(),
        ..Default::default()
    });
    assert_eq!(
        closed(&run(&mut core, qdel)),
        Some(refused("queue", "nope"))
    );
    let mut dlx = FieldTable::new();
    dlx.insert(
        "x-dead-letter-exchange".into(),
        FieldValue::LongStr("zz".into()),
    );
    let m = Method::QueueDeclare(amqp_codec::QueueDeclare {
        queue: "ok2".into(),
        arguments: dlx,
        ..Default::default()
    });
    assert_eq!(closed(&run(&mut core, m)), Some(refused("exchange", "zz")));

    // read
    let get = Method::BasicGet(amqp_codec::BasicGet {
        queue: "nope".into(),
        ..Default::default()
    });
    assert_eq!(closed(&run(&mut core, get)), Some(refused("queue", "nope")));
    let purge = Method::QueuePurge(amqp_codec::QueuePurge {
        queue: "nope".into(),
        ..Default::default()
    });
    assert_eq!(
        closed(&run(&mut core, purge)),
        Some(refused("queue", "nope"))
    );
    let consume = Method::BasicConsume(amqp_codec::BasicConsume {
        queue: "nope".into(),
        ..Default::default()
    });
    assert_eq!(
        closed(&run(&mut core, consume)),
        Some(refused("queue", "nope"))
    );

    // bind: write on the destination, read on the source, topic read
    assert_eq!(
        closed(&run(&mut core, qbind("nope", "amq.topic", "r.x"))),
        Some(refused("queue", "nope"))
    );
    assert_eq!(
        closed(&run(&mut core, qbind("ok", "amq.direct", "k"))),
        Some(refused("exchange", "amq.direct"))
    );
    assert_eq!(
        closed(&run(&mut core, qbind("ok", "amq.topic", "x"))),
        Some((
            403,
            format!(
                "ACCESS_REFUSED - access to topic 'x' in exchange 'amq.topic' in vhost '{V}' refused for user '{U}'"
            )
        ))
    );
    assert_eq!(
        closed(&run(&mut core, qbind("ok", "amq.topic", "r.x"))),
        None
    );
}

/// A publish on a fresh alice channel, with confirms, on either path.
fn publish(core: &mut Core, exchange: &str, key: &str) -> Vec<Out> {
    let mut c = core.connect_as(U, V).unwrap();
    core.open_channel(&mut c, 1);
    core.call(&mut c, 1, Method::ConfirmSelect(Default::default()));
    core.input(
        &c,
        Wire::new().publish(1, exchange, key, &BasicProperties::default(), b"m"),
    );
    c.recv()
}

#[test]
fn publish_checks_on_both_paths() {
    for fast_path in [true, false] {
        let mut core = tenant_core(fast_path);
        assert_eq!(
            closed(&publish(&mut core, "", "ok")),
            Some(refused("exchange", "amq.default")),
            "fast_path {fast_path}"
        );
        assert_eq!(
            closed(&publish(&mut core, "amq.topic", "x.y")),
            Some((
                403,
                format!(
                    "ACCESS_REFUSED - access to topic 'x.y' in exchange 'amq.topic' in vhost '{V}' refused for user '{U}'"
                )
            ))
        );
        assert_eq!(
            closed(&publish(&mut core, "amq.topic", &format!("{U}.y"))),
            None
        );
        assert_eq!(
            closed(&publish(&mut core, "missing", "k")),
            Some(refused("exchange", "missing")),
            "the permission check comes before the 404, as in RabbitMQ"
        );
    }
}

#[test]
fn permission_change_reaches_an_open_channel() {
    for fast_path in [true, false] {
        let mut core = tenant_core(fast_path);
        let mut c = core.connect_as(U, V).unwrap();
        core.open_channel(&mut c, 1);
        core.declare_queue(&mut c, 1, "ok", FieldTable::new());
        let p = BasicProperties::default();
        // Several publishes in one read and across reads: cached checks.
        for _ in 0..3 {
            core.input(
                &c,
                Wire::new()
                    .publish(1, "amq.topic", "alice.a", &p, b"1")
                    .publish(1, "amq.topic", "alice.a", &p, b"2"),
            );
            assert_eq!(closed(&c.recv()), None);
        }
        core.broker
            .set_topic_permissions(TopicPermissionRecord {
                user: U.into(),
                vhost: V.into(),
                exchange: "amq.topic".into(),
                write: "^never$".into(),
                read: "".into(),
            })
            .unwrap();
        core.input(&c, Wire::new().publish(1, "amq.topic", "alice.a", &p, b"3"));
        let got = c.recv();
        assert_eq!(
            closed(&got).map(|c| c.0),
            Some(403),
            "fast_path {fast_path}: {got:?}"
        );
        core.input(
            &c,
            Wire::new().method(1, Method::ChannelCloseOk(Default::default())),
        );
        core.open_channel(&mut c, 2);
        core.broker.clear_permissions(U, V).unwrap();
        core.input(&c, Wire::new().publish(2, "", "ok", &p, b"4"));
        assert_eq!(closed(&c.recv()), Some(refused("exchange", "amq.default")));
    }
}

#[test]
fn limits_as_rabbitmq() {
    let mut core = tenant_core(true);
    core.broker
        .set_vhost_limits(
            V,
            VhostLimits {
                max_connections: 1,
                max_queues: 1,
            },
        )
        .unwrap();
    let mut c = core.connect_as(U, V).unwrap();
    assert_eq!(
        core.connect_as(U, V).err().unwrap().text,
        format!(
            "NOT_ALLOWED - access to vhost '{V}' refused for user '{U}': connection limit (1) is reached"
        )
    );
    core.open_channel(&mut c, 1);
    core.declare_queue(&mut c, 1, "ok", FieldTable::new());
    core.declare_queue(&mut c, 1, "ok", FieldTable::new()); // redeclare: not a new queue
    assert_eq!(
        closed(&core.call(&mut c, 1, qdecl("ok3"))),
        Some((
            406,
            format!(
                "PRECONDITION_FAILED - cannot declare queue 'ok3': queue limit in vhost '{V}' (1) is reached"
            )
        ))
    );
    core.disconnect(c);

    core.broker
        .set_user_limits(
            U,
            UserLimits {
                max_connections: 2,
                max_channels: 2,
            },
        )
        .unwrap();
    core.broker
        .set_vhost_limits(V, VhostLimits::default())
        .unwrap();
    let mut a = core.connect_as(U, V).unwrap();
    let mut b = core.connect_as(U, V).unwrap();
    assert_eq!(
        core.connect_as(U, V).err().unwrap().text,
        format!(
            "NOT_ALLOWED - connection refused for user '{U}': user connection limit (2) is reached"
        )
    );
    core.open_channel(&mut a, 1);
    core.open_channel(&mut a, 2);
    // The limit counts the user's channels over all its connections.
    let got = core.call(&mut b, 1, Method::ChannelOpen(Default::default()));
    assert_eq!(
        closed(&got),
        Some((
            530,
            format!(
                "NOT_ALLOWED - number of channels opened for user '{U}' has reached the maximum allowed user limit of (2)"
            )
        ))
    );
    assert!(
        matches!(got[0], Out::Method(0, _)),
        "a connection error: {got:?}"
    );
    // Another user is not limited.
    let mut g = core.connect();
    core.open_channel(&mut g, 1);
    core.open_channel(&mut g, 2);
    core.open_channel(&mut g, 3);
}

#[test]
fn deleting_a_vhost_closes_its_connections_and_removes_its_contents() {
    let mut core = tenant_core(true);
    let mut c = core.connect_as(U, V).unwrap();
    core.open_channel(&mut c, 1);
    core.declare_queue(&mut c, 1, "ok", FieldTable::new());
    let mut g = core.connect();
    core.open_channel(&mut g, 1);
    core.broker.delete_vhost(V).unwrap();
    core.broker.flush();
    assert_eq!(
        closed(&c.recv()),
        Some((320, format!("CONNECTION_FORCED - vhost '{V}' is deleted")))
    );
    assert!(g.recv().is_empty(), "other vhosts' connections stay");
    assert!(!core.broker.vhost_exists(V));
    assert!(core.broker.list_permissions().iter().all(|p| p.vhost != V));
    assert!(core.connect_as(U, V).is_err());
    // A new vhost of the same name starts empty.
    core.broker
        .add_vhost(VhostRecord {
            name: V.into(),
            ..Default::default()
        })
        .unwrap();
    assert!(core
        .broker
        .topology
        .vhosts
        .get(V)
        .unwrap()
        .queues
        .is_empty());
    assert!(
        core.connect_as(U, V).is_err(),
        "permissions went with the vhost"
    );
}

#[test]
fn logins_verify_stored_hashes_and_the_loopback_rule() {
    let mut core = tenant_core(true);
    assert!(core.login("guest", "guest", true));
    assert!(
        !core.login("guest", "guest", false),
        "guest is loopback-only"
    );
    assert!(core.login(U, "pw", false));
    assert!(!core.login(U, "px", false));
    core.broker.set_loopback_users(vec![]);
    assert!(core.login("guest", "guest", false));
    core.broker
        .change_password_hash(U, vec![], crate::access::HashAlgorithm::Sha256)
        .unwrap();
    assert!(!core.login(U, "pw", true), "no password: PLAIN refused");
    let mut c = core.connect_unchecked(U, V);
    core.broker.delete_user(U).unwrap();
    core.broker.flush();
    assert_eq!(
        closed(&c.recv()),
        Some((320, format!("CONNECTION_FORCED - user '{U}' is deleted")))
    );
    assert!(!core.login(U, "pw", true));
    assert!(core.broker.list_permissions().iter().all(|p| p.user != U));
}

#[test]
fn every_change_is_recorded_for_the_store() {
    let mut core = tenant_core(true);
    let log = core.store.lock().access.clone();
    // The fresh node's defaults first, then the test's changes in order.
    assert_eq!(log[0], AccessRecord::Seeded);
    assert!(log
        .iter()
        .any(|r| matches!(r, AccessRecord::PutUser(u) if u.name == "guest")));
    let n = log.len();
    assert!(matches!(&log[n - 4], AccessRecord::PutVhost(v) if v.name == V));
    assert!(matches!(&log[n - 3], AccessRecord::PutUser(u) if u.name == U));
    assert!(matches!(&log[n - 2], AccessRecord::PutPermission(_)));
    assert!(matches!(&log[n - 1], AccessRecord::PutTopicPermission(_)));
    core.broker.delete_vhost(V).unwrap();
    assert_eq!(
        core.store.lock().access.last(),
        Some(&AccessRecord::DeleteVhost(V.into()))
    );
    // Replaying the log gives the broker's state.
    let mut st = crate::access_state::AccessState::default();
    for r in core.store.lock().access.clone() {
        st.apply(r);
    }
    assert!(st.vhosts.contains_key("/") && !st.vhosts.contains_key(V));
    assert_eq!(st.permissions.len(), core.broker.list_permissions().len());
    assert!(
        core.broker.add_vhost(VhostRecord::default()).is_err(),
        "empty name"
    );
    assert!(core
        .broker
        .set_permissions(PermissionRecord {
            user: U.into(),
            vhost: "/".into(),
            configure: "(".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .is_err());
}

#[test]
fn user_id_must_match_unless_impersonator() {
    let mut core = tenant_core(true);
    let p = BasicProperties {
        user_id: Some(ShortStr::from("bob")),
        ..Default::default()
    };
    let mut c = core.connect_as(U, V).unwrap();
    core.open_channel(&mut c, 1);
    core.input(&c, Wire::new().publish(1, "amq.topic", "alice.x", &p, b"m"));
    assert_eq!(
        closed(&c.recv()),
        Some((
            406,
            format!("PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was '{U}'")
        ))
    );
    core.broker
        .set_user_tags(U, vec!["impersonator".into()])
        .unwrap();
    core.open_channel(&mut c, 2);
    core.input(&c, Wire::new().publish(2, "amq.topic", "alice.x", &p, b"m"));
    assert_eq!(closed(&c.recv()), None);
}
