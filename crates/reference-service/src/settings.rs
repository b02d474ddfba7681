//! Command-line settings (flag > environment > default) of every role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Where the broker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A warren broker inside this process (all roles run here).
    Embedded,
    /// A broker at `--url` (warren or RabbitMQ).
    Remote,
}

/// Which parts of the system this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The HTTP API, the notifier and the scorer.
    All,
    /// The HTTP API (`POST /users`, `GET /users/{id}`, `GET /users/{id}/score`).
    Api,
    /// The notification worker (welcome mail through the simulated mail dependency).
    Notifier,
    /// The score RPC server.
    Scorer,
}

impl Role {
    /// Runs the HTTP API.
    pub fn api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    /// Runs the notification worker.
    pub fn notifier(self) -> bool {
        matches!(self, Role::All | Role::Notifier)
    }

    /// Runs the score RPC server.
    pub fn scorer(self) -> bool {
        matches!(self, Role::All | Role::Scorer)
    }
}

/// The reference service's settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "reference-service",
    about = "User registration through a broker, done right (warren's reference service)"
)]
pub struct Settings {
    /// `embedded`: a warren inside this process, every role here (the default); `remote`: `--url`.
    #[arg(long, value_enum, default_value = "embedded", env = "REFSVC_MODE")]
    pub mode: Mode,
    /// Broker URL for `--mode remote` (`amqp://guest:guest@127.0.0.1:5672/%2f`).
    #[arg(long, env = "REFSVC_URL")]
    pub url: Option<String>,
    /// Which parts run in this process (`--mode embedded` needs `all`).
    #[arg(long, value_enum, default_value = "all", env = "REFSVC_ROLE")]
    pub role: Role,
    /// HTTP listen address of this process (the API, or only `/health` + `/metrics` for workers).
    #[arg(long, default_value = "127.0.0.1:8080", env = "REFSVC_HTTP")]
    pub http: SocketAddr,
    /// Folder for the embedded broker's data (`broker/`) and the notifier's inbox (`inbox.log`).
    /// Default: `reference-service` in the system temp folder.
    #[arg(long, env = "REFSVC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run the embedded broker in memory (nothing survives a restart).
    #[arg(long)]
    pub in_memory: bool,
    /// Name of the embedded broker (`warren-embedded://NAME`), unique in the process.
    #[arg(long, default_value = "refsvc")]
    pub broker_name: String,
    /// Prefix of the exchange and queue names (two systems can share one broker).
    #[arg(long, default_value = "refsvc", env = "REFSVC_PREFIX")]
    pub prefix: String,
    /// Mail calls in flight at once (the dependency's bounded concurrency).
    #[arg(long, default_value_t = 8)]
    pub mail_concurrency: usize,
    /// Latency of one mail call, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub mail_latency_ms: u64,
    /// Mail calls allowed per second (token bucket; over it a call waits, then fails as 429).
    #[arg(long, default_value_t = 1000)]
    pub mail_rate_per_sec: u32,
    /// How long a mail call waits for a rate token before failing as rate-limited, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub mail_rate_wait_ms: u64,
    /// Notifier prefetch (`basic.qos`).
    #[arg(long, default_value_t = 64)]
    pub prefetch: u16,
    /// Notifier handlers running at once.
    #[arg(long, default_value_t = 32)]
    pub worker_concurrency: usize,
    /// Attempts per notification (first delivery included) before the dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Broker retry delays, milliseconds, comma separated (the last one repeats).
    #[arg(long, value_delimiter = ',', default_value = "200,1000,5000")]
    pub retry_delays_ms: Vec<u64>,
    /// Accept the benchmark's query knobs on `POST /users` (`inline`, `confirm`, `persistent`, `conn`).
    #[arg(long, env = "REFSVC_BENCH_KNOBS")]
    pub bench_knobs: bool,
    /// Benchmark ledger folder: append each accepted registration (`accepted.log`) and each mail
    /// sent (`sent.<pid>.log`), one line per id, so losses and duplicates are counted per id.
    #[arg(long, env = "REFSVC_LEDGER_DIR")]
    pub ledger_dir: Option<PathBuf>,
}

impl Settings {
    /// Defaults (as with no flags), for tests and programs that embed the service.
    pub fn defaults() -> Settings {
        Settings::parse_from(["reference-service"])
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("reference-service"))
    }

    /// The retry delays.
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.retry_delays_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }

    /// Rejects combinations that cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.mode {
            Mode::Embedded if self.role != Role::All => {
                anyhow::bail!("--mode embedded runs every role in this process: use --role all")
            }
            Mode::Remote if self.url.is_none() => anyhow::bail!("--mode remote needs --url"),
            _ => {}
        }
        if self.mail_concurrency == 0 || self.worker_concurrency == 0 || self.max_attempts == 0 {
            anyhow::bail!("mail/worker concurrency and max attempts must be at least 1");
        }
        Ok(())
    }
}
