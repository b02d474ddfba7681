//! Everything in one process on an embedded warren, driven over HTTP with reqwest.

use reqwest::StatusCode;
use serde_json::Value;
use service_kit::{Message, PublisherConfig};
use warren_reference_service::model::{score_of, User, USER_REGISTERED};

use crate::harness::{counter, embedded, eventually, get_one, raw, TempDir};

fn base(sys: &warren_reference_service::System) -> String {
    format!("http://{}", sys.http_addr)
}

async fn register(base: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_is_accepted_and_mailed_exactly_once_even_when_redelivered() {
    let dir = TempDir::new("once");
    let sys = embedded(&dir).await;
    let (status, body) = register(
        &base(&sys),
        serde_json::json!({"email": "ann@example.com", "name": "Ann"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let message_id = body["message_id"].as_str().unwrap().to_owned();
    let n = sys.notifier.clone().unwrap();
    eventually("the welcome mail", || n.sent.get(&id).is_some()).await;
    // The same event again, with the same message id (what a redelivery after a lost ack is).
    let user = sys.users.as_ref().unwrap().get(&id).unwrap();
    let ev = serde_json::json!({"user": user, "accepted_at_us": 0}).to_string();
    let p = sys.kit().publisher(PublisherConfig::default());
    p.publish(Message::new(&sys.names.exchange, USER_REGISTERED, ev).with_id(&message_id))
        .await
        .unwrap();
    let m = sys.kit().metrics().clone();
    eventually("the duplicate to be dropped", || m.duplicates.get() == 1).await;
    assert_eq!(n.sent.get(&id).unwrap().count, 1, "mailed exactly once");
    assert_eq!(sys.observed.app.completed.get(), 1);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_with_the_same_idempotency_key_is_one_user_and_one_mail() {
    let dir = TempDir::new("idem");
    let sys = embedded(&dir).await;
    let client = reqwest::Client::new();
    let mut ids = vec![];
    for _ in 0..2 {
        let r = client
            .post(format!("{}/users", base(&sys)))
            .header("idempotency-key", "signup-42")
            .json(&serde_json::json!({"email": "bo@example.com", "name": "Bo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message_id"], "signup-42");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);
    let m = sys.kit().metrics().clone();
    eventually("the second publish to be dropped", || {
        m.duplicates.get() == 1
    })
    .await;
    assert_eq!(
        sys.notifier
            .as_ref()
            .unwrap()
            .sent
            .get(&ids[0])
            .unwrap()
            .count,
        1
    );
    assert_eq!(sys.users.as_ref().unwrap().len(), 1);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_get_400_with_a_clear_error_and_publish_nothing() {
    let dir = TempDir::new("invalid");
    let sys = embedded(&dir).await;
    let client = reqwest::Client::new();
    let cases: [(&str, &str); 5] = [
        ("not json", "invalid JSON body"),
        (r#"{"email":"ann@example.com"}"#, "missing field `name`"),
        (
            r#"{"email":"ann","name":"Ann"}"#,
            "email: not an e-mail address",
        ),
        (
            r#"{"email":"a@b.io","name":"   "}"#,
            "name: must not be empty",
        ),
        (
            r#"{"email":"a@b.io","name":"A","role":"admin"}"#,
            "unknown field `role`",
        ),
    ];
    for (body, want) in cases {
        let r = client
            .post(format!("{}/users", base(&sys)))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap();
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(want), "{body}: {err}");
    }
    assert_eq!(sys.observed.app.invalid.get(), 5);
    assert_eq!(sys.kit().metrics().published.get(), 0);
    assert!(sys.users.as_ref().unwrap().is_empty());
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_queue_with_its_error() {
    let dir = TempDir::new("poison");
    let sys = embedded(&dir).await;
    // A mailbox the dependency rejects for good.
    let (status, _) = register(
        &base(&sys),
        serde_json::json!({"email": "gone@mail.invalid", "name": "Gone"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_c, ch) = raw(&sys.url).await;
    let m = get_one(&ch, &sys.names.notify_dlq).await;
    let h = m.delivery.properties.headers().clone().unwrap();
    let err = service_kit::message::header_str(&h, "x-last-error").unwrap();
    assert!(err.contains("550"), "{err}");
    // An event nobody can read.
    let p = sys.kit().publisher(PublisherConfig::default());
    p.publish(Message::new(
        &sys.names.exchange,
        USER_REGISTERED,
        "{garbage",
    ))
    .await
    .unwrap();
    let m = get_one(&ch, &sys.names.notify_dlq).await;
    let h = m.delivery.properties.headers().clone().unwrap();
    let err = service_kit::message::header_str(&h, "x-last-error").unwrap();
    assert!(err.contains("unreadable"), "{err}");
    let km = sys.kit().metrics().clone();
    eventually("two dead-lettered", || km.dead_lettered.get() == 2).await;
    assert_eq!(sys.observed.app.completed.get(), 0);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_mail_failures_are_retried_through_the_broker_until_sent() {
    let dir = TempDir::new("retry");
    let sys = embedded(&dir).await;
    let (status, body) = register(
        &base(&sys),
        serde_json::json!({"email": "cy+fail2@example.com", "name": "Cy"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["id"].as_str().unwrap().to_owned();
    let n = sys.notifier.clone().unwrap();
    eventually("the mail after two failures", || n.sent.get(&id).is_some()).await;
    let sent = n.sent.get(&id).unwrap();
    assert_eq!((sent.count, sent.attempt), (1, 3));
    assert_eq!(sys.kit().metrics().retried.get(), 2);
    assert_eq!(sys.observed.app.mail_transient.get(), 2);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_score_endpoint_is_answered_by_the_scorer_over_rpc() {
    let dir = TempDir::new("score");
    let sys = embedded(&dir).await;
    let (_, body) = register(
        &base(&sys),
        serde_json::json!({"email": "di@example.com", "name": "Di"}),
    )
    .await;
    let id = body["id"].as_str().unwrap();
    let r = reqwest::get(format!("{}/users/{id}/score", base(&sys)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let user = User {
        id: id.into(),
        email: "di@example.com".into(),
        name: "Di".into(),
    };
    assert_eq!(v["score"].as_u64(), Some(score_of(&user) as u64));
    assert_eq!(sys.observed.app.scored.get(), 1);
    let r = reqwest::get(format!("{}/users/nobody/score", base(&sys)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_traceparent_arrives_at_the_worker() {
    let dir = TempDir::new("trace");
    let sys = embedded(&dir).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = reqwest::Client::new()
        .post(format!("{}/users", base(&sys)))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({"email": "ed@example.com", "name": "Ed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let n = sys.notifier.clone().unwrap();
    eventually("the mail", || n.sent.get(&id).is_some()).await;
    assert_eq!(n.sent.get(&id).unwrap().trace_id.as_deref(), Some(trace_id));
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_with_the_kit_and_service_counters() {
    let dir = TempDir::new("obs");
    let sys = embedded(&dir).await;
    let (status, body) = register(
        &base(&sys),
        serde_json::json!({"email": "fa@example.com", "name": "Fa"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["id"].as_str().unwrap().to_owned();
    let n = sys.notifier.clone().unwrap();
    eventually("the mail", || n.sent.get(&id).is_some()).await;
    let h = reqwest::get(format!("{}/health", base(&sys)))
        .await
        .unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    let text = h.text().await.unwrap();
    assert!(text.contains(&sys.names.notify_queue), "{text}");
    let m = reqwest::get(format!("{}/metrics", base(&sys)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(counter(&m, "service_kit_confirmed_total"), Some(1.0), "{m}");
    assert_eq!(counter(&m, "refsvc_accepted_total"), Some(1.0), "{m}");
    assert_eq!(counter(&m, "refsvc_completed_total"), Some(1.0), "{m}");
    assert!(
        m.contains("refsvc_completion_latency_seconds_count 1"),
        "{m}"
    );
    assert_eq!(m.matches("# EOF").count(), 1);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_knobs_all_complete_the_work() {
    let dir = TempDir::new("knobs");
    let sys = embedded(&dir).await;
    let client = reqwest::Client::new();
    let knobs = [
        ("inline=1", StatusCode::CREATED),
        ("confirm=0", StatusCode::ACCEPTED),
        ("persistent=0", StatusCode::ACCEPTED),
        ("conn=per-request", StatusCode::ACCEPTED),
        (
            "conn=per-request&confirm=0&persistent=0",
            StatusCode::ACCEPTED,
        ),
    ];
    for (i, (q, want)) in knobs.iter().enumerate() {
        let r = client
            .post(format!("{}/users?{q}", base(&sys)))
            .json(&serde_json::json!({"email": format!("k{i}@example.com"), "name": "K"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), *want, "{q}");
    }
    let app = sys.observed.app.clone();
    eventually("all five mails", || app.completed.get() == 5).await;
    // The kit's publisher confirmed only `persistent=0` (the others took the direct paths or none).
    assert_eq!(sys.kit().metrics().confirmed.get(), 1);
    sys.shutdown().await;
}
