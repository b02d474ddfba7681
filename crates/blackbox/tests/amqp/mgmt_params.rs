//! Policies, operator policies, runtime parameters and global parameters
//! are durable (warren only: the test SIGKILLs and restarts the broker)
//! and travel in the definitions.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::external_broker;
use crate::mgmt::Target;

/// The policy written below.
fn policy() -> Value {
    json!({"pattern": "^pa", "definition": {"max-length": 10}, "priority": 3, "apply-to": "queues"})
}

/// What `GET` shows of everything stored, without the fields that differ
/// by path (for comparing two nodes).
async fn stored(t: &Target) -> (Value, Value, Value, Value) {
    let (s1, p) = t.get("/policies/%2F").await;
    let (s2, o) = t.get("/operator-policies/%2F").await;
    let (s3, r) = t.get("/parameters/federation-upstream/%2F").await;
    let (s4, g) = t.get("/global-parameters/cluster_tags").await;
    assert_eq!([s1, s2, s3, s4], [StatusCode::OK; 4], "{g}");
    (p, o, r, g)
}

async fn put(t: &Target, path: &str, body: Value, want: StatusCode) {
    let (s, v) = t.send(Method::PUT, path, body).await;
    assert_eq!(s, want, "PUT {path}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_parameters_survive_sigkill_and_round_trip() {
    if external_broker() {
        return;
    }
    let mut t = Target::warren(&[]).await;
    let created = StatusCode::CREATED;
    put(&t, "/policies/%2F/pol", policy(), created).await;
    put(&t, "/policies/%2F/pol", policy(), StatusCode::NO_CONTENT).await;
    let op =
        json!({"pattern": "^op", "definition": {"max-length-bytes": 1000}, "apply-to": "queues"});
    put(&t, "/operator-policies/%2F/op", op, created).await;
    let upstream = json!({"value": {"uri": "amqp://upstream", "expires": 3600000}});
    put(
        &t,
        "/parameters/federation-upstream/%2F/up",
        upstream,
        created,
    )
    .await;
    let tags = json!({"value": {"region": "eu"}});
    put(&t, "/global-parameters/cluster_tags", tags, created).await;
    // Removed before the crash: stays removed.
    put(&t, "/policies/%2F/gone", policy(), created).await;
    assert_eq!(t.delete("/policies/%2F/gone").await, StatusCode::NO_CONTENT);
    assert_eq!(t.delete("/policies/%2F/gone").await, StatusCode::NOT_FOUND);
    // A deleted vhost takes its policies and parameters with it.
    put(&t, "/vhosts/pv", json!({}), created).await;
    put(&t, "/policies/pv/inpv", policy(), created).await;
    let p = json!({"value": {"uri": "amqp://x"}});
    put(&t, "/parameters/federation-upstream/pv/inpv", p, created).await;
    assert_eq!(t.delete("/vhosts/pv").await, StatusCode::NO_CONTENT);
    let before = stored(&t).await;
    assert_eq!(before.0.as_array().map(Vec::len), Some(1), "{}", before.0);
    assert_eq!(before.0[0]["definition"]["max-length"], 10);
    assert_eq!(before.1[0]["name"], "op");
    assert_eq!(before.2[0]["value"]["uri"], "amqp://upstream");
    assert_eq!(before.3["value"]["region"], "eu");

    t.kill_and_restart().await;
    let after = stored(&t).await;
    assert_eq!(after, before, "stored state changed across SIGKILL");
    assert_eq!(t.get("/policies/%2F/gone").await.0, StatusCode::NOT_FOUND);
    put(&t, "/vhosts/pv", json!({}), created).await;
    assert_eq!(t.get("/policies/pv/inpv").await.0, StatusCode::NOT_FOUND);
    let (s, _) = t.get("/parameters/federation-upstream/pv/inpv").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(t.delete("/vhosts/pv").await, StatusCode::NO_CONTENT);

    // The definitions carry them (RabbitMQ's sections) and import into a
    // fresh node, durably.
    let (s, defs) = t.get("/definitions").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(defs["policies"][0]["name"], "pol");
    assert_eq!(defs["policies"][0]["vhost"], "/");
    assert!(defs["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["component"] == "federation-upstream" && p["name"] == "up"));
    assert!(defs["global_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "cluster_tags" && g["value"]["region"] == "eu"));
    let mut fresh = Target::warren(&[]).await;
    let (s, v) = fresh.send(Method::POST, "/definitions", defs.clone()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (p, _, r, g) = stored(&fresh).await;
    assert_eq!((&p, &r, &g), (&before.0, &before.2, &before.3));
    fresh.kill_and_restart().await;
    let (p2, _, r2, g2) = stored(&fresh).await;
    assert_eq!(
        (p2, r2, g2),
        (p, r, g),
        "imported state lost across SIGKILL"
    );
}
