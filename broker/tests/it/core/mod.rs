//! Shared set-up for the broker-core tests: a `Broker` opened directly on
//! a temporary data dir (no sockets), the default administrator's rights
//! on `/`, and small helpers to declare, publish and consume.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use switchyard::broker::{
    AckMode, BindingSpec, Broker, BrokerError, BrokerOptions, Delivery, ExchangeSpec, Outcome,
    Principal, QueueSpec, Settle, Vhost,
};
use switchyard::clock::{ManualClock, system_now_ms};
use switchyard::storage::QueueStats;
use switchyard_protocol::{Field, Message, Value};

/// One compiled-plugin cache per test process: compiling the built-ins
/// again for every broker would dominate the run time.
fn plugin_cache() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// The test clock of the broker on `dir`: a broker reopened on the same
/// directory keeps its clock, so time goes on across restarts.
pub fn clock_of(dir: &Path) -> Arc<ManualClock> {
    static CLOCKS: Mutex<BTreeMap<PathBuf, Arc<ManualClock>>> = Mutex::new(BTreeMap::new());
    CLOCKS
        .lock()
        .unwrap()
        .entry(dir.to_path_buf())
        .or_insert_with(|| Arc::new(ManualClock::at(system_now_ms())))
        .clone()
}

/// The test clock `broker` runs on.
pub fn clock(broker: &Broker) -> Arc<ManualClock> {
    clock_of(broker.data_dir())
}

pub fn options(dir: &Path) -> BrokerOptions {
    let mut options = BrokerOptions::new(dir);
    // Time moves only when a test moves it: no sleeping, no races with
    // the millisecond boundary.
    options.clock = clock_of(dir);
    options.plugin_cache = plugin_cache().to_path_buf();
    // Checkpoints and flushes only when the store must (open, clean close,
    // a delivery lease): a crash then loses exactly what happened since
    // the last of those, deterministically.
    options.store.checkpoint_interval = std::time::Duration::from_secs(3600);
    options.store.flush_interval = std::time::Duration::from_secs(3600);
    options.store.segment_size = 1 << 20;
    options
}

pub fn open(dir: &Path) -> Broker {
    Broker::open(options(dir)).expect("opening the broker")
}

/// `guest` (administrator) on vhost `/`.
pub fn guest(broker: &Broker) -> Principal {
    let record = broker.users().get("guest").unwrap().unwrap();
    broker.users().principal(&record, "/").unwrap()
}

pub fn vhost(broker: &Broker) -> Arc<Vhost> {
    broker.vhost("/").unwrap()
}

pub fn text(value: &str) -> Value {
    Value::Text(value.into())
}

pub fn declare_queue(broker: &Broker, name: &str, arguments: &[(&str, &str)]) {
    let principal = guest(broker);
    broker
        .declare_queue(
            &principal,
            0,
            QueueSpec {
                name,
                durable: true,
                exclusive: false,
                auto_delete: false,
                passive: false,
                arguments: arguments
                    .iter()
                    .map(|(k, v)| Field::new(*k, text(v)))
                    .collect(),
            },
        )
        .unwrap();
}

/// Declares a durable exchange of `kind` with text arguments.
pub fn declare_exchange(
    broker: &Broker,
    name: &str,
    kind: &str,
    arguments: &[(&str, &str)],
) -> Result<(), BrokerError> {
    broker.declare_exchange(
        &guest(broker),
        ExchangeSpec {
            name,
            kind,
            durable: true,
            auto_delete: false,
            passive: false,
            arguments: arguments
                .iter()
                .map(|(k, v)| Field::new(*k, text(v)))
                .collect(),
        },
    )
}

pub fn declare_fanout(broker: &Broker, exchange: &str, queue: &str) {
    declare_exchange(broker, exchange, "fanout", &[]).unwrap();
    bind(broker, &guest(broker), queue, exchange);
}

/// Binds `queue` to `exchange` with an empty key, as `principal`.
pub fn bind(broker: &Broker, principal: &Principal, queue: &str, exchange: &str) {
    broker
        .bind(
            principal,
            0,
            &BindingSpec {
                queue,
                exchange,
                key: "",
                arguments: &[],
            },
        )
        .unwrap();
}

/// Publishes `body` to `queue` through the default exchange.
pub fn publish(broker: &Broker, queue: &str, body: &str) -> Outcome {
    publish_message(broker, Message::new(queue, body.to_string()).persistent())
}

pub fn publish_message(broker: &Broker, message: Message) -> Outcome {
    let published = broker.publish(&guest(broker), "", std::slice::from_ref(&message));
    assert_eq!(published.stopped, None, "guest may publish anywhere");
    published.outcomes.into_iter().next().unwrap()
}

/// Publishes a message whose own TTL (1 ms) has passed when this returns:
/// the broker's clock is moved past it.
pub fn publish_expired(broker: &Broker, queue: &str, body: &str) -> Outcome {
    let mut message = Message::new(queue, body.to_string()).persistent();
    message.properties.expiration = Some(1);
    let outcome = publish_message(broker, message);
    clock(broker).advance(1);
    outcome
}

pub fn deliver(broker: &Broker, queue: &str) -> Option<Delivery> {
    let vhost = vhost(broker);
    let q = vhost.queue(queue).unwrap();
    broker.take_delivery(&vhost, &q, AckMode::Manual).unwrap()
}

pub fn settle(broker: &Broker, queue: &str, offset: u64, how: Settle) {
    let vhost = vhost(broker);
    let q = vhost.queue(queue).unwrap();
    broker.settle(&vhost, &q, &[offset], how).unwrap();
}

/// A consumer went away holding `offsets`.
pub fn release(broker: &Broker, queue: &str, offsets: &[u64]) {
    let q = vhost(broker).queue(queue).unwrap();
    broker.release(&q, offsets);
}

pub fn stats(broker: &Broker, queue: &str) -> QueueStats {
    let q = vhost(broker).queue(queue).unwrap();
    broker.queue_stats(&q).unwrap()
}

pub fn body(delivered: &Delivery) -> String {
    String::from_utf8(delivered.message.body.to_vec()).unwrap()
}

/// Takes every deliverable message off `queue`, acking each; their bodies.
pub fn drain(broker: &Broker, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(d) = deliver(broker, queue) {
        bodies.push(body(&d));
        settle(broker, queue, d.offset, Settle::Ack);
    }
    bodies
}
