//! The plugin registry: validation at load, versions, atomic swap under
//! concurrent calls, rollback, persistence across restarts, and the
//! decision cache.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use switchyard::plugins::{
    Binding, ExchangeRouter, LoadOptions, Message, PluginEngine, PluginError, PluginRegistry,
    SandboxLimits, builtin_component,
};

fn rejected(registry: &PluginRegistry, bytes: &[u8]) -> String {
    match registry.load(bytes, LoadOptions::default()) {
        Err(error @ PluginError::Invalid { .. }) => error.to_string(),
        other => panic!(
            "expected an invalid-plugin error, got {:?}",
            other.map(|v| v.label().to_string())
        ),
    }
}

#[test]
fn invalid_components_are_rejected_with_the_reason() {
    let registry = common::registry();
    let before = registry.list().len();

    assert!(rejected(&registry, b"hello").contains("not a WebAssembly binary"));
    let core_module = wat::parse_str("(module)").unwrap();
    assert!(rejected(&registry, &core_module).contains("core wasm module, not a component"));
    let empty = wat::parse_str("(component)").unwrap();
    assert!(
        rejected(&registry, &empty).contains("implements none of the Switchyard plugin worlds")
    );
    let wasi =
        wat::parse_str(r#"(component (import "wasi:filesystem/types@0.2.0" (instance)))"#).unwrap();
    assert!(rejected(&registry, &wasi).contains("none of the Switchyard plugin worlds"));

    let mut truncated = builtin_component("topic").unwrap().to_vec();
    truncated.truncate(truncated.len() / 2);
    assert!(rejected(&registry, &truncated).contains("does not compile"));

    assert_eq!(registry.list().len(), before, "nothing was registered");
}

#[test]
fn versions_are_immutable_and_kinds_fixed() {
    let registry = common::registry();
    common::load_probe(&registry, "p", "1.0.0", "route-to:0", true);
    // Same version, same content: a no-op.
    common::load_probe(&registry, "p", "1.0.0", "route-to:0", true);
    let conflict = registry
        .load(
            common::PROBE,
            LoadOptions {
                name: Some("p".into()),
                config: BTreeMap::from([
                    ("version".into(), "1.0.0".into()),
                    ("mode".into(), "route-to:1".into()),
                ]),
                activate: true,
            },
        )
        .unwrap_err();
    assert!(
        conflict.to_string().contains("versions are immutable"),
        "{conflict}"
    );

    let as_filter = registry.load(
        builtin_component("idempotency").unwrap(),
        LoadOptions {
            name: Some("p".into()),
            ..LoadOptions::default()
        },
    );
    let error = as_filter.unwrap_err();
    assert!(
        error.to_string().contains("cannot be a filter plugin"),
        "{error}"
    );
}

#[test]
fn activate_and_rollback_switch_the_routing() {
    let registry = common::registry();
    common::load_probe(&registry, "canary", "1.0.0", "route-to:0", true);
    common::load_probe(&registry, "canary", "2.0.0", "route-to:1", false);
    let router = common::exchange(&registry, "canary", 2);
    let route = || {
        router
            .route(&Message::with_key("x"), &Bytes::new())
            .unwrap()
            .results[0]
            .clone()
            .unwrap()
            .to_vec()
    };

    assert_eq!(
        route(),
        vec![0],
        "loading without activate keeps the running version"
    );
    registry.activate("canary", "2.0.0").unwrap();
    assert_eq!(route(), vec![1]);
    registry.rollback("canary").unwrap();
    assert_eq!(route(), vec![0]);
    let error = registry.rollback("canary").unwrap_err();
    assert!(error.to_string().contains("no previous version"), "{error}");
    let error = registry.activate("canary", "9.9.9").unwrap_err();
    assert!(matches!(error, PluginError::NotFound { .. }), "{error}");
}

#[test]
fn swapping_versions_under_concurrent_calls_never_fails_a_call() {
    let registry = Arc::new(common::registry());
    common::load_probe(&registry, "swap", "1.0.0", "route-to:0", true);
    common::load_probe(&registry, "swap", "2.0.0", "route-to:1", false);
    let router = Arc::new(common::exchange(&registry, "swap", 2));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);

    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (router, stop, answered) = (router.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let messages: Vec<Message> = (0..10)
                    .map(|i| Message::with_key(format!("k{i}")))
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    let routed = router
                        .route_batch(&messages, &[])
                        .expect("no call fails during swaps");
                    // One version answers the whole call, and its answer is its own.
                    let target = match routed.version.version() {
                        "1.0.0" => 0,
                        "2.0.0" => 1,
                        other => panic!("unexpected version {other}"),
                    };
                    for result in &routed.results {
                        assert_eq!(result.as_deref().unwrap(), &[target]);
                    }
                    answered[target as usize].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for round in 0..50 {
        if round % 2 == 0 {
            registry.activate("swap", "2.0.0").unwrap();
        } else {
            registry.rollback("swap").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    assert!(answered[0].load(Ordering::Relaxed) > 0);
    assert!(answered[1].load(Ordering::Relaxed) > 0);
}

#[test]
fn the_registry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let db = sled::open(dir.path().join("meta")).unwrap();
        let engine =
            PluginEngine::new(SandboxLimits::default(), Some(dir.path().join("cache"))).unwrap();
        let registry = PluginRegistry::open(engine, db).unwrap();
        assert!(registry.install_builtins().is_empty());
        registry
    };
    {
        let registry = open();
        common::load_probe(&registry, "kept", "1.0.0", "route-to:0", true);
        common::load_probe(&registry, "kept", "2.0.0", "route-to:1", true);
        registry.unload("fanout").unwrap();
    }
    let registry = open();
    let slot = registry.get("kept").unwrap();
    assert_eq!(
        slot.versions(),
        vec!["1.0.0".to_string(), "2.0.0".to_string()]
    );
    assert_eq!(slot.active().version(), "2.0.0");
    assert_eq!(slot.active().config()["mode"], "route-to:1");
    registry.rollback("kept").unwrap();
    assert_eq!(registry.get("kept").unwrap().active().version(), "1.0.0");
    // Built-ins come back on every start; removed user choices stay removed.
    assert!(registry.get("fanout").is_ok());
    // Compiled components were cached on disk, keyed by engine and content.
    let cached = walk(&dir.path().join("cache"));
    assert!(
        cached
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "cwasm")),
        "{cached:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn key_only_decisions_are_cached_until_bindings_or_plugin_change() {
    let registry = common::registry();
    let router = ExchangeRouter::new(registry.get("direct").unwrap(), Vec::new()).unwrap();
    router.set_bindings(common::bindings(3));
    let route = |key: &str| {
        router
            .route(&Message::with_key(key), &Bytes::new())
            .unwrap()
            .results[0]
            .clone()
            .unwrap()
            .to_vec()
    };
    assert_eq!(route("k1"), vec![1]);
    assert_eq!(route("k1"), vec![1]);
    assert_eq!(router.cached_decisions(), 1);

    router.set_bindings(vec![Binding {
        destination: "other".into(),
        key: "k1".into(),
        arguments: Vec::new(),
    }]);
    assert_eq!(route("k1"), vec![0], "a binding change is seen at once");

    // Plugins that read more than the key are never cached.
    let headers = common::exchange(&registry, "headers", 1);
    headers
        .route(&Message::with_key("a"), &Bytes::new())
        .unwrap();
    assert_eq!(headers.cached_decisions(), 0);
}

#[test]
fn filter_state_lives_in_the_host_kv_with_ttl() {
    let registry = common::registry();
    registry
        .load(
            builtin_component("idempotency").unwrap(),
            LoadOptions {
                name: Some("dedupe".into()),
                config: BTreeMap::from([("window-ms".into(), "100".into())]),
                activate: true,
            },
        )
        .unwrap();
    let filter = switchyard::plugins::MessageFilter::new(registry.get("dedupe").unwrap()).unwrap();
    let mut message = Message::with_key("k");
    message.properties.message_id = Some("m-1".into());
    use switchyard::plugins::Verdict;
    assert_eq!(
        filter.check(&message, &Bytes::new()).unwrap(),
        Verdict::Accept
    );
    assert_eq!(
        filter.check(&message, &Bytes::new()).unwrap(),
        Verdict::Duplicate
    );
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(
        filter.check(&message, &Bytes::new()).unwrap(),
        Verdict::Accept,
        "the window expired"
    );
    let kv = registry.get("dedupe").unwrap().active();
    assert_eq!(
        kv.kv()
            .unwrap()
            .get(&switchyard::plugins::KvScope::host(), "id:m-1"),
        Some(Vec::new())
    );
}
