//! Waiting for the log to be durable up to a position (group commit).
//!
//! Each waiter is registered under the position it needs, and after a
//! flush the flusher wakes exactly the waiters that flush covered, each on
//! its own: a blocked thread is unparked, an async task's waker called.
//! The earlier design (every waiter on one condition variable, all woken
//! by every flush to re-take the durability lock) spent more than half of
//! the CPU of 256 sync appenders in the scheduler: the herd, not the disk,
//! set the pace of group commit.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::{Inner, MessageStore, StorageError};

/// The flusher's progress and who waits on it (under `Inner::durability`).
#[derive(Default)]
pub(super) struct Durability {
    /// The log is written up to here…
    pub written: u64,
    /// …and on disk up to here.
    pub flushed: u64,
    pub shutdown: bool,
    /// A flush failed: nothing written after `flushed` may be confirmed
    /// (the pages may be lost; the broker refuses those confirms).
    pub failure: Option<StorageError>,
    pub waiters: DurableWaiters,
}

impl Durability {
    /// How a wait for `end` ends now, if it does.
    fn outcome(&self, end: u64) -> Option<Result<(), StorageError>> {
        if let Some(error) = &self.failure {
            return Some(Err(error.clone()));
        }
        if self.flushed >= end {
            return Some(Ok(()));
        }
        if self.shutdown {
            return Some(Err(StorageError::Closed));
        }
        None
    }

    /// The wakers to call now that the flusher has moved `flushed` (or
    /// failed, or stopped): those of every waiter whose wait has ended.
    pub fn ended_waits(&mut self) -> Vec<Waker> {
        if self.failure.is_some() || self.shutdown {
            self.waiters.take_all()
        } else {
            self.waiters.take_covered(self.flushed)
        }
    }
}

/// A waiter's place in [`DurableWaiters`]: the position it needs, then a
/// number that tells apart waiters needing the same one.
pub(super) type WaiterKey = (u64, u64);

/// Waiters by the position they need, lowest first.
#[derive(Default)]
pub(super) struct DurableWaiters {
    next_id: u64,
    by_end: BTreeMap<WaiterKey, Waker>,
}

impl DurableWaiters {
    pub fn is_empty(&self) -> bool {
        self.by_end.is_empty()
    }

    fn register(&mut self, end: u64, waker: &Waker) -> WaiterKey {
        self.next_id += 1;
        let key = (end, self.next_id);
        self.by_end.insert(key, waker.clone());
        key
    }

    /// Keeps `key` registered with `waker` (a task may be polled with a
    /// different waker than last time); false if it is no longer there.
    fn refresh(&mut self, key: WaiterKey, waker: &Waker) -> bool {
        match self.by_end.get_mut(&key) {
            Some(registered) => {
                if !registered.will_wake(waker) {
                    *registered = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, key: WaiterKey) {
        self.by_end.remove(&key);
    }

    fn take_covered(&mut self, flushed: u64) -> Vec<Waker> {
        let later = self.by_end.split_off(&(flushed.saturating_add(1), 0));
        std::mem::replace(&mut self.by_end, later)
            .into_values()
            .collect()
    }

    fn take_all(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.by_end).into_values().collect()
    }
}

impl Inner {
    /// One step of a wait for the log to be durable up to `end`: ready
    /// with how it ended, or pending with `waker` registered under `key`
    /// (and the flusher told someone waits).
    fn poll_durable(
        &self,
        end: u64,
        key: &mut Option<WaiterKey>,
        waker: &Waker,
    ) -> Poll<Result<(), StorageError>> {
        let mut durability = self.durability.lock().unwrap();
        if let Some(outcome) = durability.outcome(end) {
            if let Some(key) = key.take() {
                durability.waiters.remove(key);
            }
            return Poll::Ready(outcome);
        }
        if !key.is_some_and(|k| durability.waiters.refresh(k, waker)) {
            *key = Some(durability.waiters.register(end, waker));
            self.flusher_cv.notify_one();
        }
        Poll::Pending
    }

    /// Wakes the waiters whose wait has ended (called by whoever moved
    /// `flushed`, set `failure` or `shutdown`, with the lock released).
    pub(super) fn wake(wakers: Vec<Waker>) {
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Wakes a thread blocked in [`MessageStore::wait_durable`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl MessageStore {
    /// Blocks until the log is on disk up to `end`. Concurrent waiters
    /// share one flush (group commit).
    pub fn wait_durable(&self, end: u64) -> Result<(), StorageError> {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut key = None;
        loop {
            match self.inner.poll_durable(end, &mut key, &waker) {
                Poll::Ready(outcome) => return outcome,
                // Woken, or spuriously: the next poll tells.
                Poll::Pending => std::thread::park(),
            }
        }
    }

    /// [`MessageStore::wait_durable`] for async callers: no thread waits.
    pub fn durable(&self, end: u64) -> DurableFuture<'_> {
        DurableFuture {
            inner: &self.inner,
            end,
            key: None,
        }
    }
}

/// Resolves once the log is on disk up to a position
/// ([`MessageStore::durable`]).
pub struct DurableFuture<'a> {
    inner: &'a Inner,
    end: u64,
    key: Option<WaiterKey>,
}

impl Future for DurableFuture<'_> {
    type Output = Result<(), StorageError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.inner.poll_durable(this.end, &mut this.key, cx.waker())
    }
}

impl Drop for DurableFuture<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.durability.lock().unwrap().waiters.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_waker(count: &Arc<std::sync::atomic::AtomicUsize>) -> Waker {
        struct Count(Arc<std::sync::atomic::AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Waker::from(Arc::new(Count(count.clone())))
    }

    #[test]
    fn a_flush_wakes_the_waiters_it_covers_including_one_at_its_exact_end() {
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waker = counting_waker(&woken);
        let mut waiters = DurableWaiters::default();
        let at_10 = waiters.register(10, &waker);
        waiters.register(20, &waker);
        waiters.register(20, &waker);
        let at_30 = waiters.register(30, &waker);
        assert_eq!(waiters.take_covered(9).len(), 0);
        assert_eq!(waiters.take_covered(20).len(), 3);
        assert!(!waiters.refresh(at_10, &waker), "woken waiters are gone");
        assert!(waiters.refresh(at_30, &waker));
        waiters.remove(at_30);
        assert!(waiters.is_empty());
    }

    #[test]
    fn a_failed_or_stopped_flusher_ends_every_wait() {
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waker = counting_waker(&woken);
        let mut durability = Durability {
            flushed: 5,
            ..Durability::default()
        };
        durability.waiters.register(50, &waker);
        assert!(durability.ended_waits().is_empty());
        assert!(durability.outcome(50).is_none());
        durability.shutdown = true;
        assert_eq!(durability.ended_waits().len(), 1);
        assert!(matches!(
            durability.outcome(50),
            Some(Err(StorageError::Closed))
        ));
        assert!(matches!(durability.outcome(5), Some(Ok(()))));
    }
}
