//! Reads of whole batches and lookups by timestamp.
//!
//! A read finds the segment holding its offset, starts at the floor entry of the
//! segment's offset index and walks batch headers to the batch holding the offset,
//! then returns a run of whole batches, never past the high watermark: memory
//! chunks when the tail cache holds them, a file range otherwise.

use std::rc::Rc;

use crate::record::batch::RecordBatch;
use crate::record::records::{RecordIter, records_section};
use crate::record::{Compression, TimestampType};
use crate::storage::error::LogError;
use crate::storage::read::{Isolation, ReadChunk, ReadOutcome};
use crate::storage::scan::{HeaderScanner, SegmentSource};
use crate::storage::summary::BatchSummary;
use crate::types::{Offset, TimestampMs};

use super::PartitionLog;

/// A segment detached for a read.
pub(super) struct SegmentView {
    pub base: Offset,
    pub source: SegmentSource,
    /// Where to start walking batch headers.
    pub from: u64,
    /// End of the readable data.
    pub end: u64,
}

/// The run of whole batches a read returns from one segment, fed one batch at a
/// time: `(from position, to position, next offset)` once it holds any.
#[derive(Debug, Clone, Copy)]
struct BatchRun {
    start: Offset,
    /// The high watermark, or for `read_committed` the last stable offset.
    visible_end: Offset,
    max_bytes: u64,
    min_one_batch: bool,
    found: Option<(u64, u64, Offset)>,
}

impl BatchRun {
    fn new(start: Offset, visible_end: Offset, max_bytes: u64, min_one_batch: bool) -> Self {
        BatchRun {
            start,
            visible_end,
            max_bytes,
            min_one_batch,
            found: None,
        }
    }

    /// Takes the segment's next batch; `false` once the run is complete.
    fn offer(&mut self, summary: &BatchSummary) -> bool {
        if summary.last_offset < self.start {
            return true;
        }
        if summary.base_offset >= self.visible_end {
            return false;
        }
        let from = self.found.map_or(summary.position, |(from, _, _)| from);
        let would_be = summary.end() - from;
        let fits = would_be <= self.max_bytes || (self.found.is_none() && self.min_one_batch);
        if !fits {
            return false;
        }
        debug_assert!(self.found.is_none_or(|(_, to, _)| to == summary.position));
        self.found = Some((from, summary.end(), summary.last_offset.plus(1)));
        would_be < self.max_bytes
    }
}

impl PartitionLog {
    /// `read_uncommitted` [`PartitionLog::read_isolated`]: up to the high watermark.
    pub async fn read(
        &self,
        start: Offset,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadOutcome, LogError> {
        self.read_isolated(start, max_bytes, min_one_batch, Isolation::ReadUncommitted)
            .await
    }

    /// Reads whole batches from `start`, up to `max_bytes` (at least one batch when
    /// `min_one_batch`, as Kafka does for the first partition of a fetch), never past
    /// the high watermark, nor, for `read_committed`, past the last stable offset
    /// (then with the aborted transactions of the range returned); a replica
    /// fetch (`LogEnd`) reads up to the readable end instead.
    pub async fn read_isolated(
        &self,
        start: Offset,
        max_bytes: u64,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<ReadOutcome, LogError> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let visible = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
            Isolation::LogEnd => self.readable_end(),
        };
        let (log_start, log_end) = {
            let state = self.state.borrow();
            (state.log_start, state.log_end())
        };
        let mut outcome = ReadOutcome {
            chunks: Vec::new(),
            bytes: 0,
            next_offset: start,
            high_watermark,
            last_stable_offset,
            log_start_offset: log_start,
            aborted: (isolation == Isolation::ReadCommitted).then(Vec::new),
        };
        if start < log_start || start > log_end {
            return Err(LogError::OffsetOutOfRange {
                requested: start,
                log_start,
                log_end,
            });
        }
        let mut after_base = None;
        let mut start_segment = None;
        const MAX_SEGMENTS_PER_READ: usize = 64;
        for _ in 0..MAX_SEGMENTS_PER_READ {
            if start >= visible {
                break;
            }
            let Some(view) = self.segment_view(start, after_base) else {
                break;
            };
            let start_segment = *start_segment.get_or_insert(view.base);
            let run = BatchRun::new(start, visible, max_bytes, min_one_batch);
            if let Some((from, to, next_offset)) = read_segment(&view, run).await? {
                let cached = view.source.tail.chunks(from, to);
                crate::metrics::shard::tail_read(cached.is_some());
                outcome.chunks = match cached {
                    Some(chunks) => chunks,
                    None => vec![ReadChunk::File {
                        file: Rc::clone(&view.source.file),
                        reader: Rc::clone(&view.source.reader),
                        position: from,
                        len: to - from,
                    }],
                };
                outcome.bytes = to - from;
                outcome.next_offset = next_offset;
                if let Some(aborted) = &mut outcome.aborted {
                    let state = self.state.borrow();
                    *aborted = state.aborted.collect(start_segment, start, next_offset);
                }
                break;
            }
            after_base = Some(view.base);
        }
        debug_assert!(outcome.next_offset <= visible.max(start));
        Ok(outcome)
    }

    /// The segment to read `start` from (or the first one after `after_base`), up
    /// to the high watermark.
    pub(super) fn segment_view(
        &self,
        start: Offset,
        after_base: Option<Offset>,
    ) -> Option<SegmentView> {
        let state = self.state.borrow();
        let readable = self.readable();
        let segment = match after_base {
            None => {
                let after = state.segments.partition_point(|s| s.base <= start);
                state.segments.get(after.checked_sub(1)?)?
            }
            Some(base) => state.segments.iter().find(|s| s.base > base)?,
        };
        let is_active = std::ptr::eq(segment, state.active());
        let end = if is_active {
            readable.position
        } else {
            segment.size
        };
        let from = segment
            .indexes
            .offsets
            .lookup(start)
            .map_or(0, |entry| u64::from(entry.position));
        Some(SegmentView {
            base: segment.base,
            source: segment.source(),
            from: from.min(end),
            end,
        })
    }

    /// The first offset whose timestamp is at least `target`, with that timestamp
    /// (ListOffsets by timestamp). `None` if every readable record is older.
    pub async fn offset_for_timestamp(
        &self,
        target: TimestampMs,
    ) -> Result<Option<(Offset, TimestampMs)>, LogError> {
        let high_watermark = self.high_watermark();
        let view = {
            let state = self.state.borrow();
            let Some(segment) = state
                .segments
                .iter()
                .find(|s| s.indexes.max_timestamp.is_some_and(|(ts, _)| ts >= target))
            else {
                return Ok(None);
            };
            let start = segment
                .indexes
                .times
                .lookup(target)
                .map_or(segment.base, |(_, offset)| offset)
                .max(state.log_start);
            drop(state);
            self.segment_view(start, None)
        };
        let Some(view) = view else { return Ok(None) };
        let mut scanner = HeaderScanner::new(&view.source, view.from, view.end);
        let log_start = self.log_start_offset();
        while let Some(summary) = scanner.next().await? {
            if summary.base_offset >= high_watermark {
                break;
            }
            if summary.max_timestamp < target || summary.last_offset < log_start {
                continue;
            }
            return Ok(Some(
                first_record_at_or_after(&view.source, &summary, target, log_start).await?,
            ));
        }
        Ok(None)
    }
}

/// Walks the segment's batch headers into `run`; its range once complete.
async fn read_segment(
    view: &SegmentView,
    mut run: BatchRun,
) -> Result<Option<(u64, u64, Offset)>, LogError> {
    let mut scanner = HeaderScanner::new(&view.source, view.from, view.end);
    while let Some(summary) = scanner.next().await? {
        if !run.offer(&summary) {
            break;
        }
    }
    Ok(run.found)
}

/// The largest batch a timestamp lookup inflates (a stored batch passed the
/// broker's request size limit, so this only guards against corruption).
const MAX_INFLATED_BATCH: usize = 256 << 20;

/// Within a batch whose max timestamp is at least `target`, the first record at or
/// after it. CreateTime batches are walked record by record (compressed ones
/// inflated first); in LogAppendTime batches every record carries the max
/// timestamp, so the batch's first offset is the answer.
async fn first_record_at_or_after(
    source: &SegmentSource,
    summary: &BatchSummary,
    target: TimestampMs,
    log_start: Offset,
) -> Result<(Offset, TimestampMs), LogError> {
    let fallback = (summary.base_offset.max(log_start), summary.max_timestamp);
    let bytes = source.read(summary.position, summary.len as usize).await?;
    if bytes.len() as u64 != summary.len {
        return Err(LogError::Corrupt(format!(
            "short read of batch at {}",
            summary.position
        )));
    }
    let batch = RecordBatch::new_unchecked(&bytes);
    let attributes = batch.header().attributes();
    if attributes.timestamp_type() == TimestampType::LogAppendTime {
        return Ok(fallback);
    }
    let inflated;
    let records = if attributes.compression() == Some(Compression::None) {
        batch.records()
    } else {
        inflated = records_section(batch, MAX_INFLATED_BATCH)
            .map_err(|e| LogError::Corrupt(format!("batch at {}: {e}", summary.position)))?;
        &inflated[..]
    };
    let found = RecordIter::over(batch.header(), records)
        .find(|r| r.timestamp >= target && r.offset >= log_start);
    Ok(found.map_or(fallback, |r| (r.offset, r.timestamp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::{EPOCH0, batch, open_log, run, small_config};
    use crate::types::LeaderEpoch;

    /// Batch `n` of a segment of 100-byte batches holding 10 offsets each.
    fn summary(n: u64) -> BatchSummary {
        BatchSummary {
            position: n * 100,
            len: 100,
            base_offset: Offset(n as i64 * 10),
            last_offset: Offset(n as i64 * 10 + 9),
            max_timestamp: TimestampMs(0),
            leader_epoch: LeaderEpoch(0),
            producer: None,
            control: false,
        }
    }

    fn feed(mut run: BatchRun, batches: u64) -> Option<(u64, u64, Offset)> {
        for n in 0..batches {
            if !run.offer(&summary(n)) {
                break;
            }
        }
        run.found
    }

    #[test]
    fn a_run_starts_at_the_batch_holding_the_offset_and_stops_at_max_bytes() {
        let run = BatchRun::new(Offset(25), Offset(1000), 250, false);
        assert_eq!(feed(run, 10), Some((200, 400, Offset(40))));
        let exact = BatchRun::new(Offset(0), Offset(1000), 300, false);
        assert_eq!(feed(exact, 10), Some((0, 300, Offset(30))));
    }

    #[test]
    fn a_run_never_passes_the_high_watermark() {
        let run = BatchRun::new(Offset(0), Offset(30), 1 << 20, false);
        assert_eq!(feed(run, 10), Some((0, 300, Offset(30))));
        let above = BatchRun::new(Offset(30), Offset(30), 1 << 20, true);
        assert_eq!(feed(above, 10), None);
    }

    #[test]
    fn a_run_returns_one_batch_over_max_bytes_only_when_asked() {
        assert_eq!(
            feed(BatchRun::new(Offset(0), Offset(1000), 50, false), 10),
            None
        );
        assert_eq!(
            feed(BatchRun::new(Offset(0), Offset(1000), 50, true), 10),
            Some((0, 100, Offset(10)))
        );
    }

    #[test]
    fn recent_batches_come_from_memory_and_older_ones_from_the_file() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            for _ in 0..30 {
                log.append(&batch(1, 1000, 0), EPOCH0).await.unwrap();
            }
            let old = log.read(Offset(0), 1, true).await.unwrap();
            assert!(matches!(
                old.chunks[..],
                [ReadChunk::File { position: 0, .. }]
            ));
            let recent = log.read(Offset(29), 1, true).await.unwrap();
            assert!(matches!(recent.chunks[0], ReadChunk::Memory { .. }));
            assert_eq!(recent.next_offset, Offset(30));
            assert_eq!(old.to_vec().await.unwrap().len() as u64, old.bytes);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn buffered_batches_above_the_high_watermark_are_not_read() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            log.append(&batch(2, 10, 0), EPOCH0).await.unwrap();
            log.buffer_append(&batch(3, 10, 0), EPOCH0).unwrap();
            assert_eq!(log.log_end_offset(), Offset(5));
            let outcome = log.read(Offset(0), 1 << 20, true).await.unwrap();
            assert_eq!(
                (outcome.next_offset, outcome.high_watermark),
                (Offset(2), Offset(2))
            );
            let at_watermark = log.read(Offset(2), 1 << 20, true).await.unwrap();
            assert_eq!(
                (at_watermark.bytes, at_watermark.next_offset),
                (0, Offset(2))
            );
            log.flush(true).await.unwrap();
            assert_eq!(
                log.read(Offset(2), 1 << 20, true)
                    .await
                    .unwrap()
                    .next_offset,
                Offset(5)
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_timestamp_lookup_answers_within_a_batch_and_above_the_log_start() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            // Offsets 0..=4 with timestamps 100..=104.
            log.append(&batch(5, 10, 100), EPOCH0).await.unwrap();
            let found = log.offset_for_timestamp(TimestampMs(103)).await.unwrap();
            assert_eq!(found, Some((Offset(3), TimestampMs(103))));
            log.delete_records(Offset(2)).await.unwrap();
            let found = log.offset_for_timestamp(TimestampMs(0)).await.unwrap();
            assert_eq!(found, Some((Offset(2), TimestampMs(102))));
            assert_eq!(
                log.offset_for_timestamp(TimestampMs(105)).await.unwrap(),
                None
            );
            log.close().await.unwrap();
        });
    }
}
