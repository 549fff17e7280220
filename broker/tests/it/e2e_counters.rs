//! Queue counters stay exact through the binary (issue 16, item 6): after
//! a consumer with a prefetch window goes away — closing, or its
//! connection dropped without a word — `ready + unacked` is what the queue
//! holds, and so after requeues, purges and expiry.

use crate::support;

use std::time::Duration;

use support::{Broker, eventually, queue_row};
use switchyard_client::{ConsumeOptions, Message};

fn counts(broker: &Broker, queue: &str) -> (i64, i64) {
    let row = queue_row(broker, queue).unwrap();
    (
        row["ready"].as_i64().unwrap(),
        row["unacked"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_after_a_prefetching_consumer_goes_away() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "q").await;
    ch.confirm_select().await.unwrap();
    let messages = (0..10_001)
        .map(|i| Message::new("q", format!("{i}")))
        .collect();
    ch.publish_batch("", messages).await.unwrap().await.unwrap();

    for (round, abrupt) in [(0, false), (1, true), (2, false), (3, true)] {
        let (connection, consumer_ch) = broker.channel().await;
        let options = ConsumeOptions {
            prefetch: 100,
            ..ConsumeOptions::default()
        };
        let mut consumer = consumer_ch.consume("q", options).await.unwrap();
        for _ in 0..4 {
            let delivery = consumer.next().await.unwrap();
            delivery.ack().await.unwrap();
        }
        // Four more taken and held, unacknowledged.
        for _ in 0..4 {
            consumer.next().await.unwrap();
        }
        if abrupt {
            // Its acks reach the broker first (a round trip after them):
            // an ack still in the client's buffer when the connection
            // vanishes is lost, and its message rightly comes back.
            support::vanish(connection, consumer_ch, consumer).await;
        } else {
            consumer_ch.close().await.unwrap();
            connection.close().await;
        }
        let left = 10_001 - 4 * (round + 1);
        let exact = eventually(Duration::from_secs(30), || {
            counts(&broker, "q") == (left, 0)
        })
        .await;
        assert!(
            exact,
            "round {round}: {:?}, expected ({left}, 0)",
            counts(&broker, "q")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_after_the_cli_takes_a_few() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "q").await;
    ch.confirm_select().await.unwrap();
    let messages = (0..10_001)
        .map(|i| Message::new("q", format!("{i}")))
        .collect();
    ch.publish_batch("", messages).await.unwrap().await.unwrap();
    let mut left = 10_001;
    for args in [
        &["--count", "4"][..],
        &["--count", "4", "--ack", "auto"],
        &["--count", "4", "--prefetch", "0"],
        &["--count", "4", "--ack", "auto", "--prefetch", "0"],
    ] {
        let mut command = vec!["consume", "--queue", "q"];
        command.extend_from_slice(args);
        broker.cli_ok(&command);
        left -= 4;
        let exact = eventually(Duration::from_secs(30), || {
            counts(&broker, "q") == (left, 0)
        })
        .await;
        assert!(
            exact,
            "{args:?}: {:?}, expected ({left}, 0)",
            counts(&broker, "q")
        );
    }
}

/// A seeded walk through every way a message leaves or comes back: acks
/// (single and multiple), requeues, rejects, purges, expiry, and consumers
/// that close or vanish with deliveries held. After each round, once the
/// consumers are gone, `unacked` is 0 and `ready` is exactly what draining
/// the queue finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_through_every_path() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    support::queue(&ch, "q").await;
    ch.confirm_select().await.unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..24 {
        let expire = next(6) == 0;
        let messages: Vec<Message> = (0..50 + next(200))
            .map(|i| {
                let mut m = Message::new("q", format!("{round}-{i}"));
                // A round of messages that all die of old age: the sweeper
                // takes them off the head.
                m.properties.expiration = expire.then_some(1);
                m
            })
            .collect();
        ch.publish_batch("", messages).await.unwrap().await.unwrap();
        let (connection, consumer_ch) = broker.channel().await;
        let options = ConsumeOptions {
            prefetch: 1 + next(60) as u32,
            ..ConsumeOptions::default()
        };
        let mut consumer = consumer_ch.consume("q", options).await.unwrap();
        let takes = if expire { 0 } else { next(40) };
        for _ in 0..takes {
            let delivery = consumer.next().await.unwrap();
            match next(5) {
                0 | 1 => delivery.ack().await.unwrap(),
                2 => delivery.ack_multiple().await.unwrap(),
                3 => delivery.nack(true).await.unwrap(),
                _ => delivery.reject(false).await.unwrap(),
            }
        }
        match next(3) {
            0 => {
                consumer_ch.close().await.unwrap();
                connection.close().await;
            }
            1 => drop((consumer, consumer_ch, connection)),
            _ => {
                consumer_ch.close().await.unwrap();
                connection.close().await;
                ch.purge_queue("q").await.unwrap();
            }
        }
        let settled = eventually(Duration::from_secs(30), || {
            let (ready, unacked) = counts(&broker, "q");
            unacked == 0 && (!expire || ready == 0)
        })
        .await;
        assert!(settled, "round {round}: {:?}", counts(&broker, "q"));
        let (ready, _) = counts(&broker, "q");
        let drained = support::drain(&ch, "q").await.len() as i64;
        assert_eq!(
            drained, ready,
            "round {round}: ready said {ready}, the queue held {drained}"
        );
        assert_eq!(counts(&broker, "q"), (0, 0), "round {round}, drained");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_committed_messages_count_as_published() {
    let broker = Broker::start();
    let (_connection, ch) = broker.channel().await;
    ch.declare_queue("later", support::durable()).await.unwrap();
    ch.confirm_select().await.unwrap();
    let mut delayed = Message::new("later", "in a moment");
    delayed.headers.push(switchyard_client::Field::new(
        "x-delay",
        switchyard_client::Value::Int(200),
    ));
    ch.publish_batch("", vec![delayed])
        .await
        .unwrap()
        .await
        .unwrap();
    let _checks = ch
        .join_producer_group(
            "counted",
            switchyard_client::ProducerGroupOptions::default(),
        )
        .await
        .unwrap();
    let id = ch
        .send_half("", Message::new("later", "committed"))
        .await
        .unwrap();
    ch.commit(id).await.unwrap();

    let got = std::sync::Mutex::new(0);
    let arrived = support::eventually_async(Duration::from_secs(60), || async {
        let drained = support::drain(&ch, "later").await.len();
        let mut got = got.lock().unwrap();
        *got += drained;
        *got >= 2
    })
    .await;
    assert!(arrived, "{} of 2 delivered", got.lock().unwrap());
    let row = queue_row(&broker, "later").unwrap();
    assert_eq!(
        (row["published"].as_i64(), row["delivered"].as_i64()),
        (Some(2), Some(2)),
        "{row}"
    );
}
