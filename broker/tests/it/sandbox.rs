//! Hostile plugins: each misbehaviour fails its call with a typed error
//! naming the plugin and the cause, the broken instance is replaced, and the
//! host keeps serving the next call.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard::plugins::{KvScope, Message, PluginError, PluginRegistry, SandboxLimits};

/// Generous deadline: only the infinite-loop test is about time, and on a
/// loaded machine a memory bomb's page faults take real CPU time.
fn limits() -> SandboxLimits {
    SandboxLimits {
        deadline: Duration::from_secs(2),
        memory_bytes: 16 << 20,
        // Every hostile call below is one failure; keep them out of quarantine
        // unless a test is about quarantine.
        quarantine_after: 1000,
        ..SandboxLimits::default()
    }
}

fn route_once(registry: &PluginRegistry, plugin: &str) -> Result<Vec<u32>, PluginError> {
    let router = common::exchange(registry, plugin, 3);
    let routed = router.route(&Message::with_key("k1"), &Bytes::new())?;
    Ok(routed.results[0].clone().expect("routed").to_vec())
}

/// The failure repeats on a fresh instance (it was replaced, not wedged), and
/// healthy plugins keep answering in between.
fn assert_contained(registry: &PluginRegistry, plugin: &str, check: impl Fn(&PluginError)) {
    for _ in 0..2 {
        let error = route_once(registry, plugin).unwrap_err();
        check(&error);
        assert!(
            error.to_string().contains(&format!("{plugin}@")),
            "error names the plugin: {error}"
        );
        assert_eq!(
            route_once(registry, "direct").unwrap(),
            vec![1],
            "host still serves"
        );
    }
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let registry = common::registry_with(SandboxLimits {
        deadline: Duration::from_millis(20),
        ..limits()
    });
    common::load_probe(&registry, "spinner", "1.0.0", "spin", true);
    let started = Instant::now();
    assert_contained(&registry, "spinner", |e| {
        assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("deadline"), "{e}");
    });
    // Two spins of a 20 ms deadline each: interrupted, not run to completion.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let registry = common::registry_with(limits());
    common::load_probe(&registry, "bomb", "1.0.0", "membomb", true);
    assert_contained(&registry, "bomb", |e| {
        assert!(
            matches!(e, PluginError::MemoryLimit { limit_bytes, .. } if *limit_bytes == 16 << 20),
            "{e}"
        );
    });
}

#[test]
fn a_trap_is_a_typed_error_carrying_the_panic_message() {
    let registry = common::registry_with(limits());
    common::load_probe(&registry, "trapper", "1.0.0", "trap", true);
    assert_contained(&registry, "trapper", |e| {
        assert!(matches!(e, PluginError::Trap { .. }), "{e}");
        assert!(e.to_string().contains("probe asked to trap"), "{e}");
    });
}

#[test]
fn an_oversized_result_is_rejected() {
    let registry = common::registry_with(limits());
    common::load_probe(&registry, "flood", "1.0.0", "oversized", true);
    assert_contained(&registry, "flood", |e| {
        assert!(matches!(e, PluginError::InvalidResult { .. }), "{e}");
        assert!(e.to_string().contains("binding indices"), "{e}");
    });
}

#[test]
fn an_index_past_the_last_binding_is_rejected() {
    let registry = common::registry_with(limits());
    common::load_probe(&registry, "liar", "1.0.0", "bad-index", true);
    assert_contained(&registry, "liar", |e| {
        assert!(e.to_string().contains("out of range"), "{e}");
    });
}

#[test]
fn fuel_limits_instructions_when_enabled() {
    let registry = common::registry_with(SandboxLimits {
        fuel: Some(5_000_000),
        deadline: Duration::from_secs(30),
        ..limits()
    });
    common::load_probe(&registry, "spinner", "1.0.0", "spin", true);
    assert_contained(&registry, "spinner", |e| {
        assert!(matches!(e, PluginError::FuelExhausted { .. }), "{e}");
    });
}

#[test]
fn a_plugin_that_keeps_failing_is_quarantined_then_retried() {
    let registry = common::registry_with(SandboxLimits {
        quarantine_after: 3,
        quarantine_initial: Duration::from_millis(200),
        ..limits()
    });
    common::load_probe(&registry, "trapper", "1.0.0", "trap", true);
    for _ in 0..3 {
        assert!(matches!(
            route_once(&registry, "trapper"),
            Err(PluginError::Trap { .. })
        ));
    }
    let error = route_once(&registry, "trapper").unwrap_err();
    assert!(
        matches!(error, PluginError::Quarantined { failures: 3, .. }),
        "{error}"
    );
    assert!(registry.get("trapper").unwrap().active().is_quarantined());
    std::thread::sleep(Duration::from_millis(250));
    // Reloaded after the backoff: the call runs again (and traps again).
    assert!(matches!(
        route_once(&registry, "trapper"),
        Err(PluginError::Trap { .. })
    ));
    // The failure counters are visible to operators.
    let summary = registry
        .list()
        .into_iter()
        .find(|p| p.name == "trapper")
        .unwrap();
    assert_eq!(summary.stats.errors, summary.stats.calls);
    assert!(summary.stats.errors >= 4);
}

#[test]
fn a_healthy_version_recovers_a_failing_plugin() {
    let registry = common::registry_with(limits());
    common::load_probe(&registry, "flaky", "1.0.0", "trap", true);
    assert!(route_once(&registry, "flaky").is_err());
    common::load_probe(&registry, "flaky", "1.0.1", "route-to:2", true);
    assert_eq!(route_once(&registry, "flaky").unwrap(), vec![2]);
}

#[test]
fn a_loop_after_a_refused_allocation_is_reported_as_a_timeout() {
    let registry = common::registry_with(SandboxLimits {
        deadline: Duration::from_millis(20),
        ..limits()
    });
    common::load_probe(&registry, "hoarder", "1.0.0", "grow-then-spin", true);
    // The cause is the loop: the refused growth did not end the call.
    assert_contained(&registry, "hoarder", |e| {
        assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    });
}

fn load_with(
    registry: &PluginRegistry,
    name: &str,
    mode: &str,
    sandbox: &[(&str, &str)],
) -> Result<(), PluginError> {
    let mut config = std::collections::BTreeMap::from([
        ("version".to_string(), "1.0.0".to_string()),
        ("mode".to_string(), mode.to_string()),
    ]);
    config.extend(sandbox.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    registry
        .load(
            common::PROBE,
            switchyard::plugins::LoadOptions {
                name: Some(name.into()),
                config,
                activate: true,
            },
        )
        .map(drop)
}

#[test]
fn a_plugin_gets_its_own_limits_within_the_operators_maxima() {
    let registry = common::registry_with(SandboxLimits {
        deadline: Duration::from_millis(20),
        max_deadline: Duration::from_millis(200),
        ..limits()
    });
    load_with(
        &registry,
        "patient",
        "spin",
        &[
            ("sandbox.deadline-ms", "60"),
            ("sandbox.memory-bytes", "4194304"),
        ],
    )
    .unwrap();
    assert_contained(&registry, "patient", |e| {
        assert!(
            matches!(e, PluginError::Timeout { deadline, .. } if *deadline == Duration::from_millis(60)),
            "{e}"
        );
    });
    let listed = registry
        .list()
        .into_iter()
        .find(|p| p.name == "patient")
        .unwrap();
    assert_eq!(
        (
            listed.limits.deadline_ms,
            listed.limits.memory_bytes,
            listed.limits.fuel
        ),
        (60, 4 << 20, None)
    );

    let error = load_with(
        &registry,
        "greedy",
        "spin",
        &[("sandbox.deadline-ms", "5000")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("sandbox.deadline-ms = 5000 is above the operator's maximum of 200 ms"),
        "{error}"
    );
    let error = load_with(&registry, "typo", "spin", &[("sandbox.memory", "1")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("unknown sandbox setting sandbox.memory"),
        "{error}"
    );
}

#[test]
fn sandbox_limits_come_from_the_config_file_and_bad_ones_are_named() {
    use switchyard::server::ServerConfig;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).unwrap();
        ServerConfig::load(&path).and_then(|config| config.validate().map(|()| config))
    };
    let config = load(
        "[sandbox]\ndeadline = 25\nmax_deadline = 500\nlog_lines_per_sec = 10\n\
         [sandbox.kv]\nmax_keys = 1000\nsweep_interval = 250\n",
    )
    .unwrap();
    let options = config.broker_options();
    assert_eq!(options.sandbox.deadline, Duration::from_millis(25));
    assert_eq!(options.sandbox.kv.max_keys, 1000);
    assert_eq!(
        options.sandbox.kv.sweep_interval,
        Duration::from_millis(250)
    );

    for (text, says) in [
        ("[sandbox]\ndeadline = 2000\n", "max_deadline"),
        (
            "[sandbox]\nmemory_bytes = 1000\n",
            "sandbox.memory_bytes must be at least 1 MiB",
        ),
        (
            "[sandbox]\nquarantine_failure_rate = 2.0\n",
            "quarantine_failure_rate",
        ),
        ("[sandbox.kv]\nmax_keys = 0\n", "max_keys"),
        ("[sandbox]\ndeadlin = 5\n", "unknown field `deadlin`"),
    ] {
        let error = load(text).unwrap_err();
        assert!(error.contains(says), "{text}: {error}");
    }
}

#[test]
fn a_log_flood_is_cut_to_the_rate_and_counted() {
    let registry = common::registry_with(SandboxLimits {
        log_burst: 20,
        log_lines_per_sec: 10,
        ..limits()
    });
    common::load_probe(&registry, "chatty", "1.0.0", "log-flood", true);
    let router = common::exchange(&registry, "chatty", 1);
    let started = Instant::now();
    for _ in 0..50 {
        router
            .route(&Message::with_key("k"), &Bytes::new())
            .unwrap();
    }
    let seconds = started.elapsed().as_secs() + 1;
    let dropped = registry
        .get("chatty")
        .unwrap()
        .active()
        .stats()
        .log_lines_dropped;
    let written = 50 * 100 - dropped;
    assert!(written <= 20 + 10 * seconds, "{written} lines written");
}

#[test]
fn a_plugin_failing_only_on_poison_keys_is_quarantined_by_rate() {
    let registry = common::registry_with(SandboxLimits {
        deadline: Duration::from_millis(10),
        quarantine_after: 3,
        quarantine_initial: Duration::from_secs(60),
        ..limits()
    });
    common::load_probe(&registry, "picky", "1.0.0", "poison", true);
    let router = common::exchange(&registry, "picky", 1);
    let mut quarantined = false;
    for round in 0..40 {
        let key = if round % 4 == 3 { "poison-7" } else { "k" };
        match router.route(&Message::with_key(key), &Bytes::new()) {
            Err(PluginError::Quarantined { .. }) => {
                quarantined = true;
                break;
            }
            Err(e) => assert!(matches!(e, PluginError::Timeout { .. }), "{e}"),
            Ok(_) => {}
        }
    }
    assert!(
        quarantined,
        "never two failures in a row, still quarantined"
    );
}

#[test]
fn poison_on_one_exchange_quarantines_the_plugin_there_only() {
    let registry = common::registry_with(SandboxLimits {
        deadline: Duration::from_millis(10),
        quarantine_after: 3,
        quarantine_initial: Duration::from_secs(60),
        ..limits()
    });
    common::load_probe(&registry, "shared", "1.0.0", "poison", true);
    let tenant_a = common::exchange(&registry, "shared", 1)
        .with_kv_scope(KvScope::exchange("tenant-a", "orders"));
    let tenant_b = common::exchange(&registry, "shared", 1)
        .with_kv_scope(KvScope::exchange("tenant-b", "orders"));
    let poison = Message::with_key("poison-1");
    let mut quarantined = false;
    for _ in 0..10 {
        if let Err(PluginError::Quarantined { .. }) = tenant_a.route(&poison, &Bytes::new()) {
            quarantined = true;
            break;
        }
    }
    assert!(
        quarantined,
        "tenant A's poison quarantines the plugin for A"
    );
    assert!(registry.get("shared").unwrap().active().is_quarantined());
    // Tenant B's exchange still routes through the same plugin version.
    let routed = tenant_b
        .route(&Message::with_key("k"), &Bytes::new())
        .expect("tenant B is not quarantined by A's messages");
    assert!(routed.results[0].is_ok());
}
