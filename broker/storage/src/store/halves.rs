//! Half (transactional) messages: a message routed and stored but not yet
//! visible, appended once as a *half record* — indexed only by the store's
//! hidden half queue, naming the queues it goes to — until its producer
//! commits it (a copy to those queues, carrying the half offset, and the
//! half offset settled) or rolls it back (settled, never delivered). The
//! half offset is the transaction's id.
//!
//! Invariants (as for delayed messages, store/delays.rs):
//! - A committed copy and the end of its half message are one log record:
//!   replaying the copy settles its half offset (recovery.rs), so after a
//!   crash a committed transaction is never pending again, and a pending
//!   one was never delivered.
//! - How many times the broker asked about a half message is counted per
//!   offset like a delivery's returns (`Returned` events): durable with the
//!   next flush, so checks resume where they were after a restart.

use super::super::config::FlushMode;
use super::super::consumption_log::Change;
use super::super::error::StorageError;
use super::super::record::{Envelope, FLAG_HALF, QueueId, StoredMessage};
use super::{Appended, MessageStore};

/// The storage name of the half queue (broker names cannot begin with NUL).
pub(super) const HALF_QUEUE: &str = "\u{0}halves";
/// A half message is as durable as its append says (`Appended::needs_sync`
/// follows its destinations).
pub(super) const HALF_QUEUE_FLUSH: FlushMode = FlushMode::Async;

/// A pending half message.
#[derive(Debug, Clone)]
pub struct HalfMessage {
    /// Its transaction id (its offset in the half queue).
    pub id: u64,
    pub message: StoredMessage,
    /// Where it goes when committed.
    pub destinations: Vec<QueueId>,
    /// How many times its producer group was asked about it.
    pub checks: u32,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The copy appended to the destinations still there (`None`: they
    /// are all gone): durable once flushed past its end.
    pub appended: Option<Appended>,
    pub queues: Vec<QueueId>,
}

impl MessageStore {
    /// Stores `message` for `destinations`, invisible until committed;
    /// `offsets[0].1` of the result is its transaction id.
    pub fn append_half(
        &self,
        message: &StoredMessage,
        destinations: &[QueueId],
    ) -> Result<Appended, StorageError> {
        let inner = &self.inner;
        let mut record = message.clone();
        record.flags |= FLAG_HALF;
        let mut queues = Vec::with_capacity(destinations.len() + 1);
        queues.push(inner.half_queue);
        queues.extend_from_slice(destinations);
        let mut appended = inner.append_record(&record, Envelope::of(&queues), 1)?;
        // Durable as its destinations want (the half queue is async).
        appended.needs_sync = {
            let map = inner.queues.read().unwrap();
            destinations
                .iter()
                .any(|q| map.get(q).is_some_and(|q| q.flush == FlushMode::Sync))
        };
        Ok(appended)
    }

    /// Whether transaction `id` is pending (stored, neither committed nor
    /// rolled back nor given up).
    pub fn half_pending(&self, id: u64) -> Result<bool, StorageError> {
        let inner = &self.inner;
        let end = inner.queue(inner.half_queue)?.index.lock().unwrap().end();
        Ok(id < end && !inner.is_settled(inner.half_queue, id)?)
    }

    /// Pending transaction `id` as stored, with its check count.
    pub fn half(&self, id: u64) -> Result<HalfMessage, StorageError> {
        let inner = &self.inner;
        let queue = inner.queue(inner.half_queue)?;
        let entry = queue.index.lock().unwrap().get(id)?;
        let record = inner.log.read(entry.position)?;
        let checks = queue.consumption.lock().unwrap().returns_of(id);
        let mut message = record.message;
        message.flags &= !FLAG_HALF;
        Ok(HalfMessage {
            id,
            message,
            destinations: record.queues[1..].to_vec(),
            checks,
        })
    }

    /// Every pending transaction id, oldest first.
    pub fn pending_halves(&self) -> Result<Vec<u64>, StorageError> {
        let inner = &self.inner;
        let queue = inner.queue(inner.half_queue)?;
        let end = queue.index.lock().unwrap().end();
        let consumption = queue.consumption.lock().unwrap();
        Ok((consumption.low_water()..end)
            .filter(|&o| o >= consumption.floor && !consumption.acked.contains(o))
            .collect())
    }

    /// Counts one more check of transaction `id`; the count so far.
    pub fn count_half_check(&self, id: u64) -> Result<u32, StorageError> {
        let inner = &self.inner;
        let queue = inner.queue(inner.half_queue)?;
        let mut consumption = queue.consumption.lock().unwrap();
        let count = consumption.count_return(id);
        inner.record(&mut consumption, queue.id, Change::Returned { offset: id });
        Ok(count)
    }

    /// Makes transaction `id` visible in its destinations still there;
    /// `None` if it is not pending.
    pub fn commit_half(&self, id: u64) -> Result<Option<Commit>, StorageError> {
        let inner = &self.inner;
        let _ends = inner.half_ends.lock().unwrap();
        if !self.half_pending(id)? {
            return Ok(None);
        }
        let half = self.half(id)?;
        let live: Vec<QueueId> = {
            let queues = inner.queues.read().unwrap();
            (half.destinations.iter().copied())
                .filter(|q| queues.contains_key(q))
                .collect()
        };
        let appended = match live.is_empty() {
            true => None,
            false => {
                let envelope = Envelope {
                    queues: &live,
                    moved_from: Some(id),
                    moved_from_queue: Some(inner.half_queue),
                };
                Some(inner.append_record(&half.message, envelope, live.len())?)
            }
        };
        inner.settle(inner.half_queue, id)?;
        Ok(Some(Commit {
            appended,
            queues: live,
        }))
    }

    /// Ends transaction `id` without delivering it (rolled back, or given
    /// up after its checks); false if it was not pending.
    pub fn discard_half(&self, id: u64) -> Result<bool, StorageError> {
        let inner = &self.inner;
        let _ends = inner.half_ends.lock().unwrap();
        if !self.half_pending(id)? {
            return Ok(false);
        }
        inner.settle(inner.half_queue, id)?;
        Ok(true)
    }
}
