//! Overload (issue 9): buffers that grow with what a client sends are
//! bounded, and a misbehaving client never slows the others.
//!
//! Each test states its bounds in its name and asserts. They spawn their own
//! warren (skipped with WARREN_TEST_URL) and read its memory from
//! /proc/<pid>/status.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, confirm, AMQPClass};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::io::AsyncWriteExt;

use crate::harness::{external_broker, uniq, within, WAIT};
use crate::node::{connect_retry, Node};
use crate::raw::{content_frames, encode_frames, read_frame, ss, Raw};

/// Resident memory of `pid`, bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// A lapin client's publish→deliver round trips on its own queue: the
/// slowest of `n`, each published after the previous one arrived.
pub async fn slowest_round_trip(url: &str, n: usize) -> Duration {
    let conn = connect_retry(url, WAIT).await;
    let ch = conn.create_channel().await.expect("channel");
    let q = uniq("probe");
    ch.queue_declare(
        &q,
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare probe queue");
    let mut consumer = ch
        .basic_consume(
            &q,
            "probe",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume probe queue");
    let mut worst = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            format!("probe {i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("probe publish");
        let d = within("probe delivery", consumer.next())
            .await
            .expect("probe stream ended")
            .expect("probe delivery");
        assert_eq!(d.data, format!("probe {i}").as_bytes());
        worst = worst.max(t.elapsed());
    }
    let _ = conn.close(200, "bye").await;
    worst
}

/// The frames of a mandatory basic.publish of `body` to `key` on the
/// default exchange.
fn mandatory_publish(ch: u16, key: &str, body: &[u8]) -> Vec<AMQPFrame> {
    let mut frames = vec![AMQPFrame::Method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: ss(""),
            routing_key: ss(key),
            mandatory: true,
            immediate: false,
        })),
    )];
    frames.extend(content_frames(ch, body));
    frames
}

/// Bytes of each unroutable message body (its sequence number first).
const SLOW_BODY_BYTES: usize = 4096;
/// What the slow client may get into the broker before it is throttled:
/// `connection_outbound_bytes_max` (4 MiB) + socket buffers both ways +
/// one read batch. Without the throttle it is everything it can send.
const SLOW_SENT_BYTES_MAX: u64 = 48 << 20;
/// Broker RSS growth allowed while the slow client is stalled.
const SLOW_RSS_GROWTH_BYTES_MAX: u64 = 64 << 20;
/// Slowest publish→deliver round trip of another client meanwhile (debug
/// build on shared CI cores).
const OTHER_ROUND_TRIP_MAX: Duration = Duration::from_secs(1);

/// A client publishes mandatory unroutable messages with confirms flat out
/// and never reads: the broker stops reading it (it stalls under 48 MiB
/// sent), RSS grows < 64 MiB, another client's round trips stay < 1 s; once
/// it reads, it gets every basic.return, in order, then every ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_stalls_under_48mib_rss_growth_under_64mib_others_under_1s() {
    if external_broker() {
        return;
    }
    let node = Node::start(&["--in-memory"]).await;
    let b = node.broker();
    let mut raw = Raw::connect(&b).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    match raw.recv_method(1).await {
        Some(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected confirm.select-ok, got {other:?}"),
    }
    // Warm the broker up so the baseline includes its steady state.
    let _ = slowest_round_trip(&node.url(), 5).await;
    let rss_before = rss_bytes(node.pid());

    let (mut rd, mut wr) = raw.into_stream().into_split();
    let sent_bytes = Arc::new(AtomicU64::new(0));
    let sent_msgs = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let key = uniq("nowhere");
    let writer = {
        let (sent_bytes, sent_msgs, stop) = (sent_bytes.clone(), sent_msgs.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                let mut batch = Vec::new();
                for _ in 0..16 {
                    let mut body = vec![b'x'; SLOW_BODY_BYTES];
                    body[..8].copy_from_slice(&seq.to_be_bytes());
                    batch.extend(encode_frames(&mandatory_publish(1, &key, &body)));
                    seq += 1;
                }
                wr.write_all(&batch).await.expect("slow client write");
                sent_bytes.fetch_add(batch.len() as u64, Ordering::Release);
                sent_msgs.store(seq, Ordering::Release);
            }
            // A marker after the last publish: its open-ok tells the reader
            // that `sent_msgs` is final.
            let open = AMQPFrame::Method(
                2,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            );
            wr.write_all(&encode_frames(&[open]))
                .await
                .expect("slow client write");
            wr
        })
    };

    // Stalled: nothing more gets in for a second.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = sent_bytes.load(Ordering::Acquire);
        if now == last {
            break;
        }
        assert!(
            Instant::now() < deadline && now <= SLOW_SENT_BYTES_MAX,
            "the slow client is not throttled: {now} bytes sent so far"
        );
        last = now;
    }
    eprintln!("slow client stalled after {last} bytes");
    let worst = slowest_round_trip(&node.url(), 20).await;
    let rss = rss_bytes(node.pid());
    eprintln!("rss {rss_before} -> {rss}; other client's slowest round trip {worst:?}");
    assert!(
        rss < rss_before + SLOW_RSS_GROWTH_BYTES_MAX,
        "broker RSS grew from {rss_before} to {rss}"
    );
    assert!(worst < OTHER_ROUND_TRIP_MAX, "round trip {worst:?}");

    // Now it reads: every return in publish order, every publish acked.
    stop.store(true, Ordering::Release);
    let final_msgs = sent_msgs.clone();
    let reader = tokio::spawn(async move {
        let (mut returns, mut acked) = (0u64, 0u64);
        let mut total = None;
        let mut in_return = false;
        loop {
            let f = read_frame(&mut rd).await.expect("slow client: EOF");
            match f {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Return(r))) => {
                    assert_eq!(r.reply_code, 312);
                    in_return = true;
                }
                AMQPFrame::Body(1, body) if in_return => {
                    let seq = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
                    assert_eq!(seq, returns, "returns out of order");
                    returns += 1;
                    in_return = false;
                }
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                    assert!(a.delivery_tag > acked, "acks out of order");
                    // RabbitMQ sends basic.return before the publish's ack.
                    assert!(a.delivery_tag <= returns, "ack before its return");
                    acked = a.delivery_tag;
                }
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => {
                    panic!("nack {n:?}")
                }
                AMQPFrame::Method(2, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {
                    total = Some(final_msgs.load(Ordering::Acquire));
                }
                _ => {}
            }
            if total == Some(acked) && acked == returns {
                return (rd, returns);
            }
        }
    });
    let _wr = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the slow client's last write never completed")
        .expect("writer task");
    let (_rd, returns) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the slow client did not get all its returns and acks")
        .expect("reader task");
    let total = sent_msgs.load(Ordering::Acquire);
    eprintln!("{total} publishes, all returned and acked in order");
    assert_eq!(returns, total, "every unroutable publish was returned");
}

/// A config file in the temp dir with `text`; removed on drop.
pub struct ConfigFile(
    /// Its path.
    pub std::path::PathBuf,
);

impl ConfigFile {
    pub fn new(text: &str) -> ConfigFile {
        let p = std::env::temp_dir().join(uniq("warren-conf"));
        std::fs::write(&p, text).expect("write config file");
        ConfigFile(p)
    }
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A transaction is bounded by `tx_uncommitted_bytes_max` (here 64 KiB):
/// within it, commits work; the publish that would pass it closes the
/// channel with 406 and nothing of the transaction is enqueued.
#[tokio::test]
async fn tx_over_64kib_uncommitted_is_refused_with_406() {
    if external_broker() {
        return;
    }
    let conf = ConfigFile::new("tx_uncommitted_bytes_max = 65536\n");
    let node = Node::start(&["--in-memory", "--config", conf.arg()]).await;
    let conn = connect_retry(&node.url(), WAIT).await;
    let ch = conn.create_channel().await.expect("channel");
    let q = uniq("tx");
    ch.queue_declare(&q, Default::default(), FieldTable::default())
        .await
        .expect("declare");
    ch.tx_select().await.expect("tx.select");
    let body = vec![b'x'; 4096];
    // 15 × (4 KiB + names + bookkeeping) < 64 KiB: commits.
    for _ in 0..15 {
        ch.basic_publish("", &q, Default::default(), &body, Default::default())
            .await
            .expect("publish");
    }
    ch.tx_commit().await.expect("commit within the limit");
    let seen = crate::harness::watch_errors(&ch);
    for _ in 0..20 {
        let _ = ch
            .basic_publish("", &q, Default::default(), &body, Default::default())
            .await;
    }
    let (code, text) = crate::harness::async_channel_error(&seen).await;
    assert_eq!(code, 406, "{text}");
    assert_eq!(
        text,
        "PRECONDITION_FAILED - transaction exceeds tx_uncommitted_bytes_max (65536 bytes): \
         commit or roll back more often"
    );
    // Counted on a connection of its own: lapin may still write the frames of
    // a publish it had started after its close-ok for the refused channel,
    // which the broker (as RabbitMQ) answers with a 504 on that connection.
    let other = connect_retry(&node.url(), WAIT).await;
    let ch2 = other.create_channel().await.expect("channel");
    let n = ch2
        .queue_declare(
            &q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare")
        .message_count();
    assert_eq!(n, 15, "only the committed transaction was enqueued");
}
