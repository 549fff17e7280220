//! What consumers did since the last checkpoint, made durable with the same
//! group commit as messages: settlements (ack, reject, expiry, drop),
//! purges, and delivery leases travel in the commit log as *consumption
//! records* — records of no queue, flagged [`FLAG_CONSUMPTION`], whose body
//! is a list of events. Recovery replays the ones after the checkpoint on
//! top of the checkpointed consumption state.
//!
//! So an acknowledged message comes back after a crash only if its ack was
//! not yet flushed (one flush interval, 200 ms by default, or at once when a
//! sync publisher is waiting), and a *lease* — offsets below it may have
//! been delivered — is durable before any delivery past it, so everything
//! that may have gone out before a crash comes back flagged redelivered.
//!
//! Each queue numbers its events (`seq`, kept in the checkpointed state
//! too): replay applies only events newer than the checkpoint, so an event
//! both in the checkpoint and in the log after it is not applied twice (a
//! purge replayed after a later requeue would drop the requeued message).
//!
//! Event layout (little endian), repeated: kind (1 byte: 1 settled,
//! 2 purged, 3 leased, 4 kept, 5 returned, 6 reset) · queue id (4 bytes) · seq (8 bytes) ·
//! offset (8).

use bytes::{BufMut, Bytes, BytesMut};

use super::record::{FLAG_CONSUMPTION, QueueId, StoredMessage};

/// How far past a new delivery a lease reaches: one durable write per this
/// many fresh deliveries of a queue; after a crash at most this many
/// never-delivered messages are flagged redelivered needlessly.
pub const LEASE_STEP: u64 = 4096;

const EVENT_LEN: usize = 21;

/// One thing a queue's consumers did, numbered within the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumptionEvent {
    pub queue: QueueId,
    pub seq: u64,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Acknowledged, rejected, expired or dropped: never delivered again.
    Settled { offset: u64 },
    /// Every ready message below `end` was dropped. The deliveries in
    /// flight at that moment follow as `Kept` events: replay drops
    /// everything below `end` and restores exactly those.
    Purged { end: u64 },
    /// In flight when the queue was purged: not dropped.
    Kept { offset: u64 },
    /// Offsets below `below` may be handed to consumers.
    Leased { below: u64 },
    /// Came back to the queue (requeued, or its consumer went away): one
    /// more towards the queue's delivery limit.
    Returned { offset: u64 },
    /// Consumption starts over at `to`: nothing below it is outstanding,
    /// everything from it on is (a consumer group's position reset by an
    /// administrator; nothing was in flight).
    Reset { to: u64 },
}

/// The consumption record carrying `events`.
pub fn to_record(events: &[ConsumptionEvent]) -> StoredMessage {
    let mut body = BytesMut::with_capacity(events.len() * EVENT_LEN);
    for event in events {
        let (kind, value) = match event.change {
            Change::Settled { offset } => (1u8, offset),
            Change::Purged { end } => (2, end),
            Change::Leased { below } => (3, below),
            Change::Kept { offset } => (4, offset),
            Change::Returned { offset } => (5, offset),
            Change::Reset { to } => (6, to),
        };
        body.put_u8(kind);
        body.put_u32_le(event.queue);
        body.put_u64_le(event.seq);
        body.put_u64_le(value);
    }
    StoredMessage {
        flags: FLAG_CONSUMPTION,
        body: body.freeze(),
        ..StoredMessage::default()
    }
}

/// The events of a consumption record's body; `Err` names what is wrong.
pub fn from_body(body: &Bytes) -> Result<Vec<ConsumptionEvent>, String> {
    if !body.len().is_multiple_of(EVENT_LEN) {
        return Err(format!(
            "consumption record of {} bytes is not a whole number of events",
            body.len()
        ));
    }
    body.chunks_exact(EVENT_LEN)
        .map(|event| {
            let queue = u32::from_le_bytes(event[1..5].try_into().unwrap());
            let seq = u64::from_le_bytes(event[5..13].try_into().unwrap());
            let value = u64::from_le_bytes(event[13..21].try_into().unwrap());
            let change = match event[0] {
                1 => Change::Settled { offset: value },
                2 => Change::Purged { end: value },
                3 => Change::Leased { below: value },
                4 => Change::Kept { offset: value },
                5 => Change::Returned { offset: value },
                6 => Change::Reset { to: value },
                kind => return Err(format!("unknown consumption event kind {kind}")),
            };
            Ok(ConsumptionEvent { queue, seq, change })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let event = |queue, seq, change| ConsumptionEvent { queue, seq, change };
        let events = vec![
            event(3, 1, Change::Settled { offset: 1 << 40 }),
            event(0, 9, Change::Purged { end: 17 }),
            event(0, 10, Change::Kept { offset: 3 }),
            event(u32::MAX, u64::MAX, Change::Leased { below: 4096 }),
            event(1, 2, Change::Returned { offset: 7 }),
            event(4, 3, Change::Reset { to: 11 }),
        ];
        let record = to_record(&events);
        assert_eq!(record.flags, FLAG_CONSUMPTION);
        assert_eq!(from_body(&record.body).unwrap(), events);
        assert!(from_body(&Bytes::from_static(&[9; 21])).is_err());
        assert!(from_body(&Bytes::from_static(&[1; 5])).is_err());
    }
}
