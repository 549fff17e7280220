//! How the log's flushes (msync) go, for metrics: a count, the total time,
//! and a latency histogram in fixed buckets; and how many records were
//! appended. Lock-free: the flusher and appenders only add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the flush-latency buckets, seconds (the last is +Inf).
const FLUSH_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
pub(super) struct FlushStats {
    appends: AtomicU64,
    appended_bytes: AtomicU64,
    flushes: AtomicU64,
    flush_nanos: AtomicU64,
    /// Per bucket of [`FLUSH_BUCKETS`], then one for what is slower.
    buckets: [AtomicU64; FLUSH_BUCKETS.len() + 1],
}

/// The figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageStats {
    pub appends: u64,
    pub appended_bytes: u64,
    pub flushes: u64,
    pub flush_seconds: f64,
    /// (upper bound in seconds, flushes in that bucket — not cumulative),
    /// ending with +Inf.
    pub flush_buckets: Vec<(f64, u64)>,
}

impl FlushStats {
    pub(super) fn appended(&self, bytes: u64) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.appended_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn flushed(&self, took: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.flush_nanos.fetch_add(nanos, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = FLUSH_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(FLUSH_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> StorageStats {
        let flush_buckets = FLUSH_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        StorageStats {
            appends: self.appends.load(Ordering::Relaxed),
            appended_bytes: self.appended_bytes.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            flush_seconds: self.flush_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            flush_buckets,
        }
    }
}
