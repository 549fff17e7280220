//! Histograms whose buckets the broker already counted (the store's flush
//! latencies, the plugins' call latencies), encoded as Prometheus
//! histograms: prometheus-client's own `Histogram` observes values one by
//! one, these are snapshots.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// One histogram: sum, count, and (upper bound, count in that bucket —
/// not cumulative) ending with +Inf.
#[derive(Debug, Clone, Default)]
pub struct Buckets {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

/// Histograms by label set.
#[derive(Debug)]
pub struct Histograms<L> {
    pub series: Vec<(L, Buckets)>,
}

impl<L: EncodeLabelSet + std::fmt::Debug> EncodeMetric for Histograms<L> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, histogram) in &self.series {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(
                    histogram.sum,
                    histogram.count,
                    &histogram.buckets,
                    None,
                )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A single histogram without labels.
#[derive(Debug)]
pub struct Histogram(pub Buckets);

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum, self.0.count, &self.0.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A plugin's call latencies (power-of-two nanosecond buckets) folded into
/// buckets of 1 µs, 4 µs, 16 µs … 1 s (×4 each), then +Inf.
pub fn call_latency(per_bucket: &[u64], call_nanos: u64) -> Buckets {
    // Bucket i of the plugin host holds [2^i, 2^(i+1)) ns; 2^10 ns ≈ 1 µs.
    let bounds: Vec<u32> = (10..=30).step_by(2).collect();
    let mut buckets: Vec<(f64, u64)> = bounds
        .iter()
        .map(|&exp| ((1u64 << exp) as f64 / 1e9, 0))
        .chain([(f64::INFINITY, 0)])
        .collect();
    for (i, &count) in per_bucket.iter().enumerate() {
        // Its upper bound 2^(i+1) ns falls in the first bucket at or above it.
        let slot = bounds
            .iter()
            .position(|&exp| (i as u32) < exp)
            .unwrap_or(bounds.len());
        buckets[slot].1 += count;
    }
    Buckets {
        sum: call_nanos as f64 / 1e9,
        count: per_bucket.iter().sum(),
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_latencies_fold_into_coarser_buckets() {
        let mut per_bucket = vec![0; 40];
        per_bucket[3] = 5; // < 16 ns
        per_bucket[12] = 2; // [4096, 8192) ns: ≤ 16 µs (2^14)
        per_bucket[39] = 1;
        let folded = call_latency(&per_bucket, 1_000);
        assert_eq!(folded.count, 8);
        assert_eq!(folded.buckets[0].1, 5);
        assert_eq!(folded.buckets[2], ((1u64 << 14) as f64 / 1e9, 2));
        assert_eq!(folded.buckets.last().unwrap().1, 1);
    }
}
