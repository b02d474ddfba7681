//! Shared test helpers: unique names, temp folders, a system on an embedded broker, polling,
//! broker-side checks with lapin, and a spawned `target/debug/warren`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warren_reference_service::{Mode, Settings, System};

/// Waits for things that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(15);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique in this test run.
pub fn uniq(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("refsvc-{prefix}-{}-{n}", std::process::id())
}

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(uniq(prefix));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settings for a test: ephemeral HTTP port, fast mail, short retry delays, knobs on.
pub fn settings(dir: &TempDir) -> Settings {
    let mut s = Settings::defaults();
    s.http = "127.0.0.1:0".parse().unwrap();
    s.data_dir = Some(dir.0.clone());
    s.broker_name = uniq("broker");
    s.prefix = uniq("p");
    s.mail_latency_ms = 5;
    s.retry_delays_ms = vec![50, 100];
    s.max_attempts = 4;
    s.bench_knobs = true;
    s
}

/// A whole system on its own embedded broker.
pub async fn embedded(dir: &TempDir) -> System {
    let mut s = settings(dir);
    s.mode = Mode::Embedded;
    let sys = System::start(s).await.unwrap();
    wait_healthy(&format!("http://{}", sys.http_addr)).await;
    sys
}

/// Polls `f` until true, up to WAIT.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `/health` answers 200.
pub async fn wait_healthy(base: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(start.elapsed() < WAIT, "{base}/health never became 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lapin connection to the system's broker (embedded by URL, or TCP).
pub async fn raw(url: &str) -> (lapin::Connection, lapin::Channel) {
    let props = lapin::ConnectionProperties::default();
    let c = if url.starts_with("warren-embedded://") {
        warren_embedded::connect_url(url, props).await.unwrap()
    } else {
        lapin::Connection::connect(url, props).await.unwrap()
    };
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

/// Fetches one message from `queue` (acked), waiting up to WAIT for one to arrive.
pub async fn get_one(ch: &lapin::Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let start = Instant::now();
    loop {
        let opts = lapin::options::BasicGetOptions { no_ack: true };
        if let Some(m) = ch.basic_get(queue, opts).await.unwrap() {
            return m;
        }
        assert!(start.elapsed() < WAIT, "nothing arrived in {queue}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of an unlabelled counter in an OpenMetrics text (`name_total N`).
pub fn counter(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// A `target/debug/warren` on an ephemeral port with a fresh data folder (as crates/blackbox).
pub struct Warren {
    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub url: String,
    child: Child,
    _dir: TempDir,
}

impl Drop for Warren {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn warren_bin() -> PathBuf {
    match std::env::var("WARREN_BIN") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/warren"),
    }
}

impl Warren {
    pub fn start() -> Warren {
        let bin = warren_bin();
        assert!(
            bin.exists(),
            "build warren first: cargo build -p warren ({})",
            bin.display()
        );
        let dir = TempDir::new("warren-data");
        let mut child = Command::new(&bin)
            .args(["serve", "--bind", "127.0.0.1", "--port", "0"])
            .args(["--management-port", "0", "--prometheus-port", "0"])
            .arg("--data-dir")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let port = first_match(child.stderr.take().unwrap(), "listening on 127.0.0.1:");
        let port: u16 = port
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap();
        Warren {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            child,
            _dir: dir,
        }
    }
}

/// Reads `out` on a thread until a line contains `needle`; returns the rest of that line (the
/// thread keeps draining the pipe).
pub fn first_match(out: impl std::io::Read + Send + 'static, needle: &'static str) -> String {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("REFSVC_TEST_LOG").is_some() {
                eprintln!("[child] {line}");
            }
            if let Some(i) = line.find(needle) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line[i + needle.len()..].to_owned());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no line with {needle:?}"))
}
