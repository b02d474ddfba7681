//! Definitions with users, vhosts, limits and permissions: a
//! RabbitMQ-format file (hashes computed independently, with Python's
//! hashlib) imports into warren and its users log in with their
//! passwords; warren's export imports into the running RabbitMQ.

use lapin::options::*;
use lapin::types::FieldTable;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect_amqp_err, uniq};
use crate::mgmt::Target;
use crate::mgmt_admin::{
    amqp_url, as_user, connect, enc, MD5_VECTOR, SHA256_TEST12, SHA512_VECTOR,
};

/// A RabbitMQ-format file (hashes from hashlib, each algorithm, old
/// exports without `hashing_algorithm`, vhost limits as RabbitMQ exports
/// them) imports, and its users log in with their original passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_with_users_import() {
    let t = Target::warren(&[]).await;
    let defs = json!({
        "rabbit_version": "3.10.7", "rabbitmq_version": "3.10.7",
        "users": [
            {"name": "d256", "password_hash": SHA256_TEST12, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"], "limits": {}},
            {"name": "d512", "password_hash": SHA512_VECTOR, "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": "monitoring", "limits": {"max-connections": 5}},
            {"name": "dmd5", "password_hash": MD5_VECTOR, "hashing_algorithm": "rabbit_password_hashing_md5", "tags": []},
            {"name": "dnoalg", "password_hash": SHA256_TEST12, "tags": ["administrator"]}
        ],
        "vhosts": [{"name": "dv", "description": "imported", "tags": ["t"]}],
        "permissions": [
            {"user": "d256", "vhost": "dv", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "dmd5", "vhost": "dv", "configure": "", "write": ".*", "read": ".*"},
            // The importing admin's, as RabbitMQ's exports carry them (warren
            // declares the file's queues as the acting user).
            {"user": "guest", "vhost": "dv", "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "topic_permissions": [{"user": "d256", "vhost": "dv", "exchange": "amq.topic", "write": "^x", "read": ".*"}],
        "parameters": [{"vhost": "dv", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 7}}],
        "queues": [{"name": "dq", "vhost": "dv", "durable": true, "auto_delete": false, "arguments": {}}]
    });
    // Checked whole first: a bad regex anywhere stores nothing.
    let mut bad = defs.clone();
    bad["permissions"][1]["write"] = json!("(");
    bad["users"][0]["name"] = json!("dfirst");
    assert_eq!(
        t.send(Method::POST, "/definitions", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut bad = defs.clone();
    bad["users"][2]["hashing_algorithm"] = json!("rabbit_password_hashing_bcrypt");
    assert_eq!(
        t.send(Method::POST, "/definitions", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut bad = defs.clone();
    bad["permissions"][0]["user"] = json!("nobody");
    assert_eq!(
        t.send(Method::POST, "/definitions", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.get("/users/d256").await.0,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );
    assert_eq!(
        t.get("/vhosts/dv").await.0,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );

    let (s, v) = t.send(Method::POST, "/definitions", defs).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    for (user, pass) in [
        ("d256", "test12"),
        ("d512", "s3cret-512"),
        ("dnoalg", "test12"),
    ] {
        let r = as_user(&t, Method::GET, "/whoami", None, (user, pass)).await;
        assert_eq!(r.0, StatusCode::OK, "{user}: {r:?}");
    }
    assert_eq!(
        as_user(&t, Method::GET, "/whoami", None, ("d256", "wrong"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Over AMQP too, with the permissions of the file.
    let c = connect(&amqp_url(&t, "dmd5", "old-md5", "dv"))
        .await
        .expect("md5 user logs in");
    let ch = c.create_channel().await.expect("channel");
    let err = expect_amqp_err(
        ch.queue_declare("x", QueueDeclareOptions::default(), FieldTable::default())
            .await,
    );
    assert_eq!(
        err,
        (
            403,
            "ACCESS_REFUSED - access to queue 'x' in vhost 'dv' refused for user 'dmd5'".into()
        )
    );
    let _ = c.close(200, "bye").await;
    let c = connect(&amqp_url(&t, "d256", "test12", "dv"))
        .await
        .expect("sha256 user logs in");
    let _ = c.close(200, "bye").await;
    assert_eq!(
        t.get("/vhost-limits/dv").await.1,
        json!([{"vhost": "dv", "value": {"max-queues": 7}}])
    );
    assert_eq!(
        t.get("/user-limits/d512").await.1,
        json!([{"user": "d512", "value": {"max-connections": 5}}])
    );
    assert_eq!(t.get("/queues/dv/dq").await.0, StatusCode::OK);
    // The export carries them back in the same format.
    let (_, d) = t.get("/definitions").await;
    let user = d["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "d512")
        .cloned()
        .unwrap();
    assert_eq!(
        user,
        json!({"name": "d512", "password_hash": SHA512_VECTOR, "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ["monitoring"], "limits": {"max-connections": 5}})
    );
    assert!(d["vhosts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "dv" && v["description"] == "imported"));
    assert!(d["topic_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["user"] == "d256" && p["write"] == "^x"));
    assert!(d["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["component"] == "vhost-limits" && p["vhost"] == "dv"));
}

/// An export from warren imports into RabbitMQ, whose users then log in
/// with the passwords set on warren.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_export_imports_into_rabbitmq() {
    let Some(rmq) = Target::rabbitmq().await else {
        return;
    };
    let w = Target::warren(&[]).await;
    let (v, u) = (uniq("adm-xvh"), uniq("adm-xuser"));
    assert_eq!(
        w.send(
            Method::PUT,
            &format!("/vhosts/{}", enc(&v)),
            json!({"description": "from warren"})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        w.send(
            Method::PUT,
            &format!("/users/{}", enc(&u)),
            json!({"password": "moved", "tags": "management"})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(
        w.send(
            Method::PUT,
            &format!("/permissions/{}/{}", enc(&v), enc(&u)),
            perm
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let topic = json!({"exchange": "amq.topic", "write": "^w", "read": ".*"});
    assert_eq!(
        w.send(
            Method::PUT,
            &format!("/topic-permissions/{}/{}", enc(&v), enc(&u)),
            topic
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        w.send(
            Method::PUT,
            &format!("/vhost-limits/{}/max-queues", enc(&v)),
            json!({"value": 9})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.send(
            Method::PUT,
            &format!("/queues/{}/q1", enc(&v)),
            json!({"durable": true})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let (_, mut d) = w.get("/definitions").await;
    // Only this test's objects (the shared RabbitMQ keeps its own guest).
    let mine = |x: &Value| {
        [&x["name"], &x["user"], &x["vhost"]]
            .iter()
            .any(|f| **f == json!(u) || **f == json!(v))
    };
    for section in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "queues",
        "exchanges",
        "bindings",
        "policies",
    ] {
        if let Some(a) = d[section].as_array_mut() {
            a.retain(mine);
        }
    }
    d["global_parameters"] = json!([]);
    let (s, body) = rmq.send(Method::POST, "/definitions", d).await;
    assert!(
        s.is_success(),
        "RabbitMQ refused warren's export: {s} {body}"
    );
    let r = as_user(&rmq, Method::GET, "/whoami", None, (&u, "moved")).await;
    assert_eq!(r.0, StatusCode::OK, "{r:?}");
    let c = connect(&amqp_url(&rmq, &u, "moved", &v))
        .await
        .expect("login on RabbitMQ");
    let _ = c.close(200, "bye").await;
    let (_, vh) = rmq.get(&format!("/vhosts/{}", enc(&v))).await;
    assert_eq!(vh["description"], "from warren");
    assert_eq!(
        rmq.get(&format!("/vhost-limits/{}", enc(&v))).await.1,
        json!([{"vhost": v, "value": {"max-queues": 9}}])
    );
    let (_, tp) = rmq
        .get(&format!("/topic-permissions/{}/{}", enc(&v), enc(&u)))
        .await;
    assert_eq!(tp[0]["write"], "^w");
    assert_eq!(
        rmq.get(&format!("/queues/{}/q1", enc(&v))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        rmq.delete(&format!("/vhosts/{}", enc(&v))).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rmq.delete(&format!("/users/{}", enc(&u))).await,
        StatusCode::NO_CONTENT
    );
}
