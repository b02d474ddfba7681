//! rabbitmqctl's info keys per kind of object, where each one is found in
//! the management API's JSON, and how rabbitmqctl 3.10 prints values.

use serde_json::Value;

/// One kind of listing: its valid info keys, the columns printed when none
/// are named, and the keys whose JSON field has another name.
pub struct Kind {
    /// Every info key rabbitmqctl 3.10 accepts for this listing.
    pub keys: &'static [&'static str],
    /// The columns printed when the command names none.
    pub default: &'static [&'static str],
    /// `(info key, JSON pointer)` for keys not stored under their own name.
    pub aliases: &'static [(&'static str, &'static str)],
}

/// `list_queues`.
pub const QUEUES: Kind = Kind {
    keys: &[
        "name",
        "durable",
        "auto_delete",
        "arguments",
        "policy",
        "pid",
        "owner_pid",
        "exclusive",
        "exclusive_consumer_pid",
        "exclusive_consumer_tag",
        "messages_ready",
        "messages_unacknowledged",
        "messages",
        "messages_ready_ram",
        "messages_unacknowledged_ram",
        "messages_ram",
        "messages_persistent",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "message_bytes_ram",
        "message_bytes_persistent",
        "head_message_timestamp",
        "disk_reads",
        "disk_writes",
        "consumers",
        "consumer_utilisation",
        "consumer_capacity",
        "memory",
        "slave_pids",
        "synchronised_slave_pids",
        "state",
        "type",
        "leader",
        "members",
        "online",
        "mirror_pids",
        "synchronised_mirror_pids",
        "vhost",
    ],
    default: &["name", "messages"],
    aliases: &[
        ("pid", "/node"),
        ("owner_pid", "/owner_pid_details/name"),
        ("exclusive_consumer_pid", "/exclusive_consumer_pid"),
        ("disk_reads", "/backing_queue_status/disk_reads"),
        ("disk_writes", "/backing_queue_status/disk_writes"),
    ],
};

/// `list_exchanges`.
pub const EXCHANGES: Kind = Kind {
    keys: &[
        "name",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
        "policy",
        "vhost",
    ],
    default: &["name", "type"],
    aliases: &[],
};

/// `list_bindings`.
pub const BINDINGS: Kind = Kind {
    keys: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
        "vhost",
    ],
    default: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
    aliases: &[
        ("source_name", "/source"),
        ("destination_name", "/destination"),
        ("destination_kind", "/destination_type"),
    ],
};

/// `list_connections`.
pub const CONNECTIONS: Kind = Kind {
    keys: &[
        "pid",
        "name",
        "port",
        "host",
        "peer_port",
        "peer_host",
        "ssl",
        "ssl_protocol",
        "ssl_key_exchange",
        "ssl_cipher",
        "ssl_hash",
        "peer_cert_subject",
        "peer_cert_issuer",
        "peer_cert_validity",
        "state",
        "channels",
        "protocol",
        "auth_mechanism",
        "user",
        "vhost",
        "timeout",
        "frame_max",
        "channel_max",
        "client_properties",
        "recv_oct",
        "recv_cnt",
        "send_oct",
        "send_cnt",
        "send_pend",
        "connected_at",
    ],
    default: &["user", "peer_host", "peer_port", "state"],
    // The API has no Erlang pids: a connection is named by its name.
    aliases: &[("pid", "/name")],
};

/// `list_channels`.
pub const CHANNELS: Kind = Kind {
    keys: &[
        "pid",
        "connection",
        "name",
        "number",
        "user",
        "vhost",
        "transactional",
        "confirm",
        "consumer_count",
        "messages_unacknowledged",
        "messages_uncommitted",
        "acks_uncommitted",
        "messages_unconfirmed",
        "prefetch_count",
        "global_prefetch_count",
    ],
    default: &["pid", "user", "consumer_count", "messages_unacknowledged"],
    aliases: &[("pid", "/name"), ("connection", "/connection_details/name")],
};

/// `list_consumers`.
pub const CONSUMERS: Kind = Kind {
    keys: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "activity_status",
        "arguments",
    ],
    default: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ],
    aliases: &[
        ("queue_name", "/queue/name"),
        ("channel_pid", "/channel_details/name"),
    ],
};

/// `list_vhosts`.
pub const VHOSTS: Kind = Kind {
    keys: &[
        "name",
        "description",
        "tags",
        "default_queue_type",
        "tracing",
        "cluster_state",
        "metadata",
    ],
    default: &["name"],
    aliases: &[],
};

/// Checks the named columns (rabbitmqctl's argument validation) and returns
/// the columns to print.
pub fn choose(kind: &Kind, named: &[String]) -> Result<Vec<String>, String> {
    if named.is_empty() {
        return Ok(kind.default.iter().map(|s| s.to_string()).collect());
    }
    let bad: Vec<&str> = named
        .iter()
        .map(String::as_str)
        .filter(|k| !kind.keys.contains(k))
        .collect();
    if bad.is_empty() {
        Ok(named.to_vec())
    } else {
        Err(format!("Info key(s) {} are not supported", bad.join(",")))
    }
}

/// The value of info key `key` in one API object.
pub fn field<'a>(kind: &Kind, row: &'a Value, key: &str) -> Option<&'a Value> {
    match kind.aliases.iter().find(|(k, _)| *k == key) {
        Some((_, pointer)) => row.pointer(pointer),
        None => row.get(key),
    }
}

/// One table row, tab-separated.
pub fn line(kind: &Kind, row: &Value, columns: &[String]) -> String {
    let cells: Vec<String> = columns
        .iter()
        .map(|c| match (c.as_str(), field(kind, row, c)) {
            // RabbitMQ's API omits the kind of a binding's source: always an exchange.
            ("source_kind", None) => "exchange".to_string(),
            (_, v) => v.map(cell).unwrap_or_default(),
        })
        .collect();
    cells.join("\t")
}

/// A top-level value as rabbitmqctl prints it in a table cell: strings
/// bare, lists as `[a, b]`, tables (arguments, client properties) as
/// `[{"key",value}]`, sorted by key as RabbitMQ keeps them.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(cell).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => nested(v),
        other => other.to_string(),
    }
}

/// A value inside a table: strings quoted, tables as lists of pairs.
fn nested(v: &Value) -> String {
    match v {
        Value::Null => "undefined".to_string(),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(nested).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{{\"{k}\",{}}}", nested(&map[k])))
                .collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// A user's tags as rabbitmqctl prints them: `[administrator, management]`
/// (the API gives an array, or a comma-separated string before 3.9).
pub fn tags(v: Option<&Value>) -> String {
    let list: Vec<String> = match v {
        Some(Value::Array(items)) => items.iter().map(cell).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    format!("[{}]", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_print_as_rabbitmqctl_does() {
        let args = json!({"x-queue-mode": "lazy", "x-max-length": 10, "x-message-ttl": 500});
        assert_eq!(
            cell(&args),
            r#"[{"x-max-length",10},{"x-message-ttl",500},{"x-queue-mode","lazy"}]"#
        );
        assert_eq!(cell(&json!({})), "[]");
        assert_eq!(
            tags(Some(&json!(["monitoring", "management"]))),
            "[monitoring, management]"
        );
        assert_eq!(tags(Some(&json!("a,b"))), "[a, b]");
    }

    #[test]
    fn unknown_columns_are_refused() {
        let named = vec!["name".to_string(), "bogus_col".to_string()];
        assert_eq!(
            choose(&QUEUES, &named),
            Err("Info key(s) bogus_col are not supported".to_string())
        );
        assert_eq!(
            choose(&QUEUES, &[]),
            Ok(vec!["name".into(), "messages".into()])
        );
    }

    #[test]
    fn aliases_reach_nested_fields() {
        let row = json!({"queue": {"name": "q1"}, "channel_details": {"name": "c (1)"}});
        let cols = vec!["queue_name".to_string(), "channel_pid".to_string()];
        assert_eq!(line(&CONSUMERS, &row, &cols), "q1\tc (1)");
    }
}
