//! Truncation: cutting the log back to an offset, as a follower does before it
//! fetches from a new leader (Kafka's `UnifiedLog.truncateTo`, KIP-101), or
//! emptying it to start again at an offset, as a follower does that fell behind
//! its leader's log start (`truncateFullyAndStartAt`).
//!
//! Every batch holding an offset at or after the target goes, on the active and
//! earlier segments alike: later segments are deleted, the segment holding the
//! target is cut at that batch and becomes active again. Indexes, producer state,
//! leader epochs and checkpoints follow. Each step leaves a prefix of the log on
//! disk, so a crash in the middle recovers to a shorter log, never to a corrupt
//! one; the log's state in memory stays readable throughout.

use crate::storage::checkpoint::{
    HIGH_WATERMARK_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE, sync_dir,
};
use crate::storage::error::LogError;
use crate::storage::leader_epoch::LeaderEpochCache;
use crate::storage::producer_state::{ProducerState, SNAPSHOT_FILE};
use crate::storage::recovery::remove_segment_files;
use crate::storage::scan::HeaderScanner;
use crate::storage::segment::{Segment, SegmentSettings};
use crate::types::Offset;

use super::PartitionLog;
use super::state::Mark;

/// Where a truncation cuts: segment `segment` (an index into the log's segments)
/// at `position`, the start of the first batch to go, whose base offset is the
/// new log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    segment: usize,
    position: u64,
    new_end: Offset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truncation {
    /// Keep the segments up to the cut one, cut there.
    Cut(Cut),
    /// Nothing at or above the log start is left: delete everything and start
    /// again, empty, at `at`.
    Restart { at: Offset },
}

/// What a truncation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Drop every batch holding an offset at or after the target.
    To,
    /// Drop every batch and start again, empty, at the target.
    StartAt,
}

/// What truncating to `offset` does, given where it would cut (`None` when no
/// segment starts at or below `offset`). A cut that would end the log below its
/// start empties it instead, starting at `offset` or the log start, whichever is
/// lower: the log then ends at or before `offset`, as asked, and no offset at or
/// above the old log start is handed out twice.
fn plan(offset: Offset, log_start: Offset, cut: Option<Cut>) -> Truncation {
    match cut {
        Some(cut) if cut.new_end >= log_start => Truncation::Cut(cut),
        _ => Truncation::Restart {
            at: offset.min(log_start),
        },
    }
}

impl PartitionLog {
    /// Drops every batch holding an offset at or after `offset`. A batch holding
    /// `offset` goes whole (batches are atomic), so the log may end before
    /// `offset`; returns the new log end offset. Appends wait meanwhile; an append
    /// that was waiting for its acknowledgement gets it (the truncation writes
    /// and syncs every pending batch first), even if its batch is then cut away.
    pub async fn truncate_to(&self, offset: Offset) -> Result<Offset, LogError> {
        self.check_target(offset)?;
        let (_guard, _sealed) = self.lock_all().await?;
        self.state.borrow().check_usable()?;
        let log_end = self.log_end_offset();
        if offset >= log_end {
            return Ok(log_end);
        }
        self.truncate_paused(offset, Target::To).await
    }

    /// Deletes every batch and starts the log again, empty, at `offset` (log
    /// start and log end both), with no producer state and no leader epochs: a
    /// follower whose log ends below its leader's log start (Kafka's
    /// `truncateFullyAndStartAt`). Crash-safe as [`PartitionLog::truncate_to`]
    /// is, and appends wait and are acknowledged across it the same way.
    pub async fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), LogError> {
        self.check_target(offset)?;
        let (_guard, _sealed) = self.lock_all().await?;
        self.state.borrow().check_usable()?;
        let end = self.truncate_paused(offset, Target::StartAt).await?;
        debug_assert_eq!(end, offset);
        Ok(())
    }

    /// A negative target is out of range.
    fn check_target(&self, offset: Offset) -> Result<(), LogError> {
        if offset.0 < 0 {
            let state = self.state.borrow();
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: state.log_start,
                log_end: state.log_end(),
            });
        }
        Ok(())
    }

    /// Truncates with appends paused; the caller holds both locks. A failure
    /// takes the log offline.
    async fn truncate_paused(&self, offset: Offset, target: Target) -> Result<Offset, LogError> {
        self.state.borrow_mut().paused = true;
        let result = self.truncate_locked(offset, target).await;
        {
            let mut state = self.state.borrow_mut();
            state.paused = false;
            state.truncations += 1;
        }
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    async fn truncate_locked(&self, offset: Offset, target: Target) -> Result<Offset, LogError> {
        self.write_and_sync(true).await?;
        let cut = match target {
            Target::To => self.find_cut(offset).await?,
            Target::StartAt => None,
        };
        // The snapshot covers offsets about to go; a later open must not load it.
        match std::fs::remove_file(self.dir.join(SNAPSHOT_FILE)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error.into());
            }
            _ => sync_dir(&self.dir).await?,
        }
        let log_start = self.log_start_offset();
        let truncation = match target {
            Target::To => plan(offset, log_start, cut),
            Target::StartAt => Truncation::Restart { at: offset },
        };
        match truncation {
            Truncation::Cut(cut) => {
                self.cut_at(cut, log_start).await?;
                self.state.borrow_mut().aborted.truncate(cut.new_end);
                let remembered = self.state.borrow().producers.remembers_from(cut.new_end);
                if remembered {
                    let producers = self
                        .replay_producers(ProducerState::default(), log_start)
                        .await?;
                    self.state.borrow_mut().producers = producers;
                }
                let changed = self.state.borrow_mut().epochs.truncate_from(cut.new_end);
                self.state.borrow_mut().epochs_dirty |= changed;
            }
            Truncation::Restart { at } => self.restart_at(at).await?,
        }
        self.write_aborted_indexes_locked().await?;
        if self.state.borrow().epochs_dirty {
            self.write_epochs().await?;
        }
        self.write_offset(HIGH_WATERMARK_FILE, self.high_watermark())
            .await?;
        self.check();
        let end = self.log_end_offset();
        tracing::info!(dir = %self.dir.display(), %offset, %end, "truncated the log");
        Ok(end)
    }

    /// The first batch holding an offset at or after `offset`, in the segment
    /// holding `offset` (or the end of that segment).
    async fn find_cut(&self, offset: Offset) -> Result<Option<Cut>, LogError> {
        let (segment, source, from, end, next_offset) = {
            let state = self.state.borrow();
            let after = state.segments.partition_point(|s| s.base <= offset);
            let Some(index) = after.checked_sub(1) else {
                return Ok(None);
            };
            let segment = &state.segments[index];
            let from = segment
                .indexes
                .offsets
                .lookup(offset)
                .map_or(0, |entry| u64::from(entry.position));
            let source = segment.source();
            (index, source, from, segment.size, segment.next_offset)
        };
        let mut scanner = HeaderScanner::new(&source, from, end);
        while let Some(summary) = scanner.next().await? {
            if summary.last_offset >= offset {
                return Ok(Some(Cut {
                    segment,
                    position: summary.position,
                    new_end: summary.base_offset,
                }));
            }
        }
        Ok(Some(Cut {
            segment,
            position: end,
            new_end: next_offset,
        }))
    }

    /// Drops the segments after the cut one and cuts that one, which becomes the
    /// active segment; `log_start` is the log start from now on.
    async fn cut_at(&self, cut: Cut, log_start: Offset) -> Result<(), LogError> {
        // Readers see the log end at the cut from here on: the marks move down and
        // the later segments leave the state before any file changes.
        let (dropped, fillers, job, base) = {
            let mut state = self.state.borrow_mut();
            let dropped: Vec<Segment> = state.segments.drain(cut.segment + 1..).collect();
            let mut fillers: Vec<_> = dropped
                .iter()
                .filter_map(|s| s.writer.as_ref().map(|w| w.zero_filler.clone()))
                .collect();
            let mark = Mark {
                offset: cut.new_end,
                position: cut.position,
            };
            state.written = mark;
            state.durable = mark;
            state.unsynced_bytes = 0;
            state.log_start = log_start;
            let segment = state.active_mut();
            fillers.extend(segment.writer.take().map(|w| w.zero_filler));
            (
                dropped,
                fillers,
                segment.prepare_cut(cut.position),
                segment.base,
            )
        };
        for filler in &fillers {
            filler.stop().await;
        }
        // Nothing from the cut segment on is verified any more.
        self.write_offset(RECOVERY_POINT_FILE, base).await?;
        // Newest first, so a crash leaves a prefix of the log.
        for segment in dropped.iter().rev() {
            remove_segment_files(&self.dir, segment.base).await?;
        }
        sync_dir(&self.dir).await?;
        let finished = job.run().await?;
        let settings = SegmentSettings::of(&self.config());
        let index_files = {
            let mut state = self.state.borrow_mut();
            let segment = state.active_mut();
            segment.finish_cut(finished, &settings);
            assert_eq!(
                segment.next_offset, cut.new_end,
                "a cut ends the log at the base of the first batch cut away"
            );
            segment.index_files()
        };
        index_files.write(&self.dir).await?;
        self.write_offset(RECOVERY_POINT_FILE, cut.new_end).await
    }

    /// Empties the log and starts it again at `at`, with no producer state and no
    /// leader epochs.
    async fn restart_at(&self, at: Offset) -> Result<(), LogError> {
        let first_base = self.state.borrow().segments[0].base;
        let emptied = Cut {
            segment: 0,
            position: 0,
            new_end: first_base,
        };
        self.cut_at(emptied, first_base).await?;
        {
            let mut state = self.state.borrow_mut();
            state.producers = ProducerState::default();
            state.aborted.clear();
            state.epochs = LeaderEpochCache::default();
            state.epochs_dirty = true;
        }
        if at != first_base {
            // The new segment's file exists before the old one goes, and the state
            // switches over in one step.
            let settings = SegmentSettings::of(&self.config());
            let segment = Segment::create(&self.dir, at, &settings).await?;
            let old = {
                let mut state = self.state.borrow_mut();
                let old = state.segments.pop_back().expect("the emptied segment");
                state.segments.push_back(segment);
                state.written = Mark::start_of(at);
                state.durable = Mark::start_of(at);
                state.log_start = at;
                old
            };
            if let Some(writer) = &old.writer {
                writer.zero_filler.stop().await;
            }
            remove_segment_files(&self.dir, old.base).await?;
            sync_dir(&self.dir).await?;
        }
        self.write_offset(LOG_START_OFFSET_FILE, at).await?;
        self.write_offset(RECOVERY_POINT_FILE, at).await
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::record::{BatchHeader, RecordBatchMut};
    use crate::storage::config::LogConfig;
    use crate::storage::producer_state::SequenceCheck;
    use crate::storage::summary::ProducerBatch;
    use crate::storage::test_support::{
        EPOCH0, batch, log_files, open_log, producer_batch, run, small_config,
    };
    use crate::types::{LeaderEpoch, TimestampMs};

    fn cut(segment: usize, position: u64, new_end: i64) -> Cut {
        Cut {
            segment,
            position,
            new_end: Offset(new_end),
        }
    }

    #[test]
    fn a_plan_cuts_above_the_log_start_and_restarts_below_it() {
        assert_eq!(
            plan(Offset(12), Offset(0), Some(cut(1, 300, 10))),
            Truncation::Cut(cut(1, 300, 10))
        );
        assert_eq!(
            plan(Offset(5), Offset(5), Some(cut(0, 0, 5))),
            Truncation::Cut(cut(0, 0, 5)),
            "an empty log at its start is a cut"
        );
        assert_eq!(
            plan(Offset(8), Offset(7), Some(cut(0, 0, 5))),
            Truncation::Restart { at: Offset(7) },
            "the batch holding the log start goes: start again at the log start"
        );
        assert_eq!(
            plan(Offset(3), Offset(7), Some(cut(0, 0, 0))),
            Truncation::Restart { at: Offset(3) }
        );
        assert_eq!(
            plan(Offset(3), Offset(10), None),
            Truncation::Restart { at: Offset(3) }
        );
    }

    /// Appends 5-record batches (timestamps rising by 10 ms) until the log has
    /// `segments` segments and at least `batches` batches; returns them as stored.
    async fn fill(log: &PartitionLog, segments: usize, batches: usize) -> Vec<Vec<u8>> {
        let mut stored = Vec::new();
        while log.segment_count() < segments || stored.len() < batches {
            let bytes = batch(5, 300, 1_000 + stored.len() as i64 * 10);
            let info = log.append(&bytes, EPOCH0).await.unwrap();
            stored.push(as_stored(bytes, info.base_offset));
        }
        stored
    }

    /// `bytes` as the log stores them when appended at `base_offset` in epoch 0.
    fn as_stored(mut bytes: Vec<u8>, base_offset: Offset) -> Vec<u8> {
        RecordBatchMut::new_unchecked(&mut bytes)
            .assign_offset_and_epoch(base_offset, EPOCH0.leader_epoch);
        bytes
    }

    async fn read_all(log: &PartitionLog) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = log.log_start_offset();
        loop {
            let outcome = log.read(next, 1 << 20, true).await.unwrap();
            if outcome.bytes == 0 {
                return out;
            }
            out.extend(outcome.to_vec().await.unwrap());
            next = outcome.next_offset;
        }
    }

    #[test]
    fn truncating_inside_the_active_segment_drops_whole_batches() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let stored = fill(&log, 1, 10).await;
            assert_eq!(log.segment_count(), 1);
            // Offset 27 is inside the batch holding 25..=29: that batch goes too.
            assert_eq!(log.truncate_to(Offset(27)).await.unwrap(), Offset(25));
            let offsets = log.offsets();
            assert_eq!(
                (offsets.high_watermark, offsets.durable, offsets.log_end),
                (Offset(25), Offset(25), Offset(25))
            );
            assert_eq!(read_all(&log).await, stored[..5].concat());
            assert_eq!(
                log.max_timestamp(),
                Some((TimestampMs(1_044), Offset(20))),
                "the maximum of the batches left"
            );
            assert_eq!(
                log.truncate_to(Offset(30)).await.unwrap(),
                Offset(25),
                "nothing at or past the log end to drop"
            );
            let next = batch(2, 10, 0);
            assert_eq!(
                log.append(&next, EPOCH0).await.unwrap().base_offset,
                Offset(25)
            );
            log.close().await.unwrap();
            let (log, report) = PartitionLog::open(dir.path(), small_config())
                .await
                .unwrap();
            assert!(report.events.is_empty(), "{:?}", report.events);
            let next = as_stored(next, Offset(25));
            assert_eq!(read_all(&log).await, [stored[..5].concat(), next].concat());
            log.close().await.unwrap();
        });
    }

    #[test]
    fn truncating_into_an_earlier_segment_deletes_the_later_ones_and_reactivates_it() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let stored = fill(&log, 3, 0).await;
            let bases = log.segment_bases();
            let kept_batches = (bases[1].0 / 5 / 2) as usize;
            let end = Offset(kept_batches as i64 * 5);
            assert_eq!(log.truncate_to(end.plus(3)).await.unwrap(), end);
            assert_eq!(log.segment_bases(), [bases[0]]);
            assert_eq!(log_files(dir.path()), [format!("{:020}.log", bases[0].0)]);
            let file_len = std::fs::metadata(dir.path().join(&log_files(dir.path())[0]))
                .unwrap()
                .len();
            let index = std::fs::read(dir.path().join(format!("{:020}.index", bases[0].0)));
            let index = crate::storage::offset_index::OffsetIndex::decode(
                bases[0],
                &index.unwrap(),
                file_len,
            );
            assert!(
                index.unwrap().last().is_some_and(|e| e.offset < end),
                "the index on disk ends before the cut"
            );
            assert_eq!(read_all(&log).await, stored[..kept_batches].concat());
            // Appends go on in the reactivated segment, which rolls again when full.
            let more = fill(&log, 2, 0).await;
            assert_eq!(log.segment_bases()[0], bases[0]);
            // The rolled segment is sealed in the background, on this executor: let
            // it finish before the log is reopened here.
            drop(log.lock_all().await.unwrap());
            drop(log);
            let (log, report) = PartitionLog::open(dir.path(), small_config())
                .await
                .unwrap();
            assert_eq!(report.truncations(), 0, "{:?}", report.events);
            let all = [stored[..kept_batches].concat(), more.concat()].concat();
            assert_eq!(read_all(&log).await, all);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn truncation_rebuilds_producer_state_and_leader_epochs() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let epoch = |n| crate::storage::log::AppendOptions {
                leader_epoch: LeaderEpoch(n),
                log_append_time: None,
            };
            log.append(&producer_batch(0, 2), epoch(1)).await.unwrap();
            log.append(&producer_batch(2, 3), epoch(1)).await.unwrap();
            log.append(&producer_batch(5, 1), epoch(2)).await.unwrap();
            log.close().await.unwrap();
            let log = open_log(dir.path(), small_config()).await;
            assert!(dir.path().join(SNAPSHOT_FILE).exists());
            assert_eq!(log.truncate_to(Offset(2)).await.unwrap(), Offset(2));
            assert!(
                !dir.path().join(SNAPSHOT_FILE).exists(),
                "the snapshot covered offsets that are gone"
            );
            assert_eq!(log.leader_epochs(), [(LeaderEpoch(1), Offset(0))]);
            let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint"));
            assert_eq!(text.unwrap(), "0\n1\n1 0\n");
            let cut_away = producer_batch(2, 3);
            let cut_away = ProducerBatch::of(BatchHeader::parse(&cut_away).unwrap()).unwrap();
            assert_eq!(
                log.state.borrow().producers.check(&cut_away),
                Ok(SequenceCheck::Append),
                "a batch cut away is no duplicate"
            );
            let again = log.append(&producer_batch(2, 3), epoch(3)).await.unwrap();
            assert_eq!(again.base_offset, Offset(2));
            assert_eq!(
                log.leader_epochs(),
                [(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(2))]
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn truncating_below_the_log_start_empties_the_log_and_starts_it_there() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            fill(&log, 3, 0).await;
            let bases = log.segment_bases();
            log.delete_records(bases[2]).await.unwrap();
            assert_eq!(log.truncate_to(bases[1]).await.unwrap(), bases[1]);
            let offsets = log.offsets();
            assert_eq!(
                (offsets.log_start, offsets.high_watermark, offsets.log_end),
                (bases[1], bases[1], bases[1])
            );
            assert_eq!(log_files(dir.path()), [format!("{:020}.log", bases[1].0)]);
            assert!(log.leader_epochs().is_empty());
            let next = batch(1, 10, 0);
            assert_eq!(
                log.append(&next, EPOCH0).await.unwrap().base_offset,
                bases[1]
            );
            drop(log);
            let (log, report) = PartitionLog::open(dir.path(), small_config())
                .await
                .unwrap();
            assert_eq!(report.truncations(), 0, "{:?}", report.events);
            assert_eq!(log.log_start_offset(), bases[1]);
            assert_eq!(read_all(&log).await, as_stored(next, bases[1]));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn an_append_waiting_across_a_truncation_was_acknowledged_by_it() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let log = Rc::new(open_log(dir.path(), config).await);
            log.append(&batch(2, 10, 0), EPOCH0).await.unwrap();
            let (info, truncations) = log.buffer_append(&batch(3, 10, 0), EPOCH0).unwrap();
            assert_eq!(log.truncate_to(Offset(2)).await.unwrap(), Offset(2));
            assert_eq!(
                log.stats().syncs,
                2,
                "the truncation synced the pending batch"
            );
            log.wait_acknowledged(info.last_offset.plus(1), truncations)
                .await
                .unwrap();
            assert_eq!(log.log_end_offset(), Offset(2));
            log.close().await.unwrap();
        });
    }
}
