//! Metrics of SET deployments: per link to another cell (label `cell`)
//! and per federated exchange (`vhost`, `exchange`, `upstream`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use switchyard_core::BrokerMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    cell: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FederationLabels {
    vhost: String,
    exchange: String,
    upstream: String,
}

fn set(gauge: &Gauge, value: u64) {
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
}

pub(crate) fn register(registry: &mut Registry, metrics: &BrokerMetrics) {
    let up = Family::<LinkLabels, Gauge>::default();
    let queued = Family::<LinkLabels, Gauge>::default();
    let forwarded = Family::<LinkLabels, Counter>::default();
    for link in &metrics.links {
        let labels = LinkLabels {
            cell: link.cell.clone(),
        };
        set(&up.get_or_create(&labels), u64::from(link.up));
        set(&queued.get_or_create(&labels), link.queued);
        forwarded.get_or_create(&labels).inc_by(link.forwarded);
    }
    registry.register("link_up", "1 while the link to a cell is connected", up);
    registry.register(
        "link_messages_queued",
        "Messages stored here for another cell, not yet confirmed by it",
        queued,
    );
    registry.register(
        "link_messages_forwarded",
        "Messages another cell confirmed since the broker started",
        forwarded,
    );

    let up = Family::<FederationLabels, Gauge>::default();
    let lag = Family::<FederationLabels, Gauge>::default();
    let federated = Family::<FederationLabels, Counter>::default();
    for f in &metrics.federations {
        let labels = FederationLabels {
            vhost: f.vhost.clone(),
            exchange: f.exchange.clone(),
            upstream: f.upstream.clone(),
        };
        set(&up.get_or_create(&labels), u64::from(f.up));
        set(&lag.get_or_create(&labels), f.lag);
        federated.get_or_create(&labels).inc_by(f.federated);
    }
    registry.register("federation_up", "1 while the federation link is up", up);
    registry.register(
        "federation_lag_messages",
        "Messages on the upstream not yet federated here",
        lag,
    );
    registry.register(
        "federation_messages",
        "Messages federated here since the broker started",
        federated,
    );
}
