//! SET routing in the publish path: an exchange with a `set-router`
//! argument asks that plugin, once per publish batch, which cell serves
//! each message under the SET table in force. Messages served here are
//! routed as usual; messages for another cell go to its outbox; refusals
//! (the plugin's, a trap, an unknown cell) go back to the publisher with
//! the reason — a message is never misrouted nor silently dropped.

use std::collections::BTreeMap;

use bytes::Bytes;
use switchyard_plugin_host::{Decision, SetRouter, SetTable};
use switchyard_protocol::cells::CENTER;
use switchyard_protocol::{Message, code};

use super::super::convert::message_to_plugin;
use super::super::error::BrokerError;
use super::super::exchange::Exchange;
use super::super::publish::Outcome;
use super::super::routing::Aftermath;
use super::super::{Broker, Vhost};
use super::table::CellTable;

/// Where one message is served.
pub(crate) enum Placement {
    Here,
    Cell(String),
    Refused(BrokerError),
}

/// The table as the set-router plugin sees it.
fn plugin_table(table: &CellTable) -> SetTable {
    SetTable {
        local_cell: table.local.clone(),
        version: table.version,
        ranges: (table.ranges.iter())
            .map(|r| (r.set.clone(), r.low, r.high))
            .collect(),
        pins: (table.pins.iter())
            .map(|(value, cell)| (value.clone(), cell.clone()))
            .collect(),
    }
}

impl CellTable {
    /// Whether the table knows `cell` (CENTER, this cell, a range's SET or
    /// a peer): a router naming anything else — a typo in a pin, a
    /// plugin's own idea — is refused, not stored for a cell that may
    /// never exist.
    fn knows(&self, cell: &str) -> bool {
        cell == CENTER
            || cell == self.local
            || self.ranges.iter().any(|r| r.set == cell)
            || self.peers.contains_key(cell)
    }
}

fn refused(router: &SetRouter, exchange: &Exchange, why: String) -> Placement {
    Placement::Refused(BrokerError::new(
        code::PLUGIN_ERROR,
        format!(
            "set-router {} of exchange '{}' {why}",
            router.plugin().active().label(),
            exchange.name()
        ),
    ))
}

impl Broker {
    /// Where each of `messages` is served, from one plugin call.
    pub(crate) fn place(
        &self,
        exchange: &Exchange,
        router: &SetRouter,
        table: &CellTable,
        messages: &[Message],
    ) -> Vec<Placement> {
        let plugin_messages: Vec<_> = messages.iter().map(message_to_plugin).collect();
        let bodies: Vec<Bytes> = messages.iter().map(|m| m.body.clone()).collect();
        let decisions = match router.route_batch(&plugin_messages, &bodies, &plugin_table(table)) {
            Ok(decisions) => decisions,
            Err(e) => {
                let e = BrokerError::from(e);
                return (0..messages.len())
                    .map(|_| refused(router, exchange, format!("failed: {}", e.message)))
                    .collect();
            }
        };
        decisions
            .into_iter()
            .map(|decision| {
                let cell = match decision {
                    Decision::Local => return Placement::Here,
                    Decision::Reject(reason) => {
                        return refused(
                            router,
                            exchange,
                            format!("rejected the message: {reason}"),
                        );
                    }
                    Decision::Center => CENTER.to_string(),
                    Decision::Set(set) => set,
                };
                if cell == table.local {
                    Placement::Here
                } else if !table.is_deployed() {
                    refused(
                        router,
                        exchange,
                        format!(
                            "chose cell '{cell}', but this broker is not part of a SET \
                             deployment (no [cells] local)"
                        ),
                    )
                } else if !table.knows(&cell) {
                    refused(
                        router,
                        exchange,
                        format!(
                            "chose cell '{cell}', which SET table version {} does not know",
                            table.version
                        ),
                    )
                } else {
                    Placement::Cell(cell)
                }
            })
            .collect()
    }

    /// Publishes through an exchange with a SET router: placed, then each
    /// group stored where it belongs; outcomes in the batch's order.
    pub(crate) fn place_and_publish(
        &self,
        vhost: &Vhost,
        exchange: &Exchange,
        router: &SetRouter,
        messages: &[Message],
        aftermath: &mut Aftermath,
    ) -> Vec<Outcome> {
        let table = self.cell_table();
        let placements = self.place(exchange, router, &table, messages);
        let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
        let mut here = Vec::new();
        let mut for_cells: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, placement) in placements.into_iter().enumerate() {
            match placement {
                Placement::Here => here.push(i),
                Placement::Cell(cell) => for_cells.entry(cell).or_default().push(i),
                Placement::Refused(e) => outcomes[i] = Some(Outcome::Refused(e)),
            }
        }
        if !here.is_empty() {
            let local: Vec<Message> = here.iter().map(|&i| messages[i].clone()).collect();
            let stored = self.filter_route_and_store(vhost, exchange, &local, aftermath);
            for (i, outcome) in here.into_iter().zip(stored) {
                outcomes[i] = Some(outcome);
            }
        }
        for (cell, indices) in for_cells {
            let batch: Vec<&Message> = indices.iter().map(|&i| &messages[i]).collect();
            let stored = self.store_for_cell(&vhost.name, exchange.name(), &cell, &table, &batch);
            for (i, outcome) in indices.into_iter().zip(stored) {
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every message placed"))
            .collect()
    }
}

impl Broker {
    /// Routes an outbox message stored for `from_cell` under an older
    /// table by `table`: true if it now belongs elsewhere and was stored
    /// there (here, or another cell's outbox). When it cannot be placed
    /// anew (exchange gone, a refusal), it goes where it was bound.
    pub(crate) fn reroute(
        &self,
        from_cell: &str,
        vhost: &str,
        exchange: &str,
        message: &Message,
        table: &CellTable,
    ) -> Result<bool, BrokerError> {
        let Ok(vhost) = self.vhost(vhost) else {
            return Ok(false);
        };
        let Ok(exchange) = vhost.exchange(exchange) else {
            return Ok(false);
        };
        let Some(router) = &exchange.set_router else {
            return Ok(false);
        };
        let placement = self
            .place(&exchange, router, table, std::slice::from_ref(message))
            .remove(0);
        let outcome = match placement {
            Placement::Cell(cell) if cell == from_cell => return Ok(false),
            Placement::Refused(_) => return Ok(false),
            Placement::Here => {
                let mut aftermath = Aftermath::default();
                let outcomes = self.filter_route_and_store(
                    &vhost,
                    &exchange,
                    std::slice::from_ref(message),
                    &mut aftermath,
                );
                self.bury(&vhost, aftermath);
                outcomes
            }
            Placement::Cell(cell) => {
                self.store_for_cell(&vhost.name, exchange.name(), &cell, table, &[message])
            }
        };
        let moved = !matches!(outcome.first(), Some(Outcome::Refused(_)) | None);
        if moved {
            tracing::info!(
                from = from_cell,
                table = table.version,
                "message rerouted by a changed SET table"
            );
        }
        Ok(moved)
    }
}
