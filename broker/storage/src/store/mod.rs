//! The message store: commit log + queue indexes + consumption state +
//! metadata, with group commit and crash recovery. No networking: the broker
//! drives it, tests and benchmarks use it directly.
//!
//! - `mod.rs` — the store's state and its API (queues, append, deliver,
//!   settle, stats).
//! - `recovery` — opening a store: verify indexes, replay the log and the
//!   consumption events after the checkpoint.
//! - `queue` — one queue: index, consumption state, byte counts.
//! - `views` — streams: views (a consumer group's own position over a
//!   stream's index), positions by time, retention by age and bytes.
//! - `halves` — half (transactional) messages: stored, not visible, until
//!   committed (one copy to their destinations) or rolled back.
//! - `delays` — delayed messages: the delay queue, timers, promotion.
//! - `durability` — the write path and the flusher: append, group commit,
//!   consumption events, checkpoints and retention.
//! - `durable_wait` — waiting for a flush: waiters by position, each woken
//!   by the flush that covers it.

mod delays;
mod durability;
mod durable_wait;
mod flush_stats;
mod halves;
mod queue;
mod recovery;
mod scan;
mod settlement;
mod views;

use durable_wait::Durability;
use queue::{Queue, QueueMeta, new_queue, queue_dir};

pub use delays::Promotion;
pub use durability::LogFiles;
pub use durable_wait::DurableFuture;
pub use flush_stats::StorageStats;
pub use halves::{Commit, HalfMessage};
pub use views::StreamBounds;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::config::{FlushMode, StoreConfig};
use super::consumption::{Consumption, Delivery};
use super::consumption_log::{Change, ConsumptionEvent, LEASE_STEP};
use super::disk_space::DiskSpace;
use super::error::StorageError;
use super::index::IndexEntry;
use super::log::CommitLog;
use super::metadata::Metadata;
use super::record::{QueueId, StoredMessage};

/// Recovery restarts from here: the log position and each queue's index end
/// as of a moment when both were on disk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    log_position: u64,
    queue_ends: BTreeMap<QueueId, u64>,
    /// Written by an orderly shutdown: nothing happened after it.
    #[serde(default)]
    clean: bool,
}

struct Writer {
    position: u64,
    next_queue_id: QueueId,
}

struct Inner {
    config: StoreConfig,
    log: CommitLog,
    /// The free-space floor messages stop at.
    disk_space: DiskSpace,
    meta: Metadata,
    writer: Mutex<Writer>,
    queues: RwLock<HashMap<QueueId, Arc<Queue>>>,
    /// The delay queue's timers (held while a delayed message is appended
    /// and while one is promoted).
    delays: Mutex<delays::Delays>,
    /// Appends and flushes, for metrics.
    flush_stats: flush_stats::FlushStats,
    /// The hidden queue of half (transactional) messages.
    half_queue: QueueId,
    /// Held while a half message is committed or discarded, so that it
    /// ends once.
    half_ends: Mutex<()>,
    /// Consumption events not yet in the log, in each queue's order
    /// (pushed under that queue's consumption lock).
    events: Mutex<Vec<ConsumptionEvent>>,
    /// Held while pending events are written, so that whoever returns from
    /// [`Inner::write_events`] knows every event pushed before is in the log.
    events_writer: Mutex<()>,
    durability: Mutex<Durability>,
    /// Wakes the flusher.
    flusher_cv: Condvar,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub scanned_from: u64,
    pub scanned_bytes: u64,
    pub records_replayed: u64,
    /// One line per thing dropped: which file, where, why.
    pub damage: Vec<String>,
}

/// The result of an append.
#[derive(Debug, Clone)]
pub struct Appended {
    pub position: u64,
    /// The log position after the record: durable once flushed past it.
    pub end: u64,
    /// (queue, offset in that queue) for each destination.
    pub offsets: Vec<(QueueId, u64)>,
    /// Whether a destination queue is in sync mode (wait before confirming).
    pub needs_sync: bool,
}

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub queue: QueueId,
    pub offset: u64,
    pub redelivered: bool,
    pub message: StoredMessage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub unacked: u64,
    pub stored: u64,
    /// Bytes of the ready messages, as the log holds them.
    pub ready_bytes: u64,
}

/// The disk space a queue accounts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSpace {
    /// Commit-log bytes from the queue's oldest needed record to the end of
    /// the log: what it keeps retention from releasing (shared with the
    /// other queues whose records lie in that range).
    pub log_bytes_held: u64,
    /// Bytes of its index files.
    pub index_bytes: u64,
}

pub struct MessageStore {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

const CONSUMPTION_TREE: &str = "store-consumption";
/// Events per consumption record (21 bytes each): records stay far below
/// the smallest segment.
const EVENTS_PER_RECORD: usize = 2048;
const QUEUES_TREE: &str = "store-queues";

impl MessageStore {
    pub fn metadata(&self) -> &Metadata {
        &self.inner.meta
    }

    /// Creates a queue, or returns the existing one of that name.
    pub fn create_queue(&self, name: &str, flush: FlushMode) -> Result<QueueId, StorageError> {
        let mut writer = self.inner.writer.lock().unwrap();
        if let Some(queue) = self
            .inner
            .queues
            .read()
            .unwrap()
            .values()
            .find(|q| q.name == name)
        {
            return Ok(queue.id);
        }
        let id = writer.next_queue_id;
        let queue = new_queue(&self.inner.config, &self.inner.meta, id, name, flush)?;
        writer.next_queue_id += 1;
        self.inner.queues.write().unwrap().insert(id, queue);
        Ok(id)
    }

    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        self.inner
            .queues
            .read()
            .unwrap()
            .values()
            .find(|q| q.name == name)
            .map(|q| q.id)
    }

    /// Every queue: id and name (not the store's own hidden queues, nor views).
    pub fn queues(&self) -> Vec<(QueueId, String)> {
        let queues = self.inner.queues.read().unwrap();
        queues
            .values()
            .filter(|q| !q.is_hidden() && !q.is_view())
            .map(|q| (q.id, q.name.clone()))
            .collect()
    }

    /// Deletes a queue and its index (a stream: its views too; a view: its
    /// position only); its log records are released by retention.
    pub fn delete_queue(&self, id: QueueId) -> Result<(), StorageError> {
        let _writer = self.inner.writer.lock().unwrap();
        let queue = self.inner.queue(id)?;
        let mut doomed = vec![queue.clone()];
        doomed.extend(self.inner.views_of(id));
        for queue in &doomed {
            self.inner.queues.write().unwrap().remove(&queue.id);
            self.inner.meta.remove(QUEUES_TREE, &queue.id.to_string())?;
            self.inner
                .meta
                .remove(CONSUMPTION_TREE, &queue.id.to_string())?;
        }
        self.inner.meta.flush()?;
        if queue.is_view() {
            return Ok(());
        }
        self.forget_delayed(id);
        drop(doomed);
        let index = Arc::try_unwrap(queue)
            .ok()
            .and_then(|queue| Arc::try_unwrap(queue.index).ok());
        if let Some(index) = index {
            index.into_inner().unwrap().destroy()?;
        } else {
            std::fs::remove_dir_all(queue_dir(&self.inner.config, id))
                .map_err(|e| StorageError::io(&queue_dir(&self.inner.config, id), e))?;
        }
        Ok(())
    }

    /// Drops every message of a queue not in flight; returns how many.
    pub fn purge_queue(&self, id: QueueId) -> Result<u64, StorageError> {
        let queue = self.inner.queue(id)?;
        let end = queue.index.lock().unwrap().end();
        Ok(self.inner.drop_ready_below(&queue, end))
    }

    /// Appends one record (the body is stored once, whatever the number of
    /// queues). Fails as a whole, leaving nothing behind, when out of space.
    pub fn append(
        &self,
        message: &StoredMessage,
        queue_ids: &[QueueId],
    ) -> Result<Appended, StorageError> {
        self.inner.append(message, queue_ids)
    }

    /// Appends and, if a destination is in sync mode, waits until durable.
    pub fn append_confirmed(
        &self,
        message: &StoredMessage,
        queue_ids: &[QueueId],
    ) -> Result<Appended, StorageError> {
        let appended = self.append(message, queue_ids)?;
        if appended.needs_sync {
            self.wait_durable(appended.end)?;
        }
        Ok(appended)
    }

    /// Reads message `offset` of a queue (zero-copy from the mmap).
    pub fn read(&self, queue: QueueId, offset: u64) -> Result<StoredMessage, StorageError> {
        let queue = self.inner.queue(queue)?;
        let entry = queue.index.lock().unwrap().get(offset)?;
        let record = self.inner.log.read(entry.position)?;
        if record.len != entry.len as usize || !record.queues.contains(&queue.source) {
            return Err(StorageError::Corrupt {
                location: format!("queue {} entry {offset}", queue.name),
                reason: "index entry does not match the log record".into(),
            });
        }
        Ok(record.message)
    }

    /// The next message to deliver from a queue (redeliveries first).
    pub fn deliver(&self, queue_id: QueueId) -> Result<Option<Delivered>, StorageError> {
        let queue = self.inner.queue(queue_id)?;
        let end = queue.index.lock().unwrap().end();
        let (
            Delivery {
                offset,
                redelivered,
            },
            leased,
        ) = {
            let mut consumption = queue.consumption.lock().unwrap();
            let Some(delivery) = consumption.next(end) else {
                return Ok(None);
            };
            let leased = delivery.offset >= consumption.lease;
            if leased {
                consumption.lease = delivery.offset + LEASE_STEP;
                let below = consumption.lease;
                self.inner
                    .record(&mut consumption, queue_id, Change::Leased { below });
            }
            (delivery, leased)
        };
        queue.taken(offset);
        if leased {
            // Before anything past the old lease goes out, the new one is
            // durable: after a crash, all of it comes back flagged.
            if let Err(error) = self
                .inner
                .write_events()
                .and_then(|end| self.wait_durable(end))
            {
                tracing::warn!(%error, "delivery lease not durable: after a crash, deliveries from here may come back unflagged");
            }
        }
        let message = match self.read(queue_id, offset) {
            Ok(message) => message,
            Err(error @ StorageError::Corrupt { .. }) => {
                // Unreadable for good: settled, so that it can neither stall
                // the queue nor come back after a restart. The caller
                // reports it and goes on with the next.
                self.ack(queue_id, offset)?;
                return Err(error);
            }
            Err(error) => {
                self.release(queue_id, &[offset])?;
                return Err(error);
            }
        };
        Ok(Some(Delivered {
            queue: queue_id,
            offset,
            redelivered,
            message,
        }))
    }

    /// Takes the head of a queue off it, marked in flight as a delivery
    /// would be, if `expired(entry, message)` says so; `None` when the head
    /// is live (or the queue is empty). The message is read only when the
    /// index entry alone cannot decide (`needs_message`).
    pub fn take_expired_head(
        &self,
        queue_id: QueueId,
        needs_message: bool,
        expired: impl Fn(&IndexEntry, Option<&StoredMessage>) -> bool,
    ) -> Result<Option<Delivered>, StorageError> {
        let queue = self.inner.queue(queue_id)?;
        loop {
            let end = queue.index.lock().unwrap().end();
            let Some(head) = queue.consumption.lock().unwrap().head(end) else {
                return Ok(None);
            };
            // The index lock is released before `read` takes it again.
            let entry = queue.index.lock().unwrap().get(head.offset);
            let read = entry.and_then(|entry| {
                let message = match needs_message {
                    true => Some(self.read(queue_id, head.offset)?),
                    false => None,
                };
                Ok((entry, message))
            });
            let (entry, message) = match read {
                Ok(read) => read,
                Err(error @ StorageError::Corrupt { .. }) => {
                    // An unreadable head is settled (as `deliver` does) so
                    // that it is reported once, not at every sweep.
                    if queue.consumption.lock().unwrap().take_head(end, head) {
                        queue.taken(head.offset);
                        self.ack(queue_id, head.offset)?;
                        return Err(error);
                    }
                    continue;
                }
                Err(error) => return Err(error),
            };
            if !expired(&entry, message.as_ref()) {
                return Ok(None);
            }
            // A consumer may have taken the head meanwhile: look again.
            if !queue.consumption.lock().unwrap().take_head(end, head) {
                continue;
            }
            queue.taken(head.offset);
            let message = match message {
                Some(message) => message,
                None => self.read(queue_id, head.offset)?,
            };
            return Ok(Some(Delivered {
                queue: queue_id,
                offset: head.offset,
                redelivered: head.redelivered,
                message,
            }));
        }
    }

    fn with_consumption<R>(
        &self,
        queue: QueueId,
        f: impl FnOnce(&mut Consumption) -> R,
    ) -> Result<R, StorageError> {
        Ok(f(&mut self.inner.queue(queue)?.consumption.lock().unwrap()))
    }

    /// Acknowledges a delivery; durable with the next flush.
    pub fn ack(&self, queue_id: QueueId, offset: u64) -> Result<bool, StorageError> {
        Ok(self.ack_many(queue_id, &[offset])? == 1)
    }

    /// Acknowledges deliveries of one queue together (a consumer's
    /// multiple ack): each lock is taken once for all of them, not once
    /// per message. Returns how many were in flight (and are now settled);
    /// durable with the next flush.
    pub fn ack_many(&self, queue_id: QueueId, offsets: &[u64]) -> Result<u64, StorageError> {
        let queue = self.inner.queue(queue_id)?;
        let lens: Vec<u64> = {
            let index = queue.index.lock().unwrap();
            offsets
                .iter()
                .map(|&offset| index.get(offset).map_or(0, |entry| u64::from(entry.len)))
                .collect()
        };
        let (mut acked, mut settled_bytes) = (0, 0);
        {
            let mut consumption = queue.consumption.lock().unwrap();
            let mut events = Vec::with_capacity(offsets.len());
            for (&offset, len) in offsets.iter().zip(lens) {
                if consumption.ack(offset) {
                    events.push(consumption.record(queue_id, Change::Settled { offset }));
                    acked += 1;
                    settled_bytes += len;
                }
            }
            // Under the consumption lock: events reach the log in each
            // queue's order.
            self.inner.events.lock().unwrap().extend(events);
        }
        queue.settled(settled_bytes, true);
        Ok(acked)
    }

    pub fn nack(
        &self,
        queue_id: QueueId,
        offset: u64,
        requeue: bool,
    ) -> Result<bool, StorageError> {
        let queue = self.inner.queue(queue_id)?;
        let len = queue.entry_len(offset);
        let nacked = self.with_consumption(queue_id, |c| {
            let nacked = c.nack(offset, requeue);
            let change = match requeue {
                true => Change::Returned { offset },
                false => Change::Settled { offset },
            };
            if nacked {
                self.inner.record(c, queue_id, change);
            }
            nacked
        })?;
        match (nacked, requeue) {
            (false, _) => {}
            (true, true) => queue.returned(len),
            (true, false) => queue.settled(len, true),
        }
        Ok(nacked)
    }

    /// Returns deliveries of a departed consumer to the queue (each counts
    /// as a return towards a delivery limit).
    pub fn release(&self, queue_id: QueueId, offsets: &[u64]) -> Result<(), StorageError> {
        let queue = self.inner.queue(queue_id)?;
        let lens: Vec<u64> = offsets.iter().map(|&o| queue.entry_len(o)).collect();
        let returned = self.with_consumption(queue_id, |c| {
            let mut returned = 0;
            for (&offset, len) in offsets.iter().zip(&lens) {
                if c.in_flight.contains(&offset) {
                    c.release([offset]);
                    self.inner.record(c, queue_id, Change::Returned { offset });
                    returned += len;
                }
            }
            returned
        })?;
        queue.returned(returned);
        Ok(())
    }

    /// How many times `offset` of `queue` came back to it (durable with the
    /// next flush, like an ack).
    pub fn returns(&self, queue: QueueId, offset: u64) -> Result<u32, StorageError> {
        self.with_consumption(queue, |c| c.returns_of(offset))
    }

    pub fn stats(&self, queue: QueueId) -> Result<QueueStats, StorageError> {
        let queue = self.inner.queue(queue)?;
        let index = queue.index.lock().unwrap();
        let consumption = queue.consumption.lock().unwrap();
        Ok(QueueStats {
            ready: consumption.ready(index.end()),
            unacked: consumption.in_flight.len() as u64,
            stored: index.end().saturating_sub(consumption.low_water()),
            ready_bytes: queue.ready_bytes(),
        })
    }

    /// The disk space `queue` accounts for (for listings and metrics).
    pub fn space(&self, queue: QueueId) -> Result<QueueSpace, StorageError> {
        let log_end = self.inner.writer.lock().unwrap().position;
        let queue = self.inner.queue(queue)?;
        let index = queue.index.lock().unwrap();
        let low_water = queue.consumption.lock().unwrap().low_water();
        let oldest = match low_water < index.end() {
            true => index.get(low_water)?.position,
            false => log_end,
        };
        Ok(QueueSpace {
            log_bytes_held: log_end.saturating_sub(oldest),
            index_bytes: index.disk_bytes(),
        })
    }

    /// Writes the recovery checkpoint and consumption state now.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        self.inner.checkpoint(false).map(drop)
    }

    /// Checkpoints, then deletes log segments every queue has consumed
    /// past and index files below each queue's lowest needed offset (the
    /// flusher does this at every checkpoint). Returns segments deleted.
    pub fn release_consumed(&self) -> Result<usize, StorageError> {
        self.inner.checkpoint(false)
    }

    /// Flushes, checkpoints and stops the flusher.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.shutdown()
    }

    /// Stops without flushing or checkpointing, as if the process had been
    /// killed (what was written stays in the page cache, as after SIGKILL).
    /// For recovery tests.
    #[doc(hidden)]
    pub fn abandon(mut self) {
        if let Some(flusher) = self.flusher.take() {
            self.inner.stop_flusher();
            let _ = flusher.join();
            self.inner.end_waits();
        }
    }

    fn shutdown(&mut self) -> Result<(), StorageError> {
        let Some(flusher) = self.flusher.take() else {
            return Ok(());
        };
        self.inner.stop_flusher();
        let _ = flusher.join();
        let checkpointed = self.inner.checkpoint(true).map(drop);
        self.inner.end_waits();
        checkpointed
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(%error, "store did not close cleanly");
        }
    }
}

impl Inner {
    fn queue(&self, id: QueueId) -> Result<Arc<Queue>, StorageError> {
        self.queues
            .read()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or(StorageError::NoSuchQueue(id))
    }
}
