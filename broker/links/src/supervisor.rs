//! Starts one link per destination cell (the SET table's peers and every
//! outbox: messages may wait for a cell that has no peer yet) and one per
//! federated exchange. A cell's link lives as long as the broker; a
//! federation link until its exchange goes (then it is started again if
//! the exchange comes back). Both follow table changes themselves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::Broker;

/// How often new outboxes are looked for besides table changes (an
/// outbox appears with the first message for its cell).
const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// Runs the links of `broker` until `shutdown` resolves.
pub fn start(
    broker: Arc<Broker>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut table = broker.watch_cell_table();
        let mut running: HashSet<String> = HashSet::new();
        let mut federations = HashMap::new();
        let mut stop = shutdown.clone();
        loop {
            let mut cells = broker.outbox_cells();
            cells.extend(table.borrow_and_update().peers.keys().cloned());
            for cell in cells {
                if running.insert(cell.clone()) {
                    tracing::info!(%cell, "starting the link to cell");
                    tokio::spawn(super::link::run(broker.clone(), cell, shutdown.clone()));
                }
            }
            // Every forwarded record before the end of the log is now
            // remembered: the next start reads the log from here.
            if let Err(e) = broker.inbox_checkpoint() {
                tracing::warn!(error = %e, "could not record the inbox mark");
            }
            federations.retain(|_, task: &mut tokio::task::JoinHandle<()>| !task.is_finished());
            for federation in broker.federations() {
                if let std::collections::hash_map::Entry::Vacant(entry) =
                    federations.entry(federation.clone())
                {
                    tracing::info!(exchange = %federation.exchange, upstream = %federation.upstream_cell, "starting the federation link");
                    entry.insert(tokio::spawn(super::federation::run(
                        broker.clone(),
                        federation,
                        shutdown.clone(),
                    )));
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = table.changed() => {}
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            }
        }
    })
}
