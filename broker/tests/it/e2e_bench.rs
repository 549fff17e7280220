//! `switchyard bench` end to end: it spawns a broker, moves the messages it
//! says it moved, reports the figures users script against (`--json`), and
//! leaves nothing behind on a broker it did not spawn.

use crate::support;

use std::process::Command;

use support::{BIN, Broker};

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["bench", "--spawn", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn confirm_mode_reports_rates_and_both_latencies() {
    let report = bench(&[
        "--count",
        "3000",
        "--mode",
        "confirm",
        "--persistent",
        "--flush",
        "sync",
    ]);
    assert_eq!(report["published"], 3000);
    assert_eq!(report["consumed"], 3000);
    for field in [
        "producer_msgs_per_s",
        "consumer_msgs_per_s",
        "end_to_end_msgs_per_s",
        "mb_per_s",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
    }
    for latency in ["publish_to_confirm", "publish_to_deliver"] {
        let l = &report[latency];
        assert_eq!(l["samples"], 3000, "{report}");
        let (p50, p99, max) = (
            l["p50_ms"].as_f64().unwrap(),
            l["p99_ms"].as_f64().unwrap(),
            l["max_ms"].as_f64().unwrap(),
        );
        assert!(p50 <= p99 && p99 <= max, "{report}");
    }
}

#[test]
fn fanout_through_wasm_delivers_to_every_queue() {
    let report = bench(&[
        "--count",
        "2000",
        "--mode",
        "batch",
        "--batch",
        "50",
        "--exchange-type",
        "fanout",
        "--queues",
        "3",
        "--consumers",
        "3",
    ]);
    assert_eq!(report["published"], 2000);
    assert_eq!(report["consumed"], 6000);
    assert!(
        report["publish_to_confirm"].is_null(),
        "no confirms in batch mode: {report}"
    );
}

#[test]
fn bad_settings_are_named() {
    let out = Command::new(BIN)
        .args(["bench", "--spawn", "--exchange-type", "headers"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--exchange-type must be default, direct, topic or fanout"),
        "{err}"
    );
}

#[test]
fn a_run_against_a_broker_removes_its_queues_and_exchange() {
    let broker = Broker::start();
    // No consumers: the queues still hold every message when the run ends.
    broker.cli_ok(&[
        "bench",
        "--count",
        "200",
        "--exchange-type",
        "direct",
        "--queues",
        "2",
        "--consumers",
        "0",
        "--json",
    ]);
    let queues = broker.cli_ok(&["list", "queues"]);
    assert!(!queues.contains("bench-"), "{queues}");
    let exchanges = broker.cli_ok(&["list", "exchanges"]);
    assert!(!exchanges.contains("bench-"), "{exchanges}");
}
