//! Deterministic randomized robustness test: random and mutated valid inputs must
//! never panic any decoder (a poor man's fuzzer without extra dependencies; the
//! cargo-fuzz targets in `fuzz/` do the same with coverage guidance).

use amqp_codec::*;
use bytes::{Bytes, BytesMut};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut headers = FieldTable::new();
    headers.insert(
        "x-match".into(),
        FieldValue::LongStr(Bytes::from_static(b"all")),
    );
    headers.insert(
        "nested".into(),
        FieldValue::Array(vec![FieldValue::Table(headers.clone()), FieldValue::I64(5)]),
    );
    let methods: Vec<Method> = vec![
        BasicPublish {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            mandatory: true,
            ..Default::default()
        }
        .into(),
        QueueDeclare {
            queue: "q".into(),
            durable: true,
            arguments: headers.clone(),
            ..Default::default()
        }
        .into(),
        ConnectionStartOk {
            client_properties: headers.clone(),
            mechanism: "PLAIN".into(),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: "en_US".into(),
        }
        .into(),
        BasicNack {
            delivery_tag: 9,
            multiple: true,
            requeue: true,
        }
        .into(),
    ];
    for m in &methods {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        out.push(b.to_vec());
    }
    let props = BasicProperties {
        headers: Some(headers.clone()),
        delivery_mode: Some(2),
        expiration: Some("100".into()),
        ..Default::default()
    }
    .to_bytes();
    let mut h = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    h.extend_from_slice(&props);
    out.push(h);
    let mut t = BytesMut::new();
    headers.encode(&mut t);
    out.push(t.to_vec());
    out
}

fn exercise(data: &[u8]) {
    let b = Bytes::copy_from_slice(data);
    let _ = Method::decode(b.clone());
    if let Ok(h) = ContentHeader::decode(b.clone()) {
        let _ = BasicProperties::decode(&h.raw_properties);
    }
    let _ = FieldTable::decode(&mut b.clone());
    let _ = BasicProperties::decode(&b);
    let _ = peek_delivery_mode(data);
    let _ = peek_expiration(data);
    let _ = peek_priority(data);
    for frame_max in [0, 4096, 16] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(f)) = parse_frame(&mut buf, frame_max) {
            let _ = Method::decode(f.payload.clone());
            let _ = ContentHeader::decode(f.payload);
        }
        if let Err(e) = parse_frame(&mut buf, frame_max) {
            let _ = e.reply_text_for(&buf);
        }
    }
    if let Err(e) = Method::decode(b) {
        assert!(e.reply_text().len() <= 255);
    }
}

#[test]
fn random_bytes_never_panic() {
    for seed in 1..=4u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..5_000 {
            let len = rng.below(64);
            let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias towards plausible class/method ids so argument decoders run.
            if len >= 4 && rng.below(2) == 0 {
                let (c, m, _, _) = METHOD_TABLE[rng.below(METHOD_TABLE.len())];
                v[..2].copy_from_slice(&c.to_be_bytes());
                v[2..4].copy_from_slice(&m.to_be_bytes());
            }
            exercise(&v);
        }
    }
}

#[test]
fn mutated_valid_inputs_never_panic() {
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    let seeds = seeds();
    for _ in 0..20_000 {
        let mut v = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
                1 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                2 => {
                    let i = rng.below(v.len() + 1);
                    v.truncate(i);
                }
                _ => {
                    let i = rng.below(v.len() + 1);
                    v.insert(i, [0xFF, 0, b'F', b'A', 0x7F][rng.below(5)]);
                }
            }
        }
        exercise(&v);
        // Also wrapped in a frame.
        let mut f = BytesMut::new();
        encode_frame(&mut f, FRAME_METHOD, 1, &v);
        exercise(&f);
    }
}
