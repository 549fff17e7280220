//! A dead-letter policy that fails never loses a message, through the
//! binary: a policy that traps, one that never returns (ended by the call
//! deadline, then quarantined), and a republish to an exchange that does
//! not exist — every affected message ends in the queue's
//! `dead-letter-fallback` or the vhost's parking queue, the broker goes on
//! serving, and its log names plugin, queue and cause.

use crate::support;

use std::time::Duration;

use support::{Broker, eventually, queue_row};
use switchyard_client::{Channel, Field, Message, QueueOptions, Value};

const PROBE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/dist/testing/dead-letter-probe.wasm"
);
const PER_QUEUE: usize = 5;

async fn declare(ch: &Channel, name: &str, arguments: &[(&str, &str)]) {
    let arguments = arguments
        .iter()
        .map(|(k, v)| Field::new(*k, Value::Text((*v).into())))
        .collect();
    let options = QueueOptions {
        arguments,
        ..QueueOptions::default()
    };
    ch.declare_queue(name, options).await.unwrap();
}

/// Publishes PER_QUEUE messages to `queue` and rejects each.
async fn publish_and_reject(ch: &Channel, queue: &str) {
    ch.confirm_select().await.unwrap();
    for i in 0..PER_QUEUE {
        let body = format!("{queue}-{i}");
        ch.publish("", Message::new(queue, body))
            .await
            .unwrap()
            .await
            .unwrap();
        let (delivery, _) = ch.get(queue, false).await.unwrap().unwrap();
        delivery.reject(false).await.unwrap();
    }
}

fn ready(broker: &Broker, queue: &str) -> i64 {
    queue_row(broker, queue)
        .and_then(|row| row["ready"].as_i64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_policies_park_every_message_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let data = dir.path().join("data");
    let broker = Broker::start_logging(&data, &[], Some(&log));
    for (name, mode) in [("trapper", "mode=trap"), ("spinner", "mode=spin")] {
        broker.cli_ok(&["plugin", "load", PROBE, "--name", name, "--config", mode]);
    }
    let (_connection, ch) = broker.channel().await;
    declare(&ch, "mine", &[]).await;
    declare(&ch, "t", &[("dead-letter-policy", "trapper")]).await;
    declare(
        &ch,
        "s",
        &[
            ("dead-letter-policy", "spinner"),
            ("dead-letter-fallback", "mine"),
        ],
    )
    .await;
    declare(&ch, "x", &[("dead-letter-exchange", "missing")]).await;
    for queue in ["t", "s", "x"] {
        publish_and_reject(&ch, queue).await;
    }
    let parked = eventually(Duration::from_secs(60), || {
        ready(&broker, "sy.dead-letter-parking") == 2 * PER_QUEUE as i64
            && ready(&broker, "mine") == PER_QUEUE as i64
    })
    .await;
    assert!(
        parked,
        "parking {}, mine {}",
        ready(&broker, "sy.dead-letter-parking"),
        ready(&broker, "mine")
    );
    // The broker goes on serving the queues whose policy failed.
    ch.publish("", Message::new("t", "after"))
        .await
        .unwrap()
        .await
        .unwrap();
    let (after, _) = ch.get("t", true).await.unwrap().unwrap();
    assert_eq!(after.message.body, "after");

    let log = std::fs::read_to_string(&log).unwrap();
    for (queue, cause) in [("t", "trapper"), ("s", "spinner"), ("x", "'missing'")] {
        assert!(
            log.lines().any(
                |line| line.contains("dead letter kept in the fallback queue")
                    && line.contains(&format!("queue=\"{queue}\""))
                    && line.contains(cause)
            ),
            "no log line for queue {queue} naming {cause}:\n{log}"
        );
    }
}
