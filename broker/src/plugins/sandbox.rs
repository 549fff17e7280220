//! The sandbox around every plugin call: a deadline (epoch interruption), a
//! memory cap (resource limiter), optional fuel, and the quarantine policy
//! for plugins that keep failing.

use std::time::Duration;

/// Limits applied to every plugin instance and call.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Wall-clock budget of one call (a batch counts as one call).
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// Granularity of the deadline clock.
    #[serde(with = "millis")]
    pub tick: Duration,
    /// Linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Fuel per call (instruction budget); `None` disables fuel metering.
    pub fuel: Option<u64>,
    /// Consecutive failures after which a plugin version is quarantined.
    pub quarantine_after: u32,
    /// First quarantine period; doubles on each further failure.
    #[serde(with = "millis")]
    pub quarantine_initial: Duration,
    #[serde(with = "millis")]
    pub quarantine_max: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            deadline: Duration::from_millis(10),
            tick: Duration::from_millis(1),
            memory_bytes: 64 << 20,
            fuel: None,
            quarantine_after: 5,
            quarantine_initial: Duration::from_millis(100),
            quarantine_max: Duration::from_secs(60),
        }
    }
}

impl SandboxLimits {
    /// The deadline in epoch ticks (at least one, plus one for the tick in
    /// progress when the call starts).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        (self.deadline.as_nanos().div_ceil(tick) as u64).max(1) + 1
    }
}

/// Caps an instance's memory and remembers whether the cap was hit, so a
/// trap that follows can be reported as memory exhaustion.
pub(crate) struct MemoryCap {
    pub(crate) limit_bytes: usize,
    pub(crate) exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit_bytes;
        self.exceeded |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}
