//! Byte-exact encodings, field tables, properties and frame parsing.

use amqp_codec::*;
use bytes::{BufMut, Bytes, BytesMut};

fn frame_bytes(channel: u16, m: &Method) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_method_frame(&mut b, channel, m);
    b.to_vec()
}

#[test]
fn basic_publish_frame_is_byte_exact() {
    let m = Method::BasicPublish(BasicPublish {
        reserved_1: 0,
        exchange: "ex".into(),
        routing_key: "rk".into(),
        mandatory: true,
        immediate: false,
    });
    #[rustfmt::skip]
    let expected = [
        1, 0, 5, 0, 0, 0, 13,   // method frame, channel 5, size 13
        0, 60, 0, 40,           // basic.publish
        0, 0,                   // reserved-1 (ticket)
        2, b'e', b'x',          // exchange
        2, b'r', b'k',          // routing key
        0b01,                   // mandatory=1 (bit 0), immediate=0 (bit 1)
        0xCE,
    ];
    assert_eq!(frame_bytes(5, &m), expected);
    let mut buf = BytesMut::from(&expected[..]);
    let f = parse_frame(&mut buf, 4096).unwrap().unwrap();
    assert!(buf.is_empty());
    assert_eq!((f.kind, f.channel), (FRAME_METHOD, 5));
    assert_eq!(Method::decode(f.payload).unwrap(), m);
    assert!(m.has_content());
    assert_eq!(m.name(), "basic.publish");
}

#[test]
fn connection_tune_frame_is_byte_exact() {
    let m: Method = ConnectionTune {
        channel_max: 2047,
        frame_max: 131072,
        heartbeat: 60,
    }
    .into();
    #[rustfmt::skip]
    let expected = [
        1, 0, 0, 0, 0, 0, 12,
        0, 10, 0, 30,
        0x07, 0xFF,
        0x00, 0x02, 0x00, 0x00,
        0x00, 0x3C,
        0xCE,
    ];
    assert_eq!(frame_bytes(0, &m), expected);
    assert!(!m.has_content());
}

#[test]
fn packed_bits_in_queue_declare() {
    let m = Method::QueueDeclare(QueueDeclare {
        queue: "q".into(),
        durable: true,
        auto_delete: true,
        ..Default::default()
    });
    let mut b = BytesMut::new();
    m.encode(&mut b);
    // class, method, reserved short, "q", bits, empty table
    assert_eq!(
        &b[..],
        &[0, 50, 0, 10, 0, 0, 1, b'q', 0b0000_1010, 0, 0, 0, 0]
    );
}

#[test]
fn content_header_and_body_frames() {
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .to_bytes();
    assert_eq!(&props[..], &[0x10, 0x00, 2]);
    let mut b = BytesMut::new();
    encode_content_header_frame(&mut b, 1, 60, 10, &props);
    assert_eq!(
        &b[..],
        &[2, 0, 1, 0, 0, 0, 15, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0x10, 0, 2, 0xCE]
    );
    let f = parse_frame(&mut b, 0).unwrap().unwrap();
    let h = ContentHeader::decode(f.payload).unwrap();
    assert_eq!((h.class_id, h.weight, h.body_size), (60, 0, 10));
    assert_eq!(h.raw_properties, props);

    let body: Vec<u8> = (0..25u8).collect();
    let mut b = BytesMut::new();
    encode_body_frames(&mut b, 3, &body, 18); // 10 payload bytes per frame
    let mut got = Vec::new();
    let mut n = 0;
    while let Some(f) = parse_frame(&mut b, 18).unwrap() {
        assert_eq!((f.kind, f.channel), (FRAME_BODY, 3));
        assert!(f.payload.len() <= 10);
        got.extend_from_slice(&f.payload);
        n += 1;
    }
    assert_eq!((n, got), (3, body.clone()));
    let mut b = BytesMut::new();
    encode_body_frames(&mut b, 3, &[], 18);
    assert!(b.is_empty());
    encode_body_frames(&mut b, 3, &body, 0);
    assert_eq!(b.len(), body.len() + 8);
    let mut hb = BytesMut::new();
    encode_heartbeat(&mut hb);
    assert_eq!(&hb[..], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
}

fn every_value() -> Vec<FieldValue> {
    let mut inner = FieldTable::new();
    inner.insert("deep".into(), FieldValue::LongStr(Bytes::from_static(b"x")));
    vec![
        FieldValue::Bool(true),
        FieldValue::Bool(false),
        FieldValue::I8(-5),
        FieldValue::U8(250),
        FieldValue::I16(-30000),
        FieldValue::U16(65000),
        FieldValue::I32(-2_000_000_000),
        FieldValue::U32(4_000_000_000),
        FieldValue::I64(i64::MIN),
        FieldValue::F32(1.5),
        FieldValue::F64(-2.25e300),
        FieldValue::Decimal {
            scale: 2,
            value: 12345,
        },
        FieldValue::LongStr(Bytes::from_static(b"hello \xff")),
        FieldValue::Array(vec![
            FieldValue::I32(1),
            FieldValue::Array(vec![FieldValue::Void]),
            FieldValue::Table(inner.clone()),
        ]),
        FieldValue::Timestamp(1_700_000_000),
        FieldValue::Table(inner),
        FieldValue::Void,
        FieldValue::ByteArray(Bytes::from_static(&[0, 1, 2])),
    ]
}

#[test]
fn field_table_round_trip_every_type() {
    let t: FieldTable = every_value()
        .into_iter()
        .enumerate()
        .map(|(i, v)| (ShortStr::from(format!("k{i}")), v))
        .collect();
    let mut b = BytesMut::new();
    t.encode(&mut b);
    assert_eq!(b.len(), t.encoded_len());
    let mut bytes = b.freeze();
    let original = bytes.clone();
    let back = FieldTable::decode(&mut bytes).unwrap();
    assert!(bytes.is_empty());
    assert_eq!(back, t);
    let mut again = BytesMut::new();
    back.encode(&mut again);
    assert_eq!(again.freeze(), original, "re-encoding is byte-exact");
}

#[test]
fn field_table_rabbit_specific_tags() {
    // 'L' decodes as signed 64-bit like RabbitMQ; 't' 2 is true.
    let raw = [
        0, 0, 0, 15, 1, b'a', b'L', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, b'b', b't',
        2,
    ];
    let t = FieldTable::decode(&mut Bytes::copy_from_slice(&raw)).unwrap();
    assert_eq!(t.get("a"), Some(&FieldValue::I64(-1)));
    assert_eq!(t.get("b").and_then(FieldValue::as_bool), Some(true));
    // 'U' is not accepted by RabbitMQ.
    let raw = [0, 0, 0, 11, 1, b'a', b'U', 0, 0, 0, 0, 0, 0, 0, 1];
    let e = FieldTable::decode(&mut Bytes::copy_from_slice(&raw)).unwrap_err();
    assert_eq!(e, DecodeError::UnknownFieldType(b'U'));
    assert_eq!(
        (e.reply_code(), e.reply_text()),
        (541, "INTERNAL_ERROR".into())
    );
    // Length prefix bigger than the data.
    let raw = [0xFF, 0xFF, 0xFF, 0xFF, 0];
    assert_eq!(
        FieldTable::decode(&mut Bytes::copy_from_slice(&raw)),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn field_table_helpers() {
    let mut t = FieldTable::new();
    t.insert("a".into(), FieldValue::U8(1));
    t.insert("b".into(), FieldValue::LongStr(Bytes::from_static(b"s")));
    t.insert("a".into(), FieldValue::U16(2));
    assert_eq!(t.len(), 2);
    assert_eq!(t.get("a").and_then(FieldValue::as_i64), Some(2));
    assert_eq!(t.get("b").and_then(FieldValue::as_str), Some("s"));
    let mut u = FieldTable::new();
    u.insert("b".into(), FieldValue::LongStr(Bytes::from_static(b"s")));
    u.insert("a".into(), FieldValue::U16(2));
    assert!(t.equivalent(&u) && t != u);
    u.insert("a".into(), FieldValue::U32(2));
    assert!(!t.equivalent(&u));
    assert_eq!(t.remove("a"), Some(FieldValue::U16(2)));
    assert!(!t.equivalent(&u));
    assert_eq!(t.iter().count(), 1);
}

fn nested_tables(depth: usize) -> Vec<u8> {
    // Table nested `depth` levels: each level is one entry "k" of type 'F'.
    let mut inner: Vec<u8> = vec![0, 0, 0, 0];
    for _ in 1..depth {
        let mut t = vec![];
        let len = (3 + inner.len()) as u32;
        t.extend_from_slice(&len.to_be_bytes());
        t.extend_from_slice(&[1, b'k', b'F']);
        t.extend_from_slice(&inner);
        inner = t;
    }
    inner
}

#[test]
fn nesting_depth_limit() {
    let ok = nested_tables(FIELD_NESTING_DEPTH_MAX);
    assert!(FieldTable::decode(&mut Bytes::from(ok)).is_ok());
    let deep = nested_tables(FIELD_NESTING_DEPTH_MAX + 1);
    assert_eq!(
        FieldTable::decode(&mut Bytes::from(deep)),
        Err(DecodeError::NestingTooDeep)
    );
    // A hostile 100k-deep array nest: must error, not overflow the stack.
    let n = 100_000usize;
    let mut v = Vec::new();
    v.extend_from_slice(&((n * 5 + 3) as u32).to_be_bytes());
    v.extend_from_slice(&[1, b'k']);
    for i in 0..n {
        v.push(b'A');
        v.extend_from_slice(&(((n - i - 1) * 5) as u32).to_be_bytes());
    }
    v.push(b'V');
    assert_eq!(
        FieldTable::decode(&mut Bytes::from(v.clone())),
        Err(DecodeError::NestingTooDeep)
    );
    // Same attack inside content properties.
    let mut props = vec![0x20, 0];
    props.extend_from_slice(&v);
    let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    payload.extend_from_slice(&props);
    let e = ContentHeader::decode(Bytes::from(payload)).unwrap_err();
    assert_eq!(
        e,
        DecodeError::InvalidProperties(Box::new(DecodeError::NestingTooDeep))
    );
}

fn all_props() -> BasicProperties {
    let mut h = FieldTable::new();
    h.insert("h".into(), FieldValue::I32(1));
    BasicProperties {
        content_type: Some("text/plain".into()),
        content_encoding: Some("gzip".into()),
        headers: Some(h),
        delivery_mode: Some(2),
        priority: Some(9),
        correlation_id: Some("corr".into()),
        reply_to: Some("amq.rabbitmq.reply-to".into()),
        expiration: Some("60000".into()),
        message_id: Some("mid".into()),
        timestamp: Some(1_700_000_000),
        kind: Some("type".into()),
        user_id: Some("guest".into()),
        app_id: Some("app".into()),
        cluster_id: Some("cluster".into()),
    }
}

fn subset(mask: u16) -> BasicProperties {
    let a = all_props();
    let on = |i: u16| mask & (1 << i) != 0;
    BasicProperties {
        content_type: a.content_type.filter(|_| on(0)),
        content_encoding: a.content_encoding.filter(|_| on(1)),
        headers: a.headers.filter(|_| on(2)),
        delivery_mode: a.delivery_mode.filter(|_| on(3)),
        priority: a.priority.filter(|_| on(4)),
        correlation_id: a.correlation_id.filter(|_| on(5)),
        reply_to: a.reply_to.filter(|_| on(6)),
        expiration: a.expiration.filter(|_| on(7)),
        message_id: a.message_id.filter(|_| on(8)),
        timestamp: a.timestamp.filter(|_| on(9)),
        kind: a.kind.filter(|_| on(10)),
        user_id: a.user_id.filter(|_| on(11)),
        app_id: a.app_id.filter(|_| on(12)),
        cluster_id: a.cluster_id.filter(|_| on(13)),
    }
}

#[test]
fn properties_round_trip_every_subset() {
    for mask in 0..(1u16 << 14) {
        let p = subset(mask);
        let raw = p.to_bytes();
        // flag word: property i is bit 15 - i
        let flags = u16::from_be_bytes([raw[0], raw[1]]);
        let expected = (0..14)
            .filter(|i| mask & (1 << i) != 0)
            .fold(0u16, |acc, i| acc | 1 << (15 - i));
        assert_eq!(flags, expected);
        assert_eq!(BasicProperties::decode(&raw).unwrap(), p);
        assert_eq!(peek_delivery_mode(&raw), p.delivery_mode);
        assert_eq!(peek_expiration(&raw), p.expiration.as_deref());
        assert_eq!(peek_priority(&raw), p.priority);
        let mut payload = BytesMut::new();
        payload.put_slice(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        payload.put_slice(&raw);
        let h = ContentHeader::decode(payload.freeze()).unwrap();
        assert_eq!(h.raw_properties, raw);
    }
}

#[test]
fn property_flag_low_bits_ignored_like_rabbitmq() {
    // continuation bit (0) and reserved bit (1) set: RabbitMQ ignores them.
    let raw = Bytes::from_static(&[0x10, 0x03, 1]);
    assert_eq!(
        BasicProperties::decode(&raw).unwrap().delivery_mode,
        Some(1)
    );
    assert_eq!(peek_delivery_mode(&raw), Some(1));
    let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    payload.extend_from_slice(&raw);
    assert!(ContentHeader::decode(Bytes::from(payload)).is_ok());
}

#[test]
fn content_header_errors() {
    let e = ContentHeader::decode(Bytes::from_static(&[0, 60, 0])).unwrap_err();
    assert_eq!(e.reply_code(), 501);
    assert_eq!(
        e.reply_text(),
        "FRAME_ERROR - type 2, all octets = <<0,60,0>>: unknown_frame"
    );
    // headers flag set, table truncated
    let e = ContentHeader::decode(Bytes::from_static(&[
        0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 9,
    ]))
    .unwrap_err();
    assert_eq!(
        (e.reply_code(), e.reply_text()),
        (541, "INTERNAL_ERROR".into())
    );
    // Unknown class: not validated (the assembler answers 505 for the class mismatch).
    assert!(ContentHeader::decode(Bytes::from_static(&[
        0, 61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF
    ]))
    .is_ok());
}

#[test]
fn method_decode_errors_match_rabbitmq() {
    let e = Method::decode(Bytes::from_static(&[0, 60, 0, 40, 0])).unwrap_err();
    assert_eq!(
        e,
        DecodeError::MalformedMethod {
            class_id: 60,
            method_id: 40,
            args: Bytes::from_static(&[0])
        }
    );
    assert_eq!(e.reply_code(), reply::FRAME_ERROR);
    assert_eq!(e.reply_text(), "FRAME_ERROR - cannot decode <<0>>");
    assert_eq!(e.failing_method(), Some((60, 40)));

    let e = Method::decode(Bytes::from_static(&[0, 60, 0, 99])).unwrap_err();
    assert_eq!(
        e,
        DecodeError::UnknownMethod {
            class_id: 60,
            method_id: 99
        }
    );
    assert_eq!(e.reply_code(), 503);
    assert_eq!(e.reply_text(), "COMMAND_INVALID - unknown method {60,99}");
    assert!(!e.rabbit_sends_close());
    // class access (30) is not supported
    assert!(matches!(
        Method::decode(Bytes::from_static(&[0, 30, 0, 10])),
        Err(DecodeError::UnknownMethod { class_id: 30, .. })
    ));

    let e = Method::decode(Bytes::from_static(&[0, 60])).unwrap_err();
    assert_eq!(
        e.reply_text(),
        "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame"
    );

    // channel.open with invalid UTF-8 in reserved-1 (a shortstr)
    let e = Method::decode(Bytes::from_static(&[0, 20, 0, 10, 1, 0xFF])).unwrap_err();
    assert_eq!(e.reply_text(), "FRAME_ERROR - Malformed UTF-8 in shortstr");
    assert_eq!(e.failing_method(), Some((20, 10)));

    // Long texts are cut like RabbitMQ: 252 bytes + "..."
    let big = Bytes::from(vec![7u8; 200]);
    let e = DecodeError::MalformedMethod {
        class_id: 60,
        method_id: 40,
        args: big,
    };
    let t = e.reply_text();
    assert_eq!(t.len(), 255);
    assert!(t.ends_with("...") && t.starts_with("FRAME_ERROR - cannot decode <<7,7,"));
}

fn sample_frame() -> Vec<u8> {
    let m = Method::QueueBind(QueueBind {
        queue: "q".into(),
        exchange: "amq.topic".into(),
        routing_key: "a.#".into(),
        ..Default::default()
    });
    frame_bytes(7, &m)
}

#[test]
fn parse_frame_partial_input_at_every_split() {
    let mut stream = sample_frame();
    stream.extend_from_slice(&sample_frame());
    let one = sample_frame().len();
    for split in 0..stream.len() {
        let mut buf = BytesMut::from(&stream[..split]);
        let mut frames = 0;
        while let Some(f) = parse_frame(&mut buf, 4096).unwrap() {
            assert_eq!(f.channel, 7);
            frames += 1;
        }
        assert_eq!(frames, split / one);
        assert_eq!(buf.len(), split % one, "incomplete data is kept");
        buf.extend_from_slice(&stream[split..]);
        while parse_frame(&mut buf, 4096).unwrap().is_some() {
            frames += 1;
        }
        assert_eq!(frames, 2);
        assert!(buf.is_empty());
    }
}

#[test]
fn parse_frame_rejects_oversized_before_payload() {
    // Only the 7-byte header has arrived.
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0x03, 0x0D, 0x40][..]); // 200000
    let e = parse_frame(&mut buf, 131072).unwrap_err();
    assert_eq!(
        e,
        FrameError::TooLarge {
            size: 200000,
            max: 131064
        }
    );
    assert_eq!(e.reply_code(), 501);
    assert_eq!(
        e.reply_text_for(&buf),
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}"
    );
    assert_eq!(buf.len(), 7, "buffer untouched on error");
    // RabbitMQ's 8-byte fudge: a payload of exactly frame_max is accepted...
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, FRAME_BODY, 1, &[0u8; 4096]);
    assert!(parse_frame(&mut buf, 4096).unwrap().is_some());
    // ... one more byte is not.
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, FRAME_BODY, 1, &[0u8; 4097]);
    assert!(parse_frame(&mut buf, 4096).is_err());
    // frame_max 0 = unlimited
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, FRAME_BODY, 1, &[0u8; 70000]);
    assert!(parse_frame(&mut buf, 0).unwrap().is_some());
}

#[test]
fn parse_frame_bad_end_and_unknown_type() {
    let mut raw = sample_frame();
    *raw.last_mut().unwrap() = 54;
    let mut buf = BytesMut::from(&raw[..]);
    let e = parse_frame(&mut buf, 0).unwrap_err();
    assert_eq!(e, FrameError::BadFrameEnd(54));
    assert_eq!(
        e.reply_text_for(&buf),
        "FRAME_ERROR - type 1, first 16 octets = <<0,50,0,20,0,0,1,113,9,97,109,113,46,116,111,112>>: {invalid_frame_end_marker,54}"
    );

    let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 2, b'h', b'i', 0xCE][..]);
    let e = parse_frame(&mut buf, 0).unwrap_err();
    assert_eq!(e, FrameError::UnknownType(9));
    assert_eq!(
        e.reply_text_for(&buf),
        "FRAME_ERROR - type 9, all octets = <<\"hi\">>: unknown_frame"
    );
    // A heartbeat must be empty.
    let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 1, 0, 0xCE][..]);
    assert_eq!(parse_frame(&mut buf, 0), Err(FrameError::UnknownType(8)));
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    assert_eq!(
        parse_frame(&mut buf, 0).unwrap().unwrap().kind,
        FRAME_HEARTBEAT
    );
}
