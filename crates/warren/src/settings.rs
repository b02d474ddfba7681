//! Settings: command-line flag > environment variable > config file > default.
//!
//! The config file is `key = value` lines (TOML-compatible for these keys);
//! `#` starts a comment. Keys: bind, port, data_dir, heartbeat_s,
//! frame_size_max_bytes, channel_max, connections_max,
//! message_size_max_bytes, write_buffer_bytes_max, disk_free_limit_bytes,
//! memory_high_watermark_bytes, writer_threads, write_through_bytes_max,
//! consumer_timeout_ms, management_port, management_bind,
//! collect_statistics_interval_ms, http_body_bytes_max.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
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
    /// Close a channel whose delivery stays unacknowledged longer than this, ms; 0 = off [default: 1800000]
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT_MS")]
    consumer_timeout_ms: Option<u64>,
    /// Management HTTP API port; 0 turns it off [default: 15672]
    #[arg(long, env = "WARREN_MANAGEMENT_PORT")]
    management_port: Option<u16>,
    /// Address the management API listens on [default: 127.0.0.1]
    #[arg(long, env = "WARREN_MANAGEMENT_BIND")]
    management_bind: Option<IpAddr>,
    /// How often the statistics the management API shows are collected, ms [default: 5000]
    #[arg(long, env = "WARREN_COLLECT_STATISTICS_INTERVAL_MS")]
    collect_statistics_interval_ms: Option<u64>,
}

pub fn resolve(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut cfg = ServerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        apply_file(&mut cfg, &text).with_context(|| format!("in config {}", path.display()))?;
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
    if let Some(t) = args.consumer_timeout_ms {
        cfg.core.consumer_timeout_ms = t;
    }
    if let Some(p) = args.management_port {
        cfg.management_port = p;
    }
    if let Some(b) = args.management_bind {
        cfg.management_bind = b;
    }
    if let Some(i) = args.collect_statistics_interval_ms {
        cfg.collect_statistics_interval_ms = i;
    }
    Ok(cfg)
}

fn apply_file(cfg: &mut ServerConfig, text: &str) -> anyhow::Result<()> {
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
            "writer_threads" => cfg.writer_threads = value.parse().with_context(bad)?,
            "write_through_bytes_max" => {
                cfg.write_through_bytes_max = value.parse().with_context(bad)?
            }
            "write_buffer_bytes_max" => {
                cfg.core.write_buffer_bytes_max = value.parse().with_context(bad)?
            }
            "consumer_timeout_ms" => {
                cfg.core.consumer_timeout_ms = value.parse().with_context(bad)?
            }
            "management_port" => cfg.management_port = value.parse().with_context(bad)?,
            "management_bind" => cfg.management_bind = value.parse().with_context(bad)?,
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
        apply_file(
            &mut cfg,
            "# comment\nport = 5673\nbind = \"0.0.0.0\"\ndata_dir = /tmp/w\nconsumer_timeout_ms = 2000\n",
        )
        .unwrap();
        assert_eq!(cfg.core.consumer_timeout_ms, 2000);
        assert_eq!(cfg.port, 5673);
        assert_eq!(cfg.bind.to_string(), "0.0.0.0");
        assert!(apply_file(&mut cfg, "nope = 1").is_err());
    }
}
