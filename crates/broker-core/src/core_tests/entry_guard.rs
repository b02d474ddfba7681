//! The entry guard (`entry.rs`): a run of publishes ends before anything
//! else observes the queues: at the next non-publish entry, and at an error.

use amqp_codec::{parse_frame, BasicProperties, Method};

use super::*;
use crate::testkit::{bodies, Out, Wire, FRAME_MAX};

/// A publish run that ends in a channel error on the consuming channel:
/// the earlier publish is delivered (as if it had dispatched at once)
/// before the channel.close, on both the fast and the general path.
#[test]
fn error_ends_the_publish_run_before_the_close() {
    for fast_path in [true, false] {
        let (mut core, mut c) = setup();
        core.fast_path = fast_path;
        core.declare_queue(&mut c, 1, "q", Default::default());
        assert!(core.consume(&mut c, 1, "q", "t", false).is_empty());
        let props = BasicProperties::default();
        let wire = Wire::new()
            .publish(1, "", "q", &props, b"first")
            .publish(1, "missing", "q", &props, b"second");
        core.input(&c, wire);
        let got = c.recv();
        assert_eq!(
            bodies(&got),
            vec!["first"],
            "fast_path={fast_path}: {got:?}"
        );
        assert!(
            matches!(got.last(), Some(Out::Method(1, Method::ChannelClose(_)))),
            "fast_path={fast_path}: {got:?}"
        );
        assert_eq!(channel_close(&got).map(|(code, _)| code), Some(404));
    }
}

/// connection.close after publishes in the same read: the deliveries they
/// cause go out first, close-ok is the last frame, and a message that
/// becomes ready afterwards (another client's publish) is not delivered.
#[test]
fn nothing_after_close_ok() {
    let (mut core, mut c) = setup();
    core.declare_queue(&mut c, 1, "q", Default::default());
    assert!(core.consume(&mut c, 1, "q", "t", false).is_empty());
    let props = BasicProperties::default();
    let mut buf = Wire::new()
        .publish(1, "", "q", &props, b"a")
        .publish(1, "", "q", &props, b"b")
        .0;
    // The server's reader: frames of one read, then connection.close on
    // channel 0, which the server hands to `client_closed`.
    while let Some(f) = parse_frame(&mut buf, FRAME_MAX).expect("frame") {
        core.broker.handle_frame(c.id, f);
    }
    core.broker.client_closed(c.id);
    core.broker.flush();
    let got = c.recv();
    assert_eq!(bodies(&got), vec!["a", "b"], "{got:?}");
    assert!(
        matches!(
            got.last(),
            Some(Out::Method(0, Method::ConnectionCloseOk(_)))
        ),
        "{got:?}"
    );
    // The unacked messages went back to the queue; another client's
    // publish must not reach the closed connection either.
    let mut other = core.connect();
    core.open_channel(&mut other, 1);
    core.input(&other, Wire::new().publish(1, "", "q", &props, b"c"));
    assert!(c.recv().is_empty());
    assert_eq!(core.queue_depth("q"), Some(3));
}
