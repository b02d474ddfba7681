//! `amqps://`: the generator over TLS to the in-process `sink`, through a
//! TLS-terminating proxy in the test (rustls server, certificates from rcgen).
//! A client given another CA must fail the handshake.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use warren_perf::client::Connection;
use warren_perf::consumer::{AckMode, ConsumerConfig};
use warren_perf::producer::ProducerConfig;
use warren_perf::sink::{self, SinkCounters};
use warren_perf::throughput::run_timed;
use warren_perf::uri::AmqpUri;

/// A CA (PEM) and a server certificate + key (PEM) for 127.0.0.1 and localhost signed by it.
fn certs() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warren-perf-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Accepts TLS on a free port and relays each connection's plaintext to `backend`.
async fn tls_proxy(cert_pem: &str, key_pem: &str, backend: u16) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_over_tls_moves_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_port = listener.local_addr().unwrap().port();
    let counters = Arc::new(SinkCounters::default());
    let server = tokio::spawn(sink::serve(listener, counters.clone()));
    let (ca, cert, key) = certs();
    let port = tls_proxy(&cert, &key, sink_port).await;
    let dir = temp_dir("ok");
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    let (other_ca, _, _) = certs();
    std::fs::write(dir.join("other-ca.pem"), &other_ca).unwrap();

    let uri = |ca: &str| {
        AmqpUri::parse(&format!(
            "amqps://guest:guest@127.0.0.1:{port}/%2f?cacertfile={}",
            dir.join(ca).display()
        ))
        .unwrap()
    };
    let wrong = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&uri("other-ca.pem")),
    )
    .await
    .expect("connect finished");
    let err = format!(
        "{:#}",
        wrong
            .err()
            .expect("a server outside the CA must be refused")
    );
    assert!(err.contains("TLS handshake"), "{err}");

    let producer = ProducerConfig {
        exchange: String::new(),
        routing_key: "tls".into(),
        size_bytes: 1024,
        persistent: false,
        confirm_window: Some(100),
        rate_per_s: 0.0,
        count: None,
        priorities: None,
    };
    let consumer = ConsumerConfig {
        queue: "tls".into(),
        prefetch: 100,
        ack: AckMode::Auto,
        expect: None,
        record_latency: false,
    };
    let (good, queues) = (uri("ca.pem"), vec!["tls".to_string()]);
    let run = run_timed(
        &good,
        &queues,
        false,
        amqp_codec::FieldTable::new(),
        vec![producer],
        vec![consumer],
        Duration::from_secs(1),
    );
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run finished")
        .expect("run succeeded");
    let p = result.producers[0];
    assert!(p.published > 0, "nothing published");
    assert!(p.confirmed > 0, "nothing confirmed");
    assert!(counters.published.load(Ordering::Relaxed) > 0);
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
