//! File names, magic numbers, the file header and the record frame.
//!
//! Everything that decides how bytes look on disk lives here (and in
//! `record.rs` for record payloads) so `docs/storage.md` has one place to be
//! checked against. All integers are little-endian.

/// On-disk format version written in every file header. Bump it when any
/// layout in this module or `record.rs` changes; `open` refuses other versions
/// rather than guessing.
pub const FORMAT_VERSION: u32 = 3;
/// Oldest format version `open` still reads (see `check_header`).
pub const FORMAT_VERSION_OLDEST_READ: u32 = 1;

/// Magic for the definitions log (`defs.log`).
pub const MAGIC_DEFS: [u8; 8] = *b"WRNDEFS\0";
/// Magic for a message segment (`msgs.NNNNNNNNNN`).
pub const MAGIC_SEGMENT: [u8; 8] = *b"WRNMSGS\0";
/// Magic for a segment's release file (`acks.NNNNNNNNNN`).
pub const MAGIC_ACKS: [u8; 8] = *b"WRNACKS\0";

/// Size of the fixed file header in bytes.
pub const HEADER_SIZE_BYTES: usize = 32;
/// Size of a record frame's prefix: length (u32) + CRC32 (u32).
pub const FRAME_PREFIX_SIZE_BYTES: usize = 8;

/// The definitions log.
pub const DEFS_FILE: &str = "defs.log";
/// Temporary name for a definitions snapshot before it is renamed over `defs.log`.
pub const DEFS_TMP_FILE: &str = "defs.log.tmp";
/// Suffix given to files whose header is unreadable; they are kept for
/// forensics and otherwise ignored.
pub const CORRUPT_SUFFIX: &str = ".corrupt";

/// Name of message segment `n`.
pub fn segment_file(n: u32) -> String {
    format!("msgs.{n:010}")
}

/// Name of the release (ack) file belonging to segment `n`.
pub fn acks_file(n: u32) -> String {
    format!("acks.{n:010}")
}

/// What a file name in the data folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Defs,
    DefsTmp,
    Segment(u32),
    Acks(u32),
    Other,
}

/// Classifies a file name; anything unexpected is `Other` and left alone.
pub fn classify(name: &str) -> FileKind {
    fn number(s: &str) -> Option<u32> {
        if s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    }
    if name == DEFS_FILE {
        FileKind::Defs
    } else if name == DEFS_TMP_FILE {
        FileKind::DefsTmp
    } else if let Some(n) = name.strip_prefix("msgs.").and_then(number) {
        FileKind::Segment(n)
    } else if let Some(n) = name.strip_prefix("acks.").and_then(number) {
        FileKind::Acks(n)
    } else {
        FileKind::Other
    }
}

/// Fixed 32-byte header at offset 0 of every file:
/// magic[8] | version u32 | reserved u32 (0) | value u64 | crc32 u32 of bytes 0..24 | reserved u32 (0).
/// `value` is the first message id for a segment, the segment number for an
/// acks file and 0 for the definitions log.
pub fn encode_header(magic: [u8; 8], value: u64) -> [u8; HEADER_SIZE_BYTES] {
    let mut h = [0u8; HEADER_SIZE_BYTES];
    h[0..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&value.to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a header and returns its `value`, or a reason it is unusable.
pub fn decode_header(buf: &[u8], magic: [u8; 8]) -> Result<u64, String> {
    let h = buf
        .get(..HEADER_SIZE_BYTES)
        .ok_or_else(|| format!("shorter than the {HEADER_SIZE_BYTES}-byte header"))?;
    if h[0..8] != magic {
        return Err("bad magic".into());
    }
    let crc = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    if crc != crc32fast::hash(&h[0..24]) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    // Older files are read as they are: version 2 only added the timed
    // message record and the access record, version 3 only the access
    // record's policy and parameter kinds, which older files never contain.
    if !(FORMAT_VERSION_OLDEST_READ..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "format version {version}, expected {FORMAT_VERSION}"
        ));
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(v))
}

/// Appends one framed record to `out`: len u32 | crc32 u32 | body, where
/// `len` = body length and the CRC covers the 4 length bytes followed by the
/// body, so a corrupted length is caught as well as a corrupted body.
/// `body` is written by the closure (type byte first) straight into `out`.
pub fn append_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_PREFIX_SIZE_BYTES]);
    body(out);
    let len = (out.len() - start - FRAME_PREFIX_SIZE_BYTES) as u32;
    let len_bytes = len.to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(&out[start + FRAME_PREFIX_SIZE_BYTES..]);
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&hasher.finalize().to_le_bytes());
}

/// Result of trying to read a frame at some offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete frame whose checksum matches; `next` is the offset after it.
    Valid { body: &'a [u8], next: usize },
    /// Not a valid frame here: truncated, length out of bounds, or bad CRC.
    Invalid,
}

/// Reads the frame at `pos`. The length is bounds-checked against both the
/// bytes actually present and `record_size_max_bytes` before anything is
/// hashed, so a garbage length never causes a large allocation or read.
pub fn read_frame(buf: &[u8], pos: usize, record_size_max_bytes: u64) -> Frame<'_> {
    let Some(prefix) = buf.get(pos..pos.saturating_add(FRAME_PREFIX_SIZE_BYTES)) else {
        return Frame::Invalid;
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if len == 0 || u64::from(len) > record_size_max_bytes {
        return Frame::Invalid;
    }
    let start = pos + FRAME_PREFIX_SIZE_BYTES;
    let Some(body) = buf.get(start..start.saturating_add(len as usize)) else {
        return Frame::Invalid;
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&prefix[0..4]);
    hasher.update(body);
    if hasher.finalize() != crc {
        return Frame::Invalid;
    }
    Frame::Valid {
        body,
        next: start + body.len(),
    }
}

/// The body of a frame at `pos` that [`read_frame`] already found valid
/// (bounds-checked, not re-hashed). `None` if it does not fit in `buf`.
pub fn frame_body(buf: &[u8], pos: usize) -> Option<&[u8]> {
    let prefix = buf.get(pos..pos.checked_add(FRAME_PREFIX_SIZE_BYTES)?)?;
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let start = pos + FRAME_PREFIX_SIZE_BYTES;
    buf.get(start..start.checked_add(len)?)
}

/// Finds the first offset after `pos` where a valid frame starts, used to skip
/// a corrupt record in the middle of a file. `None` means nothing valid
/// follows, i.e. the damage runs to the end of the file (a torn tail).
pub fn resync(buf: &[u8], pos: usize, record_size_max_bytes: u64) -> Option<usize> {
    (pos + 1..buf.len().saturating_sub(FRAME_PREFIX_SIZE_BYTES)).find(|&p| {
        matches!(
            read_frame(buf, p, record_size_max_bytes),
            Frame::Valid { .. }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_rejects_damage() {
        let h = encode_header(MAGIC_SEGMENT, 42);
        assert_eq!(decode_header(&h, MAGIC_SEGMENT), Ok(42));
        assert!(decode_header(&h, MAGIC_ACKS).is_err());
        assert!(decode_header(&h[..10], MAGIC_SEGMENT).is_err());
        let mut bad = h;
        bad[17] ^= 1;
        assert!(decode_header(&bad, MAGIC_SEGMENT).is_err());
    }

    #[test]
    fn frame_roundtrip_and_detects_flips() {
        let mut buf = Vec::new();
        append_frame(&mut buf, |o| o.extend_from_slice(b"\x07hello"));
        append_frame(&mut buf, |o| o.extend_from_slice(b"\x07world"));
        let Frame::Valid { body, next } = read_frame(&buf, 0, 1 << 20) else {
            panic!("first frame invalid");
        };
        assert_eq!(body, b"\x07hello");
        assert!(matches!(
            read_frame(&buf, next, 1 << 20),
            Frame::Valid { .. }
        ));
        for i in 0..next {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert_eq!(read_frame(&bad, 0, 1 << 20), Frame::Invalid, "flip at {i}");
            assert_eq!(resync(&bad, 0, 1 << 20), Some(next));
        }
        assert_eq!(read_frame(&buf[..next - 1], 0, 1 << 20), Frame::Invalid);
        assert_eq!(
            read_frame(&buf, 0, 4),
            Frame::Invalid,
            "length over the max"
        );
    }

    #[test]
    fn names_classify() {
        assert_eq!(classify(&segment_file(7)), FileKind::Segment(7));
        assert_eq!(classify(&acks_file(7)), FileKind::Acks(7));
        assert_eq!(classify("msgs.12"), FileKind::Other);
        assert_eq!(classify(DEFS_FILE), FileKind::Defs);
    }
}
