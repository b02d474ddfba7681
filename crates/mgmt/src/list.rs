//! List responses: `sort`/`sort_reverse`, `columns`, and pagination
//! (`page`, `page_size` ≤ 500, `name`, `use_regex`, the seven-key envelope).
//!
//! Lists are of [`Row`]s: the visibility filter, the `name` filter and the
//! sort read the snapshot through the row, and only the items answered
//! (one page, or all of them unpaged) have their JSON built. A sort on a
//! field a row does not know (`client_properties.product`) builds each
//! row's JSON to read it, as every list did before.

use std::borrow::Cow;

use axum::response::Response;
use serde_json::{json, Value};

use crate::http::{bad_request, ok, Req};

/// Largest `page_size` (RabbitMQ's limit).
pub const PAGE_SIZE_MAX: usize = 500;
/// Default `page_size`.
pub const PAGE_SIZE_DEFAULT: usize = 100;
/// Longest `name` regex accepted.
pub const NAME_REGEX_BYTES_MAX: usize = 1024;

/// One object of a list response.
pub(crate) trait Row {
    /// Its `vhost`, for the visibility filter (None: shown to everyone).
    fn vhost(&self) -> Option<&str>;
    /// Its `user` (a user without monitoring sees only its own).
    fn user(&self) -> Option<&str> {
        None
    }
    /// Its `name`, for the `name` filter (None: never matches).
    fn name(&self) -> Option<Cow<'_, str>>;
    /// The sort key of the value at dotted `path`, when the row knows it
    /// without building its JSON (None: read it from the JSON). Agrees
    /// with the JSON: `rows.rs` tests it on every path of every row.
    fn key(&self, _path: &str) -> Option<SortKey> {
        None
    }
    /// Its JSON.
    fn json(&self) -> Value;
    /// Its JSON to read a sort key from: without `samples` (building
    /// those would watch every object of the list).
    fn key_json(&self) -> Value {
        self.json()
    }
    /// Its JSON, consuming the row.
    fn into_json(self) -> Value
    where
        Self: Sized,
    {
        self.json()
    }
}

/// Rows already built (the short lists: users, permissions, policies).
impl Row for Value {
    fn vhost(&self) -> Option<&str> {
        self.get("vhost").and_then(Value::as_str)
    }
    fn user(&self) -> Option<&str> {
        self.get("user").and_then(Value::as_str)
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        self.get("name").and_then(Value::as_str).map(Cow::Borrowed)
    }
    fn key(&self, path: &str) -> Option<SortKey> {
        Some(key_at(self, path))
    }
    fn json(&self) -> Value {
        self.clone()
    }
    fn into_json(self) -> Value {
        self
    }
}

/// The value at a dotted path (`message_stats.publish_details.rate`).
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
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

/// How RabbitMQ orders a list: numbers (booleans as 0 and 1) before
/// strings, strings without case, a missing value as 0.
pub(crate) type SortKey = (u8, f64, String);

/// The sort key of the value at `path` of `v`.
pub(crate) fn key_at(v: &Value, path: &str) -> SortKey {
    sort_key(at(v, path).unwrap_or(&Value::Null))
}

/// The sort key of a value.
pub(crate) fn sort_key(v: &Value) -> SortKey {
    match v {
        Value::Number(n) => num_key(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => str_key(s),
        Value::Bool(b) => bool_key(*b),
        // Missing values sort as 0, as RabbitMQ does.
        _ => num_key(0.0),
    }
}

/// The sort key of a number (one JSON cannot hold, NaN or infinite, is
/// null there: 0).
pub(crate) fn num_key(n: f64) -> SortKey {
    (0, if n.is_finite() { n } else { 0.0 }, String::new())
}

/// The sort key of a string.
pub(crate) fn str_key(s: &str) -> SortKey {
    (1, 0.0, s.to_lowercase())
}

/// The sort key of a boolean.
pub(crate) fn bool_key(b: bool) -> SortKey {
    num_key(f64::from(u8::from(b)))
}

/// Sorts, filters, pages and trims `items` as the query asks; builds the
/// JSON of the items answered only.
pub(crate) fn respond<R: Row>(req: &Req, items: Vec<R>) -> Response {
    let mut items = crate::admin::only_visible(req, items);
    if let Some(field) = req.query.get("sort").filter(|s| !s.is_empty()) {
        // Each key computed once (a stable sort: ties keep their order).
        let mut keyed: Vec<(SortKey, R)> = items
            .into_iter()
            .map(|r| {
                (
                    r.key(field).unwrap_or_else(|| key_at(&r.key_json(), field)),
                    r,
                )
            })
            .collect();
        keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        items = keyed.into_iter().map(|(_, r)| r).collect();
        if req.flag("sort_reverse") {
            items.reverse();
        }
    }
    let columns: Option<Vec<&str>> = req
        .query
        .get("columns")
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect());
    let trim = |items: Vec<R>| -> Vec<Value> {
        items
            .into_iter()
            .map(|r| match &columns {
                Some(c) => pick(&r.into_json(), c),
                None => r.into_json(),
            })
            .collect()
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
            items.retain(|v| v.name().is_some_and(|n| re.is_match(&n)));
        } else {
            let needle = name.to_lowercase();
            items.retain(|v| v.name().is_some_and(|n| n.to_lowercase().contains(&needle)));
        }
    }
    let filtered = items.len();
    // A page past the end is an empty page (RabbitMQ 3.10).
    let page_count = filtered.div_ceil(page_size);
    let items: Vec<R> = items
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
