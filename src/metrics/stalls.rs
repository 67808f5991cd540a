//! Reactor stalls: a task that holds its shard (a long loop, a blocking call)
//! delays every other task there. A light task on each shard sleeps a fixed tick
//! and measures how late it wakes; waking `threshold` or more late counts a stall
//! and its lateness. It costs one timer per tick and no work on request paths,
//! unlike a per-task-queue watchdog that arms a timer at every switch.

use std::time::{Duration, Instant};

/// How often the shard checks.
const TICK: Duration = Duration::from_millis(10);

/// Watches this shard until `stopping` says so.
pub async fn watch(threshold: Duration, stopping: impl Fn() -> bool) {
    assert!(
        !threshold.is_zero(),
        "a zero stall threshold counts every tick"
    );
    while !stopping() {
        let asleep = Instant::now();
        glommio::timer::sleep(TICK).await;
        let lateness = asleep.elapsed().saturating_sub(TICK);
        if lateness >= threshold {
            crate::metrics::shard::reactor_stalled(lateness);
            tracing::debug!(lateness_ms = lateness.as_millis() as u64, "reactor stall");
        }
    }
}
