//! Rate-limited warnings for refused publishes (issue 12 item 4).

use std::time::{Duration, Instant};

use switchyard_base::ratelimit::LogLimiter;
use switchyard_core::BrokerError;

/// Warnings about publishes refused on a channel that has no confirms to
/// carry the refusal: one per second at most, each counting the ones held
/// back, so a client publishing into a full queue cannot flood the log.
pub struct RefusalLog(LogLimiter);

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog(LogLimiter::new(Duration::from_secs(1)))
    }
}

impl RefusalLog {
    pub fn warn(&mut self, exchange: &str, error: &BrokerError) {
        match self.0.admit(Instant::now()) {
            Some(0) => {
                tracing::warn!(exchange, error = %error, "publish refused (the channel is not in confirm mode)")
            }
            Some(held_back) => tracing::warn!(
                exchange,
                error = %error,
                "publish refused (the channel is not in confirm mode); {held_back} more publishes \
                 refused on this channel since the last warning"
            ),
            None => {}
        }
    }

    /// The count still held back when the channel ends.
    pub fn finish(mut self) {
        let held_back = self.0.take_suppressed();
        if held_back > 0 {
            tracing::warn!("{held_back} more publishes refused on this channel before it closed");
        }
    }
}
