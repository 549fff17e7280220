//! Failure tracking per plugin version: after `quarantine_after` consecutive
//! failures — or, within one `quarantine_window`, at least that many
//! failures making up `quarantine_failure_rate` of the calls — the version
//! is quarantined, and calls fail fast until the backoff passes; each
//! further failure doubles the backoff. A success resets the consecutive
//! count but not the window: a plugin that loops only on "poison" inputs
//! succeeds in between, and must still be stopped.

use std::time::{Duration, Instant};

use super::sandbox::SandboxLimits;

#[derive(Debug, Default)]
pub(crate) struct Health {
    consecutive_failures: u32,
    quarantined_until: Option<Instant>,
    backoff: Duration,
    window: Window,
}

/// Calls and failures since `start` (a fixed window, restarted when it
/// has passed).
#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    calls: u32,
    failures: u32,
}

impl Window {
    fn record(&mut self, failed: bool, limits: &SandboxLimits, now: Instant) {
        if self
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= limits.quarantine_window)
        {
            *self = Window {
                start: Some(now),
                ..Window::default()
            };
        }
        self.calls = self.calls.saturating_add(1);
        self.failures = self.failures.saturating_add(u32::from(failed));
    }

    fn too_many(&self, limits: &SandboxLimits) -> bool {
        self.failures >= limits.quarantine_after
            && f64::from(self.failures) >= limits.quarantine_failure_rate * f64::from(self.calls)
    }
}

/// Why a call may not run now.
pub(crate) struct InQuarantine {
    pub(crate) failures: u32,
    pub(crate) retry_in: Duration,
}

impl Health {
    pub(crate) fn admit(&self, now: Instant) -> Result<(), InQuarantine> {
        match self.quarantined_until {
            Some(until) if until > now => Err(InQuarantine {
                failures: self.consecutive_failures.max(self.window.failures),
                retry_in: until - now,
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn on_success(&mut self, limits: &SandboxLimits, now: Instant) {
        self.window.record(false, limits, now);
        if !self.window.too_many(limits) {
            *self = Health {
                window: std::mem::take(&mut self.window),
                ..Health::default()
            };
        }
    }

    /// Records a failure; returns true when it starts (or extends) a quarantine.
    pub(crate) fn on_failure(&mut self, limits: &SandboxLimits, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.window.record(true, limits, now);
        if self.consecutive_failures < limits.quarantine_after && !self.window.too_many(limits) {
            return false;
        }
        self.backoff = if self.backoff.is_zero() {
            limits.quarantine_initial
        } else {
            (self.backoff * 2).min(limits.quarantine_max)
        };
        self.quarantined_until = Some(now + self.backoff);
        true
    }

    pub(crate) fn is_quarantined(&self, now: Instant) -> bool {
        self.admit(now).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_starts_after_threshold_and_backs_off_exponentially() {
        let limits = SandboxLimits {
            quarantine_after: 3,
            quarantine_initial: Duration::from_millis(100),
            quarantine_max: Duration::from_millis(350),
            ..SandboxLimits::default()
        };
        let mut health = Health::default();
        let t0 = Instant::now();
        assert!(!health.on_failure(&limits, t0));
        assert!(!health.on_failure(&limits, t0));
        assert!(health.admit(t0).is_ok());
        assert!(health.on_failure(&limits, t0));
        assert_eq!(
            health.admit(t0).err().unwrap().retry_in,
            Duration::from_millis(100)
        );
        let t1 = t0 + Duration::from_millis(100);
        assert!(
            health.admit(t1).is_ok(),
            "admitted again once the backoff passed"
        );
        health.on_failure(&limits, t1);
        assert_eq!(
            health.admit(t1).err().unwrap().retry_in,
            Duration::from_millis(200)
        );
        health.on_failure(&limits, t1);
        assert_eq!(
            health.admit(t1).err().unwrap().retry_in,
            Duration::from_millis(350)
        );
        // One success does not outweigh a window of failures…
        health.on_success(&limits, t1);
        assert!(health.admit(t1).is_err());
        // …but once the window has passed, a success clears the record.
        let t2 = t1 + limits.quarantine_window;
        health.on_success(&limits, t2);
        assert!(health.admit(t2).is_ok());
        assert!(!health.on_failure(&limits, t2));
    }

    #[test]
    fn failures_between_successes_quarantine_by_rate() {
        let limits = SandboxLimits {
            quarantine_after: 3,
            quarantine_failure_rate: 0.1,
            quarantine_window: Duration::from_secs(10),
            ..SandboxLimits::default()
        };
        let mut health = Health::default();
        let t0 = Instant::now();
        // One poison call in five: never two failures in a row.
        let mut quarantined = false;
        for i in 0..15 {
            if i % 5 == 4 {
                quarantined |= health.on_failure(&limits, t0);
            } else {
                health.on_success(&limits, t0);
            }
        }
        assert!(quarantined, "3 failures in 15 calls (20%) quarantine");
        assert!(health.admit(t0).is_err());

        // A rare failure (1 in 50) stays under the rate.
        let mut health = Health::default();
        for i in 0..200 {
            if i % 50 == 49 {
                assert!(!health.on_failure(&limits, t0), "call {i}");
            } else {
                health.on_success(&limits, t0);
            }
        }
        // The window restarts: old failures are forgotten.
        let mut health = Health::default();
        health.on_failure(&limits, t0);
        health.on_failure(&limits, t0);
        let later = t0 + Duration::from_secs(11);
        health.on_success(&limits, later);
        assert!(!health.on_failure(&limits, later));
    }
}
