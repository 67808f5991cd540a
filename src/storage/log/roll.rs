//! Rolling: replacing the active segment when it is full or old, and sealing the
//! old one in the background.
//!
//! A roll writes and syncs what is pending, creates the next segment at the log
//! end and makes it active; appends to it go on while the old segment is sealed
//! (its zero-filled space cut off, its size synced, its indexes written, and the
//! recovery point moved past it).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::DmaFile;

use crate::storage::checkpoint::{self, RECOVERY_POINT_FILE};
use crate::storage::config::LogConfig;
use crate::storage::error::{LogError, io};
use crate::storage::segment::{IndexFiles, Segment, SegmentSettings};
use crate::storage::zero_fill::ZeroFiller;
use crate::types::Offset;

use super::PartitionLog;
use super::state::{LogState, Mark};

/// What deciding on a roll needs to know of the active segment.
#[derive(Debug, Clone, Copy)]
struct ActiveSegment {
    base: Offset,
    next_offset: Offset,
    size: u64,
    /// Time since its first append; `None` while it has none.
    age: Option<Duration>,
}

/// Whether a batch of `len` bytes spanning `last_offset_delta` offsets must go to
/// a new segment: the active one would pass `segment.bytes`, is older than
/// `segment.ms` (or, on a compacted log, than `max.compaction.lag.ms`, so its
/// records can be cleaned in time, as KIP-354 has it), or the batch's offsets would leave the index's 32-bit range
/// relative to the base. An empty segment never rolls.
fn roll_due(active: &ActiveSegment, config: &LogConfig, len: u64, last_offset_delta: i64) -> bool {
    if active.size == 0 {
        return false;
    }
    let too_big = active.size + len > config.segment_bytes;
    let max_age = match config.compaction.max_compaction_lag {
        Some(lag) if config.compaction.enabled => config.segment_ms.min(lag),
        _ => config.segment_ms,
    };
    let too_old = active.age.is_some_and(|age| age >= max_age);
    let relative_end = active.next_offset.0 + last_offset_delta - active.base.0;
    too_big || too_old || relative_end > i64::from(i32::MAX)
}

/// What is left to do for a segment once it stops being active.
struct SealJob {
    filler: Option<ZeroFiller>,
    dir: PathBuf,
    file: Rc<DmaFile>,
    size: u64,
    index_files: IndexFiles,
    next_base: Offset,
}

impl SealJob {
    /// Drops the zero-filled space, makes the size durable, writes the indexes and
    /// moves the recovery point past the segment.
    async fn run(self) -> Result<(), LogError> {
        let started = Instant::now();
        if let Some(filler) = &self.filler {
            filler.stop().await;
        }
        self.file.truncate(self.size).await.map_err(io)?;
        tracing::debug!(elapsed = ?started.elapsed(), "seal: truncated");
        self.file.fdatasync().await.map_err(io)?;
        tracing::debug!(elapsed = ?started.elapsed(), "seal: synced");
        self.index_files.write(&self.dir).await?;
        checkpoint::write_atomically(
            &self.dir,
            RECOVERY_POINT_FILE,
            checkpoint::encode_offset(self.next_base),
        )
        .await
    }
}

impl PartitionLog {
    pub(super) fn needs_roll(&self, state: &LogState, len: u64, last_offset_delta: i64) -> bool {
        let segment = state.active();
        let active = ActiveSegment {
            base: segment.base,
            next_offset: segment.next_offset,
            size: segment.size,
            age: segment
                .writer
                .as_ref()
                .and_then(|w| w.first_append_at)
                .map(|at| at.elapsed()),
        };
        roll_due(&active, &self.config.borrow(), len, last_offset_delta)
    }

    /// Rolls if a batch of `len` bytes and `last_offset_delta` still needs it once
    /// the flush lock is held.
    pub(super) async fn roll(&self, len: u64, last_offset_delta: i64) -> Result<(), LogError> {
        let _guard = self.lock().await?;
        {
            let state = self.state.borrow();
            state.check_usable()?;
            if !self.needs_roll(&state, len, last_offset_delta) {
                return Ok(());
            }
        }
        // Taken before the flush lock is released, so `close` (flush lock, then seal
        // lock) never misses a seal.
        let seal_permit = Rc::clone(&self.seal_lock)
            .acquire_static_permit(1)
            .await
            .map_err(|e| LogError::Offline(format!("seal lock closed: {e}")))?;
        self.state.borrow_mut().paused = true;
        let result = self.roll_locked().await;
        self.state.borrow_mut().paused = false;
        match result {
            Ok(job) => {
                // Sealing the old segment (truncate, fsync, index files) takes long;
                // appends to the new segment go on meanwhile.
                glommio::spawn_local(async move {
                    let _permit = seal_permit;
                    let dir = job.dir.clone();
                    if let Err(error) = job.run().await {
                        tracing::error!(dir = %dir.display(), %error, "sealing a segment failed; its index is rebuilt on restart");
                    }
                })
                .detach();
                Ok(())
            }
            Err(error) => {
                self.fail(&error);
                Err(error)
            }
        }
    }

    async fn roll_locked(&self) -> Result<SealJob, LogError> {
        let started = Instant::now();
        self.write_and_sync(true).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "roll: flushed");
        let (old_base, new_base, step) = {
            let state = self.state.borrow();
            let active = state.active();
            let step = active
                .writer
                .as_ref()
                .map_or(0, |writer| writer.zero_filler.pace().step());
            (active.base, active.next_offset, step)
        };
        assert!(
            new_base > old_base,
            "offsets increase across a roll: an empty segment never rolls"
        );
        let settings = SegmentSettings::of(&self.config()).with_fill_step(step);
        let segment = Segment::create(&self.dir, new_base, &settings).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "roll: created the new segment");
        let job = {
            let mut state = self.state.borrow_mut();
            let old = state.active_mut();
            let filler = old.writer.take().map(|writer| writer.zero_filler);
            old.indexes.finish();
            let job = SealJob {
                filler,
                dir: self.dir.clone(),
                file: Rc::clone(&old.file),
                size: old.size,
                index_files: old.index_files(),
                next_base: new_base,
            };
            state.segments.push_back(segment);
            state.written = Mark::start_of(new_base);
            state.durable = Mark::start_of(new_base);
            job
        };
        self.check();
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::offset_index::OffsetIndex;
    use crate::storage::test_support::{EPOCH0, batch, open_log, run, small_config};
    use crate::storage::zero_fill::MIN_STEP;

    fn active(size: u64, next_offset: i64, age_ms: Option<u64>) -> ActiveSegment {
        ActiveSegment {
            base: Offset(100),
            next_offset: Offset(next_offset),
            size,
            age: age_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn rolls_on_size_age_and_relative_offset_range_but_never_when_empty() {
        let config = LogConfig {
            segment_bytes: 1000,
            segment_ms: Duration::from_millis(50),
            ..LogConfig::default()
        };
        assert!(!roll_due(&active(0, 100, None), &config, 5000, 0));
        assert!(!roll_due(&active(900, 110, Some(10)), &config, 100, 0));
        assert!(roll_due(&active(901, 110, Some(10)), &config, 100, 0));
        assert!(roll_due(&active(10, 110, Some(50)), &config, 1, 0));
        let near_limit = 100 + i64::from(i32::MAX) - 5;
        assert!(!roll_due(&active(10, near_limit, Some(1)), &config, 1, 5));
        assert!(roll_due(&active(10, near_limit, Some(1)), &config, 1, 6));
    }

    #[test]
    fn a_roll_continues_at_the_log_end_and_seals_the_old_segment() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            while log.segment_count() == 1 {
                log.append(&batch(5, 300, 0), EPOCH0).await.unwrap();
            }
            let bases = log.segment_bases();
            // The seal runs under the seal lock: once both locks are free it is done.
            drop(log.lock_all().await.unwrap());
            let (old_size, old_next) = {
                let state = log.state.borrow();
                (state.segments[0].size, state.segments[0].next_offset)
            };
            assert_eq!(bases[1], old_next, "the new segment starts at the old end");
            let path = |suffix: &str| dir.path().join(format!("{:020}.{suffix}", bases[0].0));
            assert_eq!(
                std::fs::metadata(path("log")).unwrap().len(),
                old_size,
                "the zero-filled space is cut off"
            );
            let index =
                OffsetIndex::decode(bases[0], &std::fs::read(path("index")).unwrap(), old_size);
            assert!(index.unwrap().len() > 10);
            assert!(path("timeindex").exists());
            let recovery_point = std::fs::read(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
            assert_eq!(checkpoint::decode_offset(&recovery_point), Ok(bases[1]));
            let offsets = log.offsets();
            assert_eq!(offsets.durable, offsets.log_end);
            assert_eq!(offsets.log_end, bases[1].plus(5), "the batch that rolled");
            log.close().await.unwrap();
        });
    }

    #[test]
    fn the_next_segment_keeps_the_zero_fill_pace() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                segment_bytes: 4 << 20,
                zero_fill_step_bytes: 4 << 20,
                ..small_config()
            };
            let log = open_log(dir.path(), config).await;
            let step = || {
                let state = log.state.borrow();
                let writer = state.active().writer.as_ref().unwrap();
                writer.zero_filler.pace().step()
            };
            let mut last_step = MIN_STEP;
            while log.segment_count() == 1 {
                last_step = step();
                log.append(&batch(10, 3000, 0), EPOCH0).await.unwrap();
            }
            assert!(
                last_step > MIN_STEP,
                "fast appends grow the step: {last_step}"
            );
            assert_eq!(step(), last_step);
            log.close().await.unwrap();
        });
    }
}
