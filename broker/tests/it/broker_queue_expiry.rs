//! Queue expiry (`expires`) in the core, on the test clock: a queue is
//! deleted once unused — no consumers, no get, no redeclare — for its
//! lease, and a restart does not renew the lease.

use crate::core;

use core::*;
use switchyard::broker::{AckMode, ConsumerSpec};

fn exists(broker: &switchyard::broker::Broker, queue: &str) -> bool {
    vhost(broker).queue(queue).is_ok()
}

#[test]
fn an_unused_queue_is_deleted_after_its_lease_and_use_renews_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "temp", &[("expires", "1000")]);
    publish(&broker, "temp", "kept until the queue goes");
    let clock = clock(&broker);

    clock.advance(999);
    assert!(broker.expire_unused_queues().is_empty());
    // A get is a use: the lease starts again.
    broker
        .get(&guest(&broker), 0, "temp", AckMode::Manual)
        .unwrap();
    clock.advance(999);
    assert!(broker.expire_unused_queues().is_empty());
    assert!(exists(&broker, "temp"));
    clock.advance(1);
    assert_eq!(broker.expire_unused_queues(), ["temp"]);
    assert!(!exists(&broker, "temp"));
}

#[test]
fn a_consumer_holds_the_queue_and_its_departure_starts_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "held", &[("expires", "500")]);
    let queue = broker
        .start_consumer(&guest(&broker), 0, ConsumerSpec::new("held", "c1"), 0)
        .unwrap();
    let clock = clock(&broker);
    clock.advance(10_000);
    assert!(
        broker.expire_unused_queues().is_empty(),
        "it has a consumer"
    );
    broker.end_consumer(&vhost(&broker), &queue, "c1");
    clock.advance(499);
    assert!(broker.expire_unused_queues().is_empty());
    clock.advance(1);
    assert_eq!(broker.expire_unused_queues(), ["held"]);
}

#[test]
fn a_restart_does_not_renew_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(&broker, "durable-temp", &[("expires", "1000")]);
    clock(&broker).advance(600);
    assert!(broker.expire_unused_queues().is_empty());
    drop(broker);

    let broker = open(dir.path());
    assert!(exists(&broker, "durable-temp"), "not yet expired");
    clock(&broker).advance(400);
    assert_eq!(broker.expire_unused_queues(), ["durable-temp"]);
    drop(broker);
    let broker = open(dir.path());
    assert!(!exists(&broker, "durable-temp"), "deleted for good");
}

#[test]
fn expires_must_be_a_positive_number_of_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    for bad in ["0", "soon"] {
        let declared = broker.declare_queue(
            &guest(&broker),
            0,
            switchyard::broker::QueueSpec {
                name: "q",
                durable: true,
                exclusive: false,
                auto_delete: false,
                passive: false,
                arguments: vec![switchyard_protocol::Field::new("expires", text(bad))],
            },
        );
        let error = declared.expect_err("refused");
        assert!(error.message.contains("expires"), "{error}");
    }
}
