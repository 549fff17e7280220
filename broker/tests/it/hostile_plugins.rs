//! The hostile-plugin suite (issue 12): a plugin that floods its kv store,
//! floods the log, is slow, loops on "poison" keys, or lies about routing
//! only on the key is contained — and the broker keeps serving an unrelated
//! exchange meanwhile.
//!
//! Publishers run as tasks on a two-worker tokio runtime, as the QUIC
//! channels do, so a plugin call that held a worker would starve the
//! unrelated exchange. Each test measures that exchange's throughput alone,
//! under attack, and alone again, and reports the ratio (under attack / the
//! mean alone); it asserts only a generous bound, since the machine is
//! shared. `cargo test --test hostile_plugins -- --nocapture` prints them.

use crate::common;
use crate::core;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard::broker::{BindingSpec, Broker, BrokerOptions, Outcome};
use switchyard::plugins::{LoadOptions, PluginSummary};
use switchyard_protocol::{Message, Value};

/// How long each throughput phase runs.
const PHASE: Duration = Duration::from_millis(1500);
/// The lowest ratio asserted: far below the ≥ 0.8 aimed for, because a
/// shared two-core machine can take that much from any phase.
const GENEROUS: f64 = 0.15;

/// Fields drop in order: the broker before its data directory, the turn
/// last.
struct Setup {
    broker: Arc<Broker>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// The tests take turns: each measures throughput, which tests running
/// alongside would take.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bind(broker: &Broker, exchange: &str, queue: &str, key: &str) {
    broker
        .bind(
            &core::guest(broker),
            0,
            &BindingSpec {
                queue,
                exchange,
                key,
                arguments: &[],
            },
        )
        .unwrap();
}

/// A broker with `calm` (direct → calm-q), `bad` (the probe in `mode`
/// → bad-0, bad-1) and `fine` (the probe behaving → fine-q).
fn setup(mode: &str, extra: &[(&str, &str)], tune: impl FnOnce(&mut BrokerOptions)) -> Setup {
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut options = core::options(dir.path());
    tune(&mut options);
    let broker = Broker::open(options).unwrap();
    for (name, mode, extra) in [("hostile", mode, extra), ("benign", "route-to:0", &[][..])] {
        let mut config = BTreeMap::from([
            ("version".to_string(), "1.0.0".to_string()),
            ("mode".to_string(), mode.to_string()),
        ]);
        config.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let options = LoadOptions {
            name: Some(name.into()),
            config,
            activate: true,
        };
        broker.registry().load(common::PROBE, options).unwrap();
    }
    core::declare_exchange(&broker, "calm", "direct", &[]).unwrap();
    core::declare_queue(&broker, "calm-q", &[]);
    bind(&broker, "calm", "calm-q", "k");
    core::declare_exchange(&broker, "bad", "hostile", &[]).unwrap();
    for queue in ["bad-0", "bad-1"] {
        core::declare_queue(&broker, queue, &[]);
        bind(&broker, "bad", queue, "k");
    }
    core::declare_exchange(&broker, "fine", "benign", &[]).unwrap();
    core::declare_queue(&broker, "fine-q", &[]);
    bind(&broker, "fine", "fine-q", "k");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Setup {
        broker: Arc::new(broker),
        runtime,
        _dir: dir,
        _turn: turn,
    }
}

fn publish(broker: &Broker, exchange: &str, messages: &[Message]) -> Vec<Outcome> {
    broker
        .publish(&core::guest(broker), exchange, messages)
        .outcomes
}

/// Messages per second the calm exchange takes in one phase, with
/// `attackers` tasks publishing `hostile(i)` batches to `target` meanwhile.
/// Returns the rate and every outcome the attackers got.
fn phase(
    setup: &Setup,
    target: &'static str,
    attackers: usize,
    hostile: Arc<dyn Fn(u64) -> Vec<Message> + Send + Sync>,
) -> (f64, Vec<Outcome>) {
    let stop = Arc::new(AtomicBool::new(false));
    let attacks: Vec<_> = (0..attackers)
        .map(|_| {
            let (broker, stop, hostile) = (setup.broker.clone(), stop.clone(), hostile.clone());
            setup.runtime.spawn(async move {
                let mut outcomes = Vec::new();
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    outcomes.extend(publish(&broker, target, &hostile(round)));
                    round += 1;
                    tokio::task::yield_now().await;
                }
                outcomes
            })
        })
        .collect();
    let published = Arc::new(AtomicU64::new(0));
    let calm = {
        let (broker, published) = (setup.broker.clone(), published.clone());
        setup.runtime.spawn(async move {
            let batch: Vec<Message> = (0..32).map(|_| Message::new("k", "calm")).collect();
            let started = Instant::now();
            while started.elapsed() < PHASE {
                let outcomes = publish(&broker, "calm", &batch);
                assert!(outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })));
                published.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            started.elapsed()
        })
    };
    let elapsed = setup.runtime.block_on(calm).unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for attack in attacks {
        outcomes.extend(setup.runtime.block_on(attack).unwrap());
    }
    // Keep the store small between phases.
    setup
        .broker
        .purge_queue(&core::guest(&setup.broker), 0, "calm-q")
        .unwrap();
    (
        published.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        outcomes,
    )
}

/// Runs the attack between two calm phases; reports and checks the ratio.
fn under_attack(
    name: &str,
    setup: &Setup,
    hostile: impl Fn(u64) -> Vec<Message> + Send + Sync + 'static,
) -> Vec<Outcome> {
    let hostile: Arc<dyn Fn(u64) -> Vec<Message> + Send + Sync> = Arc::new(hostile);
    let (before, _) = phase(setup, "bad", 0, hostile.clone());
    let (control, _) = phase(setup, "fine", 2, hostile.clone());
    let (during, outcomes) = phase(setup, "bad", 2, hostile.clone());
    let (after, _) = phase(setup, "bad", 0, hostile);
    let alone = (before + after) / 2.0;
    let ratio = during / alone;
    eprintln!(
        "hostile {name}: unrelated exchange {during:.0} msgs/s under attack, {alone:.0} alone \
         ({before:.0} before, {after:.0} after): ratio {ratio:.2}; with the same publishers \
         through a well-behaved plugin {control:.0} msgs/s: ratio to that {:.2}; {} hostile publishes",
        during / control,
        outcomes.len()
    );
    assert!(
        ratio >= GENEROUS,
        "{name}: the unrelated exchange fell to {ratio:.2} of its throughput"
    );
    outcomes
}

fn summary(setup: &Setup) -> PluginSummary {
    setup
        .broker
        .registry()
        .list()
        .into_iter()
        .find(|p| p.name == "hostile")
        .unwrap()
}

fn batch(key: &str, n: usize) -> Vec<Message> {
    (0..n).map(|_| Message::new(key, "hostile")).collect()
}

fn refused_with(outcomes: &[Outcome], text: &str) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Refused(e) if e.to_string().contains(text)))
        .count()
}

#[test]
fn a_kv_flood_stops_at_the_quota() {
    let setup = setup("kv-flood", &[], |_| {});
    let outcomes = under_attack("kv flood", &setup, |_| batch("k", 4));
    let kv = summary(&setup).kv;
    let limits = setup.broker.registry().engine().limits().kv.clone();
    assert!(refused_with(&outcomes, "kv write refused") > 0);
    assert!(kv.bytes <= limits.max_bytes, "{kv:?}");
    assert!(kv.refused_writes > 0);
    assert!(!summary(&setup).quarantined, "a quota is not a fault");
}

#[test]
fn a_log_flood_is_cut_to_the_rate() {
    let setup = setup("log-flood", &[], |_| {});
    let started = Instant::now();
    let outcomes = under_attack("log flood", &setup, |_| batch("k", 4));
    let elapsed = started.elapsed().as_secs_f64();
    let stats = summary(&setup).stats;
    let routed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored { .. }))
        .count() as u64;
    let attempted = routed * 100;
    let written = attempted - stats.log_lines_dropped;
    let limits = setup.broker.registry().engine().limits().clone();
    let allowed = u64::from(limits.log_burst)
        + (elapsed.ceil() as u64 + 1) * u64::from(limits.log_lines_per_sec);
    eprintln!("log flood: {attempted} lines attempted, {written} written (allowed {allowed})");
    assert!(
        written <= allowed,
        "{written} lines written, {allowed} allowed"
    );
}

#[test]
fn a_slow_plugin_waits_for_itself_not_for_the_workers() {
    let setup = setup("slow:5", &[], |_| {});
    // One message per call: the probe spends 5 ms per message, and the
    // call deadline is 10 ms of CPU time.
    let outcomes = under_attack("slow 5 ms", &setup, |_| batch("k", 1));
    let served = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored { .. }))
        .count();
    assert!(
        served * 2 > outcomes.len(),
        "the slow plugin is served too, in turn: {served} of {}",
        outcomes.len()
    );
    assert!(!summary(&setup).quarantined, "slow is not failing");
}

#[test]
fn a_plugin_looping_on_poison_keys_is_quarantined_by_its_failure_rate() {
    let setup = setup("poison", &[], |options| {
        options.sandbox.quarantine_initial = Duration::from_secs(30);
    });
    // One batch in five carries a poison key: never five failures in a row.
    let outcomes = under_attack("poison keys", &setup, |round| {
        batch(if round % 5 == 4 { "poison-1" } else { "k" }, 4)
    });
    assert!(refused_with(&outcomes, "deadline") > 0);
    assert!(
        refused_with(&outcomes, "quarantined") > 0 || summary(&setup).quarantined,
        "quarantined by rate"
    );
}

#[test]
fn a_false_key_only_claim_is_caught_and_the_cache_dropped() {
    let setup = setup("by-header", &[("key-only", "true")], |_| {});
    let to = |i: u64| Message::new("k", "liar").with_header("to", Value::Text((i % 2).to_string()));
    let outcomes = under_attack("false key-only claim", &setup, move |round| {
        (round * 4..round * 4 + 4).map(to).collect()
    });
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })));
    // Once caught, every message goes where the plugin says.
    let vhost = core::vhost(&setup.broker);
    let depth = |q: &str| core::stats(&setup.broker, q).ready;
    let (zero, one) = (depth("bad-0"), depth("bad-1"));
    publish(&setup.broker, "bad", &(0..64).map(to).collect::<Vec<_>>());
    assert_eq!((depth("bad-0") - zero, depth("bad-1") - one), (32, 32));
    let exchange = vhost.exchange("bad").unwrap();
    let router = exchange.router.as_ref().unwrap();
    assert!(
        !router.decision_cache_enabled(),
        "cache disabled for the version"
    );
}
