//! Crash test: publish with confirms and consume with transactional acks
//! while warren is SIGKILLed at random moments and restarted on the same data
//! dir, then check that nothing confirmed was lost, nothing acked in a
//! committed transaction came back, nothing is duplicated and queue order held.
//!
//! Seed: KILL_TEST_SEED (printed on every run). Cycles: KILL_TEST_CYCLES.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use crate::harness::external_broker;
use crate::node::{connect_retry, Node};

/// Small deterministic PRNG (xorshift64*), so a failing seed can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in lo..hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const FANOUT: &str = "kill.fanout";
const DIRECT: &str = "kill.direct";
/// Queue names; indices are used everywhere below.
const QUEUES: [&str; 4] = ["kill.q0", "kill.q1", "kill.q2", "kill.d"];
/// How each queue is consumed during the load phases.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// tx.select; ack a random subset, commit in small batches.
    Tx,
    /// Plain basic.ack (no tx): may be lost in a crash.
    Plain,
    /// Nobody consumes: the queue only grows (recovery of long queues).
    Idle,
}
const MODES: [Mode; 4] = [Mode::Tx, Mode::Plain, Mode::Idle, Mode::Tx];
const PUBLISHERS: u8 = 2;
const WINDOW: usize = 64;

/// (publisher, sequence number): unique per message, increasing per publisher.
type Id = (u8, u64);

fn body(id: Id) -> String {
    format!("P{}:{}", id.0, id.1)
}

fn parse(b: &[u8]) -> Id {
    let s = std::str::from_utf8(b).expect("utf8 body");
    let (p, n) = s
        .strip_prefix('P')
        .and_then(|s| s.split_once(':'))
        .unwrap_or_else(|| panic!("unexpected body {s:?}"));
    (p.parse().unwrap(), n.parse().unwrap())
}

/// Queues a message of publisher `p` with sequence `seq` is routed to.
fn targets(p: u8, seq: u64) -> Vec<usize> {
    if p == 1 && seq.is_multiple_of(2) {
        vec![3]
    } else {
        vec![0, 1, 2]
    }
}

#[derive(Default)]
struct PerQueue {
    /// Publisher confirm (ack) received.
    confirmed: BTreeSet<Id>,
    /// Published (confirm outstanding or lost, or nacked): may exist or not.
    maybe: BTreeSet<Id>,
    /// Acked in a transaction whose tx.commit-ok arrived: must never return.
    committed: BTreeSet<Id>,
    /// Acked in a transaction whose commit-ok never arrived.
    commit_attempted: BTreeSet<Id>,
    /// Acked with a plain basic.ack.
    plain_acked: BTreeSet<Id>,
    /// Highest sequence delivered per publisher in the current broker life.
    last_seen: HashMap<u8, u64>,
    deliveries: u64,
    redeliveries: u64,
}

#[derive(Default)]
struct State {
    cycle: u32,
    queues: [PerQueue; 4],
    next_seq: [u64; PUBLISHERS as usize],
    /// Broker life (cycle) in which each message was published.
    published_in: HashMap<Id, u32>,
    published: u64,
    nacked: u64,
    commits_ok: u64,
    commits_lost: u64,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

fn violation(st: &mut State, msg: String) {
    eprintln!("VIOLATION (cycle {}): {msg}", st.cycle);
    if st.violations.len() < 50 {
        st.violations.push(msg);
    }
}

async fn publisher(url: String, p: u8, st: Shared) {
    let conn = match lapin::Connection::connect(&url, Default::default()).await {
        Ok(c) => c,
        Err(_) => return,
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    if ch.confirm_select(Default::default()).await.is_err() {
        return;
    }
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut inflight: VecDeque<(Id, lapin::publisher_confirm::PublisherConfirm)> = VecDeque::new();
    loop {
        let id = {
            let mut s = st.lock().unwrap();
            let seq = s.next_seq[p as usize];
            s.next_seq[p as usize] += 1;
            let id = (p, seq);
            let cycle = s.cycle;
            s.published_in.insert(id, cycle);
            s.published += 1;
            for q in targets(p, seq) {
                s.queues[q].maybe.insert(id);
            }
            id
        };
        let (ex, key) = if targets(id.0, id.1) == [3] {
            (DIRECT, "d")
        } else {
            (FANOUT, "")
        };
        match ch
            .basic_publish(
                ex,
                key,
                BasicPublishOptions::default(),
                body(id).as_bytes(),
                props.clone(),
            )
            .await
        {
            Ok(c) => inflight.push_back((id, c)),
            Err(_) => return,
        }
        while inflight.len() >= WINDOW {
            let (id, c) = inflight.pop_front().unwrap();
            match c.await {
                Ok(Confirmation::Ack(_)) => {
                    let mut s = st.lock().unwrap();
                    for q in targets(id.0, id.1) {
                        s.queues[q].maybe.remove(&id);
                        s.queues[q].confirmed.insert(id);
                    }
                }
                Ok(Confirmation::Nack(_)) => st.lock().unwrap().nacked += 1,
                Ok(Confirmation::NotRequested) => panic!("confirms not enabled"),
                Err(_) => return,
            }
        }
    }
}

/// Checks one delivery during a load phase.
fn on_delivery(st: &mut State, q: usize, id: Id, redelivered: bool) {
    let cycle = st.cycle;
    let published_in = st.published_in.get(&id).copied();
    let pq = &mut st.queues[q];
    pq.deliveries += 1;
    if redelivered {
        pq.redeliveries += 1;
    }
    let mut bad = Vec::new();
    if !pq.confirmed.contains(&id) && !pq.maybe.contains(&id) {
        bad.push(format!(
            "{}: delivered {id:?}, never published to it",
            QUEUES[q]
        ));
    }
    if pq.committed.contains(&id) {
        bad.push(format!(
            "{}: {id:?} came back although its ack was committed (tx.commit-ok received)",
            QUEUES[q]
        ));
    }
    if let Some(&last) = pq.last_seen.get(&id.0) {
        if id.1 <= last {
            bad.push(format!(
                "{}: {id:?} delivered after {:?} in the same broker life (order/duplicate)",
                QUEUES[q],
                (id.0, last)
            ));
        }
    }
    pq.last_seen.insert(id.0, id.1);
    if matches!(published_in, Some(p) if p < cycle) && !redelivered {
        bad.push(format!(
            "{}: {id:?} recovered after a restart but redelivered=false",
            QUEUES[q]
        ));
    }
    for b in bad {
        violation(st, b);
    }
}

async fn consumer(url: String, q: usize, mode: Mode, st: Shared, seed: u64) {
    let mut rng = Rng::new(seed);
    let Ok(conn) = lapin::Connection::connect(&url, Default::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    if mode == Mode::Tx && ch.tx_select().await.is_err() {
        return;
    }
    let Ok(mut consumer) = ch
        .basic_consume(
            QUEUES[q],
            "kill-consumer",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    else {
        return;
    };
    let mut batch: Vec<Id> = Vec::new();
    let mut batch_target = rng.range(1, 8) as usize;
    while let Some(Ok(d)) = consumer.next().await {
        let id = parse(&d.data);
        on_delivery(&mut st.lock().unwrap(), q, id, d.redelivered);
        if !rng.chance(70) {
            continue; // left unacked: requeued when the connection dies
        }
        match mode {
            Mode::Plain => {
                st.lock().unwrap().queues[q].plain_acked.insert(id);
                if ch
                    .basic_ack(d.delivery_tag, BasicAckOptions::default())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Mode::Tx => {
                if ch
                    .basic_ack(d.delivery_tag, BasicAckOptions::default())
                    .await
                    .is_err()
                {
                    return;
                }
                batch.push(id);
                if batch.len() >= batch_target {
                    batch_target = rng.range(1, 8) as usize;
                    st.lock().unwrap().queues[q]
                        .commit_attempted
                        .extend(batch.iter().copied());
                    match ch.tx_commit().await {
                        Ok(()) => {
                            let mut s = st.lock().unwrap();
                            s.commits_ok += 1;
                            for id in batch.drain(..) {
                                s.queues[q].commit_attempted.remove(&id);
                                s.queues[q].committed.insert(id);
                            }
                        }
                        Err(_) => {
                            st.lock().unwrap().commits_lost += 1;
                            return;
                        }
                    }
                }
            }
            Mode::Idle => unreachable!(),
        }
    }
}

/// Durable topology exists (checked after every restart).
async fn check_topology(url: &str, st: &Shared) {
    let conn = connect_retry(url, Duration::from_secs(30)).await;
    let ch = conn.create_channel().await.unwrap();
    for ex in [FANOUT, DIRECT] {
        if let Err(e) = ch
            .exchange_declare(
                ex,
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
        {
            panic!("durable exchange {ex} lost after restart: {e}");
        }
    }
    for q in QUEUES {
        if let Err(e) = ch
            .queue_declare(
                q,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
        {
            panic!("durable queue {q} lost after restart: {e}");
        }
    }
    let _ = conn.close(200, "ok").await;
    let mut s = st.lock().unwrap();
    for pq in s.queues.iter_mut() {
        pq.last_seen.clear();
    }
}

async fn declare_topology(url: &str) {
    let conn = connect_retry(url, Duration::from_secs(30)).await;
    let ch = conn.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(FANOUT, ExchangeKind::Fanout, durable, FieldTable::default())
        .await
        .unwrap();
    ch.exchange_declare(DIRECT, ExchangeKind::Direct, durable, FieldTable::default())
        .await
        .unwrap();
    for (i, q) in QUEUES.iter().enumerate() {
        ch.queue_declare(
            q,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let (ex, key) = if i == 3 { (DIRECT, "d") } else { (FANOUT, "") };
        ch.queue_bind(q, ex, key, Default::default(), FieldTable::default())
            .await
            .unwrap();
    }
    conn.close(200, "ok").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_test() {
    if external_broker() {
        eprintln!("skipped: needs to kill and restart warren itself");
        return;
    }
    let (seed, cycles) = seed_and_cycles("KILL_TEST_CYCLES", 24);
    let node = Node::start(&[]).await;
    run_kill_test(node, seed, cycles, None).await;
}

/// KILL_TEST_SEED (or the clock) and the cycle count from `cycles_var`.
pub fn seed_and_cycles(cycles_var: &str, default_cycles: u32) -> (u64, u32) {
    let seed: u64 = std::env::var("KILL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let cycles: u32 = std::env::var(cycles_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cycles);
    eprintln!("kill_test: seed {seed} (rerun with KILL_TEST_SEED={seed}), {cycles} kill cycles");
    (seed, cycles)
}

/// The kill test's load, kills and final check on `node`; with `disk` (a
/// small filesystem holding the data folder), some cycles fill the disk
/// during the load and are killed while it is full, and some restarts
/// happen on the full disk.
pub async fn run_kill_test(
    mut node: Node,
    seed: u64,
    cycles: u32,
    mut disk: Option<&mut crate::kill_disk::SmallDisk>,
) {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let st: Shared = Default::default();

    let url = node.url();
    declare_topology(&url).await;
    let mut recovery_kills = 0;

    for cycle in 0..cycles {
        if cycle > 0 {
            if let Some(d) = disk.as_deref_mut() {
                // Space comes back in some cycles; others restart full.
                if d.is_full() && rng.chance(50) {
                    d.free();
                }
            }
            // Sometimes crash it again while it is recovering.
            if rng.chance(25) {
                node.spawn_no_wait();
                tokio::time::sleep(Duration::from_millis(rng.range(0, 60))).await;
                node.kill();
                recovery_kills += 1;
            }
            node.restart().await;
        }
        st.lock().unwrap().cycle = cycle;
        check_topology(&url, &st).await;

        let mut tasks = Vec::new();
        for (q, mode) in MODES.iter().enumerate() {
            if *mode != Mode::Idle {
                tasks.push(tokio::spawn(consumer(
                    url.clone(),
                    q,
                    *mode,
                    st.clone(),
                    rng.next(),
                )));
            }
        }
        for p in 0..PUBLISHERS {
            tasks.push(tokio::spawn(publisher(url.clone(), p, st.clone())));
        }
        let delay = rng.range(50, 400);
        match disk.as_deref_mut() {
            Some(d) if !d.is_full() && rng.chance(50) => {
                // Fill the disk under load; the kill comes while it is full.
                tokio::time::sleep(Duration::from_millis(delay / 2)).await;
                d.fill();
                tokio::time::sleep(Duration::from_millis(delay - delay / 2)).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(delay)).await,
        }
        let full = disk.as_deref().is_some_and(|d| d.is_full());
        node.kill();
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(15), t).await {
                Ok(r) => r.expect("load task panicked"),
                Err(_) => panic!("a client task did not notice the broker died within 15s"),
            }
        }
        let s = st.lock().unwrap();
        let confirmed: usize = s.queues.iter().map(|q| q.confirmed.len()).sum();
        eprintln!(
            "cycle {cycle}: killed after {delay} ms{}; published {} confirmed(q-copies) {confirmed} commits {} nacked {}",
            if full { " on a full disk" } else { "" },
            s.published, s.commits_ok, s.nacked
        );
    }

    // Last restart (with space), then drain everything and check.
    if let Some(d) = disk.as_deref_mut() {
        d.free();
    }
    node.restart().await;
    st.lock().unwrap().cycle = cycles;
    check_topology(&url, &st).await;
    let conn = connect_retry(&url, Duration::from_secs(30)).await;
    let conn_error: Arc<Mutex<Option<lapin::Error>>> = Default::default();
    {
        let slot = conn_error.clone();
        conn.on_error(move |e| {
            slot.lock().unwrap().get_or_insert(e);
        });
    }
    let mut drains = Vec::new();
    let mut extra = Vec::new();
    for name in QUEUES {
        let ch = conn.create_channel().await.unwrap();
        let count = ch
            .queue_declare(
                name,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count();
        let mut consumer = ch
            .basic_consume(
                name,
                "drain",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut drained: Vec<(Id, bool)> = Vec::new();
        for _ in 0..count {
            let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .unwrap_or_else(|_| panic!("{name}: drain stalled after {}", drained.len()))
                .expect("consumer ended")
                .expect("consumer error");
            drained.push((parse(&d.data), d.redelivered));
        }
        ch.basic_cancel("drain", Default::default()).await.unwrap();
        if let Some(m) = ch
            .basic_get(name, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            extra.push(format!(
                "{name}: more messages than queue.declare-ok reported ({count}): {:?}",
                parse(&m.delivery.data)
            ));
        }
        drains.push(drained);
        if let Err(e) = ch.close(200, "drained").await {
            eprintln!("note: closing drain channel of {name}: {e}");
        }
    }
    // Closing is not what this test checks, but a server-sent error on the
    // drain connection would be a broker bug, so it is reported.
    if let Err(e) = conn.close(200, "bye").await {
        eprintln!(
            "note: closing drain connection: {e} (state {:?}, error seen {:?})",
            conn.status().state(),
            conn_error.lock().unwrap()
        );
    }
    if let Some(lapin::Error::ProtocolError(a)) = conn_error.lock().unwrap().take() {
        extra.push(format!("broker closed the drain connection: {a:?}"));
    }
    node.kill();

    let mut s = st.lock().unwrap();
    for e in extra {
        violation(&mut s, e);
    }
    let mut drained_total = 0;
    for (q, drained) in drains.into_iter().enumerate() {
        let name = QUEUES[q];
        drained_total += drained.len();
        let mut bad = Vec::new();
        let pq = &s.queues[q];
        let mut seen = BTreeSet::new();
        let mut last: HashMap<u8, u64> = HashMap::new();
        for &(id, redelivered) in &drained {
            if !seen.insert(id) {
                bad.push(format!("{name}: {id:?} twice in the final drain"));
            }
            if let Some(&l) = last.get(&id.0) {
                if id.1 <= l {
                    bad.push(format!(
                        "{name}: {id:?} after {:?}: order broken",
                        (id.0, l)
                    ));
                }
            }
            last.insert(id.0, id.1);
            if !redelivered {
                bad.push(format!("{name}: recovered {id:?} has redelivered=false"));
            }
            if pq.committed.contains(&id) {
                bad.push(format!(
                    "{name}: {id:?} came back although its ack was committed (tx.commit-ok)"
                ));
            }
            if !pq.confirmed.contains(&id) && !pq.maybe.contains(&id) {
                bad.push(format!("{name}: {id:?} was never published to it"));
            }
        }
        let mut lost = Vec::new();
        for id in &pq.confirmed {
            if !seen.contains(id)
                && !pq.committed.contains(id)
                && !pq.commit_attempted.contains(id)
                && !pq.plain_acked.contains(id)
            {
                lost.push(*id);
            }
        }
        if !lost.is_empty() {
            bad.push(format!(
                "{name}: {} confirmed messages LOST, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            ));
        }
        let unconfirmed_present = drained
            .iter()
            .filter(|(id, _)| pq.maybe.contains(id))
            .count();
        eprintln!(
            "{name} ({:?}): confirmed {}, tx-committed acks {}, commit-ok lost {}, plain acks {}, \
             deliveries {} (redelivered {}), final drain {} (of which unconfirmed {})",
            MODES[q],
            pq.confirmed.len(),
            pq.committed.len(),
            pq.commit_attempted.len(),
            pq.plain_acked.len(),
            pq.deliveries,
            pq.redeliveries,
            drained.len(),
            unconfirmed_present
        );
        for b in bad {
            violation(&mut s, b);
        }
    }
    eprintln!(
        "kill_test: seed {seed}: {cycles} kill cycles under load + {recovery_kills} kills during \
         recovery in {:.1}s; published {}, nacked {}, tx commits ok {}, commits cut by a kill {}, \
         final drain {drained_total}",
        started.elapsed().as_secs_f64(),
        s.published,
        s.nacked,
        s.commits_ok,
        s.commits_lost,
    );
    assert!(
        s.violations.is_empty(),
        "kill_test seed {seed}: {} violation(s):\n{}",
        s.violations.len(),
        s.violations.join("\n")
    );
    if disk.as_deref().is_some_and(|d| d.fills > 0) {
        assert!(
            s.nacked > 0,
            "kill_test seed {seed}: the disk filled but no publish was nacked: the store never met ENOSPC"
        );
    }
    let confirmed: usize = s.queues.iter().map(|q| q.confirmed.len()).sum();
    assert!(
        confirmed > 0,
        "nothing was confirmed: the test exercised nothing"
    );
}
