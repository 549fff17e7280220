//! The write path and the flusher thread: appending records, group commit,
//! writing consumption events into the log, checkpoints, and releasing what
//! the last checkpoint no longer needs.

use std::sync::Arc;
use std::time::Instant;

use super::super::consumption::Consumption;
use super::super::consumption_log::{self, Change};
use super::super::file_handles::file_handles_left;
use super::super::index::IndexEntry;
use super::super::record::{Envelope, QueueId, StoredMessage, encoded_len};
use super::super::segment::{RESERVE_AHEAD, RESERVE_CHUNK};
use super::{
    Appended, CONSUMPTION_TREE, Checkpoint, EVENTS_PER_RECORD, FlushMode, Inner, Queue,
    StorageError,
};

impl Inner {
    /// Appends one record (the body is stored once, whatever the number of
    /// queues). Fails as a whole, leaving nothing behind, when out of space.
    pub(super) fn append(
        &self,
        message: &StoredMessage,
        queue_ids: &[QueueId],
    ) -> Result<Appended, StorageError> {
        self.append_record(message, Envelope::of(queue_ids), queue_ids.len())
    }

    /// Appends a record indexed by the first `indexed` of its queues (a
    /// delayed message names the queues it goes to when due, but only the
    /// delay queue indexes it until then).
    pub(super) fn append_record(
        &self,
        message: &StoredMessage,
        envelope: Envelope<'_>,
        indexed: usize,
    ) -> Result<Appended, StorageError> {
        let inner = self;
        let queue_ids = envelope.queues;
        let len = encoded_len(message, envelope);
        let queues = {
            let map = inner.queues.read().unwrap();
            queue_ids
                .iter()
                .map(|id| match map.get(id) {
                    // A view reads its stream's index; it is never appended to.
                    Some(queue) if !queue.is_view() => Ok(queue.clone()),
                    _ => Err(StorageError::NoSuchQueue(*id)),
                })
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
        let upto = (position - base) as usize + len;
        // Messages stop at the disk's free-space floor; consumption records
        // (no queues) may use the headroom: acks must still be recorded,
        // or nothing consumed could ever be released.
        if !queue_ids.is_empty()
            && inner
                .log
                .segment(base)
                .is_none_or(|s| s.needs_reserve(upto, RESERVE_AHEAD))
        {
            inner.disk_space.check_room_for(RESERVE_CHUNK as u64)?;
        }
        let segment = inner.log.ensure_segment(position)?;
        segment.reserve(upto, RESERVE_AHEAD)?;
        let indexed = &queues[..indexed];
        let mut indexes: Vec<_> = indexed.iter().map(|q| q.index.lock().unwrap()).collect();
        for index in &mut indexes {
            if index.needs_new_file() {
                file_handles_left(inner.config.file_handle_reserve)?;
            }
            index.reserve_next()?;
        }
        inner.flush_stats.appended(len as u64);
        inner.log.write(position, message, envelope, len);
        let entry = IndexEntry {
            position,
            len: len as u32,
            expiry_ms: message.index_time(),
        };
        let offsets = indexed
            .iter()
            .zip(indexes.iter_mut())
            .map(|(q, index)| {
                q.appended(len as u64);
                (q.id, index.append(entry))
            })
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
    pub(super) fn write_events(&self) -> Result<u64, StorageError> {
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
    pub(super) fn record(&self, consumption: &mut Consumption, queue: QueueId, change: Change) {
        let event = consumption.record(queue, change);
        self.events.lock().unwrap().push(event);
    }

    /// Flushes the log up to the current write position, and the indexes
    /// too when `indexes` is set. Durability needs only the log: recovery
    /// re-derives every index entry after the checkpoint from the log, so
    /// only a checkpoint needs the indexes on disk (one fsync per group
    /// commit instead of two).
    pub(super) fn flush_once(&self, indexes: bool) -> Result<u64, StorageError> {
        if let Err(error) = self.write_events() {
            tracing::warn!(%error, "consumption events not written; kept for the next flush");
        }
        let (position, flushed) = {
            let writer = self.writer.lock().unwrap();
            (writer.position, self.durability.lock().unwrap().flushed)
        };
        let result: Result<(), StorageError> = (|| {
            let started = Instant::now();
            self.log.flush(flushed.min(position), position)?;
            if position > flushed {
                self.flush_stats.flushed(started.elapsed());
            }
            if indexes {
                for queue in self.queues.read().unwrap().values() {
                    if queue.is_view() {
                        continue;
                    }
                    queue.index.lock().unwrap().flush()?;
                }
            }
            Ok(())
        })();
        let ended = {
            let mut durability = self.durability.lock().unwrap();
            match result {
                Ok(()) => {
                    durability.flushed = durability.flushed.max(position);
                    durability.written = durability.written.max(position);
                }
                Err(ref error) => durability.failure = Some(error.clone()),
            }
            durability.ended_waits()
        };
        Self::wake(ended);
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
    pub(super) fn checkpoint(&self, clean: bool) -> Result<usize, StorageError> {
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
    pub(super) fn release(
        &self,
        position: u64,
        low_waters: Vec<(Arc<Queue>, u64)>,
    ) -> Result<usize, StorageError> {
        // Recovery replays from the checkpoint's position: keep all after it.
        let mut keep_from = position;
        // A stream's index serves its views too: it keeps what any needs.
        let mut by_index: std::collections::HashMap<QueueId, (Arc<Queue>, u64)> =
            std::collections::HashMap::new();
        for (queue, low_water) in low_waters {
            by_index
                .entry(queue.source)
                .and_modify(|(_, lowest)| *lowest = (*lowest).min(low_water))
                .or_insert((queue, low_water));
        }
        for (queue, low_water) in by_index.into_values() {
            let mut index = queue.index.lock().unwrap();
            if low_water < index.end() {
                keep_from = keep_from.min(index.get(low_water)?.position);
            }
            index.release_before(low_water)?;
        }
        self.log.release_before(keep_from)
    }

    /// Tells the flusher to stop (waits already covered by a flush end;
    /// the others wait for the final checkpoint, or [`Inner::end_waits`]).
    pub(super) fn stop_flusher(&self) {
        self.durability.lock().unwrap().shutdown = true;
        self.flusher_cv.notify_all();
    }

    /// Ends every wait still pending once the flusher has stopped.
    pub(super) fn end_waits(&self) {
        let ended = self.durability.lock().unwrap().ended_waits();
        Self::wake(ended);
    }

    pub(super) fn flusher_loop(&self) {
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
                        && (!durability.waiters.is_empty()
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

/// The commit log's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogFiles {
    pub segments: u64,
    pub bytes: u64,
}

impl super::MessageStore {
    /// Appends and flushes so far (for metrics).
    pub fn storage_stats(&self) -> super::StorageStats {
        self.inner.flush_stats.snapshot()
    }

    /// The commit log's segments and their size on disk.
    pub fn log_files(&self) -> LogFiles {
        LogFiles {
            segments: self.inner.log.bases().len() as u64,
            bytes: self.inner.log.disk_bytes(),
        }
    }
}
