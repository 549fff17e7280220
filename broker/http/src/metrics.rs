//! `GET /metrics`: the broker's metrics in the Prometheus text format
//! (prometheus-client), for administrators. A registry is filled from one
//! snapshot of the core per scrape; labels are bounded (vhost + queue,
//! plugin + version), never per message or connection.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use switchyard_core::{Broker, BrokerMetrics};

use super::auth::{Authenticated, Refused};
use super::histograms::{Buckets, Histogram, Histograms, call_latency};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    vhost: String,
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    version: String,
    kind: String,
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// Registers one family per (name, help, unit), filled by `values`.
fn queue_gauges(
    registry: &mut Registry,
    metrics: &BrokerMetrics,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: fn(&switchyard_core::QueueMetrics) -> u64,
) {
    let family = Family::<QueueLabels, Gauge>::default();
    for q in &metrics.queues {
        let labels = QueueLabels {
            vhost: q.vhost.clone(),
            queue: q.queue.clone(),
        };
        family
            .get_or_create(&labels)
            .set(i64::try_from(value(q)).unwrap_or(i64::MAX));
    }
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family),
        None => registry.register(name, help, family),
    }
}

fn queue_counters(
    registry: &mut Registry,
    metrics: &BrokerMetrics,
    name: &str,
    help: &str,
    value: fn(&switchyard_core::QueueMetrics) -> u64,
) {
    let family = Family::<QueueLabels, Counter>::default();
    for q in &metrics.queues {
        let labels = QueueLabels {
            vhost: q.vhost.clone(),
            queue: q.queue.clone(),
        };
        family.get_or_create(&labels).inc_by(value(q));
    }
    registry.register(name, help, family);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    vhost: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    vhost: String,
    group: String,
    outcome: String,
}

/// Per producer group: pending transactions, checks sent, outcomes.
fn producer_group_metrics(registry: &mut Registry, metrics: &BrokerMetrics) {
    let pending = Family::<GroupLabels, Gauge>::default();
    let checks = Family::<GroupLabels, Counter>::default();
    let ended = Family::<OutcomeLabels, Counter>::default();
    for g in &metrics.producer_groups {
        let labels = GroupLabels {
            vhost: g.vhost.clone(),
            group: g.group.clone(),
        };
        pending
            .get_or_create(&labels)
            .set(i64::try_from(g.pending).unwrap_or(i64::MAX));
        checks.get_or_create(&labels).inc_by(g.checks_sent);
        for (outcome, n) in [
            ("committed", g.committed),
            ("rolled_back", g.rolled_back),
            ("given_up", g.given_up),
        ] {
            let labels = OutcomeLabels {
                vhost: g.vhost.clone(),
                group: g.group.clone(),
                outcome: outcome.into(),
            };
            ended.get_or_create(&labels).inc_by(n);
        }
    }
    registry.register(
        "transactions_pending",
        "Half messages waiting for their producers",
        pending,
    );
    registry.register(
        "transaction_checks",
        "Checks sent to producer groups",
        checks,
    );
    registry.register(
        "transactions_ended",
        "Transactions ended, by outcome",
        ended,
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    vhost: String,
    exchange: String,
}

/// One figure of an exchange's counters.
type ExchangeFigure = fn(&switchyard_core::ExchangeCounterValues) -> u64;

/// Per exchange: messages published, unroutable, refused.
fn exchange_metrics(registry: &mut Registry, metrics: &BrokerMetrics) {
    let families: [(&str, &str, ExchangeFigure); 3] = [
        (
            "exchange_messages_published",
            "Messages published to the exchange",
            |c| c.published,
        ),
        (
            "exchange_messages_unroutable",
            "Published messages no queue received",
            |c| c.unroutable,
        ),
        (
            "exchange_messages_refused",
            "Published messages refused (filter, plugin, full queue or disk)",
            |c| c.refused,
        ),
    ];
    for (name, help, value) in families {
        let family = Family::<ExchangeLabels, Counter>::default();
        for x in &metrics.exchanges {
            let labels = ExchangeLabels {
                vhost: x.vhost.clone(),
                exchange: x.exchange.clone(),
            };
            family.get_or_create(&labels).inc_by(value(&x.counters));
        }
        registry.register(name, help, family);
    }
}

fn plugin_labels(p: &switchyard_core::PluginSummary) -> PluginLabels {
    PluginLabels {
        plugin: p.name.clone(),
        version: p.active.clone(),
        kind: p.kind.clone(),
    }
}

/// Traps and timeouts per plugin, and each plugin's call-latency histogram.
fn plugin_failures(registry: &mut Registry, metrics: &BrokerMetrics) {
    let traps = Family::<PluginLabels, Counter>::default();
    let timeouts = Family::<PluginLabels, Counter>::default();
    let mut latency = Histograms { series: Vec::new() };
    for p in &metrics.plugins {
        let labels = plugin_labels(p);
        traps.get_or_create(&labels).inc_by(p.stats.traps);
        timeouts.get_or_create(&labels).inc_by(p.stats.timeouts);
        latency.series.push((
            labels,
            call_latency(&p.stats.latency_buckets, p.stats.call_nanos),
        ));
    }
    registry.register("plugin_traps", "Calls that trapped", traps);
    registry.register("plugin_timeouts", "Calls past their deadline", timeouts);
    registry.register_with_unit(
        "plugin_call_duration",
        "Sandboxed call time of the active version",
        Unit::Seconds,
        latency,
    );
}

/// The store: appends, and the log's flushes (msync) with their latency.
fn storage_metrics(registry: &mut Registry, metrics: &BrokerMetrics) {
    let storage = &metrics.storage;
    let counter = |n: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(n);
        counter
    };
    registry.register(
        "storage_appends",
        "Records appended to the commit log",
        counter(storage.appends),
    );
    registry.register_with_unit(
        "storage_appended",
        "Bytes appended to the commit log",
        Unit::Bytes,
        counter(storage.appended_bytes),
    );
    registry.register_with_unit(
        "storage_flush_duration",
        "Time of each flush (msync) of the commit log",
        Unit::Seconds,
        Histogram(Buckets {
            sum: storage.flush_seconds,
            count: storage.flushes,
            buckets: storage.flush_buckets.clone(),
        }),
    );
}

/// The process's resident anonymous memory and open files, from /proc.
fn process_figures() -> (Option<u64>, Option<u64>) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
        });
    let files = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    (rss, files)
}

/// The text exposition of `metrics`.
pub fn render(metrics: &BrokerMetrics) -> String {
    let mut registry = Registry::with_prefix("switchyard");
    queue_gauges(
        &mut registry,
        metrics,
        "queue_messages_ready",
        "Messages ready for delivery",
        None,
        |q| q.ready,
    );
    queue_gauges(
        &mut registry,
        metrics,
        "queue_messages_unacked",
        "Deliveries not yet acknowledged",
        None,
        |q| q.unacked,
    );
    queue_gauges(
        &mut registry,
        metrics,
        "queue_messages_delayed",
        "Delayed messages not yet due",
        None,
        |q| q.delayed,
    );
    queue_gauges(
        &mut registry,
        metrics,
        "queue_consumers",
        "Consumers",
        None,
        |q| q.consumers,
    );
    queue_gauges(
        &mut registry,
        metrics,
        "queue_ready",
        "Bytes of the ready messages",
        Some(Unit::Bytes),
        |q| q.ready_bytes,
    );
    queue_gauges(
        &mut registry,
        metrics,
        "queue_log_held",
        "Commit-log bytes the queue keeps from release",
        Some(Unit::Bytes),
        |q| q.log_bytes_held,
    );
    queue_gauges(
        &mut registry,
        metrics,
        "queue_index",
        "Bytes of the queue's index files",
        Some(Unit::Bytes),
        |q| q.index_bytes,
    );
    queue_counters(
        &mut registry,
        metrics,
        "queue_messages_published",
        "Messages stored in the queue",
        |q| q.counters.published,
    );
    queue_counters(
        &mut registry,
        metrics,
        "queue_messages_delivered",
        "Deliveries and gets",
        |q| q.counters.delivered,
    );
    queue_counters(
        &mut registry,
        metrics,
        "queue_messages_redelivered",
        "Deliveries flagged redelivered",
        |q| q.counters.redelivered,
    );
    queue_counters(
        &mut registry,
        metrics,
        "queue_messages_acked",
        "Acknowledged deliveries",
        |q| q.counters.acked,
    );
    queue_counters(
        &mut registry,
        metrics,
        "queue_messages_dead_lettered",
        "Deaths handed to the dead-letter policy",
        |q| q.counters.dead_lettered,
    );

    exchange_metrics(&mut registry, metrics);
    plugin_failures(&mut registry, metrics);
    storage_metrics(&mut registry, metrics);
    let calls = Family::<PluginLabels, Counter>::default();
    let errors = Family::<PluginLabels, Counter>::default();
    let quarantined = Family::<PluginLabels, Gauge>::default();
    let p99 = Family::<PluginLabels, Gauge<f64, AtomicU64>>::default();
    for p in &metrics.plugins {
        let labels = plugin_labels(p);
        calls.get_or_create(&labels).inc_by(p.stats.calls);
        errors.get_or_create(&labels).inc_by(p.stats.errors);
        quarantined
            .get_or_create(&labels)
            .set(i64::from(p.quarantined));
        p99.get_or_create(&labels)
            .set(p.stats.p99_call_ns as f64 / 1e9);
    }
    registry.register(
        "plugin_calls",
        "Sandboxed calls of the active version",
        calls,
    );
    registry.register(
        "plugin_errors",
        "Failed calls (traps, timeouts, memory, bad results)",
        errors,
    );
    registry.register(
        "plugin_quarantined",
        "1 while the active version is quarantined",
        quarantined,
    );
    registry.register_with_unit(
        "plugin_call_p99",
        "99th percentile call time (the bound of its latency bucket)",
        Unit::Seconds,
        p99,
    );

    registry.register(
        "connections",
        "Client connections",
        gauge(metrics.connections),
    );
    registry.register("channels", "Open channels", gauge(metrics.channels));
    producer_group_metrics(&mut registry, metrics);
    super::cell_metrics::register(&mut registry, metrics);
    registry.register_with_unit(
        "log",
        "Commit-log files on disk",
        Unit::Bytes,
        gauge(metrics.log_bytes),
    );
    registry.register(
        "log_segments",
        "Commit-log segments",
        gauge(metrics.log_segments),
    );
    let (rss, files) = process_figures();
    if let Some(rss) = rss {
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory",
            Unit::Bytes,
            gauge(rss),
        );
    }
    if let Some(files) = files {
        registry.register("process_open_fds", "Open file descriptors", gauge(files));
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics
/// exposition, for clients that do not ask for OpenMetrics (`curl`,
/// `promtool check metrics`): a counter's HELP and TYPE name its
/// `_total` series, and there are no UNIT or EOF lines.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

pub async fn metrics(
    State(broker): State<Arc<Broker>>,
    Authenticated(principal): Authenticated,
    headers: axum::http::HeaderMap,
) -> Response {
    let metrics = match broker.metrics(&principal) {
        Ok(metrics) => metrics,
        Err(e) => return Refused(e).into_response(),
    };
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let text = render(&metrics);
    match openmetrics {
        true => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        false => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            classic_text(&text),
        )
            .into_response(),
    }
}
