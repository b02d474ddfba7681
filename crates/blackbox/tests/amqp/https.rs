//! HTTPS for the management API (15671) and the metrics (15691), warren
//! only (the shared RabbitMQ has no TLS). The certificates are made per
//! test as in `tls.rs`; the listeners use the AMQPS settings and reload.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{external_broker, WAIT};
use crate::tls::{free_port, sighup, start, write_server_files, Ca, Leaf, TlsNode};

/// A warren with AMQPS and both HTTPS listeners, plus the plain API.
struct HttpsNode {
    /// The process and its files.
    node: TlsNode,
    /// Management API, HTTPS.
    api_tls: u16,
    /// Management API, plain HTTP.
    api_plain: u16,
    /// Metrics, HTTPS.
    metrics_tls: u16,
}

async fn start_https(ca: &Ca, server: &Leaf, extra: &[&str]) -> HttpsNode {
    let (api_tls, api_plain, metrics_tls) = (free_port(), free_port(), free_port());
    let ports = [api_tls, api_plain, metrics_tls].map(|p| p.to_string());
    let mut args = vec![
        "--management-tls-port",
        &ports[0],
        "--management-port",
        &ports[1],
        "--prometheus-tls-port",
        &ports[2],
    ];
    args.extend_from_slice(extra);
    let node = start(ca, server, &args).await;
    for port in [api_tls, api_plain, metrics_tls] {
        let mut up = false;
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(up, "listener on {port} did not come up");
    }
    HttpsNode {
        node,
        api_tls,
        api_plain,
        metrics_tls,
    }
}

/// A client trusting `ca_pem` only (none: no CA at all), with an optional
/// client certificate; `localhost` resolves to 127.0.0.1 (the server
/// certificate's name, the listeners' address).
fn client(ca_pem: Option<&str>, identity: Option<&Leaf>, port: u16) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .timeout(WAIT);
    if let Some(pem) = ca_pem {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    if let Some(leaf) = identity {
        let pem = format!("{}{}", leaf.pem, leaf.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// GET `https://localhost:port{path}` as guest.
async fn get(c: &reqwest::Client, port: u16, path: &str) -> reqwest::Result<reqwest::Response> {
    c.get(format!("https://localhost:{port}{path}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
}

/// The overview over HTTPS, as JSON.
async fn overview(c: &reqwest::Client, port: u16) -> Value {
    let r = get(c, port, "/api/overview").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Sends plain HTTP to a TLS port: the connection must end promptly
/// without an HTTP answer (a TLS alert at most).
async fn plain_http_is_refused(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /api/overview HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await;
    assert!(
        r.is_ok(),
        "plain HTTP client on the HTTPS port left hanging"
    );
    assert!(!got.starts_with(b"HTTP"), "got an HTTP answer: {got:?}");
    assert!(
        got.is_empty() || got[0] == 0x15,
        "expected a TLS alert: {got:?}"
    );
    // And through a real HTTP client.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/overview"))
        .timeout(WAIT)
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP on the HTTPS port answered: {r:?}");
}

#[tokio::test]
async fn api_and_metrics_over_https() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    let n = start_https(&ca, &server, &[]).await;
    let c = client(Some(&ca.pem), None, n.api_tls);
    let o = overview(&c, n.api_tls).await;
    let listeners = o["listeners"].as_array().unwrap();
    let find = |proto: &str| {
        listeners
            .iter()
            .find(|l| l["protocol"] == proto)
            .unwrap_or_else(|| panic!("no {proto} listener in {listeners:?}"))
    };
    assert_eq!(find("https")["port"], n.api_tls);
    assert_eq!(find("https")["tls"], true);
    assert_eq!(find("http")["port"], n.api_plain);
    assert_eq!(find("http")["tls"], false);
    assert_eq!(find("https/prometheus")["port"], n.metrics_tls);
    assert_eq!(find("amqp/ssl")["tls"], true);
    // The health check knows the HTTPS listener.
    let r = get(
        &c,
        n.api_tls,
        &format!("/api/health/checks/port-listener/{}", n.api_tls),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The plain listener stays.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/overview", n.api_plain))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Basic auth applies over HTTPS as over HTTP.
    let r = c
        .get(format!("https://localhost:{}/api/overview", n.api_tls))
        .basic_auth("guest", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Metrics over HTTPS.
    let m = client(Some(&ca.pem), None, n.metrics_tls);
    let r = get(&m, n.metrics_tls, "/metrics").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("rabbitmq_identity_info"), "{text}");
    // A client that does not trust the CA is refused, on both listeners.
    let stranger = client(None, None, n.api_tls);
    assert!(get(&stranger, n.api_tls, "/api/overview").await.is_err());
    let other_ca = Ca::new("other-ca");
    let wrong = client(Some(&other_ca.pem), None, n.metrics_tls);
    assert!(get(&wrong, n.metrics_tls, "/metrics").await.is_err());
    // Plain HTTP on the HTTPS ports: a clean failure, and they keep serving.
    plain_http_is_refused(n.api_tls).await;
    plain_http_is_refused(n.metrics_tls).await;
    // A client that connects and sends nothing holds nobody up.
    let _idle = TcpStream::connect(("127.0.0.1", n.api_tls)).await.unwrap();
    overview(&c, n.api_tls).await;
    let r = get(&m, n.metrics_tls, "/metrics").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn https_client_certificates_verified() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    let n = start_https(
        &ca,
        &server,
        &[
            "--tls-verify-peer",
            "true",
            "--tls-fail-if-no-peer-cert",
            "true",
        ],
    )
    .await;
    let me = ca.leaf("someone", &[], false);
    let c = client(Some(&ca.pem), Some(&me), n.api_tls);
    overview(&c, n.api_tls).await;
    let m = client(Some(&ca.pem), Some(&me), n.metrics_tls);
    let r = get(&m, n.metrics_tls, "/metrics").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // No certificate, or one from another CA: refused (fail_if_no_peer_cert).
    let anonymous = client(Some(&ca.pem), None, n.api_tls);
    assert!(get(&anonymous, n.api_tls, "/api/overview").await.is_err());
    let anonymous = client(Some(&ca.pem), None, n.metrics_tls);
    assert!(get(&anonymous, n.metrics_tls, "/metrics").await.is_err());
    let rogue = Ca::new("rogue-ca").leaf("someone", &[], false);
    let r = client(Some(&ca.pem), Some(&rogue), n.api_tls);
    assert!(get(&r, n.api_tls, "/api/overview").await.is_err());
    // The verified client carries on.
    overview(&c, n.api_tls).await;
}

#[tokio::test]
async fn https_optional_client_certificate() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    // verify_peer without fail_if_no_peer_cert: a certificate is asked
    // for, checked if given, and may be left out.
    let n = start_https(&ca, &server, &["--tls-verify-peer"]).await;
    overview(&client(Some(&ca.pem), None, n.api_tls), n.api_tls).await;
    let me = ca.leaf("someone", &[], false);
    overview(&client(Some(&ca.pem), Some(&me), n.api_tls), n.api_tls).await;
    let rogue = Ca::new("rogue-ca").leaf("someone", &[], false);
    let r = client(Some(&ca.pem), Some(&rogue), n.api_tls);
    assert!(get(&r, n.api_tls, "/api/overview").await.is_err());
}

#[tokio::test]
async fn https_certificate_reload() {
    if external_broker() {
        return;
    }
    let ca1 = Ca::new("ca-one");
    let n = start_https(&ca1, &ca1.leaf("localhost", &["localhost"], false), &[]).await;
    let old = client(Some(&ca1.pem), None, n.api_tls);
    overview(&old, n.api_tls).await;
    let ca2 = Ca::new("ca-two");
    write_server_files(
        &n.node.dir,
        &ca2,
        &ca2.leaf("localhost", &["localhost"], false),
    );
    let new = client(Some(&ca2.pem), None, n.api_tls);
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if get(&new, n.api_tls, "/api/overview").await.is_ok() {
            switched = true;
            break;
        }
    }
    assert!(switched, "new certificate not served after the file change");
    overview(&new, n.api_tls).await;
    // A fresh client trusting the old CA only is refused now (the old
    // client's pooled connection may live on, as established AMQPS ones do).
    let fresh_old = client(Some(&ca1.pem), None, n.api_tls);
    assert!(get(&fresh_old, n.api_tls, "/api/overview").await.is_err());
    // The metrics listener reloaded too (the same holder).
    let m = client(Some(&ca2.pem), None, n.metrics_tls);
    let r = get(&m, n.metrics_tls, "/metrics").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m_old = client(Some(&ca1.pem), None, n.metrics_tls);
    assert!(get(&m_old, n.metrics_tls, "/metrics").await.is_err());
    // SIGHUP keeps the listeners up.
    sighup(n.node.child.id());
    tokio::time::sleep(Duration::from_millis(200)).await;
    overview(&new, n.api_tls).await;
}

#[tokio::test]
async fn https_listener_off_with_port_0() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    // management_tls_port 0: no HTTPS API; the metrics' HTTPS stays.
    let metrics_tls = free_port();
    let mt = metrics_tls.to_string();
    let api_plain = free_port();
    let ap = api_plain.to_string();
    let node = start(
        &ca,
        &server,
        &[
            "--management-port",
            &ap,
            "--management-tls-port",
            "0",
            "--prometheus-tls-port",
            &mt,
        ],
    )
    .await;
    let m = client(Some(&ca.pem), None, metrics_tls);
    let mut up = false;
    for _ in 0..100 {
        if get(&m, metrics_tls, "/metrics").await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "metrics HTTPS did not come up");
    let o: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{api_plain}/api/overview"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let protos: Vec<&str> = o["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["protocol"].as_str())
        .collect();
    assert!(!protos.contains(&"https"), "{protos:?}");
    assert!(protos.contains(&"https/prometheus"), "{protos:?}");
    drop(node);
}
