//! Shared test helpers: definitions, a scripted random workload driven
//! against a store plus a model of what it should contain, and checks that
//! compare a recovery with the model.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker_core::access::{
    HashAlgorithm, PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits,
    VhostRecord,
};
use broker_core::access_state::{AccessRecord, AccessState};
use broker_core::params::{ParamRecord, Policy, PolicyKind};
use broker_core::persist::{
    BindingDef, ExchangeDef, MessageId, OwnedMessage, PersistError, Persistence, QueueDef,
    Recovered, Seq, StoredAt, Syncer,
};
use bytes::Bytes;
use store::{open_with_backend, FileStore, FileSyncer, SimBackend, StoreConfig};

pub const VH: &str = "/";

pub fn exchange(name: &str) -> ExchangeDef {
    ExchangeDef {
        vhost: VH.into(),
        name: name.into(),
        kind: "direct".into(),
        auto_delete: false,
        internal: false,
        arguments: vec![0, 0, 0, 0],
    }
}

pub fn queue(name: &str) -> QueueDef {
    QueueDef {
        vhost: VH.into(),
        name: name.into(),
        auto_delete: false,
        exclusive: false,
        arguments: vec![0, 0, 0, 0],
    }
}

pub fn binding(source: &str, queue: &str, key: &str) -> BindingDef {
    BindingDef {
        vhost: VH.into(),
        source: source.into(),
        destination: queue.into(),
        destination_is_queue: true,
        routing_key: key.into(),
        arguments: vec![0, 0, 0, 0],
    }
}

pub fn message(body: &str) -> OwnedMessage {
    OwnedMessage {
        exchange: "ex".into(),
        routing_key: "rk".into(),
        properties: Bytes::from_static(&[0x80, 0x00, 2]),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("warren-store-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small deterministic PRNG (splitmix64) so every failure reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// What the store should hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// Queue name -> (incarnation, held ids in order).
    pub queues: BTreeMap<String, (u64, Vec<MessageId>)>,
    pub exchanges: BTreeSet<String>,
    /// (source, queue, key)
    pub bindings: BTreeSet<(String, String, String)>,
    /// Users, vhosts, permissions, limits.
    pub access: AccessState,
}

/// The observable content of a recovery, in model form.
pub fn observe(r: &Recovered) -> Model {
    let mut m = Model::default();
    for (vhost, name, ids) in &r.queue_messages {
        assert_eq!(vhost, VH);
        m.queues.insert(name.clone(), (0, ids.clone()));
    }
    assert_eq!(
        r.queues.len(),
        r.queue_messages.len(),
        "queue list and queue_messages disagree"
    );
    m.exchanges = r.exchanges.iter().map(|e| e.name.clone()).collect();
    m.bindings = r
        .bindings
        .iter()
        .map(|b| {
            (
                b.source.clone(),
                b.destination.clone(),
                b.routing_key.clone(),
            )
        })
        .collect();
    m.access = r.access.clone();
    m
}

/// A store under a scripted workload, with the model after every record.
pub struct Harness {
    pub sim: Arc<SimBackend>,
    pub store: FileStore,
    pub syncer: Arc<FileSyncer>,
    pub model: Model,
    /// (seq, model right after the record with that seq), starting at (0, empty).
    pub history: Vec<(Seq, Model)>,
    /// Body published for each id.
    pub bodies: HashMap<MessageId, Bytes>,
    /// Highest seq a successful sync returned.
    pub synced: Seq,
    next_incarnation: u64,
    /// Where the store said each message's record can be read back.
    pub ats: HashMap<MessageId, StoredAt>,
    /// Records read back and checked by `check_reads`.
    pub reads_checked: u64,
}

/// A random change of users, vhosts, permissions, limits, policies or
/// parameters, over a few names so puts and deletes meet.
pub fn random_access_record(rng: &mut Rng) -> AccessRecord {
    let user = format!("u{}", rng.below(3));
    let vhost = format!("v{}", rng.below(2));
    let n = rng.below(1000) as i64 - 1;
    let name = format!("p{}", rng.below(2));
    let kind = [PolicyKind::User, PolicyKind::Operator][rng.below(2) as usize];
    match rng.below(16) {
        10 => AccessRecord::Param(ParamRecord::PutPolicy(
            kind,
            vhost,
            name,
            Policy {
                pattern: format!("^q{n}"),
                apply_to: "queues".into(),
                priority: n,
                definition: format!("{{\"max-length\":{n}}}"),
            },
        )),
        11 => AccessRecord::Param(ParamRecord::DeletePolicy(kind, vhost, name)),
        12 => AccessRecord::Param(ParamRecord::PutParameter(
            "federation-upstream".into(),
            vhost,
            name,
            format!("{{\"uri\":\"amqp://h{n}\"}}"),
        )),
        13 => AccessRecord::Param(ParamRecord::DeleteParameter(
            "federation-upstream".into(),
            vhost,
            name,
        )),
        14 => AccessRecord::Param(ParamRecord::PutGlobal(name, format!("\"v{n}\""))),
        15 => AccessRecord::Param(ParamRecord::DeleteGlobal(name)),
        0 => AccessRecord::PutUser(UserRecord {
            name: user.clone(),
            password_hash: format!("salt{user}{n}").into_bytes(),
            algorithm: [
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha512,
                HashAlgorithm::Md5,
            ][rng.below(3) as usize],
            tags: (0..rng.below(3)).map(|i| format!("t{i}")).collect(),
        }),
        1 => AccessRecord::DeleteUser(user),
        2 => AccessRecord::PutVhost(VhostRecord {
            name: vhost,
            description: format!("d{n}"),
            tags: vec!["a".into()],
            default_queue_type: "quorum".into(),
        }),
        3 => AccessRecord::DeleteVhost(vhost),
        4 => AccessRecord::PutPermission(PermissionRecord {
            user,
            vhost,
            configure: format!("^c{n}"),
            write: ".*".into(),
            read: String::new(),
        }),
        5 => AccessRecord::DeletePermission(user, vhost),
        6 => AccessRecord::PutTopicPermission(TopicPermissionRecord {
            user,
            vhost,
            exchange: format!("x{}", rng.below(2)),
            write: "^{username}".into(),
            read: format!("r{n}"),
        }),
        7 => AccessRecord::DeleteTopicPermission(user, vhost, format!("x{}", rng.below(2))),
        8 => AccessRecord::SetVhostLimits(
            vhost,
            VhostLimits {
                max_connections: n,
                max_queues: -n,
            },
        ),
        _ => AccessRecord::SetUserLimits(
            user,
            UserLimits {
                max_connections: n,
                max_channels: n / 2,
            },
        ),
    }
}

pub fn small_config() -> StoreConfig {
    StoreConfig {
        segment_size_bytes: 300,
        reserve_bytes: 256,
        ..StoreConfig::default()
    }
}

impl Harness {
    pub fn new() -> Self {
        let sim = Arc::new(SimBackend::new());
        let (store, syncer, rec) =
            open_with_backend(sim.clone(), small_config()).expect("open empty");
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        Self {
            sim,
            store,
            syncer,
            model: Model::default(),
            history: vec![(0, Model::default())],
            bodies: HashMap::new(),
            synced: 0,
            next_incarnation: 1,
            ats: HashMap::new(),
            reads_checked: 0,
        }
    }

    /// The model at the last sync and after every later record.
    pub fn states_since(&self, seq: Seq) -> Vec<&Model> {
        let i = self.history.partition_point(|(s, _)| *s <= seq);
        self.history[i - 1..].iter().map(|(_, m)| m).collect()
    }

    pub fn model_at(&self, seq: Seq) -> &Model {
        let i = self.history.partition_point(|(s, _)| *s <= seq);
        &self.history[i - 1].1
    }

    fn record(&mut self, seq: Seq) {
        match self.history.last_mut() {
            Some((s, m)) if *s == seq => *m = self.model.clone(),
            _ => self.history.push((seq, self.model.clone())),
        }
    }

    /// Runs one random step; returns Err when the store failed.
    pub fn step(&mut self, rng: &mut Rng, step: u64) -> Result<(), PersistError> {
        let names: Vec<String> = self.model.queues.keys().cloned().collect();
        let pick = |rng: &mut Rng| names.get(rng.below(names.len() as u64) as usize).cloned();
        match rng.below(100) {
            0..=39 if !names.is_empty() => {
                let mut targets: Vec<String> =
                    (0..1 + rng.below(3)).filter_map(|_| pick(rng)).collect();
                targets.sort();
                targets.dedup();
                if rng.below(10) == 0 {
                    targets.push("transient".into()); // not durable: ignored by the store
                }
                // One in four is a timed (delayed) message; its due time is
                // in the body so recovery can be checked against it.
                let timed = rng.below(4) == 0;
                let due = 1_700_000_000_000 + step;
                let pad = "x".repeat(rng.below(40) as usize);
                let body = if timed {
                    format!("t{due}-{pad}")
                } else {
                    format!("m{step}-{pad}")
                };
                let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
                let record = message(&body);
                let a = self
                    .store
                    .append(VH, &record.as_record(), &refs, timed.then_some(due))?;
                let (id, seq) = (a.id, a.seq);
                // Readable back exactly when every named queue is one the
                // store holds it for (not with the transient name).
                let all_held = !targets.is_empty() && !targets.iter().any(|t| t == "transient");
                assert_eq!(a.at.is_some(), all_held, "stored_at for {targets:?}");
                if let Some(at) = a.at {
                    self.ats.insert(id, at);
                }
                self.bodies.insert(id, Bytes::from(body));
                for t in &targets {
                    if let Some((_, ids)) = self.model.queues.get_mut(t) {
                        ids.push(id);
                    }
                }
                self.record(seq);
            }
            40..=64 => {
                let Some(q) = pick(rng) else { return Ok(()) };
                let ids = &self.model.queues[&q].1;
                if ids.is_empty() {
                    return Ok(());
                }
                let id = ids[rng.below(ids.len() as u64) as usize];
                let seq = self.store.remove_message(VH, &q, id)?;
                if let Some((_, ids)) = self.model.queues.get_mut(&q) {
                    ids.retain(|x| *x != id);
                }
                self.record(seq);
            }
            65..=77 => self.sync()?,
            78..=81 => {
                let Some(q) = pick(rng) else { return Ok(()) };
                let seq = self.store.delete_queue(VH, &q)?;
                self.model.queues.remove(&q);
                self.model.bindings.retain(|b| b.1 != q);
                self.record(seq);
            }
            82..=88 => {
                let name = format!("q{}", rng.below(6));
                if self.model.queues.contains_key(&name) {
                    return Ok(());
                }
                let seq = self.store.put_queue(&queue(&name))?;
                self.model
                    .queues
                    .insert(name, (self.next_incarnation, Vec::new()));
                self.next_incarnation += 1;
                self.record(seq);
            }
            89..=93 => {
                let Some(q) = pick(rng) else { return Ok(()) };
                let ex = format!("ex{}", rng.below(2));
                if !self.model.exchanges.contains(&ex) {
                    return Ok(());
                }
                let key = format!("k{}", rng.below(2));
                let b = (ex.clone(), q.clone(), key.clone());
                let seq = if self.model.bindings.remove(&b) {
                    self.store.delete_binding(&binding(&ex, &q, &key))?
                } else {
                    self.model.bindings.insert(b);
                    self.store.put_binding(&binding(&ex, &q, &key))?
                };
                self.record(seq);
            }
            94..=96 => {
                if !self.model.access.seeded {
                    self.store.put_access(&AccessRecord::Seeded)?;
                    self.model.access.apply(AccessRecord::Seeded);
                }
                let rec = random_access_record(rng);
                let seq = self.store.put_access(&rec)?;
                self.model.access.apply(rec);
                self.record(seq);
            }
            _ => {
                let ex = format!("ex{}", rng.below(2));
                let seq = if self.model.exchanges.remove(&ex) {
                    self.model.bindings.retain(|b| b.0 != ex);
                    self.store.delete_exchange(VH, &ex)?
                } else {
                    self.model.exchanges.insert(ex.clone());
                    self.store.put_exchange(&exchange(&ex))?
                };
                self.record(seq);
            }
        }
        Ok(())
    }

    /// Every message some queue still holds reads back from the store
    /// with its body intact (from the pending buffer or its segment file).
    pub fn check_reads(&mut self) {
        let live: BTreeSet<MessageId> = self
            .model
            .queues
            .values()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        for id in live {
            let Some(at) = self.ats.get(&id).copied() else {
                continue;
            };
            let got = self.store.read_message(at).map(|r| r.body.to_vec());
            assert_eq!(
                got.as_deref(),
                self.bodies.get(&id).map(|b| &b[..]),
                "message {id} at {at:?}"
            );
            self.reads_checked += 1;
        }
    }

    pub fn sync(&mut self) -> Result<(), PersistError> {
        let seq = self.syncer.sync()?;
        assert_eq!(
            seq,
            self.store.last_seq(),
            "sync covers everything appended before it"
        );
        self.synced = seq;
        Ok(())
    }
}

/// Recovery must equal the model exactly, with every body intact.
pub fn check_exact(rec: &Recovered, expect: &Model, bodies: &HashMap<MessageId, Bytes>) {
    let got = observe(rec);
    let strip = |m: &Model| {
        let mut m = m.clone();
        m.queues.values_mut().for_each(|(inc, _)| *inc = 0);
        m
    };
    assert_eq!(
        strip(&got),
        strip(expect),
        "recovered state differs; warnings: {:?}",
        rec.warnings
    );
    check_messages(rec, bodies);
}

/// Each recovered message appears once, with the body it was published with,
/// and is held by some queue.
pub fn check_messages(rec: &Recovered, bodies: &HashMap<MessageId, Bytes>) {
    let held: BTreeSet<MessageId> = rec
        .queue_messages
        .iter()
        .flat_map(|(_, _, ids)| ids.iter().copied())
        .collect();
    let mut seen = BTreeSet::new();
    for (id, m) in &rec.messages {
        assert!(seen.insert(*id), "message {id} recovered twice");
        assert_eq!(Some(&m.body), bodies.get(id), "body of {id}");
    }
    assert_eq!(seen, held, "messages list and queue holds disagree");
    // Timed messages come back as timed, with their due time.
    let dues: HashMap<MessageId, u64> = rec.due_ms.iter().copied().collect();
    for (id, m) in &rec.messages {
        let body = String::from_utf8_lossy(&m.body);
        match dues.get(id) {
            Some(due) => assert!(body.starts_with(&format!("t{due}-")), "due of {id}: {due}"),
            None => assert!(
                body.starts_with('m'),
                "timed message {id} lost its due time"
            ),
        }
    }
    for (_, name, ids) in &rec.queue_messages {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "queue {name} out of order or duplicated: {ids:?}"
        );
    }
}

/// For a crash in the middle of a sync: `states` are the model at the last
/// good sync followed by the model after each record of the failed batch.
/// Whatever the first and last agree on must be present; nothing may appear
/// that no state in between had (so nothing removed-and-synced comes back).
pub fn check_between(rec: &Recovered, states: &[&Model], bodies: &HashMap<MessageId, Bytes>) {
    let (Some(old), Some(new)) = (states.first(), states.last()) else {
        return;
    };
    let got = observe(rec);
    check_messages(rec, bodies);
    let ctx = || {
        format!(
            "old {old:?}\nnew {new:?}\ngot {got:?}\nwarnings {:?}",
            rec.warnings
        )
    };
    for (name, (_, ids)) in &got.queues {
        let seen: Vec<_> = states.iter().filter_map(|m| m.queues.get(name)).collect();
        assert!(!seen.is_empty(), "queue {name} from nowhere\n{}", ctx());
        for id in ids {
            assert!(
                seen.iter().any(|(_, held)| held.contains(id)),
                "{name} has {id} which it never held\n{}",
                ctx()
            );
        }
    }
    // Present in every state (never removed, even transiently) => must survive.
    for (name, (inc, ids)) in &old.queues {
        if !states
            .iter()
            .all(|m| m.queues.get(name).is_some_and(|(i, _)| i == inc))
        {
            continue;
        }
        let got_ids = got.queues.get(name).map(|(_, ids)| ids.as_slice());
        let got_ids = got_ids.unwrap_or_else(|| panic!("durable queue {name} lost\n{}", ctx()));
        for id in ids
            .iter()
            .filter(|id| states.iter().all(|m| m.queues[name].1.contains(id)))
        {
            assert!(
                got_ids.contains(id),
                "durable message {id} lost from {name}\n{}",
                ctx()
            );
        }
    }
    for e in &got.exchanges {
        assert!(
            states.iter().any(|m| m.exchanges.contains(e)),
            "exchange {e} from nowhere\n{}",
            ctx()
        );
    }
    for e in old
        .exchanges
        .iter()
        .filter(|e| states.iter().all(|m| m.exchanges.contains(*e)))
    {
        assert!(
            got.exchanges.contains(e),
            "durable exchange {e} lost\n{}",
            ctx()
        );
    }
    for b in &got.bindings {
        assert!(
            states.iter().any(|m| m.bindings.contains(b)),
            "binding {b:?} from nowhere\n{}",
            ctx()
        );
    }
}

/// Opens a copy of the simulator as a power cut would leave it.
pub fn reopen_after_cut(
    sim: &SimBackend,
    torn_seed: u64,
) -> (FileStore, Arc<FileSyncer>, Recovered, Arc<SimBackend>) {
    let copy = Arc::new(sim.crash_copy(torn_seed));
    let (store, syncer, rec) =
        open_with_backend(copy.clone(), small_config()).expect("reopen after power cut");
    (store, syncer, rec, copy)
}

/// Recovery must be stable: opening again without a crash gives the same state.
pub fn check_idempotent(sim: &Arc<SimBackend>, first: &Recovered) {
    let (_, _, again) = open_with_backend(sim.clone(), small_config()).expect("second reopen");
    assert_eq!(
        observe(&again),
        observe(first),
        "second recovery differs; warnings {:?}",
        again.warnings
    );
    assert_eq!(again.messages, first.messages);
}

pub fn sync_ok(syncer: &FileSyncer) -> Seq {
    syncer.sync().expect("sync")
}
