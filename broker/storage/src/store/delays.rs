//! Delayed delivery: a message that must not be seen before its due time
//! is appended once to the commit log as a *delayed record* — indexed only
//! by the store's hidden delay queue (its index entry holds the due time),
//! naming the queues it goes to — and a timer for it goes into the timer
//! wheel (`timer_wheel.rs`: memory-mapped files, so memory does not grow
//! with the number of pending messages). When it is due,
//! [`MessageStore::promote_due`] appends a copy to its queues that carries
//! the delay-queue offset it came from, and settles that offset.
//!
//! Invariants (what makes a promotion exactly-once across crashes):
//! - A promoted copy and the end of its delay are one log record: replaying
//!   a copy settles its delay offset (recovery.rs), so either the copy is
//!   durable and the delay is over, or neither.
//! - The delay queue is the truth; the wheel is rebuilt from it at every
//!   open (every unsettled offset, due time from its index entry) and
//!   whenever its timer log has grown far past what is pending. A timer
//!   whose offset is settled is stale and skipped.
//!
//! The delay queue holds the log from its oldest pending message: a
//! message delayed by 30 days keeps the segments written after it for 30
//! days (docs/STORAGE.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::super::config::FlushMode;
use super::super::consumption_log::Change;
use super::super::error::StorageError;
use super::super::log::CommitLog;
use super::super::record::{Envelope, FLAG_DELAYED, QueueId, StoredMessage};
use super::super::timer_wheel::{Timer, TimerWheel};
use super::{Appended, Inner, MessageStore, Queue};

/// The storage name of the delay queue; broker queue names are
/// `vhost\u{1f}name`, so they cannot take it.
pub(super) const DELAY_QUEUE: &str = "\u{0}delays";
/// The flush mode of the delay queue: a delayed message is as durable as
/// the append says (`Appended::needs_sync` follows its destinations).
pub(super) const DELAY_QUEUE_FLUSH: FlushMode = FlushMode::Async;
/// A timer log this many entries past what is pending is rebuilt.
const REBUILD_SLACK: u64 = 1 << 20;

/// The delay queue's timers and what they hold per destination queue.
pub(super) struct Delays {
    pub(super) queue: QueueId,
    wheel: TimerWheel,
    /// The wheel's files alternate between two directories, so a rebuild
    /// never truncates files the old wheel still maps.
    dirs: [PathBuf; 2],
    generation: usize,
    /// Pending delayed messages per destination queue.
    pending: HashMap<QueueId, u64>,
}

/// What [`MessageStore::promote_due`] did.
#[derive(Debug, Default, Clone)]
pub struct Promotion {
    /// Messages promoted (or ended because every queue they were for is gone).
    pub promoted: u64,
    /// Queues that received messages, once each.
    pub queues: Vec<QueueId>,
    /// Delayed messages that could not be read (corrupt): one line each.
    pub lost: Vec<String>,
}

fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A wheel of every unsettled offset of the delay queue, and — when
/// `log` is given — the destinations of each, counted.
fn build_wheel(
    dir: &Path,
    queue: &Queue,
    log: Option<&CommitLog>,
) -> Result<(TimerWheel, HashMap<QueueId, u64>), StorageError> {
    let mut wheel = TimerWheel::create(dir, system_now_ms())?;
    let mut pending: HashMap<QueueId, u64> = HashMap::new();
    let index = queue.index.lock().unwrap();
    let consumption = queue.consumption.lock().unwrap();
    for offset in consumption.low_water()..index.end() {
        if offset < consumption.floor || consumption.acked.contains(offset) {
            continue;
        }
        let entry = index.get(offset)?;
        wheel.insert(Timer {
            due_ms: entry.expiry_ms,
            offset,
        })?;
        let Some(log) = log else {
            continue;
        };
        match log.read(entry.position) {
            Ok(record) => {
                for destination in record.queues.iter().skip(1) {
                    *pending.entry(*destination).or_default() += 1;
                }
            }
            // Reported lost when it comes due.
            Err(error) => tracing::warn!(offset, %error, "delayed message unreadable"),
        }
    }
    Ok((wheel, pending))
}

impl Delays {
    /// The timers of the delay queue, built from its index; `store_dir`
    /// is the store's directory.
    pub(super) fn open(
        store_dir: &Path,
        queue: &Queue,
        log: &CommitLog,
    ) -> Result<Delays, StorageError> {
        let dirs = [store_dir.join("delays-a"), store_dir.join("delays-b")];
        let (wheel, pending) = build_wheel(&dirs[0], queue, Some(log))?;
        // The other generation's files are scratch from a previous run.
        let _ = std::fs::remove_dir_all(&dirs[1]);
        Ok(Delays {
            queue: queue.id,
            wheel,
            dirs,
            generation: 0,
            pending,
        })
    }

    /// Rebuilds the wheel from the delay queue when its timer log holds
    /// far more entries than are pending (they are never freed one by one).
    fn compact(&mut self, queue: &Queue) -> Result<(), StorageError> {
        if self.wheel.written() < 2 * self.wheel.pending() + REBUILD_SLACK {
            return Ok(());
        }
        let next = 1 - self.generation;
        let (wheel, _) = build_wheel(&self.dirs[next], queue, None)?;
        self.wheel = wheel;
        self.generation = next;
        Ok(())
    }

    fn count(&mut self, queues: &[QueueId], up: bool) {
        for queue in queues {
            let pending = self.pending.entry(*queue).or_default();
            *pending = if up {
                *pending + 1
            } else {
                pending.saturating_sub(1)
            };
        }
    }
}

impl Inner {
    /// Whether `offset` of `queue` is settled (acked, expired, promoted).
    pub(super) fn is_settled(&self, queue: QueueId, offset: u64) -> Result<bool, StorageError> {
        let queue = self.queue(queue)?;
        let consumption = queue.consumption.lock().unwrap();
        Ok(offset < consumption.floor || consumption.acked.contains(offset))
    }

    /// Settles `offset` of `queue` without a delivery, recording it.
    pub(super) fn settle(&self, queue: QueueId, offset: u64) -> Result<(), StorageError> {
        let queue = self.queue(queue)?;
        queue.settled(queue.entry_len(offset), false);
        let mut consumption = queue.consumption.lock().unwrap();
        consumption.settle(offset);
        self.record(&mut consumption, queue.id, Change::Settled { offset });
        Ok(())
    }
}

impl MessageStore {
    /// Appends a message that becomes visible in `queue_ids` at its
    /// `deliver_after_ms` (which must be set). Durable as any append (the
    /// result says whether a destination wants a sync flush first).
    pub fn append_delayed(
        &self,
        message: &StoredMessage,
        queue_ids: &[QueueId],
    ) -> Result<Appended, StorageError> {
        let inner = &self.inner;
        let mut delays = inner.delays.lock().unwrap();
        let mut record = message.clone();
        record.flags |= FLAG_DELAYED;
        let mut queues = Vec::with_capacity(queue_ids.len() + 1);
        queues.push(delays.queue);
        queues.extend_from_slice(queue_ids);
        let appended = inner.append_record(&record, Envelope::of(&queues), 1)?;
        let timer = Timer {
            due_ms: message.deliver_after_ms,
            offset: appended.offsets[0].1,
        };
        if let Err(error) = delays.wheel.insert(timer) {
            // Without a timer it would not be delivered before the next
            // start: it is undone, and the publisher told.
            inner.settle(delays.queue, timer.offset)?;
            return Err(error);
        }
        delays.count(queue_ids, true);
        Ok(appended)
    }

    /// The earliest time a pending delayed message may be due (exact within
    /// the current second; otherwise the next second the timers are
    /// looked at).
    pub fn next_due(&self) -> Option<u64> {
        self.inner.delays.lock().unwrap().wheel.next_due()
    }

    /// Delayed messages waiting to be delivered to `queue`.
    pub fn delayed(&self, queue: QueueId) -> u64 {
        let delays = self.inner.delays.lock().unwrap();
        delays.pending.get(&queue).copied().unwrap_or(0)
    }

    /// Delivers up to `max` delayed messages due at `now_ms` to their
    /// queues, in due-time order. A queue deleted meanwhile is skipped.
    pub fn promote_due(&self, now_ms: u64, max: usize) -> Result<Promotion, StorageError> {
        let inner = &self.inner;
        let mut delays = inner.delays.lock().unwrap();
        let delay_queue = delays.queue;
        let mut promotion = Promotion::default();
        let due = delays.wheel.pop_due(now_ms, max);
        for (i, timer) in due.iter().enumerate() {
            let offset = timer.offset;
            if inner.is_settled(delay_queue, offset)? {
                continue;
            }
            let record = match inner.queue(delay_queue)?.index.lock().unwrap().get(offset) {
                Ok(entry) => inner.log.read(entry.position),
                Err(error) => Err(error),
            };
            let destinations = match record {
                Ok(record) => {
                    let destinations: Vec<QueueId> = record.queues[1..].to_vec();
                    let live: Vec<QueueId> = {
                        let queues = inner.queues.read().unwrap();
                        destinations
                            .iter()
                            .copied()
                            .filter(|q| queues.contains_key(q))
                            .collect()
                    };
                    if !live.is_empty() {
                        let mut copy = record.message;
                        copy.flags &= !FLAG_DELAYED;
                        let envelope = Envelope {
                            queues: &live,
                            moved_from: Some(offset),
                            moved_from_queue: None,
                        };
                        if let Err(error) = inner.append_record(&copy, envelope, live.len()) {
                            // A full disk stops here: this one and the rest
                            // stay due, for the next try.
                            for rest in &due[i..] {
                                delays.wheel.insert(*rest)?;
                            }
                            return Err(error);
                        }
                        for queue in &live {
                            if !promotion.queues.contains(queue) {
                                promotion.queues.push(*queue);
                            }
                        }
                    }
                    destinations
                }
                // A timer that outlived its record (the log lost its tail):
                // nothing was confirmed.
                Err(StorageError::OutOfRange { .. }) => Vec::new(),
                Err(error @ StorageError::Corrupt { .. }) => {
                    promotion
                        .lost
                        .push(format!("delayed message {offset}: {error}"));
                    Vec::new()
                }
                Err(error) => return Err(error),
            };
            inner.settle(delay_queue, offset)?;
            delays.count(&destinations, false);
            promotion.promoted += 1;
        }
        let queue = inner.queue(delay_queue)?;
        delays.compact(&queue)?;
        Ok(promotion)
    }

    /// Forgets the pending count of a deleted queue (its delayed messages
    /// end when due, going nowhere).
    pub(super) fn forget_delayed(&self, queue: QueueId) {
        self.inner.delays.lock().unwrap().pending.remove(&queue);
    }
}
