//! Federation of global exchanges (RabbitMQ's federated exchange): an
//! exchange declared with `federation-upstream = CELL` follows the
//! exchange of the same name (or `federation-exchange`) on that cell's
//! broker. Its federation link (`broker/links`) reads a stream queue on
//! the upstream bound to the upstream exchange, in order, and hands each
//! message here with its stream offset; the message is stored once per
//! offset (the inbox) and published to the local exchange, never
//! SET-routed and never federated past `max-hops`.

use std::collections::BTreeMap;

use switchyard_protocol::cells::{FORWARD_SEQ_HEADER, FORWARDED_FROM_HEADER};
use switchyard_protocol::{Field, Message, Value, find};

use super::super::Broker;
use super::super::auth::Principal;
use super::super::error::BrokerError;
use super::super::exchange_arguments::bare_name;
use super::super::publish::Outcome;
use super::super::reserved_headers::set_header;
use super::super::routing::Aftermath;
use super::super::stream::STREAM_OFFSET_HEADER;

pub const FEDERATION_UPSTREAM: &str = "federation-upstream";
pub const FEDERATION_EXCHANGE: &str = "federation-exchange";
pub const MAX_HOPS: &str = "max-hops";
/// How many federation links a message crossed.
pub const FEDERATION_HOPS_HEADER: &str = "x-switchyard-federation-hops";

/// One federated exchange.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Federation {
    pub vhost: String,
    pub exchange: String,
    pub upstream_cell: String,
    pub upstream_exchange: String,
    pub max_hops: u32,
}

impl Federation {
    /// The stream queue on the upstream this broker's link reads.
    pub fn upstream_queue(&self, local_cell: &str) -> String {
        format!("federation.{local_cell}.{}", self.upstream_exchange)
    }
}

/// A federation link's state, as `list federation` shows it.
#[derive(Debug, Clone, Default)]
pub struct FederationStatus {
    pub state: String,
    /// Messages on the upstream not yet here.
    pub lag: u64,
    pub federated: u64,
    pub last_error: String,
}

/// The federation an exchange's arguments ask for, checked.
pub(crate) fn federation_arguments(
    arguments: &[Field],
) -> Result<Option<(String, Option<String>, u32)>, BrokerError> {
    let text = |name: &str| -> Result<Option<String>, BrokerError> {
        match arguments
            .iter()
            .find(|f| bare_name(f) == name)
            .map(|f| &f.value)
        {
            None => Ok(None),
            Some(Value::Text(text)) if !text.is_empty() => Ok(Some(text.clone())),
            Some(_) => Err(BrokerError::invalid_argument(format!(
                "exchange argument '{name}' must be a name"
            ))),
        }
    };
    let upstream = text(FEDERATION_UPSTREAM)?;
    let exchange = text(FEDERATION_EXCHANGE)?;
    let hops = match arguments
        .iter()
        .find(|f| bare_name(f) == MAX_HOPS)
        .map(|f| &f.value)
    {
        None => 1,
        Some(Value::Int(n)) if (1..=16).contains(n) => *n as u32,
        Some(Value::Text(t)) if t.parse::<u32>().is_ok_and(|n| (1..=16).contains(&n)) => {
            t.parse().unwrap()
        }
        Some(other) => {
            return Err(BrokerError::invalid_argument(format!(
                "exchange argument '{MAX_HOPS}' must be 1-16, not {other:?}"
            )));
        }
    };
    match upstream {
        Some(upstream) => Ok(Some((upstream, exchange, hops))),
        None if exchange.is_some() => Err(BrokerError::invalid_argument(format!(
            "exchange argument '{FEDERATION_EXCHANGE}' needs '{FEDERATION_UPSTREAM}'"
        ))),
        None => Ok(None),
    }
}

impl Broker {
    /// Every federated exchange of every vhost.
    pub fn federations(&self) -> Vec<Federation> {
        let mut federations = Vec::new();
        for vhost in self.vhosts.read().unwrap().values() {
            for exchange in vhost.exchanges.read().unwrap().values() {
                let arguments = exchange.record.arguments.decode();
                if let Ok(Some((upstream, upstream_exchange, max_hops))) =
                    federation_arguments(&arguments)
                {
                    federations.push(Federation {
                        vhost: vhost.name.clone(),
                        exchange: exchange.name().to_string(),
                        upstream_exchange: upstream_exchange
                            .unwrap_or_else(|| exchange.name().to_string()),
                        upstream_cell: upstream,
                        max_hops,
                    });
                }
            }
        }
        federations.sort();
        federations
    }

    /// The binding keys (and arguments) of a federated exchange: what its
    /// link binds the upstream queue with, so that only messages some
    /// local binding wants cross.
    pub fn federation_bindings(&self, federation: &Federation) -> Vec<(String, Vec<Field>)> {
        let Ok(exchange) = self
            .vhost(&federation.vhost)
            .and_then(|v| v.exchange(&federation.exchange))
        else {
            return Vec::new();
        };
        let mut keys: Vec<(String, Vec<Field>)> = exchange
            .bindings()
            .into_iter()
            .map(|b| (b.key, b.arguments.decode()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.dedup();
        keys
    }

    /// Stores messages a federation link read from the upstream (each with
    /// its upstream stream offset in `x-stream-offset`): each offset once,
    /// published to the federated exchange. Durable as its queues' confirms
    /// are when this returns; an error if any was refused (the link then
    /// reads them again).
    pub fn publish_federated(
        &self,
        federation: &Federation,
        messages: Vec<Message>,
    ) -> Result<u64, BrokerError> {
        let vhost = self.vhost(&federation.vhost)?;
        let mut batch = Vec::with_capacity(messages.len());
        for mut message in messages {
            let Some(Value::Int(offset)) = find(&message.headers, STREAM_OFFSET_HEADER).cloned()
            else {
                return Err(BrokerError::invalid_argument(
                    "a federated message needs its upstream x-stream-offset",
                ));
            };
            let hops = match find(&message.headers, FEDERATION_HOPS_HEADER) {
                Some(Value::Int(hops)) => *hops as u32,
                _ => 0,
            };
            if hops >= federation.max_hops {
                continue;
            }
            message.headers.retain(|f| f.name != STREAM_OFFSET_HEADER);
            set_header(
                &mut message,
                FEDERATION_HOPS_HEADER,
                Value::Int(i64::from(hops) + 1),
            );
            set_header(
                &mut message,
                FORWARDED_FROM_HEADER,
                Value::Text(federation.upstream_cell.clone()),
            );
            set_header(
                &mut message,
                FORWARD_SEQ_HEADER,
                Value::Text(format!(
                    "federation:{}/{offset}",
                    federation.upstream_exchange
                )),
            );
            batch.push(message);
        }
        let mut aftermath = Aftermath::default();
        let outcomes =
            self.publish_unchecked_forwarded(&vhost, &federation.exchange, &batch, &mut aftermath);
        self.bury(&vhost, aftermath);
        let mut durable = None;
        for outcome in &outcomes {
            match outcome {
                Outcome::Refused(e) => return Err(e.clone()),
                Outcome::Stored { durable_after } => durable = durable.max(*durable_after),
                Outcome::Unroutable | Outcome::Duplicate | Outcome::Forwarding { .. } => {}
            }
        }
        if let Some(point) = durable {
            self.wait_durable(point)?;
        }
        let federated = outcomes
            .iter()
            .filter(|o| **o != Outcome::Duplicate)
            .count() as u64;
        let mut statuses = self.cells.federation.lock().unwrap();
        statuses.entry(federation.clone()).or_default().federated += federated;
        Ok(federated)
    }

    /// Records what a federation link is doing, for `list federation`.
    pub fn set_federation_status(
        &self,
        federation: &Federation,
        state: &str,
        lag: Option<u64>,
        error: Option<String>,
    ) {
        let mut statuses = self.cells.federation.lock().unwrap();
        let status = statuses.entry(federation.clone()).or_default();
        status.state = state.to_string();
        if let Some(lag) = lag {
            status.lag = lag;
        }
        if let Some(error) = error {
            status.last_error = error;
        }
    }

    /// Per federated exchange, for metrics.
    pub(crate) fn federation_metrics(&self) -> Vec<super::super::metrics::FederationMetrics> {
        let statuses = self.cells.federation.lock().unwrap().clone();
        self.federations()
            .into_iter()
            .map(|f| {
                let status = statuses.get(&f).cloned().unwrap_or_default();
                super::super::metrics::FederationMetrics {
                    up: status.state == "up",
                    lag: status.lag,
                    federated: status.federated,
                    vhost: f.vhost,
                    exchange: f.exchange,
                    upstream: f.upstream_cell,
                }
            })
            .collect()
    }

    /// `list federation` rows (administrators).
    pub(crate) fn federation_rows(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Vec<Field>>, BrokerError> {
        principal.require_administrator("listing federation links")?;
        let statuses: BTreeMap<Federation, FederationStatus> =
            (self.cells.federation.lock().unwrap().iter())
                .map(|(f, s)| (f.clone(), s.clone()))
                .collect();
        Ok(self
            .federations()
            .into_iter()
            .filter(|f| f.vhost == principal.vhost)
            .map(|f| {
                let status = statuses.get(&f).cloned().unwrap_or_default();
                let state = if status.state.is_empty() {
                    "starting".into()
                } else {
                    status.state
                };
                vec![
                    Field::new("exchange", Value::Text(f.exchange.clone())),
                    Field::new("upstream", Value::Text(f.upstream_cell.clone())),
                    Field::new(
                        "upstream_exchange",
                        Value::Text(f.upstream_exchange.clone()),
                    ),
                    Field::new("state", Value::Text(state)),
                    Field::new("lag", Value::Int(status.lag as i64)),
                    Field::new("federated", Value::Int(status.federated as i64)),
                    Field::new("last_error", Value::Text(status.last_error)),
                ]
            })
            .collect())
    }
}
