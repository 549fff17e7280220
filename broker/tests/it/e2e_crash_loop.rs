//! A SIGKILL loop through the binary: producers publish with confirms to a
//! sync-flush queue and an async-flush queue while a consumer acknowledges
//! from both; the broker is killed at a random moment, restarted on the same
//! data dir, again and again. After the last restart every confirmed message
//! is delivered at least once and none is corrupt. Acknowledgements of the
//! last moments before a kill may be lost, so some messages come twice:
//! their count is reported, not forbidden (at-least-once).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Broker;
use switchyard_client::{Channel, ConsumeOptions, Field, Message, QueueOptions, Value};

const ROUNDS: u32 = 20;
const QUEUES: [(&str, &str); 2] = [("crash-sync", "sync"), ("crash-async", "async")];
/// Confirms a producer waits for at most at once.
const IN_FLIGHT: usize = 64;

/// What the clients saw across all rounds.
#[derive(Default)]
struct Ledger {
    /// (queue, id) of every message whose confirm arrived.
    confirmed: BTreeSet<(String, u64)>,
    /// (queue, id) → how many times it was delivered.
    delivered: BTreeMap<(String, u64), u32>,
    corrupt: Vec<String>,
}

/// splitmix64: a seeded, reproducible source of kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A body that says which message it is and checks itself: a corrupt or
/// truncated record cannot pass for another message.
fn body(queue: &str, id: u64) -> String {
    let filler: String = (0..(id % 200) as usize)
        .map(|i| char::from(b'a' + ((id as usize + i) % 26) as u8))
        .collect();
    format!("{queue}:{id}:{filler}")
}

fn parse(body: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut parts = text.splitn(3, ':');
    let queue = parts.next()?.to_string();
    let id = parts.next()?.parse().ok()?;
    (self::body(&queue, id) == text).then_some((queue, id))
}

fn record_delivery(ledger: &Mutex<Ledger>, raw: &[u8]) {
    let mut ledger = ledger.lock().unwrap();
    match parse(raw) {
        Some(key) => *ledger.delivered.entry(key).or_default() += 1,
        None => ledger
            .corrupt
            .push(String::from_utf8_lossy(raw).chars().take(80).collect()),
    }
}

async fn declare(channel: &Channel) {
    for (name, flush) in QUEUES {
        let arguments = vec![Field::new("flush", Value::Text(flush.into()))];
        let options = QueueOptions {
            durable: true,
            arguments,
            ..QueueOptions::default()
        };
        channel.declare_queue(name, options).await.unwrap();
    }
}

/// Publishes `queue:id` for ever from `first_id`, recording each confirm.
async fn produce(channel: Channel, queue: &'static str, first_id: u64, ledger: Arc<Mutex<Ledger>>) {
    if channel.confirm_select().await.is_err() {
        return;
    }
    let mut pending = std::collections::VecDeque::new();
    for id in first_id.. {
        let message = Message::new(queue, body(queue, id)).persistent();
        let Ok(confirmation) = channel.publish("", message).await else {
            return;
        };
        pending.push_back((id, confirmation));
        if pending.len() >= IN_FLIGHT {
            let (id, confirmation) = pending.pop_front().unwrap();
            if confirmation.await.is_err() {
                return;
            }
            let mut ledger = ledger.lock().unwrap();
            ledger.confirmed.insert((queue.to_string(), id));
        }
    }
}

/// Consumes `queue`, recording every delivery and acknowledging it.
async fn consume(channel: Channel, queue: &'static str, ledger: Arc<Mutex<Ledger>>) {
    let options = ConsumeOptions {
        prefetch: 200,
        ..ConsumeOptions::default()
    };
    let Ok(mut consumer) = channel.consume(queue, options).await else {
        return;
    };
    while let Some(delivery) = consumer.next().await {
        record_delivery(&ledger, &delivery.message.body);
        if delivery.ack().await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_a_sigkill_loop() {
    let seed = std::env::var("CRASH_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    eprintln!("crash loop seed {seed} (set CRASH_LOOP_SEED to replay)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    // Small segments: consumed ones are released while the loop runs, so
    // kills also land between a checkpoint and the release that follows it.
    let config = dir.path().join("switchyard.toml");
    std::fs::write(&config, "[storage]\nsegment_bytes = 1048576\n").unwrap();
    let config = config.to_str().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    for round in 0..u64::from(ROUNDS) {
        let mut broker = Broker::start_in(dir.path(), &["--config", config]);
        let (connection, channel) = broker.channel().await;
        declare(&channel).await;
        let mut tasks = Vec::new();
        for (queue, _) in QUEUES {
            // Ids of each round start at a fresh million: unique across rounds.
            let producer = connection.channel().await.unwrap();
            let first_id = round * 1_000_000;
            tasks.push(tokio::spawn(produce(
                producer,
                queue,
                first_id,
                ledger.clone(),
            )));
            let consumer = connection.channel().await.unwrap();
            tasks.push(tokio::spawn(consume(consumer, queue, ledger.clone())));
        }
        // Let the load run, then kill at a random moment of it.
        let confirmed_before = ledger.lock().unwrap().confirmed.len();
        let wait_for = 50 + rng.next() % 400;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while ledger.lock().unwrap().confirmed.len() == confirmed_before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: no publish was confirmed in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(wait_for)).await;
        broker.kill();
        // The clients' view ends with the kill: whatever they had not heard
        // of by now is unconfirmed (it may or may not have been stored).
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        drop(channel);
        drop(connection);
    }

    // The last restart: drain what is left and check the promise.
    let broker = Broker::start_in(dir.path(), &["--config", config]);
    let (_connection, channel) = broker.channel().await;
    for (queue, _) in QUEUES {
        while let Some((delivery, _)) = channel.get(queue, false).await.unwrap() {
            record_delivery(&ledger, &delivery.message.body);
            delivery.ack().await.unwrap();
        }
    }
    let ledger = ledger.lock().unwrap();
    assert!(
        ledger.corrupt.is_empty(),
        "corrupt deliveries: {:?}",
        ledger.corrupt
    );
    let lost: Vec<_> = ledger
        .confirmed
        .iter()
        .filter(|key| !ledger.delivered.contains_key(*key))
        .take(20)
        .collect();
    assert!(lost.is_empty(), "confirmed but never delivered: {lost:?}");
    let twice = ledger.delivered.values().filter(|&&n| n > 1).count();
    let unconfirmed = ledger
        .delivered
        .keys()
        .filter(|key| !ledger.confirmed.contains(*key))
        .count();
    eprintln!(
        "crash loop: {ROUNDS} SIGKILLs, {} confirmed, {} delivered, {twice} delivered more than \
         once, {unconfirmed} delivered without their confirm having arrived",
        ledger.confirmed.len(),
        ledger.delivered.len()
    );
    assert!(
        ledger.confirmed.len() >= ROUNDS as usize,
        "every round confirmed something"
    );
}
