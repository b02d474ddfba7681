//! The Prometheus text exposition format (v0.0.4), as rabbitmq_prometheus
//! writes it: `# TYPE` then `# HELP` per family, then its samples.

use std::fmt::Write;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape's body being written.
pub struct Text {
    /// The body so far.
    pub out: String,
    /// Prefixed to every family name (`rabbitmq_` or `rabbitmq_detailed_`).
    pub prefix: &'static str,
}

impl Text {
    /// An empty body whose families get `prefix`.
    pub fn new(prefix: &'static str) -> Text {
        Text {
            out: String::with_capacity(16 * 1024),
            prefix,
        }
    }

    /// Starts family `prefix + name`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let p = self.prefix;
        let _ = writeln!(self.out, "# TYPE {p}{name} {}", kind.name());
        let _ = writeln!(self.out, "# HELP {p}{name} {help}");
    }

    /// Starts a family whose name takes no prefix (`process_start_time_seconds`).
    pub fn family_raw(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    /// One sample of family `prefix + name` (or a `_bucket`/`_sum`/`_count`
    /// of it, passed in `name`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let p = self.prefix;
        let _ = write!(self.out, "{p}{name}");
        self.labels_and_value(labels, value);
    }

    /// One sample of an unprefixed family.
    pub fn sample_raw(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels_and_value(labels, value);
    }

    /// A one-sample family without labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn labels_and_value(&mut self, labels: &[(&str, &str)], value: f64) {
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(&mut self.out, value);
        self.out.push('\n');
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Whole numbers print as integers (RabbitMQ prints counters so);
/// others in Rust's shortest round-trip form.
fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_type_help_and_escaped_labels() {
        let mut t = Text::new("rabbitmq_");
        t.family(
            "queue_messages",
            Kind::Gauge,
            "Sum of ready and unacknowledged messages",
        );
        t.sample(
            "queue_messages",
            &[("vhost", "/"), ("queue", "a\"b\\c\nd")],
            3.0,
        );
        t.sample("queue_messages", &[], 0.5);
        assert_eq!(
            t.out,
            "# TYPE rabbitmq_queue_messages gauge\n\
             # HELP rabbitmq_queue_messages Sum of ready and unacknowledged messages\n\
             rabbitmq_queue_messages{vhost=\"/\",queue=\"a\\\"b\\\\c\\nd\"} 3\n\
             rabbitmq_queue_messages 0.5\n"
        );
    }
}
