//! What happened to a queue's messages since the broker started: totals
//! for metrics (Prometheus counters; a restart starts them at zero, which
//! Prometheus' `rate` understands).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct QueueCounters {
    published: AtomicU64,
    delivered: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    dead_lettered: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    /// Messages stored in the queue (a fan-out counts once per queue).
    pub published: u64,
    /// Deliveries and gets, redeliveries included.
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    /// Deaths handed to the queue's dead-letter policy.
    pub dead_lettered: u64,
}

/// What happened to messages published to an exchange since the broker
/// started.
#[derive(Debug, Default)]
pub struct ExchangeCounters {
    published: AtomicU64,
    unroutable: AtomicU64,
    refused: AtomicU64,
}

/// An exchange's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeCounterValues {
    /// Messages published to it (dead-letter republishes included).
    pub published: u64,
    /// Of those, routed to no queue.
    pub unroutable: u64,
    /// Of those, refused (filter, plugin failure, full queue or disk).
    pub refused: u64,
}

impl ExchangeCounters {
    pub(crate) fn count(&self, outcomes: &[super::publish::Outcome]) {
        use super::publish::Outcome;
        add(&self.published, outcomes.len() as u64);
        for outcome in outcomes {
            match outcome {
                Outcome::Unroutable => add(&self.unroutable, 1),
                Outcome::Refused(_) => add(&self.refused, 1),
                Outcome::Stored { .. } | Outcome::Forwarding { .. } | Outcome::Duplicate => {}
            }
        }
    }

    pub fn values(&self) -> ExchangeCounterValues {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExchangeCounterValues {
            published: get(&self.published),
            unroutable: get(&self.unroutable),
            refused: get(&self.refused),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl QueueCounters {
    pub(crate) fn published(&self, n: u64) {
        add(&self.published, n);
    }

    pub(crate) fn delivered(&self, redelivered: bool) {
        add(&self.delivered, 1);
        if redelivered {
            add(&self.redelivered, 1);
        }
    }

    pub(crate) fn acked(&self, n: u64) {
        add(&self.acked, n);
    }

    pub(crate) fn dead_lettered(&self, n: u64) {
        add(&self.dead_lettered, n);
    }

    pub fn values(&self) -> CounterValues {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterValues {
            published: get(&self.published),
            delivered: get(&self.delivered),
            redelivered: get(&self.redelivered),
            acked: get(&self.acked),
            dead_lettered: get(&self.dead_lettered),
        }
    }
}
