//! The management API's admin side through a real HTTP client: users,
//! vhosts, permissions, topic permissions, limits, the tag rules, and
//! definitions with users (RabbitMQ's hashes, test vectors computed with
//! Python's hashlib). Each `both!` check also runs against RabbitMQ 3.10.

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::harness::{expect_amqp_err, uniq, within};
use crate::mgmt::Target;

/// salt 90 8D C6 0A, SHA-256("salt" ‖ "test12") (RabbitMQ's docs example).
pub(crate) const SHA256_TEST12: &str = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR";
/// Same salt, SHA-512, password `s3cret-512` (hashlib).
pub(crate) const SHA512_VECTOR: &str =
    "kI3GCgBAmtIHLpiEWrXOhRAjZ6PaTT1VDoODweYuvIk4N9WQ1YRRQsb2Q/zFWfs/DPsPM2NUNlTI+vxRab6keWPnzKg=";
/// Same salt, MD5, password `old-md5` (hashlib).
pub(crate) const MD5_VECTOR: &str = "kI3GCiWcIKoZZFKg3holQoxc7+o=";

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) async fn as_user(
    t: &Target,
    m: Method,
    path: &str,
    body: Option<Value>,
    who: (&str, &str),
) -> (StatusCode, Value) {
    let (s, _, v) = t
        .call(
            m,
            path,
            body.map(|b| b.to_string().into_bytes()),
            &[],
            Some(who),
        )
        .await;
    (s, v)
}

pub(crate) fn amqp_url(t: &Target, user: &str, pass: &str, vhost: &str) -> String {
    format!(
        "amqp://{user}:{pass}@127.0.0.1:{}/{}",
        t.amqp_port,
        enc(vhost)
    )
}

pub(crate) async fn connect(url: &str) -> lapin::Result<Connection> {
    within(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
}

async fn users_and_tags(t: &Target) {
    let (plain, mgmt) = (uniq("adm-notag"), uniq("adm-mgmt"));
    let put = |u: &str, body: Value| (format!("/users/{}", enc(u)), body);
    let (p, b) = put(&plain, json!({"password": "p1", "tags": ""}));
    assert_eq!(t.send(Method::PUT, &p, b).await.0, StatusCode::CREATED);
    let (p, b) = put(&mgmt, json!({"password": "p2", "tags": "management"}));
    assert_eq!(
        t.send(Method::PUT, &p, b.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(t.send(Method::PUT, &p, b).await.0, StatusCode::NO_CONTENT);
    // The tag rules.
    let r = as_user(t, Method::GET, "/whoami", None, (&plain, "p1")).await;
    assert_eq!(
        r,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Not management user"})
        )
    );
    let r = as_user(t, Method::GET, "/whoami", None, (&mgmt, "p2")).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(r.1["name"], json!(mgmt));
    assert_eq!(r.1["tags"], json!(["management"]));
    let r = as_user(t, Method::GET, "/users", None, (&mgmt, "p2")).await;
    assert_eq!(
        r,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Not administrator user"})
        )
    );
    let r = as_user(t, Method::GET, "/nodes", None, (&mgmt, "p2")).await;
    assert_eq!(
        r,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Not monitor user"})
        )
    );
    // No permissions yet: it sees no vhost.
    let r = as_user(t, Method::GET, "/vhosts", None, (&mgmt, "p2")).await;
    assert_eq!(r, (StatusCode::OK, json!([])));
    let (s, u) = t.get(&format!("/users/{}", enc(&mgmt))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["tags"], json!(["management"]));
    assert_eq!(u["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(u["password_hash"].as_str().map(str::len), Some(48));
    let (s, list) = t.get("/users/without-permissions").await;
    assert_eq!(s, StatusCode::OK);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == json!(plain)));
    // Bad input.
    let (p, _) = put(&uniq("adm-bad"), json!({}));
    let r = t.send(Method::PUT, &p, json!({"password": "x"})).await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "tags_not_present"})
        )
    );
    let r = t
        .send(
            Method::PUT,
            &p,
            json!({"password": "x", "password_hash": SHA256_TEST12, "tags": ""}),
        )
        .await;
    assert_eq!(
        r.1["reason"],
        "both_password_and_password_hash_are_provided"
    );
    let r = t
        .send(Method::PUT, &p, json!({"password_hash": "abc", "tags": ""}))
        .await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["not_base64", "abc"]})
        )
    );
    let (s, _, v) = t
        .call(
            Method::PUT,
            &p,
            Some(b"{\"password\":".to_vec()),
            &[],
            Some(("guest", "guest")),
        )
        .await;
    assert_eq!(
        (s, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    assert_eq!(t.get(&p).await.0, StatusCode::NOT_FOUND, "nothing stored");
    if t.warren {
        // Stricter than RabbitMQ 3.10 (which stores these).
        let r = t.send(Method::PUT, &p, json!({"password_hash": SHA256_TEST12, "hashing_algorithm": "rabbit_password_hashing_foo", "tags": ""})).await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST);
        let long = format!("/users/{}", "u".repeat(256));
        assert_eq!(
            t.send(Method::PUT, &long, json!({"password": "x", "tags": ""}))
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(t.get(&p).await.0, StatusCode::NOT_FOUND, "nothing stored");
    }
    // A client-side hash (as rabbitmqadmin sends it, no algorithm) logs in.
    let hashed = uniq("adm-hash");
    let (p, b) = put(
        &hashed,
        json!({"password_hash": SHA256_TEST12, "tags": ["management"]}),
    );
    assert_eq!(t.send(Method::PUT, &p, b).await.0, StatusCode::CREATED);
    let r = as_user(t, Method::GET, "/whoami", None, (&hashed, "test12")).await;
    assert_eq!(r.0, StatusCode::OK);
    // Bulk delete: all must exist.
    let missing = uniq("adm-missing");
    let r = t
        .send(
            Method::POST,
            "/users/bulk-delete",
            json!({"users": [plain, missing]}),
        )
        .await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["no_such_user", missing]})
        )
    );
    if t.warren {
        // Nothing deleted half-way (RabbitMQ 3.10 deletes those before
        // the missing one).
        assert_eq!(
            t.get(&format!("/users/{}", enc(&plain))).await.0,
            StatusCode::OK
        );
    }
    let r = t
        .send(
            Method::POST,
            "/users/bulk-delete",
            if t.warren {
                json!({"users": [plain, mgmt, hashed]})
            } else {
                json!({"users": [mgmt, hashed]})
            },
        )
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT);
    for u in [&plain, &mgmt, &hashed] {
        assert_eq!(
            t.get(&format!("/users/{}", enc(u))).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        t.delete(&format!("/users/{}", enc(&plain))).await,
        StatusCode::NOT_FOUND
    );
}
both!(admin_users_and_tags, super::users_and_tags);

async fn vhosts_permissions_limits(t: &Target) {
    let (v, u) = (uniq("adm-vh"), uniq("adm-user"));
    let (vp, up) = (
        format!("/vhosts/{}", enc(&v)),
        format!("/users/{}", enc(&u)),
    );
    let body = json!({"description": "tenant", "tags": "a,b"});
    assert_eq!(
        t.send(Method::PUT, &vp, body.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(Method::PUT, &vp, body).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, j) = t.get(&vp).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&j["name"], &j["description"], &j["tags"]),
        (&json!(v), &json!("tenant"), &json!(["a", "b"]))
    );
    assert_eq!(
        t.send(
            Method::PUT,
            &up,
            json!({"password": "pw", "tags": "management"})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    // Permissions.
    let pp = format!("/permissions/{}/{}", enc(&v), enc(&u));
    let r = t.send(Method::PUT, &pp, json!({"configure": ".*"})).await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"})
        )
    );
    let r = t
        .send(
            Method::PUT,
            &pp,
            json!({"configure": "(", "write": ".*", "read": ".*"}),
        )
        .await;
    assert_eq!(
        (r.0, &r.1["error"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    assert_eq!(t.get(&pp).await.0, StatusCode::NOT_FOUND, "nothing stored");
    let nov = format!("/permissions/{}/{}", enc(&uniq("adm-novh")), enc(&u));
    let r = t
        .send(
            Method::PUT,
            &nov,
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
        )
    );
    let perm = json!({"configure": "^own\\.", "write": ".*", "read": ".*"});
    assert_eq!(
        t.send(Method::PUT, &pp, perm.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(Method::PUT, &pp, perm).await.0,
        StatusCode::NO_CONTENT
    );
    let want = json!({"user": u, "vhost": v, "configure": "^own\\.", "write": ".*", "read": ".*"});
    assert_eq!(t.get(&pp).await, (StatusCode::OK, want.clone()));
    assert_eq!(
        t.get(&format!("{up}/permissions")).await,
        (StatusCode::OK, json!([want.clone()]))
    );
    // The vhost's creator (guest) got full permissions there, as RabbitMQ's.
    let guest =
        json!({"user": "guest", "vhost": v, "configure": ".*", "write": ".*", "read": ".*"});
    let (s, list) = t.get(&format!("{vp}/permissions")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert!(list.as_array().unwrap().contains(&want));
    assert!(list.as_array().unwrap().contains(&guest));
    // Now the user sees its vhost, and only that one.
    let r = as_user(t, Method::GET, "/vhosts", None, (&u, "pw")).await;
    let names: Vec<&Value> = r.1.as_array().unwrap().iter().map(|x| &x["name"]).collect();
    assert_eq!(names, vec![&json!(v)]);
    // Topic permissions.
    let tp = format!("/topic-permissions/{}/{}", enc(&v), enc(&u));
    let r = t
        .send(
            Method::PUT,
            &tp,
            json!({"exchange": "amq.topic", "write": "^a"}),
        )
        .await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,read}]"})
        )
    );
    let topic = json!({"exchange": "amq.topic", "write": "^a", "read": ".*"});
    assert_eq!(
        t.send(Method::PUT, &tp, topic.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(Method::PUT, &tp, topic).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, j) = t.get(&tp).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j[0]["write"], "^a");
    assert_eq!(j[0]["exchange"], "amq.topic");
    let (_, all) = t.get(&format!("{up}/topic-permissions")).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(
        t.delete(&format!("{tp}/amq.topic")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.delete(&format!("{tp}/amq.topic")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.get(&tp).await.0, StatusCode::NOT_FOUND);
    // Vhost limits.
    let lp = format!("/vhost-limits/{}", enc(&v));
    assert_eq!(
        t.send(
            Method::PUT,
            &format!("{lp}/{}", enc("max-connections")),
            json!({"value": 10})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&lp).await,
        (
            StatusCode::OK,
            json!([{"vhost": v, "value": {"max-connections": 10}}])
        )
    );
    let r = t
        .send(Method::PUT, &format!("{lp}/max-queues"), json!({}))
        .await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "[{key_missing,value}]"})
        )
    );
    let r = t
        .send(
            Method::PUT,
            &format!("{lp}/max-queues"),
            json!({"value": "x"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST);
    assert!(r.1["reason"]
        .as_str()
        .unwrap()
        .contains("max-queues should be a number"));
    let r = t
        .send(Method::PUT, &format!("{lp}/max-foo"), json!({"value": 1}))
        .await;
    assert!(r.1["reason"]
        .as_str()
        .unwrap()
        .contains("Unrecognised terms"));
    assert_eq!(
        t.delete(&format!("{lp}/max-connections")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.get(&lp).await, (StatusCode::OK, json!([])));
    // User limits.
    let ul = format!("/user-limits/{}", enc(&u));
    assert_eq!(
        t.send(
            Method::PUT,
            &format!("{ul}/max-channels"),
            json!({"value": 3})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&ul).await,
        (
            StatusCode::OK,
            json!([{"user": u, "value": {"max-channels": 3}}])
        )
    );
    assert_eq!(t.get(&up).await.1["limits"], json!({"max-channels": 3}));
    let nobody = uniq("adm-nobody");
    let r = t
        .send(
            Method::PUT,
            &format!("/user-limits/{}/max-channels", enc(&nobody)),
            json!({"value": 3}),
        )
        .await;
    assert_eq!(
        r,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": ["no_such_user", nobody]})
        )
    );
    assert_eq!(
        t.delete(&format!("{ul}/max-channels")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.get(&ul).await, (StatusCode::OK, json!([])));
    // Health, then clean up.
    assert_eq!(
        t.get("/health/checks/virtual-hosts").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(t.delete(&pp).await, StatusCode::NO_CONTENT);
    assert_eq!(t.delete(&pp).await, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&vp).await, StatusCode::NO_CONTENT);
    assert_eq!(t.delete(&vp).await, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&up).await, StatusCode::NO_CONTENT);
}
both!(
    admin_vhosts_permissions_limits,
    super::vhosts_permissions_limits
);

/// A user made over HTTP logs in over AMQP and is refused where its
/// permissions say so, with RabbitMQ's texts.
async fn http_user_over_amqp(t: &Target) {
    let (v, u) = (uniq("adm-amqpvh"), uniq("adm-amqpuser"));
    assert_eq!(
        t.send(Method::PUT, &format!("/vhosts/{}", enc(&v)), json!({}))
            .await
            .0,
        StatusCode::CREATED
    );
    let up = format!("/users/{}", enc(&u));
    assert_eq!(
        t.send(Method::PUT, &up, json!({"password": "pw", "tags": ""}))
            .await
            .0,
        StatusCode::CREATED
    );
    let pp = format!("/permissions/{}/{}", enc(&v), enc(&u));
    let perm = json!({"configure": "^own\\.", "write": ".*", "read": ".*"});
    assert_eq!(t.send(Method::PUT, &pp, perm).await.0, StatusCode::CREATED);
    let conn = connect(&amqp_url(t, &u, "pw", &v))
        .await
        .expect("login with the HTTP-made user");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        "own.q",
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("allowed by configure");
    let err = expect_amqp_err(
        ch.queue_declare(
            "other.q",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
    );
    assert_eq!(
        err,
        (
            403,
            format!(
                "ACCESS_REFUSED - access to queue 'other.q' in vhost '{v}' refused for user '{u}'"
            )
        )
    );
    let _ = conn.close(200, "bye").await;
    // No permissions in "/".
    let Err(err) = connect(&amqp_url(t, &u, "pw", "/")).await else {
        panic!("login to / without permissions must be refused");
    };
    assert!(
        format!("{err:?}").contains(&format!("access to vhost '/' refused for user '{u}'")),
        "{err:?}"
    );
    // Wrong password.
    assert!(connect(&amqp_url(t, &u, "nope", &v)).await.is_err());
    // Deleting the user ends its logins.
    assert_eq!(t.delete(&up).await, StatusCode::NO_CONTENT);
    assert!(connect(&amqp_url(t, &u, "pw", &v)).await.is_err());
    assert_eq!(
        t.delete(&format!("/vhosts/{}", enc(&v))).await,
        StatusCode::NO_CONTENT
    );
}
both!(admin_http_user_over_amqp, super::http_user_over_amqp);
