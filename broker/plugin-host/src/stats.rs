//! Call counters and a lock-free latency histogram per plugin version, for
//! `plugin list` and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets are powers of two of nanoseconds: bucket i holds [2^i, 2^(i+1)).
pub const LATENCY_BUCKETS: usize = 40;
const BUCKETS: usize = LATENCY_BUCKETS;

pub struct CallStats {
    calls: AtomicU64,
    errors: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    nanos: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub errors: u64,
    /// Upper bound of the bucket holding the 99th percentile call time.
    pub p99_call_ns: u64,
    /// Log lines the rate limit dropped.
    #[serde(default)]
    pub log_lines_dropped: u64,
    /// Failed calls that trapped, and that ran past their deadline.
    #[serde(default)]
    pub traps: u64,
    #[serde(default)]
    pub timeouts: u64,
    /// Calls per latency bucket (bucket i: [2^i, 2^(i+1)) ns), and the
    /// time of all calls, for metrics.
    #[serde(skip)]
    pub latency_buckets: Vec<u64>,
    #[serde(skip)]
    pub call_nanos: u64,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl CallStats {
    pub(crate) fn record(&self, elapsed: Duration, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let ns = elapsed.as_nanos().clamp(1, u64::MAX as u128) as u64;
        self.nanos.fetch_add(ns, Ordering::Relaxed);
        let bucket = (63 - ns.leading_zeros() as usize).min(BUCKETS - 1);
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A failed call trapped (`timeout`: it ran past its deadline).
    pub(crate) fn count_failure(&self, trapped: bool, timeout: bool) {
        if trapped {
            self.traps.fetch_add(1, Ordering::Relaxed);
        }
        if timeout {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let target = total.saturating_mul(99).div_ceil(100);
        let mut seen = 0;
        let mut p99 = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if total > 0 && seen >= target {
                p99 = 1u64 << (bucket + 1);
                break;
            }
        }
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p99_call_ns: p99,
            log_lines_dropped: 0,
            traps: self.traps.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            latency_buckets: counts,
            call_nanos: self.nanos.load(Ordering::Relaxed),
        }
    }
}
