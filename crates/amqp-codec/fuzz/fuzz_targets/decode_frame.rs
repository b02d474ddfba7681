//! Feeds arbitrary bytes through the frame parser and every payload decoder.
#![no_main]

use amqp_codec::{parse_frame, BasicProperties, ContentHeader, Method};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        match parse_frame(&mut buf, 131_072) {
            Ok(Some(f)) => {
                let _ = Method::decode(f.payload.clone());
                if let Ok(h) = ContentHeader::decode(f.payload) {
                    let _ = BasicProperties::decode(&h.raw_properties);
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = e.reply_text_for(&buf);
                break;
            }
        }
    }
});
