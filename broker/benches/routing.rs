//! Routing cost per message through wasm exchange plugins — one call per
//! message, one call per batch of 100, and the host's decision cache — with
//! the same plugin code compiled natively as the baseline.
//!
//! `cargo bench -p switchyard --bench routing`

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::plugins::{
    Binding, ExchangeRouter, Message, PluginEngine, PluginRegistry, SandboxLimits,
};
use switchyard_plugin::Router as _;

const BATCH: usize = 100;

struct Scenario {
    plugin: &'static str,
    patterns: Vec<String>,
    keys: Vec<String>,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            plugin: "direct",
            patterns: (0..100).map(|i| format!("orders.{i}")).collect(),
            keys: (0..BATCH).map(|i| format!("orders.{}", i % 100)).collect(),
        },
        Scenario {
            plugin: "topic",
            patterns: (0..100)
                .map(|i| format!("app{i}.*.created"))
                .chain(["#.audit".to_string(), "app7.#".to_string()])
                .collect(),
            keys: (0..BATCH)
                .map(|i| format!("app{}.eu.created", i % 100))
                .collect(),
        },
    ]
}

fn registry() -> PluginRegistry {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let engine = PluginEngine::new(SandboxLimits::default(), None).unwrap();
    let registry = PluginRegistry::open(engine, db).unwrap();
    assert!(registry.install_builtins().is_empty());
    registry
}

fn host_bindings(patterns: &[String]) -> Vec<Binding> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, key)| Binding {
            destination: format!("q{i}"),
            key: key.clone(),
            arguments: Vec::new(),
        })
        .collect()
}

fn guest_bindings(patterns: &[String]) -> Vec<switchyard_plugin::Binding> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, key)| switchyard_plugin::Binding {
            destination: format!("q{i}"),
            key: key.clone(),
            arguments: Vec::new(),
        })
        .collect()
}

/// Routes one message with the plugin's code compiled natively.
type NativeRoute = Box<dyn Fn(&switchyard_plugin::Message) -> Vec<u32>>;

fn native_router(plugin: &str, patterns: &[String]) -> NativeRoute {
    let body = switchyard_plugin::Body::from_bytes(&[]);
    match plugin {
        "direct" => {
            let router = switchyard_direct::DirectRouter::new(guest_bindings(patterns), Vec::new());
            Box::new(move |m| router.route(m, &body).unwrap())
        }
        "topic" => {
            let router = switchyard_topic::TopicRouter::new(guest_bindings(patterns), Vec::new());
            Box::new(move |m| router.route(m, &body).unwrap())
        }
        other => panic!("no native baseline for {other}"),
    }
}

fn routing(c: &mut Criterion) {
    let registry = registry();
    for scenario in scenarios() {
        let mut group = c.benchmark_group(format!("route/{}", scenario.plugin));
        group.throughput(Throughput::Elements(1));

        let native = native_router(scenario.plugin, &scenario.patterns);
        let guest_messages: Vec<switchyard_plugin::Message> = scenario
            .keys
            .iter()
            .map(|k| switchyard_plugin::Message {
                routing_key: k.clone(),
                headers: Vec::new(),
                properties: Default::default(),
                body_size: 0,
            })
            .collect();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("native", "per-message"), |b| {
            b.iter(|| {
                i = (i + 1) % guest_messages.len();
                native(&guest_messages[i])
            })
        });

        let exchange = || {
            let router =
                ExchangeRouter::new(registry.get(scenario.plugin).unwrap(), Vec::new()).unwrap();
            router.set_bindings(host_bindings(&scenario.patterns));
            router
        };
        let messages: Vec<Message> = scenario.keys.iter().map(Message::with_key).collect();
        let bodies: Vec<Bytes> = messages.iter().map(|_| Bytes::new()).collect();

        let router = exchange().without_decision_cache();
        let mut j = 0;
        group.bench_function(BenchmarkId::new("wasm", "single-call"), |b| {
            b.iter(|| {
                j = (j + 1) % messages.len();
                router.route(&messages[j], &bodies[j]).unwrap()
            })
        });
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::new("wasm", "batch-100"), |b| {
            b.iter(|| router.route_batch(&messages, &bodies).unwrap())
        });
        let cached = exchange();
        cached.route_batch(&messages, &bodies).unwrap();
        group.throughput(Throughput::Elements(1));
        let mut k = 0;
        group.bench_function(BenchmarkId::new("wasm", "cached"), |b| {
            b.iter(|| {
                k = (k + 1) % messages.len();
                cached.route(&messages[k], &bodies[k]).unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, routing);
criterion_main!(benches);
