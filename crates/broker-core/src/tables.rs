//! Field tables as the core keeps them (detached from their frames) and
//! stores them (encoded).

use amqp_codec::FieldTable;
use bytes::BytesMut;

pub(crate) fn encoded(t: &FieldTable) -> Vec<u8> {
    let mut b = BytesMut::new();
    t.encode(&mut b);
    b.to_vec()
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
