//! Publish-with-confirm and consume throughput through service-kit, raw lapin and raw amqprs on
//! one broker, with the same message size, confirm window and prefetch, and the kit's cost per
//! message over raw lapin.
//!
//! For each message size and each client: publish `--count` persistent messages to a fresh
//! durable queue with at most `--window` unconfirmed (kit: `--window` tasks awaiting
//! `Publisher::publish` on one pooled channel with that window; lapin: a queue of
//! `PublisherConfirm` futures; amqprs: acks counted in its channel callback), then consume them
//! with manual acks and `--prefetch` (kit: `Kit::consume` with `concurrency = prefetch`; lapin and
//! amqprs: one loop that acks each delivery). Consume time runs from the first delivery to the
//! last ack. Each (client, case) prints one line:
//!
//! `BENCH {"broker":..,"client":"kit","case":"publish_confirm","size":16,"count":..,"window":..,
//! "prefetch":..,"persistent":true,"msgs_per_s":..,"us_per_msg":..,"vs_lapin_us":..}`
//!
//! where `us_per_msg = 1e6 / msgs_per_s` (inverse throughput, not latency) and `vs_lapin_us` is
//! this client's `us_per_msg` minus raw lapin's in the same run (the toolkit's overhead per
//! message when `client` is `kit`). The kit's numbers include what it does by default and raw
//! clients do not: a message id per publish (UUIDv7 text), one task per delivery.
//!
//! `cargo run --release -p service-kit --example bench_clients -- --url amqp://guest:guest@127.0.0.1:5672/%2f`
//! (options: `--count N --sizes 16,1024 --window W --prefetch P --clients lapin,kit,amqprs
//! --transient --broker LABEL`); `scripts/bench-clients.sh` runs it in rounds and prints a table.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_lite::StreamExt;
use service_kit::{ConsumerConfig, Kit, KitConfig, Message, Outcome, PublisherConfig, Topology};
use tokio::sync::{watch, Notify};

/// How long one phase may take before the run is declared failed.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The clients measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// service-kit (on lapin).
    Kit,
    /// lapin, as a service would use it without the kit.
    Lapin,
    /// amqprs.
    Amqprs,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Kit => "kit",
            Client::Lapin => "lapin",
            Client::Amqprs => "amqprs",
        }
    }
}

/// Command-line settings.
#[derive(Debug, Clone)]
struct Opts {
    /// Broker URL (`amqp://`).
    url: String,
    /// Label of the broker in the output.
    broker: String,
    /// Messages per case.
    count: usize,
    /// Body sizes, bytes.
    sizes: Vec<usize>,
    /// Unconfirmed publishes allowed.
    window: usize,
    /// Consumer prefetch.
    prefetch: u16,
    /// Clients to run (lapin first: the others are compared with it).
    clients: Vec<Client>,
    /// Delivery mode 2 (the kit's default) unless `--transient`.
    persistent: bool,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        url: std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        broker: "broker".into(),
        count: 20_000,
        sizes: vec![16, 1024],
        window: 256,
        prefetch: 256,
        clients: vec![Client::Lapin, Client::Kit, Client::Amqprs],
        persistent: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--url" => o.url = val()?,
            "--broker" => o.broker = val()?,
            "--count" => o.count = val()?.parse()?,
            "--window" => o.window = val()?.parse()?,
            "--prefetch" => o.prefetch = val()?.parse()?,
            "--sizes" => {
                o.sizes = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--clients" => {
                let mut cs = Vec::new();
                for c in val()?.split(',') {
                    cs.push(match c {
                        "kit" => Client::Kit,
                        "lapin" => Client::Lapin,
                        "amqprs" => Client::Amqprs,
                        other => bail!("unknown client {other}"),
                    });
                }
                cs.sort_by_key(|c| *c != Client::Lapin);
                o.clients = cs;
            }
            "--transient" => o.persistent = false,
            other => bail!("unknown option {other}"),
        }
    }
    if o.count == 0 || o.window == 0 || o.prefetch == 0 {
        bail!("--count, --window and --prefetch must be positive");
    }
    Ok(o)
}

/// Seconds taken by the two phases of one case.
struct Timing {
    /// Publishing all messages with confirms.
    publish: f64,
    /// First delivery to last ack.
    consume: f64,
}

fn queue_name(client: Client, size: usize) -> String {
    let id = service_kit::message::new_id();
    format!(
        "bench.clients.{}.{size}.{}",
        client.name(),
        &id[id.len() - 8..]
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = parse_opts()?;
    for &size in &o.sizes {
        let mut lapin_us: Option<(f64, f64)> = None;
        for &client in &o.clients {
            let q = queue_name(client, size);
            let run = async {
                match client {
                    Client::Kit => kit_case(&o, &q, size).await,
                    Client::Lapin => lapin_case(&o, &q, size).await,
                    Client::Amqprs => amqprs_case(&o, &q, size).await,
                }
            };
            let t = tokio::time::timeout(PHASE_TIMEOUT * 2, run)
                .await
                .with_context(|| format!("{} size {size} timed out", client.name()))??;
            let us = (
                t.publish * 1e6 / o.count as f64,
                t.consume * 1e6 / o.count as f64,
            );
            if client == Client::Lapin {
                lapin_us = Some(us);
            }
            for (case, secs, us, base) in [
                ("publish_confirm", t.publish, us.0, lapin_us.map(|b| b.0)),
                ("consume_ack", t.consume, us.1, lapin_us.map(|b| b.1)),
            ] {
                let vs = base.map_or("null".to_string(), |b| format!("{:.3}", us - b));
                println!(
                    "BENCH {{\"broker\":\"{}\",\"client\":\"{}\",\"case\":\"{case}\",\"size\":{size},\
                     \"count\":{},\"window\":{},\"prefetch\":{},\"persistent\":{},\
                     \"msgs_per_s\":{:.0},\"us_per_msg\":{us:.3},\"vs_lapin_us\":{vs}}}",
                    o.broker,
                    client.name(),
                    o.count,
                    o.window,
                    o.prefetch,
                    o.persistent,
                    o.count as f64 / secs,
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// service-kit

async fn kit_case(o: &Opts, q: &str, size: usize) -> anyhow::Result<Timing> {
    let kit = Kit::start(KitConfig::new(&o.url), Topology::new().queue(q));
    let publisher = kit.publisher(PublisherConfig {
        channels: 1,
        window_per_channel: o.window,
        deadline: PHASE_TIMEOUT,
    });
    let body = vec![0u8; size];
    // The first publish waits for the connection: not part of the measurement.
    let mut warm = Message::new("", q, body.clone());
    if !o.persistent {
        warm = warm.transient();
    }
    publisher.publish(warm).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..o.window {
        let n = o.count / o.window + usize::from(t < o.count % o.window);
        let (p, q, body, persistent) =
            (publisher.clone(), q.to_owned(), body.clone(), o.persistent);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let mut m = Message::new("", &q, body.clone());
                if !persistent {
                    m = m.transient();
                }
                p.publish(m).await?;
            }
            Ok::<_, service_kit::KitError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let publish = start.elapsed().as_secs_f64();

    let want = o.count as u64 + 1; // the warm-up message too
    let seen = Arc::new(AtomicU64::new(0));
    let first: Arc<Mutex<Option<Instant>>> = Arc::default();
    let done = Arc::new(Notify::new());
    let mut cfg = ConsumerConfig::new(q);
    let cfg_retry = cfg.retry.clone();
    cfg.prefetch = o.prefetch;
    cfg.concurrency = o.prefetch as usize;
    let (s, f, d) = (seen.clone(), first.clone(), done.clone());
    let handle = kit
        .consume(cfg, move |_delivery| {
            if let Ok(mut f) = f.lock() {
                f.get_or_insert_with(Instant::now);
            }
            if s.fetch_add(1, Ordering::Relaxed) + 1 == want {
                d.notify_one();
            }
            async { Outcome::Ack }
        })
        .await;
    tokio::time::timeout(PHASE_TIMEOUT, done.notified())
        .await
        .context("kit consume")?;
    let end = Instant::now();
    let first = first.lock().ok().and_then(|f| *f).context("no delivery")?;
    handle.shutdown().await;
    kit.shutdown().await;
    // The queue, and the dead-letter and TTL-ladder queues the consumer declared beside it.
    let retry =
        service_kit::retry::retry_topology(q, &cfg_retry, service_kit::RetryMode::TtlLadder);
    let mut queues = vec![q.to_owned()];
    queues.extend(retry.queues.into_iter().map(|d| d.name));
    delete_queues(&o.url, &queues).await;
    Ok(Timing {
        publish,
        consume: (end - first).as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// raw lapin

async fn lapin_case(o: &Opts, q: &str, size: usize) -> anyhow::Result<Timing> {
    use lapin::options::*;
    use lapin::types::FieldTable;
    let conn = lapin::Connection::connect(&o.url, Default::default()).await?;
    let ch = conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(q, durable, FieldTable::default()).await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let props =
        lapin::BasicProperties::default().with_delivery_mode(if o.persistent { 2 } else { 1 });
    let body = vec![0u8; size];
    let start = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(o.window);
    for _ in 0..o.count {
        if pending.len() == o.window {
            if let Some(c) = pending.pop_front() {
                let c: lapin::publisher_confirm::PublisherConfirm = c;
                c.await?;
            }
        }
        let c = ch
            .basic_publish("", q, BasicPublishOptions::default(), &body, props.clone())
            .await?;
        pending.push_back(c);
    }
    for c in pending {
        c.await?;
    }
    let publish = start.elapsed().as_secs_f64();

    let cch = conn.create_channel().await?;
    cch.basic_qos(o.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = cch
        .basic_consume(
            q,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut first = None;
    for _ in 0..o.count {
        let d = tokio::time::timeout(PHASE_TIMEOUT, consumer.next())
            .await
            .context("lapin consume")?
            .context("consumer ended")??;
        first.get_or_insert_with(Instant::now);
        d.ack(BasicAckOptions::default()).await?;
    }
    let end = Instant::now();
    ch.queue_delete(q, QueueDeleteOptions::default()).await?;
    let _ = conn.close(200, "bench done").await;
    Ok(Timing {
        publish,
        consume: (end - first.context("no delivery")?).as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// raw amqprs

/// amqprs reports confirms to a channel callback: this one folds them into "every tag up to N is
/// confirmed" for the publishing loop.
struct Confirms {
    /// Highest tag with every tag up to it confirmed.
    upto: u64,
    /// Confirmed tags above `upto` (single acks out of order).
    above: BTreeSet<u64>,
    /// Publishes `upto`.
    tx: watch::Sender<u64>,
    /// Nacks seen.
    nacks: Arc<AtomicU64>,
}

impl Confirms {
    fn confirm(&mut self, tag: u64, multiple: bool) {
        if multiple {
            self.upto = self.upto.max(tag);
            self.above = self.above.split_off(&(tag + 1));
        } else {
            self.above.insert(tag);
        }
        while self.above.remove(&(self.upto + 1)) {
            self.upto += 1;
        }
        self.tx.send_replace(self.upto);
    }
}

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _: &amqprs::channel::Channel,
        close: amqprs::CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        eprintln!("amqprs: channel closed by the broker: {close}");
        Ok(())
    }
    async fn cancel(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(
        &mut self,
        _: &amqprs::channel::Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &amqprs::channel::Channel, ack: amqprs::Ack) {
        self.confirm(ack.delivery_tag(), ack.mutiple());
    }
    async fn publish_nack(&mut self, _: &amqprs::channel::Channel, nack: amqprs::Nack) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
        self.confirm(nack.delivery_tag(), nack.multiple());
    }
    async fn publish_return(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::Return,
        _: amqprs::BasicProperties,
        _: Vec<u8>,
    ) {
    }
}

async fn amqprs_case(o: &Opts, q: &str, size: usize) -> anyhow::Result<Timing> {
    use amqprs::channel::*;
    use amqprs::connection::{Connection, OpenConnectionArguments};
    // lapin's parser: amqprs does not percent-decode the vhost (`%2f`).
    let uri: lapin::uri::AMQPUri = o.url.parse().map_err(anyhow::Error::msg)?;
    let mut args = OpenConnectionArguments::new(
        &uri.authority.host,
        uri.authority.port,
        &uri.authority.userinfo.username,
        &uri.authority.userinfo.password,
    );
    args.virtual_host(&uri.vhost);
    let conn = Connection::open(&args).await?;
    let ch = conn.open_channel(None).await?;
    let (tx, mut confirmed) = watch::channel(0u64);
    let nacks = Arc::new(AtomicU64::new(0));
    let callback = Confirms {
        upto: 0,
        above: BTreeSet::new(),
        tx,
        nacks: nacks.clone(),
    };
    ch.register_callback(callback).await?;
    ch.queue_declare(QueueDeclareArguments::new(q).durable(true).finish())
        .await?;
    ch.confirm_select(ConfirmSelectArguments::default()).await?;
    let mut props = amqprs::BasicProperties::default();
    props.with_delivery_mode(if o.persistent { 2 } else { 1 });
    let body = vec![0u8; size];
    let window = o.window as u64;
    let start = Instant::now();
    for tag in 1..=o.count as u64 {
        if tag > window {
            tokio::time::timeout(PHASE_TIMEOUT, confirmed.wait_for(|c| tag - c <= window))
                .await
                .context("amqprs confirms")??;
        }
        ch.basic_publish(
            props.clone(),
            body.clone(),
            BasicPublishArguments::new("", q),
        )
        .await?;
    }
    let count = o.count as u64;
    tokio::time::timeout(PHASE_TIMEOUT, confirmed.wait_for(|c| *c >= count))
        .await
        .context("amqprs confirms")??;
    let publish = start.elapsed().as_secs_f64();
    if nacks.load(Ordering::Relaxed) > 0 {
        bail!("amqprs: {} publishes nacked", nacks.load(Ordering::Relaxed));
    }

    let cch = conn.open_channel(None).await?;
    cch.basic_qos(BasicQosArguments::new(0, o.prefetch, false))
        .await?;
    let (_tag, mut rx) = cch
        .basic_consume_rx(
            BasicConsumeArguments::new(q, "bench")
                .manual_ack(true)
                .finish(),
        )
        .await?;
    let mut first = None;
    for _ in 0..o.count {
        let m = tokio::time::timeout(PHASE_TIMEOUT, rx.recv())
            .await
            .context("amqprs consume")?
            .context("consumer ended")?;
        first.get_or_insert_with(Instant::now);
        let tag = m
            .deliver
            .context("delivery without deliver")?
            .delivery_tag();
        cch.basic_ack(BasicAckArguments::new(tag, false)).await?;
    }
    let end = Instant::now();
    ch.queue_delete(QueueDeleteArguments::new(q)).await?;
    let _ = conn.close().await;
    Ok(Timing {
        publish,
        consume: (end - first.context("no delivery")?).as_secs_f64(),
    })
}

/// Deletes queues (best effort).
async fn delete_queues(url: &str, queues: &[String]) {
    if let Ok(c) = lapin::Connection::connect(url, Default::default()).await {
        if let Ok(ch) = c.create_channel().await {
            for q in queues {
                let _ = ch.queue_delete(q, Default::default()).await;
            }
        }
        let _ = c.close(200, "bench done").await;
    }
}
