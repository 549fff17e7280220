//! What the broker reports to metrics (Prometheus, through the HTTP front
//! door): one snapshot across every vhost, gathered from the queues, the
//! store, the plugin registry and the connections. Labels stay bounded:
//! per queue and per plugin, never per message or connection.

use std::sync::atomic::Ordering;

use switchyard_plugin_host::PluginSummary;

use super::Broker;
use super::auth::Principal;
use super::counters::{CounterValues, ExchangeCounterValues};
use super::error::BrokerError;
use super::transaction_checks::ProducerGroupMetrics;

#[derive(Debug, Clone)]
pub struct QueueMetrics {
    pub vhost: String,
    pub queue: String,
    pub ready: u64,
    pub unacked: u64,
    pub delayed: u64,
    pub consumers: u64,
    pub ready_bytes: u64,
    /// Log bytes from its oldest needed record to the end of the log.
    pub log_bytes_held: u64,
    pub index_bytes: u64,
    pub counters: CounterValues,
}

#[derive(Debug, Clone)]
pub struct ExchangeMetrics {
    pub vhost: String,
    pub exchange: String,
    pub counters: ExchangeCounterValues,
}

#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    pub queues: Vec<QueueMetrics>,
    pub exchanges: Vec<ExchangeMetrics>,
    pub plugins: Vec<PluginSummary>,
    pub connections: u64,
    pub channels: u64,
    /// The commit log's files on disk.
    pub log_bytes: u64,
    pub log_segments: u64,
    /// Appends, flushes and their latency.
    pub storage: switchyard_storage::StorageStats,
    /// Producer groups: pending transactions, checks, outcomes.
    pub producer_groups: Vec<ProducerGroupMetrics>,
    /// Links to other cells: what waits, what was forwarded.
    pub links: Vec<LinkMetrics>,
    /// Federated exchanges: what was federated, the lag.
    pub federations: Vec<FederationMetrics>,
}

#[derive(Debug, Clone)]
pub struct LinkMetrics {
    pub cell: String,
    pub up: bool,
    pub queued: u64,
    pub forwarded: u64,
}

#[derive(Debug, Clone)]
pub struct FederationMetrics {
    pub vhost: String,
    pub exchange: String,
    pub upstream: String,
    pub up: bool,
    pub lag: u64,
    pub federated: u64,
}

impl Broker {
    /// Every metric the broker keeps, across vhosts: for administrators.
    pub fn metrics(&self, principal: &Principal) -> Result<BrokerMetrics, BrokerError> {
        principal.require_administrator("reading the broker's metrics")?;
        let mut queues = Vec::new();
        let mut exchanges = Vec::new();
        let vhosts: Vec<_> = self.vhosts.read().unwrap().values().cloned().collect();
        for vhost in vhosts {
            for x in vhost.exchanges.read().unwrap().values() {
                exchanges.push(ExchangeMetrics {
                    vhost: vhost.name.clone(),
                    exchange: x.name().to_string(),
                    counters: x.counters.values(),
                });
            }
            let listed: Vec<_> = vhost.queues.read().unwrap().values().cloned().collect();
            for q in listed {
                let stats = self.store.stats(q.id).unwrap_or_default();
                let space = self.store.space(q.id).unwrap_or_default();
                queues.push(QueueMetrics {
                    vhost: vhost.name.clone(),
                    queue: q.name().to_string(),
                    ready: stats.ready,
                    unacked: stats.unacked,
                    delayed: self.store.delayed(q.id),
                    consumers: u64::from(q.consumer_count()),
                    ready_bytes: stats.ready_bytes,
                    log_bytes_held: space.log_bytes_held,
                    index_bytes: space.index_bytes,
                    counters: q.counters.values(),
                });
            }
        }
        let connections = self.connections.lock().unwrap();
        let channels = connections
            .values()
            .map(|c| u64::from(c.channels.load(Ordering::Relaxed)))
            .sum();
        let log = self.store.log_files();
        Ok(BrokerMetrics {
            queues,
            exchanges,
            plugins: self.registry.list(),
            connections: connections.len() as u64,
            channels,
            log_bytes: log.bytes,
            log_segments: log.segments,
            producer_groups: self.producer_groups(None),
            storage: self.store.storage_stats(),
            links: self.link_metrics(),
            federations: self.federation_metrics(),
        })
    }
}
