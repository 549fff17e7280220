//! Faulting reserved segment pages in on a background thread, ahead of the
//! writer (RocketMQ's allocate-ahead service).
//!
//! The first write to each page of a fresh, preallocated segment makes the
//! kernel zero the page; on a busy or virtualised machine that is a large
//! share of an append's cost (`perf` showed a quarter of the broker's CPU
//! under the append call). Segments reserve disk space a few chunks ahead
//! of the writer and hand the new range here, so by the time the writer
//! arrives its pages are already in memory. Faulting in is only a hint:
//! a range not done yet is faulted by the writer itself, as before.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use super::segment::Segment;

/// A range of a segment to fault in.
struct Job {
    segment: Arc<Segment>,
    offset: usize,
    len: usize,
}

/// Ranges waiting to be faulted in, at most. When the writer outruns the
/// thread (fresh pages on a slow-to-fault machine), newer ranges are
/// dropped rather than queued: the writer faults them itself, and a queue
/// cannot grow or keep released segments alive.
const QUEUED: usize = 16;

/// The one background thread's queue (started on first use; a thread per
/// store would only compete for the same cores).
fn queue() -> Option<&'static Mutex<SyncSender<Job>>> {
    static QUEUE: OnceLock<Option<Mutex<SyncSender<Job>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (send, receive) = sync_channel::<Job>(QUEUED);
            let started = std::thread::Builder::new()
                .name("log-prefault".into())
                .spawn(move || {
                    for job in receive {
                        job.segment.populate(job.offset, job.len);
                    }
                });
            match started {
                Ok(_) => Some(Mutex::new(send)),
                Err(error) => {
                    tracing::warn!(%error, "no page prefaulting thread; the writer faults pages in itself");
                    None
                }
            }
        })
        .as_ref()
}

/// Faults `[offset, offset + len)` of `segment` in, in the background.
pub fn later(segment: &Arc<Segment>, offset: usize, len: usize) {
    if len == 0 {
        return;
    }
    if let Some(queue) = queue() {
        let job = Job {
            segment: segment.clone(),
            offset,
            len,
        };
        let _ = queue.lock().unwrap().try_send(job);
    }
}
