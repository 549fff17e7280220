//! Latency samples and their percentiles; throughput figures.

use serde::Serialize;

/// Latency samples in microseconds (exact percentiles: samples are kept).
#[derive(Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn record(&mut self, micros: u64) {
        self.0.push(micros.min(u32::MAX as u64) as u32);
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn percentiles(mut self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
            self.0[rank - 1] as f64 / 1000.0
        };
        Some(Percentiles {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: *self.0.last().unwrap() as f64 / 1000.0,
            samples: self.0.len() as u64,
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub samples: u64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.samples
        )
    }
}

/// The result of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub published: u64,
    pub consumed: u64,
    pub producer_msgs_per_s: f64,
    pub producer_mb_per_s: f64,
    pub consumer_msgs_per_s: f64,
    pub consumer_mb_per_s: f64,
    /// Messages consumed per second from the first publish to the last delivery.
    pub end_to_end_msgs_per_s: f64,
    /// Body bytes consumed per second, end to end.
    pub mb_per_s: f64,
    pub refused: u64,
    pub publish_to_confirm: Option<Percentiles>,
    pub publish_to_deliver: Option<Percentiles>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "producers: {} msgs, {:.0} msgs/s, {:.1} MB/s",
            self.published, self.producer_msgs_per_s, self.producer_mb_per_s
        )?;
        writeln!(
            f,
            "consumers: {} msgs, {:.0} msgs/s, {:.1} MB/s",
            self.consumed, self.consumer_msgs_per_s, self.consumer_mb_per_s
        )?;
        writeln!(
            f,
            "end to end: {:.0} msgs/s, {:.1} MB/s",
            self.end_to_end_msgs_per_s, self.mb_per_s
        )?;
        if self.refused > 0 {
            writeln!(f, "refused by the broker: {}", self.refused)?;
        }
        if let Some(p) = &self.publish_to_confirm {
            writeln!(f, "publish → confirm: {p}")?;
        }
        if let Some(p) = &self.publish_to_deliver {
            writeln!(f, "publish → deliver: {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for v in 1..=1000 {
            s.record(v * 1000);
        }
        let p = s.percentiles().unwrap();
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms),
            (500.0, 900.0, 990.0, 999.0, 1000.0)
        );
        assert!(Samples::default().percentiles().is_none());
    }
}
