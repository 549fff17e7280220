//! Plugin state (issue 12, items 2 and 3): kv is scoped per vhost and
//! exchange, lives in a database of its own, has quotas, and expires in the
//! background.

use crate::common;
use crate::core;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard::broker::{Broker, BrokerOptions, ExchangeSpec, Outcome, QueueSpec};
use switchyard::plugins::{
    KvLimits, KvScope, LoadOptions, Message, MessageFilter, PluginError, PluginRegistry,
    SandboxLimits, Verdict, builtin_component,
};
use switchyard_protocol::{Field, Value};

/// Declares `exchange` (fanout, filtered by `filter`) bound to `queue` in
/// `vhost`, as guest (who creates the vhost if needed).
fn filtered_exchange(broker: &Broker, vhost: &str, exchange: &str, queue: &str, filter: &str) {
    let guest_record = broker.users().get("guest").unwrap().unwrap();
    if broker.vhost(vhost).is_err() {
        let root = broker.users().principal(&guest_record, "/").unwrap();
        broker.add_vhost(&root, vhost).unwrap();
    }
    let guest_record = broker.users().get("guest").unwrap().unwrap();
    let principal = broker.users().principal(&guest_record, vhost).unwrap();
    broker
        .declare_exchange(
            &principal,
            ExchangeSpec {
                name: exchange,
                kind: "fanout",
                durable: true,
                auto_delete: false,
                passive: false,
                arguments: vec![Field::new("filter", Value::Text(filter.into()))],
            },
        )
        .unwrap();
    broker
        .declare_queue(
            &principal,
            0,
            QueueSpec {
                name: queue,
                durable: true,
                exclusive: false,
                auto_delete: false,
                passive: false,
                arguments: Vec::new(),
            },
        )
        .unwrap();
    core::bind(broker, &principal, queue, exchange);
}

fn publish_id(broker: &Broker, vhost: &str, exchange: &str, id: &str) -> Outcome {
    let mut message = switchyard_protocol::Message::new("", format!("body of {id}"));
    message.properties.message_id = Some(id.into());
    let guest_record = broker.users().get("guest").unwrap().unwrap();
    let principal = broker.users().principal(&guest_record, vhost).unwrap();
    broker
        .publish(&principal, exchange, &[message])
        .outcomes
        .pop()
        .unwrap()
}

#[test]
fn tenants_do_not_share_idempotency_state() {
    let dir = tempfile::tempdir().unwrap();
    let broker = core::open(dir.path());
    filtered_exchange(&broker, "tenant-a", "orders", "qa", "idempotency");
    filtered_exchange(&broker, "tenant-b", "orders", "qb", "idempotency");
    filtered_exchange(&broker, "tenant-b", "refunds", "qr", "idempotency");

    let stored = |o: &Outcome| matches!(o, Outcome::Stored { .. });
    assert!(stored(&publish_id(
        &broker,
        "tenant-a",
        "orders",
        "order-1001"
    )));
    assert!(
        stored(&publish_id(&broker, "tenant-b", "orders", "order-1001")),
        "tenant B's order-1001 is not tenant A's"
    );
    assert!(
        stored(&publish_id(&broker, "tenant-b", "refunds", "order-1001")),
        "each exchange its own filter state"
    );
    assert_eq!(
        publish_id(&broker, "tenant-b", "orders", "order-1001"),
        Outcome::Duplicate,
        "a duplicate in the same exchange is still one"
    );
}

/// The idempotency filter's keys held by `broker`.
fn idempotency_keys(broker: &Broker) -> u64 {
    let plugins = broker.registry().list();
    let idempotency = plugins.iter().find(|p| p.name == "idempotency").unwrap();
    idempotency.kv.keys
}

#[test]
fn deleting_an_exchange_or_vhost_drops_its_plugin_state() {
    let dir = tempfile::tempdir().unwrap();
    let broker = core::open(dir.path());
    filtered_exchange(&broker, "shop", "orders", "q", "idempotency");
    filtered_exchange(&broker, "shop", "refunds", "r", "idempotency");
    let stored = |o: &Outcome| matches!(o, Outcome::Stored { .. });
    assert!(stored(&publish_id(&broker, "shop", "orders", "o-1")));
    assert!(stored(&publish_id(&broker, "shop", "refunds", "o-1")));
    assert_eq!(idempotency_keys(&broker), 2);

    let guest_record = broker.users().get("guest").unwrap().unwrap();
    let shop = broker.users().principal(&guest_record, "shop").unwrap();
    broker.delete_exchange(&shop, "orders", false).unwrap();
    assert_eq!(
        idempotency_keys(&broker),
        1,
        "the deleted exchange's key went"
    );
    // A new exchange of the same name starts with no memory of the old one.
    filtered_exchange(&broker, "shop", "orders", "q", "idempotency");
    assert!(stored(&publish_id(&broker, "shop", "orders", "o-1")));

    let root = broker.users().principal(&guest_record, "/").unwrap();
    broker.delete_vhost(&root, "shop").unwrap();
    assert_eq!(
        idempotency_keys(&broker),
        0,
        "the vhost's state went with it"
    );
}

#[test]
fn plugin_state_is_not_in_the_metadata_database() {
    let dir = tempfile::tempdir().unwrap();
    let broker = core::open(dir.path());
    filtered_exchange(&broker, "/", "orders", "q", "idempotency");
    assert!(matches!(
        publish_id(&broker, "/", "orders", "m-1"),
        Outcome::Stored { .. }
    ));
    let usage = broker
        .registry()
        .list()
        .into_iter()
        .find(|p| p.name == "idempotency")
        .unwrap()
        .kv;
    assert_eq!((usage.keys, usage.scopes), (1, 1));
    drop(broker);
    let metadata = sled::open(dir.path().join("store/meta")).unwrap();
    let metadata_trees: Vec<String> = metadata
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        !metadata_trees.iter().any(|n| n.starts_with("plugin-kv")),
        "{metadata_trees:?}"
    );
    assert!(dir.path().join("plugin-kv").is_dir());
}

#[test]
fn a_full_scope_refuses_writes_with_a_clear_error_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut options: BrokerOptions = core::options(dir.path());
    options.sandbox.kv.max_keys = 20;
    let broker = Broker::open(options).unwrap();
    filtered_exchange(&broker, "/", "greedy", "q1", "idempotency");
    filtered_exchange(&broker, "/", "modest", "q2", "idempotency");

    let outcomes: Vec<Outcome> = (0..30)
        .map(|i| publish_id(&broker, "/", "greedy", &format!("id-{i}")))
        .collect();
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored { .. }))
        .count();
    assert_eq!(stored, 20, "{outcomes:?}");
    let Outcome::Refused(error) = &outcomes[25] else {
        panic!("{:?}", outcomes[25]);
    };
    let text = error.to_string();
    assert!(
        text.contains("kv write refused") && text.contains("limit 20") && text.contains("greedy"),
        "{text}"
    );
    // The other exchange has its own quota, and the plugin is healthy.
    assert!(matches!(
        publish_id(&broker, "/", "modest", "id-1"),
        Outcome::Stored { .. }
    ));
    let summary = broker
        .registry()
        .list()
        .into_iter()
        .find(|p| p.name == "idempotency")
        .unwrap();
    assert!(!summary.quarantined);
    assert_eq!(summary.kv.refused_writes, 10);
    assert_eq!(summary.kv.keys, 21);
}

fn dedupe_registry(limits: KvLimits, window_ms: u64) -> PluginRegistry {
    let registry = common::registry_with(SandboxLimits {
        kv: limits,
        ..SandboxLimits::default()
    });
    registry
        .load(
            builtin_component("idempotency").unwrap(),
            LoadOptions {
                name: Some("dedupe".into()),
                config: BTreeMap::from([("window-ms".into(), window_ms.to_string())]),
                activate: true,
            },
        )
        .unwrap();
    registry
}

fn with_id(id: &str) -> Message {
    let mut message = Message::with_key("k");
    message.properties.message_id = Some(id.into());
    message
}

#[test]
fn expired_entries_are_removed_in_the_background() {
    let registry = dedupe_registry(
        KvLimits {
            sweep_interval: Duration::from_millis(20),
            ..KvLimits::default()
        },
        50,
    );
    let filter = MessageFilter::new(registry.get("dedupe").unwrap())
        .unwrap()
        .with_kv_scope(KvScope::vhost("v"));
    for i in 0..100 {
        let verdict = filter.check(&with_id(&format!("m-{i}")), &Bytes::new());
        assert_eq!(verdict.unwrap(), Verdict::Accept);
    }
    let kv = registry.kv().plugin("dedupe").unwrap();
    assert_eq!(kv.usage().keys, 100);
    // Nobody reads the keys again: only the sweeper can remove them.
    let started = Instant::now();
    while kv.usage().keys > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "expired entries still held: {:?}",
            kv.usage()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(kv.usage().bytes, 0);
}

#[test]
fn byte_quotas_refuse_growth_but_not_shrinking() {
    let registry = dedupe_registry(
        KvLimits {
            max_bytes: 2_000,
            ..KvLimits::default()
        },
        60_000,
    );
    let kv = registry.kv().plugin("dedupe").unwrap();
    let scope = KvScope::exchange("v", "x");
    kv.set(&scope, "a", &[1; 1500], None).unwrap();
    let refused = kv.set(&scope, "b", &[1; 600], None).unwrap_err();
    assert!(refused.reason.contains("limit 2000"), "{refused}");
    kv.set(&scope, "a", &[1; 10], None).unwrap();
    kv.set(&scope, "b", &[1; 600], None).unwrap();
    // Another scope of the same plugin has its own quota.
    kv.set(&KvScope::exchange("v", "y"), "a", &[1; 1500], None)
        .unwrap();
    assert!(kv.set(&scope, "c", &[1; 64 << 10 | 1], None).is_err());
    assert_eq!(kv.usage().refused_writes, 2);
    // A quota error is not a plugin fault.
    let quota = PluginError::KvRefused {
        plugin: "p@1".into(),
        scope: scope.to_string(),
        reason: refused.reason,
    };
    assert!(!quota.is_fault());
}

/// Overwrites `keys` keys with 64 KiB values `rounds` times; the first
/// refusal, if any.
fn churn(kv: &switchyard::plugins::PluginKv, keys: usize, rounds: usize) -> Option<String> {
    let scope = KvScope::exchange("v", "x");
    for round in 0..rounds {
        for key in 0..keys {
            let value = vec![round as u8; 64 << 10];
            if let Err(refused) = kv.set(&scope, &format!("k{key}"), &value, None) {
                return Some(refused.reason);
            }
        }
    }
    None
}

#[test]
fn the_kv_databases_files_are_capped_on_disk() {
    use switchyard::plugins::KvStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin-kv");
    let limits = KvLimits {
        max_disk_bytes: 1 << 20,
        ..KvLimits::default()
    };
    {
        let store = KvStore::open(&path, limits.clone()).unwrap();
        let kv = store.plugin("p").unwrap();
        // 2 MiB of data, overwritten: the logical quotas never object;
        // the files' cap does.
        let refused = churn(&kv, 32, 100).expect("the files' growth was refused");
        assert!(refused.contains("sandbox.kv.max_disk_bytes"), "{refused}");
        // Shrinking always works.
        kv.set(&KvScope::exchange("v", "x"), "k0", b"small", None)
            .unwrap();
    }
    let held = dir_bytes(&path);
    assert!(held < 64 << 20, "{held} bytes on disk");
    // What was taken survives a restart.
    let store = KvStore::open(&path, limits).unwrap();
    let kv = store.plugin("p").unwrap();
    let scope = KvScope::exchange("v", "x");
    assert_eq!(kv.get(&scope, "k0").as_deref(), Some(&b"small"[..]));
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
