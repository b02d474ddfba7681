//! AMQP values as RabbitMQ's API writes them in JSON, and back.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// A field table as a JSON object (RabbitMQ's `arguments`, `headers`).
pub fn table(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in &t.0 {
        m.insert(k.to_string(), value(v));
    }
    Value::Object(m)
}

fn value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => json!(b),
        FieldValue::I8(n) => json!(n),
        FieldValue::U8(n) => json!(n),
        FieldValue::I16(n) => json!(n),
        FieldValue::U16(n) => json!(n),
        FieldValue::I32(n) => json!(n),
        FieldValue::U32(n) => json!(n),
        FieldValue::I64(n) => json!(n),
        FieldValue::F32(n) => json!(n),
        FieldValue::F64(n) => json!(n),
        FieldValue::Decimal { scale, value } => {
            json!(f64::from(*value) / 10f64.powi(i32::from(*scale)))
        }
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => {
            json!(String::from_utf8_lossy(b))
        }
        FieldValue::Array(a) => Value::Array(a.iter().map(value).collect()),
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::Table(t) => table(t),
        FieldValue::Void => Value::Null,
    }
}

/// A JSON object as a field table (`arguments` of PUT queue/exchange,
/// binding arguments, message headers). Err names the offending key.
pub fn to_table(v: &Value) -> Result<FieldTable, String> {
    let obj = match v {
        Value::Null => return Ok(FieldTable::default()),
        Value::Object(o) => o,
        // RabbitMQ's UI may send [] for "no arguments".
        Value::Array(a) if a.is_empty() => return Ok(FieldTable::default()),
        _ => return Err("arguments must be an object".into()),
    };
    let mut t = FieldTable::default();
    for (k, v) in obj {
        let key = ShortStr::try_from_str(k).map_err(|_| format!("key too long: {k}"))?;
        t.0.push((key, to_value(v)?));
    }
    Ok(t)
}

fn to_value(v: &Value) -> Result<FieldValue, String> {
    Ok(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes())),
        Value::Array(a) => FieldValue::Array(a.iter().map(to_value).collect::<Result<_, _>>()?),
        Value::Object(_) => FieldValue::Table(to_table(v)?),
    })
}

/// Content properties as RabbitMQ's `properties` object (only those set).
pub fn properties(raw: &Bytes) -> Value {
    let Ok(p) = BasicProperties::decode(raw) else {
        return json!({});
    };
    let mut m = Map::new();
    let mut s = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v.as_str()));
        }
    };
    s("content_type", &p.content_type);
    s("content_encoding", &p.content_encoding);
    s("correlation_id", &p.correlation_id);
    s("reply_to", &p.reply_to);
    s("expiration", &p.expiration);
    s("message_id", &p.message_id);
    s("type", &p.kind);
    s("user_id", &p.user_id);
    s("app_id", &p.app_id);
    s("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        m.insert("headers".into(), table(h));
    }
    if let Some(d) = p.delivery_mode {
        m.insert("delivery_mode".into(), json!(d));
    }
    if let Some(pr) = p.priority {
        m.insert("priority".into(), json!(pr));
    }
    if let Some(t) = p.timestamp {
        m.insert("timestamp".into(), json!(t));
    }
    Value::Object(m)
}

/// RabbitMQ's `properties` object of `POST .../publish`, encoded.
pub fn to_properties(v: &Value) -> Result<Bytes, String> {
    let mut p = BasicProperties::default();
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(p.to_bytes()),
        Value::Array(a) if a.is_empty() => return Ok(p.to_bytes()),
        _ => return Err("properties must be an object".into()),
    };
    for (k, v) in obj {
        let text = || -> Result<Option<ShortStr>, String> {
            let s = v
                .as_str()
                .ok_or_else(|| format!("property {k} must be a string"))?;
            ShortStr::try_from_str(s)
                .map(Some)
                .map_err(|_| format!("property {k} too long"))
        };
        let int = || {
            v.as_u64()
                .ok_or_else(|| format!("property {k} must be an integer"))
        };
        match k.as_str() {
            "content_type" => p.content_type = text()?,
            "content_encoding" => p.content_encoding = text()?,
            "correlation_id" => p.correlation_id = text()?,
            "reply_to" => p.reply_to = text()?,
            "expiration" => p.expiration = text()?,
            "message_id" => p.message_id = text()?,
            "type" => p.kind = text()?,
            "user_id" => p.user_id = text()?,
            "app_id" => p.app_id = text()?,
            "cluster_id" => p.cluster_id = text()?,
            "headers" => p.headers = Some(to_table(v)?),
            "delivery_mode" => {
                p.delivery_mode =
                    Some(u8::try_from(int()?).map_err(|_| "delivery_mode out of range")?)
            }
            "priority" => {
                p.priority = Some(u8::try_from(int()?).map_err(|_| "priority out of range")?)
            }
            "timestamp" => p.timestamp = Some(int()?),
            _ => {}
        }
    }
    Ok(p.to_bytes())
}

/// A body as `POST .../get` returns it: `(payload, payload_encoding)`.
pub fn payload(body: &[u8], base64: bool, truncate: Option<usize>) -> (String, &'static str) {
    let body = match truncate {
        Some(n) if n < body.len() => &body[..n],
        _ => body,
    };
    match (base64, std::str::from_utf8(body)) {
        (false, Ok(s)) => (s.to_string(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64",
        ),
    }
}

/// Decodes a publish body (`payload_encoding` `string` or `base64`).
pub fn decode_payload(payload: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding {
        "string" => Ok(payload.as_bytes().to_vec()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|e| format!("invalid base64 payload: {e}")),
        other => Err(format!("unknown payload_encoding {other}")),
    }
}
