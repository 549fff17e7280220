//! Loading plugins at start: instantiating and describing a plugin is held
//! to the generous load limits, not to the per-message call deadline, so a
//! busy machine cannot stop the broker from starting; and a built-in that
//! cannot load at all leaves the broker serving everything else.

mod common;

use std::time::Duration;

use switchyard::broker::{Broker, BrokerOptions, ExchangeSpec, Outcome, Principal, QueueSpec};
use switchyard::plugins::{BUILTIN_PLUGINS, SandboxLimits};
use switchyard_protocol::Message;

/// A call deadline far below what instantiating a component costs: any
/// epoch tick during a load would have interrupted it.
fn tiny_call_deadline() -> SandboxLimits {
    SandboxLimits {
        deadline: Duration::from_nanos(1),
        ..SandboxLimits::default()
    }
}

fn guest(broker: &Broker) -> Principal {
    let record = broker.users().get("guest").unwrap().unwrap();
    broker.users().principal(&record, "/").unwrap()
}

fn declare_queue(broker: &Broker, name: &str) {
    broker
        .declare_queue(
            &guest(broker),
            0,
            QueueSpec {
                name,
                durable: false,
                exclusive: false,
                auto_delete: false,
                passive: false,
                arguments: vec![],
            },
        )
        .unwrap();
}

fn declare_exchange(broker: &Broker, name: &str, kind: &str) -> Result<(), String> {
    broker
        .declare_exchange(
            &guest(broker),
            ExchangeSpec {
                name,
                kind,
                durable: true,
                auto_delete: false,
                passive: false,
                arguments: vec![],
            },
        )
        .map_err(|e| e.to_string())
}

fn publish_to_queue(broker: &Broker, queue: &str) -> Outcome {
    broker
        .publish(
            &guest(broker),
            "",
            &[Message::new(queue, "hello".to_string())],
        )
        .outcomes
        .pop()
        .unwrap()
}

fn ready(broker: &Broker, queue: &str) -> u64 {
    let q = broker.vhost("/").unwrap().queue(queue).unwrap();
    broker.store().stats(q.id).unwrap().ready
}

#[test]
fn every_builtin_loads_whatever_the_call_deadline() {
    // Several rounds: each load is a fresh instantiate + describe.
    for _ in 0..3 {
        let registry = common::registry_with(tiny_call_deadline());
        let loaded: Vec<String> = registry.list().into_iter().map(|p| p.name).collect();
        for (name, _) in BUILTIN_PLUGINS {
            assert!(
                loaded.iter().any(|l| l == name),
                "{name} loaded: {loaded:?}"
            );
        }
    }
}

#[test]
fn a_broker_with_a_tiny_call_deadline_starts_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = BrokerOptions::new(dir.path());
    options.sandbox = tiny_call_deadline();
    let broker = Broker::open(options).expect("the broker starts");
    declare_exchange(&broker, "events", "topic").expect("topic is available");
    declare_queue(&broker, "inbox");
    assert!(matches!(
        publish_to_queue(&broker, "inbox"),
        Outcome::Stored { .. }
    ));
    assert_eq!(ready(&broker, "inbox"), 1);
}

#[test]
fn a_builtin_that_cannot_load_does_not_stop_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = BrokerOptions::new(dir.path());
    // No built-in fits in 64 KiB of linear memory: none can instantiate.
    options.sandbox = SandboxLimits {
        memory_bytes: 64 << 10,
        ..SandboxLimits::default()
    };
    let broker = Broker::open(options).expect("the broker starts without its plugins");

    declare_queue(&broker, "inbox");
    assert!(matches!(
        publish_to_queue(&broker, "inbox"),
        Outcome::Stored { .. }
    ));
    assert_eq!(ready(&broker, "inbox"), 1, "the default exchange routes");

    let refused = declare_exchange(&broker, "events", "topic").unwrap_err();
    assert!(refused.contains("topic"), "names the plugin: {refused}");
    assert!(
        refused.contains("failed to load"),
        "says why it is unavailable: {refused}"
    );
    assert!(
        refused.contains("memory"),
        "carries the load error: {refused}"
    );
}
