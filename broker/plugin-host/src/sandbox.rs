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

use super::kv_limits::KvLimits;
use super::log_limit::LogRate;

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
    /// The most a plugin may ask for at load time (`sandbox.deadline-ms`,
    /// `sandbox.load-deadline-ms`, `sandbox.memory-bytes` in its
    /// configuration; fuel: at most `fuel`).
    #[serde(with = "millis")]
    pub max_deadline: Duration,
    #[serde(with = "millis")]
    pub max_load_deadline: Duration,
    pub max_memory_bytes: usize,
    /// Consecutive failures after which a plugin version is quarantined.
    pub quarantine_after: u32,
    /// First quarantine period; doubles on each further failure.
    #[serde(with = "millis")]
    pub quarantine_initial: Duration,
    #[serde(with = "millis")]
    pub quarantine_max: Duration,
    /// Quarantine also when at least `quarantine_after` calls failed in the
    /// last `quarantine_window` and they were at least this share of the
    /// calls: a plugin that fails only on some inputs ("poison" keys) never
    /// fails many times in a row, but still burns its deadline each time.
    pub quarantine_failure_rate: f64,
    #[serde(with = "millis")]
    pub quarantine_window: Duration,
    /// Log lines a plugin version may write per second, after a burst of
    /// `log_burst`; the rest are dropped and counted.
    pub log_lines_per_sec: u32,
    pub log_burst: u32,
    /// Calls of one plugin version that may run at once (0: half the
    /// CPUs, at least 1); more wait their turn, in order.
    pub max_concurrent_calls: usize,
    /// A version whose calls have lately averaged more than this runs its
    /// calls off the async worker threads (see `admission`).
    pub offload_above_us: u64,
    /// Quotas on plugin key/value state.
    pub kv: KvLimits,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            deadline: Duration::from_millis(10),
            load_deadline: Duration::from_secs(5),
            tick: Duration::from_millis(1),
            memory_bytes: 64 << 20,
            fuel: None,
            max_deadline: Duration::from_secs(1),
            max_load_deadline: Duration::from_secs(30),
            max_memory_bytes: 256 << 20,
            quarantine_after: 5,
            quarantine_initial: Duration::from_millis(100),
            quarantine_max: Duration::from_secs(60),
            quarantine_failure_rate: 0.1,
            quarantine_window: Duration::from_secs(10),
            log_lines_per_sec: 50,
            log_burst: 200,
            max_concurrent_calls: 0,
            offload_above_us: 100,
            kv: KvLimits::default(),
        }
    }
}

impl SandboxLimits {
    /// Refuses settings under which plugins could not run or the limits
    /// would not hold, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let ms = |d: Duration| d.as_millis();
        if self.deadline.is_zero() || self.tick.is_zero() || self.tick > self.deadline {
            return Err(format!(
                "sandbox.deadline ({} ms) and sandbox.tick ({} ms) must be above 0, the tick no longer than the deadline",
                ms(self.deadline),
                ms(self.tick)
            ));
        }
        if self.load_deadline < self.deadline {
            return Err(format!(
                "sandbox.load_deadline ({} ms) must be at least sandbox.deadline ({} ms)",
                ms(self.load_deadline),
                ms(self.deadline)
            ));
        }
        if self.memory_bytes < (1 << 20) {
            return Err(format!(
                "sandbox.memory_bytes must be at least 1 MiB (1048576), not {}",
                self.memory_bytes
            ));
        }
        if self.max_deadline < self.deadline
            || self.max_load_deadline < self.load_deadline
            || self.max_memory_bytes < self.memory_bytes
        {
            return Err(format!(
                "sandbox maxima must be at least the defaults: max_deadline {} ms >= deadline {} ms, \
                 max_load_deadline {} ms >= load_deadline {} ms, max_memory_bytes {} >= memory_bytes {}",
                ms(self.max_deadline),
                ms(self.deadline),
                ms(self.max_load_deadline),
                ms(self.load_deadline),
                self.max_memory_bytes,
                self.memory_bytes
            ));
        }
        if self.fuel == Some(0) {
            return Err("sandbox.fuel must be above 0 (leave it out to disable fuel)".into());
        }
        if self.quarantine_after == 0
            || !(self.quarantine_failure_rate > 0.0 && self.quarantine_failure_rate <= 1.0)
        {
            return Err(format!(
                "sandbox.quarantine_after must be above 0 ({}) and sandbox.quarantine_failure_rate in (0, 1] ({})",
                self.quarantine_after, self.quarantine_failure_rate
            ));
        }
        if self.log_burst == 0 {
            return Err("sandbox.log_burst must be above 0".into());
        }
        self.kv.validate()
    }

    pub(crate) fn concurrent_calls(&self) -> usize {
        match self.max_concurrent_calls {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        }
    }

    pub(crate) fn log_rate(&self) -> LogRate {
        LogRate {
            per_sec: self.log_lines_per_sec,
            burst: self.log_burst,
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

pub(crate) mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}
