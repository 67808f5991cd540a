//! Timelines of slow produce requests: when one takes at least `slow_request_ms`
//! (off by default), a WARN line says where its time went, step by step, for the
//! partition it waited for last. That is how a p99.9 is taken apart.

use std::time::{Duration, Instant};

use crate::net::context::ConnectionContext;
use crate::partition::AppendTiming;

/// Where one request's time went, in the order it was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// From the decoded request to the partition's task starting: splitting, the
    /// hop to the owning shard, waiting to be scheduled there.
    pub dispatch: Duration,
    /// Kafka's checks of the batch.
    pub validate: Duration,
    /// Copying into the write buffer, waiting for a flush in progress, and the
    /// group commit's write; `None` when no write ended after validation.
    pub write: Option<Duration>,
    /// The group commit's fdatasync; `None` when the policy did not wait for one.
    pub sync: Option<Duration>,
    /// From the flush to the append returning (waking the waiting append).
    pub acknowledge: Duration,
    /// From the last partition's acknowledgement to the response being encoded:
    /// the reply hop back and assembling the response.
    pub respond: Duration,
    pub total: Duration,
}

impl Timeline {
    pub fn of(received: Instant, timing: &AppendTiming, responded: Instant) -> Timeline {
        let written = timing.flushed.written.filter(|&at| at >= timing.validated);
        let synced = timing
            .flushed
            .synced
            .filter(|&at| written.is_some_and(|written| at >= written));
        let flushed = synced.or(written).unwrap_or(timing.validated);
        Timeline {
            dispatch: timing.started.saturating_duration_since(received),
            validate: timing.validated.saturating_duration_since(timing.started),
            write: written.map(|at| at.saturating_duration_since(timing.validated)),
            sync: synced
                .and_then(|at| written.map(|written| at.saturating_duration_since(written))),
            acknowledge: timing.acknowledged.saturating_duration_since(flushed),
            respond: responded.saturating_duration_since(timing.acknowledged),
            total: responded.saturating_duration_since(received),
        }
    }
}

/// Logs the produce request's timeline if it took at least `threshold`.
pub fn log_if_slow(
    threshold: Option<Duration>,
    context: &ConnectionContext,
    received: Instant,
    slowest: Option<AppendTiming>,
    partitions: usize,
) {
    let (Some(threshold), Some(timing)) = (threshold, slowest) else {
        return;
    };
    let timeline = Timeline::of(received, &timing, Instant::now());
    if timeline.total < threshold {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    tracing::warn!(
        peer = %context.peer,
        client_id = context.client_id().as_deref().unwrap_or(""),
        partitions,
        total_ms = ms(timeline.total),
        dispatch_ms = ms(timeline.dispatch),
        validate_ms = ms(timeline.validate),
        write_ms = timeline.write.map(ms),
        sync_ms = timeline.sync.map(ms),
        acknowledge_ms = ms(timeline.acknowledge),
        respond_ms = ms(timeline.respond),
        "slow produce"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::FlushTimes;

    /// A batch started 1 ms and validated 2 ms after `received`, flushed as
    /// `written` and `synced` say (ms after `received`), acknowledged at `acked`.
    fn timing(received: Instant, written: u64, synced: Option<u64>, acked: u64) -> AppendTiming {
        let at = |ms: u64| received + Duration::from_millis(ms);
        AppendTiming {
            started: at(1),
            validated: at(2),
            flushed: FlushTimes {
                written: Some(at(written)),
                synced: Some(synced.map_or(received, at)),
            },
            acknowledged: at(acked),
        }
    }

    #[test]
    fn the_steps_add_up_to_the_total() {
        let received = Instant::now();
        let timing = timing(received, 5, Some(9), 10);
        let timeline = Timeline::of(received, &timing, received + Duration::from_millis(12));
        let ms = Duration::from_millis;
        assert_eq!(
            timeline,
            Timeline {
                dispatch: ms(1),
                validate: ms(1),
                write: Some(ms(3)),
                sync: Some(ms(4)),
                acknowledge: ms(1),
                respond: ms(2),
                total: ms(12),
            }
        );
    }

    #[test]
    fn a_flush_from_before_the_batch_is_not_its_flush() {
        let received = Instant::now();
        // The interval policy: acknowledged after the write, synced long ago.
        let timing = timing(received, 4, None, 4);
        let timeline = Timeline::of(received, &timing, received + Duration::from_millis(5));
        assert_eq!(timeline.write, Some(Duration::from_millis(2)));
        assert_eq!(timeline.sync, None);
        assert_eq!(timeline.acknowledge, Duration::ZERO);
    }
}
