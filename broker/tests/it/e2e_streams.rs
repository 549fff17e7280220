//! Stream queues and consumer groups through the binary: a clustering group
//! shares a stream (a member that dies leaves its unacked messages to the
//! others), groups and broadcasting members each receive everything,
//! positions survive a SIGKILL of the broker, offsets and resets, retention.

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Broker, eventually, queue_row};
use switchyard_client::{
    Channel, ConsumeOptions, Consumer, Field, GroupMode, Message, QueueOptions, StreamOffset, Value,
};

const COUNT: u64 = 30_000;
const LONG: Duration = Duration::from_secs(180);

fn stream_options(extra: &[(&str, &str)]) -> QueueOptions {
    let mut arguments = vec![Field::new("queue-type", Value::Text("stream".into()))];
    arguments.extend(
        extra
            .iter()
            .map(|(k, v)| Field::new(*k, Value::Text(v.to_string()))),
    );
    QueueOptions {
        durable: true,
        arguments,
        ..QueueOptions::default()
    }
}

/// Publishes messages `from..to` (bodies are their numbers), confirmed.
async fn publish(ch: &Channel, queue: &str, from: u64, to: u64) {
    ch.confirm_select().await.unwrap();
    let mut next = from;
    while next < to {
        let end = (next + 1000).min(to);
        let batch = (next..end)
            .map(|i| Message::new(queue, i.to_string()))
            .collect();
        ch.publish_batch("", batch).await.unwrap().await.unwrap();
        next = end;
    }
}

fn number(delivery: &switchyard_client::Delivery) -> u64 {
    String::from_utf8_lossy(&delivery.message.body)
        .parse()
        .unwrap()
}

async fn member(ch: &Channel, queue: &str, group: &str, mode: GroupMode, tag: &str) -> Consumer {
    let options = ConsumeOptions {
        prefetch: 100,
        tag: tag.into(),
        group: Some(group.into()),
        mode,
        offset: Some(StreamOffset::First),
        ..ConsumeOptions::default()
    };
    ch.consume(queue, options).await.unwrap()
}

/// `list groups --json` rows of `queue`.
fn group_rows(broker: &Broker, queue: &str) -> Vec<serde_json::Value> {
    broker
        .cli_ok(&["list", "groups", "--json"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|row| row["queue"] == queue)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustering_group_shares_the_stream_and_a_dead_members_messages_go_to_another() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue("events", stream_options(&[]))
        .await
        .unwrap();
    publish(&ch, "events", 0, COUNT).await;

    // id → acknowledging member; what each member was handed.
    let acked = Arc::new(Mutex::new(HashMap::<u64, usize>::new()));
    let received = Arc::new(Mutex::new(vec![Vec::<(u64, bool)>::new(); 3]));
    let mut tasks = Vec::new();
    for index in 0..3 {
        let (connection, member_ch) = broker.channel().await;
        let mut consumer = member(
            &member_ch,
            "events",
            "workers",
            GroupMode::Clustering,
            &format!("m{index}"),
        )
        .await;
        let (acked, received) = (acked.clone(), received.clone());
        tasks.push(tokio::spawn(async move {
            let mut own = 0;
            while let Some(delivery) = consumer.next().await {
                let id = number(&delivery);
                received.lock().unwrap()[index].push((id, delivery.redelivered));
                // Member 0 dies after 3,000 of its own, holding what it
                // was handed beyond them (its acks are processed first: a
                // round trip on its channel).
                if index == 0 && own == 3_000 {
                    support::vanish(connection, member_ch, consumer).await;
                    return;
                }
                delivery.ack().await.unwrap();
                own += 1;
                let previous = acked.lock().unwrap().insert(id, index);
                assert!(previous.is_none(), "{id} acknowledged twice");
            }
        }));
    }
    let all = eventually(LONG, || acked.lock().unwrap().len() as u64 == COUNT).await;
    assert!(all, "only {} acknowledged", acked.lock().unwrap().len());
    let acked = acked.lock().unwrap().clone();
    assert!((0..COUNT).all(|id| acked.contains_key(&id)));
    // Every message went to exactly one member, except those the dead
    // member held: they went on to another, flagged redelivered.
    let received = received.lock().unwrap().clone();
    let held_by_dead: Vec<u64> = received[0]
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| acked.get(id) != Some(&0))
        .collect();
    assert!(!held_by_dead.is_empty());
    let survivors: Vec<&(u64, bool)> = received[1..].iter().flatten().collect();
    assert_eq!(survivors.len() as u64 + 3_000, COUNT);
    for id in &held_by_dead {
        let copy = survivors.iter().find(|(s, _)| s == id).unwrap();
        assert!(copy.1, "{id} came to a survivor unflagged");
    }
    assert!(
        received[1..].iter().all(|r| !r.is_empty()),
        "work was shared"
    );
    // The group is at the end; the stream keeps every message.
    let rows = group_rows(&broker, "events");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["position"].as_i64(),
            rows[0]["lag"].as_i64(),
            rows[0]["unacked"].as_i64()
        ),
        (Some(COUNT as i64), Some(0), Some(0)),
        "{rows:?}"
    );
    assert_eq!(rows[0]["mode"], "clustering");
    let row = queue_row(&broker, "events").unwrap();
    assert_eq!(
        (row["ready"].as_i64(), row["unacked"].as_i64()),
        (Some(COUNT as i64), Some(0)),
        "{row}"
    );
    for task in tasks {
        task.abort();
    }
}

/// Consumes until `count` messages arrived; their numbers, acknowledged.
async fn take(consumer: &mut Consumer, count: u64) -> Vec<u64> {
    let mut got = Vec::new();
    while (got.len() as u64) < count {
        let delivery = tokio::time::timeout(LONG, consumer.next())
            .await
            .expect("a delivery within the timeout")
            .expect("the consumer is open");
        delivery.ack().await.unwrap();
        got.push(number(&delivery));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_and_every_broadcasting_member_receives_every_message() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue("prices", stream_options(&[]))
        .await
        .unwrap();
    publish(&ch, "prices", 0, COUNT).await;
    let mut readers = Vec::new();
    for group in ["risk", "audit", "search"] {
        readers.push((group, GroupMode::Clustering, group.to_string()));
    }
    for tag in ["screen-1", "screen-2"] {
        readers.push(("screens", GroupMode::Broadcasting, tag.to_string()));
    }
    let mut tasks = Vec::new();
    for (group, mode, tag) in readers {
        let (connection, reader_ch) = broker.channel().await;
        let mut consumer = member(&reader_ch, "prices", group, mode, &tag).await;
        tasks.push(tokio::spawn(async move {
            let got = take(&mut consumer, COUNT).await;
            drop((consumer, reader_ch, connection));
            (tag, got)
        }));
    }
    let expected: Vec<u64> = (0..COUNT).collect();
    for task in tasks {
        let (tag, got) = task.await.unwrap();
        assert_eq!(got, expected, "{tag} received every message, in order");
    }
    let rows = group_rows(&broker, "prices");
    assert_eq!(rows.len(), 5, "{rows:?}");
    let members: Vec<_> = rows
        .iter()
        .filter(|r| r["group"] == "screens")
        .map(|r| (r["mode"].clone(), r["member"].clone()))
        .collect();
    assert_eq!(members.len(), 2, "{rows:?}");
    assert!(members.iter().all(|(mode, _)| mode == "broadcasting"));
    // A group cannot be joined in the other mode.
    let refused = ch
        .consume(
            "prices",
            ConsumeOptions {
                group: Some("risk".into()),
                mode: GroupMode::Broadcasting,
                ..ConsumeOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("is clustering"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_positions_survive_a_sigkill_and_only_unacked_messages_come_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_in(dir.path(), &[]);
    {
        let (_connection, ch) = broker.channel().await;
        // Sync flush: a confirm after the acks means they are on disk too.
        ch.declare_queue("ledger", stream_options(&[("flush", "sync")]))
            .await
            .unwrap();
        publish(&ch, "ledger", 0, 10_000).await;
        let (connection, member_ch) = broker.channel().await;
        let mut consumer =
            member(&member_ch, "ledger", "posting", GroupMode::Clustering, "p").await;
        assert_eq!(
            take(&mut consumer, 6_000).await,
            (0..6_000).collect::<Vec<_>>()
        );
        // 100 more are handed out (prefetch) and never acknowledged.
        let held = eventually(LONG, || {
            group_rows(&broker, "ledger")
                .first()
                .is_some_and(|r| r["unacked"] == 100 && r["position"] == 6_000)
        })
        .await;
        assert!(held, "{:?}", group_rows(&broker, "ledger"));
        publish(&ch, "ledger", 10_000, 10_001).await;
        broker.kill();
        drop((consumer, member_ch, connection));
    }
    let broker = Broker::start_in(dir.path(), &[]);
    let (_connection, ch) = broker.channel().await;
    let mut consumer = member(&ch, "ledger", "posting", GroupMode::Clustering, "p").await;
    let first = tokio::time::timeout(LONG, consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(number(&first), 6_000);
    assert!(first.redelivered);
    first.ack().await.unwrap();
    let rest = take(&mut consumer, 4_000).await;
    assert_eq!(rest, (6_001..10_001).collect::<Vec<_>>());
    let rows = group_rows(&broker, "ledger");
    assert_eq!(rows[0]["position"], 10_001, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_attach_at_offsets_and_an_administrator_resets_a_group() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue("log", stream_options(&[])).await.unwrap();
    publish(&ch, "log", 0, 100).await;
    let middle_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Published strictly later than `middle_ms`.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        <= middle_ms
    {
        tokio::task::yield_now().await;
    }
    publish(&ch, "log", 100, 200).await;
    let first_of = |offset: StreamOffset| {
        let ch = ch.clone();
        async move {
            let options = ConsumeOptions {
                offset: Some(offset),
                ..ConsumeOptions::default()
            };
            let mut consumer = ch.consume("log", options).await.unwrap();
            let got = take(&mut consumer, 1).await[0];
            consumer.cancel().await.unwrap();
            got
        }
    };
    assert_eq!(first_of(StreamOffset::First).await, 0);
    assert_eq!(first_of(StreamOffset::Last).await, 199);
    assert_eq!(first_of(StreamOffset::Offset(42)).await, 42);
    assert_eq!(first_of(StreamOffset::Timestamp(middle_ms + 1)).await, 100);
    // `next`: only what is published after it attached.
    let mut next = ch.consume("log", ConsumeOptions::default()).await.unwrap();
    publish(&ch, "log", 200, 201).await;
    assert_eq!(take(&mut next, 1).await, vec![200]);
    next.cancel().await.unwrap();
    // Groupless consumers leave no group behind.
    assert!(group_rows(&broker, "log").is_empty());

    let mut group = member(&ch, "log", "g", GroupMode::Clustering, "g1").await;
    assert_eq!(take(&mut group, 201).await.len(), 201);
    // Not while a member consumes.
    let busy = broker.cli(&["group", "reset", "log", "g", "--to", "first"]);
    assert!(!busy.status.success());
    assert!(
        support::stderr(&busy).contains("members consuming"),
        "{}",
        support::stderr(&busy)
    );
    group.cancel().await.unwrap();
    broker.cli_ok(&["group", "reset", "log", "g", "--to", "150"]);
    let rows = group_rows(&broker, "log");
    assert_eq!(
        (rows[0]["position"].as_i64(), rows[0]["lag"].as_i64()),
        (Some(150), Some(51))
    );
    let mut group = member(&ch, "log", "g", GroupMode::Clustering, "g1").await;
    assert_eq!(take(&mut group, 51).await, (150..201).collect::<Vec<_>>());

    // What a stream does not do is refused by name.
    let get = ch.get("log", false).await.unwrap_err();
    assert!(get.to_string().contains("is a stream"), "{get}");
    let purge = broker.cli(&["purge", "log"]);
    assert!(
        support::stderr(&purge).contains("is a stream"),
        "{}",
        support::stderr(&purge)
    );
    let ttl = ch
        .declare_queue("bad", stream_options(&[("message-ttl", "10")]))
        .await
        .unwrap_err();
    assert!(
        ttl.to_string()
            .contains("'message-ttl' is not for a stream"),
        "{ttl}"
    );
    let classic = ch
        .consume(
            "plain",
            ConsumeOptions {
                group: Some("g".into()),
                ..ConsumeOptions::default()
            },
        )
        .await;
    assert!(classic.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_bytes_drops_whole_segments_and_groups_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(&config, "[storage]\nsegment_bytes = 1048576\n").unwrap();
    let data = dir.path().join("data");
    let broker = Broker::start_in(&data, &["--config", config.to_str().unwrap()]);
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue(
        "metrics",
        stream_options(&[("max-length-bytes", "2000000")]),
    )
    .await
    .unwrap();
    // A group that attached at the start and reads nothing.
    let (idle_connection, idle_ch) = broker.channel().await;
    let idle = member(&idle_ch, "metrics", "idle", GroupMode::Clustering, "i").await;
    idle.cancel().await.unwrap();
    drop((idle_ch, idle_connection));
    ch.confirm_select().await.unwrap();
    for batch in 0..60 {
        let messages = (0..100)
            .map(|i| {
                Message::new("metrics", vec![b'x'; 1000])
                    .with_header("n", Value::Int(batch * 100 + i))
            })
            .collect();
        ch.publish_batch("", messages).await.unwrap().await.unwrap();
    }
    let trimmed = eventually(LONG, || {
        let row = queue_row(&broker, "metrics").unwrap();
        let bytes = row["ready_bytes"].as_i64().unwrap();
        bytes <= 2_000_000 && row["ready"].as_i64().unwrap() < 6_000
    })
    .await;
    assert!(trimmed, "{}", queue_row(&broker, "metrics").unwrap());
    // The idle group skipped what the stream no longer holds.
    let rows = group_rows(&broker, "metrics");
    let row = queue_row(&broker, "metrics").unwrap();
    assert!(rows[0]["position"].as_i64().unwrap() > 0, "{rows:?}");
    assert_eq!(rows[0]["lag"], row["ready"], "{rows:?} {row}");
    let segments = eventually(LONG, || {
        std::fs::read_dir(data.join("store/log")).unwrap().count() <= 4
    })
    .await;
    assert!(segments, "released segments are deleted");
}
