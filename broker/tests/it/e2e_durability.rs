//! Durability through the binary: 100k persistent, confirmed messages in a
//! sync-flush queue survive SIGKILL of the broker — all present after the
//! restart, once each, in order.

use crate::support;

use std::collections::VecDeque;
use std::time::Duration;

use support::Broker;
use switchyard_client::{ConsumeOptions, Field, Message, QueueOptions, Value};

const COUNT: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_sigkill_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_in(dir.path(), &[]);
    {
        let (_connection, ch) = broker.channel().await;
        let arguments = vec![Field::new("flush", Value::Text("sync".into()))];
        ch.declare_queue(
            "ledger",
            QueueOptions {
                durable: true,
                arguments,
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap();
        ch.confirm_select().await.unwrap();
        let mut in_flight = VecDeque::new();
        for i in 0..COUNT {
            let message = Message::new("ledger", format!("{i:06}")).persistent();
            in_flight.push_back(ch.publish("", message).await.unwrap());
            if in_flight.len() >= 1000 {
                in_flight.pop_front().unwrap().await.unwrap();
            }
        }
        for confirmation in in_flight {
            confirmation.await.unwrap();
        }
        // Every confirm is in: kill without any shutdown or checkpoint.
        broker.kill();
    }

    let broker = Broker::start_in(dir.path(), &[]);
    let (_connection, ch) = broker.channel().await;
    let options = ConsumeOptions {
        prefetch: 2000,
        ..ConsumeOptions::default()
    };
    let mut consumer = ch.consume("ledger", options).await.unwrap();
    for expected in 0..COUNT {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {expected} of {COUNT} messages after the restart"))
            .unwrap();
        assert_eq!(
            delivery.message.body,
            format!("{expected:06}"),
            "out of order or duplicated"
        );
        assert!(delivery.message.is_persistent());
        if expected % 500 == 499 {
            delivery.ack_multiple().await.unwrap();
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), consumer.next())
            .await
            .is_err(),
        "more than {COUNT} messages after the restart"
    );
}
