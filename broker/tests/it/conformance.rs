//! Every built-in plugin passes its world's conformance table, run through
//! the real wasmtime host.

use crate::common;

use switchyard::plugins::BUILTIN_PLUGINS;
use switchyard::plugins::conformance::{UserCases, check_component};

#[test]
fn every_builtin_plugin_passes_its_conformance_table() {
    let registry = common::registry();
    let mut failed = Vec::new();
    for (name, bytes) in BUILTIN_PLUGINS {
        let report = check_component(&registry, bytes, None, None).unwrap();
        println!("{report}");
        assert_eq!(
            report.semantics.as_deref(),
            Some(name),
            "{name} has a table of its own"
        );
        if !report.passed() {
            failed.push(report.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "conformance failures:\n{}",
        failed.join("\n")
    );
}

#[test]
fn a_plugin_with_other_semantics_fails_the_table_it_claims() {
    // `direct` run against the `topic` table must fail: the suite can tell
    // implementations apart, it does not pass everything.
    let registry = common::registry();
    let direct = switchyard::plugins::builtin_component("direct").unwrap();
    let report = check_component(&registry, direct, Some("topic"), None).unwrap();
    assert!(!report.passed());
    assert!(report.failures().any(|c| c.name.contains("# alone")));
}

#[test]
fn an_unknown_exchange_type_is_held_to_the_contract_only() {
    let registry = common::registry();
    let report = check_component(&registry, common::PROBE, Some("my-router"), None).unwrap();
    assert_eq!(report.semantics, None);
    // The probe's default mode refuses every message, the same way each
    // time: a consistent refusal is an answer, so the contract holds.
    assert!(report.passed(), "{report}");

    // A user's case fails when the plugin traps instead of answering.
    let cases: UserCases = r#"
        config = { mode = "trap" }
        [[bindings]]
        destination = "q"
        [[cases]]
        name = "routes"
        expect = ["q"]
    "#
    .parse()
    .unwrap();
    let report =
        check_component(&registry, common::PROBE, Some("my-router"), Some(&cases)).unwrap();
    assert!(
        report
            .failures()
            .any(|c| c.name == "user: routes" && c.detail.contains("trap")),
        "{report}"
    );
}
