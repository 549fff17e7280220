//! The sandbox around every plugin call: a deadline (epoch interruption), a
//! memory cap (resource limiter), optional fuel, and the quarantine policy
//! for plugins that keep failing.
//!
//! The deadline is charged in CPU time of the calling thread: on a busy
//! machine a call the OS preempts is not blamed for time it did not run (a
//! wall-clock deadline failed healthy plugins under load). A wall-clock
//! ceiling of [`WALL_CLOCK_FACTOR`] times the deadline still bounds every call.
//!
//! Instantiating a component and asking it to describe itself are held to a
//! separate, generous [`SandboxLimits::load_deadline`]: they cost far more
//! than a routing call (a debug build on a loaded machine took >10 ms), and a
//! healthy plugin must not fail to load — nor a broker fail to start —
//! because the machine is busy.

use std::time::{Duration, Instant};

/// How many deadlines of wall-clock time a call may take at most.
pub const WALL_CLOCK_FACTOR: u32 = 50;

/// Limits applied to every plugin instance and call.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// CPU-time budget of one call (a batch counts as one call).
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// CPU-time budget of instantiating an instance and of `describe`.
    #[serde(with = "millis")]
    pub load_deadline: Duration,
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
            load_deadline: Duration::from_secs(5),
            tick: Duration::from_millis(1),
            memory_bytes: 64 << 20,
            fuel: None,
            quarantine_after: 5,
            quarantine_initial: Duration::from_millis(100),
            quarantine_max: Duration::from_secs(60),
        }
    }
}

/// When the current call started, in both clocks, and its budget.
#[derive(Clone, Copy)]
pub(crate) struct CallClock {
    cpu: Duration,
    wall: Instant,
    deadline: Duration,
}

impl CallClock {
    pub(crate) fn start(deadline: Duration) -> Self {
        CallClock {
            cpu: thread_cpu_time(),
            wall: Instant::now(),
            deadline,
        }
    }

    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Whether the call has used up its deadline.
    pub(crate) fn expired(&self) -> bool {
        thread_cpu_time().saturating_sub(self.cpu) >= self.deadline
            || self.wall.elapsed() >= self.deadline * WALL_CLOCK_FACTOR
    }
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID
    // is supported on every Linux and BSD the broker runs on.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
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
