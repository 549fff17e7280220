//! Ordered messages through the binary: `declare exchange orders --type
//! ordered --arg partitions=8` makes eight single-active-consumer
//! partitions; 100,000 messages over 1,000 ordering keys are consumed by
//! consumers that die at random (each with a standby registered behind
//! it): per key, the acknowledged order is the publish order, no gaps.

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Broker, queue_row};
use switchyard_client::{Channel, Connection, ConsumeOptions, Consumer, Message};
use tokio::sync::watch;

const PARTITIONS: u64 = 8;
const KEYS: u64 = 1_000;
const COUNT: u64 = 100_000;

struct Member {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
}

async fn member(broker: &Broker, partition: u64) -> Member {
    let (connection, channel) = broker.channel().await;
    let options = ConsumeOptions {
        prefetch: 20,
        ..ConsumeOptions::default()
    };
    let consumer = channel
        .consume(&format!("orders.{partition}"), options)
        .await
        .unwrap();
    Member {
        _connection: connection,
        channel,
        consumer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_survives_consumers_dying_at_random() {
    let broker = Arc::new(Broker::start());
    broker.cli_ok(&[
        "declare",
        "exchange",
        "orders",
        "--type",
        "ordered",
        "--arg",
        "partitions=8",
        "--durable",
    ]);
    // Declaring it again is a no-op; with another count, refused.
    broker.cli_ok(&[
        "declare",
        "exchange",
        "orders",
        "--type",
        "ordered",
        "--arg",
        "partitions=8",
        "--durable",
    ]);
    let other = broker.cli(&[
        "declare",
        "exchange",
        "orders",
        "--type",
        "ordered",
        "--arg",
        "partitions=4",
        "--durable",
    ]);
    assert!(!other.status.success());
    assert!(
        support::stderr(&other).contains("8 partitions"),
        "{}",
        support::stderr(&other)
    );
    // Listed with the type it was declared with.
    let exchanges = broker.cli_ok(&["list", "exchanges", "--json"]);
    let orders = exchanges
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|row| row["name"] == "orders")
        .expect("the exchange is listed");
    assert_eq!(orders["type"], "ordered", "{orders}");
    for p in 0..PARTITIONS {
        let row = queue_row(&broker, &format!("orders.{p}")).expect("a partition queue");
        assert!(
            row["arguments"]
                .as_str()
                .unwrap()
                .contains("single-active-consumer"),
            "{row}"
        );
    }
    let (_connection, ch) = broker.channel().await;
    ch.confirm_select().await.unwrap();
    let mut next_seq = vec![0u64; KEYS as usize];
    for batch in 0..COUNT / 1_000 {
        let messages = (batch * 1_000..(batch + 1) * 1_000)
            .map(|i| {
                let key = (i * 7_919) % KEYS;
                let seq = next_seq[key as usize];
                next_seq[key as usize] += 1;
                Message::new("", format!("{key}:{seq}")).ordering_key(format!("k{key}"))
            })
            .collect();
        ch.publish_batch("orders", messages)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let acked: Arc<Mutex<HashMap<u64, Vec<u64>>>> = Arc::default();
    let (done_tx, done) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let mut workers = Vec::new();
    for partition in 0..PARTITIONS {
        let (broker, acked, done_tx, mut done) =
            (broker.clone(), acked.clone(), done_tx.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut seed = 0x2545_f491_4f6c_dd1d ^ partition;
            let mut current = member(&broker, partition).await;
            loop {
                // A standby waits behind the active consumer.
                let standby = member(&broker, partition).await;
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let dies_after = 200 + seed % 2_000;
                let mut processed = 0;
                while processed < dies_after {
                    let delivery = tokio::select! {
                        d = current.consumer.next() => d.expect("the consumer ended"),
                        _ = done.changed() => {
                            // Its acks are processed before its connection
                            // goes with this task.
                            let _ = current.channel.query(switchyard_client::Query::Vhosts).await;
                            return;
                        }
                    };
                    let body = String::from_utf8_lossy(&delivery.message.body).into_owned();
                    let (key, seq) = body.split_once(':').unwrap();
                    let total = {
                        let mut acked = acked.lock().unwrap();
                        acked
                            .entry(key.parse().unwrap())
                            .or_default()
                            .push(seq.parse().unwrap());
                        acked.values().map(|v| v.len() as u64).sum::<u64>()
                    };
                    delivery.ack().await.unwrap();
                    processed += 1;
                    if total == COUNT {
                        let _ = current
                            .channel
                            .query(switchyard_client::Query::Vhosts)
                            .await;
                        let _ = done_tx.send(true);
                        return;
                    }
                }
                // Its acks are in (a round trip after them on the same
                // channel); then it dies holding what it was sent.
                current
                    .channel
                    .query(switchyard_client::Query::Vhosts)
                    .await
                    .unwrap();
                drop(current);
                current = standby;
            }
        }));
    }
    let finished = tokio::time::timeout(Duration::from_secs(300), async {
        let mut done = done;
        while !*done.borrow() {
            done.changed().await.unwrap();
        }
    })
    .await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        finished.is_ok(),
        "only {} acknowledged",
        acked.values().map(Vec::len).sum::<usize>()
    );
    for (key, seqs) in &acked {
        let expected: Vec<u64> = (0..next_seq[*key as usize]).collect();
        assert_eq!(
            seqs, &expected,
            "key {key}: acknowledged out of publish order"
        );
    }
    assert_eq!(acked.len() as u64, KEYS);
    // The counters say the same: nothing ready, nothing unacknowledged.
    for p in 0..PARTITIONS {
        let queue = format!("orders.{p}");
        let empty = support::eventually(Duration::from_secs(30), || {
            let row = queue_row(&broker, &queue).unwrap();
            (row["ready"].as_i64(), row["unacked"].as_i64()) == (Some(0), Some(0))
        })
        .await;
        assert!(empty, "{queue}: {}", queue_row(&broker, &queue).unwrap());
    }
    for worker in workers {
        worker.abort();
    }
}
