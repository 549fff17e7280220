//! Dead-letter policies in the broker core, on the test clock: a queue's
//! `dead-letter-policy` decides every death, a batch of deaths in one call;
//! `retry` comes back after its delay (the delay scheduler); a policy that
//! fails, and a decision that cannot be carried out (a missing exchange, a
//! republish that routes nowhere), park the message in
//! the queue's `dead-letter-fallback` or the vhost's parking queue; a hot
//! swap changes later decisions only.

use crate::core;

use std::collections::BTreeMap;

use core::*;
use switchyard::broker::{Broker, PARKING_QUEUE, QueueSpec, Settle};
use switchyard::plugins::LoadOptions;
use switchyard_protocol::Field;

const PROBE: &[u8] = include_bytes!("../../../plugins/dist/testing/dead-letter-probe.wasm");

/// Loads the test policy as `name`, answering as `mode` says (see
/// plugins/testing/dead-letter-probe).
fn load_policy(broker: &Broker, name: &str, mode: &str) {
    load_as(broker, PROBE, name, mode);
}

fn load_as(broker: &Broker, component: &[u8], name: &str, mode: &str) {
    broker
        .registry()
        .load(
            component,
            LoadOptions {
                name: Some(name.into()),
                config: BTreeMap::from([("mode".to_string(), mode.to_string())]),
                activate: true,
            },
        )
        .unwrap();
}

/// Publishes `n` messages to `queue`, takes them all, and rejects them in
/// one `multiple` settle.
fn reject_all(broker: &Broker, queue: &str, n: usize) {
    for i in 0..n {
        publish(broker, queue, &format!("m{i}"));
    }
    let offsets: Vec<u64> = (0..n)
        .map(|_| deliver(broker, queue).unwrap().offset)
        .collect();
    let vhost = vhost(broker);
    let q = vhost.queue(queue).unwrap();
    broker.settle(&vhost, &q, &offsets, Settle::Reject).unwrap();
}

fn calls(broker: &Broker, plugin: &str) -> u64 {
    broker
        .registry()
        .get(plugin)
        .unwrap()
        .active()
        .stats()
        .calls
}

#[test]
fn a_user_policy_decides_a_batch_of_deaths_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    load_policy(&broker, "to-dlq", "park:work.dlq");
    declare_queue(&broker, "work", &[("dead-letter-policy", "to-dlq")]);
    let before = calls(&broker, "to-dlq");
    reject_all(&broker, "work", 5);
    assert_eq!(
        calls(&broker, "to-dlq") - before,
        1,
        "one call for the batch"
    );
    assert_eq!(
        drain(&broker, "work.dlq"),
        ["m0", "m1", "m2", "m3", "m4"],
        "parked in the queue the policy named, created for it"
    );
}

#[test]
fn a_failing_policy_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    load_policy(&broker, "trapper", "trap");
    load_policy(&broker, "short", "short-batch");
    declare_queue(&broker, "mine", &[]);
    declare_queue(&broker, "a", &[("dead-letter-policy", "trapper")]);
    declare_queue(
        &broker,
        "b",
        &[
            ("dead-letter-policy", "short"),
            ("dead-letter-fallback", "mine"),
        ],
    );
    // A republish to an exchange that does not exist (the built-in policy).
    declare_queue(&broker, "c", &[("dead-letter-exchange", "nowhere")]);
    // A republish that routes to no queue (RabbitMQ would drop it).
    declare_queue(
        &broker,
        "d",
        &[
            ("dead-letter-exchange", ""),
            ("dead-letter-routing-key", "no-such-queue"),
        ],
    );
    reject_all(&broker, "a", 3);
    reject_all(&broker, "b", 2);
    reject_all(&broker, "c", 1);
    reject_all(&broker, "d", 1);
    assert_eq!(
        drain(&broker, PARKING_QUEUE),
        ["m0", "m1", "m2", "m0", "m0"]
    );
    assert_eq!(
        drain(&broker, "mine"),
        ["m0", "m1"],
        "the queue's own fallback first"
    );
    // The broker goes on serving the queues.
    publish(&broker, "a", "after");
    assert_eq!(drain(&broker, "a"), ["after"]);
}

#[test]
fn retry_comes_back_after_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    declare_queue(
        &broker,
        "work",
        &[
            ("dead-letter-exchange", ""),
            ("x-dead-letter-strategy", "retry"),
            ("x-retry-initial-delay-ms", "1000"),
        ],
    );
    publish(&broker, "work", "job");
    let d = deliver(&broker, "work").unwrap();
    settle(&broker, "work", d.offset, Settle::Reject);
    assert!(deliver(&broker, "work").is_none(), "not before its delay");
    clock(&broker).advance(999);
    assert_eq!(broker.promote_due(), 0);
    clock(&broker).advance(1);
    assert_eq!(broker.promote_due(), 1);
    let again = deliver(&broker, "work").expect("back after 1 s");
    assert_eq!(body(&again), "job");
}

#[test]
fn a_hot_swap_changes_later_decisions_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    load_policy(&broker, "router", "park:first");
    declare_queue(
        &broker,
        "work",
        &[
            ("dead-letter-policy", "router"),
            ("dead-letter-exchange", ""),
            ("dead-letter-routing-key", "second"),
        ],
    );
    declare_queue(&broker, "second", &[]);
    reject_all(&broker, "work", 2);
    // A new version under the same name: the built-in policy's code,
    // which republishes to the queue's dead-letter exchange.
    let builtin = switchyard::plugins::builtin_component("dead-letter").unwrap();
    load_as(&broker, builtin, "router", "");
    reject_all(&broker, "work", 1);
    assert_eq!(drain(&broker, "first"), ["m0", "m1"]);
    assert_eq!(drain(&broker, "second"), ["m0"]);
}

#[test]
fn declaring_with_a_policy_that_is_not_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    for (policy, expected) in [("missing", "missing"), ("topic", "dead-letter")] {
        let error = broker
            .declare_queue(
                &guest(&broker),
                0,
                QueueSpec {
                    name: "q",
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    passive: false,
                    arguments: vec![Field::new("dead-letter-policy", text(policy))],
                },
            )
            .unwrap_err();
        assert!(error.to_string().contains("dead-letter-policy"), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
}
