//! Counters and latency histograms: what a producer or consumer records per
//! record ([`Meter`]), and what the run adds up from them ([`Totals`]).
//!
//! Throughput counts records completed (acknowledged, consumed) inside the
//! measurement [`Window`]; latency counts records *due* inside it, from their
//! due time, so that records delayed past the window still carry their delay.
//!
//! Each client thread records into its own `Arc<Mutex<Meter>>`; the run's
//! reporting loop takes it (swapping in an empty one) once per second. The lock
//! is uncontended except at that moment.

use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;

use crate::schedule::latency_us;

/// Latencies above an hour are recorded as an hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// An empty latency histogram: microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// The measured part of a run, in µs on the run's clock: after the warm-up,
/// until the producers stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_us: u64,
    pub end_us: u64,
}

impl Window {
    pub fn contains(self, time_us: u64) -> bool {
        (self.start_us..self.end_us).contains(&time_us)
    }
}

/// One side's records since the last take: acknowledged by the broker
/// (producers) or received (consumers).
#[derive(Clone, Debug)]
pub struct Meter {
    pub records: u64,
    pub bytes: u64,
    /// Records completed inside the window, and their bytes.
    pub window_records: u64,
    pub window_bytes: u64,
    pub errors: u64,
    /// Latencies of every record, warm-up included: the progress line.
    pub latency: Histogram<u64>,
    /// Latencies of records due inside the window: the summary.
    pub measured_latency: Histogram<u64>,
}

impl Default for Meter {
    fn default() -> Meter {
        Meter {
            records: 0,
            bytes: 0,
            window_records: 0,
            window_bytes: 0,
            errors: 0,
            latency: new_histogram(),
            measured_latency: new_histogram(),
        }
    }
}

impl Meter {
    /// A record of `bytes` that was due at `due_us` completed at `done_us`.
    pub fn record(&mut self, bytes: usize, due_us: u64, done_us: u64, window: Window) {
        let latency = latency_us(due_us, done_us);
        self.records += 1;
        self.bytes += bytes as u64;
        self.latency.saturating_record(latency);
        if window.contains(done_us) {
            self.window_records += 1;
            self.window_bytes += bytes as u64;
        }
        if window.contains(due_us) {
            self.measured_latency.saturating_record(latency);
        }
    }

    pub fn add(&mut self, other: &Meter) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.window_records += other.window_records;
        self.window_bytes += other.window_bytes;
        self.errors += other.errors;
        // Same bounds on both sides: addition cannot fail.
        self.latency.add(&other.latency).expect("same bounds");
        self.measured_latency
            .add(&other.measured_latency)
            .expect("same bounds");
    }
}

/// A meter shared between a client thread and the reporting loop.
#[derive(Clone, Debug, Default)]
pub struct SharedMeter(Arc<Mutex<Meter>>);

impl SharedMeter {
    pub fn lock(&self) -> MutexGuard<'_, Meter> {
        // A client thread that panicked holding the lock left a consistent
        // meter (every update is complete before it can panic); keep counting.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything recorded since the last take.
    pub fn take(&self) -> Meter {
        std::mem::take(&mut *self.lock())
    }
}

/// One second of the run, or all of it.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub publish: Meter,
    pub consume: Meter,
}

impl Totals {
    /// Takes every meter's records since the last take.
    pub fn take(producers: &[SharedMeter], consumers: &[SharedMeter]) -> Totals {
        let mut totals = Totals::default();
        for meter in producers {
            totals.publish.add(&meter.take());
        }
        for meter in consumers {
            totals.consume.add(&meter.take());
        }
        totals
    }

    pub fn add(&mut self, other: &Totals) {
        self.publish.add(&other.publish);
        self.consume.add(&other.consume);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Window = Window {
        start_us: 1_000,
        end_us: 2_000,
    };

    #[test]
    fn the_window_decides_what_is_measured() {
        let mut meter = Meter::default();
        meter.record(100, 500, 900, WINDOW); // warm-up
        meter.record(100, 900, 1_200, WINDOW); // due in warm-up, done inside
        meter.record(100, 1_500, 1_600, WINDOW); // inside
        meter.record(100, 1_900, 2_500, WINDOW); // due inside, done after
        assert_eq!((meter.records, meter.bytes), (4, 400));
        assert_eq!((meter.window_records, meter.window_bytes), (2, 200));
        assert_eq!(meter.latency.len(), 4);
        assert_eq!(meter.measured_latency.len(), 2);
        assert_eq!(
            meter.measured_latency.max(),
            600,
            "latency from the due time"
        );
        assert_eq!(meter.measured_latency.min(), 100);
    }

    #[test]
    fn taking_a_shared_meter_empties_it() {
        let shared = SharedMeter::default();
        shared.lock().record(10, 1_000, 1_001, WINDOW);
        let totals = Totals::take(std::slice::from_ref(&shared), &[]);
        assert_eq!(totals.publish.records, 1);
        assert_eq!(shared.take().records, 0);
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut meter = Meter::default();
        let window = Window {
            start_us: 0,
            end_us: u64::MAX,
        };
        meter.record(1, 0, u64::MAX - 1, window);
        assert!(meter.measured_latency.max() >= MAX_LATENCY_US);
    }
}
