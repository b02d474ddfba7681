//! One connection pair of a shovel: forwards until something fails or the
//! shovel is stopped.

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, ConnectionProperties};
use tokio::sync::{mpsc, watch};

use crate::{AckMode, Connector, ShovelConfig, State, Status};

/// What a shovel's task works with.
pub(crate) struct Ends {
    /// What to move where.
    pub(crate) cfg: ShovelConfig,
    /// Opens the connections.
    pub(crate) connect: Connector,
    /// Messages moved (settled on the source after forwarding).
    pub(crate) moved: watch::Sender<u64>,
    /// The state `/api/shovels` reports.
    pub(crate) status: watch::Sender<Status>,
}

/// A forwarded message waiting for the destination's confirm.
type InFlight = (
    lapin::acker::Acker,
    lapin::publisher_confirm::PublisherConfirm,
);

/// The copy's properties: the source's, plus `x-shovel-redelivered` on a
/// redelivery and the `x-shovelled` entry when configured.
fn copy_properties(
    cfg: &ShovelConfig,
    props: &BasicProperties,
    redelivered: bool,
) -> BasicProperties {
    if !redelivered && cfg.forward_headers.is_none() {
        return props.clone();
    }
    let mut headers = props.headers().clone().unwrap_or_default();
    if redelivered {
        headers.insert("x-shovel-redelivered".into(), AMQPValue::Boolean(true));
    }
    if let Some(entries) = &cfg.forward_headers {
        let mut entry = FieldTable::default();
        for (k, v) in entries {
            entry.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        let mut list = vec![AMQPValue::FieldTable(entry)];
        if let Some(AMQPValue::FieldArray(old)) = headers.inner().get("x-shovelled") {
            list.extend(old.as_slice().iter().cloned());
        }
        headers.insert(
            "x-shovelled".into(),
            AMQPValue::FieldArray(FieldArray::from(list)),
        );
    }
    props.clone().with_headers(headers)
}

/// Connects both ends and forwards until an error (Err), the source
/// consumer's end (Ok), or the stop signal (Ok; both connections closed).
pub(crate) async fn session(ends: &Ends, stop: &mut watch::Receiver<bool>) -> lapin::Result<()> {
    let cfg = &ends.cfg;
    let props = |end: &str| {
        ConnectionProperties::default().with_connection_name(format!("{}.{end}", cfg.name).into())
    };
    // Connecting may take long (a host that does not answer): stop wins.
    let dest = tokio::select! {
        r = (ends.connect)(&cfg.dest_url, props("dest")) => r?,
        _ = stop.changed() => return Ok(()),
    };
    let src = tokio::select! {
        r = (ends.connect)(&cfg.src_url, props("src")) => r,
        _ = stop.changed() => Err(lapin::Error::InvalidConnectionState(lapin::ConnectionState::Closed)),
    };
    let src = match src {
        Ok(s) => s,
        Err(e) => {
            let _ = dest.close(200, "shovel stopping").await;
            return Err(e);
        }
    };
    let r = forward(ends, &src, &dest, stop).await;
    let _ = src.close(200, "shovel stopping").await;
    let _ = dest.close(200, "shovel stopping").await;
    r
}

async fn forward(
    ends: &Ends,
    src: &lapin::Connection,
    dest: &lapin::Connection,
    stop: &mut watch::Receiver<bool>,
) -> lapin::Result<()> {
    let cfg = &ends.cfg;
    let window = cfg.window_messages.max(1);
    let dch = dest.create_channel().await?;
    if cfg.ack_mode == AckMode::OnConfirm {
        dch.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    let sch = src.create_channel().await?;
    sch.basic_qos(window, BasicQosOptions::default()).await?;
    let consume = BasicConsumeOptions {
        no_ack: cfg.ack_mode == AckMode::NoAck,
        ..Default::default()
    };
    let mut deliveries = sch
        .basic_consume(&cfg.src_queue, &cfg.name, consume, FieldTable::default())
        .await?;
    tracing::info!(shovel = %cfg.name, "shovel running");
    ends.status.send_replace(Status::now(State::Running));
    // Confirms are awaited in order by a second future, which acks (or, on
    // a nack, requeues) on the source; the source's prefetch bounds it.
    let (tx, mut rx) = mpsc::channel::<InFlight>(usize::from(window));
    let settle = async {
        while let Some((acker, confirm)) = rx.recv().await {
            if confirm.await?.is_ack() {
                acker.ack(BasicAckOptions::default()).await?;
                ends.moved.send_modify(|n| *n += 1);
            } else {
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                acker.nack(requeue).await?;
            }
        }
        Ok::<(), lapin::Error>(())
    };
    let forward = async {
        while let Some(d) = deliveries.next().await {
            let d = d?;
            let properties = copy_properties(cfg, &d.properties, d.redelivered);
            let key = cfg
                .dest_routing_key
                .as_deref()
                .unwrap_or(d.routing_key.as_str());
            let confirm = dch
                .basic_publish(
                    &cfg.dest_exchange,
                    key,
                    BasicPublishOptions::default(),
                    &d.data,
                    properties,
                )
                .await?;
            match cfg.ack_mode {
                AckMode::OnConfirm => {
                    if tx.send((d.acker, confirm)).await.is_err() {
                        break;
                    }
                }
                AckMode::OnPublish => {
                    d.acker.ack(BasicAckOptions::default()).await?;
                    ends.moved.send_modify(|n| *n += 1);
                }
                AckMode::NoAck => ends.moved.send_modify(|n| *n += 1),
            }
        }
        Ok::<(), lapin::Error>(())
    };
    tokio::select! {
        r = settle => r,
        r = forward => r,
        _ = stop.changed() => Ok(()),
    }
}
