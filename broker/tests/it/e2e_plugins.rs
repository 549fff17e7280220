//! Hot-loading plugins into a running broker through the admin API and the
//! CLI: load, activate, roll back and unload under load; broken uploads
//! refused with routing untouched; administrators only.

use crate::support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use support::{Broker, bodies, drain, stderr};
use switchyard::bench::Samples;
use switchyard_client::{
    Channel, ExchangeOptions, Field, Message, PluginLoadOptions, QueueOptions, Value,
};

const PROBE: &[u8] = include_bytes!("../../../plugins/dist/testing/probe.wasm");

/// The probe plugin as version `version`, sending every message along
/// binding `target`.
fn probe_options(version: &str, target: u32, activate: bool) -> PluginLoadOptions {
    PluginLoadOptions {
        name: Some("canary".into()),
        config: vec![
            Field::new("version", Value::Text(version.into())),
            Field::new("mode", Value::Text(format!("route-to:{target}"))),
        ],
        activate,
    }
}

/// Exchange `swap` of type `canary` with binding 0 → `to-a`, 1 → `to-b`.
async fn canary_exchange(ch: &Channel) {
    ch.load_plugin(PROBE, probe_options("1", 0, true))
        .await
        .unwrap();
    ch.load_plugin(PROBE, probe_options("2", 1, false))
        .await
        .unwrap();
    ch.declare_exchange("swap", "canary", ExchangeOptions::default())
        .await
        .unwrap();
    for (queue, key) in [("to-a", "a"), ("to-b", "b")] {
        ch.declare_queue(queue, QueueOptions::default())
            .await
            .unwrap();
        ch.bind(queue, "swap", key, vec![]).await.unwrap();
    }
}

fn message(body: String) -> Message {
    Message::new("k", body.into_bytes())
}

/// Publish→confirm latency percentiles of `latencies`, as `switchyard bench` reports them.
fn percentiles(latencies: impl Iterator<Item = Duration>) -> String {
    let mut samples = Samples::default();
    latencies.for_each(|l| samples.record(l.as_micros() as u64));
    samples
        .percentiles()
        .map_or_else(|| "no samples".into(), |p| p.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_and_rolling_back_under_load_loses_and_duplicates_nothing() {
    let broker = Broker::start();
    let (_admin_conn, admin) = broker.channel().await;
    canary_exchange(&admin).await;

    // (start, end, active version afterwards) of every swap.
    let swaps: Arc<Mutex<Vec<(Instant, Instant, u32)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let swaps = swaps.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            for round in 0..6 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let start = Instant::now();
                let active = if round % 2 == 0 {
                    admin.activate_plugin("canary", "2").await.unwrap()
                } else {
                    admin.rollback_plugin("canary").await.unwrap()
                };
                let version = if round % 2 == 0 { 2 } else { 1 };
                assert_eq!(active, format!("canary@{version}"));
                swaps.lock().unwrap().push((start, Instant::now(), version));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            admin
        })
    };

    let (_conn, producer) = broker.channel().await;
    producer.confirm_select().await.unwrap();
    // (sent, confirmed) per message, by sequence number.
    let mut timings: Vec<(Instant, Instant)> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) || !in_flight.is_empty() {
        if !stop.load(std::sync::atomic::Ordering::Relaxed) && in_flight.len() < 256 {
            let sent = Instant::now();
            let confirmation = producer
                .publish("swap", message(next.to_string()))
                .await
                .unwrap();
            let seq = next;
            in_flight.push(async move { (seq, sent, confirmation.await) });
            next += 1;
            continue;
        }
        let (seq, sent, confirmed) = in_flight.next().await.unwrap();
        confirmed.unwrap_or_else(|e| panic!("publish {seq} failed during a swap: {e}"));
        if timings.len() <= seq {
            timings.resize(seq + 1, (sent, sent));
        }
        timings[seq] = (sent, Instant::now());
    }
    let admin = swapper.await.unwrap();
    let swaps = swaps.lock().unwrap().clone();
    assert_eq!(swaps.len(), 6);

    // Every confirmed message is in exactly one queue...
    let mut seen: HashMap<usize, &str> = HashMap::new();
    let a = bodies(&drain(&admin, "to-a").await);
    let b = bodies(&drain(&admin, "to-b").await);
    for (queue, got) in [("to-a", &a), ("to-b", &b)] {
        for body in got.iter() {
            let seq: usize = body.parse().unwrap();
            assert!(
                seen.insert(seq, queue).is_none(),
                "message {seq} delivered twice"
            );
        }
    }
    assert_eq!(seen.len(), next, "every confirmed message is delivered");

    // ...and one published and confirmed while a version was steadily
    // active is in that version's queue.
    let active_at = |t: Instant| -> Option<u32> {
        let mut version = 1;
        for (start, end, after) in &swaps {
            if t < *start {
                return Some(version);
            }
            if t <= *end {
                return None;
            }
            version = *after;
        }
        Some(version)
    };
    let mut swapping = Vec::new();
    let mut checked = 0;
    for (seq, (sent, confirmed)) in timings.iter().enumerate() {
        match (active_at(*sent), active_at(*confirmed)) {
            (Some(v1), Some(v2)) if v1 == v2 => {
                let expected = if v1 == 1 { "to-a" } else { "to-b" };
                assert_eq!(seen[&seq], expected, "message {seq} sent under canary@{v1}");
                checked += 1;
            }
            _ => swapping.push(*confirmed - *sent),
        }
    }
    // Near a swap: anything in flight across it or sent within 20 ms after.
    let near_swap = |t: Instant| {
        swaps.iter().any(|(start, end, _)| {
            t + Duration::from_millis(20) >= *start && t <= *end + Duration::from_millis(20)
        })
    };
    let (near, far): (Vec<_>, Vec<_>) = timings
        .iter()
        .map(|(sent, confirmed)| (*sent, *confirmed - *sent))
        .partition(|(sent, _)| near_swap(*sent));
    println!(
        "hot swap under load: {next} confirmed publishes, 6 swaps; {checked} checked against the \
         version active throughout; {} in flight across a swap\n  steady:               {}\n  \
         within 20 ms of a swap: {}",
        swapping.len(),
        percentiles(far.iter().map(|(_, l)| *l)),
        percentiles(near.iter().map(|(_, l)| *l)),
    );
    assert!(
        checked > next / 2,
        "most messages are checked ({checked} of {next})"
    );
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both versions routed messages"
    );
}

/// Writes `bytes` to a file under the broker's data dir for the CLI.
fn file(broker: &Broker, name: &str, bytes: &[u8]) -> String {
    let path = broker.data_dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// A component for the exchange world whose core module traps as soon as
/// it is instantiated (its start function is `unreachable`).
fn trapping_component() -> Vec<u8> {
    let mut module = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "describe") (result i32) unreachable)
            (func (export "switchyard:plugin/exchange@VERSION#validate-binding")
                (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32) unreachable)
            (func (export "switchyard:plugin/exchange@VERSION#[constructor]router")
                (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "switchyard:plugin/exchange@VERSION#[method]router.route")
                (param i32) (result i32) unreachable)
            (func (export "switchyard:plugin/exchange@VERSION#[method]router.route-batch")
                (param i32 i32 i32 i32) (result i32) unreachable)
            (func $boom unreachable)
            (start $boom))"#
            // Core modules name the exact WIT version they are built against.
            .replace("VERSION", switchyard::plugins::WIT_VERSION),
    )
    .unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"))
        .unwrap();
    let world = resolve
        .select_world(&[package], Some("exchange-plugin"))
        .unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .encode()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_uploads_are_refused_with_the_reason_and_routing_stays() {
    let broker = Broker::start();
    let (_conn, ch) = broker.channel().await;
    canary_exchange(&ch).await;
    let routes_to_a = || async {
        ch.confirm_select().await.unwrap();
        ch.publish("swap", message("check".into()))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(bodies(&drain(&ch, "to-a").await), ["check"]);
        assert!(drain(&ch, "to-b").await.is_empty());
    };
    routes_to_a().await;

    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "not-wasm.wasm",
            b"this is not wasm".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "core-module.wasm",
            wat::parse_str("(module)").unwrap(),
            "component",
        ),
        (
            "empty-component.wasm",
            wat::parse_str("(component)").unwrap(),
            "implements none of the Switchyard plugin worlds",
        ),
        ("traps.wasm", trapping_component(), "unreachable"),
    ];
    for (name, bytes, reason) in cases {
        let path = file(&broker, name, &bytes);
        let out = broker.cli(&["plugin", "load", &path, "--name", "canary", "--activate"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            err.to_lowercase().contains(&reason.to_lowercase()),
            "{name}: the error names the problem ({reason}): {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        routes_to_a().await;
    }
    // A plugin of another world under the same name is refused too.
    let filter = file(
        &broker,
        "filter.wasm",
        switchyard::plugins::builtin_component("idempotency").unwrap(),
    );
    let out = broker.cli(&["plugin", "load", &filter, "--name", "canary"]);
    assert!(
        stderr(&out).contains("cannot be a filter plugin"),
        "{}",
        stderr(&out)
    );
    routes_to_a().await;

    let list = broker.cli_ok(&["plugin", "list", "--json"]);
    let canary = list
        .lines()
        .find(|l| l.contains("\"canary\""))
        .expect("canary listed");
    assert!(canary.contains("\"active\":\"1\""), "{canary}");
    assert!(canary.contains("\"versions\":\"1,2\""), "{canary}");
}

#[test]
fn the_cli_loads_activates_rolls_back_and_unloads_and_only_administrators_may() {
    let broker = Broker::start();
    let probe = file(&broker, "probe.wasm", PROBE);
    let out = broker.cli_ok(&[
        "plugin",
        "load",
        &probe,
        "--name",
        "canary",
        "--config",
        "version=1",
        "--config",
        "mode=route-to:0",
    ]);
    let _ = out;
    let loaded = broker.cli(&[
        "plugin",
        "load",
        &probe,
        "--name",
        "canary",
        "--config",
        "version=2",
        "--config",
        "mode=route-to:1",
    ]);
    assert!(
        stderr(&loaded).contains("loaded canary@2"),
        "{}",
        stderr(&loaded)
    );
    let table = broker.cli_ok(&["plugin", "list"]);
    let row = table.lines().find(|l| l.starts_with("canary")).unwrap();
    assert!(
        row.contains("exchange") && row.contains("1,2") && row.contains("rust"),
        "{row}"
    );

    broker.cli_ok(&[
        "declare",
        "exchange",
        "swap",
        "--type",
        "canary",
        "--durable",
    ]);
    broker.cli_ok(&["declare", "queue", "to-a", "--durable"]);
    broker.cli_ok(&["declare", "queue", "to-b", "--durable"]);
    broker.cli_ok(&["bind", "to-a", "swap", "--key", "a"]);
    broker.cli_ok(&["bind", "to-b", "swap", "--key", "b"]);
    let publish = |body: &str| {
        broker.cli_ok(&[
            "publish",
            "--exchange",
            "swap",
            "--routing-key",
            "k",
            "--confirm",
            body,
        ])
    };
    let get = |queue: &str| broker.cli_ok(&["get", "--queue", queue]);

    publish("one");
    assert!(get("to-a").contains("one"));
    assert!(stderr(&broker.cli(&["plugin", "activate", "canary@2"])).contains("active: canary@2"));
    publish("two");
    assert!(get("to-b").contains("two"));
    assert!(stderr(&broker.cli(&["plugin", "rollback", "canary"])).contains("active: canary@1"));
    publish("three");
    assert!(get("to-a").contains("three"));
    let missing = broker.cli(&["plugin", "activate", "canary@9"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains('9'), "{}", stderr(&missing));

    // In use: refused, naming the exchange.
    let out = broker.cli(&["plugin", "unload", "canary"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exchange 'swap' in vhost '/'"),
        "{}",
        stderr(&out)
    );
    let builtin = broker.cli(&["plugin", "unload", "topic"]);
    assert!(
        stderr(&builtin).contains("built in"),
        "{}",
        stderr(&builtin)
    );

    // Not an administrator: refused before anything is uploaded or changed.
    broker.cli_ok(&["user", "add", "dev", "--password", "secret"]);
    broker.cli_ok(&["user", "permit", "dev"]);
    let dev = broker.url("dev", "secret", "/");
    for args in [
        vec!["plugin", "load", probe.as_str(), "--name", "other"],
        vec!["plugin", "activate", "canary@2"],
        vec!["plugin", "rollback", "canary"],
        vec!["plugin", "unload", "canary"],
    ] {
        let out = broker.cli_as(&dev, &args);
        assert!(
            !out.status.success(),
            "{args:?} allowed for a non-administrator"
        );
        assert!(
            stderr(&out).contains("administrator"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!broker.cli_ok(&["plugin", "list"]).contains("other"));

    // The plugin, its versions and the exchange using it survive a restart.
    let data_dir = broker.data_dir.clone();
    let mut broker = broker;
    broker.kill();
    let restarted = Broker::start_in(&data_dir, &[]);
    restarted.cli_ok(&[
        "publish",
        "--exchange",
        "swap",
        "--routing-key",
        "k",
        "--confirm",
        "four",
    ]);
    // Acks from before the SIGKILL may not have been checkpointed, so
    // earlier messages can come again first; "four" follows them.
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(restarted.cli_ok(&["get", "--queue", "to-a"]));
        if got.last().unwrap().contains("four") {
            break;
        }
    }
    assert!(
        got.last().unwrap().contains("four"),
        "after restart: {got:?}"
    );

    restarted.cli_ok(&["delete", "exchange", "swap"]);
    let out = restarted.cli(&["plugin", "unload", "canary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!restarted.cli_ok(&["plugin", "list"]).contains("canary"));
    let declare = restarted.cli(&["declare", "exchange", "again", "--type", "canary"]);
    assert!(
        stderr(&declare).contains("not a loaded plugin"),
        "{}",
        stderr(&declare)
    );
}

fn with_id(body: &str, id: Option<&str>) -> Message {
    let mut message = Message::new("k", body.as_bytes().to_vec());
    message.properties.message_id = id.map(str::to_string);
    message.mandatory()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_filter_plugin_drops_duplicates_and_refuses_what_it_rejects() {
    let broker = Broker::start();
    let (_conn, ch) = broker.channel().await;
    ch.confirm_select().await.unwrap();
    let mut returns = ch.returns();
    // The built-in idempotency filter, and a stricter copy loaded at run time.
    let idempotency = switchyard::plugins::builtin_component("idempotency").unwrap();
    let strict = PluginLoadOptions {
        name: Some("strict-ids".into()),
        config: vec![Field::new("require-id", Value::Text("true".into()))],
        activate: true,
    };
    assert_eq!(
        ch.load_plugin(idempotency, strict).await.unwrap(),
        "strict-ids@0.1.0"
    );
    for (exchange, filter) in [("orders", "idempotency"), ("strict", "strict-ids")] {
        let options = ExchangeOptions {
            arguments: vec![Field::new("filter", Value::Text(filter.into()))],
            ..ExchangeOptions::default()
        };
        ch.declare_exchange(exchange, "fanout", options)
            .await
            .unwrap();
        ch.declare_queue(exchange, QueueOptions::default())
            .await
            .unwrap();
        ch.bind(exchange, exchange, "", vec![]).await.unwrap();
    }

    // Duplicates are confirmed but stored once, and not returned as unroutable.
    for (body, id) in [
        ("a", "id-1"),
        ("a again", "id-1"),
        ("b", "id-2"),
        ("c", "id-1"),
    ] {
        ch.publish("orders", with_id(body, Some(id)))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let batch = vec![with_id("d", Some("id-3")), with_id("d twice", Some("id-3"))];
    ch.publish_batch("orders", batch)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(bodies(&drain(&ch, "orders").await), ["a", "b", "d"]);
    assert!(returns.try_recv().is_err(), "a duplicate is not unroutable");

    // A rejected message is refused with the filter's reason; others pass.
    let refused = ch
        .publish("strict", with_id("no id", None))
        .await
        .unwrap()
        .await;
    let error = refused.unwrap_err().to_string();
    assert!(
        error.contains("strict-ids") && error.contains("rejected"),
        "{error}"
    );
    ch.publish("strict", with_id("has id", Some("x")))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(bodies(&drain(&ch, "strict").await), ["has id"]);

    // The filter is in use: it cannot be unloaded; unknown or wrong-kind filters are refused.
    let unload = ch
        .unload_plugin("strict-ids")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        unload.contains("exchange 'strict' in vhost '/' (as its filter)"),
        "{unload}"
    );
    for (filter, problem) in [("nope", "not a loaded plugin"), ("topic", "filter")] {
        let options = ExchangeOptions {
            arguments: vec![Field::new("filter", Value::Text(filter.into()))],
            ..ExchangeOptions::default()
        };
        let error = ch
            .declare_exchange("bad", "fanout", options)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(problem), "{filter}: {error}");
    }
}
