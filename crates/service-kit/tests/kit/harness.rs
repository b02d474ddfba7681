//! Test harness: spawn `target/debug/warren` (as crates/blackbox does) or use `AMQP_URL`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use service_kit::{Backoff, KitConfig};

/// Waits for things the broker should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Broker {
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    pub data_dir: Option<PathBuf>,
    extra: Vec<String>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn uniq(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("kit.{prefix}.{}.{nanos:x}.{n}", std::process::id())
}

/// The external broker's URL (`AMQP_URL`), if tests should use it.
pub fn external() -> Option<String> {
    std::env::var("AMQP_URL").ok().filter(|u| !u.is_empty())
}

/// A broker for one test: `AMQP_URL`, or a fresh warren.
pub fn broker() -> Broker {
    match external() {
        Some(url) => Broker {
            url,
            port: 0,
            child: None,
            data_dir: None,
            extra: vec![],
        },
        None => warren(&[]),
    }
}

/// A fresh warren with extra `serve` arguments.
pub fn warren(extra: &[&str]) -> Broker {
    let data_dir = std::env::temp_dir().join(uniq("warren-data"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut b = Broker {
        url: String::new(),
        port: 0,
        child: None,
        data_dir: Some(data_dir),
        extra: extra.iter().map(|s| s.to_string()).collect(),
    };
    b.start(0);
    b
}

pub fn warren_bin() -> PathBuf {
    match std::env::var("WARREN_BIN") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/warren"),
    }
}

impl Broker {
    /// (Re)starts warren on `port` (0 = any) with the same data folder.
    pub fn start(&mut self, port: u16) {
        let bin = warren_bin();
        assert!(
            bin.exists(),
            "build warren first: cargo build -p warren ({})",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
            // The HTTP listeners' default ports (15672, 15692) are RabbitMQ's
            // and would be fought over by parallel tests: off.
            .args(["--management-port", "0", "--prometheus-port", "0"])
            .arg("--data-dir")
            .arg(self.data_dir.as_ref().unwrap())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
                    if let (Ok(p), Some(tx)) = (digits.parse::<u16>(), tx.take()) {
                        let _ = tx.send(p);
                    }
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("warren started");
        self.port = port;
        self.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        self.child = Some(child);
    }

    /// Kills warren (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill and start again on the same port and data, with other extra args.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.kill();
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        let port = self.port;
        self.start(port);
    }

    /// A kit config with short backoffs for tests.
    pub fn config(&self) -> KitConfig {
        let mut c = KitConfig::new(self.url.clone());
        c.backoff = Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            multiplier: 2.0,
        };
        c.heartbeat_secs = 5;
        c
    }
}

/// Polls `f` until true, up to WAIT.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw lapin connection + channel (for checks from outside the kit).
pub async fn raw(url: &str) -> (lapin::Connection, lapin::Channel) {
    let c = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

/// Message count of `queue` (passive declare).
pub async fn depth(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue,
        lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .unwrap()
    .message_count()
}

/// Deletes queues (best effort; RabbitMQ may be shared).
pub async fn cleanup(url: &str, queues: &[String]) {
    if let Ok(c) = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await {
        if let Ok(ch) = c.create_channel().await {
            for q in queues {
                let _ = ch.queue_delete(q, Default::default()).await;
            }
        }
        let _ = c.close(200, "bye").await;
    }
}
