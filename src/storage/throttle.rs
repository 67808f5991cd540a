//! The cleaner's byte-rate limit (`log.cleaner.io.max.bytes.per.second`): the
//! cleaner accounts for each read and write and sleeps when it runs ahead of
//! the rate, so compaction never takes the disk from the partitions it serves.
//!
//! Rate is measured over windows of about a second, as Kafka's Throttler does:
//! a long idle spell does not buy a burst later, and a debt (a sleep cut short
//! by the per-call bound) carries over until it is paid.

use std::time::{Duration, Instant};

/// How long a window of measurement lasts before a new one starts.
const WINDOW: Duration = Duration::from_secs(1);
/// The longest sleep of one call: a huge write does not stall the cleaner's
/// task past its next chance to notice shutdown.
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub struct Throttle {
    /// Bytes per second; `None`: unlimited.
    rate: Option<u64>,
    window_start: Instant,
    window_bytes: u64,
}

impl Throttle {
    /// `None`: unlimited.
    pub fn new(bytes_per_second: Option<u64>) -> Throttle {
        assert!(
            bytes_per_second != Some(0),
            "a rate of zero bytes per second would stop the cleaner forever"
        );
        Throttle {
            rate: bytes_per_second,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Accounts for `bytes` of cleaner I/O and sleeps as long as needed (at most
    /// [`MAX_SLEEP`] per call) to keep the rate at or under the limit. Returns how
    /// long it slept.
    pub async fn consume(&mut self, bytes: u64) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let elapsed = now - self.window_start;
        if elapsed >= WINDOW && delay(elapsed, self.window_bytes, rate).is_zero() {
            self.window_start = now;
            self.window_bytes = 0;
        }
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        let wait = delay(now - self.window_start, self.window_bytes, rate).min(MAX_SLEEP);
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        wait
    }
}

/// How much longer than `elapsed` moving `bytes` takes at `rate` bytes per second.
fn delay(elapsed: Duration, bytes: u64, rate: u64) -> Duration {
    let due_nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate);
    let due = Duration::from_nanos(u64::try_from(due_nanos).unwrap_or(u64::MAX));
    due.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_what_the_rate_still_owes() {
        let ms = Duration::from_millis;
        assert_eq!(delay(ms(0), 1000, 1000), ms(1000));
        assert_eq!(delay(ms(400), 1000, 1000), ms(600));
        assert_eq!(delay(ms(1000), 1000, 1000), ms(0));
        assert_eq!(delay(ms(5000), 1000, 1000), ms(0));
        assert_eq!(delay(ms(0), 0, 1), ms(0));
        assert_eq!(delay(ms(0), 3, 2), ms(1500));
        assert_eq!(delay(ms(0), u64::MAX, 1), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn unlimited_never_sleeps() {
        crate::storage::test_support::run(|| async {
            let mut throttle = Throttle::new(None);
            for _ in 0..10 {
                assert_eq!(throttle.consume(u64::MAX / 16).await, Duration::ZERO);
            }
        });
    }

    #[test]
    fn a_limit_stretches_the_io_to_its_rate() {
        crate::storage::test_support::run(|| async {
            let mut throttle = Throttle::new(Some(100_000));
            let started = Instant::now();
            let mut slept = Duration::ZERO;
            for _ in 0..10 {
                slept += throttle.consume(3_000).await;
            }
            // 30,000 bytes at 100,000 B/s: 300 ms, less timer slack.
            assert!(started.elapsed() >= Duration::from_millis(250));
            assert!(slept >= Duration::from_millis(250));
        });
    }
}
