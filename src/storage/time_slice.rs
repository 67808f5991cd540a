//! Cooperative time slices for background work on a shard: glommio only
//! switches task queues when a task yields, and its preemption timer lets a
//! queue run for up to 100 ms, so long work (a cleaner pass) gives the shard
//! back every slice, and request handling, with its larger share, runs first.

use std::time::{Duration, Instant};

/// Counts the time since the last yield.
#[derive(Debug)]
pub struct TimeSlice {
    length: Duration,
    started: Instant,
}

impl TimeSlice {
    pub fn new(length: Duration) -> TimeSlice {
        TimeSlice {
            length,
            started: Instant::now(),
        }
    }

    /// Whether the slice is used up.
    pub fn is_spent(&self) -> bool {
        self.started.elapsed() >= self.length
    }

    /// Yields this task queue once the slice is used up, and starts a new one.
    pub async fn pause_if_spent(&mut self) {
        if self.is_spent() {
            glommio::executor().yield_task_queue_now().await;
            self.started = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_spent_after_its_length() {
        let slice = TimeSlice::new(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(2));
        assert!(slice.is_spent());
        assert!(!TimeSlice::new(Duration::from_secs(3600)).is_spent());
    }

    #[test]
    fn pausing_starts_a_new_slice() {
        crate::storage::test_support::run(|| async {
            let mut slice = TimeSlice::new(Duration::from_millis(200));
            std::thread::sleep(Duration::from_millis(250));
            assert!(slice.is_spent());
            slice.pause_if_spent().await;
            assert!(!slice.is_spent(), "a new slice started");
        });
    }
}
