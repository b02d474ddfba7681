//! The Prometheus endpoints' optional Basic auth (`--prometheus-auth`):
//! off by default; on, only users tagged monitoring or administrator may
//! scrape, every refusal is a 401 with a challenge, and malformed
//! credentials never take the listener down. The auth-attempt counters the
//! endpoints show count those logins (and AMQP's).

use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::uniq;
use crate::mgmt::Target;
use crate::tls::free_port;

/// How a scrape presents itself.
enum Cred<'a> {
    /// No `Authorization` header.
    None,
    /// `Basic base64(user:pass)`.
    User(&'a str, &'a str),
    /// This `Authorization` header as is.
    Raw(&'a str),
}

/// One GET of `path` on the metrics port: status, the challenge (if any)
/// and the body.
async fn scrape(port: u16, path: &str, cred: Cred<'_>) -> (StatusCode, Option<String>, String) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut rb = http.get(format!("http://127.0.0.1:{port}{path}"));
        rb = match &cred {
            Cred::None => rb,
            Cred::User(u, p) => rb.basic_auth(u, Some(p)),
            Cred::Raw(h) => rb.header(AUTHORIZATION, *h),
        };
        match rb.send().await {
            Ok(r) => {
                let status = r.status();
                let challenge = r
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                return (status, challenge, r.text().await.unwrap_or_default());
            }
            // The metrics listener starts with the API's runtime.
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("scraping {path}: {e}"),
        }
    }
}

/// The value of the series `series` (name with labels) in a scrape.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn prometheus_unauthenticated_by_default() {
    let port = free_port();
    let p = port.to_string();
    let _t = Target::warren(&["--prometheus-port", &p]).await;
    let (status, challenge, body) = scrape(port, "/metrics", Cred::None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(challenge, None);
    assert!(body.contains("rabbitmq_identity_info{"), "{body}");
    // Credentials are ignored when auth is off, even malformed ones.
    let (status, _, _) = scrape(port, "/metrics", Cred::Raw("Basic !!!")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn prometheus_auth_needs_the_monitoring_tag() {
    let port = free_port();
    let p = port.to_string();
    let t = Target::warren(&["--prometheus-port", &p, "--prometheus-auth"]).await;
    let (mon, mgr, adm) = (uniq("mon"), uniq("mgr"), uniq("adm"));
    for (user, tags) in [
        (&mon, "monitoring"),
        (&mgr, "management"),
        (&adm, "administrator"),
    ] {
        let (s, _) = t
            .send(
                Method::PUT,
                &format!("/users/{user}"),
                json!({"password": "secret", "tags": tags}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "creating {user}");
    }
    let refused = [
        ("no credentials", Cred::None),
        ("management only", Cred::User(&mgr, "secret")),
        ("wrong password", Cred::User(&mon, "nope")),
        ("unknown user", Cred::User("nobody-here", "secret")),
        ("bad base64", Cred::Raw("Basic !!!not*base64")),
        ("no colon", Cred::Raw("Basic bm9jb2xvbg==")),
        ("not UTF-8", Cred::Raw("Basic //46/w==")),
        ("other scheme", Cred::Raw("Bearer abc")),
    ];
    for (what, cred) in refused {
        let (status, challenge, body) = scrape(port, "/metrics", cred).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        let c = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(c.starts_with("Basic realm="), "{what}: {c}");
        assert!(!body.contains("rabbitmq_"), "{what}: metrics leaked");
    }
    // A failed AMQP login, counted with protocol amqp091.
    let bad = t.amqp.replacen("guest:guest@", "guest:wrong@", 1);
    assert_ne!(bad, t.amqp);
    assert!(Connection::connect(&bad, ConnectionProperties::default())
        .await
        .is_err());
    for user in [&mon, &adm] {
        for path in [
            "/metrics",
            "/metrics/per-object",
            "/metrics/memory-breakdown",
        ] {
            let (status, _, body) = scrape(port, path, Cred::User(user, "secret")).await;
            assert_eq!(status, StatusCode::OK, "{user} {path}: {body}");
            assert!(body.contains("rabbitmq_identity_info{"), "{path}");
        }
    }
    let (status, _, body) = scrape(
        port,
        "/metrics/detailed?family=auth_attempt_metrics",
        Cred::User(&mon, "secret"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Failed logins above: wrong password, unknown user, bad base64, no
    // colon, not UTF-8 (5; the two without Basic credentials are no
    // attempt, and the management-only user logged in, then lacked the
    // tag). The API calls and the scrapes that answered 200 succeeded.
    let http = |n: &str| {
        value(
            &body,
            &format!("rabbitmq_detailed_{n}{{protocol=\"http\"}}"),
        )
    };
    assert!(
        http("auth_attempts_failed_total").is_some_and(|v| v >= 5.0),
        "{body}"
    );
    assert!(
        http("auth_attempts_succeeded_total").is_some_and(|v| v >= 7.0),
        "{body}"
    );
    let amqp = |n: &str| {
        value(
            &body,
            &format!("rabbitmq_detailed_{n}{{protocol=\"amqp091\"}}"),
        )
    };
    assert!(
        amqp("auth_attempts_failed_total").is_some_and(|v| v >= 1.0),
        "{body}"
    );
    assert!(
        amqp("auth_attempts_total").is_some_and(|v| v >= 1.0),
        "{body}"
    );
}
