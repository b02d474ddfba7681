//! Every program in `examples/` (one per pattern) run against the warren the test starts, or
//! `AMQP_URL`: each example checks its own outcome and returns an error if it did not happen.
//! The examples are included as modules (their `main` is unused here).

use crate::harness::broker;

macro_rules! example_tests {
    ($($name:ident => $file:literal,)*) => {
        $(
            // Each example includes `examples/common/mod.rs` for itself, so this test crate
            // holds eight copies of it, one per example module: intended.
            #[allow(dead_code, clippy::duplicate_mod)]
            #[path = $file]
            mod $name;
        )*
        mod run {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = super::broker();
                    match super::$name::run(b.url.clone()).await {
                        Ok(summary) => eprintln!("{}: {summary}", stringify!($name)),
                        Err(e) => panic!("example {} failed: {e:#}", stringify!($name)),
                    }
                }
            )*
        }
    };
}

example_tests! {
    work_queue => "../../examples/work_queue.rs",
    pub_sub => "../../examples/pub_sub.rs",
    routing => "../../examples/routing.rs",
    topics => "../../examples/topics.rs",
    rpc => "../../examples/rpc.rs",
    retry_dead_letter => "../../examples/retry_dead_letter.rs",
    idempotent_consumer => "../../examples/idempotent_consumer.rs",
    http_publish => "../../examples/http_publish.rs",
}
