//! Delayed delivery: a message that must not be seen before its due time
//! is appended once to the commit log as a *delayed record* — indexed only
//! by the store's hidden delay queue, naming the queues it goes to — and a
//! timer for it is kept in sled, keyed by due time (so memory does not grow
//! with the number of pending messages: sled pages them). When it is due,
//! [`MessageStore::promote_due`] appends a copy to its queues that carries
//! the delay-queue offset it came from, and settles that offset.
//!
//! Invariants (what makes a promotion exactly-once across crashes):
//! - A promoted copy and the end of its delay are one log record: replaying
//!   a copy settles its delay offset (recovery.rs), so either the copy is
//!   durable and the delay is over, or neither.
//! - Every unsettled delay offset below the checkpoint's `delays_indexed`
//!   has its timer on disk (timers are inserted under the same lock the
//!   checkpoint reads the watermark under, and flushed with the checkpoint);
//!   recovery re-creates timers from the delayed records above it.
//! - A timer whose offset is settled is stale (its promotion was durable,
//!   the timer's removal was not): it is dropped when met.
//!
//! The delay queue holds the log from its oldest pending message: a
//! message delayed by 30 days keeps the segments written after it for 30
//! days (docs/STORAGE.md).

use std::collections::HashMap;

use super::super::config::FlushMode;
use super::super::consumption_log::Change;
use super::super::error::StorageError;
use super::super::metadata::Metadata;
use super::super::record::{Envelope, FLAG_DELAYED, QueueId, StoredMessage};
use super::{Appended, Inner, MessageStore};

/// The storage name of the delay queue; broker queue names are
/// `vhost\u{1f}name`, so they cannot take it.
pub(super) const DELAY_QUEUE: &str = "\u{0}delays";
const TIMERS_TREE: &str = "store-delay-timers";

/// The delay queue's timers and what they hold per destination queue.
pub(super) struct Delays {
    pub(super) queue: QueueId,
    timers: sled::Tree,
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

fn timer_key(due_ms: u64, offset: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&due_ms.to_be_bytes());
    key[8..].copy_from_slice(&offset.to_be_bytes());
    key
}

fn parse_key(key: &[u8]) -> Option<(u64, u64)> {
    let due = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let offset = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((due, offset))
}

fn encode_queues(queues: &[QueueId]) -> Vec<u8> {
    queues.iter().flat_map(|q| q.to_le_bytes()).collect()
}

fn decode_queues(bytes: &[u8]) -> Vec<QueueId> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

impl Delays {
    /// The timers of the delay queue `queue` (counted by [`Delays::recover`]).
    pub(super) fn open(meta: &Metadata, queue: QueueId) -> Result<Delays, StorageError> {
        let timers = meta
            .db()
            .open_tree(TIMERS_TREE)
            .map_err(StorageError::metadata)?;
        Ok(Delays {
            queue,
            timers,
            pending: HashMap::new(),
        })
    }

    /// Re-creates the timers of the delayed records from `indexed_from` on
    /// (possibly lost in a crash), drops stale ones, and counts what is
    /// pending per queue.
    pub(super) fn recover(&mut self, inner: &Inner, indexed_from: u64) -> Result<(), StorageError> {
        let queue = self.queue;
        let delays = self;
        let delay_queue = inner.queue(queue)?;
        let end = delay_queue.index.lock().unwrap().end();
        let start = indexed_from.max(delay_queue.consumption.lock().unwrap().low_water());
        for offset in start..end {
            if inner.is_settled(queue, offset)? {
                continue;
            }
            let entry = delay_queue.index.lock().unwrap().get(offset)?;
            match inner.log.read(entry.position) {
                Ok(record) => {
                    let key = timer_key(record.message.deliver_after_ms, offset);
                    let value = encode_queues(record.queues.get(1..).unwrap_or_default());
                    delays
                        .timers
                        .insert(key, value)
                        .map_err(StorageError::metadata)?;
                }
                // Left without a timer: promotion never meets it, and the
                // message is reported lost here, once.
                Err(error) => tracing::error!(offset, %error, "delayed message unreadable: lost"),
            }
        }
        for item in delays.timers.iter() {
            let (key, value) = item.map_err(StorageError::metadata)?;
            let Some((_, offset)) = parse_key(&key) else {
                continue;
            };
            if inner.is_settled(queue, offset)? {
                delays.timers.remove(key).map_err(StorageError::metadata)?;
                continue;
            }
            for destination in decode_queues(&value) {
                *delays.pending.entry(destination).or_default() += 1;
            }
        }
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
    fn is_settled(&self, queue: QueueId, offset: u64) -> Result<bool, StorageError> {
        let queue = self.queue(queue)?;
        let consumption = queue.consumption.lock().unwrap();
        Ok(offset < consumption.floor || consumption.acked.contains(offset))
    }

    /// Settles `offset` of `queue` without a delivery, recording it.
    fn settle(&self, queue: QueueId, offset: u64) -> Result<(), StorageError> {
        let queue = self.queue(queue)?;
        let mut consumption = queue.consumption.lock().unwrap();
        consumption.settle(offset);
        self.record(&mut consumption, queue.id, Change::Settled { offset });
        Ok(())
    }

    /// The delay queue's index end, read under the lock timers are inserted
    /// under: every delayed record below it has its timer in sled.
    pub(super) fn delays_indexed(&self) -> u64 {
        let delays = self.delays.lock().unwrap();
        self.queue(delays.queue)
            .map(|q| q.index.lock().unwrap().end())
            .unwrap_or(0)
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
        let offset = appended.offsets[0].1;
        let key = timer_key(message.deliver_after_ms, offset);
        if let Err(error) = delays.timers.insert(key, encode_queues(queue_ids)) {
            // Without a timer it would never be delivered: it is undone,
            // and the publisher told.
            inner.settle(delays.queue, offset)?;
            return Err(StorageError::metadata(error));
        }
        delays.count(queue_ids, true);
        Ok(appended)
    }

    /// The earliest due time of a pending delayed message.
    pub fn next_due(&self) -> Option<u64> {
        let delays = self.inner.delays.lock().unwrap();
        let (key, _) = delays.timers.first().ok()??;
        parse_key(&key).map(|(due, _)| due)
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
        let due: Vec<_> = delays
            .timers
            .range(..timer_key(now_ms.saturating_add(1), 0))
            .take(max)
            .collect::<Result<_, _>>()
            .map_err(StorageError::metadata)?;
        for (key, value) in due {
            let Some((_, offset)) = parse_key(&key) else {
                continue;
            };
            let destinations = decode_queues(&value);
            if !inner.is_settled(delay_queue, offset)? {
                match self.read(delay_queue, offset) {
                    Ok(message) => {
                        let live: Vec<QueueId> = {
                            let queues = inner.queues.read().unwrap();
                            destinations
                                .iter()
                                .copied()
                                .filter(|q| queues.contains_key(q))
                                .collect()
                        };
                        if !live.is_empty() {
                            let mut copy = message;
                            copy.flags &= !FLAG_DELAYED;
                            let envelope = Envelope {
                                queues: &live,
                                moved_from: Some(offset),
                            };
                            // A full disk stops here: the rest stay due.
                            inner.append_record(&copy, envelope, live.len())?;
                            for queue in live {
                                if !promotion.queues.contains(&queue) {
                                    promotion.queues.push(queue);
                                }
                            }
                        }
                    }
                    Err(error @ StorageError::Corrupt { .. }) => {
                        promotion
                            .lost
                            .push(format!("delayed message {offset}: {error}"));
                    }
                    // A timer that outlived its record (the log lost its
                    // tail, the timer did not): nothing was confirmed.
                    Err(StorageError::OutOfRange { .. }) => {}
                    Err(error) => return Err(error),
                }
                inner.settle(delay_queue, offset)?;
                promotion.promoted += 1;
            }
            delays.timers.remove(key).map_err(StorageError::metadata)?;
            delays.count(&destinations, false);
        }
        Ok(promotion)
    }

    /// Forgets the pending count of a deleted queue (its delayed messages
    /// end when due, going nowhere).
    pub(super) fn forget_delayed(&self, queue: QueueId) {
        self.inner.delays.lock().unwrap().pending.remove(&queue);
    }
}

/// The flush mode of the delay queue: a delayed message is as durable as
/// the append says (`Appended::needs_sync` follows its destinations).
pub(super) const DELAY_QUEUE_FLUSH: FlushMode = FlushMode::Async;
