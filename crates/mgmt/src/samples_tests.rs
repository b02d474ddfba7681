//! Samples of objects: watched on the first request, one point per
//! published snapshot after, RabbitMQ's shape; bounded and forgotten.

use serde_json::Value;

use crate::list_tests::{app, body, req, snapshot};
use crate::obj_history::{ObjHistory, ObjKey, Point, WATCHED_OBJECTS_MAX, WATCH_IDLE_MS};

const Q: &str = "queues/v1/q-0001";
const AGES: &str = "lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5";

fn get(app: &crate::App, path: &str, q: &str) -> Value {
    body(crate::routes::route(app, &req(path, q, "admin", None)))
}

fn timestamps(d: &Value) -> Vec<u64> {
    d["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["timestamp"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_queue_asked_for_collects_samples_from_then_on() {
    let app = app(300);
    // Not asked for: no samples, nothing watched.
    let plain = get(&app, Q, "");
    assert!(plain["messages_details"].get("samples").is_none());
    let first = get(&app, Q, AGES);
    assert_eq!(timestamps(&first["messages_details"]), vec![1_005_000]);
    // One point: no averages (RabbitMQ's shape).
    assert!(first["messages_details"].get("avg").is_none());
    for (i, round) in [(1u64, 2u64), (2, 3)] {
        app.stats
            .publish(snapshot(300, 1_005_000 + i * 5_000, round));
    }
    let v = get(&app, Q, AGES);
    let d = &v["messages_details"];
    assert_eq!(timestamps(d), vec![1_015_000, 1_010_000, 1_005_000]);
    // q-0001: ready = 1 % 11 + round * (1 % 7) + unacked 1 = 2 + round.
    let samples: Vec<u64> = d["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sample"].as_u64().unwrap())
        .collect();
    assert_eq!(samples, vec![5, 4, 3]);
    assert_eq!(d["avg"].as_f64(), Some(4.0));
    assert_eq!(d["avg_rate"].as_f64(), Some(0.2));
    assert_eq!(d["rate"], v["messages_details"]["rate"]);
    // Message counters too: publish = 100 + 3 * round.
    let p = &v["message_stats"]["publish_details"];
    assert_eq!(p["samples"][0]["sample"].as_u64(), Some(109));
    assert_eq!(p["avg_rate"].as_f64(), Some(0.6));
    // lengths only: no samples on the message counters.
    let v = get(&app, Q, "lengths_age=60");
    assert!(v["message_stats"]["publish_details"]
        .get("samples")
        .is_none());
    assert_eq!(timestamps(&v["messages_ready_details"]).len(), 3);
    // The window: 6 s back from the newest keeps two points.
    let v = get(&app, Q, "lengths_age=6&lengths_incr=1");
    assert_eq!(
        timestamps(&v["messages_details"]),
        vec![1_015_000, 1_010_000]
    );
}

#[test]
fn lists_and_other_kinds_have_samples_too() {
    let app = app(300);
    let conn = crate::views::conn_name(&app.stats.load().now.connections[0]);
    let ask = |app: &crate::App| {
        (
            get(
                app,
                "exchanges/v1",
                "msg_rates_age=60&page=1&page_size=5&sort=name",
            ),
            get(app, &format!("connections/{conn}"), "data_rates_age=60"),
            get(app, "channels", "msg_rates_age=60"),
            get(app, "queues", "lengths_age=60&page=1&page_size=3"),
        )
    };
    ask(&app);
    app.stats.publish(snapshot(300, 1_010_000, 2));
    let (x, c, ch, q) = ask(&app);
    let with_stats = x["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x.get("message_stats").is_some())
        .expect("an exchange with message_stats");
    assert_eq!(
        timestamps(&with_stats["message_stats"]["publish_in_details"]).len(),
        2
    );
    assert_eq!(timestamps(&c["recv_oct_details"]).len(), 2);
    assert!(c["send_oct_details"]["avg_rate"].as_f64().is_some());
    let busy = ch
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("message_stats").is_some())
        .expect("a busy channel");
    assert_eq!(
        timestamps(&busy["message_stats"]["publish_details"]).len(),
        2
    );
    assert_eq!(timestamps(&q["items"][0]["messages_details"]).len(), 2);
    // Only the page's queues were watched, not all 300 (a sort on a
    // field read from the JSON builds it without samples).
    get(
        &app,
        "queues",
        "lengths_age=60&page=1&page_size=3&sort=idle_since",
    );
    app.stats.publish(snapshot(300, 1_015_000, 3));
    let all = get(&app, "queues", "lengths_age=60&page=2&page_size=3");
    assert_eq!(timestamps(&all["items"][0]["messages_details"]).len(), 1);
}

#[test]
fn watched_objects_are_bounded_and_forgotten() {
    let mut h = ObjHistory::default();
    let p = |at_ms| Point {
        at_ms,
        ..Default::default()
    };
    for i in 0..WATCHED_OBJECTS_MAX as u64 + 10 {
        h.asked(ObjKey::Conn(i), p(1_000));
    }
    assert_eq!(h.watched(), WATCHED_OBJECTS_MAX);
    // Over the limit: the current value only.
    assert_eq!(h.asked(ObjKey::Conn(99_999), p(1_000)).len(), 1);
    let mut s = broker_core::inspect::Snapshot {
        taken_at_ms: 2_000,
        ..Default::default()
    };
    let mut c = snapshot(6, 0, 0).connections[0].clone();
    c.id = 3;
    s.connections.push(c);
    // Gone from the snapshot: forgotten; still there: one point more.
    h.publish(&s);
    assert_eq!(h.watched(), 1);
    assert_eq!(h.asked(ObjKey::Conn(3), p(2_000)).len(), 2);
    // Not asked for in WATCH_IDLE_MS: forgotten.
    s.taken_at_ms = 2_000 + WATCH_IDLE_MS;
    h.publish(&s);
    assert_eq!(h.watched(), 0);
}
