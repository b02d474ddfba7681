//! Server settings. Every limit carries its unit in its name.

use std::net::IpAddr;
use std::path::PathBuf;

use broker_core::CoreConfig;

use crate::tls::TlsSettings;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: IpAddr,
    /// 0 picks a free port (the log line says which).
    pub port: u16,
    /// Whether to listen for AMQP on `bind`:`port` at all (the embedded
    /// broker may serve in-process connections only). Default true.
    pub amqp_listener: bool,
    /// None keeps everything in memory (no durability).
    pub data_dir: Option<PathBuf>,
    pub core: CoreConfig,
    /// Heartbeat interval offered in connection.tune (0 disables).
    pub heartbeat_s: u16,
    /// A client must finish the handshake within this time.
    pub handshake_timeout_ms: u64,
    /// After sending connection.close, wait this long for close-ok.
    pub close_timeout_ms: u64,
    /// On shutdown, wait this long for clients to go before dropping them.
    pub shutdown_timeout_ms: u64,
    /// Concurrent connections accepted; more are refused at accept.
    pub connections_max: usize,
    /// Socket read buffer per connection; one read never exceeds it, and
    /// the frames of one read are processed under one lock acquisition.
    pub read_buffer_bytes: usize,
    /// A connection's reader yields to other tasks after reading this many
    /// bytes, so one busy publisher cannot starve consumers and handshakes.
    pub read_yield_bytes: usize,
    /// A connection whose output waiting for its socket (returns, confirms,
    /// replies, deliveries) exceeds this many bytes is no longer read from
    /// until its writer has drained it below half of this: a client that
    /// publishes but never reads its socket is throttled by TCP, not by the
    /// broker's memory. Deliveries stop earlier, at `write_buffer_bytes_max`.
    pub connection_outbound_bytes_max: usize,
    /// Period of housekeeping (message TTL at queue heads, queue expiry).
    pub tick_interval_ms: u64,
    /// Publishers are blocked while the data folder's filesystem has less
    /// free space than this (RabbitMQ's default disk_free_limit is 50 MB).
    pub disk_free_limit_bytes: u64,
    /// When set, the free-disk limit is this fraction of RAM instead
    /// (RabbitMQ's `disk_free_limit.relative`; 1.0 = as much as RAM).
    pub disk_free_limit_relative: Option<f64>,
    /// How often free disk space is checked at the least (it is also
    /// checked whenever half the margin above the limit has been written).
    pub disk_check_interval_ms: u64,
    /// Space the store sets aside (its `reserve` file) to make what is in
    /// flight durable when the disk fills; see docs/storage.md. 0 = none.
    pub store_reserve_bytes: u64,
    /// While the store is paused on a full disk, it retries this often.
    pub store_retry_interval_ms: u64,
    /// Publishers are blocked while RSS is above this (0 = 40% of RAM, as
    /// RabbitMQ's default vm_memory_high_watermark).
    pub memory_high_watermark_bytes: u64,
    /// Size of one message-arena segment file. Smaller segments are freed
    /// sooner once their messages are consumed; larger ones mean fewer files.
    pub arena_segment_size_bytes: usize,
    /// Threads that run connection writers (socket writes and heartbeats),
    /// apart from the threads that read and run the broker. 0 runs writers
    /// on the main runtime. Default 1.
    pub writer_threads: usize,
    /// When a connection's writer is idle, output of at most this many
    /// bytes is sent at once by the thread that produced it, with one
    /// non-blocking send, instead of waking the writer (see `sink.rs`).
    /// 0 turns this off. Default 4 KiB.
    pub write_through_bytes_max: usize,
    /// Unread bytes each direction of an in-memory in-process connection
    /// (`Node::connect_memory`) holds at most; its writer waits beyond
    /// that, as on a full socket. Default 512 KiB.
    pub memory_pipe_bytes_max: usize,
    /// An in-memory connection's output is written through (see
    /// `write_through_bytes_max`) only if its previous output came at least
    /// this long ago: a quiet connection's reaches the client at once, a
    /// busy one's is batched by its writer. Default 100 µs.
    pub memory_pipe_write_through_gap_us: u64,
    /// AMQPS port (RabbitMQ's is 5671); 0 = no TLS listener. Needs `tls`.
    pub tls_port: u16,
    /// Certificate, key, CA bundle and peer verification of every TLS
    /// listener: AMQPS and the management and metrics HTTPS listeners.
    pub tls: Option<TlsSettings>,
    /// Users who may log in only from loopback addresses (RabbitMQ's
    /// `loopback_users`; default `guest`).
    pub loopback_users: Vec<String>,
    /// A bootstrap file of rabbitmqctl-style commands (`add_user`,
    /// `add_vhost`, `set_permissions`, ...) applied at startup after
    /// recovery (see `bootstrap.rs`).
    pub definitions: Option<PathBuf>,
    /// Management HTTP API port (RabbitMQ's 15672); 0 turns it off.
    pub management_port: u16,
    /// Address the management API listens on (HTTP and HTTPS).
    pub management_bind: IpAddr,
    /// Management HTTPS port (RabbitMQ's `management.ssl.port`, 15671);
    /// opened when `tls` has a certificate, with the same certificate,
    /// CA and peer verification as AMQPS. 0 turns it off.
    pub management_tls_port: u16,
    /// Prometheus metrics port (rabbitmq_prometheus's 15692); 0 turns it off.
    pub prometheus_port: u16,
    /// Address the Prometheus metrics listen on (HTTP and HTTPS).
    pub prometheus_bind: IpAddr,
    /// Prometheus HTTPS port (`prometheus.ssl.port`, 15691); opened when
    /// `tls` has a certificate, as `management_tls_port`. 0 turns it off.
    pub prometheus_tls_port: u16,
    /// Require HTTP Basic auth on the Prometheus endpoints, of a user
    /// tagged monitoring or administrator (off: unauthenticated, as
    /// RabbitMQ's default).
    pub prometheus_auth: bool,
    /// How often the statistics snapshot the API reads is rebuilt.
    pub collect_statistics_interval_ms: u64,
    /// Largest management API request body (RabbitMQ: 20 MB); more → 400.
    pub http_body_bytes_max: usize,
    /// Management API requests served at once; more are answered 503.
    pub http_requests_concurrent_max: usize,
    /// A management API request taking longer is answered 503.
    pub http_request_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 5672,
            amqp_listener: true,
            data_dir: Some(PathBuf::from("data")),
            core: CoreConfig::default(),
            heartbeat_s: 60,
            handshake_timeout_ms: 10_000,
            close_timeout_ms: 3_000,
            shutdown_timeout_ms: 5_000,
            connections_max: 65_536,
            read_buffer_bytes: 64 * 1024,
            tick_interval_ms: 100,
            read_yield_bytes: 256 * 1024,
            connection_outbound_bytes_max: 4 << 20,
            disk_free_limit_bytes: 50_000_000,
            disk_free_limit_relative: None,
            disk_check_interval_ms: 1000,
            store_reserve_bytes: 8 << 20,
            store_retry_interval_ms: 200,
            arena_segment_size_bytes: 8 << 20,
            memory_high_watermark_bytes: 0,
            writer_threads: 1,
            write_through_bytes_max: 4096,
            memory_pipe_bytes_max: 512 * 1024,
            memory_pipe_write_through_gap_us: 100,
            tls_port: 0,
            tls: None,
            loopback_users: vec!["guest".to_string()],
            definitions: None,
            management_port: 15672,
            management_bind: IpAddr::from([127, 0, 0, 1]),
            management_tls_port: 15671,
            prometheus_port: 15692,
            prometheus_bind: IpAddr::from([127, 0, 0, 1]),
            prometheus_tls_port: 15691,
            prometheus_auth: false,
            collect_statistics_interval_ms: 5_000,
            http_body_bytes_max: 20_000_000,
            http_requests_concurrent_max: 64,
            http_request_timeout_ms: 60_000,
        }
    }
}
