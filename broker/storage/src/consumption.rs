//! What consumers have done with a queue: the acknowledged prefix (every
//! offset below `floor` is settled), the sparse set of acks above it, the
//! deliveries in flight, and offsets waiting to be delivered again. Pure
//! state, checkpointed to sled by the store.
//!
//! Invariants: `acked`, `in_flight` and `redeliver` are disjoint; `acked`
//! holds only offsets at or above `floor`. `in_flight` and `redeliver` may
//! hold offsets below `floor`: deliveries that were outstanding when the
//! queue was purged (a purge removes ready messages only, as in RabbitMQ;
//! what consumers hold stays theirs to ack, or comes back if they go away).
//! [`Consumption::low_water`] is the lowest offset anything still needs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::consumption_log::{Change, ConsumptionEvent};
use super::offset_set::OffsetSet;
use super::record::QueueId;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consumption {
    /// Every offset below this is acknowledged.
    pub floor: u64,
    /// Acknowledged offsets at or above `floor`.
    pub acked: OffsetSet,
    /// Delivered, not yet acknowledged.
    pub in_flight: BTreeSet<u64>,
    /// To be delivered again before new messages (nack with requeue,
    /// consumer gone, restart); delivered with the redelivered flag.
    pub redeliver: BTreeSet<u64>,
    /// The next never-delivered offset.
    pub cursor: u64,
    /// Offsets below this may have been handed to a consumer: the store
    /// makes the lease durable before delivering past it.
    #[serde(default)]
    pub lease: u64,
    /// After a crash, never-acknowledged offsets below this are delivered
    /// flagged redelivered: the last lease, since which deliveries may have
    /// gone out that the checkpoint does not know of.
    #[serde(default)]
    pub redelivered_below: u64,
    /// The number of the last event recorded for the consumption log.
    #[serde(default)]
    pub event_seq: u64,
    /// How many times each unsettled offset came back (requeued, or its
    /// consumer went away): a queue's delivery limit counts these, across
    /// restarts. Only offsets that came back are here.
    #[serde(default)]
    pub returns: std::collections::BTreeMap<u64, u32>,
}

/// A delivery handed out by [`Consumption::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub offset: u64,
    pub redelivered: bool,
}

impl Consumption {
    pub fn starting_at(offset: u64) -> Self {
        Consumption {
            floor: offset,
            cursor: offset,
            ..Consumption::default()
        }
    }

    /// The next offset to deliver, if any below `end`, marked in flight.
    pub fn next(&mut self, end: u64) -> Option<Delivery> {
        let head = self.head(end)?;
        self.take(head);
        Some(head)
    }

    /// The offset [`Consumption::next`] would deliver, without delivering
    /// it: redeliveries first, then the first never-delivered offset.
    pub fn head(&mut self, end: u64) -> Option<Delivery> {
        if let Some(&offset) = self.redeliver.first() {
            return Some(Delivery {
                offset,
                redelivered: true,
            });
        }
        // Skipping settled offsets changes nothing a reader can observe.
        self.cursor = self.cursor.max(self.floor);
        if let Some(settled) = self.acked.run_containing(self.cursor) {
            self.cursor = settled.end;
        }
        (self.cursor < end).then_some(Delivery {
            offset: self.cursor,
            redelivered: self.cursor < self.redelivered_below,
        })
    }

    /// Marks `head` (just returned by [`Consumption::head`]) in flight.
    fn take(&mut self, head: Delivery) {
        // A fresh offset may be flagged too (after a crash): where it came
        // from, not its flag, says what to advance.
        if !self.redeliver.remove(&head.offset) {
            self.cursor = head.offset + 1;
        }
        self.in_flight.insert(head.offset);
    }

    /// Delivers `expected` if it is still the head (another reader may
    /// have taken it since it was looked at); false otherwise.
    pub fn take_head(&mut self, end: u64, expected: Delivery) -> bool {
        if self.head(end) != Some(expected) {
            return false;
        }
        self.take(expected);
        true
    }

    /// Acknowledges `offset`; returns false if it was not in flight.
    pub fn ack(&mut self, offset: u64) -> bool {
        if !self.in_flight.remove(&offset) {
            return false;
        }
        self.settle(offset);
        true
    }

    /// Marks `offset` done without a delivery (dead-lettered, expired, dropped).
    pub fn settle(&mut self, offset: u64) {
        self.returns.remove(&offset);
        self.redeliver.remove(&offset);
        self.in_flight.remove(&offset);
        if offset < self.floor {
            return;
        }
        self.acked.insert(offset);
        if let Some(run) = self.acked.first_range()
            && run.start == self.floor
        {
            self.floor = run.end;
            self.acked.remove_below(self.floor);
        }
    }

    /// Negative acknowledgement: requeue for redelivery, or settle.
    pub fn nack(&mut self, offset: u64, requeue: bool) -> bool {
        if !self.in_flight.remove(&offset) {
            return false;
        }
        if requeue {
            self.redeliver.insert(offset);
            self.count_return(offset);
        } else {
            self.settle(offset);
        }
        true
    }

    /// One more return of `offset`; the count so far.
    pub fn count_return(&mut self, offset: u64) -> u32 {
        let count = self.returns.entry(offset).or_default();
        *count = count.saturating_add(1);
        *count
    }

    /// How many times `offset` came back.
    pub fn returns_of(&self, offset: u64) -> u32 {
        self.returns.get(&offset).copied().unwrap_or(0)
    }

    /// A consumer went away: its deliveries go back to the queue.
    pub fn release(&mut self, offsets: impl IntoIterator<Item = u64>) {
        for offset in offsets {
            if self.in_flight.remove(&offset) {
                self.redeliver.insert(offset);
                self.count_return(offset);
            }
        }
    }

    /// After a restart: whatever was delivered (in flight, or possibly
    /// delivered after the last checkpoint) is delivered again, marked so.
    pub fn restart(&mut self, end: u64) {
        let in_flight = std::mem::take(&mut self.in_flight);
        self.redeliver.extend(in_flight);
        self.cursor = self.cursor.clamp(self.floor.min(end), end);
        self.floor = self.floor.min(end);
        self.acked.remove_from(end);
        self.redeliver.retain(|&o| o < end);
        // Counts of offsets the log no longer holds (its tail was cut):
        // nothing can come back under those offsets.
        self.returns.retain(|&o, _| o < end);
    }

    /// After a crash: every message up to `end` (what the log holds) that
    /// the last lease covered may have been delivered (see
    /// [`Consumption::lease`]); messages published later cannot have been.
    pub fn crashed(&mut self, end: u64) {
        self.redelivered_below = self.redelivered_below.max(self.lease.min(end));
    }

    /// Numbers `change` (already applied) for the consumption log.
    pub fn record(&mut self, queue: QueueId, change: Change) -> ConsumptionEvent {
        self.event_seq += 1;
        ConsumptionEvent {
            queue,
            seq: self.event_seq,
            change,
        }
    }

    /// Replays an event the log holds, unless this state already has it.
    pub fn replay(&mut self, event: &ConsumptionEvent) {
        if event.seq <= self.event_seq {
            return;
        }
        self.event_seq = event.seq;
        match event.change {
            Change::Settled { offset } => self.settle(offset),
            Change::Purged { end } => {
                // The state replayed onto may hold deliveries made since
                // the checkpoint as fresh: drop all below `end`; the Kept
                // events that follow restore what was really in flight.
                self.purge(end);
                self.in_flight.retain(|&o| o >= end);
            }
            Change::Kept { offset } => {
                self.in_flight.insert(offset);
            }
            Change::Leased { below } => self.lease = self.lease.max(below),
            Change::Returned { offset } => {
                self.count_return(offset);
            }
            Change::Reset { to } => {
                // Nothing was in flight when it was reset; deliveries the
                // checkpoint holds as in flight were settled before.
                self.in_flight.clear();
                self.reset(to);
            }
        }
    }

    /// Drops every ready message below `end` (purge); deliveries in flight
    /// stay outstanding. Returns how many were dropped.
    pub fn purge(&mut self, end: u64) -> u64 {
        let floor = end.max(self.floor);
        // Ready in [floor, end), and requeued below the floor (after an
        // earlier purge).
        let requeued_below = self.redeliver.range(..end.min(self.floor)).count() as u64;
        let dropped = self.ready_from(self.floor, end) + requeued_below;
        // Requeued deliveries below `end` are ready: dropped like the rest
        // (a stream trimmed below `end` keeps those above it).
        self.redeliver.retain(|&o| o >= end);
        let (in_flight, redeliver) = (&self.in_flight, &self.redeliver);
        self.returns
            .retain(|offset, _| in_flight.contains(offset) || redeliver.contains(offset));
        self.acked.remove_below(floor);
        self.floor = floor;
        self.cursor = self.cursor.max(floor);
        dropped
    }

    /// Starts over at `to` (nothing may be in flight): everything below is
    /// settled, everything from it on is to be delivered.
    pub fn reset(&mut self, to: u64) {
        debug_assert!(self.in_flight.is_empty());
        self.floor = to;
        self.cursor = to;
        self.acked = OffsetSet::default();
        self.redeliver.clear();
        self.returns.clear();
    }

    /// Of the messages ready below `end`, those at or above `from`.
    fn ready_from(&self, from: u64, end: u64) -> u64 {
        if from >= end {
            return 0;
        }
        let unsettled = (end - from).saturating_sub(self.acked.count_in(from..end));
        let in_flight = self.in_flight.range(from..end).count() as u64;
        unsettled.saturating_sub(in_flight)
    }

    /// Messages waiting to be delivered (neither settled nor in flight),
    /// below `end`. Requeued deliveries are among them exactly once.
    pub fn ready(&self, end: u64) -> u64 {
        let outstanding = end.saturating_sub(self.floor);
        // In flight below the floor only after a purge (rare, few): count
        // those and subtract, so this stays O(log n) on every publish to a
        // queue with a length limit.
        let in_flight_below = self.in_flight.range(..self.floor).count() as u64;
        let in_flight_above = self.in_flight.len() as u64 - in_flight_below;
        let requeued_below = self.redeliver.range(..self.floor).count() as u64;
        outstanding
            .saturating_sub(self.acked.len())
            .saturating_sub(in_flight_above)
            + requeued_below
    }

    /// The lowest offset still needed: below it every message is settled.
    pub fn low_water(&self) -> u64 {
        [
            self.in_flight.first(),
            self.redeliver.first(),
            Some(&self.floor),
        ]
        .into_iter()
        .flatten()
        .copied()
        .min()
        .unwrap_or(self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks_advance_the_floor_when_the_gap_closes() {
        let mut c = Consumption::starting_at(0);
        let d: Vec<u64> = (0..4).map(|_| c.next(4).unwrap().offset).collect();
        assert_eq!(d, vec![0, 1, 2, 3]);
        assert!(c.ack(2));
        assert!(c.ack(1));
        assert_eq!(c.floor, 0);
        assert!(c.ack(0));
        assert_eq!(c.floor, 3);
        assert!(c.acked.is_empty());
        assert!(!c.ack(0), "a second ack of the same offset is refused");
    }

    #[test]
    fn requeued_and_restarted_deliveries_come_back_marked() {
        let mut c = Consumption::starting_at(0);
        let first = c.next(3).unwrap();
        c.next(3).unwrap();
        assert!(c.nack(first.offset, true));
        assert_eq!(
            c.next(3),
            Some(Delivery {
                offset: 0,
                redelivered: true
            })
        );
        c.restart(3);
        let again: Vec<Delivery> = std::iter::from_fn(|| c.next(3)).collect();
        assert_eq!(again.iter().filter(|d| d.redelivered).count(), 2);
        assert_eq!(again.len(), 3);
    }
}
