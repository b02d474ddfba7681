//! The benchmark's "as the guide did" publishing paths, beside the kit's confirmed publisher:
//! fire-and-forget on a plain channel of the kit's publishing connection (no confirm: `Ok` means
//! only "handed to the client library"), and a new connection per request (optionally confirmed).

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::{Channel, Connection, ConnectionProperties};
use service_kit::{KitError, Managed, Message};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long one direct publish may take (connect included).
const DIRECT_DEADLINE: Duration = Duration::from_secs(5);

/// Direct publishing state.
pub struct Direct {
    /// The kit's publishing connection (for fire-and-forget).
    conn: Managed,
    /// The broker's URL (`amqp://` or `warren-embedded://`), for connections per request.
    url: String,
    /// The plain (non-confirm) channel and the connection generation it belongs to.
    plain: Mutex<Option<(u64, Channel)>>,
}

impl Direct {
    /// Direct publishing over `conn`, or new connections to `url`.
    pub fn new(conn: Managed, url: String) -> Direct {
        Direct {
            conn,
            url,
            plain: Mutex::new(None),
        }
    }

    /// Publishes without a confirm on a shared plain channel.
    pub async fn publish_fire_and_forget(&self, mut msg: Message) -> Result<String, KitError> {
        msg.ensure_defaults();
        let live = self.conn.wait(Instant::now() + DIRECT_DEADLINE).await?;
        let ch = {
            let mut g = self.plain.lock().await;
            match g.as_ref() {
                Some((gen, ch)) if *gen == live.generation && ch.status().connected() => ch.clone(),
                _ => {
                    let ch = live.conn.create_channel().await?;
                    *g = Some((live.generation, ch.clone()));
                    ch
                }
            }
        };
        send(&ch, &msg).await?;
        Ok(msg.id().unwrap_or_default().to_owned())
    }

    /// Opens a connection, publishes (waiting for the confirm if `confirm`), closes it.
    pub async fn publish_on_new_connection(
        &self,
        mut msg: Message,
        confirm: bool,
    ) -> Result<String, KitError> {
        msg.ensure_defaults();
        let conn = tokio::time::timeout(DIRECT_DEADLINE, connect(&self.url))
            .await
            .map_err(|_| KitError::NotConnected(DIRECT_DEADLINE))??;
        let result = publish_once(&conn, &msg, confirm).await;
        let _ = conn.close(200, "per-request publish done").await;
        result.map(|_| msg.id().unwrap_or_default().to_owned())
    }
}

async fn publish_once(conn: &Connection, msg: &Message, confirm: bool) -> Result<(), KitError> {
    let ch = conn.create_channel().await?;
    if confirm {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    let pending = send(&ch, msg).await?;
    if !confirm {
        return Ok(());
    }
    match tokio::time::timeout(DIRECT_DEADLINE, pending).await {
        Err(_) => Err(KitError::ConfirmTimeout(DIRECT_DEADLINE)),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(r)))) | Ok(Ok(Confirmation::Nack(Some(r)))) => {
            Err(KitError::Returned {
                code: r.reply_code,
                text: r.reply_text.as_str().to_owned(),
            })
        }
        Ok(Ok(_)) => Err(KitError::Nacked),
        Ok(Err(e)) => Err(e.into()),
    }
}

async fn send(
    ch: &Channel,
    msg: &Message,
) -> Result<lapin::publisher_confirm::PublisherConfirm, KitError> {
    let opts = BasicPublishOptions {
        mandatory: msg.mandatory,
        ..Default::default()
    };
    Ok(ch
        .basic_publish(
            &msg.exchange,
            &msg.routing_key,
            opts,
            &msg.body,
            msg.properties.clone(),
        )
        .await?)
}

/// One connection to `url` (`warren-embedded://` in this process, or `amqp(s)://`).
async fn connect(url: &str) -> Result<Connection, KitError> {
    let props = ConnectionProperties::default()
        .with_connection_name("reference-service.per-request".into());
    if url.starts_with("warren-embedded://") {
        return Ok(warren_embedded::connect_url(url, props).await?);
    }
    Ok(Connection::connect(url, props).await?)
}
