//! Single active consumer through the binary: of three consumers of a
//! `single-active-consumer` queue only one receives at a time; when it dies
//! (its connection gone, deliveries unacknowledged) the next registered
//! takes over and gets those first, in order. Over 10,000 messages and two
//! deaths, the acknowledged sequence is exactly publish order, no gaps.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Broker, eventually, queue_row};
use switchyard_client::{ConsumeOptions, Field, Message, QueueOptions, Value};

const COUNT: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_publish_order_with_no_gaps() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    let options = QueueOptions {
        arguments: vec![Field::new("single-active-consumer", Value::Bool(true))],
        ..QueueOptions::default()
    };
    ch.declare_queue("ordered", options).await.unwrap();
    ch.confirm_select().await.unwrap();
    let messages = (0..COUNT)
        .map(|i| Message::new("ordered", i.to_string()))
        .collect();
    ch.publish_batch("", messages).await.unwrap().await.unwrap();

    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    // Three consumers, registered in order; the first two die after
    // acknowledging 3,000 messages each, holding unacked ones.
    let mut registered = Vec::new();
    for member in 0..3 {
        let (connection, member_ch) = broker.channel().await;
        let options = ConsumeOptions {
            prefetch: 50,
            tag: format!("member-{member}"),
            ..ConsumeOptions::default()
        };
        let consumer = member_ch.consume("ordered", options).await.unwrap();
        registered.push((connection, member_ch, consumer));
    }
    // Only the first registered receives.
    let row = queue_row(&broker, "ordered").unwrap();
    assert_eq!(row["active_consumer"], "member-0", "{row}");
    let mut members = Vec::new();
    for ((connection, member_ch, mut consumer), dies_after) in
        registered.into_iter().zip([Some(3_000), Some(6_000), None])
    {
        let acked = acked.clone();
        members.push(tokio::spawn(async move {
            loop {
                let Some(delivery) = consumer.next().await else {
                    return;
                };
                let id: u64 = String::from_utf8_lossy(&delivery.message.body)
                    .parse()
                    .unwrap();
                let done = {
                    let mut acked = acked.lock().unwrap();
                    if dies_after.is_some_and(|n| acked.len() >= n) {
                        true
                    } else {
                        acked.push(id);
                        false
                    }
                };
                if done {
                    // Its acks are processed (a round trip after them on
                    // the same channel), then it vanishes holding the rest.
                    support::vanish(connection, member_ch, consumer).await;
                    return;
                }
                delivery.ack().await.unwrap();
                if acked.lock().unwrap().len() as u64 == COUNT {
                    // Its last acks are processed (a round trip after them)
                    // before its connection goes with this task.
                    member_ch
                        .query(switchyard_client::Query::Vhosts)
                        .await
                        .unwrap();
                    return;
                }
            }
        }));
    }
    let all = eventually(Duration::from_secs(120), || {
        acked.lock().unwrap().len() as u64 == COUNT
    })
    .await;
    assert!(all, "only {} acknowledged", acked.lock().unwrap().len());
    let acked = acked.lock().unwrap().clone();
    let expected: Vec<u64> = (0..COUNT).collect();
    if acked != expected {
        let first_wrong = acked.iter().zip(&expected).position(|(a, e)| a != e);
        panic!("acknowledged out of order at position {first_wrong:?}");
    }
    let row = queue_row(&broker, "ordered").unwrap();
    assert_eq!(
        (row["ready"].as_i64(), row["unacked"].as_i64()),
        (Some(0), Some(0)),
        "{row}"
    );
    for member in members {
        member.abort();
    }
}
