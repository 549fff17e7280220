//! A plugin that claims key-only routing but routes on more than the key
//! (issue 12, item 7): sampled cache hits are recomputed, the first
//! mismatch turns the decision cache off for that version, and `plugin
//! test` reports the false claim.

use crate::common;

use std::collections::BTreeMap;

use bytes::Bytes;
use switchyard::plugins::{LoadOptions, Message, PluginRegistry, Value, conformance};

fn load_liar(registry: &PluginRegistry) {
    registry
        .load(
            common::PROBE,
            LoadOptions {
                name: Some("liar".into()),
                config: BTreeMap::from([
                    ("version".into(), "1.0.0".into()),
                    ("mode".into(), "by-header".into()),
                    ("key-only".into(), "true".into()),
                ]),
                activate: true,
            },
        )
        .unwrap();
}

fn to(index: u32) -> Message {
    let mut message = Message::with_key("k");
    message.headers.push(switchyard::plugins::Field::new(
        "to",
        Value::Text(index.to_string()),
    ));
    message
}

#[test]
fn a_false_key_only_claim_is_caught_and_the_cache_turned_off() {
    let registry = common::registry();
    load_liar(&registry);
    let router = common::exchange(&registry, "liar", 2);
    assert!(
        router.decision_cache_enabled(),
        "the claim is believed at first"
    );
    let mut misrouted = 0;
    for i in 0..1000u32 {
        let routed = router.route(&to(i % 2), &Bytes::new()).unwrap();
        if routed.results[0].as_deref() != Ok(&[i % 2][..]) {
            misrouted += 1;
        }
        if !router.decision_cache_enabled() {
            break;
        }
    }
    assert!(
        !router.decision_cache_enabled(),
        "caught within 1000 messages"
    );
    // From now on every message goes where the plugin says.
    for i in 0..100u32 {
        let routed = router.route(&to(i % 2), &Bytes::new()).unwrap();
        assert_eq!(routed.results[0].as_deref(), Ok(&[i % 2][..]));
    }
    eprintln!("misrouted before the claim was caught: {misrouted}");
}

#[test]
fn plugin_test_reports_a_false_key_only_claim() {
    let registry = common::registry();
    let liar: conformance::UserCases = r#"
        [config]
        mode = "by-header"
        key-only = "true"
        [[bindings]]
        destination = "q0"
        key = "k"
        [[cases]]
        name = "routes"
        routing-key = "k"
        expect = ["q0"]
    "#
    .parse()
    .unwrap();
    let report = conformance::check_component(&registry, common::PROBE, None, Some(&liar)).unwrap();
    let failure = report
        .failures()
        .find(|c| c.name == "key-only routing claim holds")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        failure.detail.contains("key-only-routing"),
        "{}",
        failure.detail
    );
    assert!(failure.detail.contains("header to=1"), "{}", failure.detail);

    // An honest key-only plugin passes the check.
    let report = conformance::check_component(
        &registry,
        switchyard::plugins::builtin_component("direct").unwrap(),
        None,
        None,
    )
    .unwrap();
    assert!(
        report
            .cases
            .iter()
            .any(|c| c.name == "key-only routing claim holds" && c.passed),
        "{report}"
    );
}
