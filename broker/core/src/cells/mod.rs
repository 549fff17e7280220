//! SET (cell) deployments: the broker's cell and SET table (`table`),
//! deciding per message where it is served (`routing`, through the
//! exchange's `set-router` plugin), storing messages for other cells
//! until a link has handed them over (`outbox`), and storing forwarded
//! messages exactly once (`inbox`), following global exchanges of another
//! cell (`federation`). The links themselves — QUIC clients
//! of the other cells' brokers — live outside the core (`broker/links`):
//! the core decides and stores, the links carry.
//!
//! Invariants: a message for another cell is confirmed to its publisher
//! only once stored here (in its outbox); it leaves the outbox only when
//! the other cell confirmed it; a forwarded message is never forwarded
//! again; a forwarded message is stored at most once per place in its
//! origin's outbox.

mod federation;
mod inbox;
mod outbox;
mod routing;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_protocol::{Field, Value};

pub(crate) use federation::federation_arguments;
pub use federation::{FEDERATION_HOPS_HEADER, Federation, FederationStatus};
pub use outbox::{Forward, LinkState, LinkStatus};
pub use table::{CellTable, ForwardConfirm, Peer, SlotRange};

use super::Broker;
use super::auth::Principal;
use super::error::BrokerError;

/// The metadata tree of the table and the broker's forwarding epoch.
const CELLS: &str = "cells";

/// The cells state of a broker.
pub(crate) struct Cells {
    table: tokio::sync::watch::Sender<Arc<CellTable>>,
    /// Names this broker's data: a forwarded message's place is
    /// `epoch/offset`, so a broker recreated from scratch (offsets from 0
    /// again) is not taken for a duplicate of its former self.
    epoch: u64,
    outboxes: Mutex<HashMap<String, Arc<outbox::Outbox>>>,
    inbox: inbox::Inbox,
    federation: Mutex<HashMap<Federation, FederationStatus>>,
}

impl Broker {
    /// The SET table in force.
    pub fn cell_table(&self) -> Arc<CellTable> {
        self.cells.table.borrow().clone()
    }

    /// Follows the SET table: links re-read it on every change.
    pub fn watch_cell_table(&self) -> tokio::sync::watch::Receiver<Arc<CellTable>> {
        self.cells.table.subscribe()
    }

    /// Replaces the SET table (administrators). Refused unless the table
    /// in force has `expect_version` (0: any); the new one gets the next
    /// version, is persisted, then takes effect — atomically for every
    /// later publish. Returns the new version.
    pub fn set_cell_table(
        &self,
        principal: &Principal,
        expect_version: u64,
        mut table: CellTable,
    ) -> Result<u64, BrokerError> {
        principal.require_administrator("changing the SET table")?;
        table.keep_secrets_of(&self.cell_table());
        table.validate().map_err(BrokerError::invalid_argument)?;
        let mut result = Ok(0);
        self.cells.table.send_if_modified(|current| {
            if expect_version != 0 && current.version != expect_version {
                result = Err(BrokerError::precondition(format!(
                    "the SET table is at version {}, not {expect_version}: another change came \
                     first; read it again",
                    current.version
                )));
                return false;
            }
            table.version = current.version + 1;
            if let Err(e) = self.persist(CELLS, "table", &table) {
                result = Err(e);
                return false;
            }
            result = Ok(table.version);
            *current = Arc::new(table.clone());
            true
        });
        let version = result?;
        tracing::info!(version, "SET table changed");
        Ok(version)
    }

    /// The SET table as `list cells` rows (administrators): one row per
    /// range, pin and peer, each with the table's version and cell.
    pub(crate) fn cell_rows(&self, principal: &Principal) -> Result<Vec<Vec<Field>>, BrokerError> {
        principal.require_administrator("listing the SET table")?;
        let table = self.cell_table().without_secrets();
        let row = |kind: &str, cell: &str, what: String, detail: String| {
            vec![
                Field::new("version", Value::Int(table.version as i64)),
                Field::new("local", Value::Text(table.local.clone())),
                Field::new("entry", Value::Text(kind.into())),
                Field::new("cell", Value::Text(cell.into())),
                Field::new("what", Value::Text(what)),
                Field::new("detail", Value::Text(detail)),
                Field::new(
                    "confirm",
                    Value::Text(match table.confirm {
                        ForwardConfirm::Stored => "stored".into(),
                        ForwardConfirm::Remote => "remote".into(),
                    }),
                ),
            ]
        };
        let mut rows = Vec::new();
        for range in &table.ranges {
            let what = format!("{}-{}", range.low, range.high);
            rows.push(row("range", &range.set, what, String::new()));
        }
        for (value, cell) in &table.pins {
            rows.push(row("pin", cell, value.clone(), String::new()));
        }
        for (cell, peer) in &table.peers {
            let ca = peer.ca.as_ref().map(|p| p.display().to_string());
            rows.push(row("peer", cell, peer.url.clone(), ca.unwrap_or_default()));
        }
        if rows.is_empty() {
            rows.push(row("none", "", String::new(), String::new()));
        }
        Ok(rows)
    }

    /// At start: the persisted table, or the configured one when its
    /// version is greater (an operator's edit of the config file); the
    /// forwarding epoch; the outboxes of the previous run.
    pub(crate) fn restore_cells(&self, configured: Option<CellTable>) -> Result<(), BrokerError> {
        let meta = self.store.metadata();
        let persisted: Option<CellTable> = meta.get(CELLS, "table")?;
        let current = persisted.unwrap_or_default();
        let table = match configured {
            Some(configured) if configured.version > current.version => {
                configured.validate().map_err(|e| {
                    BrokerError::invalid_argument(format!("[cells] in the configuration: {e}"))
                })?;
                self.persist(CELLS, "table", &configured)?;
                configured
            }
            Some(configured) if configured != current && configured.version > 0 => {
                tracing::warn!(
                    configured = configured.version,
                    in_force = current.version,
                    "the configured SET table is not newer than the one in force; keeping that"
                );
                current
            }
            _ => current,
        };
        self.cells.table.send_replace(Arc::new(table));
        self.restore_outboxes()?;
        self.inbox_restore()
    }
}

impl Cells {
    pub(crate) fn open(meta: &switchyard_storage::Metadata) -> Result<Cells, BrokerError> {
        let epoch = match meta.get::<u64>(CELLS, "epoch")? {
            Some(epoch) => epoch,
            None => {
                let epoch = random_epoch();
                meta.put(CELLS, "epoch", &epoch)?;
                meta.flush()?;
                epoch
            }
        };
        Ok(Cells {
            table: tokio::sync::watch::Sender::new(Arc::default()),
            epoch,
            outboxes: Mutex::default(),
            inbox: inbox::Inbox::default(),
            federation: Mutex::default(),
        })
    }
}

/// A number no other data dir is likely to have drawn: time and process
/// id through a hasher seeded by the OS.
fn random_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() >> 1
}
