//! Test harness: locate or spawn a broker, connect clients, small helpers.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::{Channel, Connection, ConnectionProperties};

/// Default wait for anything the broker should do promptly.
pub const WAIT: Duration = Duration::from_secs(5);
/// Short window used only to show that something does NOT arrive.
pub const QUIET: Duration = Duration::from_millis(300);

pub struct Broker {
    pub url: String,
    child: Option<Child>,
    data_dir: Option<PathBuf>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique across tests, processes and runs (RabbitMQ may be shared).
pub fn uniq(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("bb.{prefix}.{}.{nanos:x}.{n}", std::process::id())
}

/// Start (or locate) a broker for one test.
pub async fn broker() -> Broker {
    if let Ok(url) = std::env::var("WARREN_TEST_URL") {
        if !url.is_empty() {
            return Broker {
                url,
                child: None,
                data_dir: None,
            };
        }
    }
    spawn_warren()
}

/// Path of the warren binary (WARREN_BIN or target/debug/warren).
pub fn warren_bin() -> PathBuf {
    let bin = match std::env::var("WARREN_BIN") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/warren"),
    };
    if !bin.exists() {
        panic!(
            "warren binary not found at {}: run `cargo build -p warren` first \
             (or set WARREN_BIN, or WARREN_TEST_URL to test an already running broker)",
            bin.display()
        );
    }
    bin
}

/// Spawn `warren serve` on `data_dir` and `port` (0 = any free port).
/// Returns the child and a receiver that yields the port once warren logs
/// `listening on 127.0.0.1:PORT` (the sender is dropped if stderr closes first).
pub fn spawn_process(
    data_dir: &std::path::Path,
    port: u16,
    extra: &[&str],
) -> (Child, mpsc::Receiver<u16>) {
    let bin = warren_bin();
    let mut child = Command::new(&bin)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        // The management API's default port (15672) is RabbitMQ's too;
        // tests that want the API pass their own --management-port.
        .args(if extra.contains(&"--management-port") {
            &[][..]
        } else {
            &["--management-port", "0"][..]
        })
        // Likewise the metrics port (15692, rabbitmq_prometheus's).
        .args(if extra.contains(&"--prometheus-port") {
            &[][..]
        } else {
            &["--prometheus-port", "0"][..]
        })
        // And the HTTPS ports (15671, 15691), opened with a TLS certificate.
        .args(if extra.contains(&"--management-tls-port") {
            &[][..]
        } else {
            &["--management-tls-port", "0"][..]
        })
        .args(if extra.contains(&"--prometheus-tls-port") {
            &[][..]
        } else {
            &["--prometheus-tls-port", "0"][..]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", bin.display()));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<u16>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("WARREN_TEST_LOG").is_some() {
                eprintln!("[warren] {line}");
            }
            if let Some(idx) = line.find("listening on 127.0.0.1:") {
                let rest = &line[idx + "listening on 127.0.0.1:".len()..];
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let (Ok(port), Some(tx)) = (digits.parse::<u16>(), tx.take()) {
                    let _ = tx.send(port);
                }
            }
        }
    });
    (child, rx)
}

fn spawn_warren() -> Broker {
    let data_dir = std::env::temp_dir().join(uniq("warren-data"));
    std::fs::create_dir_all(&data_dir).expect("create temp data dir");
    let (child, rx) = spawn_process(&data_dir, 0, &[]);
    let mut broker = Broker {
        url: String::new(),
        child: Some(child),
        data_dir: Some(data_dir),
    };
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(port) => {
            broker.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
            broker
        }
        Err(_) => {
            let status = broker.child.as_mut().unwrap().try_wait();
            panic!(
                "warren did not log `listening on 127.0.0.1:PORT` within 20s (status {status:?})"
            );
        }
    }
}

/// True when tests run against an external broker (WARREN_TEST_URL), so
/// tests that must start, kill and restart warren themselves are skipped.
pub fn external_broker() -> bool {
    matches!(std::env::var("WARREN_TEST_URL"), Ok(u) if !u.is_empty())
}

impl Broker {
    /// A handle on a broker someone else runs (nothing is killed on drop).
    pub fn at(url: String) -> Broker {
        Broker {
            url,
            child: None,
            data_dir: None,
        }
    }

    pub async fn connect(&self) -> Connection {
        tokio::time::timeout(
            WAIT,
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        .expect("connect timed out")
        .expect("connect failed")
    }

    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("create channel");
        (conn, ch)
    }

    pub fn uri(&self) -> lapin::uri::AMQPUri {
        self.url.parse().expect("valid amqp uri")
    }

    /// The URL with a different user/password/vhost.
    pub fn url_with(&self, user: &str, pass: &str, vhost: &str) -> String {
        let u = self.uri();
        format!(
            "amqp://{user}:{pass}@{}:{}/{}",
            u.authority.host,
            u.authority.port,
            vhost.replace('/', "%2f")
        )
    }
}

/// Await with the default timeout, panicking with `what` on timeout.
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// (reply code, reply text) of a protocol error as lapin reports it.
pub fn amqp_err(e: &lapin::Error) -> (u16, String) {
    match e {
        lapin::Error::ProtocolError(a) => (a.get_id(), a.get_message().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

pub fn expect_amqp_err<T: std::fmt::Debug>(r: lapin::Result<T>) -> (u16, String) {
    match r {
        Ok(v) => panic!("expected an AMQP error, got Ok({v:?})"),
        Err(e) => amqp_err(&e),
    }
}

/// Next delivery from a consumer, with timeout.
pub async fn next_delivery(c: &mut lapin::Consumer) -> lapin::message::Delivery {
    use futures_lite::StreamExt;
    within("delivery", c.next())
        .await
        .expect("consumer stream ended")
        .expect("consumer error")
}

/// Assert nothing is delivered during a short quiet window.
pub async fn no_delivery(c: &mut lapin::Consumer) {
    use futures_lite::StreamExt;
    if let Ok(Some(d)) = tokio::time::timeout(QUIET, c.next()).await {
        panic!("unexpected delivery: {d:?}");
    }
}

/// Publish bodies on a fresh confirm-mode channel and wait until the broker
/// has confirmed them all (so they are enqueued before we inspect counts:
/// RabbitMQ answers queue.declare counts out of band of in-flight publishes).
pub async fn publish_confirmed(conn: &Connection, ex: &str, key: &str, bodies: &[&str]) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for body in bodies {
        let c = ch
            .basic_publish(
                ex,
                key,
                Default::default(),
                body.as_bytes(),
                lapin::BasicProperties::default(),
            )
            .await
            .unwrap();
        assert!(within("confirm", c).await.unwrap().is_ack());
    }
    ch.close(200, "ok").await.unwrap();
}

/// After an asynchronous method (publish, ack) that should make the server
/// close the channel: returns (code, text) of the channel error, which lapin
/// reports to the channel's on_error once it has sent close-ok. No follow-up
/// RPC probes for it: lapin checks the channel's state and queues the frame
/// in two steps, so a probe can leave after the close-ok, on a channel the
/// server has already forgotten — a 504 connection error ("expected
/// 'channel.open'", as RabbitMQ answers too) instead of the channel's.
pub async fn async_channel_error(seen: &ErrorSlot) -> (u16, String) {
    within("channel error", async {
        loop {
            if let Some(e) = seen.lock().unwrap().clone() {
                return amqp_err(&e);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

pub type ErrorSlot = std::sync::Arc<std::sync::Mutex<Option<lapin::Error>>>;

/// Record the channel's error (set before triggering it).
pub fn watch_errors(ch: &Channel) -> ErrorSlot {
    let slot: ErrorSlot = Default::default();
    let s = slot.clone();
    ch.on_error(move |e| {
        s.lock().unwrap().get_or_insert(e);
    });
    slot
}
