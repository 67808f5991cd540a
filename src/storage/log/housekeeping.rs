//! Housekeeping: retention, DeleteRecords, checkpoints and producer-state replay.
//!
//! Retention and DeleteRecords delete whole segments from the front of the log and
//! move the log start offset (checkpointed before any file goes). Checkpoints are
//! small text files replaced atomically. Producer state is loaded from its
//! snapshot and the batches after it are replayed from the log.

use std::path::Path;

use crate::storage::checkpoint::{
    self, HIGH_WATERMARK_FILE, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE,
};
use crate::storage::config::LogConfig;
use crate::storage::error::LogError;
use crate::storage::producer_state::{ProducerState, SNAPSHOT_FILE, TxnMarker};
use crate::storage::recovery;
use crate::storage::retention::{SegmentStats, segments_to_delete};
use crate::storage::scan::{HeaderScanner, SegmentSource};
use crate::storage::segment::Segment;
use crate::storage::summary::BatchSummary;
use crate::types::{LeaderEpoch, Offset, TimestampMs};

use super::PartitionLog;
use super::aborted::apply_marker;

/// Where DeleteRecords moves the log start: `Ok(None)` when it is already at or
/// past `offset`; an error for an offset that is negative or above the high
/// watermark.
fn new_log_start(
    offset: Offset,
    log_start: Offset,
    high_watermark: Offset,
) -> Result<Option<Offset>, ()> {
    if offset.0 < 0 || offset > high_watermark {
        Err(())
    } else if offset <= log_start {
        Ok(None)
    } else {
        Ok(Some(offset))
    }
}

/// Where producer-state replay starts: from the snapshot when it covers no more
/// than the log holds, else from nothing; never below the log start.
fn replay_start(
    snapshot: Option<(ProducerState, Offset)>,
    log_start: Offset,
    log_end: Offset,
) -> (ProducerState, Offset) {
    match snapshot {
        Some((state, up_to)) if up_to <= log_end => (state, up_to.max(log_start)),
        _ => (ProducerState::default(), log_start),
    }
}

impl PartitionLog {
    /// Moves the log start offset to `offset` (DeleteRecords) and deletes segments
    /// wholly below it. Returns the new log start offset (the low watermark).
    pub async fn delete_records(&self, offset: Offset) -> Result<Offset, LogError> {
        let _locks = self.lock_all().await?;
        let high_watermark = self.high_watermark();
        let (log_start, log_end) = {
            let state = self.state.borrow();
            state.check_usable()?;
            (state.log_start, state.log_end())
        };
        let out_of_range = |()| LogError::OffsetOutOfRange {
            requested: offset,
            log_start,
            log_end,
        };
        let Some(new_start) =
            new_log_start(offset, log_start, high_watermark).map_err(out_of_range)?
        else {
            return Ok(log_start);
        };
        self.state.borrow_mut().log_start = new_start;
        self.check();
        self.write_offset(LOG_START_OFFSET_FILE, new_start).await?;
        self.delete_oldest_locked(
            TimestampMs::now(),
            &LogConfig {
                retention_ms: None,
                retention_bytes: None,
                ..self.config()
            },
        )
        .await?;
        Ok(new_start)
    }

    /// Deletes whole segments past retention; returns how many.
    pub async fn apply_retention(&self, now: TimestampMs) -> Result<usize, LogError> {
        let _locks = self.lock_all().await?;
        self.state.borrow().check_usable()?;
        self.delete_oldest_locked(now, &self.config()).await
    }

    async fn delete_oldest_locked(
        &self,
        now: TimestampMs,
        config: &LogConfig,
    ) -> Result<usize, LogError> {
        let high_watermark = self.high_watermark();
        let (removed, new_start) = {
            let mut state = self.state.borrow_mut();
            let stats: Vec<SegmentStats> = state
                .segments
                .iter()
                .map(|s| SegmentStats {
                    base: s.base,
                    next_offset: s.next_offset,
                    size: s.size,
                    max_timestamp: s.indexes.max_timestamp.map(|(ts, _)| ts),
                })
                .collect();
            let count = segments_to_delete(&stats, config, now, state.log_start, high_watermark);
            let removed: Vec<Segment> = state.segments.drain(..count).collect();
            let first_base = state
                .segments
                .front()
                .expect("the active segment remains")
                .base;
            state.aborted.drop_below(first_base);
            let new_start = state.log_start.max(first_base);
            let moved = new_start != state.log_start;
            state.log_start = new_start;
            (removed, moved.then_some(new_start))
        };
        if removed.is_empty() {
            return Ok(0);
        }
        self.check();
        if let Some(start) = new_start {
            self.write_offset(LOG_START_OFFSET_FILE, start).await?;
        }
        for segment in &removed {
            tracing::info!(dir = %self.dir.display(), base = %segment.base, size = segment.size, "deleting segment");
            recovery::remove_segment_files(&self.dir, segment.base).await?;
        }
        checkpoint::sync_dir(&self.dir).await?;
        Ok(removed.len())
    }

    /// Writes the high watermark checkpoint.
    pub async fn checkpoint_high_watermark(&self) -> Result<(), LogError> {
        let _permit = self.lock().await?;
        self.write_offset(HIGH_WATERMARK_FILE, self.high_watermark())
            .await
    }

    /// Records that `epoch` starts at the log end, as a new leader does (Kafka's
    /// `maybeAssignEpochStartOffset`), and checkpoints it if that is news. Done
    /// when the partition opens, the first append of a new partition no longer
    /// pays for creating the checkpoint file: 10,000 of those at once, each an
    /// inode allocation in ext4, held a shard busy for seconds.
    pub async fn begin_epoch(&self, epoch: LeaderEpoch) -> Result<(), LogError> {
        let _permit = self.lock().await?;
        let dirty = {
            let mut state = self.state.borrow_mut();
            let end = state.log_end();
            let assigned = state.epochs.assign(epoch, end);
            state.epochs_dirty |= assigned;
            state.epochs_dirty
        };
        if dirty {
            self.write_epochs().await?;
        }
        Ok(())
    }

    pub(super) async fn write_offset(&self, name: &str, offset: Offset) -> Result<(), LogError> {
        checkpoint::write_atomically(&self.dir, name, checkpoint::encode_offset(offset)).await
    }

    pub(super) async fn write_epochs(&self) -> Result<(), LogError> {
        let bytes = {
            let mut state = self.state.borrow_mut();
            state.epochs_dirty = false;
            checkpoint::encode_epochs(state.epochs.entries())
        };
        checkpoint::write_atomically(&self.dir, LEADER_EPOCH_FILE, bytes).await
    }

    /// Snapshots the producer state as of `end`, the log end.
    pub(super) async fn write_producer_snapshot(&self, end: Offset) -> Result<(), LogError> {
        let snapshot = self.state.borrow().producers.encode(end);
        checkpoint::write_atomically(&self.dir, SNAPSHOT_FILE, snapshot).await
    }

    /// Loads the `.txnindex` files and the producer snapshot and replays the
    /// batches after it (all of the log if there is no usable snapshot, or if a
    /// transaction index must be rebuilt), then writes the index files the
    /// replay completed.
    pub(super) async fn load_producer_state(&self) -> Result<(), LogError> {
        let indexes_whole = self.load_aborted_indexes().await?;
        let snapshot = match checkpoint::read_optional(&self.dir.join(SNAPSHOT_FILE)).await? {
            Some(_) if !indexes_whole => None,
            Some(bytes) => match ProducerState::decode(&bytes) {
                Ok(decoded) => Some(decoded),
                Err(error) => {
                    tracing::warn!(dir = %self.dir.display(), %error, "producer snapshot unreadable; rebuilding from the log");
                    None
                }
            },
            None => None,
        };
        let (producers, next) =
            replay_start(snapshot, self.log_start_offset(), self.log_end_offset());
        let producers = self.replay_producers(producers, next).await?;
        self.state.borrow_mut().producers = producers;
        self.write_aborted_indexes().await
    }

    /// Feeds `producers` every producer batch and marker of the readable log from
    /// `next` on; an abort marker whose `.txnindex` entry is missing gets it.
    pub(super) async fn replay_producers(
        &self,
        mut producers: ProducerState,
        mut next: Offset,
    ) -> Result<ProducerState, LogError> {
        // Everything acknowledged, past any high watermark bound: a follower's
        // producer state covers all it replicated.
        let end = self.readable_end();
        let mut after_base = None;
        for _ in 0..=self.segment_count() {
            if next >= end {
                break;
            }
            let Some(view) = self.segment_view(next, after_base) else {
                break;
            };
            let mut scanner = HeaderScanner::new(&view.source, view.from, view.end);
            while let Some(summary) = scanner.next().await? {
                if summary.last_offset < next {
                    continue;
                }
                if let Some(producer) = &summary.producer {
                    producers.record(producer, summary.base_offset, summary.last_offset);
                }
                if summary.control {
                    let marker = self.read_marker(&view.source, &summary).await?;
                    let mut state = self.state.borrow_mut();
                    let (_, indexed) = apply_marker(
                        &mut producers,
                        &mut state.aborted,
                        &marker,
                        summary.base_offset,
                        view.base,
                    );
                    if indexed {
                        tracing::warn!(dir = %self.dir.display(), offset = %summary.base_offset, "abort marker missing from its transaction index; added");
                    }
                }
                next = summary.last_offset.plus(1);
            }
            after_base = Some(view.base);
        }
        Ok(producers)
    }

    /// The marker of the control batch `summary` describes.
    async fn read_marker(
        &self,
        source: &SegmentSource,
        summary: &BatchSummary,
    ) -> Result<TxnMarker, LogError> {
        let len = usize::try_from(summary.len).expect("a batch fits in memory");
        let bytes = source.read(summary.position, len).await?;
        let batch = bytes.get(..len).ok_or_else(|| {
            LogError::Corrupt(format!(
                "short read of the control batch at {}",
                summary.position
            ))
        })?;
        TxnMarker::of_batch(batch).map_err(|error| {
            LogError::Corrupt(format!(
                "control batch at offset {}: {error}",
                summary.base_offset
            ))
        })
    }
}

pub(super) async fn read_offset_checkpoint(
    dir: &Path,
    name: &str,
) -> Result<Option<Offset>, LogError> {
    match checkpoint::read_optional(&dir.join(name)).await? {
        Some(bytes) => checkpoint::decode_offset(&bytes)
            .map(Some)
            .map_err(|e| LogError::Corrupt(format!("{name}: {e}"))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::producer_state::SequenceCheck;
    use crate::storage::summary::ProducerBatch;
    use crate::storage::test_support::{
        EPOCH0, batch, open_log, producer_batch, run, small_config,
    };

    #[test]
    fn a_new_leader_epoch_is_checkpointed_when_it_begins_not_at_the_first_append() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let file = dir.path().join(LEADER_EPOCH_FILE);
            log.begin_epoch(LeaderEpoch(2)).await.unwrap();
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n1\n2 0\n");
            let options = crate::storage::log::AppendOptions {
                leader_epoch: LeaderEpoch(2),
                log_append_time: None,
            };
            log.append(&batch(3, 10, 0), options).await.unwrap();
            assert!(
                !log.state.borrow().epochs_dirty,
                "the append found its epoch"
            );
            log.begin_epoch(LeaderEpoch(2)).await.unwrap();
            log.begin_epoch(LeaderEpoch(4)).await.unwrap();
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n2 0\n4 3\n");
            log.close().await.unwrap();
        });
    }

    #[test]
    fn an_empty_partition_reopened_in_the_same_epoch_leaves_its_checkpoint_alone() {
        use std::os::unix::fs::MetadataExt;
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(LEADER_EPOCH_FILE);
            let log = open_log(dir.path(), small_config()).await;
            log.begin_epoch(LeaderEpoch(1)).await.unwrap();
            log.close().await.unwrap();
            let inode = std::fs::metadata(&file).unwrap().ino();
            let log = open_log(dir.path(), small_config()).await;
            log.begin_epoch(LeaderEpoch(1)).await.unwrap();
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n1\n1 0\n");
            assert_eq!(
                std::fs::metadata(&file).unwrap().ino(),
                inode,
                "not rewritten"
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn delete_records_moves_the_start_only_forward_and_not_past_the_watermark() {
        assert_eq!(
            new_log_start(Offset(5), Offset(2), Offset(9)),
            Ok(Some(Offset(5)))
        );
        assert_eq!(
            new_log_start(Offset(9), Offset(2), Offset(9)),
            Ok(Some(Offset(9)))
        );
        assert_eq!(new_log_start(Offset(2), Offset(2), Offset(9)), Ok(None));
        assert_eq!(new_log_start(Offset(1), Offset(2), Offset(9)), Ok(None));
        assert_eq!(new_log_start(Offset(10), Offset(2), Offset(9)), Err(()));
        assert_eq!(new_log_start(Offset(-1), Offset(0), Offset(9)), Err(()));
    }

    #[test]
    fn replay_starts_from_a_snapshot_inside_the_log_or_from_the_log_start() {
        let mut state = ProducerState::default();
        let batch = ProducerBatch {
            producer_id: 1,
            epoch: 0,
            first_sequence: 0,
            last_sequence: 0,
            transactional: false,
            max_timestamp: crate::types::TimestampMs::NONE,
        };
        state.record(&batch, Offset(3), Offset(3));
        let (kept, next) = replay_start(Some((state.clone(), Offset(8))), Offset(0), Offset(10));
        assert_eq!((kept.len(), next), (1, Offset(8)));
        let (kept, next) = replay_start(Some((state.clone(), Offset(8))), Offset(9), Offset(10));
        assert_eq!(
            (kept.len(), next),
            (1, Offset(9)),
            "never below the log start"
        );
        let (fresh, next) = replay_start(Some((state, Offset(11))), Offset(2), Offset(10));
        assert_eq!(
            (fresh.len(), next),
            (0, Offset(2)),
            "a snapshot past the log end (after a truncation) is not used"
        );
        let (fresh, next) = replay_start(None, Offset(4), Offset(10));
        assert_eq!((fresh.len(), next), (0, Offset(4)));
    }

    #[test]
    fn delete_records_checkpoints_the_new_start_and_drops_segments_below_it() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            while log.segment_count() < 3 {
                log.append(&batch(5, 300, 0), EPOCH0).await.unwrap();
            }
            let bases = log.segment_bases();
            let start = bases[1].plus(1);
            assert_eq!(log.delete_records(start).await.unwrap(), start);
            assert_eq!(log.segment_bases(), bases[1..]);
            let text = std::fs::read(dir.path().join(LOG_START_OFFSET_FILE)).unwrap();
            assert_eq!(checkpoint::decode_offset(&text), Ok(start));
            assert!(!dir.path().join(format!("{:020}.log", bases[0].0)).exists());
            assert_eq!(log.offsets().log_start, start);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn retention_deletes_old_segments_but_keeps_the_active_one() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                retention_ms: Some(Duration::from_millis(1)),
                ..small_config()
            };
            let log = open_log(dir.path(), config).await;
            while log.segment_count() < 3 {
                log.append(&batch(5, 300, 0), EPOCH0).await.unwrap();
            }
            let active = *log.segment_bases().last().unwrap();
            assert_eq!(
                log.apply_retention(TimestampMs(1_000_000)).await.unwrap(),
                2
            );
            assert_eq!(log.segment_bases(), [active]);
            assert_eq!(log.log_start_offset(), active);
            log.checkpoint_high_watermark().await.unwrap();
            let text = std::fs::read(dir.path().join(HIGH_WATERMARK_FILE)).unwrap();
            assert_eq!(checkpoint::decode_offset(&text), Ok(log.high_watermark()));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn producer_state_is_replayed_from_the_snapshot_and_the_log_after_it() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            log.append(&producer_batch(0, 2), EPOCH0).await.unwrap();
            log.close().await.unwrap();
            let log = open_log(dir.path(), small_config()).await;
            log.append(&producer_batch(2, 3), EPOCH0).await.unwrap();
            drop(log);
            // The snapshot covers the first batch; the second is replayed.
            let log = open_log(dir.path(), small_config()).await;
            let retry = producer_batch(2, 3);
            let retry =
                ProducerBatch::of(crate::record::BatchHeader::parse(&retry).unwrap()).unwrap();
            assert_eq!(
                log.state.borrow().producers.check(&retry),
                Ok(SequenceCheck::Duplicate {
                    base_offset: Offset(2),
                    last_offset: Offset(4)
                })
            );
            log.close().await.unwrap();
        });
    }
}
