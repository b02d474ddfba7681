//! Measures publish-with-confirm throughput through raw lapin (window W, 1 channel).
//! `cargo run --release -p service-kit --example bench_publish -- URL N W`
use std::time::Instant;

use lapin::{options::*, types::FieldTable, BasicProperties, Connection, ConnectionProperties};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let w: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let q = format!("bench.lapin.{}", std::process::id());
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = [0u8; 16];
    let start = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(w);
    for _ in 0..n {
        if pending.len() == w {
            let c: lapin::publisher_confirm::PublisherConfirm = pending.pop_front().unwrap();
            c.await?;
        }
        let c = ch
            .basic_publish(
                "",
                &q,
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        pending.push_back(c);
    }
    for c in pending {
        c.await?;
    }
    let pub_secs = start.elapsed().as_secs_f64();
    let cch = conn.create_channel().await?;
    cch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = cch
        .basic_consume(
            &q,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let start = Instant::now();
    use futures_lite::StreamExt;
    let mut got = 0;
    while got < n {
        let d = consumer.next().await.ok_or("consumer ended")??;
        d.ack(BasicAckOptions::default()).await?;
        got += 1;
    }
    let con_secs = start.elapsed().as_secs_f64();
    ch.queue_delete(&q, QueueDeleteOptions::default()).await?;
    println!(
        "lapin: publish+confirm {:.0} msg/s ({:.1} us/msg), consume+ack {:.0} msg/s ({:.1} us/msg)",
        n as f64 / pub_secs,
        pub_secs * 1e6 / n as f64,
        n as f64 / con_secs,
        con_secs * 1e6 / n as f64
    );
    Ok(())
}
