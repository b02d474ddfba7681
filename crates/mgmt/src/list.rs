//! List responses: `sort`/`sort_reverse`, `columns`, and pagination
//! (`page`, `page_size` ≤ 500, `name`, `use_regex`, the seven-key envelope).

use axum::response::Response;
use serde_json::{json, Value};

use crate::http::{bad_request, ok, Req};

/// Largest `page_size` (RabbitMQ's limit).
pub const PAGE_SIZE_MAX: usize = 500;
/// Default `page_size`.
pub const PAGE_SIZE_DEFAULT: usize = 100;
/// Longest `name` regex accepted.
pub const NAME_REGEX_BYTES_MAX: usize = 1024;

/// The value at a dotted path (`message_stats.publish_details.rate`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Keeps only `columns` (dotted paths) of an object.
fn pick(v: &Value, columns: &[&str]) -> Value {
    let mut out = json!({});
    for c in columns {
        let Some(found) = at(v, c) else { continue };
        let mut slot = &mut out;
        let parts: Vec<&str> = c.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                slot[*p] = found.clone();
            } else {
                if !slot.get(*p).is_some_and(Value::is_object) {
                    slot[*p] = json!({});
                }
                slot = &mut slot[*p];
            }
        }
    }
    out
}

fn sort_key(v: &Value) -> (u8, f64, String) {
    match v {
        Value::Number(n) => (0, n.as_f64().unwrap_or(0.0), String::new()),
        Value::String(s) => (1, 0.0, s.to_lowercase()),
        Value::Bool(b) => (0, f64::from(u8::from(*b)), String::new()),
        // Missing values sort as 0, as RabbitMQ does.
        _ => (0, 0.0, String::new()),
    }
}

/// Sorts, filters, pages and trims `items` as the query asks.
pub fn respond(req: &Req, items: Vec<Value>) -> Response {
    let mut items = crate::admin::only_visible(req, items);
    if let Some(field) = req.query.get("sort").filter(|s| !s.is_empty()) {
        items.sort_by(|a, b| {
            let (ka, kb) = (
                sort_key(at(a, field).unwrap_or(&Value::Null)),
                sort_key(at(b, field).unwrap_or(&Value::Null)),
            );
            ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal)
        });
        if req.flag("sort_reverse") {
            items.reverse();
        }
    }
    let columns: Option<Vec<&str>> = req
        .query
        .get("columns")
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect());
    let trim = |items: Vec<Value>| -> Vec<Value> {
        match &columns {
            Some(c) => items.iter().map(|v| pick(v, c)).collect(),
            None => items,
        }
    };
    let Some(page) = req.query.get("page") else {
        return ok(Value::Array(trim(items)));
    };
    // RabbitMQ 3.10's error for either parameter out of range.
    let invalid = |page: &str| {
        let size = req
            .query
            .get("page_size")
            .map_or("undefined", String::as_str);
        crate::http::error(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_pagination_parameters",
            &format!("Invalid pagination parameters: page number {page}, page size {size}"),
        )
    };
    let page = match page.parse::<usize>() {
        Ok(n) if n >= 1 => n,
        _ => return invalid(page),
    };
    let page_size = match req.query.get("page_size").map(|s| s.parse::<usize>()) {
        None => PAGE_SIZE_DEFAULT,
        Some(Ok(n)) if (1..=PAGE_SIZE_MAX).contains(&n) => n,
        Some(_) => return invalid(&page.to_string()),
    };
    let total = items.len();
    if let Some(name) = req.query.get("name").filter(|n| !n.is_empty()) {
        if req.flag("use_regex") {
            if name.len() > NAME_REGEX_BYTES_MAX {
                return bad_request("regex too long");
            }
            let Ok(re) = regex::RegexBuilder::new(name)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
            else {
                return bad_request(&format!("invalid regex: {name}"));
            };
            items.retain(|v| v["name"].as_str().is_some_and(|n| re.is_match(n)));
        } else {
            let needle = name.to_lowercase();
            items.retain(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.to_lowercase().contains(&needle))
            });
        }
    }
    let filtered = items.len();
    // A page past the end is an empty page (RabbitMQ 3.10).
    let page_count = filtered.div_ceil(page_size);
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    let items = trim(items);
    ok(json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}
