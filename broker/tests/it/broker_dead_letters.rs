//! Death history (`x-death`) in the core, on the test clock: each death is
//! recorded with its queue, reason, count, first and last time, exchange
//! and routing keys; a retry loop with rejections counts up; a cycle of
//! automatic deaths (expiry) without a rejection is dropped.

use crate::core;

use core::*;
use switchyard::broker::{Broker, Settle};
use switchyard_protocol::Value;

/// The `x-death` history of a delivery, parsed.
fn history(delivery: &switchyard::broker::Delivery) -> Vec<serde_json::Value> {
    match switchyard_protocol::find(&delivery.message.headers, "x-death") {
        Some(Value::Text(json)) => serde_json::from_str(json).unwrap(),
        other => panic!("no x-death history: {other:?}"),
    }
}

/// Queues that dead-letter in a ring: each `(queue, arguments)` to the
/// next one (the last to the first), through fanout exchanges `to-<next>`.
fn ring(broker: &Broker, queues: &[(&str, &[(&str, &str)])]) {
    for (i, (queue, arguments)) in queues.iter().enumerate() {
        let next = queues[(i + 1) % queues.len()].0;
        let exchange = format!("to-{next}");
        declare_exchange(broker, &exchange, "fanout", &[]).unwrap();
        let mut arguments = arguments.to_vec();
        arguments.push(("dead-letter-exchange", &exchange));
        declare_queue(broker, queue, &arguments);
    }
    for (queue, _) in queues {
        bind(broker, &guest(broker), queue, &format!("to-{queue}"));
    }
}

#[test]
fn a_retry_loop_counts_each_death_by_queue_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    ring(
        &broker,
        &[("work", &[]), ("retry", &[("message-ttl", "1000")])],
    );
    let started = broker.now_ms();
    publish(&broker, "work", "job");

    for round in 0..2 {
        let d = deliver(&broker, "work").expect("the job, back for another try");
        settle(&broker, "work", d.offset, Settle::Reject);
        clock(&broker).advance(1000);
        assert_eq!(
            broker.expire_due(),
            1,
            "round {round}: retried after its delay"
        );
    }
    let d = deliver(&broker, "work").expect("the job, a third time");
    let history = history(&d);
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["queue"], "retry");
    assert_eq!(history[0]["reason"], "expired");
    assert_eq!(history[0]["count"], 2);
    assert_eq!(history[1]["queue"], "work");
    assert_eq!(history[1]["reason"], "rejected");
    assert_eq!(history[1]["count"], 2);
    assert_eq!(history[1]["time-first"], started);
    assert_eq!(history[1]["time-last"], started + 1000);
    assert_eq!(history[1]["exchange"], "");
    assert_eq!(history[1]["routing-keys"], serde_json::json!(["work"]));
}

#[test]
fn a_cycle_of_expiries_without_a_rejection_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let ttl: &[(&str, &str)] = &[("message-ttl", "1000")];
    ring(&broker, &[("a", ttl), ("b", ttl)]);
    publish(&broker, "a", "ping-pong");

    clock(&broker).advance(1000);
    assert_eq!(broker.expire_due(), 1, "a → b");
    assert_eq!(stats(&broker, "b").ready, 1);
    clock(&broker).advance(1000);
    assert_eq!(broker.expire_due(), 1, "b → a");
    assert_eq!(stats(&broker, "a").ready, 1);
    clock(&broker).advance(1000);
    assert_eq!(broker.expire_due(), 1, "a again: the cycle is dropped");
    assert_eq!(
        (stats(&broker, "a").ready, stats(&broker, "b").ready),
        (0, 0)
    );
}

#[test]
fn a_dead_letter_its_exchange_refuses_is_parked_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    // The dead-letter exchange does not exist (deleted, or never made).
    declare_queue(&broker, "work", &[("dead-letter-exchange", "gone")]);
    declare_queue(&broker, "kept", &[]);
    declare_queue(
        &broker,
        "careful",
        &[
            ("dead-letter-exchange", "gone"),
            ("dead-letter-fallback", "kept"),
        ],
    );
    publish(&broker, "work", "one");
    publish(&broker, "careful", "two");
    for queue in ["work", "careful"] {
        let d = deliver(&broker, queue).unwrap();
        settle(&broker, queue, d.offset, Settle::Reject);
    }

    let parked = deliver(&broker, switchyard::broker::PARKING_QUEUE)
        .expect("the vhost's parking queue holds the first");
    assert_eq!(body(&parked), "one");
    assert_eq!(history(&parked)[0]["reason"], "rejected");
    let kept = deliver(&broker, "kept").expect("the fallback queue holds the second");
    assert_eq!(body(&kept), "two");
    assert_eq!(stats(&broker, switchyard::broker::PARKING_QUEUE).ready, 0);
}

#[test]
fn the_delivery_limit_counts_returns_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        declare_queue(&broker, "dlq", &[]);
        declare_fanout(&broker, "dlx", "dlq");
        declare_queue(
            &broker,
            "work",
            &[("delivery-limit", "3"), ("dead-letter-exchange", "dlx")],
        );
        publish(&broker, "work", "poison");
        let d = deliver(&broker, "work").unwrap();
        settle(&broker, "work", d.offset, Settle::Requeue);
        // A consumer that goes away returns it too.
        let d = deliver(&broker, "work").unwrap();
        release(&broker, "work", &[d.offset]);
        broker.checkpoint().unwrap();
    }
    let broker = open(dir.path());
    let d = deliver(&broker, "work").expect("a third delivery is allowed");
    settle(&broker, "work", d.offset, Settle::Requeue);
    // Three redeliveries allowed (RabbitMQ's x-delivery-limit): a fourth.
    let d = deliver(&broker, "work").expect("a fourth delivery is allowed");
    settle(&broker, "work", d.offset, Settle::Requeue);
    assert!(
        deliver(&broker, "work").is_none(),
        "the fourth return went past the limit"
    );
    let dead = deliver(&broker, "dlq").expect("dead-lettered");
    assert_eq!(body(&dead), "poison");
    let history = history(&dead);
    assert_eq!(history[0]["reason"], "delivery_limit", "{history:?}");
    assert_eq!(history[0]["queue"], "work");
}
