//! Harness for the management HTTP API tests (`mgmt_api.rs`): a target is
//! warren (spawned with its API on a free port and a short statistics
//! period) or, for differential runs, the RabbitMQ whose management plugin
//! answers on 127.0.0.1:15672 (skipped when there is none).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::node::Node;

/// Where the API tests point.
pub struct Target {
    /// `http://127.0.0.1:PORT/api`.
    pub api: String,
    /// AMQP URL of the same broker.
    pub amqp: String,
    /// AMQP port (for the port-listener check).
    pub amqp_port: u16,
    /// Is it warren (else RabbitMQ 3.10, whose answers differ where the
    /// brief asks more of warren: 4xx for every bad input, fields newer
    /// clients require)?
    pub warren: bool,
    /// Keeps a spawned warren alive.
    _node: Option<Node>,
    http: reqwest::Client,
}

/// A free TCP port (bound then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Target {
    /// A fresh warren with the API on a free port (another free port if
    /// something else took the first before warren bound it).
    pub async fn warren(extra: &[&str]) -> Target {
        for _ in 0..5 {
            if let Some(t) = Target::try_warren(extra).await {
                return t;
            }
        }
        panic!("management API did not start on any of 5 free ports");
    }

    async fn try_warren(extra: &[&str]) -> Option<Target> {
        let port = free_port().to_string();
        let mut args = vec![
            "--management-port",
            &port,
            "--collect-statistics-interval-ms",
            "100",
        ];
        args.extend_from_slice(extra);
        let node = Node::start(&args).await;
        let api = format!("http://127.0.0.1:{port}/api");
        let t = Target {
            api,
            amqp: node.url(),
            amqp_port: node.port,
            warren: true,
            _node: Some(node),
            http: reqwest::Client::new(),
        };
        // The API starts just after the AMQP listener: wait until it
        // answers, and check that it is this node's (its overview lists
        // this node's AMQP port).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = t
                .http
                .get(format!("{}/overview", t.api))
                .basic_auth("guest", Some("guest"))
                .send()
                .await;
            if let Ok(r) = reply {
                let ours = r.status() == StatusCode::OK
                    && r.json::<Value>().await.is_ok_and(|v| {
                        v["listeners"].as_array().is_some_and(|ls| {
                            ls.iter()
                                .any(|l| l["port"].as_u64() == Some(u64::from(t.amqp_port)))
                        })
                    });
                return ours.then_some(t);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// RabbitMQ on 5672/15672, if WARREN_TEST_RABBITMQ_MGMT is set and its
    /// management plugin answers (a differential run is asked for, never
    /// picked up by accident from whatever listens on 15672).
    pub async fn rabbitmq() -> Option<Target> {
        if std::env::var_os("WARREN_TEST_RABBITMQ_MGMT").is_none() {
            eprintln!(
                "WARREN_TEST_RABBITMQ_MGMT not set: differential test against RabbitMQ skipped"
            );
            return None;
        }
        let t = Target {
            api: "http://127.0.0.1:15672/api".into(),
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_port: 5672,
            warren: false,
            _node: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .ok()?,
        };
        let ok = t
            .http
            .get(format!("{}/whoami", t.api))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if !ok {
            eprintln!("no RabbitMQ management on 127.0.0.1:15672: differential test skipped");
        }
        ok.then_some(t)
    }

    /// A request as guest; returns status, headers and the body as JSON
    /// (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
        auth: Option<(&str, &str)>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.api));
        if let Some((u, p)) = auth {
            rb = rb.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("HTTP request failed");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(Method::GET, path, None, &[], Some(("guest", "guest")))
            .await;
        (s, v)
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(
                method,
                path,
                Some(body.to_string().into_bytes()),
                &[],
                Some(("guest", "guest")),
            )
            .await;
        (s, v)
    }

    pub async fn delete(&self, path: &str) -> StatusCode {
        self.call(Method::DELETE, path, None, &[], Some(("guest", "guest")))
            .await
            .0
    }

    /// SIGKILLs the spawned warren and starts it again on the same data
    /// dir and ports; returns once the API answers again.
    pub async fn kill_and_restart(&mut self) {
        let node = self._node.as_mut().expect("a spawned warren");
        node.kill();
        node.restart().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .http
                .get(format!("{}/overview", self.api))
                .basic_auth("guest", Some("guest"))
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            assert!(Instant::now() < deadline, "API did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `path` until `pred` holds (statistics lag by one collection
    /// period: 100 ms for warren here, 5 s for a default RabbitMQ).
    pub async fn wait_for(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (s, v) = self.get(path).await;
            if s == StatusCode::OK && pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: condition not met; last answer {s} {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Generates `warren_NAME` and `rabbitmq_NAME` tests running `check` on
/// each target.
#[macro_export]
macro_rules! both {
    ($name:ident, $check:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn warren() {
                let t = $crate::mgmt::Target::warren(&[]).await;
                $check(&t).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rabbitmq() {
                if let Some(t) = $crate::mgmt::Target::rabbitmq().await {
                    $check(&t).await;
                }
            }
        }
    };
}
