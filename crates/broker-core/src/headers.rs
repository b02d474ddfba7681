//! Headers-exchange matching: `x-match` = all | any | all-with-x | any-with-x.
//! Binding arguments whose names start with "x-" are ignored unless the
//! `-with-x` variants are used; a binding value of type void matches on
//! presence alone (RabbitMQ's rule).

use amqp_codec::{FieldTable, FieldValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// Reads `x-match` from binding arguments; RabbitMQ defaults to "all" and
/// rejects other values (the caller turns `Err` into 406).
pub fn x_match(args: &FieldTable) -> Result<XMatch, String> {
    match args.get("x-match") {
        None => Ok(XMatch::All),
        Some(v) => match v.as_str() {
            Some("all") => Ok(XMatch::All),
            Some("any") => Ok(XMatch::Any),
            Some("all-with-x") => Ok(XMatch::AllWithX),
            Some("any-with-x") => Ok(XMatch::AnyWithX),
            _ => Err(format!(
                "Invalid x-match field value {v:?}; expected all, any, all-with-x, or any-with-x"
            )),
        },
    }
}

/// True when message `headers` satisfy the binding arguments `args`.
pub fn headers_match(mode: XMatch, args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let with_x = matches!(mode, XMatch::AllWithX | XMatch::AnyWithX);
    let all = matches!(mode, XMatch::All | XMatch::AllWithX);
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty);
    let mut considered = 0usize;
    for (key, want) in args.iter() {
        if key.as_str() == "x-match" || (!with_x && key.starts_with("x-")) {
            continue;
        }
        considered += 1;
        let hit = match headers.get(key.as_str()) {
            None => false,
            Some(_) if matches!(want, FieldValue::Void) => true,
            Some(have) => values_equal(have, want),
        };
        if all && !hit {
            return false;
        }
        if !all && hit {
            return true;
        }
    }
    // "all" with nothing to compare matches; "any" with nothing does not.
    let _ = considered;
    all
}

/// Value equality across integer widths, as Erlang's `==` compares them.
fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }
    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn all_and_any() {
        let args = table(&[("x-match", s("all")), ("a", s("1")), ("b", s("2"))]);
        assert!(headers_match(
            XMatch::All,
            &args,
            Some(&table(&[("a", s("1")), ("b", s("2")), ("c", s("3"))]))
        ));
        assert!(!headers_match(
            XMatch::All,
            &args,
            Some(&table(&[("a", s("1"))]))
        ));
        assert!(headers_match(
            XMatch::Any,
            &args,
            Some(&table(&[("a", s("1"))]))
        ));
        assert!(!headers_match(
            XMatch::Any,
            &args,
            Some(&table(&[("a", s("2"))]))
        ));
        assert!(!headers_match(XMatch::Any, &args, None));
    }

    #[test]
    fn x_keys_ignored_unless_with_x() {
        let args = table(&[("x-foo", s("1"))]);
        let h = table(&[("x-foo", s("2"))]);
        assert!(headers_match(XMatch::All, &args, Some(&h)));
        assert!(!headers_match(XMatch::AllWithX, &args, Some(&h)));
        assert!(headers_match(
            XMatch::AnyWithX,
            &args,
            Some(&table(&[("x-foo", s("1"))]))
        ));
    }

    #[test]
    fn integers_compare_across_widths() {
        let args = table(&[("n", FieldValue::I32(5))]);
        assert!(headers_match(
            XMatch::All,
            &args,
            Some(&table(&[("n", FieldValue::I64(5))]))
        ));
    }
}
