//! Settings: command-line flag > environment variable > config file > default.
//!
//! The config file is `key = value` lines (TOML-compatible for these keys);
//! `#` starts a comment. Keys: bind, port, data_dir, heartbeat_s,
//! frame_size_max_bytes, channel_max, connections_max,
//! message_size_max_bytes, write_buffer_bytes_max,
//! connection_outbound_bytes_max, tx_uncommitted_bytes_max, disk_free_limit_bytes,
//! disk_free_limit_relative, disk_check_interval_ms, store_reserve_bytes,
//! store_retry_interval_ms, arena_segment_size_bytes,
//! memory_high_watermark_bytes, writer_threads, write_through_bytes_max,
//! consumer_timeout_ms, and for AMQPS tls_port, tls_cert_file, tls_key_file,
//! tls_ca_file, tls_verify_peer, tls_fail_if_no_peer_cert, tls_versions,
//! tls_cert_login_from, tls_reload_check_interval_ms,
//! loopback_users (comma-separated user names, or `none`), definitions (a
//! bootstrap file, see `server::bootstrap`),
//! management_port, management_bind, prometheus_port, prometheus_bind,
//! management_tls_port and prometheus_tls_port (HTTPS with the tls_* files,
//! opened when a certificate is configured), collect_statistics_interval_ms,
//! http_body_bytes_max.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use server::tls::{CertLoginFrom, TlsSettings, TlsVersions};
use server::ServerConfig;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "WARREN_BIND")]
    bind: Option<IpAddr>,
    /// AMQP port; 0 picks a free one [default: 5672]
    #[arg(long, env = "WARREN_PORT")]
    port: Option<u16>,
    /// Folder for durable data [default: ./data]
    #[arg(long, env = "WARREN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory (no durability)
    #[arg(long)]
    in_memory: bool,
    /// Config file (key = value lines)
    #[arg(long, env = "WARREN_CONFIG")]
    config: Option<PathBuf>,
    /// Heartbeat interval offered to clients, seconds [default: 60]
    #[arg(long, env = "WARREN_HEARTBEAT_S")]
    heartbeat_s: Option<u16>,
    /// Block publishers while the data folder's disk has less free space [default: 50000000]
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT_BYTES")]
    disk_free_limit_bytes: Option<u64>,
    /// Free-disk limit as a fraction of RAM instead (RabbitMQ's disk_free_limit.relative)
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT_RELATIVE")]
    disk_free_limit_relative: Option<f64>,
    /// Close a channel whose delivery stays unacknowledged longer than this, ms; 0 = off [default: 1800000]
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT_MS")]
    consumer_timeout_ms: Option<u64>,
    /// AMQPS (TLS) port; 0 = no TLS listener [default: 0]
    #[arg(long, env = "WARREN_TLS_PORT")]
    tls_port: Option<u16>,
    /// PEM certificate chain of the AMQPS listener, leaf first
    #[arg(long, env = "WARREN_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of the AMQPS listener
    #[arg(long, env = "WARREN_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// PEM CA bundle client certificates must chain to
    #[arg(long, env = "WARREN_TLS_CA_FILE")]
    tls_ca_file: Option<PathBuf>,
    /// Ask clients for a certificate and verify it (verify_peer) [default: false]
    #[arg(long, env = "WARREN_TLS_VERIFY_PEER", num_args = 0..=1, default_missing_value = "true")]
    tls_verify_peer: Option<bool>,
    /// With verify_peer, refuse clients without a certificate [default: false]
    #[arg(long, env = "WARREN_TLS_FAIL_IF_NO_PEER_CERT", num_args = 0..=1, default_missing_value = "true")]
    tls_fail_if_no_peer_cert: Option<bool>,
    /// Check the TLS files for changes this often, ms; 0 = reload on SIGHUP only [default: 5000]
    #[arg(long, env = "WARREN_TLS_RELOAD_CHECK_INTERVAL_MS")]
    tls_reload_check_interval_ms: Option<u64>,
    /// Bootstrap file of rabbitmqctl-style commands applied at startup
    /// (add_user, add_vhost, set_permissions, ...)
    #[arg(long, env = "WARREN_DEFINITIONS")]
    definitions: Option<PathBuf>,
    /// Management HTTP API port; 0 turns it off [default: 15672]
    #[arg(long, env = "WARREN_MANAGEMENT_PORT")]
    management_port: Option<u16>,
    /// Address the management API listens on [default: 127.0.0.1]
    #[arg(long, env = "WARREN_MANAGEMENT_BIND")]
    management_bind: Option<IpAddr>,
    /// Management HTTPS port, with the tls_* certificate (opened when one is given); 0 turns it off [default: 15671]
    #[arg(long, env = "WARREN_MANAGEMENT_TLS_PORT")]
    management_tls_port: Option<u16>,
    /// Prometheus metrics port (as rabbitmq_prometheus); 0 turns it off [default: 15692]
    #[arg(long, env = "WARREN_PROMETHEUS_PORT")]
    prometheus_port: Option<u16>,
    /// Address the Prometheus metrics listen on [default: 127.0.0.1]
    #[arg(long, env = "WARREN_PROMETHEUS_BIND")]
    prometheus_bind: Option<IpAddr>,
    /// Prometheus HTTPS port, with the tls_* certificate (opened when one is given); 0 turns it off [default: 15691]
    #[arg(long, env = "WARREN_PROMETHEUS_TLS_PORT")]
    prometheus_tls_port: Option<u16>,
    /// Require HTTP Basic auth (a user tagged monitoring or administrator) on the Prometheus endpoints [default: false]
    #[arg(long, env = "WARREN_PROMETHEUS_AUTH", num_args = 0..=1, default_missing_value = "true")]
    prometheus_auth: Option<bool>,
    /// How often the statistics the management API shows are collected, ms [default: 5000]
    #[arg(long, env = "WARREN_COLLECT_STATISTICS_INTERVAL_MS")]
    collect_statistics_interval_ms: Option<u64>,
}

/// TLS settings as read, before they are checked for completeness.
#[derive(Default)]
struct TlsDraft {
    /// `tls_cert_file`.
    cert_file: Option<PathBuf>,
    /// `tls_key_file`.
    key_file: Option<PathBuf>,
    /// `tls_ca_file`.
    ca_file: Option<PathBuf>,
    /// `tls_verify_peer`.
    verify_peer: Option<bool>,
    /// `tls_fail_if_no_peer_cert`.
    fail_if_no_peer_cert: Option<bool>,
    /// `tls_versions`.
    versions: Option<TlsVersions>,
    /// `tls_cert_login_from`.
    cert_login_from: Option<CertLoginFrom>,
    /// `tls_reload_check_interval_ms`.
    reload_check_interval_ms: Option<u64>,
}

impl TlsDraft {
    /// The listener's settings, if a certificate and key were given.
    fn finish(self, tls_port: u16) -> anyhow::Result<Option<TlsSettings>> {
        let (cert, key) = match (self.cert_file, self.key_file) {
            (Some(c), Some(k)) => (c, k),
            (None, None) if tls_port == 0 => return Ok(None),
            _ => bail!("TLS needs both tls_cert_file and tls_key_file"),
        };
        let mut t = TlsSettings::new(cert, key);
        t.ca_file = self.ca_file;
        t.verify_peer = self.verify_peer.unwrap_or(t.verify_peer);
        t.fail_if_no_peer_cert = self.fail_if_no_peer_cert.unwrap_or(t.fail_if_no_peer_cert);
        t.versions = self.versions.unwrap_or(t.versions);
        t.cert_login_from = self.cert_login_from.unwrap_or(t.cert_login_from);
        t.reload_check_interval_ms = self
            .reload_check_interval_ms
            .unwrap_or(t.reload_check_interval_ms);
        if t.verify_peer && t.ca_file.is_none() {
            bail!("tls_verify_peer needs tls_ca_file");
        }
        Ok(Some(t))
    }
}

pub fn resolve(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut cfg = ServerConfig::default();
    let mut tls = TlsDraft::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        apply_file(&mut cfg, &mut tls, &text)
            .with_context(|| format!("in config {}", path.display()))?;
    }
    if let Some(b) = args.bind {
        cfg.bind = b;
    }
    if let Some(p) = args.port {
        cfg.port = p;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = Some(d);
    }
    if args.in_memory {
        cfg.data_dir = None;
    }
    if let Some(h) = args.heartbeat_s {
        cfg.heartbeat_s = h;
    }
    if let Some(d) = args.disk_free_limit_bytes {
        cfg.disk_free_limit_bytes = d;
    }
    if let Some(r) = args.disk_free_limit_relative {
        cfg.disk_free_limit_relative = Some(r);
    }
    if let Some(t) = args.consumer_timeout_ms {
        cfg.core.consumer_timeout_ms = t;
    }
    if let Some(p) = args.tls_port {
        cfg.tls_port = p;
    }
    tls.cert_file = args.tls_cert_file.or(tls.cert_file);
    tls.key_file = args.tls_key_file.or(tls.key_file);
    tls.ca_file = args.tls_ca_file.or(tls.ca_file);
    tls.verify_peer = args.tls_verify_peer.or(tls.verify_peer);
    tls.fail_if_no_peer_cert = args.tls_fail_if_no_peer_cert.or(tls.fail_if_no_peer_cert);
    tls.reload_check_interval_ms = args
        .tls_reload_check_interval_ms
        .or(tls.reload_check_interval_ms);
    cfg.tls = tls.finish(cfg.tls_port)?;
    if let Some(d) = args.definitions {
        cfg.definitions = Some(d);
    }
    if let Some(p) = args.management_port {
        cfg.management_port = p;
    }
    if let Some(b) = args.management_bind {
        cfg.management_bind = b;
    }
    if let Some(p) = args.management_tls_port {
        cfg.management_tls_port = p;
    }
    if let Some(p) = args.prometheus_port {
        cfg.prometheus_port = p;
    }
    if let Some(b) = args.prometheus_bind {
        cfg.prometheus_bind = b;
    }
    if let Some(p) = args.prometheus_tls_port {
        cfg.prometheus_tls_port = p;
    }
    if let Some(a) = args.prometheus_auth {
        cfg.prometheus_auth = a;
    }
    if let Some(i) = args.collect_statistics_interval_ms {
        cfg.collect_statistics_interval_ms = i;
    }
    if cfg.connection_outbound_bytes_max < cfg.core.write_buffer_bytes_max {
        // Deliveries alone could then stop a consumer's acks being read.
        bail!(
            "connection_outbound_bytes_max ({}) must be at least write_buffer_bytes_max ({})",
            cfg.connection_outbound_bytes_max,
            cfg.core.write_buffer_bytes_max
        );
    }
    Ok(cfg)
}

fn apply_file(cfg: &mut ServerConfig, tls: &mut TlsDraft, text: &str) -> anyhow::Result<()> {
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: expected key = value", n + 1);
        };
        let key = key.trim();
        let value = value.trim().trim_matches('"');
        let bad = || format!("line {}: bad value for {key}: {value}", n + 1);
        match key {
            "bind" => cfg.bind = value.parse().with_context(bad)?,
            "port" => cfg.port = value.parse().with_context(bad)?,
            "data_dir" => cfg.data_dir = Some(PathBuf::from(value)),
            "heartbeat_s" => cfg.heartbeat_s = value.parse().with_context(bad)?,
            "frame_size_max_bytes" => {
                cfg.core.frame_size_max_bytes = value.parse().with_context(bad)?
            }
            "channel_max" => cfg.core.channel_max = value.parse().with_context(bad)?,
            "connections_max" => cfg.connections_max = value.parse().with_context(bad)?,
            "message_size_max_bytes" => {
                cfg.core.message_size_max_bytes = value.parse().with_context(bad)?
            }
            "memory_high_watermark_bytes" => {
                cfg.memory_high_watermark_bytes = value.parse().with_context(bad)?
            }
            "disk_free_limit_bytes" => {
                cfg.disk_free_limit_bytes = value.parse().with_context(bad)?
            }
            "disk_free_limit_relative" => {
                cfg.disk_free_limit_relative = Some(value.parse().with_context(bad)?)
            }
            "disk_check_interval_ms" => {
                cfg.disk_check_interval_ms = value.parse().with_context(bad)?
            }
            "store_reserve_bytes" => cfg.store_reserve_bytes = value.parse().with_context(bad)?,
            "store_retry_interval_ms" => {
                cfg.store_retry_interval_ms = value.parse().with_context(bad)?
            }
            "arena_segment_size_bytes" => {
                cfg.arena_segment_size_bytes = value.parse().with_context(bad)?
            }
            "writer_threads" => cfg.writer_threads = value.parse().with_context(bad)?,
            "write_through_bytes_max" => {
                cfg.write_through_bytes_max = value.parse().with_context(bad)?
            }
            "write_buffer_bytes_max" => {
                cfg.core.write_buffer_bytes_max = value.parse().with_context(bad)?
            }
            "connection_outbound_bytes_max" => {
                cfg.connection_outbound_bytes_max = value.parse().with_context(bad)?
            }
            "tx_uncommitted_bytes_max" => {
                cfg.core.tx_uncommitted_bytes_max = value.parse().with_context(bad)?
            }
            "consumer_timeout_ms" => {
                cfg.core.consumer_timeout_ms = value.parse().with_context(bad)?
            }
            "tls_port" => cfg.tls_port = value.parse().with_context(bad)?,
            "tls_cert_file" => tls.cert_file = Some(PathBuf::from(value)),
            "tls_key_file" => tls.key_file = Some(PathBuf::from(value)),
            "tls_ca_file" => tls.ca_file = Some(PathBuf::from(value)),
            "tls_verify_peer" => tls.verify_peer = Some(value.parse().with_context(bad)?),
            "tls_fail_if_no_peer_cert" => {
                tls.fail_if_no_peer_cert = Some(value.parse().with_context(bad)?)
            }
            "tls_versions" => tls.versions = Some(value.parse().with_context(bad)?),
            "tls_cert_login_from" => tls.cert_login_from = Some(value.parse().with_context(bad)?),
            "tls_reload_check_interval_ms" => {
                tls.reload_check_interval_ms = Some(value.parse().with_context(bad)?)
            }
            "loopback_users" => {
                cfg.loopback_users = match value {
                    "none" | "" => Vec::new(),
                    v => v.split(',').map(|u| u.trim().to_string()).collect(),
                }
            }
            "definitions" => cfg.definitions = Some(PathBuf::from(value)),
            "management_port" => cfg.management_port = value.parse().with_context(bad)?,
            "management_bind" => cfg.management_bind = value.parse().with_context(bad)?,
            "management_tls_port" => cfg.management_tls_port = value.parse().with_context(bad)?,
            "prometheus_port" => cfg.prometheus_port = value.parse().with_context(bad)?,
            "prometheus_bind" => cfg.prometheus_bind = value.parse().with_context(bad)?,
            "prometheus_tls_port" => cfg.prometheus_tls_port = value.parse().with_context(bad)?,
            "prometheus_auth" => cfg.prometheus_auth = value.parse().with_context(bad)?,
            "collect_statistics_interval_ms" => {
                cfg.collect_statistics_interval_ms = value.parse().with_context(bad)?
            }
            "http_body_bytes_max" => cfg.http_body_bytes_max = value.parse().with_context(bad)?,
            other => bail!("line {}: unknown key {other}", n + 1),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_apply() {
        let mut cfg = ServerConfig::default();
        let mut tls = TlsDraft::default();
        apply_file(
            &mut cfg,
            &mut tls,
            "# comment\nport = 5673\nbind = \"0.0.0.0\"\ndata_dir = /tmp/w\nconsumer_timeout_ms = 2000\n",
        )
        .unwrap();
        assert_eq!(cfg.core.consumer_timeout_ms, 2000);
        assert!(!cfg.prometheus_auth, "off by default");
        apply_file(&mut cfg, &mut tls, "prometheus_auth = true\n").unwrap();
        assert!(cfg.prometheus_auth);
        assert!(apply_file(&mut cfg, &mut tls, "prometheus_auth = yes\n").is_err());
        assert_eq!(cfg.port, 5673);
        assert_eq!(cfg.bind.to_string(), "0.0.0.0");
        assert!(apply_file(&mut cfg, &mut tls, "nope = 1").is_err());
    }

    #[test]
    fn tls_keys_apply_and_are_checked() {
        let mut cfg = ServerConfig::default();
        let mut tls = TlsDraft::default();
        apply_file(
            &mut cfg,
            &mut tls,
            "tls_port = 5671\ntls_cert_file = /c.pem\ntls_key_file = /k.pem\n\
             tls_ca_file = /ca.pem\ntls_verify_peer = true\ntls_fail_if_no_peer_cert = true\n\
             tls_versions = tlsv1.3\ntls_cert_login_from = subject_alternative_name\n\
             tls_reload_check_interval_ms = 0\n\
             management_tls_port = 25671\nprometheus_tls_port = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.tls_port, 5671);
        assert_eq!(
            (cfg.management_tls_port, cfg.prometheus_tls_port),
            (25671, 0)
        );
        let t = tls.finish(cfg.tls_port).unwrap().unwrap();
        assert_eq!(t.cert_file, PathBuf::from("/c.pem"));
        assert_eq!(t.ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(t.verify_peer && t.fail_if_no_peer_cert);
        assert!(t.versions.tls13 && !t.versions.tls12);
        assert_eq!(t.cert_login_from, CertLoginFrom::SubjectAlternativeName);
        assert_eq!(t.reload_check_interval_ms, 0);
        // A port without a certificate, a certificate without its key, or
        // verify_peer without a CA bundle is refused at startup.
        assert!(TlsDraft::default().finish(5671).is_err());
        assert!(TlsDraft::default().finish(0).unwrap().is_none());
        let half = TlsDraft {
            cert_file: Some("/c.pem".into()),
            ..TlsDraft::default()
        };
        assert!(half.finish(5671).is_err());
        let no_ca = TlsDraft {
            cert_file: Some("/c.pem".into()),
            key_file: Some("/k.pem".into()),
            verify_peer: Some(true),
            ..TlsDraft::default()
        };
        assert!(no_ca.finish(5671).is_err());
        let mut tls = TlsDraft::default();
        assert!(apply_file(&mut cfg, &mut tls, "tls_versions = sslv3").is_err());
        assert!(apply_file(&mut cfg, &mut tls, "tls_cert_login_from = nope").is_err());
    }

    #[test]
    fn disk_keys_apply() {
        let mut cfg = ServerConfig::default();
        let mut tls = TlsDraft::default();
        apply_file(
            &mut cfg,
            &mut tls,
            "disk_free_limit_relative = 1.5\nstore_reserve_bytes = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.disk_free_limit_relative, Some(1.5));
        assert_eq!(cfg.store_reserve_bytes, 0);
    }
}
