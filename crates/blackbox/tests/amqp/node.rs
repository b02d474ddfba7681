//! A warren process the test controls: start on a fresh data dir, stop it
//! cleanly (SIGTERM) or crash it (SIGKILL), and restart it on the same data
//! dir and the same port.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{spawn_process, uniq, Broker};

pub struct Node {
    child: Option<Child>,
    pub data_dir: PathBuf,
    /// 0 until the first start has reported its port.
    pub port: u16,
    extra: Vec<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl Node {
    /// A new node on a fresh temporary data dir and a free port.
    pub async fn start(extra: &[&str]) -> Node {
        let data_dir = std::env::temp_dir().join(uniq("warren-node"));
        Node::start_in(data_dir, extra).await
    }

    /// A new node on `data_dir` (created if needed; its contents are
    /// removed on drop) and a free port.
    pub async fn start_in(data_dir: PathBuf, extra: &[&str]) -> Node {
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let mut n = Node {
            child: None,
            data_dir,
            port: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        n.restart().await;
        n
    }

    /// Drops the extra arguments for the next restarts.
    pub fn clear_extra(&mut self) {
        self.extra.clear();
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// A client-side handle (connect helpers) for this node.
    pub fn broker(&self) -> Broker {
        Broker::at(self.url())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    fn spawn(&mut self) -> mpsc::Receiver<u16> {
        assert!(self.child.is_none(), "node already running");
        let extra: Vec<&str> = self.extra.iter().map(|s| s.as_str()).collect();
        let (child, rx) = spawn_process(&self.data_dir, self.port, &extra);
        self.child = Some(child);
        rx
    }

    /// Spawn without waiting for it to listen (to crash it during recovery).
    pub fn spawn_no_wait(&mut self) {
        let _ = self.spawn();
    }

    /// (Re)start on the same data dir and port; waits until it listens.
    /// Retries while the old port is briefly unavailable.
    pub async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rx = self.spawn();
            let started = loop {
                match rx.try_recv() {
                    Ok(port) => break Some(port),
                    Err(mpsc::TryRecvError::Disconnected) => break None,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                    // Exited before listening (e.g. port still in use).
                    let _ = status;
                    break None;
                }
                if Instant::now() > deadline {
                    panic!("warren did not start listening within 30s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            match started {
                Some(port) => {
                    if self.port != 0 {
                        assert_eq!(port, self.port, "restarted on another port");
                    }
                    self.port = port;
                    return;
                }
                None => {
                    let mut c = self.child.take().unwrap();
                    let _ = c.kill();
                    let status = c.wait();
                    if Instant::now() > deadline {
                        panic!("warren exited before listening: {status:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// SIGKILL (what `Child::kill` sends on unix) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL warren");
            c.wait().expect("reap warren");
        }
    }

    /// Send SIGTERM without waiting.
    pub fn sigterm(&self) {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(st.success(), "kill -TERM failed: {st:?}");
    }

    /// Wait for the process to exit (after `sigterm`); panics after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                panic!("warren did not exit within {limit:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Connect to `url`, retrying until `limit` (the broker may still be recovering).
pub async fn connect_retry(url: &str, limit: Duration) -> lapin::Connection {
    let deadline = Instant::now() + limit;
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(url, lapin::ConnectionProperties::default()),
        )
        .await;
        match r {
            Ok(Ok(c)) => return c,
            other => {
                if Instant::now() > deadline {
                    panic!(
                        "could not connect to {url}: {:?}",
                        other.map(|r| r.map(|_| ()))
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
