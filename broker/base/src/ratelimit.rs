//! Rate limiting, two ways, both driven by explicit instants so that tests
//! need no sleeps:
//!
//! - [`TokenBucket`]: a budget that refills over time; taking from an empty
//!   one says how long until there is room again (failed logins).
//! - [`LogLimiter`]: lets the first of a run of repeated events through and
//!   then at most one per interval, counting what it held back, so a flood
//!   of identical warnings becomes a few lines that still say how many
//!   there were (refused publishes, plugin logs).
//!
//! Neither locks: wrap one in a `Mutex` to share it between threads.

use std::time::{Duration, Instant};

/// `capacity` tokens, refilled at `per_second`; one event takes one token.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. `per_second` must be positive.
    pub fn new(capacity: u32, per_second: f64, now: Instant) -> Self {
        assert!(per_second > 0.0, "a token bucket must refill");
        TokenBucket {
            capacity: capacity.max(1) as f64,
            per_second,
            tokens: capacity.max(1) as f64,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = self.updated.max(now);
    }

    /// Whether a token is available at `now`; if not, how long until one is.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }

    /// Takes one token if there is one; otherwise how long until there is.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.check(now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    /// Takes one token, going into debt if there is none: every event
    /// counts, so a burst that raced past `check` still pushes the next
    /// allowed event further out.
    pub fn charge(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(-self.capacity);
    }

    /// Back to full (e.g. after a successful login).
    pub fn reset(&mut self, now: Instant) {
        self.tokens = self.capacity;
        self.updated = now;
    }

    /// Whether the bucket has refilled completely: it then remembers
    /// nothing and can be forgotten.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// Lets one event through per `interval`; counts the others.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    interval: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            next: None,
            suppressed: 0,
        }
    }

    /// Records one event at `now`. `Some(n)`: log this one, saying that
    /// `n` more happened since the last one logged (0 for the first of a
    /// run); `None`: stay quiet (it is counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + self.interval);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// How many events were held back since the last one logged, and
    /// forgets them: for a final summary when the source goes away.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}
