//! The message store: commit log + queue indexes + consumption state +
//! metadata, with group commit and crash recovery. No networking: the broker
//! drives it, tests and benchmarks use it directly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::{FlushMode, StoreConfig};
use super::consumption::{Consumption, Delivery};
use super::consumption_log::{self, Change, ConsumptionEvent, LEASE_STEP};
use super::error::StorageError;
use super::index::{IndexEntry, QueueIndex};
use super::layout::settle_layout;
use super::log::CommitLog;
use super::metadata::Metadata;
use super::record::{FLAG_CONSUMPTION, QueueId, StoredMessage, encoded_len};

struct Queue {
    id: QueueId,
    name: String,
    flush: FlushMode,
    index: Mutex<QueueIndex>,
    consumption: Mutex<Consumption>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueueMeta {
    id: QueueId,
    name: String,
    flush: FlushMode,
}

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

#[derive(Default)]
struct Durability {
    written: u64,
    flushed: u64,
    sync_waiters: usize,
    shutdown: bool,
    failure: Option<StorageError>,
}

struct Inner {
    config: StoreConfig,
    log: CommitLog,
    meta: Metadata,
    writer: Mutex<Writer>,
    queues: RwLock<HashMap<QueueId, Arc<Queue>>>,
    /// Consumption events not yet in the log, in each queue's order
    /// (pushed under that queue's consumption lock).
    events: Mutex<Vec<ConsumptionEvent>>,
    /// Held while pending events are written, so that whoever returns from
    /// [`Inner::write_events`] knows every event pushed before is in the log.
    events_writer: Mutex<()>,
    durability: Mutex<Durability>,
    /// Wakes sync appenders when `flushed` moves.
    flushed_cv: Condvar,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub unacked: u64,
    pub stored: u64,
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
    /// Opens the store in `config.dir`, recovering from the last checkpoint.
    pub fn open(mut config: StoreConfig) -> Result<(Self, RecoveryReport), StorageError> {
        let db = sled::open(config.dir.join("meta")).map_err(StorageError::metadata)?;
        let meta = Metadata::open(db)?;
        settle_layout(&mut config, &meta)?;
        let log = CommitLog::open(&config.dir.join("log"), config.segment_size)?;
        let checkpoint: Checkpoint = meta.get("store", "checkpoint")?.unwrap_or_default();
        let mut report = RecoveryReport::default();

        let mut queues = HashMap::new();
        let mut resume = HashMap::new();
        let mut next_queue_id = 0;
        for (_, q) in meta.scan::<QueueMeta>(QUEUES_TREE, "")? {
            next_queue_id = next_queue_id.max(q.id + 1);
            let mut index =
                QueueIndex::open(&queue_dir(&config, q.id), config.index_entries_per_file)?;
            let consumption: Option<Consumption> = meta.get(CONSUMPTION_TREE, &q.id.to_string())?;
            let checkpoint_end = checkpoint.queue_ends.get(&q.id).copied().unwrap_or(0);
            let (good_end, resume_at) = verify_index(
                &mut index,
                &q,
                checkpoint_end,
                &checkpoint,
                consumption.as_ref(),
                &mut report,
            );
            index.truncate(good_end)?;
            resume.insert(q.id, resume_at);
            let consumption =
                consumption.unwrap_or_else(|| Consumption::starting_at(index.start()));
            queues.insert(
                q.id,
                Arc::new(Queue {
                    id: q.id,
                    name: q.name,
                    flush: q.flush,
                    index: Mutex::new(index),
                    consumption: Mutex::new(consumption),
                }),
            );
        }

        // Replay the log from the checkpoint (or from where a damaged index
        // needs it), re-deriving index entries for records after it.
        let first_base = log.bases().first().copied().unwrap_or(0);
        let scan_from = resume
            .values()
            .copied()
            .chain([checkpoint.log_position])
            .min()
            .unwrap_or(0)
            .max(first_base);
        let mut replay_error = None;
        let mut events = Vec::new();
        let (end, damage) = log.scan(scan_from, |position, record| {
            report.records_replayed += 1;
            if record.message.flags & FLAG_CONSUMPTION != 0 {
                match consumption_log::from_body(&record.message.body) {
                    Ok(found) => events.extend(found),
                    Err(reason) => report.damage.push(format!(
                        "consumption record at log position {position}: {reason}; skipped"
                    )),
                }
                return;
            }
            for queue_id in &record.queues {
                let (Some(queue), Some(&from)) = (queues.get(queue_id), resume.get(queue_id))
                else {
                    continue;
                };
                if position < from {
                    continue;
                }
                let mut index = queue.index.lock().unwrap();
                if let Err(error) = index.reserve_next() {
                    replay_error.get_or_insert(error);
                    continue;
                }
                index.append(IndexEntry {
                    position,
                    len: record.len as u32,
                    expiry_ms: record.message.expiry_ms,
                });
            }
        });
        if let Some(error) = replay_error {
            return Err(error);
        }
        if let Some((at, reason)) = damage {
            let base = at - at % config.segment_size as u64;
            report.damage.push(format!(
                "commit log segment {base:020}.seg offset {}: {reason}; log truncated there",
                at - base
            ));
            for removed in log.truncate(at)? {
                report.damage.push(format!(
                    "commit log segment {} removed (after the damage)",
                    removed.display()
                ));
            }
        }
        report.scanned_from = scan_from;
        report.scanned_bytes = end.saturating_sub(scan_from);
        // What consumers did after the checkpoint, in the order they did it.
        for event in &events {
            if let Some(queue) = queues.get(&event.queue) {
                queue.consumption.lock().unwrap().replay(event);
            }
        }
        for queue in queues.values() {
            let index = queue.index.lock().unwrap();
            let mut consumption = queue.consumption.lock().unwrap();
            if !checkpoint.clean {
                consumption.crashed(index.end());
            }
            consumption.restart(index.end());
        }
        for line in &report.damage {
            tracing::warn!("recovery: {line}");
        }

        let inner = Arc::new(Inner {
            config,
            log,
            meta,
            writer: Mutex::new(Writer {
                position: end,
                next_queue_id,
            }),
            queues: RwLock::new(queues),
            events: Mutex::new(Vec::new()),
            events_writer: Mutex::new(()),
            durability: Mutex::new(Durability {
                written: end,
                flushed: end,
                ..Durability::default()
            }),
            flushed_cv: Condvar::new(),
            flusher_cv: Condvar::new(),
        });
        inner.checkpoint(false)?;
        let flusher_inner = inner.clone();
        let flusher = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flusher_inner.flusher_loop())
            .map_err(|e| StorageError::io(&inner.config.dir, e))?;
        Ok((
            MessageStore {
                inner,
                flusher: Some(flusher),
            },
            report,
        ))
    }

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
        let index = QueueIndex::open(
            &queue_dir(&self.inner.config, id),
            self.inner.config.index_entries_per_file,
        )?;
        let meta = QueueMeta {
            id,
            name: name.into(),
            flush,
        };
        self.inner.meta.put(QUEUES_TREE, &id.to_string(), &meta)?;
        self.inner.meta.flush()?;
        writer.next_queue_id += 1;
        self.inner.queues.write().unwrap().insert(
            id,
            Arc::new(Queue {
                id,
                name: name.into(),
                flush,
                index: Mutex::new(index),
                consumption: Mutex::new(Consumption::starting_at(0)),
            }),
        );
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

    /// Every queue: id and name.
    pub fn queues(&self) -> Vec<(QueueId, String)> {
        let queues = self.inner.queues.read().unwrap();
        queues.values().map(|q| (q.id, q.name.clone())).collect()
    }

    /// Deletes a queue and its index; its log records are released by retention.
    pub fn delete_queue(&self, id: QueueId) -> Result<(), StorageError> {
        let _writer = self.inner.writer.lock().unwrap();
        let queue = self
            .inner
            .queues
            .write()
            .unwrap()
            .remove(&id)
            .ok_or(StorageError::NoSuchQueue(id))?;
        self.inner.meta.remove(QUEUES_TREE, &id.to_string())?;
        self.inner.meta.remove(CONSUMPTION_TREE, &id.to_string())?;
        self.inner.meta.flush()?;
        let queue = Arc::try_unwrap(queue).ok();
        if let Some(queue) = queue {
            queue.index.into_inner().unwrap().destroy()?;
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
        let mut consumption = queue.consumption.lock().unwrap();
        let dropped = consumption.purge(end);
        self.inner
            .record(&mut consumption, queue.id, Change::Purged { end });
        let kept: Vec<u64> = consumption.in_flight.iter().copied().collect();
        for offset in kept {
            self.inner
                .record(&mut consumption, queue.id, Change::Kept { offset });
        }
        Ok(dropped)
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

    /// Blocks until the log is on disk up to `end`. Concurrent
    /// waiters share one flush (group commit).
    pub fn wait_durable(&self, end: u64) -> Result<(), StorageError> {
        let inner = &self.inner;
        let mut durability = inner.durability.lock().unwrap();
        durability.sync_waiters += 1;
        inner.flusher_cv.notify_one();
        while durability.flushed < end && durability.failure.is_none() && !durability.shutdown {
            durability = inner.flushed_cv.wait(durability).unwrap();
        }
        durability.sync_waiters -= 1;
        if let Some(error) = &durability.failure {
            return Err(error.clone());
        }
        if durability.flushed < end {
            return Err(StorageError::Closed);
        }
        Ok(())
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
        if record.len != entry.len as usize || !record.queues.contains(&queue.id) {
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
        let message = self.read(queue_id, offset)?;
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
            let entry = queue.index.lock().unwrap().get(head.offset)?;
            let message = if needs_message {
                Some(self.read(queue_id, head.offset)?)
            } else {
                None
            };
            if !expired(&entry, message.as_ref()) {
                return Ok(None);
            }
            // A consumer may have taken the head meanwhile: look again.
            if !queue.consumption.lock().unwrap().take_head(end, head) {
                continue;
            }
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
        self.with_consumption(queue_id, |c| {
            let acked = c.ack(offset);
            if acked {
                self.inner.record(c, queue_id, Change::Settled { offset });
            }
            acked
        })
    }

    pub fn nack(
        &self,
        queue_id: QueueId,
        offset: u64,
        requeue: bool,
    ) -> Result<bool, StorageError> {
        self.with_consumption(queue_id, |c| {
            let nacked = c.nack(offset, requeue);
            if nacked && !requeue {
                self.inner.record(c, queue_id, Change::Settled { offset });
            }
            nacked
        })
    }

    /// Returns deliveries of a departed consumer to the queue.
    pub fn release(&self, queue: QueueId, offsets: &[u64]) -> Result<(), StorageError> {
        self.with_consumption(queue, |c| c.release(offsets.iter().copied()))
    }

    pub fn set_group_offset(
        &self,
        queue: QueueId,
        group: &str,
        offset: u64,
    ) -> Result<(), StorageError> {
        self.with_consumption(queue, |c| {
            c.groups.insert(group.into(), offset);
        })
    }

    pub fn group_offset(&self, queue: QueueId, group: &str) -> Result<Option<u64>, StorageError> {
        self.with_consumption(queue, |c| c.groups.get(group).copied())
    }

    pub fn stats(&self, queue: QueueId) -> Result<QueueStats, StorageError> {
        let queue = self.inner.queue(queue)?;
        let index = queue.index.lock().unwrap();
        let consumption = queue.consumption.lock().unwrap();
        Ok(QueueStats {
            ready: consumption.ready(index.end()),
            unacked: consumption.in_flight.len() as u64,
            stored: index.end().saturating_sub(consumption.low_water()),
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

    /// Bytes the commit log occupies on disk.
    pub fn log_disk_bytes(&self) -> u64 {
        self.inner.log.disk_bytes()
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
            self.inner.durability.lock().unwrap().shutdown = true;
            self.inner.flusher_cv.notify_all();
            let _ = flusher.join();
        }
    }

    fn shutdown(&mut self) -> Result<(), StorageError> {
        let Some(flusher) = self.flusher.take() else {
            return Ok(());
        };
        self.inner.durability.lock().unwrap().shutdown = true;
        self.inner.flusher_cv.notify_all();
        let _ = flusher.join();
        self.inner.checkpoint(true).map(drop)
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(%error, "store did not close cleanly");
        }
    }
}

fn queue_dir(config: &StoreConfig, id: QueueId) -> std::path::PathBuf {
    config.dir.join("queues").join(id.to_string())
}

/// Checks a queue's index entries up to the checkpoint; returns the end of
/// the intact prefix and the log position from which replay must re-derive
/// this queue's entries.
fn verify_index(
    index: &mut QueueIndex,
    queue: &QueueMeta,
    checkpoint_end: u64,
    checkpoint: &Checkpoint,
    consumption: Option<&Consumption>,
    report: &mut RecoveryReport,
) -> (u64, u64) {
    if !index.has_files() {
        index.reset_empty(checkpoint_end);
        return (checkpoint_end, checkpoint.log_position);
    }
    let from = index.start().max(consumption.map_or(0, |c| c.low_water()));
    let mut last_good: Option<IndexEntry> = None;
    for offset in from..checkpoint_end {
        match index.read_raw(offset) {
            Ok(Some(entry)) => last_good = Some(entry),
            outcome => {
                let reason = match outcome {
                    Err(reason) => reason,
                    _ => "entry missing (file truncated?)".into(),
                };
                report.damage.push(format!(
                    "queue {} index entry {offset}: {reason}; entries from here are rebuilt from the log",
                    queue.name
                ));
                let resume = last_good.map_or(0, |e| e.position + e.len as u64);
                return (offset, resume);
            }
        }
    }
    (checkpoint_end.max(index.start()), checkpoint.log_position)
}

impl Inner {
    /// Appends one record (the body is stored once, whatever the number of
    /// queues). Fails as a whole, leaving nothing behind, when out of space.
    fn append(
        &self,
        message: &StoredMessage,
        queue_ids: &[QueueId],
    ) -> Result<Appended, StorageError> {
        let inner = self;
        let len = encoded_len(message, queue_ids.len());
        let queues = {
            let map = inner.queues.read().unwrap();
            queue_ids
                .iter()
                .map(|id| map.get(id).cloned().ok_or(StorageError::NoSuchQueue(*id)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut writer = inner.writer.lock().unwrap();
        let position = inner.log.placement(writer.position, len)?;
        let base = position - position % inner.config.segment_size as u64;
        if inner.log.segment(base).is_none()
            && let Some(max) = inner.config.max_log_bytes
            && inner.log.disk_bytes() + inner.config.segment_size as u64 > max
        {
            return Err(StorageError::Full(format!(
                "the commit log would exceed its limit of {max} bytes"
            )));
        }
        let segment = inner.log.ensure_segment(position)?;
        segment.reserve((position - base) as usize + len)?;
        let mut indexes: Vec<_> = queues.iter().map(|q| q.index.lock().unwrap()).collect();
        for index in &mut indexes {
            index.reserve_next()?;
        }
        inner.log.write(position, message, queue_ids, len);
        let entry = IndexEntry {
            position,
            len: len as u32,
            expiry_ms: message.expiry_ms,
        };
        let offsets = queues
            .iter()
            .zip(indexes.iter_mut())
            .map(|(q, index)| (q.id, index.append(entry)))
            .collect();
        drop(indexes);
        writer.position = position + len as u64;
        let end = writer.position;
        drop(writer);
        {
            let mut durability = inner.durability.lock().unwrap();
            durability.written = durability.written.max(end);
            // The flusher may already have flushed past `end` (it flushes up
            // to the writer's position, which other appends have moved on).
            if durability.written.saturating_sub(durability.flushed) >= inner.config.flush_bytes {
                inner.flusher_cv.notify_one();
            }
        }
        Ok(Appended {
            position,
            end,
            offsets,
            needs_sync: queues.iter().any(|q| q.flush == FlushMode::Sync),
        })
    }

    /// Writes the consumption events pushed so far into the log (as many
    /// consumption records as they need); returns a log position the log
    /// must be durable up to for all of them to be. On failure (a full
    /// disk) the events stay pending for the next try.
    fn write_events(&self) -> Result<u64, StorageError> {
        let _writing = self.events_writer.lock().unwrap();
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        for (i, chunk) in events.chunks(EVENTS_PER_RECORD).enumerate() {
            if let Err(error) = self.append(&consumption_log::to_record(chunk), &[]) {
                let mut pending = self.events.lock().unwrap();
                let newer = std::mem::take(&mut *pending);
                pending.extend_from_slice(&events[i * EVENTS_PER_RECORD..]);
                pending.extend(newer);
                return Err(error);
            }
        }
        Ok(self.writer.lock().unwrap().position)
    }

    /// Records `change` (just applied to `consumption`, whose lock the
    /// caller holds: events reach the log in each queue's order).
    fn record(&self, consumption: &mut Consumption, queue: QueueId, change: Change) {
        let event = consumption.record(queue, change);
        self.events.lock().unwrap().push(event);
    }

    fn queue(&self, id: QueueId) -> Result<Arc<Queue>, StorageError> {
        self.queues
            .read()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or(StorageError::NoSuchQueue(id))
    }

    /// Flushes the log up to the current write position, and the indexes
    /// too when `indexes` is set. Durability needs only the log: recovery
    /// re-derives every index entry after the checkpoint from the log, so
    /// only a checkpoint needs the indexes on disk (one fsync per group
    /// commit instead of two).
    fn flush_once(&self, indexes: bool) -> Result<u64, StorageError> {
        if let Err(error) = self.write_events() {
            tracing::warn!(%error, "consumption events not written; kept for the next flush");
        }
        let (position, flushed) = {
            let writer = self.writer.lock().unwrap();
            (writer.position, self.durability.lock().unwrap().flushed)
        };
        let result: Result<(), StorageError> = (|| {
            self.log.flush(flushed.min(position), position)?;
            if indexes {
                for queue in self.queues.read().unwrap().values() {
                    queue.index.lock().unwrap().flush()?;
                }
            }
            Ok(())
        })();
        let mut durability = self.durability.lock().unwrap();
        match result {
            Ok(()) => {
                durability.flushed = durability.flushed.max(position);
                durability.written = durability.written.max(position);
            }
            Err(ref error) => durability.failure = Some(error.clone()),
        }
        self.flushed_cv.notify_all();
        result.map(|()| position)
    }

    /// Writes consumption state and the recovery checkpoint, then releases
    /// what that checkpoint no longer needs: log segments below every
    /// queue's lowest needed record, index files below its lowest needed
    /// offset. Returns the number of log segments deleted.
    ///
    /// Release is computed from the consumption state just checkpointed,
    /// never from the live one: after a crash, recovery restores the
    /// checkpointed state, and every record it still counts as outstanding
    /// (acks after the checkpoint are lost) must still be on disk. Deleted
    /// queues need nothing, so their space goes at the next checkpoint.
    fn checkpoint(&self, clean: bool) -> Result<usize, StorageError> {
        let (position, queue_ends) = {
            let writer = self.writer.lock().unwrap();
            let ends = self
                .queues
                .read()
                .unwrap()
                .values()
                .map(|q| (q.id, q.index.lock().unwrap().end()))
                .collect();
            (writer.position, ends)
        };
        self.flush_once(true)?;
        let mut low_waters = Vec::new();
        for queue in self.queues.read().unwrap().values() {
            let consumption = queue.consumption.lock().unwrap().clone();
            self.meta
                .put(CONSUMPTION_TREE, &queue.id.to_string(), &consumption)?;
            low_waters.push((queue.clone(), consumption.low_water()));
        }
        let checkpoint = Checkpoint {
            log_position: position,
            queue_ends,
            clean,
        };
        self.meta.put("store", "checkpoint", &checkpoint)?;
        self.meta.flush()?;
        self.release(position, low_waters)
    }

    /// Deletes what the checkpoint at `position` with these per-queue low
    /// waters does not need; returns log segments deleted.
    fn release(
        &self,
        position: u64,
        low_waters: Vec<(Arc<Queue>, u64)>,
    ) -> Result<usize, StorageError> {
        // Recovery replays from the checkpoint's position: keep all after it.
        let mut keep_from = position;
        for (queue, low_water) in low_waters {
            let mut index = queue.index.lock().unwrap();
            if low_water < index.end() {
                keep_from = keep_from.min(index.get(low_water)?.position);
            }
            index.release_before(low_water)?;
        }
        self.log.release_before(keep_from)
    }

    fn flusher_loop(&self) {
        let mut last_flush = Instant::now();
        let mut last_checkpoint = Instant::now();
        loop {
            let shutdown = {
                let mut durability = self.durability.lock().unwrap();
                loop {
                    if durability.shutdown {
                        break true;
                    }
                    let pending = durability.written > durability.flushed
                        || !self.events.lock().unwrap().is_empty();
                    if pending
                        && (durability.sync_waiters > 0
                            || durability.written - durability.flushed >= self.config.flush_bytes
                            || last_flush.elapsed() >= self.config.flush_interval)
                    {
                        break false;
                    }
                    if last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                        break false;
                    }
                    let wait = self
                        .config
                        .flush_interval
                        .min(self.config.checkpoint_interval)
                        .saturating_sub(last_flush.elapsed().min(last_checkpoint.elapsed()))
                        .max(std::time::Duration::from_millis(1));
                    durability = self.flusher_cv.wait_timeout(durability, wait).unwrap().0;
                }
            };
            if shutdown {
                return;
            }
            if let Err(error) = self.flush_once(false) {
                tracing::error!(%error, "flush failed");
            }
            last_flush = Instant::now();
            if last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                if let Err(error) = self.checkpoint(false) {
                    tracing::error!(%error, "checkpoint failed");
                }
                last_checkpoint = Instant::now();
            }
        }
    }
}
