//! Differential: whatever the publish fast path accepts, the general path
//! (parse_frame + Method::decode + ContentHeader::decode) must accept too,
//! with the same values.
#![no_main]

use amqp_codec::{parse_frame, peek_publish, ContentHeader, Method};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(p) = peek_publish(data, 131_072) else {
        return;
    };
    let mut buf = BytesMut::from(&data[..p.len]);
    let f = parse_frame(&mut buf, 131_072).expect("method frame").expect("complete");
    let Ok(Method::BasicPublish(m)) = Method::decode(f.payload) else {
        panic!("fast path accepted a method the general path refuses");
    };
    assert_eq!(f.channel, p.channel);
    assert_eq!((m.exchange.as_str(), m.routing_key.as_str()), (p.exchange, p.routing_key));
    assert_eq!((m.mandatory, m.immediate), (p.mandatory, p.immediate));
    let h = parse_frame(&mut buf, 131_072).expect("header frame").expect("complete");
    let header = ContentHeader::decode(h.payload).expect("header the general path accepts");
    assert_eq!(&header.raw_properties[..], p.properties);
    if header.body_size > 0 {
        let b = parse_frame(&mut buf, 131_072).expect("body frame").expect("complete");
        assert_eq!(&b.payload[..], p.body);
    }
    assert!(buf.is_empty());
});
