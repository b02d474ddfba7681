//! AMQPS (warren only: the shared RabbitMQ has no TLS listener). Each test
//! makes its own CA and certificates with rcgen, starts warren with a TLS
//! listener, and connects with lapin (rustls) and a raw TLS client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, ProtocolVersion, WriteContext};
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as RawTable, LongString};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{external_broker, spawn_process, uniq, WAIT};

/// A certificate authority that signs test certificates.
pub(crate) struct Ca {
    /// Signs leaves.
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, PEM.
    pub(crate) pem: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf certificate named `cn` (and `sans`), expired if asked.
    pub(crate) fn leaf(&self, cn: &str, sans: &[&str], expired: bool) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A certificate and its key.
pub(crate) struct Leaf {
    /// Certificate, PEM.
    pub(crate) pem: String,
    /// Certificate, DER.
    der: Vec<u8>,
    /// Key, PKCS#8 DER.
    key_der: Vec<u8>,
    /// Key, PEM.
    pub(crate) key_pem: String,
}

impl Leaf {
    /// The PKCS#12 identity lapin presents as a client certificate.
    fn identity(&self) -> OwnedIdentity {
        let chain = vec![p12_keystore::Certificate::from_der(&self.der).unwrap()];
        let entry = p12_keystore::PrivateKeyChain::new(&self.key_der, b"id1", chain);
        let mut ks = p12_keystore::KeyStore::new();
        ks.add_entry(
            "client",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(entry),
        );
        OwnedIdentity {
            der: ks.writer("pw").write().unwrap(),
            password: "pw".to_string(),
        }
    }
}

/// A warren with a TLS listener, its files, and its ports.
pub(crate) struct TlsNode {
    /// The warren process.
    pub(crate) child: std::process::Child,
    /// Its data folder and certificate files.
    pub(crate) dir: PathBuf,
    /// Plain AMQP port.
    port: u16,
    /// AMQPS port.
    tls_port: u16,
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Writes the server's certificate files into `dir`.
pub(crate) fn write_server_files(dir: &Path, ca: &Ca, server: &Leaf) {
    std::fs::write(dir.join("cert.pem"), &server.pem).unwrap();
    std::fs::write(dir.join("key.pem"), &server.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
}

pub(crate) async fn start(ca: &Ca, server: &Leaf, extra: &[&str]) -> TlsNode {
    let dir = std::env::temp_dir().join(uniq("warren-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    write_server_files(&dir, ca, server);
    let tls_port = free_port();
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let (cert, key, cafile, tp) = (
        p("cert.pem"),
        p("key.pem"),
        p("ca.pem"),
        tls_port.to_string(),
    );
    let mut args = vec![
        "--tls-port",
        &tp,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-file",
        &cafile,
    ];
    if !extra.contains(&"--tls-reload-check-interval-ms") {
        args.extend_from_slice(&["--tls-reload-check-interval-ms", "100"]);
    }
    args.extend_from_slice(extra);
    let (child, rx) = spawn_process(&dir.join("data"), 0, &args);
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("warren did not start");
    let node = TlsNode {
        child,
        dir,
        port,
        tls_port,
    };
    // The TLS listener is bound right after the plain one.
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", tls_port)).await.is_ok() {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("TLS listener on {tls_port} did not come up");
}

fn amqps_url(port: u16, query: &str) -> String {
    format!("amqps://guest:guest@localhost:{port}/%2f{query}")
}

async fn connect_tls(
    port: u16,
    query: &str,
    ca_pem: &str,
    identity: Option<OwnedIdentity>,
) -> lapin::Result<Connection> {
    let cfg = OwnedTLSConfig {
        identity,
        cert_chain: Some(ca_pem.to_string()),
    };
    tokio::time::timeout(
        WAIT,
        Connection::connect_with_config(
            &amqps_url(port, query),
            ConnectionProperties::default(),
            cfg,
        ),
    )
    .await
    .expect("TLS connect timed out")
}

/// Declares a queue, publishes `n` messages and gets them all back.
async fn round_trip(conn: &Connection, n: usize) {
    let ch = conn.create_channel().await.unwrap();
    let q = uniq("tls");
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    for i in 0..n {
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    for i in 0..n {
        let m = ch
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("message");
        assert_eq!(m.delivery.data, format!("m{i}").as_bytes());
    }
    ch.close(200, "bye").await.unwrap();
}

/// A consumer over TLS receives a burst published over TLS in order.
async fn consume_burst(conn: &Connection, n: usize) {
    use futures_lite::StreamExt;
    let ch = conn.create_channel().await.unwrap();
    let q = uniq("tls-burst");
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(&q, "c", Default::default(), FieldTable::default())
        .await
        .unwrap();
    let body = vec![7u8; 1000];
    for _ in 0..n {
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    for i in 0..n {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("delivery {i} timed out"))
            .expect("consumer ended")
            .unwrap();
        assert_eq!(d.data.len(), 1000);
        d.ack(Default::default()).await.unwrap();
    }
}

#[tokio::test]
async fn amqps_without_client_certificates() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    let node = start(&ca, &server, &[]).await;
    let conn = connect_tls(node.tls_port, "", &ca.pem, None).await.unwrap();
    round_trip(&conn, 50).await;
    consume_burst(&conn, 2000).await;
    // verify_none: the server asks for no certificate, so EXTERNAL is not offered.
    let mechs = raw_tls_mechanisms(node.tls_port, &ca.pem, None).await;
    assert_eq!(mechs, "PLAIN AMQPLAIN");
    conn.close(200, "bye").await.unwrap();
}

#[tokio::test]
async fn client_certificates_verified_and_external_login() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    let node = start(
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
    let guest = ca.leaf("guest", &[], false);
    // PLAIN with a client certificate.
    let plain = connect_tls(node.tls_port, "", &ca.pem, Some(guest.identity()))
        .await
        .unwrap();
    // EXTERNAL: the certificate's CN is the user.
    let external = connect_tls(
        node.tls_port,
        "?auth_mechanism=external",
        &ca.pem,
        Some(guest.identity()),
    )
    .await
    .unwrap();
    round_trip(&external, 5).await;
    assert_eq!(
        raw_tls_mechanisms(node.tls_port, &ca.pem, Some(&guest)).await,
        "PLAIN AMQPLAIN EXTERNAL"
    );
    // Refused: no certificate, an untrusted CA, an expired certificate, a
    // CN that is no user (EXTERNAL). Each is a clean, prompt refusal.
    assert!(connect_tls(node.tls_port, "", &ca.pem, None).await.is_err());
    let rogue = Ca::new("rogue-ca").leaf("guest", &[], false);
    assert!(
        connect_tls(node.tls_port, "", &ca.pem, Some(rogue.identity()))
            .await
            .is_err()
    );
    let expired = ca.leaf("guest", &[], true);
    assert!(
        connect_tls(node.tls_port, "", &ca.pem, Some(expired.identity()))
            .await
            .is_err()
    );
    let nobody = ca.leaf("nobody", &[], false);
    let r = connect_tls(
        node.tls_port,
        "?auth_mechanism=external",
        &ca.pem,
        Some(nobody.identity()),
    )
    .await;
    assert!(r.is_err(), "EXTERNAL as a user that does not exist");
    // The clients already connected carry on.
    round_trip(&plain, 5).await;
    round_trip(&external, 5).await;
}

#[tokio::test]
async fn external_is_refused_without_a_verified_certificate() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    // verify_peer, but a client may come without a certificate.
    let node = start(&ca, &server, &["--tls-verify-peer"]).await;
    let conn = connect_tls(node.tls_port, "", &ca.pem, None).await.unwrap();
    assert_eq!(
        raw_tls_mechanisms(node.tls_port, &ca.pem, None).await,
        "PLAIN AMQPLAIN"
    );
    // EXTERNAL claiming "guest" in its response: the response is never
    // taken as the identity, over TLS without a certificate or plain TCP.
    let tls = tls_stream(node.tls_port, &ca.pem, None).await;
    assert_refused(tls, "guest").await;
    let tcp = TcpStream::connect(("127.0.0.1", node.port)).await.unwrap();
    assert_refused(tcp, "guest").await;
    round_trip(&conn, 3).await;
}

#[tokio::test]
async fn wrong_protocol_on_each_port_is_refused_cleanly() {
    if external_broker() {
        return;
    }
    let ca = Ca::new("test-ca");
    let server = ca.leaf("localhost", &["localhost"], false);
    let node = start(&ca, &server, &[]).await;
    let tls_client = connect_tls(node.tls_port, "", &ca.pem, None).await.unwrap();
    let plain_client = Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{}/%2f", node.port),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    // Plain AMQP on the TLS port: the connection ends promptly (a TLS
    // alert, then EOF), never an AMQP answer.
    let mut s = TcpStream::connect(("127.0.0.1", node.tls_port))
        .await
        .unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "plain client on the TLS port left hanging");
    assert!(!got.starts_with(b"AMQP"), "got an AMQP answer: {got:?}");
    assert!(
        got.is_empty() || got[0] == 0x15,
        "expected a TLS alert: {got:?}"
    );
    // TLS on the plain port: the handshake fails promptly.
    let r = tokio::time::timeout(
        WAIT,
        Connection::connect_with_config(
            &amqps_url(node.port, ""),
            ConnectionProperties::default(),
            OwnedTLSConfig {
                identity: None,
                cert_chain: Some(ca.pem.clone()),
            },
        ),
    )
    .await
    .expect("TLS client on the plain port left hanging");
    assert!(r.is_err());
    round_trip(&tls_client, 3).await;
    round_trip(&plain_client, 3).await;
}

#[tokio::test]
async fn certificate_reload_keeps_connections() {
    if external_broker() {
        return;
    }
    let ca1 = Ca::new("ca-one");
    let node = start(&ca1, &ca1.leaf("localhost", &["localhost"], false), &[]).await;
    let old = connect_tls(node.tls_port, "", &ca1.pem, None)
        .await
        .unwrap();
    // New certificate from another CA: picked up on the file change.
    let ca2 = Ca::new("ca-two");
    write_server_files(
        &node.dir,
        &ca2,
        &ca2.leaf("localhost", &["localhost"], false),
    );
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if connect_tls(node.tls_port, "", &ca2.pem, None).await.is_ok() {
            switched = true;
            break;
        }
    }
    assert!(switched, "new certificate not served after the file change");
    assert!(connect_tls(node.tls_port, "", &ca1.pem, None)
        .await
        .is_err());
    round_trip(&old, 3).await;
    // SIGHUP reloads too (with file checks this would happen anyway, so
    // this only shows SIGHUP does not kill the broker).
    sighup(node.child.id());
    tokio::time::sleep(Duration::from_millis(200)).await;
    round_trip(&old, 3).await;
    let new = connect_tls(node.tls_port, "", &ca2.pem, None)
        .await
        .unwrap();
    round_trip(&new, 3).await;
}

#[tokio::test]
async fn sighup_reloads_certificate() {
    if external_broker() {
        return;
    }
    let ca1 = Ca::new("ca-one");
    let leaf = ca1.leaf("localhost", &["localhost"], false);
    // File checks off: SIGHUP only.
    let node = start(&ca1, &leaf, &["--tls-reload-check-interval-ms", "0"]).await;
    let old = connect_tls(node.tls_port, "", &ca1.pem, None)
        .await
        .unwrap();
    let ca2 = Ca::new("ca-two");
    write_server_files(
        &node.dir,
        &ca2,
        &ca2.leaf("localhost", &["localhost"], false),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        connect_tls(node.tls_port, "", &ca2.pem, None)
            .await
            .is_err(),
        "reloaded without SIGHUP although file checks are off"
    );
    sighup(node.child.id());
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if connect_tls(node.tls_port, "", &ca2.pem, None).await.is_ok() {
            switched = true;
            break;
        }
    }
    assert!(switched, "SIGHUP did not reload the certificate");
    round_trip(&old, 3).await;
}

pub(crate) fn sighup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A TLS connection to `port` trusting `ca_pem`, with an optional client
/// certificate.
async fn tls_stream(
    port: u16,
    ca_pem: &str,
    client: Option<&Leaf>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(l) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(l.der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(l.key_der.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn write_frame<S: AsyncWrite + Unpin>(s: &mut S, f: &AMQPFrame) {
    let ctx = gen_frame(f)(WriteContext::from(Vec::new())).unwrap();
    s.write_all(&ctx.write).await.unwrap();
    s.flush().await.unwrap();
}

/// The next frame, or None on EOF / reset.
async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<AMQPFrame> {
    let mut head = [0u8; 7];
    tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("frame timed out")
        .ok()?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    let mut full = head.to_vec();
    full.resize(7 + size + 1, 0);
    s.read_exact(&mut full[7..]).await.ok()?;
    Some(parse_frame(full.as_slice()).ok()?.1)
}

/// The mechanisms connection.start offers on a TLS connection.
async fn raw_tls_mechanisms(port: u16, ca_pem: &str, client: Option<&Leaf>) -> String {
    let mut s = tls_stream(port, ca_pem, client).await;
    start_mechanisms(&mut s).await
}

async fn start_mechanisms<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> String {
    write_frame(s, &AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1())).await;
    match read_frame(s).await {
        Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(st)))) => {
            String::from_utf8_lossy(st.mechanisms.as_bytes()).into_owned()
        }
        other => panic!("expected connection.start, got {other:?}"),
    }
}

/// Logs in with EXTERNAL and `response`; the broker must refuse with 403.
async fn assert_refused<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, response: &str) {
    start_mechanisms(&mut s).await;
    let mut caps = RawTable::default();
    caps.insert(
        "authentication_failure_close".into(),
        AMQPValue::Boolean(true),
    );
    let mut props = RawTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    let start_ok = connection::StartOk {
        client_properties: props,
        mechanism: "EXTERNAL".into(),
        response: LongString::from(response),
        locale: "en_US".into(),
    };
    write_frame(
        &mut s,
        &AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)),
        ),
    )
    .await;
    match read_frame(&mut s).await {
        Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
            assert_eq!(c.reply_code, 403);
            assert_eq!(
                c.reply_text.as_str(),
                "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile."
            );
        }
        other => panic!("expected connection.close 403, got {other:?}"),
    }
}
