//! HDR histograms of durations and sizes, exported as Prometheus histograms with
//! fixed bucket bounds: the HDR histogram keeps every value at 2 significant
//! digits, the bounds only decide how a scrape summarises it.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Bucket upper bounds, in seconds, of every latency histogram.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Bucket upper bounds of counts (appends per group commit).
pub const COUNT_BOUNDS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Bucket upper bounds, in bytes, of write sizes.
pub const BYTES_BOUNDS: [f64; 9] = [
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
];

/// Longest latency kept exactly; longer ones count as this (and land in +Inf).
const MAX_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 2;

/// Values of one kind, with their exact sum.
pub struct Recorder {
    histogram: Histogram<u64>,
    sum: u64,
    /// What one recorded unit is in the exported unit (1e-6: microseconds to seconds).
    scale: f64,
}

impl Recorder {
    /// Durations, recorded in microseconds and exported in seconds.
    pub fn latency() -> Recorder {
        Recorder::new(MAX_MICROS, 1e-6)
    }

    /// Counts or sizes up to `max`, exported as they are.
    pub fn values(max: u64) -> Recorder {
        Recorder::new(max, 1.0)
    }

    fn new(max: u64, scale: f64) -> Recorder {
        let histogram = Histogram::new_with_bounds(1, max.max(2), SIGNIFICANT_DIGITS)
            .expect("static histogram bounds are valid");
        Recorder {
            histogram,
            sum: 0,
            scale,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.histogram.saturating_record(value.max(1));
        self.sum = self.sum.saturating_add(value);
    }

    pub fn record_duration(&mut self, elapsed: Duration) {
        self.record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// The histogram summarised at `bounds` (in the exported unit).
    pub fn sample(&self, bounds: &[f64]) -> HistogramSample {
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut below = 0;
        for &bound in bounds {
            let native = (bound / self.scale).round() as u64;
            let cumulative = if native == 0 {
                0
            } else {
                self.histogram.count_between(0, native)
            };
            buckets.push((bound, cumulative.saturating_sub(below)));
            below = below.max(cumulative);
        }
        let count = self.histogram.len();
        buckets.push((f64::MAX, count.saturating_sub(below)));
        HistogramSample {
            sum: self.sum as f64 * self.scale,
            count,
            buckets,
        }
    }
}

/// A histogram as a scrape exports it: the count in each bucket (not
/// cumulative; the last bound is `f64::MAX`, Prometheus's `+Inf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSample {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramSample {
    /// Adds `other`, taken at the same bounds (another shard's).
    pub fn merge(&mut self, other: &HistogramSample) {
        if self.buckets.is_empty() {
            *self = other.clone();
            return;
        }
        assert_eq!(
            self.buckets.len(),
            other.buckets.len(),
            "histograms merge only at the same bounds"
        );
        self.sum += other.sum;
        self.count += other.count;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            debug_assert_eq!(mine.0, theirs.0);
            mine.1 += theirs.1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_buckets() {
        let mut recorder = Recorder::latency();
        recorder.record_duration(Duration::from_micros(50));
        recorder.record_duration(Duration::from_micros(700));
        recorder.record_duration(Duration::from_millis(3));
        recorder.record_duration(Duration::from_secs(30));
        let sample = recorder.sample(&LATENCY_BOUNDS);
        assert_eq!(sample.count, 4);
        assert_eq!(sample.buckets.len(), LATENCY_BOUNDS.len() + 1);
        assert_eq!(sample.buckets[0], (0.0001, 1));
        assert_eq!(sample.buckets[3], (0.001, 1));
        assert_eq!(sample.buckets[5], (0.005, 1));
        assert_eq!(sample.buckets.last(), Some(&(f64::MAX, 1)));
        assert_eq!(sample.buckets.iter().map(|b| b.1).sum::<u64>(), 4);
        assert!((sample.sum - 30.00375).abs() < 1e-9);
    }

    #[test]
    fn samples_merge_bucket_by_bucket() {
        let mut a = Recorder::values(1 << 20);
        let mut b = Recorder::values(1 << 20);
        a.record(1);
        b.record(3);
        b.record(5000);
        let mut total = a.sample(&COUNT_BOUNDS);
        total.merge(&b.sample(&COUNT_BOUNDS));
        assert_eq!(total.count, 3);
        assert_eq!(total.buckets[0], (1.0, 1));
        assert_eq!(total.buckets[2], (4.0, 1));
        assert_eq!(total.buckets.last(), Some(&(f64::MAX, 1)));
        assert_eq!(total.sum, 5004.0);
    }
}
