//! Delayed delivery: a message with an `x-delay` (milliseconds) or
//! `x-deliver-at` (milliseconds since the epoch) header is routed at once,
//! stored and confirmed at once, and enters its queues at its due time
//! (the storage engine keeps it on disk meanwhile: storage/store/delays.rs).
//! A dead-letter policy's `retry(delay)` goes the same way. The scheduler
//! thread sleeps until the earliest due time (or until a message due
//! sooner is published) and promotes what is due, in due-time order.
//!
//! Semantics: a delayed message enters its queue as if published at its
//! due time — its TTL (own `expiration` or the queue's `message-ttl`)
//! counts from then, and max-length applies when it enters (drop-head
//! queues drop their oldest; the delayed message itself is never refused
//! at that point: it was confirmed long ago).

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

pub use switchyard_protocol::{DELAY_HEADER, DELIVER_AT_HEADER};
use switchyard_protocol::{Message, Value};
use switchyard_storage::QueueId;

use super::error::BrokerError;
use super::routing::Aftermath;
use super::{Broker, Queue, Vhost};

/// The longest delay accepted: a year.
pub const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;
/// Messages promoted per storage call (the scheduler lock is released
/// between batches, so publishers are not held up by a burst coming due).
const PROMOTION_BATCH: usize = 1024;
/// The scheduler looks again at least this often (a clock set by tests, a
/// lost wake-up): the bound on lateness when nothing else wakes it.
const MAX_SLEEP: Duration = Duration::from_millis(250);

/// Wakes the scheduler when a message due before its next wake-up arrives.
#[derive(Default)]
pub(crate) struct DelayWakeup {
    /// The due time the scheduler sleeps until (`u64::MAX`: none pending;
    /// 0: awake, it will look at the timers before sleeping again).
    sleeping_until: Mutex<u64>,
    wake: Condvar,
}

fn millis(message: &Message, name: &str) -> Result<Option<u64>, BrokerError> {
    let Some(value) = switchyard_protocol::find(&message.headers, name) else {
        return Ok(None);
    };
    let bad = || {
        BrokerError::invalid_argument(format!(
            "header '{name}' must be a non-negative number of milliseconds, not {value:?}"
        ))
    };
    match value {
        Value::Int(ms) => u64::try_from(*ms).map(Some).map_err(|_| bad()),
        Value::Text(text) => text.trim().parse().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// When `message` asks to be delivered, if later than `now`.
pub(crate) fn due_time(message: &Message, now: u64) -> Result<Option<u64>, BrokerError> {
    let due = match (
        millis(message, DELAY_HEADER)?,
        millis(message, DELIVER_AT_HEADER)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(BrokerError::invalid_argument(format!(
                "give '{DELAY_HEADER}' or '{DELIVER_AT_HEADER}', not both"
            )));
        }
        (Some(delay), None) => now.saturating_add(delay),
        (None, Some(at)) => at,
        (None, None) => return Ok(None),
    };
    if due.saturating_sub(now) > MAX_DELAY_MS {
        return Err(BrokerError::invalid_argument(format!(
            "a delivery time {} ms away is past the longest delay ({MAX_DELAY_MS} ms)",
            due - now
        )));
    }
    Ok((due > now).then_some(due))
}

impl Broker {
    /// Tells the scheduler about a message due at `due`.
    pub(crate) fn delayed_until(&self, due: u64) {
        let sleeping_until = self.delay_wakeup.sleeping_until.lock().unwrap();
        if due < *sleeping_until {
            self.delay_wakeup.wake.notify_one();
        }
    }

    /// Moves every delayed message due now into its queues; returns how
    /// many. The scheduler thread calls it; tests on a manual clock too.
    pub fn promote_due(&self) -> u64 {
        let mut promoted = 0;
        loop {
            let promotion = match self.store.promote_due(self.now_ms(), PROMOTION_BATCH) {
                Ok(promotion) => promotion,
                Err(error) => {
                    tracing::error!(%error, "delayed messages not promoted; retried shortly");
                    return promoted;
                }
            };
            for lost in &promotion.lost {
                tracing::error!(%lost, "delayed message unreadable: lost");
            }
            promoted += promotion.promoted;
            self.arrived(&promotion.queues, false);
            if promotion.promoted < PROMOTION_BATCH as u64 {
                return promoted;
            }
        }
    }

    /// Wakes the consumers of queues that received promoted (or committed)
    /// messages and keeps drop-head queues at their max-length. A committed
    /// half message is `published` to its queues now (a delayed one was
    /// counted when it was published).
    pub(crate) fn arrived(&self, ids: &[QueueId], published: bool) {
        if ids.is_empty() {
            return;
        }
        let vhosts: Vec<Arc<Vhost>> = self.vhosts.read().unwrap().values().cloned().collect();
        for vhost in vhosts {
            let queues: Vec<Arc<Queue>> = vhost
                .queues
                .read()
                .unwrap()
                .values()
                .filter(|q| ids.contains(&q.id))
                .cloned()
                .collect();
            if queues.is_empty() {
                continue;
            }
            let mut aftermath = Aftermath::default();
            for queue in queues {
                if published {
                    queue.counters.published(1);
                }
                queue.ready.notify_waiters();
                aftermath.overfull.push(queue);
            }
            self.bury(&vhost, aftermath);
        }
    }

    /// Starts the delay scheduler thread; it ends when the broker is dropped.
    pub fn start_delay_scheduler(self: &Arc<Self>) -> std::io::Result<()> {
        let broker: Weak<Broker> = Arc::downgrade(self);
        let wakeup = self.delay_wakeup.clone();
        std::thread::Builder::new()
            .name("delay-scheduler".into())
            .spawn(move || {
                loop {
                    let Some(strong) = broker.upgrade() else {
                        return;
                    };
                    strong.promote_due();
                    // The next due time is read under the lock publishers
                    // take to wake the scheduler: a message published after
                    // this read finds the scheduler asleep and wakes it.
                    let mut sleeping_until = wakeup.sleeping_until.lock().unwrap();
                    let next = strong.store.next_due();
                    let now = strong.now_ms();
                    drop(strong);
                    let wait = next.map_or(MAX_SLEEP, |due| {
                        Duration::from_millis(due.saturating_sub(now)).min(MAX_SLEEP)
                    });
                    if !wait.is_zero() {
                        *sleeping_until = next.unwrap_or(u64::MAX);
                        sleeping_until = wakeup.wake.wait_timeout(sleeping_until, wait).unwrap().0;
                    }
                    *sleeping_until = 0;
                }
            })
            .map(|_| ())
    }
}
