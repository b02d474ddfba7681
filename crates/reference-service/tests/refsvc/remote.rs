//! Remote mode: a real `target/debug/warren`, the API in this process, the notifier and the scorer
//! as separate `reference-service` processes (`--mode remote --role ...`).

use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;
use warren_reference_service::{Mode, Role, System};

use crate::harness::{
    counter, eventually, first_match, settings, wait_healthy, TempDir, Warren, WAIT,
};

/// A `reference-service` child process; killed on drop.
struct Proc {
    child: Child,
    /// `http://ADDR` of its `/health` and `/metrics`.
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_role(role: &str, url: &str, prefix: &str, dir: &TempDir) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference-service"))
        .args(["--mode", "remote", "--url", url, "--role", role])
        .args(["--http", "127.0.0.1:0", "--prefix", prefix])
        .args(["--mail-latency-ms", "5", "--retry-delays-ms", "50"])
        .arg("--data-dir")
        .arg(dir.0.join(role))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let rest = first_match(child.stdout.take().unwrap(), "reference-service: http://");
    let addr = rest.split_whitespace().next().unwrap().to_owned();
    Proc {
        child,
        base: format!("http://{addr}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_against_a_real_warren() {
    let warren = Warren::start();
    let dir = TempDir::new("remote");
    let mut s = settings(&dir);
    s.mode = Mode::Remote;
    s.url = Some(warren.url.clone());
    s.role = Role::Api;
    s.bench_knobs = false;
    let prefix = s.prefix.clone();
    let api = System::start(s).await.unwrap();
    let base = format!("http://{}", api.http_addr);
    assert!(api.notifier.is_none());
    let notifier = spawn_role("notifier", &warren.url, &prefix, &dir);
    let scorer = spawn_role("scorer", &warren.url, &prefix, &dir);
    for b in [&base, &notifier.base, &scorer.base] {
        wait_healthy(b).await;
    }
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/users"))
        .json(&serde_json::json!({"email": "gu@example.com", "name": "Gu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    // The notifier process sent it: its own /metrics says so.
    let start = std::time::Instant::now();
    loop {
        let m = reqwest::get(format!("{}/metrics", notifier.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if counter(&m, "refsvc_completed_total") == Some(1.0) {
            break;
        }
        assert!(start.elapsed() < WAIT, "notifier never completed: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = reqwest::get(format!("{base}/users/{id}/score"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let scorer_metrics = reqwest::get(format!("{}/metrics", scorer.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(counter(&scorer_metrics, "refsvc_scored_total"), Some(1.0));
    // Without --bench-knobs the knobs are refused.
    let r = client
        .post(format!("{base}/users?inline=1"))
        .json(&serde_json::json!({"email": "ha@example.com", "name": "Ha"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The API process alone has no workers: nothing was completed here.
    let app = api.observed.app.clone();
    eventually("the API's accepted counter", || app.accepted.get() == 1).await;
    assert_eq!(app.completed.get(), 0);
    api.shutdown().await;
}
