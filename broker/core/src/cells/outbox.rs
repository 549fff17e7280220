//! Messages waiting here for another cell: one hidden store queue per
//! destination cell, in publish order. A link takes them in order
//! (leased, as a consumer would), and settles them once the other cell
//! confirmed them, or releases them to be taken again after a failure:
//! nothing leaves an outbox unconfirmed, and a crash returns whatever was
//! taken and not settled (in order, flagged redelivered).
//!
//! A message stored under an older SET table is routed again by the table
//! in force when the link takes it: it may now belong here (stored
//! locally) or to a third cell (moved to that outbox).

use std::sync::{Arc, Mutex};

use switchyard_protocol::cells::{FORWARD_SEQ_HEADER, FORWARDED_FROM_HEADER};
use switchyard_protocol::{Field, Message, Value};
use switchyard_storage::{FlushMode, QueueId};
use tokio::sync::Notify;

use super::super::Broker;
use super::super::convert::{from_stored, to_stored};
use super::super::error::BrokerError;
use super::super::publish::Outcome;
use super::super::reserved_headers::set_header;
use super::CELLS;
use super::table::{CellTable, ForwardConfirm};

/// The store queue of the outbox for `cell` (hidden: `\0…`).
fn store_name(cell: &str) -> String {
    format!("\u{0}cells-outbox\u{1f}{cell}")
}

/// Headers an outbox record carries besides the message's own (removed
/// before it is forwarded): the vhost it was published in, and the SET
/// table version that chose its cell.
const VHOST_HEADER: &str = "x-switchyard-outbox-vhost";
const TABLE_HEADER: &str = "x-switchyard-outbox-table";

/// The outboxes ever created, so that a restart finds them all (even for
/// a cell no longer in the table: its messages are still here).
const OUTBOXES_KEY: &str = "outboxes";

pub(crate) struct Outbox {
    queue: QueueId,
    ready: Arc<Notify>,
    /// Messages left it (confirmed by the cell, or moved elsewhere).
    settled: Notify,
    status: Mutex<LinkStatus>,
}

/// A link's state, as `list links` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkState {
    /// No peer configured for the cell: messages wait.
    #[default]
    NoPeer,
    Connecting,
    Up,
    /// Failed; trying again after a pause.
    Down,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::NoPeer => "no-peer",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    pub state: LinkState,
    pub last_error: String,
    /// Messages the other cell confirmed since this broker started.
    pub forwarded: u64,
    pub since_ms: u64,
}

/// A message to forward: publish `message` to `exchange` in `vhost` of the
/// cell's broker, then settle `offset`.
#[derive(Debug, Clone)]
pub struct Forward {
    pub offset: u64,
    pub vhost: String,
    pub exchange: String,
    pub message: Message,
}

fn take_header(message: &mut Message, name: &str) -> Option<Value> {
    let at = message.headers.iter().position(|f| f.name == name)?;
    Some(message.headers.remove(at).value)
}

impl Broker {
    fn outbox(&self, cell: &str) -> Result<Arc<Outbox>, BrokerError> {
        if let Some(outbox) = self.cells.outboxes.lock().unwrap().get(cell) {
            return Ok(outbox.clone());
        }
        let queue = self
            .store
            .create_queue(&store_name(cell), FlushMode::Async)?;
        let mut outboxes = self.cells.outboxes.lock().unwrap();
        let outbox = outboxes
            .entry(cell.to_string())
            .or_insert_with(|| {
                Arc::new(Outbox {
                    queue,
                    ready: Arc::default(),
                    settled: Notify::new(),
                    status: Mutex::default(),
                })
            })
            .clone();
        let mut cells: Vec<&String> = outboxes.keys().collect();
        cells.sort();
        self.persist(CELLS, OUTBOXES_KEY, &cells)?;
        Ok(outbox)
    }

    pub(super) fn restore_outboxes(&self) -> Result<(), BrokerError> {
        let cells: Vec<String> = self
            .store
            .metadata()
            .get(CELLS, OUTBOXES_KEY)?
            .unwrap_or_default();
        for cell in cells {
            self.outbox(&cell)?;
        }
        Ok(())
    }

    /// Stores `messages` (published to `exchange` in `vhost`) for `cell`.
    pub(crate) fn store_for_cell(
        &self,
        vhost: &str,
        exchange: &str,
        cell: &str,
        table: &CellTable,
        messages: &[&Message],
    ) -> Vec<Outcome> {
        let outbox = match self.outbox(cell) {
            Ok(outbox) => outbox,
            Err(e) => return vec![Outcome::Refused(e); messages.len()],
        };
        let now = self.now_ms();
        let outcomes = messages
            .iter()
            .map(|message| {
                let mut message = (*message).clone();
                set_header(&mut message, VHOST_HEADER, Value::Text(vhost.into()));
                set_header(&mut message, TABLE_HEADER, Value::Int(table.version as i64));
                let mut stored = to_stored(exchange, &message, now);
                // Its time to live starts again where it is delivered.
                stored.expiry_ms = 0;
                match (self.store.append(&stored, &[outbox.queue]), table.confirm) {
                    (Ok(_), ForwardConfirm::Stored) => Outcome::Stored {
                        durable_after: None,
                    },
                    (Ok(appended), ForwardConfirm::Remote) => Outcome::Forwarding {
                        cell: cell.to_string(),
                        offset: appended.offsets[0].1,
                    },
                    (Err(e), _) => Outcome::Refused(e.into()),
                }
            })
            .collect();
        outbox.ready.notify_waiters();
        outcomes
    }

    /// Cells with an outbox (messages may wait there).
    pub fn outbox_cells(&self) -> Vec<String> {
        let mut cells: Vec<String> = self
            .cells
            .outboxes
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        cells.sort();
        cells
    }

    /// Notified when messages are stored for `cell`.
    pub fn outbox_ready(&self, cell: &str) -> Result<Arc<Notify>, BrokerError> {
        Ok(self.outbox(cell)?.ready.clone())
    }

    /// Takes up to `max` messages for `cell`, in order (earlier ones taken
    /// and released first). Each must be settled or released.
    pub fn outbox_take(&self, cell: &str, max: usize) -> Result<Vec<Forward>, BrokerError> {
        let outbox = self.outbox(cell)?;
        let table = self.cell_table();
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(delivered) = self.store.deliver(outbox.queue)? else {
                break;
            };
            let Some(mut forward) = self.unpack(cell, &outbox, &table, &delivered)? else {
                continue;
            };
            // Replaced, never added beside a copy a publisher wrote.
            set_header(
                &mut forward.message,
                FORWARDED_FROM_HEADER,
                Value::Text(table.local.clone()),
            );
            set_header(
                &mut forward.message,
                FORWARD_SEQ_HEADER,
                Value::Text(format!("{}/{}", self.cells.epoch, delivered.offset)),
            );
            taken.push(forward);
        }
        Ok(taken)
    }

    /// Routes again every message waiting for `cell` that an older table
    /// placed (while its link cannot forward them: the peer is down or
    /// gone); the rest stay, in order. Returns how many moved.
    pub fn outbox_reroute(&self, cell: &str) -> Result<u64, BrokerError> {
        let outbox = self.outbox(cell)?;
        let table = self.cell_table();
        let (mut kept, mut moved) = (Vec::new(), 0);
        while let Some(delivered) = self.store.deliver(outbox.queue)? {
            match self.unpack(cell, &outbox, &table, &delivered)? {
                Some(_) => kept.push(delivered.offset),
                None => moved += 1,
            }
        }
        self.store.release(outbox.queue, &kept)?;
        Ok(moved)
    }

    /// The message of an outbox record, unless it is gone: unreadable
    /// (dropped, logged) or placed anew by the table in force (stored
    /// where that table puts it).
    fn unpack(
        &self,
        cell: &str,
        outbox: &Outbox,
        table: &CellTable,
        delivered: &switchyard_storage::Delivered,
    ) -> Result<Option<Forward>, BrokerError> {
        let (exchange, mut message) = match from_stored(&delivered.message) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::error!(cell, offset = delivered.offset, error = %e, "unreadable outbox record skipped");
                self.store.ack(outbox.queue, delivered.offset)?;
                return Ok(None);
            }
        };
        let vhost = match take_header(&mut message, VHOST_HEADER) {
            Some(Value::Text(vhost)) => vhost,
            _ => "/".to_string(),
        };
        let version = match take_header(&mut message, TABLE_HEADER) {
            Some(Value::Int(version)) => version as u64,
            _ => 0,
        };
        if version != table.version && self.reroute(cell, &vhost, &exchange, &message, table)? {
            self.store.ack(outbox.queue, delivered.offset)?;
            outbox.settled.notify_waiters();
            return Ok(None);
        }
        Ok(Some(Forward {
            offset: delivered.offset,
            vhost,
            exchange,
            message,
        }))
    }

    /// The other cell confirmed these.
    pub fn outbox_settle(&self, cell: &str, offsets: &[u64]) -> Result<(), BrokerError> {
        let outbox = self.outbox(cell)?;
        for &offset in offsets {
            self.store.ack(outbox.queue, offset)?;
        }
        outbox.status.lock().unwrap().forwarded += offsets.len() as u64;
        outbox.settled.notify_waiters();
        Ok(())
    }

    /// Resolves once message `offset` of `cell`'s outbox left it: the
    /// cell confirmed it (or a newer table moved it elsewhere first).
    pub async fn wait_forwarded(&self, cell: &str, offset: u64) -> Result<(), BrokerError> {
        let outbox = self.outbox(cell)?;
        loop {
            let settled = outbox.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.store.is_settled(outbox.queue, offset)? {
                return Ok(());
            }
            settled.await;
        }
    }

    /// Forwarding failed: these are taken again, first.
    pub fn outbox_release(&self, cell: &str, offsets: &[u64]) -> Result<(), BrokerError> {
        let outbox = self.outbox(cell)?;
        self.store.release(outbox.queue, offsets)?;
        Ok(())
    }

    /// Records what a link is doing, for `list links`.
    pub fn set_link_status(&self, cell: &str, state: LinkState, error: Option<String>) {
        let Ok(outbox) = self.outbox(cell) else {
            return;
        };
        let mut status = outbox.status.lock().unwrap();
        if status.state != state {
            status.since_ms = self.now_ms();
        }
        status.state = state;
        match error {
            Some(error) => status.last_error = error,
            // Up again: an error from before is no longer the link's state.
            None if state == LinkState::Up => status.last_error.clear(),
            None => {}
        }
    }

    /// Per destination cell, for metrics.
    pub(crate) fn link_metrics(&self) -> Vec<super::super::metrics::LinkMetrics> {
        let outboxes: Vec<(String, Arc<Outbox>)> = (self.cells.outboxes.lock().unwrap().iter())
            .map(|(cell, outbox)| (cell.clone(), outbox.clone()))
            .collect();
        outboxes
            .into_iter()
            .map(|(cell, outbox)| {
                let stats = self.store.stats(outbox.queue).unwrap_or_default();
                let status = outbox.status.lock().unwrap().clone();
                super::super::metrics::LinkMetrics {
                    cell,
                    up: status.state == LinkState::Up,
                    queued: stats.ready + stats.unacked,
                    forwarded: status.forwarded,
                }
            })
            .collect()
    }

    /// `list links` rows (administrators): per destination cell, the
    /// link's state, what waits, what was forwarded, the last error.
    pub(crate) fn link_rows(
        &self,
        principal: &super::super::auth::Principal,
    ) -> Result<Vec<Vec<Field>>, BrokerError> {
        principal.require_administrator("listing the links to other cells")?;
        let table = self.cell_table();
        let mut cells = self.outbox_cells();
        for cell in table.peers.keys() {
            if !cells.contains(cell) {
                cells.push(cell.clone());
            }
        }
        cells.sort();
        let mut rows = Vec::new();
        for cell in cells {
            let outbox = self.outbox(&cell)?;
            let stats = self.store.stats(outbox.queue).unwrap_or_default();
            let status = outbox.status.lock().unwrap().clone();
            let peer = table
                .without_secrets()
                .peers
                .get(&cell)
                .map(|p| p.url.clone());
            rows.push(vec![
                Field::new("peer", Value::Text(cell.clone())),
                Field::new("url", Value::Text(peer.unwrap_or_default())),
                Field::new("state", Value::Text(status.state.as_str().into())),
                Field::new("queued", Value::Int((stats.ready + stats.unacked) as i64)),
                Field::new("forwarded", Value::Int(status.forwarded as i64)),
                Field::new("last_error", Value::Text(status.last_error)),
            ]);
        }
        Ok(rows)
    }
}
