//! Where and how many calls of one plugin version run at once.
//!
//! The broker core is synchronous and the QUIC shell calls it from tokio's
//! async worker threads. A plugin taking milliseconds per call would hold
//! those workers, and with them every connection and exchange of the broker
//! (issue 12: two publishers through a 5 ms plugin cut an unrelated exchange
//! from 262k to 28k msgs/s). So:
//!
//! - each version admits at most `max_concurrent_calls` calls at once, in
//!   arrival order (a ticket queue: callers from every exchange and tenant
//!   take turns); callers beyond that wait for *this* plugin, not for a
//!   shared pool that others need too;
//! - a call whose version has been slow lately (a moving average above
//!   `offload_above_us`), or that would wait longer than that for a slot,
//!   runs under `tokio::task::block_in_place`, which hands the worker's
//!   other tasks to another thread first. Quick calls of quick plugins (the
//!   built-ins take microseconds) run in place, where handing off would
//!   cost more than the call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Admission {
    max: usize,
    offload_above: Duration,
    state: Mutex<Tickets>,
    turn: Condvar,
    /// Moving average of call time (ns), weight 1/8 per call.
    average_ns: AtomicU64,
}

#[derive(Default)]
struct Tickets {
    in_use: usize,
    next_ticket: u64,
    next_admitted: u64,
}

/// Holds one of the version's call slots.
struct Slot<'a>(&'a Admission);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().in_use -= 1;
        self.0.turn.notify_all();
    }
}

impl Admission {
    pub(crate) fn new(max: usize, offload_above: Duration) -> Self {
        Admission {
            max: max.max(1),
            offload_above,
            state: Mutex::new(Tickets::default()),
            turn: Condvar::new(),
            average_ns: AtomicU64::new(0),
        }
    }

    /// Runs `call` in one of the version's slots, off the async workers
    /// when it may block them.
    pub(crate) fn run<R>(&self, call: impl FnOnce() -> R) -> R {
        let quick = self.average_ns.load(Ordering::Relaxed) <= self.offload_above.as_nanos() as u64;
        if quick {
            // A quick version's slot frees within about a call: wait for it
            // here a little (handing the worker off costs more), then queue.
            let give_up = Instant::now() + self.offload_above;
            loop {
                if let Some(slot) = self.try_enter() {
                    return self.timed(slot, call);
                }
                if Instant::now() >= give_up {
                    break;
                }
                std::thread::yield_now();
            }
        }
        off_async_workers(|| {
            let slot = self.enter();
            self.timed(slot, call)
        })
    }

    fn timed<R>(&self, slot: Slot<'_>, call: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = call();
        drop(slot);
        let ns = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        let average = self.average_ns.load(Ordering::Relaxed);
        self.average_ns
            .store(average - average / 8 + ns / 8, Ordering::Relaxed);
        result
    }

    /// A slot if one is free and nobody is queued for it.
    fn try_enter(&self) -> Option<Slot<'_>> {
        let mut state = self.state.lock().unwrap();
        if state.in_use < self.max && state.next_ticket == state.next_admitted {
            state.in_use += 1;
            state.next_ticket += 1;
            state.next_admitted += 1;
            Some(Slot(self))
        } else {
            None
        }
    }

    /// Waits for a slot, in arrival order.
    fn enter(&self) -> Slot<'_> {
        let mut state = self.state.lock().unwrap();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while !(state.next_admitted == ticket && state.in_use < self.max) {
            state = self.turn.wait(state).unwrap();
        }
        state.next_admitted += 1;
        state.in_use += 1;
        drop(state);
        // The next in line may fit too (more than one slot).
        self.turn.notify_all();
        Slot(self)
    }

    /// Calls in progress and waiting.
    #[cfg(test)]
    fn busy(&self) -> (usize, u64) {
        let state = self.state.lock().unwrap();
        (state.in_use, state.next_ticket - state.next_admitted)
    }
}

/// Runs `f` where blocking cannot starve tokio's async workers: on a
/// multi-thread runtime's worker, after handing its other tasks to another
/// thread; anywhere else (plain threads, blocking threads, a current-thread
/// runtime, which cannot hand off) in place.
fn off_async_workers<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn no_more_than_max_calls_run_at_once_and_waiters_all_get_in() {
        let admission = Arc::new(Admission::new(2, Duration::from_micros(100)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (admission, running, peak) = (admission.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        admission.run(|| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::yield_now();
                            running.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(admission.busy(), (0, 0));
    }

    #[test]
    fn a_slow_plugin_on_a_runtime_worker_leaves_the_worker_to_other_tasks() {
        // One worker: if the slow call held it, the ping task could not run.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let admission = Arc::new(Admission::new(1, Duration::from_micros(100)));
        // Teach it the version is slow.
        admission.run(|| std::thread::sleep(Duration::from_millis(5)));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (entered, has_entered) = std::sync::mpsc::channel::<()>();
        let slow = {
            let admission = admission.clone();
            runtime.spawn(async move {
                admission.run(|| {
                    entered.send(()).unwrap();
                    released.recv().unwrap()
                });
            })
        };
        has_entered.recv().unwrap();
        let ping = runtime.spawn(async {});
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), ping)
                .await
                .expect("another task ran while the plugin call blocked")
                .unwrap();
        });
        release.send(()).unwrap();
        runtime.block_on(slow).unwrap();
    }
}
