//! Retention: which whole segments to delete by time, size and log start offset.

use crate::storage::config::LogConfig;
use crate::types::{Offset, TimestampMs};

/// What retention needs to know of a segment.
#[derive(Debug, Clone, Copy)]
pub struct SegmentStats {
    pub base: Offset,
    pub next_offset: Offset,
    pub size: u64,
    pub max_timestamp: Option<TimestampMs>,
}

/// How many of the oldest segments to delete. The active (last) segment is never
/// deleted, and only segments wholly below the high watermark are.
pub fn segments_to_delete(
    segments: &[SegmentStats],
    config: &LogConfig,
    now: TimestampMs,
    log_start: Offset,
    high_watermark: Offset,
) -> usize {
    let Some((_, sealed)) = segments.split_last() else {
        return 0;
    };
    let mut total: u64 = segments.iter().map(|s| s.size).sum();
    let mut count = 0;
    for segment in sealed {
        if segment.next_offset > high_watermark {
            break;
        }
        let below_start = segment.next_offset <= log_start;
        let expired = config.retention_ms.is_some_and(|retention| {
            let limit = now
                .0
                .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            segment.max_timestamp.is_none_or(|ts| ts.0 < limit)
        });
        let oversized = config
            .retention_bytes
            .is_some_and(|limit| total.saturating_sub(segment.size) >= limit);
        if !(below_start || expired || oversized) {
            break;
        }
        total -= segment.size;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn segment(base: i64, next: i64, size: u64, ts: i64) -> SegmentStats {
        SegmentStats {
            base: Offset(base),
            next_offset: Offset(next),
            size,
            max_timestamp: Some(TimestampMs(ts)),
        }
    }

    fn config(retention_ms: Option<u64>, retention_bytes: Option<u64>) -> LogConfig {
        LogConfig {
            retention_ms: retention_ms.map(Duration::from_millis),
            retention_bytes,
            ..LogConfig::default()
        }
    }

    #[test]
    fn deletes_expired_prefix_but_never_the_active_segment() {
        let segments = [
            segment(0, 10, 100, 1_000),
            segment(10, 20, 100, 2_000),
            segment(20, 30, 100, 1_500),
        ];
        let hw = Offset(30);
        let by_time = config(Some(1_000), None);
        assert_eq!(
            segments_to_delete(&segments, &by_time, TimestampMs(2_500), Offset(0), hw),
            1
        );
        assert_eq!(
            segments_to_delete(&segments, &by_time, TimestampMs(9_999), Offset(0), hw),
            2
        );
        assert_eq!(
            segments_to_delete(&segments, &by_time, TimestampMs(1_500), Offset(0), hw),
            0
        );
    }

    #[test]
    fn deletes_by_size_and_log_start_and_respects_the_high_watermark() {
        let segments = [
            segment(0, 10, 100, 1),
            segment(10, 20, 100, 1),
            segment(20, 30, 100, 1),
        ];
        let never = config(None, None);
        assert_eq!(
            segments_to_delete(
                &segments,
                &config(None, Some(150)),
                TimestampMs(5),
                Offset(0),
                Offset(30)
            ),
            1
        );
        assert_eq!(
            segments_to_delete(
                &segments,
                &config(None, Some(100)),
                TimestampMs(5),
                Offset(0),
                Offset(30)
            ),
            2
        );
        assert_eq!(
            segments_to_delete(&segments, &never, TimestampMs(5), Offset(20), Offset(30)),
            2
        );
        assert_eq!(
            segments_to_delete(&segments, &never, TimestampMs(5), Offset(15), Offset(30)),
            1
        );
        assert_eq!(
            segments_to_delete(
                &segments,
                &config(Some(1), None),
                TimestampMs(50),
                Offset(0),
                Offset(5)
            ),
            0
        );
    }
}
