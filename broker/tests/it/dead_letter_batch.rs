//! Dead-letter policies asked about a batch of deaths in one call
//! (`decide_batch`): the built-in exports `dead-letter-batch` (0.1.1); a
//! policy built against 0.1.0 still loads and is asked `decide` per death
//! inside that one call; a batch answer that breaks the contract is an
//! error naming the plugin.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use switchyard::plugins::conformance::check_component;
use switchyard::plugins::{
    DeadLetterPolicy, DeathInput, DeathReason, DeathRecord, Field, LoadOptions, Message,
    PluginEngine, PluginError, PluginRegistry, PluginVersion, PolicyAction, SandboxLimits, Value,
};

use crate::common;

/// `dead-letter` as built against switchyard:plugin@0.1.0 (no batch export).
const DEAD_LETTER_0_1_0: &[u8] = include_bytes!("../fixtures/dead-letter-0.1.0.wasm");
const DEAD_LETTER_PROBE: &[u8] =
    include_bytes!("../../../plugins/dist/testing/dead-letter-probe.wasm");

fn load(registry: &PluginRegistry, bytes: &[u8], name: &str, mode: &str) -> Arc<PluginVersion> {
    registry
        .load(
            bytes,
            LoadOptions {
                name: Some(name.into()),
                config: BTreeMap::from([("mode".to_string(), mode.to_string())]),
                activate: true,
            },
        )
        .unwrap()
}

fn policy(registry: &PluginRegistry, name: &str) -> DeadLetterPolicy {
    DeadLetterPolicy::new(registry.get(name).unwrap()).unwrap()
}

fn text(name: &str, value: &str) -> Field {
    Field::new(name, Value::Text(value.into()))
}

/// A death in queue `orders` that is its `count`th there for `reason`.
fn death(key: &str, reason: DeathReason, count: u32) -> DeathInput {
    DeathInput {
        message: Message::with_key(key),
        reason,
        history: vec![DeathRecord {
            queue: "orders".into(),
            reason,
            count,
            time: 1_700_000_000_000,
            exchange: "orders-exchange".into(),
            routing_keys: vec![key.into()],
        }],
    }
}

/// Mixed reasons and attempt counts: under `retry` with 2 retries the first
/// two are retried (100 ms, then 200 ms), the rest go to the exchange.
fn mixed_batch() -> (Vec<Field>, Vec<DeathInput>) {
    let arguments = vec![
        text("x-dead-letter-exchange", "dlx"),
        text("x-dead-letter-strategy", "retry"),
        Field::new("x-retry-max", Value::Int(2)),
        Field::new("x-retry-initial-delay-ms", Value::Int(100)),
    ];
    let deaths = vec![
        death("a", DeathReason::Rejected, 1),
        death("b", DeathReason::Expired, 2),
        death("c", DeathReason::MaxLength, 3),
        death("d", DeathReason::DeliveryLimit, 7),
    ];
    (arguments, deaths)
}

fn expected_mixed() -> Vec<PolicyAction> {
    let to_dlx = |key: &str| PolicyAction::Republish {
        exchange: "dlx".into(),
        routing_key: key.into(),
    };
    vec![
        PolicyAction::Retry { delay_ms: 100 },
        PolicyAction::Retry { delay_ms: 200 },
        to_dlx("c"),
        to_dlx("d"),
    ]
}

fn calls(policy: &DeadLetterPolicy) -> u64 {
    policy.plugin().active().stats().calls
}

#[test]
fn the_builtin_decides_a_mixed_batch_in_one_call() {
    let registry = common::registry();
    let policy = policy(&registry, "dead-letter");
    assert!(policy.plugin().active().decides_batches());
    let (arguments, deaths) = mixed_batch();
    let bodies: Vec<Bytes> = deaths.iter().map(|_| Bytes::from_static(b"{}")).collect();

    let before = calls(&policy);
    let actions = policy
        .decide_batch("orders", &arguments, &deaths, &bodies)
        .unwrap();
    assert_eq!(actions, expected_mixed());
    assert_eq!(calls(&policy), before + 1, "one plugin call for the batch");

    // An empty batch asks nothing.
    assert!(
        policy
            .decide_batch("orders", &arguments, &[], &[])
            .unwrap()
            .is_empty()
    );
    assert_eq!(calls(&policy), before + 1);
}

#[test]
fn a_0_1_0_policy_loads_and_answers_batches_through_decide() {
    let registry = common::registry();
    let old = load(&registry, DEAD_LETTER_0_1_0, "dead-letter-0-1-0", "");
    assert!(!old.decides_batches(), "0.1.0 has no dead-letter-batch");
    let old = policy(&registry, "dead-letter-0-1-0");
    let new = policy(&registry, "dead-letter");
    let (arguments, deaths) = mixed_batch();

    let before = calls(&old);
    // Fewer bodies than deaths: the rest read as empty.
    let actions = old
        .decide_batch("orders", &arguments, &deaths, &[Bytes::from_static(b"x")])
        .unwrap();
    assert_eq!(
        calls(&old),
        before + 1,
        "one sandboxed call, decide per death"
    );
    assert_eq!(actions, expected_mixed());
    assert_eq!(
        actions,
        new.decide_batch("orders", &arguments, &deaths, &[])
            .unwrap(),
        "the 0.1.0 build and the 0.1.1 built-in agree"
    );

    // And it still passes the dead-letter conformance table, batches included.
    let report = check_component(&registry, DEAD_LETTER_0_1_0, None, None).unwrap();
    assert_eq!(report.semantics.as_deref(), Some("dead-letter"));
    assert!(report.passed(), "{report}");
}

#[test]
fn a_policy_may_park_in_a_batch() {
    let registry = common::registry();
    load(&registry, DEAD_LETTER_PROBE, "parker", "park:orders.dlq");
    let (arguments, deaths) = mixed_batch();
    let actions = policy(&registry, "parker")
        .decide_batch("orders", &arguments, &deaths, &[])
        .unwrap();
    let park = PolicyAction::Park {
        queue: "orders.dlq".into(),
    };
    assert_eq!(actions, vec![park; deaths.len()]);
}

#[test]
fn a_batch_answer_that_breaks_the_contract_is_an_error_naming_the_plugin() {
    let registry = common::registry();
    let (arguments, deaths) = mixed_batch();
    for (mode, why) in [
        ("short-batch", "3 actions for 4 deaths"),
        ("empty-park", "the park queue name is empty"),
    ] {
        let name = format!("probe-{mode}");
        load(&registry, DEAD_LETTER_PROBE, &name, mode);
        let error = policy(&registry, &name)
            .decide_batch("orders", &arguments, &deaths, &[])
            .unwrap_err();
        match &error {
            PluginError::InvalidResult { plugin, reason } => {
                assert_eq!(plugin, &format!("{name}@0.0.0"));
                assert!(reason.contains(why), "{mode}: {reason}");
            }
            other => panic!("{mode}: expected an invalid result, got {other}"),
        }
        assert!(error.to_string().contains(&name), "{error}");
    }

    // A park queue name past the 4096-byte limit is refused the same way.
    let long = format!("park:{}", "q".repeat(5000));
    load(&registry, DEAD_LETTER_PROBE, "probe-long", &long);
    let error = policy(&registry, "probe-long")
        .decide_batch("orders", &arguments, &deaths, &[])
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::InvalidResult { reason, .. } if reason.contains("4096")),
        "{error}"
    );
}

#[test]
fn a_trapping_policy_fails_the_whole_batch() {
    let registry = common::registry();
    load(&registry, DEAD_LETTER_PROBE, "probe-trap", "trap");
    let (arguments, deaths) = mixed_batch();
    let error = policy(&registry, "probe-trap")
        .decide_batch("orders", &arguments, &deaths, &[])
        .unwrap_err();
    assert!(matches!(error, PluginError::Trap { .. }), "{error}");
    assert!(error.to_string().contains("probe-trap@0.0.0"), "{error}");
}

#[test]
fn an_earlier_binarys_builtin_in_the_data_dir_is_replaced_by_this_binarys_build() {
    // A data dir written by an earlier binary: its `dead-letter@0.1.0` has
    // other bytes than this binary's build of the same version.
    let db = sled::Config::new().temporary(true).open().unwrap();
    let engine = PluginEngine::new(SandboxLimits::default(), None).unwrap();
    let registry = PluginRegistry::open(engine, db).unwrap();
    registry
        .load(DEAD_LETTER_0_1_0, LoadOptions::default())
        .unwrap();
    let failures = registry.install_builtins();
    assert!(
        failures.iter().all(|(name, _)| name != "dead-letter"),
        "{failures:?}"
    );
    let builtin = switchyard::plugins::builtin_component("dead-letter").unwrap();
    let active = registry.get("dead-letter").unwrap().active();
    assert_eq!(active.sha256(), switchyard::plugins::sha256_hex(builtin));
    assert!(
        active.decides_batches(),
        "this binary's build answers batches"
    );
}
