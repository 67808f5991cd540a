//! One cleaner pass over a log (Kafka's `Cleaner.doClean`): map the keys of
//! the dirty part to their last offsets, rewrite the cleanable segments from
//! the log start keeping the last record of each key, and swap the cleaned
//! segments in (`storage::swap`). `storage::compaction_rules` decides; this
//! module reads, writes and swaps.
//!
//! Only sealed segments wholly below the first uncleanable offset are
//! rewritten, so no open transaction's data is touched and the active segment
//! never is. Offsets never change: removed records leave gaps, and a batch
//! keeps its base offset, last offset delta and producer fields. The segments
//! are read without the flush lock (sealed files never change; an old
//! descriptor stays readable after a swap); the swap takes both locks and
//! checks the segments it replaces are still the log's.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::record::batch::{BatchHeader, RecordBatch};
use crate::record::compaction::{Filtered, delete_horizon, filter_batch};
use crate::record::control::EndTxnMarker;
use crate::storage::checkpoint::CLEANER_OFFSET_FILE;
use crate::storage::cleaned_segment::{self, CleanedSegment, CleanedSegmentWriter};
use crate::storage::compaction_rules::{
    Cleanable, SegmentSpan, TxnTracker, cleanable_spans, group_segments, is_last_of_producer,
    keep_record,
};
use crate::storage::error::LogError;
use crate::storage::offset_map::OffsetMap;
use crate::storage::producer_state::LastBatch;
use crate::storage::scan::{BatchReader, SegmentSource};
use crate::storage::segment::Segment;
use crate::storage::swap;
use crate::storage::throttle::Throttle;
use crate::storage::time_slice::TimeSlice;
use crate::storage::txn_index::AbortedTxn;
use crate::types::{Offset, ProducerEpoch, ProducerId, TimestampMs};

use super::PartitionLog;

/// Inflated records sections larger than this are refused by the cleaner as by
/// produce: a batch never holds more than the largest message the broker takes.
const INFLATE_LIMIT: usize = 64 << 20;

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    /// Where the next pass's dirty part starts.
    pub first_dirty: Offset,
    pub elapsed: Duration,
}

/// A cleanable segment, detached for the pass.
struct PassSegment {
    span: SegmentSpan,
    source: SegmentSource,
}

/// Everything a pass needs of the log, taken at its start.
struct Pass {
    segments: Vec<PassSegment>,
    first_dirty: Offset,
    aborted: Vec<AbortedTxn>,
    producers: HashMap<ProducerId, LastBatch>,
    /// The most input bytes a cleaned segment groups; a log under time or size
    /// retention groups none, so its segments keep their time span and
    /// retention can still delete the old ones (merged into a segment with newer
    /// records, they would wait for those).
    group_bytes: u64,
    index_interval: u64,
    delete_retention: Duration,
}

/// The I/O budget of a pass.
pub struct PassBudget<'a> {
    pub map: &'a mut OffsetMap,
    pub throttle: &'a mut Throttle,
    /// The pass gives the shard back at the end of every slice.
    pub slice: &'a mut TimeSlice,
    /// Bytes read at once.
    pub read_window: usize,
}

impl PartitionLog {
    /// Where the log stands for its cleaner; `None` unless the topic is compacted
    /// and the log usable.
    pub async fn cleanable(&self, now: TimestampMs) -> Option<Cleanable> {
        let config = self.config();
        if !config.compaction.enabled || self.state.borrow().check_usable().is_err() {
            return None;
        }
        let last_stable = self.last_stable_offset();
        let (sealed, first_dirty, mut uncleanable) = {
            let state = self.state.borrow();
            let first_dirty = state.first_dirty.clamp(state.log_start, state.log_end());
            (
                sealed_spans(&state.segments),
                first_dirty,
                last_stable.min(state.active().base),
            )
        };
        let lag = config.compaction.min_compaction_lag;
        if !lag.is_zero() {
            let newest_allowed = TimestampMs(now.0.saturating_sub(lag.as_millis() as i64));
            let state = self.state.borrow();
            if let Some(young) = state.segments.iter().find(|s| {
                s.indexes
                    .max_timestamp
                    .is_some_and(|(ts, _)| ts > newest_allowed)
            }) {
                uncleanable = uncleanable.min(young.base);
            }
        }
        let (spans, clean_bytes, dirty_bytes) = cleanable_spans(&sealed, uncleanable, first_dirty);
        let clean_end = spans.last().map_or(Offset::ZERO, |span| span.next_base);
        let overdue = match config.compaction.max_compaction_lag {
            Some(max_lag) if dirty_bytes > 0 => {
                let first = spans
                    .iter()
                    .find(|span| span.next_base > first_dirty)
                    .expect("dirty bytes lie in a span");
                self.first_timestamp(first.base)
                    .await
                    .is_some_and(|ts| ts.0 < now.0.saturating_sub(max_lag.as_millis() as i64))
            }
            _ => false,
        };
        let horizon_passed = self
            .state
            .borrow()
            .pending_horizon
            .is_some_and(|horizon| horizon <= now);
        Some(Cleanable {
            first_dirty,
            clean_end,
            clean_bytes,
            dirty_bytes,
            overdue,
            horizon_passed,
        })
    }

    /// The max timestamp of the first batch of the segment at `base`.
    async fn first_timestamp(&self, base: Offset) -> Option<TimestampMs> {
        let source = {
            let state = self.state.borrow();
            state.segments.iter().find(|s| s.base == base)?.source()
        };
        let bytes = source.read(0, crate::record::BATCH_HEADER_LEN).await.ok()?;
        BatchHeader::parse(&bytes).map(BatchHeader::max_timestamp)
    }

    /// Runs one cleaner pass if the log has dirty bytes; `None` when there was
    /// nothing to do or the log changed under the pass (retention deleted a
    /// segment it read), so the next pass starts over.
    pub async fn clean(
        &self,
        mut budget: PassBudget<'_>,
        now: TimestampMs,
    ) -> Result<Option<CleanStats>, LogError> {
        let started = Instant::now();
        let Some(cleanable) = self.cleanable(now).await else {
            return Ok(None);
        };
        if cleanable.dirty_bytes == 0 && !cleanable.horizon_passed {
            return Ok(None);
        }
        let pass = self.take_pass(cleanable);
        let mut bytes_read = 0;
        let map_end = build_map(&pass, &mut budget, &mut bytes_read).await?;
        let rewrite: Vec<&PassSegment> = pass
            .segments
            .iter()
            .take_while(|segment| segment.span.base < map_end)
            .collect();
        let spans: Vec<SegmentSpan> = rewrite.iter().map(|s| s.span).collect();
        let mut cleaned = Vec::new();
        let mut written = Vec::new();
        let mut tracker = TxnTracker::new(pass.aborted.clone());
        let mut records_removed = 0;
        let mut pending_horizon = None;
        let horizon = TimestampMs(
            now.0
                .saturating_add(pass.delete_retention.as_millis() as i64),
        );
        let mut at = 0;
        for count in group_segments(&spans, pass.group_bytes) {
            let group = &rewrite[at..at + count];
            at += count;
            let mut writer =
                CleanedSegmentWriter::create(&self.dir, group[0].span.base, pass.index_interval)
                    .await?;
            let mut entries = Vec::new();
            for segment in group {
                let mut rules = BatchRules {
                    map: &*budget.map,
                    map_end,
                    tracker: &mut tracker,
                    producers: &pass.producers,
                    now,
                    horizon,
                };
                let mut reader =
                    BatchReader::new(&segment.source, 0, segment.span.size, budget.read_window);
                while let Some((_, batch)) = reader.next().await? {
                    budget.slice.pause_if_spent().await;
                    budget.throttle.consume(batch.len() as u64).await;
                    bytes_read += batch.len() as u64;
                    let (outcome, entry) = rules.apply(batch)?;
                    records_removed += u64::from(outcome.1);
                    let kept = match &outcome.0 {
                        Filtered::Unchanged => Some(batch),
                        Filtered::Rewritten(bytes) => Some(bytes.as_slice()),
                        Filtered::Removed => None,
                    };
                    if let Some(bytes) = kept {
                        let stamped = BatchHeader::parse(bytes).and_then(delete_horizon);
                        if let Some(stamped) = stamped.filter(|&h| h > now) {
                            pending_horizon = pending_horizon.max(Some(stamped));
                        }
                        budget.throttle.consume(bytes.len() as u64).await;
                        writer.append(bytes).await?;
                        entries.extend(entry);
                    }
                }
            }
            written.push(writer.size());
            cleaned.push((writer.finish(&entries).await?, entries));
        }
        let old_bases: Vec<Offset> = spans.iter().map(|s| s.base).collect();
        let segments_written = cleaned.len();
        if !self
            .swap_in(&old_bases, cleaned, map_end, pending_horizon)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(CleanStats {
            segments_read: old_bases.len(),
            segments_written,
            bytes_read,
            bytes_written: written.iter().sum(),
            records_removed,
            first_dirty: map_end,
            elapsed: started.elapsed(),
        }))
    }

    fn take_pass(&self, cleanable: Cleanable) -> Pass {
        let config = self.config();
        let state = self.state.borrow();
        let sealed = sealed_spans(&state.segments);
        let segments: Vec<PassSegment> = state
            .segments
            .iter()
            .zip(&sealed)
            .take_while(|(_, span)| span.next_base <= cleanable.clean_end)
            .map(|(segment, span)| PassSegment {
                span: *span,
                source: segment.source(),
            })
            .collect();
        let start = segments.first().map_or(state.log_start, |s| s.span.base);
        let aborted = state.aborted.collect(start, start, cleanable.clean_end);
        Pass {
            segments,
            first_dirty: cleanable.first_dirty,
            aborted,
            producers: state.producers.last_batches(),
            group_bytes: if config.retention_ms.is_some() || config.retention_bytes.is_some() {
                0
            } else {
                config.segment_bytes
            },
            index_interval: config.index_interval_bytes,
            delete_retention: config.compaction.delete_retention,
        }
    }

    /// Replaces the segments at `old_bases` by the cleaned ones, unless the log
    /// no longer has exactly those sealed segments (then the cleaned files are
    /// dropped and `false` returned).
    async fn swap_in(
        &self,
        old_bases: &[Offset],
        cleaned: Vec<(CleanedSegment, Vec<AbortedTxn>)>,
        first_dirty: Offset,
        pending_horizon: Option<TimestampMs>,
    ) -> Result<bool, LogError> {
        let new_bases: Vec<Offset> = cleaned.iter().map(|(segment, _)| segment.base).collect();
        let (_guard, _sealed) = self.lock_all().await?;
        let position = {
            let state = self.state.borrow();
            state.check_usable()?;
            let bases: Vec<Offset> = state.segments.iter().map(|s| s.base).collect();
            bases
                .windows(old_bases.len())
                .position(|window| window == old_bases)
                .filter(|&at| at + old_bases.len() < bases.len())
        };
        let Some(position) = position else {
            tracing::info!(dir = %self.dir.display(), "log changed during cleaning; dropping the pass");
            cleaned_segment::discard(&self.dir, &new_bases)?;
            return Ok(false);
        };
        // Reads in flight keep the replaced files through these descriptors.
        for segment in self
            .state
            .borrow()
            .segments
            .range(position..position + old_bases.len())
        {
            segment.reader.file()?;
        }
        if let Err(error) = swap::commit(&self.dir, old_bases, &new_bases).await {
            self.fail(&error);
            return Err(error);
        }
        let mut opened = Vec::with_capacity(cleaned.len());
        let mut entries = Vec::with_capacity(cleaned.len());
        for (segment, aborted) in cleaned {
            let base = segment.base;
            match segment.open(&self.dir).await {
                Ok(segment) => opened.push(segment),
                Err(error) => {
                    self.fail(&error);
                    return Err(error);
                }
            }
            entries.push((base, aborted));
        }
        {
            let mut state = self.state.borrow_mut();
            let tail = state.segments.split_off(position + old_bases.len());
            state.segments.truncate(position);
            state.segments.extend(opened);
            state.segments.extend(tail);
            state.aborted.replace(old_bases, entries);
            state.first_dirty = state.first_dirty.max(first_dirty);
            state.pending_horizon = pending_horizon;
        }
        self.check();
        self.write_offset(CLEANER_OFFSET_FILE, first_dirty).await?;
        Ok(true)
    }
}

/// The sealed segments' spans, oldest first (the active one excluded).
fn sealed_spans(segments: &VecDeque<Segment>) -> Vec<SegmentSpan> {
    segments
        .iter()
        .zip(segments.iter().skip(1))
        .map(|(segment, next)| SegmentSpan {
            base: segment.base,
            next_base: next.base,
            size: segment.size,
            index_bytes: (
                (segment.indexes.offsets.len() * crate::storage::offset_index::ENTRY_LEN) as u64,
                (segment.indexes.times.len() * crate::storage::time_index::ENTRY_LEN) as u64,
            ),
        })
        .collect()
}

/// Maps the keys of the dirty segments, from the first dirty offset on, until
/// the map is full. Returns the offset after the last batch mapped whole.
async fn build_map(
    pass: &Pass,
    budget: &mut PassBudget<'_>,
    bytes_read: &mut u64,
) -> Result<Offset, LogError> {
    let map = &mut *budget.map;
    map.clear();
    let mut tracker = TxnTracker::new(pass.aborted.clone());
    let mut end = pass.first_dirty;
    for segment in pass
        .segments
        .iter()
        .filter(|s| s.span.next_base > pass.first_dirty)
    {
        let mut reader =
            BatchReader::new(&segment.source, 0, segment.span.size, budget.read_window);
        while let Some((summary, batch)) = reader.next().await? {
            if summary.last_offset < pass.first_dirty {
                continue;
            }
            budget.slice.pause_if_spent().await;
            budget.throttle.consume(batch.len() as u64).await;
            *bytes_read += batch.len() as u64;
            let header = BatchHeader::parse(batch).expect("whole batch");
            let attributes = header.attributes();
            let producer = ProducerId(header.producer_id.get());
            let skip = attributes.is_control()
                || tracker.on_data(producer, attributes.is_transactional(), summary.last_offset);
            if !skip && !map_batch(map, batch)? {
                if end == pass.first_dirty {
                    return Err(LogError::Corrupt(format!(
                        "the cleaner's dedupe buffer ({} keys) cannot hold the keys of one batch at {}",
                        map.capacity(),
                        summary.base_offset
                    )));
                }
                return Ok(end);
            }
            end = summary.last_offset.plus(1);
        }
        end = end.max(segment.span.next_base);
    }
    Ok(end)
}

/// Puts the batch's keys in the map; `false` when it filled before the last.
fn map_batch(map: &mut OffsetMap, batch: &[u8]) -> Result<bool, LogError> {
    let records = crate::record::compaction::BatchRecords::new(
        RecordBatch::new_unchecked(batch),
        INFLATE_LIMIT,
    )
    .map_err(|error| LogError::Corrupt(format!("cleaning: {error}")))?;
    for record in records.iter() {
        let record = record.map_err(|error| LogError::Corrupt(format!("cleaning: {error}")))?;
        if let Some(key) = record.key
            && map.put(key, record.offset).is_err()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The decisions of a pass for each batch it rewrites.
struct BatchRules<'a> {
    map: &'a OffsetMap,
    map_end: Offset,
    tracker: &'a mut TxnTracker,
    producers: &'a HashMap<ProducerId, LastBatch>,
    now: TimestampMs,
    /// The delete horizon stamped on batches the pass passes first.
    horizon: TimestampMs,
}

impl BatchRules<'_> {
    /// Filters one batch; returns what became of it, the records removed, and
    /// the `.txnindex` entry a kept abort marker needs.
    fn apply(&mut self, batch: &[u8]) -> Result<((Filtered, u32), Option<AbortedTxn>), LogError> {
        let corrupt = |error: String| LogError::Corrupt(format!("cleaning: {error}"));
        let header = BatchHeader::parse(batch).expect("whole batch");
        let attributes = header.attributes();
        let control = attributes.is_control();
        let producer = ProducerId(header.producer_id.get());
        let last_offset = header.last_offset();
        let existing_horizon = delete_horizon(header);
        let (discard, entry) = if control {
            let kind = EndTxnMarker::from_batch(RecordBatch::new_unchecked(batch))
                .ok()
                .map(|marker| marker.kind);
            let fate = self.tracker.on_marker(producer, kind, last_offset);
            let passed = existing_horizon.is_some_and(|h| h <= self.now);
            (fate.removable && passed, fate.index_entry)
        } else {
            let aborted =
                self.tracker
                    .on_data(producer, attributes.is_transactional(), last_offset);
            (aborted, None)
        };
        let retain_empty = header.has_producer_id()
            && is_last_of_producer(
                self.producers,
                producer,
                ProducerEpoch(header.producer_epoch.get()),
                last_offset,
                control,
            );
        let (map, map_end, now) = (self.map, self.map_end, self.now);
        let outcome = filter_batch(
            RecordBatch::new_unchecked(batch),
            INFLATE_LIMIT,
            retain_empty,
            Some(self.horizon),
            |record| {
                if discard {
                    false
                } else if control {
                    true
                } else {
                    keep_record(record, map, map_end, existing_horizon, now)
                }
            },
        )
        .map_err(|error| corrupt(error.to_string()))?;
        Ok(((outcome.filtered, outcome.removed), entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::builder::{BatchWriter, NewRecord, build_batch_with};
    use crate::storage::LogConfig;
    use crate::storage::config::Compaction;
    use crate::storage::producer_state::TxnMarker;
    use crate::storage::test_support::{EPOCH0, open_log, run};

    fn compacted() -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            compaction: Compaction {
                enabled: true,
                min_cleanable_dirty_ratio: 0.01,
                delete_retention: Duration::from_millis(1),
                ..Compaction::default()
            },
            ..LogConfig::default()
        }
    }

    fn keyed(key: &str, value: Option<&str>) -> Vec<u8> {
        build_batch_with(
            &[NewRecord {
                key: Some(key.as_bytes()),
                value: value.map(str::as_bytes),
                timestamp_ms: 1_700_000_000_000,
            }],
            BatchWriter::NONE,
        )
    }

    /// Every readable batch of the log, read as a consumer would.
    async fn log_bytes(log: &PartitionLog) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut next = log.log_start_offset();
        for _ in 0..10_000 {
            if next >= log.high_watermark() {
                break;
            }
            let outcome = log.read(next, 1 << 20, true).await.unwrap();
            bytes.extend(outcome.to_vec().await.unwrap());
            next = outcome.next_offset;
        }
        bytes
    }

    /// (offset, key, has a value) of every record.
    async fn read_all(log: &PartitionLog) -> Vec<(Offset, String, bool)> {
        let bytes = log_bytes(log).await;
        let mut out = Vec::new();
        for batch in crate::record::key_value::batches(&bytes) {
            let records = crate::record::compaction::BatchRecords::new(batch, 1 << 20).unwrap();
            for record in records.iter() {
                let record = record.unwrap();
                let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
                out.push((record.offset, key, record.has_value));
            }
        }
        out
    }

    /// The resources of a shard's cleaner, for passes run by hand.
    struct TestCleaner {
        map: OffsetMap,
        throttle: Throttle,
        slice: TimeSlice,
    }

    impl TestCleaner {
        fn new(map_bytes: usize) -> TestCleaner {
            TestCleaner {
                map: OffsetMap::with_memory(map_bytes),
                throttle: Throttle::new(None),
                slice: TimeSlice::new(Duration::from_millis(1)),
            }
        }

        async fn pass(&mut self, log: &PartitionLog, now: TimestampMs) -> Option<CleanStats> {
            let budget = PassBudget {
                map: &mut self.map,
                throttle: &mut self.throttle,
                slice: &mut self.slice,
                read_window: 64 << 10,
            };
            log.clean(budget, now).await.unwrap()
        }
    }

    /// The aborted transactions a `read_committed` read of the whole log lists.
    async fn aborted_listed(log: &PartitionLog) -> usize {
        log.read_isolated(
            Offset::ZERO,
            1 << 20,
            true,
            crate::storage::Isolation::ReadCommitted,
        )
        .await
        .unwrap()
        .aborted
        .unwrap()
        .len()
    }

    #[test]
    fn a_pass_keeps_the_last_record_per_key_at_its_offset() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), compacted()).await;
            let mut last = HashMap::new();
            for round in 0..30 {
                for key in ["a", "b", "c"] {
                    let value = format!("{key}{round}");
                    let info = log.append(&keyed(key, Some(&value)), EPOCH0).await.unwrap();
                    last.insert(key.to_string(), info.base_offset);
                }
            }
            assert!(log.segment_count() > 3);
            let mut cleaner = TestCleaner::new(1 << 16);
            let stats = cleaner
                .pass(&log, TimestampMs::now())
                .await
                .expect("a pass ran");
            assert!(stats.records_removed > 0);
            let active = *log.segment_bases().last().unwrap();
            let records = read_all(&log).await;
            let cleaned: Vec<_> = records.iter().filter(|(o, _, _)| *o < active).collect();
            let mut seen = std::collections::HashSet::new();
            for (offset, key, _) in &cleaned {
                assert!(
                    seen.insert(key.clone()),
                    "{key} twice below the active segment"
                );
                let newest = last[key.as_str()];
                assert!(*offset == newest || newest >= active, "{key} at {offset}");
            }
            assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
            log.close().await.unwrap();
            // The cleaned log opens again, with the same records.
            let reopened = open_log(dir.path(), compacted()).await;
            assert_eq!(read_all(&reopened).await, records);
            reopened.close().await.unwrap();
        });
    }

    fn txn_keyed(producer: i64, sequence: i32, key: &str, value: &str) -> Vec<u8> {
        build_batch_with(
            &[NewRecord {
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                timestamp_ms: 1_700_000_000_000,
            }],
            BatchWriter {
                attributes: crate::record::attributes::Attributes(0).with_transactional(),
                producer_id: ProducerId(producer),
                producer_epoch: ProducerEpoch(0),
                base_sequence: sequence,
            },
        )
    }

    fn end_txn(producer: i64, kind: crate::record::control::MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: ProducerId(producer),
            producer_epoch: ProducerEpoch(0),
            coordinator_epoch: 1,
            kind,
        }
    }

    /// Batches (base offset, control, records) of the whole log.
    async fn batches(log: &PartitionLog) -> Vec<(Offset, bool, i32)> {
        let bytes = log_bytes(log).await;
        crate::record::key_value::batches(&bytes)
            .map(|batch| {
                let header = batch.header();
                (
                    header.base_offset(),
                    header.attributes().is_control(),
                    header.records_count.get(),
                )
            })
            .collect()
    }

    #[test]
    fn aborted_data_goes_and_markers_go_once_nothing_of_their_transaction_is_left() {
        use crate::record::control::MarkerKind;
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), compacted()).await;
            let aborted = log
                .append(&txn_keyed(7, 0, "a", "aborted"), EPOCH0)
                .await
                .unwrap();
            let abort = log
                .append_marker(&end_txn(7, MarkerKind::Abort), EPOCH0)
                .await
                .unwrap();
            // The producer's later transaction: its aborted batch is no longer
            // its newest, kept for its sequence.
            log.append(&txn_keyed(7, 1, "d", "later"), EPOCH0)
                .await
                .unwrap();
            log.append_marker(&end_txn(7, MarkerKind::Commit), EPOCH0)
                .await
                .unwrap();
            log.append(&txn_keyed(8, 0, "b", "committed"), EPOCH0)
                .await
                .unwrap();
            let commit = log
                .append_marker(&end_txn(8, MarkerKind::Commit), EPOCH0)
                .await
                .unwrap();
            while log.segment_count() < 4 {
                log.append(&keyed("c", Some("plain")), EPOCH0)
                    .await
                    .unwrap();
            }
            let mut cleaner = TestCleaner::new(1 << 16);
            let now = TimestampMs::now();
            cleaner.pass(&log, now).await.expect("a pass ran");
            let after = batches(&log).await;
            let find = |offset: Offset| after.iter().find(|b| b.0 == offset).copied();
            assert_eq!(find(aborted.base_offset), None, "the aborted batch is gone");
            assert_eq!(
                find(abort),
                Some((abort, true, 1)),
                "the abort marker stays a pass"
            );
            assert_eq!(find(commit), Some((commit, true, 1)));
            let aborted_list = aborted_listed(&log).await;
            assert_eq!(aborted_list, 1, "the kept marker keeps its index entry");
            // A later pass, after the delete horizon: no data of the aborted
            // transaction is left, so its marker goes; the committed one stays
            // with its data.
            let later = TimestampMs(now.0 + 10_000);
            cleaner
                .pass(&log, later)
                .await
                .expect("the passed horizon makes a pass due");
            let after = batches(&log).await;
            assert!(after.iter().all(|b| b.0 != abort), "{after:?}");
            assert!(after.iter().any(|b| b.0 == commit));
            let aborted_list = aborted_listed(&log).await;
            assert_eq!(aborted_list, 0, "no entry without its marker");
            log.close().await.unwrap();
            let reopened = open_log(dir.path(), compacted()).await;
            assert_eq!(batches(&reopened).await, after);
            reopened.close().await.unwrap();
        });
    }

    #[test]
    fn a_read_taken_before_a_swap_still_sends_the_old_segment_whole() {
        use std::os::unix::fs::FileExt;
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), compacted()).await;
            for round in 0..30 {
                let value = format!("v{round}");
                log.append(&keyed("k", Some(&value)), EPOCH0).await.unwrap();
            }
            let outcome = log.read(Offset::ZERO, 1 << 20, true).await.unwrap();
            let before = outcome.to_vec().await.unwrap();
            let mut cleaner = TestCleaner::new(1 << 16);
            cleaner
                .pass(&log, TimestampMs::now())
                .await
                .expect("a pass ran");
            // The zero-copy path sends through the segment's second descriptor.
            let crate::storage::ReadChunk::File {
                reader,
                position,
                len,
                ..
            } = &outcome.chunks[0]
            else {
                panic!("a sealed segment is read from its file");
            };
            let mut sent = vec![0; *len as usize];
            reader
                .file()
                .unwrap()
                .read_exact_at(&mut sent, *position)
                .unwrap();
            assert_eq!(sent, before, "the old file, whole, not the cleaned one");
            assert_eq!(outcome.to_vec().await.unwrap(), before);
            let after = log.read(Offset::ZERO, 1 << 20, true).await.unwrap();
            assert!(
                after.to_vec().await.unwrap().len() < before.len(),
                "cleaned"
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn more_dirty_keys_than_the_map_holds_are_cleaned_in_several_passes() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), compacted()).await;
            for round in 0..3 {
                for key in 0..40 {
                    let value = format!("{round}");
                    log.append(&keyed(&format!("key{key}"), Some(&value)), EPOCH0)
                        .await
                        .unwrap();
                }
            }
            // The smallest map: 14 keys.
            let mut cleaner = TestCleaner::new(0);
            let active = *log.segment_bases().last().unwrap();
            let mut passes = Vec::new();
            for _ in 0..100 {
                let Some(stats) = cleaner.pass(&log, TimestampMs::now()).await else {
                    break;
                };
                passes.push(stats.first_dirty);
            }
            assert!(passes.len() > 1, "one pass cannot map 40 keys: {passes:?}");
            assert!(passes.windows(2).all(|w| w[0] < w[1]), "{passes:?}");
            assert_eq!(
                *passes.last().unwrap(),
                active,
                "cleaned up to the active segment"
            );
            let records = read_all(&log).await;
            let cleaned: Vec<_> = records.iter().filter(|(o, _, _)| *o < active).collect();
            let keys: std::collections::HashSet<_> = cleaned.iter().map(|(_, k, _)| k).collect();
            assert_eq!(
                keys.len(),
                cleaned.len(),
                "one record per key below the active segment"
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn compaction_lags_bound_what_is_cleanable_and_when() {
        run(|| async {
            let now = TimestampMs::now();
            let fresh = |key: &str| {
                build_batch_with(
                    &[NewRecord {
                        key: Some(key.as_bytes()),
                        value: Some(b"value"),
                        timestamp_ms: now.0,
                    }],
                    BatchWriter::NONE,
                )
            };
            // min.compaction.lag.ms: records younger than it are not cleanable.
            let dir = tempfile::tempdir().unwrap();
            let mut config = compacted();
            config.compaction.min_compaction_lag = Duration::from_secs(3600);
            let log = open_log(dir.path(), config).await;
            while log.segment_count() < 3 {
                log.append(&fresh("k"), EPOCH0).await.unwrap();
            }
            let cleanable = log.cleanable(now).await.unwrap();
            assert_eq!(
                (cleanable.clean_end, cleanable.dirty_bytes),
                (Offset::ZERO, 0)
            );
            log.close().await.unwrap();

            // max.compaction.lag.ms: old dirty records make a pass due whatever
            // the ratio.
            let dir = tempfile::tempdir().unwrap();
            let mut config = compacted();
            config.compaction.min_cleanable_dirty_ratio = 1.0;
            config.compaction.max_compaction_lag = Some(Duration::from_secs(60));
            let log = open_log(dir.path(), config).await;
            while log.segment_count() < 3 {
                log.append(&keyed("k", Some("old")), EPOCH0).await.unwrap();
            }
            let cleanable = log.cleanable(now).await.unwrap();
            assert!(cleanable.overdue && cleanable.dirty_bytes > 0);
            let young = log.cleanable(TimestampMs(1_700_000_000_001)).await.unwrap();
            assert!(!young.overdue, "not yet past the lag");
            log.close().await.unwrap();
        });
    }
}
