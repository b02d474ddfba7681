//! # HTTP publish-and-return: accept the request, do the work behind the queue
//!
//! An HTTP handler that does slow work inline (send an email, call a partner) makes its caller
//! wait and fails with it. Instead, the handler publishes an event and answers at once; a worker
//! does the work from the queue. The answer may only say "accepted" once the broker has the
//! message, so the kit's [`http::publish_and_accept`] publishes *with confirm* and answers:
//!
//! - `202 Accepted` with the message id (body `{"message_id":..}` and a `message-id` header);
//! - `503 Service Unavailable` with `Retry-After` when the broker blocks publishing or the
//!   confirm window stays full past the publisher's deadline, instead of a hung request;
//! - an `Idempotency-Key` request header becomes the message id, so a client that retries a POST
//!   whose answer it never saw produces the same id, and an idempotent consumer (see the
//!   `idempotent_consumer` example) processes it once.
//!
//! Run: `cargo run -p service-kit --example http_publish` (embedded broker) or with
//! `AMQP_URL=...`. It serves `POST /signups` on a free local port, posts to it, and checks the
//! 202, the message id, and that the worker received the message with that id and body.

use std::time::Duration;

use anyhow::{ensure, Context};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use service_kit::http::{publish_and_accept, IDEMPOTENCY_KEY, MESSAGE_ID};
use service_kit::{
    ConsumerConfig, Kit, KitConfig, Message, Outcome, Publisher, PublisherConfig, Topology,
};
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

/// The route's state: the queue events go to and the publisher.
#[derive(Clone)]
struct Api {
    /// Where signups are queued.
    queue: String,
    /// Confirming publisher (cheap to clone, shared by all requests).
    publisher: Publisher,
}

/// `POST /signups`: queue the body as a signup event and answer 202 (or 503).
async fn signup(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    let event = Message::new("", &api.queue, body).with_header("event", "signup");
    publish_and_accept(&api.publisher, &headers, event).await
}

pub async fn run(url: String) -> anyhow::Result<String> {
    let queue = common::unique("signups");
    let kit = Kit::start(KitConfig::new(&url), Topology::new().queue(&queue));

    // The worker behind the queue.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = kit
        .consume(ConsumerConfig::new(&queue), move |d| {
            let _ = tx.send((
                d.message_id().map(str::to_owned),
                d.header("event"),
                d.text(),
            ));
            async { Outcome::Ack }
        })
        .await;

    // The HTTP service. A short deadline: under backpressure the caller gets 503 quickly.
    let publisher = kit.publisher(PublisherConfig {
        deadline: Duration::from_secs(2),
        ..Default::default()
    });
    let app = Router::new()
        .route("/signups", post(signup))
        .with_state(Api {
            queue: queue.clone(),
            publisher,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // A client posts a signup with an idempotency key, and one without.
    let http = reqwest::Client::new();
    let endpoint = format!("http://{addr}/signups");
    let keyed = http
        .post(&endpoint)
        .header(IDEMPOTENCY_KEY, "signup-ada")
        .body("{\"email\":\"ada@example.com\"}")
        .send()
        .await?;
    let (keyed_status, keyed_id) = (keyed.status(), keyed.headers().get(MESSAGE_ID).cloned());
    let keyed_body = keyed.text().await?;
    let plain = http
        .post(&endpoint)
        .body("{\"email\":\"bob@example.com\"}")
        .send()
        .await?;
    let plain_status = plain.status();
    let plain_id = plain
        .headers()
        .get(MESSAGE_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut received = Vec::new();
    while received.len() < 2 {
        match tokio::time::timeout(common::WAIT, rx.recv()).await {
            Ok(Some(m)) => received.push(m),
            _ => break,
        }
    }
    server.abort();
    worker.shutdown().await;
    kit.shutdown().await;
    common::delete(&url, &[&queue], &[]).await;

    ensure!(
        keyed_status == 202 && plain_status == 202,
        "{keyed_status} / {plain_status}"
    );
    ensure!(
        keyed_id.as_ref().and_then(|v| v.to_str().ok()) == Some("signup-ada"),
        "the Idempotency-Key is the message id: {keyed_id:?}"
    );
    ensure!(
        keyed_body == "{\"message_id\":\"signup-ada\"}",
        "body {keyed_body}"
    );
    let plain_id = plain_id.context("a message id for the request without a key")?;
    received.sort();
    let mut want = [
        (
            Some("signup-ada".to_owned()),
            Some("signup".to_owned()),
            "{\"email\":\"ada@example.com\"}".to_owned(),
        ),
        (
            Some(plain_id.clone()),
            Some("signup".to_owned()),
            "{\"email\":\"bob@example.com\"}".to_owned(),
        ),
    ];
    want.sort();
    ensure!(received == want, "the worker received {received:?}");
    Ok(format!(
        "2 POSTs answered 202 (ids signup-ada, {plain_id}); the worker got both events"
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::main(run).await
}
