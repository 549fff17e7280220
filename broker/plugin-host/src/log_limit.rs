//! Rate limits on what plugins log: a token bucket per plugin version (every
//! instance of it draws from the same bucket), and at most one summary line
//! per second saying how many lines were dropped. A plugin that logs on every
//! message would otherwise write gigabytes of broker log. Built on the
//! broker's shared limiters (`switchyard_base::ratelimit`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_base::ratelimit::{LogLimiter as Summaries, TokenBucket};

/// Settings (`[sandbox]` `log_lines_per_sec`, `log_burst`).
#[derive(Debug, Clone, Copy)]
pub struct LogRate {
    pub per_sec: u32,
    pub burst: u32,
}

/// What to do with one log line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogDecision {
    /// Write it; first report `dropped_before` lines dropped since the last
    /// summary (0: nothing to report).
    Write { dropped_before: u64 },
    /// Drop it; `summary` is Some(n) when a summary of `n` dropped lines
    /// (this one included) is due now.
    Drop { summary: Option<u64> },
}

/// The limiter of one plugin version.
pub(crate) struct LogLimiter {
    state: Mutex<LimiterState>,
}

struct LimiterState {
    bucket: TokenBucket,
    summaries: Summaries,
    total_dropped: u64,
}

const SUMMARY_EVERY: Duration = Duration::from_secs(1);

impl LogLimiter {
    pub(crate) fn new(rate: LogRate) -> Self {
        LogLimiter {
            state: Mutex::new(LimiterState {
                bucket: TokenBucket::new(
                    rate.burst,
                    f64::from(rate.per_sec.max(1)),
                    Instant::now(),
                ),
                summaries: Summaries::new(SUMMARY_EVERY),
                total_dropped: 0,
            }),
        }
    }

    pub(crate) fn admit(&self, now: Instant) -> LogDecision {
        let mut state = self.state.lock().unwrap();
        if state.bucket.take(now).is_ok() {
            return LogDecision::Write {
                dropped_before: state.summaries.take_suppressed(),
            };
        }
        state.total_dropped += 1;
        LogDecision::Drop {
            summary: state.summaries.admit(now).map(|held_back| held_back + 1),
        }
    }

    /// Lines dropped since the version was loaded.
    pub(crate) fn total_dropped(&self) -> u64 {
        self.state.lock().unwrap().total_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_then_the_rate_with_one_summary_per_second() {
        let limiter = LogLimiter::new(LogRate {
            per_sec: 10,
            burst: 5,
        });
        let t0 = Instant::now();
        let mut written: u64 = 0;
        let mut summaries = Vec::new();
        // 10,000 lines in 2 s of simulated time.
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 200);
            match limiter.admit(now) {
                LogDecision::Write { dropped_before } => {
                    written += 1;
                    if dropped_before > 0 {
                        summaries.push(dropped_before);
                    }
                }
                LogDecision::Drop { summary } => summaries.extend(summary),
            }
        }
        // 5 of burst + 10/s for 2 s, give or take the edges.
        assert!((20..=26).contains(&written), "{written} lines written");
        assert!(summaries.len() <= 3 + written as usize, "{summaries:?}");
        assert_eq!(
            summaries.iter().sum::<u64>()
                + limiter.state.lock().unwrap().summaries.take_suppressed(),
            10_000 - written,
            "every dropped line is counted in a summary or pending"
        );
        assert_eq!(limiter.total_dropped(), 10_000 - written);
    }
}
