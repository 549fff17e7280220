//! Loading plugins at start: instantiating and describing a plugin is held
//! to the generous load limits, not to the per-message call deadline, so a
//! busy machine cannot stop the broker from starting; and a built-in that
//! cannot load at all leaves the broker serving everything else.

use crate::common;
use crate::core;

use std::time::Duration;

use core::{declare_exchange, declare_queue, publish, stats};
use switchyard::broker::{Broker, BrokerOptions, Outcome};
use switchyard::plugins::{BUILTIN_PLUGINS, SandboxLimits};

/// A call deadline far below what instantiating a component costs: any
/// epoch tick during a load would have interrupted it.
fn tiny_call_deadline() -> SandboxLimits {
    SandboxLimits {
        deadline: Duration::from_nanos(1),
        ..SandboxLimits::default()
    }
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
    declare_exchange(&broker, "events", "topic", &[]).expect("topic is available");
    declare_queue(&broker, "inbox", &[]);
    assert!(matches!(
        publish(&broker, "inbox", "hello"),
        Outcome::Stored { .. }
    ));
    assert_eq!(stats(&broker, "inbox").ready, 1);
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

    declare_queue(&broker, "inbox", &[]);
    assert!(matches!(
        publish(&broker, "inbox", "hello"),
        Outcome::Stored { .. }
    ));
    assert_eq!(
        stats(&broker, "inbox").ready,
        1,
        "the default exchange routes"
    );

    let refused = declare_exchange(&broker, "events", "topic", &[])
        .unwrap_err()
        .to_string();
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
