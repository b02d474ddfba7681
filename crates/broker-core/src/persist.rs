//! The interface between the core and durable storage.
//!
//! The core never touches files. It calls a [`Persistence`] while it holds its
//! state lock, so every call here must only *buffer* work in memory (no
//! syscalls that can block on the disk). A separate [`Syncer`], driven by the
//! server outside the core lock, writes the buffered records and fsyncs them.
//! Many publishers' records share one sync (group commit): a publisher confirm
//! for a persistent message is sent only once `Syncer::sync` has returned a
//! sequence number at or past the sequence of the message's record.
//!
//! Names are plain strings and field tables are passed encoded (the exact
//! bytes a client sent), so the store needs no knowledge of the codec.

use bytes::Bytes;

/// Store-assigned identity of one persistent message; unique and increasing
/// in publish order, so sorting a queue's ids restores its order.
pub type MessageId = u64;

/// Monotonic sequence number of an appended record (message, removal or
/// definition change). Durable once a sync returned a value `>=` it.
pub type Seq = u64;

/// A durable exchange as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: String,
    /// "direct", "fanout", "topic" or "headers".
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    /// Encoded AMQP field table (u32 length prefix + entries).
    pub arguments: Vec<u8>,
}

/// A durable queue as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDef {
    pub vhost: String,
    pub name: String,
    pub auto_delete: bool,
    /// Durable exclusive queues are stored so recovery can delete them, as
    /// RabbitMQ does (their owner connection is gone after a restart).
    pub exclusive: bool,
    /// Encoded AMQP field table.
    pub arguments: Vec<u8>,
}

/// A binding between two durable entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDef {
    pub vhost: String,
    /// Source exchange name.
    pub source: String,
    pub destination: String,
    /// True when `destination` is a queue, false for an exchange.
    pub destination_is_queue: bool,
    pub routing_key: String,
    /// Encoded AMQP field table.
    pub arguments: Vec<u8>,
}

/// A persistent message as the store writes it once, however many queues
/// hold it. Borrowed: the core hands the store slices of the message as it
/// was received, and recovery hands the core slices of the mapped segment
/// file, so neither side allocates per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRecord<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// Content-header property bytes (flags + list) exactly as published.
    pub properties: &'a [u8],
    pub body: &'a [u8],
}

/// Where the store keeps one message record (the message's one on-disk
/// copy): segment number and the record's byte offset in that segment.
/// Given by [`Persistence::append`] and [`RestoreSink::stored_message`],
/// read back with [`Persistence::read_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAt {
    /// The store's segment number.
    pub segment: u32,
    /// Byte offset of the record's frame in that segment.
    pub offset: u32,
}

/// What [`Persistence::append`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The message's store id (fresh even when nothing was written).
    pub id: MessageId,
    /// Durable once a sync returned a value `>=` it.
    pub seq: Seq,
    /// Where the record can be read back, when the store wrote one held by
    /// every queue it was given (so it lives as long as any of them holds
    /// it) and can serve reads; `None` otherwise.
    pub at: Option<StoredAt>,
}

/// Durable definitions found at startup. `queues[i]` is the queue that
/// [`RestoreSink::message`] names as slot `i`.
#[derive(Debug, Default, Clone)]
pub struct RecoveredDefs {
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
    /// Users, vhosts, permissions, limits (`access.seeded` false: a fresh
    /// or version-1 store, where the core creates the defaults).
    pub access: crate::access_state::AccessState,
}

/// Receives what the store recovers at startup, streamed: first the
/// definitions, then every message still held by some queue, in id order
/// (which is each queue's order). Streaming keeps recovery of millions of
/// messages from building a second copy of them in memory.
pub trait RestoreSink {
    fn definitions(&mut self, defs: RecoveredDefs);
    /// `queues` are indexes into the `RecoveredDefs::queues` given before.
    fn message(&mut self, id: MessageId, queues: &[u32], msg: &MessageRecord<'_>);
    /// A message stored with a due time (a delayed message, held by a
    /// delayed exchange's hidden queue); `due_ms` is wall-clock ms since
    /// the Unix epoch. Sinks that do not care see it as a plain message.
    fn timed_message(
        &mut self,
        id: MessageId,
        queues: &[u32],
        msg: &MessageRecord<'_>,
        due_ms: u64,
    ) {
        let _ = due_ms;
        self.message(id, queues, msg);
    }
    /// A recovered message with the place of its record in the store, which
    /// [`Persistence::read_message`] can read while a queue holds it (so
    /// the sink need not copy its contents). `due_ms` as in
    /// [`RestoreSink::timed_message`]. Sinks that do not care see it as a
    /// plain or timed message.
    fn stored_message(
        &mut self,
        id: MessageId,
        queues: &[u32],
        msg: &MessageRecord<'_>,
        at: StoredAt,
        due_ms: Option<u64>,
    ) {
        let _ = at;
        match due_ms {
            Some(due) => self.timed_message(id, queues, msg, due),
            None => self.message(id, queues, msg),
        }
    }
}

/// A message copied out of a [`MessageRecord`]: for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    pub exchange: String,
    pub routing_key: String,
    pub properties: Bytes,
    pub body: Bytes,
}

impl OwnedMessage {
    pub fn as_record(&self) -> MessageRecord<'_> {
        MessageRecord {
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            properties: &self.properties,
            body: &self.body,
        }
    }
}

/// Everything durable found at startup, collected in memory. A
/// [`RestoreSink`] for tests and tools; the broker streams instead.
#[derive(Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
    /// Users, vhosts, permissions, limits.
    pub access: crate::access_state::AccessState,
    /// Messages still held by some queue, by id.
    pub messages: Vec<(MessageId, OwnedMessage)>,
    /// For each durable queue (vhost, name): the ids it still holds, in queue order.
    pub queue_messages: Vec<(String, String, Vec<MessageId>)>,
    /// Due times (wall-clock ms) of the timed (delayed) messages among `messages`.
    pub due_ms: Vec<(MessageId, u64)>,
    /// Human-readable notes about anything dropped (torn tail, bad checksum...).
    pub warnings: Vec<String>,
}

impl RestoreSink for Recovered {
    fn timed_message(
        &mut self,
        id: MessageId,
        queues: &[u32],
        msg: &MessageRecord<'_>,
        due_ms: u64,
    ) {
        self.due_ms.push((id, due_ms));
        self.message(id, queues, msg);
    }

    fn definitions(&mut self, defs: RecoveredDefs) {
        self.queue_messages = defs
            .queues
            .iter()
            .map(|q| (q.vhost.clone(), q.name.clone(), Vec::new()))
            .collect();
        self.exchanges = defs.exchanges;
        self.queues = defs.queues;
        self.bindings = defs.bindings;
        self.access = defs.access;
    }

    fn message(&mut self, id: MessageId, queues: &[u32], msg: &MessageRecord<'_>) {
        for q in queues {
            if let Some((_, _, ids)) = self.queue_messages.get_mut(*q as usize) {
                ids.push(id);
            }
        }
        self.messages.push((
            id,
            OwnedMessage {
                exchange: msg.exchange.to_owned(),
                routing_key: msg.routing_key.to_owned(),
                properties: Bytes::copy_from_slice(msg.properties),
                body: Bytes::copy_from_slice(msg.body),
            },
        ));
    }
}

/// Failure of the durable store. After an I/O error the store is failed for
/// good: later writes return `Failed` rather than writing on a broken file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    #[error("store I/O error: {0}")]
    Io(String),
    #[error("store has failed earlier and refuses writes: {0}")]
    Failed(String),
}

/// Buffered, non-blocking write side of the store (called under the core lock).
pub trait Persistence: Send {
    fn put_exchange(&mut self, def: &ExchangeDef) -> Result<Seq, PersistError>;
    fn delete_exchange(&mut self, vhost: &str, name: &str) -> Result<Seq, PersistError>;
    fn put_queue(&mut self, def: &QueueDef) -> Result<Seq, PersistError>;
    /// Deletes the queue definition, its bindings, and its hold on every message.
    fn delete_queue(&mut self, vhost: &str, name: &str) -> Result<Seq, PersistError>;
    fn put_binding(&mut self, def: &BindingDef) -> Result<Seq, PersistError>;
    fn delete_binding(&mut self, def: &BindingDef) -> Result<Seq, PersistError>;
    /// Writes `msg` once and records that each of `queues` (names in `vhost`) holds it.
    fn append_message(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
    ) -> Result<(MessageId, Seq), PersistError>;
    /// `append_message` for a delayed message: the record also keeps its
    /// due time (wall-clock ms since the Unix epoch), given back to
    /// `RestoreSink::timed_message` at recovery. A store without that
    /// record kind may store it as a plain message.
    fn append_timed_message(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: u64,
    ) -> Result<(MessageId, Seq), PersistError> {
        let _ = due_ms;
        self.append_message(vhost, msg, queues)
    }
    /// `append_message` (or `append_timed_message` with a due time), also
    /// telling where the record can be read back. A store that cannot serve
    /// reads says `at: None`, and the core keeps its own copy.
    fn append(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: Option<u64>,
    ) -> Result<Appended, PersistError> {
        let (id, seq) = match due_ms {
            Some(due) => self.append_timed_message(vhost, msg, queues, due)?,
            None => self.append_message(vhost, msg, queues)?,
        };
        Ok(Appended { id, seq, at: None })
    }
    /// True while new messages are refused (paused on a full disk, or
    /// failed); lets the core leave expired messages of dead-lettering
    /// queues at their heads (`Queue::holds_expired`) instead of trying to
    /// dead-letter each of them again at every tick.
    fn refuses_messages(&self) -> bool {
        false
    }
    /// `append` for a copy of a stored message that is released at the same
    /// time (dead-lettering, a due delayed message): until this record is
    /// durable, the store must not delete the segment holding the original,
    /// even when the original's release made it settled.
    fn append_copy(
        &mut self,
        vhost: &str,
        msg: &MessageRecord<'_>,
        queues: &[&str],
        due_ms: Option<u64>,
    ) -> Result<Appended, PersistError> {
        self.append(vhost, msg, queues, due_ms)
    }
    /// The record at `at` (given by `append` or recovery), while at least
    /// one queue holds it. Never blocks on the disk for a write: records
    /// not yet written come from the store's buffer. Reading a written one
    /// may page-fault on a cold page of the segment (see ARCHITECTURE.md).
    /// The view lives until the next call on the store.
    fn read_message(&mut self, at: StoredAt) -> Option<MessageRecord<'_>> {
        let _ = at;
        None
    }
    /// The queue no longer holds the message (acked, purged, dropped).
    fn remove_message(
        &mut self,
        vhost: &str,
        queue: &str,
        id: MessageId,
    ) -> Result<Seq, PersistError>;
    /// Records a change of users, vhosts, permissions or limits.
    fn put_access(&mut self, rec: &crate::access_state::AccessRecord) -> Result<Seq, PersistError>;
    /// Sequence number of the last record appended.
    fn last_seq(&self) -> Seq;
    /// Periodic housekeeping (about every tick): a store may give back
    /// space here, e.g. close an active segment whose messages are all
    /// settled so it can be deleted. Must not block, like every call here.
    fn maintain(&mut self) {}
}

/// The I/O side of the store: writes buffered records and makes them durable.
pub trait Syncer: Send + Sync {
    /// Writes everything appended so far and fdatasyncs it (plus directory
    /// fsync when files were created). Returns the highest durable `Seq`.
    fn sync(&self) -> Result<Seq, PersistError>;
}

/// A store that keeps nothing: for tests and `--data-dir none` style setups.
#[derive(Debug, Default)]
pub struct NoPersistence {
    next_id: MessageId,
}

impl Persistence for NoPersistence {
    fn put_exchange(&mut self, _: &ExchangeDef) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn delete_exchange(&mut self, _: &str, _: &str) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn put_queue(&mut self, _: &QueueDef) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn delete_queue(&mut self, _: &str, _: &str) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn put_binding(&mut self, _: &BindingDef) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn delete_binding(&mut self, _: &BindingDef) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn append_message(
        &mut self,
        _: &str,
        _: &MessageRecord<'_>,
        _: &[&str],
    ) -> Result<(MessageId, Seq), PersistError> {
        self.next_id += 1;
        Ok((self.next_id, 0))
    }
    fn remove_message(&mut self, _: &str, _: &str, _: MessageId) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn put_access(&mut self, _: &crate::access_state::AccessRecord) -> Result<Seq, PersistError> {
        Ok(0)
    }
    fn last_seq(&self) -> Seq {
        0
    }
}
