//! Acknowledgements survive SIGKILL once flushed, through the binary: a
//! consumer acks half of a queue and holds some deliveries unacked; a
//! confirmed publish to a sync queue on the same channel (processed after
//! the acks, durable only after a group commit that carries them) marks the
//! moment; the broker is killed. After the restart no acked message comes
//! back, and every message that had been delivered comes back flagged.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::Broker;
use switchyard_client::{ConsumeOptions, Field, Message, QueueOptions, Value};

const COUNT: usize = 2000;
const ACKED: usize = 1000;
const PREFETCH: usize = 50;

fn durable(flush: &str) -> QueueOptions {
    QueueOptions {
        durable: true,
        arguments: vec![Field::new("flush", Value::Text(flush.into()))],
        ..QueueOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_stay_acked_and_delivered_ones_come_back_flagged_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut held = BTreeSet::new();
    {
        let (_connection, ch) = broker.channel().await;
        ch.declare_queue("work", durable("async")).await.unwrap();
        ch.declare_queue("barrier", durable("sync")).await.unwrap();
        ch.confirm_select().await.unwrap();
        let messages = (0..COUNT)
            .map(|i| Message::new("work", format!("{i:05}")).persistent())
            .collect();
        ch.publish_batch("", messages).await.unwrap().await.unwrap();

        let options = ConsumeOptions {
            prefetch: PREFETCH as u32,
            ..ConsumeOptions::default()
        };
        let mut consumer = ch.consume("work", options).await.unwrap();
        for expected in 0..ACKED + PREFETCH {
            let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
                .await
                .expect("deliveries keep coming")
                .unwrap();
            assert_eq!(delivery.message.body, format!("{expected:05}"));
            if expected < ACKED {
                delivery.ack().await.unwrap();
            } else {
                held.insert(format!("{expected:05}"));
            }
        }
        // The barrier: confirmed only once a flush that follows the acks
        // (the broker handles a channel's frames in order) is on disk.
        let barrier = Message::new("barrier", "after the acks").persistent();
        ch.publish("", barrier).await.unwrap().await.unwrap();
        broker.kill();
    }

    let broker = Broker::start_in(dir.path(), &[]);
    let (_connection, ch) = broker.channel().await;
    let mut back = Vec::new();
    while let Some((delivery, _)) = ch.get("work", false).await.unwrap() {
        let body = String::from_utf8(delivery.message.body.to_vec()).unwrap();
        back.push((body, delivery.redelivered));
        delivery.ack().await.unwrap();
    }
    let bodies: Vec<&str> = back.iter().map(|(b, _)| b.as_str()).collect();
    let expected: Vec<String> = (ACKED..COUNT).map(|i| format!("{i:05}")).collect();
    assert_eq!(
        bodies, expected,
        "acked messages came back, or others were lost"
    );
    let unflagged: Vec<&String> = back
        .iter()
        .filter(|(body, flagged)| held.contains(body) && !flagged)
        .map(|(body, _)| body)
        .collect();
    assert!(
        unflagged.is_empty(),
        "delivered before the crash but not flagged: {unflagged:?}"
    );
    let flagged_never_delivered = back
        .iter()
        .filter(|(body, flagged)| *flagged && !held.contains(body))
        .count();
    eprintln!(
        "after SIGKILL: 0 of {ACKED} acked messages back, {} of {} held deliveries flagged, \
         {flagged_never_delivered} never-delivered messages flagged (within the lease)",
        held.len(),
        held.len()
    );
}
