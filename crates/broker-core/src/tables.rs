//! Field tables as the core keeps them (detached from their frames) and
//! stores them (encoded).

use amqp_codec::FieldTable;
use bytes::BytesMut;

pub(crate) fn encoded(t: &FieldTable) -> Vec<u8> {
    let mut b = BytesMut::new();
    t.encode(&mut b);
    b.to_vec()
}

/// A table kept only to be shown (connection.start-ok's client properties):
/// its encoding in an allocation of exactly its size, decoded when read. A
/// decoded table costs several times its encoding (an entry per field, nested
/// vectors), and every connection holds one (memory per connection); copying
/// it into a snapshot is a reference-count increment.
#[derive(Debug, Clone, Default)]
pub struct EncodedTable(bytes::Bytes);

impl EncodedTable {
    /// Encodes `t` (copied out of its frame).
    pub fn new(t: &FieldTable) -> EncodedTable {
        if t.is_empty() {
            return EncodedTable::default();
        }
        EncodedTable(bytes::Bytes::copy_from_slice(&encoded(t)))
    }
    /// The table; an undecodable one reads as empty.
    pub fn decode(&self) -> FieldTable {
        if self.0.is_empty() {
            return FieldTable::default();
        }
        FieldTable::decode(&mut self.0.clone()).unwrap_or_default()
    }
}

/// A table in its own allocation (see `ShortStr::detached`): decoded tables
/// are slices of their frame, which a stored one would pin.
pub fn detached_table(t: &FieldTable) -> FieldTable {
    if t.is_empty() {
        return FieldTable::default();
    }
    decode_table(&encoded(t))
}

/// A table from its encoding (as stored), in its own allocation; an
/// undecodable one reads as empty.
pub(crate) fn decode_table(raw: &[u8]) -> FieldTable {
    let mut b = bytes::Bytes::copy_from_slice(raw);
    FieldTable::decode(&mut b).unwrap_or_default()
}
