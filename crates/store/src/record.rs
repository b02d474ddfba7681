//! Record bodies (the bytes inside a frame): a type byte, then fields.
//!
//! Strings and byte fields are `u32 length + bytes`; integers little-endian.
//! Decoding never trusts a length beyond the bytes present, so a damaged
//! record yields `None`, never a panic or an oversized allocation.

use broker_core::persist::{BindingDef, ExchangeDef, MessageId, MessageRecord, QueueDef};

/// Store-assigned queue identity. Never reused (the next value is kept in the
/// definitions log), so a message hold by a deleted queue can never be
/// mistaken for a hold by a later queue with the same name.
pub type QueueId = u64;

pub const T_META: u8 = 1;
pub const T_PUT_EXCHANGE: u8 = 2;
pub const T_DELETE_EXCHANGE: u8 = 3;
pub const T_PUT_QUEUE: u8 = 4;
pub const T_DELETE_QUEUE: u8 = 5;
pub const T_PUT_BINDING: u8 = 6;
pub const T_DELETE_BINDING: u8 = 7;
pub const T_MESSAGE: u8 = 16;
pub const T_RELEASE: u8 = 17;
/// A message with a due time (a delayed message); format version 2.
pub const T_TIMED_MESSAGE: u8 = 18;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Counters that must survive even when nothing else mentions them.
    Meta {
        next_queue_id: QueueId,
        next_message_id: MessageId,
    },
    PutExchange(ExchangeDef),
    DeleteExchange {
        vhost: String,
        name: String,
    },
    PutQueue {
        id: QueueId,
        def: QueueDef,
    },
    DeleteQueue {
        id: QueueId,
    },
    PutBinding(BindingDef),
    DeleteBinding(BindingDef),
    /// A message record (decoded with [`decode_message`], not here).
    Message,
    /// Queue `queue` no longer holds message `id`.
    Release {
        queue: QueueId,
        id: MessageId,
    },
    /// A change of users, vhosts, permissions or limits (version 2).
    Access(broker_core::access_state::AccessRecord),
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn encode_meta(out: &mut Vec<u8>, next_queue_id: QueueId, next_message_id: MessageId) {
    out.push(T_META);
    put_u64(out, next_queue_id);
    put_u64(out, next_message_id);
}

pub fn encode_exchange(out: &mut Vec<u8>, d: &ExchangeDef) {
    out.push(T_PUT_EXCHANGE);
    put_bytes(out, d.vhost.as_bytes());
    put_bytes(out, d.name.as_bytes());
    put_bytes(out, d.kind.as_bytes());
    out.push(u8::from(d.auto_delete) | u8::from(d.internal) << 1);
    put_bytes(out, &d.arguments);
}

pub fn encode_delete_exchange(out: &mut Vec<u8>, vhost: &str, name: &str) {
    out.push(T_DELETE_EXCHANGE);
    put_bytes(out, vhost.as_bytes());
    put_bytes(out, name.as_bytes());
}

pub fn encode_queue(out: &mut Vec<u8>, id: QueueId, d: &QueueDef) {
    out.push(T_PUT_QUEUE);
    put_u64(out, id);
    put_bytes(out, d.vhost.as_bytes());
    put_bytes(out, d.name.as_bytes());
    out.push(u8::from(d.auto_delete) | u8::from(d.exclusive) << 1);
    put_bytes(out, &d.arguments);
}

pub fn encode_delete_queue(out: &mut Vec<u8>, id: QueueId) {
    out.push(T_DELETE_QUEUE);
    put_u64(out, id);
}

pub fn encode_binding(out: &mut Vec<u8>, d: &BindingDef, delete: bool) {
    out.push(if delete {
        T_DELETE_BINDING
    } else {
        T_PUT_BINDING
    });
    put_bytes(out, d.vhost.as_bytes());
    put_bytes(out, d.source.as_bytes());
    put_bytes(out, d.destination.as_bytes());
    out.push(u8::from(d.destination_is_queue));
    put_bytes(out, d.routing_key.as_bytes());
    put_bytes(out, &d.arguments);
}

/// Message body layout: id u64 | queue count u32 | queue ids u64.. |
/// [due_ms u64, timed messages only] | exchange | routing key | properties | body.
pub fn encode_message(
    out: &mut Vec<u8>,
    id: MessageId,
    queues: &[QueueId],
    m: &MessageRecord<'_>,
    due_ms: Option<u64>,
) {
    out.push(if due_ms.is_some() {
        T_TIMED_MESSAGE
    } else {
        T_MESSAGE
    });
    put_u64(out, id);
    out.extend_from_slice(&(queues.len() as u32).to_le_bytes());
    for q in queues {
        put_u64(out, *q);
    }
    if let Some(due) = due_ms {
        put_u64(out, due);
    }
    put_bytes(out, m.exchange.as_bytes());
    put_bytes(out, m.routing_key.as_bytes());
    put_bytes(out, m.properties);
    put_bytes(out, m.body);
}

pub fn encode_release(out: &mut Vec<u8>, queue: QueueId, id: MessageId) {
    out.push(T_RELEASE);
    put_u64(out, queue);
    put_u64(out, id);
}

/// Bounds-checked cursor over a record body.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.buf.get(..n)?, self.buf.get(n..)?);
        self.buf = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }
    pub(crate) fn vec(&mut self) -> Option<Vec<u8>> {
        Some(self.bytes()?.to_vec())
    }
    fn finish<T>(self, v: T) -> Option<T> {
        self.buf.is_empty().then_some(v)
    }
}

/// A message record, borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    pub id: MessageId,
    /// The holding queues' ids, 8 bytes each (see [`MessageView::queues`]).
    queue_bytes: &'a [u8],
    /// Due time (wall-clock ms) of a timed (delayed) message.
    pub due_ms: Option<u64>,
    pub msg: MessageRecord<'a>,
}

impl<'a> MessageView<'a> {
    pub fn queues(&self) -> impl Iterator<Item = QueueId> + 'a {
        self.queue_bytes.chunks_exact(8).map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        })
    }
}

/// Reads a message record's id, queue list and due time (timed messages),
/// leaving `r` at its contents.
fn message_head<'a>(r: &mut Reader<'a>) -> Option<(MessageId, &'a [u8], Option<u64>)> {
    let timed = match r.u8()? {
        T_MESSAGE => false,
        T_TIMED_MESSAGE => true,
        _ => return None,
    };
    let id = r.u64()?;
    let n = r.u32()? as usize;
    let queue_bytes = r.take(n.checked_mul(8)?)?;
    let due_ms = if timed { Some(r.u64()?) } else { None };
    Some((id, queue_bytes, due_ms))
}

/// Decodes a message record without copying anything.
pub fn decode_message(body: &[u8]) -> Option<MessageView<'_>> {
    let mut r = Reader { buf: body };
    let (id, queue_bytes, due_ms) = message_head(&mut r)?;
    let msg = MessageRecord {
        exchange: r.str()?,
        routing_key: r.str()?,
        properties: r.bytes()?,
        body: r.bytes()?,
    };
    r.finish(MessageView {
        id,
        queue_bytes,
        due_ms,
        msg,
    })
}

/// Decodes a record body. `None` means the bytes are not a well-formed record
/// of a known type (possible only with a CRC collision or a format bug).
/// Message records are only checked for shape and come back as
/// [`Record::Message`]; [`decode_message`] reads them.
pub fn decode(body: &[u8]) -> Option<Record> {
    let mut r = Reader { buf: body };
    let rec = match r.u8()? {
        T_META => Record::Meta {
            next_queue_id: r.u64()?,
            next_message_id: r.u64()?,
        },
        T_PUT_EXCHANGE => {
            let (vhost, name, kind) = (r.string()?, r.string()?, r.string()?);
            let flags = r.u8()?;
            Record::PutExchange(ExchangeDef {
                vhost,
                name,
                kind,
                auto_delete: flags & 1 != 0,
                internal: flags & 2 != 0,
                arguments: r.vec()?,
            })
        }
        T_DELETE_EXCHANGE => Record::DeleteExchange {
            vhost: r.string()?,
            name: r.string()?,
        },
        T_PUT_QUEUE => {
            let id = r.u64()?;
            let (vhost, name) = (r.string()?, r.string()?);
            let flags = r.u8()?;
            let def = QueueDef {
                vhost,
                name,
                auto_delete: flags & 1 != 0,
                exclusive: flags & 2 != 0,
                arguments: r.vec()?,
            };
            Record::PutQueue { id, def }
        }
        T_DELETE_QUEUE => Record::DeleteQueue { id: r.u64()? },
        t @ (T_PUT_BINDING | T_DELETE_BINDING) => {
            let (vhost, source, destination) = (r.string()?, r.string()?, r.string()?);
            let destination_is_queue = r.u8()? != 0;
            let def = BindingDef {
                vhost,
                source,
                destination,
                destination_is_queue,
                routing_key: r.string()?,
                arguments: r.vec()?,
            };
            if t == T_PUT_BINDING {
                Record::PutBinding(def)
            } else {
                Record::DeleteBinding(def)
            }
        }
        T_MESSAGE | T_TIMED_MESSAGE => {
            decode_message(body)?;
            return Some(Record::Message);
        }
        crate::access_record::T_ACCESS => {
            Record::Access(crate::access_record::decode_access(&mut r)?)
        }
        T_RELEASE => Record::Release {
            queue: r.u64()?,
            id: r.u64()?,
        },
        _ => return None,
    };
    r.finish(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(encode: impl Fn(&mut Vec<u8>), expect: Record) {
        let mut buf = Vec::new();
        encode(&mut buf);
        assert_eq!(decode(&buf), Some(expect));
        // Every strict prefix and every extension must be rejected, not panic.
        for n in 0..buf.len() {
            assert_eq!(decode(&buf[..n]), None, "prefix {n}");
        }
        buf.push(0);
        assert_eq!(decode(&buf), None);
    }

    #[test]
    fn definitions_roundtrip() {
        let ex = ExchangeDef {
            vhost: "/".into(),
            name: "ex".into(),
            kind: "topic".into(),
            auto_delete: false,
            internal: true,
            arguments: vec![0, 0, 0, 0],
        };
        roundtrip(|o| encode_exchange(o, &ex), Record::PutExchange(ex.clone()));
        roundtrip(
            |o| encode_delete_exchange(o, "/", "ex"),
            Record::DeleteExchange {
                vhost: "/".into(),
                name: "ex".into(),
            },
        );
        let q = QueueDef {
            vhost: "v".into(),
            name: "q".into(),
            auto_delete: true,
            exclusive: true,
            arguments: vec![1, 2],
        };
        roundtrip(
            |o| encode_queue(o, 9, &q),
            Record::PutQueue {
                id: 9,
                def: q.clone(),
            },
        );
        roundtrip(|o| encode_delete_queue(o, 9), Record::DeleteQueue { id: 9 });
        let b = BindingDef {
            vhost: "/".into(),
            source: "ex".into(),
            destination: "q".into(),
            destination_is_queue: true,
            routing_key: "a.#".into(),
            arguments: vec![],
        };
        roundtrip(
            |o| encode_binding(o, &b, false),
            Record::PutBinding(b.clone()),
        );
        roundtrip(
            |o| encode_binding(o, &b, true),
            Record::DeleteBinding(b.clone()),
        );
        roundtrip(
            |o| encode_meta(o, 3, 4),
            Record::Meta {
                next_queue_id: 3,
                next_message_id: 4,
            },
        );
    }

    #[test]
    fn message_and_release_roundtrip() {
        let m = MessageRecord {
            exchange: "amq.direct",
            routing_key: "rk",
            properties: &[0x10, 0x00, 2],
            body: b"payload",
        };
        let mut buf = Vec::new();
        encode_message(&mut buf, 77, &[1, 5], &m, None);
        let v = decode_message(&buf).expect("decodes");
        assert_eq!((v.id, v.msg), (77, m));
        assert_eq!(v.queues().collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(decode(&buf), Some(Record::Message));
        for n in 0..buf.len() {
            assert_eq!(decode_message(&buf[..n]), None, "prefix {n}");
        }
        buf.push(0);
        assert_eq!(decode_message(&buf), None);
        roundtrip(
            |o| encode_release(o, 5, 77),
            Record::Release { queue: 5, id: 77 },
        );
    }

    #[test]
    fn rejects_unknown_type_and_bad_utf8() {
        assert_eq!(decode(&[99]), None);
        let mut buf = vec![T_DELETE_EXCHANGE];
        put_bytes(&mut buf, &[0xff, 0xfe]);
        put_bytes(&mut buf, b"x");
        assert_eq!(decode(&buf), None);
    }

    #[test]
    fn timed_message_roundtrip() {
        let m = MessageRecord {
            exchange: "dx",
            routing_key: "rk",
            properties: &[0, 0],
            body: b"hello",
        };
        let mut buf = Vec::new();
        encode_message(&mut buf, 9, &[3, 4], &m, Some(1_700_000_000_123));
        assert_eq!(buf[0], T_TIMED_MESSAGE);
        assert_eq!(decode(&buf), Some(Record::Message));
        let v = decode_message(&buf).expect("timed message decodes");
        assert_eq!((v.id, v.due_ms, v.msg), (9, Some(1_700_000_000_123), m));
        assert_eq!(v.queues().collect::<Vec<_>>(), vec![3, 4]);
        let mut plain = Vec::new();
        encode_message(&mut plain, 9, &[3], &m, None);
        assert_eq!(decode_message(&plain).map(|v| v.due_ms), Some(None));
    }

    #[test]
    fn huge_queue_count_is_bounded() {
        let mut buf = vec![T_MESSAGE];
        put_u64(&mut buf, 1);
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&buf), None);
        assert_eq!(decode_message(&buf), None);
    }
}
