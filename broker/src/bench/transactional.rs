//! `--mode transactional`: each producer joins the bench's producer group
//! and, for each message, sends a half message and commits it — two round
//! trips, one after the other (as RocketMQ's transactional producer does).
//! The confirm latency reported is half → commit answered; with `--flush
//! sync` both wait for the group commit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use switchyard_client::{Channel, Connection, Error, ProducerGroupOptions};

use super::{BenchConfig, Samples, Shared, next_message, settle};

pub(super) async fn produce(
    connection: Connection,
    ch: Channel,
    id: usize,
    count: u64,
    config: BenchConfig,
    shared: Arc<Shared>,
) -> Result<Samples, Error> {
    let _checks = ch
        .join_producer_group("bench-producers", ProducerGroupOptions::default())
        .await?;
    let deadline = config.duration.map(|d| Instant::now() + d);
    let mut latency = Samples::default();
    let mut sent = 0u64;
    let mut route = id;
    shared
        .first_publish_ns
        .fetch_min(shared.now_ns(), Ordering::AcqRel);
    while deadline.map_or(sent < count, |d| Instant::now() < d) {
        let message = next_message(&config, &mut route, &shared);
        let started = shared.now_ns();
        let committed = match ch.send_half(config.exchange(), message).await {
            Ok(transaction) => ch.commit(transaction).await,
            Err(e) => Err(e),
        };
        settle(committed, started, &shared, &mut latency, 1);
        sent += 1;
        shared.published.fetch_add(1, Ordering::AcqRel);
    }
    shared
        .last_publish_ns
        .fetch_max(shared.now_ns(), Ordering::AcqRel);
    ch.close().await?;
    connection.close().await;
    Ok(latency)
}
