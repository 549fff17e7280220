//! Failure tracking per plugin version: after `quarantine_after` consecutive
//! failures the version is quarantined, and calls fail fast until the
//! backoff passes; each further failure doubles the backoff, any success
//! resets it.

use std::time::{Duration, Instant};

use super::sandbox::SandboxLimits;

#[derive(Debug, Default)]
pub(crate) struct Health {
    consecutive_failures: u32,
    quarantined_until: Option<Instant>,
    backoff: Duration,
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
                failures: self.consecutive_failures,
                retry_in: until - now,
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn on_success(&mut self) {
        *self = Health::default();
    }

    /// Records a failure; returns true when it starts (or extends) a quarantine.
    pub(crate) fn on_failure(&mut self, limits: &SandboxLimits, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures < limits.quarantine_after {
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
        health.on_success();
        assert!(health.admit(t1).is_ok());
    }
}
