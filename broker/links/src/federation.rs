//! A federation link: follows a global exchange on another cell (the
//! upstream, usually CENTER). On the upstream it keeps a durable stream
//! queue `federation.<this cell>.<exchange>` bound to the upstream
//! exchange with this exchange's binding keys, and reads it as consumer
//! group `<this cell>`: the group's position on the upstream is the
//! durable place to resume from, across restarts of either side. Each
//! batch read is stored here (once per upstream offset: the core's inbox)
//! and only then acknowledged upstream, so every message arrives exactly
//! once and in order.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use switchyard_client::{
    Channel, ConsumeOptions, Consumer, Delivery, Field, Frame, Query, QueueOptions, StreamOffset,
    Value,
};
use switchyard_core::{Broker, CellTable, Federation, Peer};
use tokio::sync::watch;

use super::peer::{Sessions, State, Stopped, keep_running, peer_unchanged};

/// Messages read ahead from the upstream (the client buffers as many, so
/// this link's own requests on the channel are answered meanwhile).
const PREFETCH: u32 = 1_000;
/// Messages stored here per batch.
const BATCH: usize = 500;
/// How often bindings are mirrored again and the lag is read.
const RESYNC: Duration = Duration::from_secs(2);
/// How long the upstream keeps what this cell has not read.
const RETENTION: &str = "7D";

pub(crate) async fn run(
    broker: Arc<Broker>,
    federation: Federation,
    shutdown: watch::Receiver<bool>,
) {
    let report = |state: State| match state {
        State::NoPeer => broker.set_federation_status(&federation, "no-peer", None, None),
        State::Connecting => broker.set_federation_status(&federation, "connecting", None, None),
        State::Down(error) => broker.set_federation_status(&federation, "down", None, Some(error)),
    };
    let cell = federation.upstream_cell.clone();
    keep_running(&broker, &cell, shutdown, report, |peer, table| {
        follow(&broker, &federation, peer, table)
    })
    .await;
}

async fn follow(
    broker: &Arc<Broker>,
    federation: &Federation,
    peer: Peer,
    mut table: watch::Receiver<Arc<CellTable>>,
) -> Stopped {
    let local_cell = broker.cell_table().local.clone();
    if local_cell.is_empty() {
        return Stopped::Failed("this broker has no cell ([cells] local)".into());
    }
    // One name per federation link: a new run of it finds its predecessor.
    let client_name = format!(
        "switchyard-federation {local_cell} {} {}",
        federation.vhost, federation.exchange
    );
    let mut sessions = match Sessions::new(
        broker,
        &federation.upstream_cell,
        &peer,
        client_name.clone(),
    ) {
        Ok(sessions) => sessions,
        Err(e) => return Stopped::Failed(e),
    };
    if let Err(e) = sessions.channel(&federation.vhost).await {
        return Stopped::Failed(e);
    }
    let own = sessions.connection_id(&federation.vhost);
    let channel = sessions.channel(&federation.vhost).await.expect("open");
    let queue = federation.upstream_queue(&local_cell);
    if let Err(e) = retire_predecessors(channel, &client_name, own, &queue, &local_cell).await {
        return Stopped::Failed(e);
    }
    let mut consumer = match subscribe(broker, federation, channel, &queue, &local_cell).await {
        Ok(consumer) => consumer,
        Err(e) => return Stopped::Failed(e),
    };
    broker.set_federation_status(federation, "up", None, None);
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            delivery = consumer.next() => {
                let Some(first) = delivery else {
                    let why = consumer.error().map(|e| e.to_string());
                    return Stopped::Failed(why.unwrap_or_else(|| "the upstream ended the consumer".into()));
                };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match consumer.next().now_or_never() {
                        Some(Some(delivery)) => batch.push(delivery),
                        _ => break,
                    }
                }
                if let Err(e) = store(broker, federation, channel, batch).await {
                    return Stopped::Failed(e);
                }
            }
            _ = resync.tick() => {
                if !broker.federations().contains(federation) {
                    return Stopped::Done;
                }
                if let Err(e) = mirror_bindings(broker, federation, channel, &queue).await {
                    return Stopped::Failed(e);
                }
                if let Ok(lag) = upstream_lag(channel, &queue, &local_cell).await {
                    broker.set_federation_status(federation, "up", Some(lag), None);
                }
            }
            changed = table.changed() => {
                if changed.is_err() || !peer_unchanged(&mut table, &federation.upstream_cell, &peer) {
                    return Stopped::PeerChanged;
                }
            }
        }
    }
}

/// Closes what is left upstream of an earlier run of this link (a broker
/// killed or restarted leaves its connection until the upstream's idle
/// timeout) and waits until its consumer is gone: the group's messages it
/// held come back first, so the new consumer reads them in order.
async fn retire_predecessors(
    channel: &Channel,
    client_name: &str,
    own: Option<u64>,
    queue: &str,
    group: &str,
) -> Result<(), String> {
    let text =
        |row: &[Field], name: &str| row.iter().find(|f| f.name == name).map(|f| f.value.clone());
    let connections = channel
        .query(Query::Connections)
        .await
        .map_err(|e| e.to_string())?;
    for row in &connections {
        let Some(Value::Int(id)) = text(row, "id") else {
            continue;
        };
        if text(row, "client") == Some(Value::Text(client_name.into())) && Some(id as u64) != own {
            let closed = channel
                .admin(|req| Frame::CloseConnection {
                    req,
                    id: id as u64,
                    reason: "replaced by a new federation link".into(),
                })
                .await;
            if let Err(e) = closed {
                tracing::debug!(id, error = %e, "closing an earlier federation link");
            }
        }
    }
    for _ in 0..600 {
        let rows = channel
            .query(Query::Groups)
            .await
            .map_err(|e| e.to_string())?;
        let consumers = rows
            .iter()
            .find(|row| {
                text(row, "queue") == Some(Value::Text(queue.into()))
                    && text(row, "group") == Some(Value::Text(group.into()))
            })
            .and_then(|row| match text(row, "consumers") {
                Some(Value::Int(n)) => Some(n),
                _ => None,
            })
            .unwrap_or(0);
        if consumers == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "an earlier consumer of {queue} upstream does not go away"
    ))
}

/// Declares and binds the upstream stream queue, and joins its group.
async fn subscribe(
    broker: &Broker,
    federation: &Federation,
    channel: &Channel,
    queue: &str,
    local_cell: &str,
) -> Result<Consumer, String> {
    let options = QueueOptions {
        durable: true,
        arguments: vec![
            Field::new("queue-type", Value::Text("stream".into())),
            Field::new("max-age", Value::Text(RETENTION.into())),
        ],
        ..QueueOptions::default()
    };
    channel
        .declare_queue(queue, options)
        .await
        .map_err(|e| format!("declaring {queue} upstream: {e}"))?;
    mirror_bindings(broker, federation, channel, queue).await?;
    let options = ConsumeOptions {
        prefetch: PREFETCH,
        group: Some(local_cell.to_string()),
        // A new group reads everything the queue has kept.
        offset: Some(StreamOffset::First),
        ..ConsumeOptions::default()
    };
    channel
        .consume(queue, options)
        .await
        .map_err(|e| format!("reading {queue} upstream: {e}"))
}

/// Binds the upstream queue with every binding key of the local exchange
/// (binding again is harmless).
async fn mirror_bindings(
    broker: &Broker,
    federation: &Federation,
    channel: &Channel,
    queue: &str,
) -> Result<(), String> {
    for (key, arguments) in broker.federation_bindings(federation) {
        channel
            .bind(queue, &federation.upstream_exchange, &key, arguments)
            .await
            .map_err(|e| {
                format!(
                    "binding {queue} to exchange '{}' upstream: {e}",
                    federation.upstream_exchange
                )
            })?;
    }
    Ok(())
}

/// Stores a batch here, then acknowledges it upstream.
async fn store(
    broker: &Arc<Broker>,
    federation: &Federation,
    channel: &Channel,
    batch: Vec<Delivery>,
) -> Result<(), String> {
    let last = batch.last().map(|d| d.delivery_tag);
    let messages = batch.into_iter().map(|d| d.message).collect();
    let (broker, federation_copy) = (broker.clone(), federation.clone());
    tokio::task::spawn_blocking(move || broker.publish_federated(&federation_copy, messages))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("storing federated messages: {e}"))?;
    if let Some(tag) = last {
        channel
            .ack(tag, true)
            .await
            .map_err(|e| format!("acknowledging upstream: {e}"))?;
    }
    Ok(())
}

/// The group's lag on the upstream queue (`list groups` there).
async fn upstream_lag(channel: &Channel, queue: &str, group: &str) -> Result<u64, String> {
    let rows = channel
        .query(Query::Groups)
        .await
        .map_err(|e| e.to_string())?;
    let field =
        |row: &[Field], name: &str| row.iter().find(|f| f.name == name).map(|f| f.value.clone());
    rows.iter()
        .find(|row| {
            field(row, "queue") == Some(Value::Text(queue.into()))
                && field(row, "group") == Some(Value::Text(group.into()))
        })
        .and_then(|row| match field(row, "lag") {
            Some(Value::Int(lag)) => Some(lag.max(0) as u64),
            _ => None,
        })
        .ok_or_else(|| "no lag reported".into())
}
