//! Append throughput: N small persistent messages in batches, one sync per
//! batch, on the real file system.
//!
//! Usage: cargo run --release -p store --example store_bench -- [messages] [batch] [dir]
//! Defaults: 200000 messages, batches of 100, a fresh folder under the temp dir.

use std::time::Instant;

use broker_core::persist::{MessageRecord, Persistence, QueueDef, Syncer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let batch: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100)
        .max(1);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("warren-store-bench-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&dir);

    let (mut store, syncer, _) = store::open(&dir, store::StoreConfig::default())?;
    store.put_queue(&QueueDef {
        vhost: "/".into(),
        name: "bench".into(),
        auto_delete: false,
        exclusive: false,
        arguments: vec![0, 0, 0, 0],
    })?;
    let msg = MessageRecord {
        exchange: "",
        routing_key: "bench",
        properties: &[0x10, 0x00, 2],
        body: &[7u8; 16],
    };
    let start = Instant::now();
    let (mut sent, mut syncs) = (0u64, 0u64);
    while sent < total {
        for _ in 0..batch.min(total - sent) {
            store.append_message("/", &msg, &["bench"])?;
            sent += 1;
        }
        syncer.sync()?;
        syncs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{sent} msgs of 16 B in batches of {batch}: {secs:.2} s, {:.0} msgs/s, {:.0} syncs/s",
        sent as f64 / secs,
        syncs as f64 / secs
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
