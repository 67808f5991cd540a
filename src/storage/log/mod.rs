//! A partition log: its segments in offset order behind one facade,
//! [`PartitionLog`], which is all that code outside storage uses.
//!
//! The work is split by job, each module adding its methods to the facade:
//! - `appender`: appends and group commit (one write and one fdatasync for every
//!   append waiting);
//! - `roll`: replacing a full or old active segment, and sealing the old one in
//!   the background;
//! - `reader`: reads of whole batches and lookups by timestamp;
//! - `housekeeping`: retention, DeleteRecords, checkpoints and producer-state
//!   replay;
//! - `truncate`: cutting the log back to an offset, for replication;
//! - `replica`: a follower's append of the batches its leader sent;
//! - `aborted`: the `.txnindex` files of aborted transactions;
//! - `clean`: compaction, one cleaner pass at a time;
//! - `state`: the state they share and the order its offsets keep.
//!
//! Locking: one task at a time writes (flushes, rolls, truncations, checkpoints and
//! deletions) under the flush lock; sealing a rolled segment holds the seal lock;
//! work that must see no write, roll or seal in progress takes both.

mod aborted;
mod appender;
mod clean;
mod housekeeping;
mod reader;
mod replica;
mod roll;
mod state;
mod truncate;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::sync::{Permit, Semaphore};

use crate::storage::checkpoint::{
    self, CLEANER_OFFSET_FILE, HIGH_WATERMARK_FILE, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
};
use crate::storage::config::{Durability, LogConfig};
use crate::storage::error::{LogError, io};
use crate::storage::leader_epoch::LeaderEpochCache;
use crate::storage::recovery::{self, RecoveryReport};
use crate::storage::segment::{Segment, SegmentSettings};
use crate::storage::wake_list::{Wait, WakeList};
use crate::types::{LeaderEpoch, Offset, TimestampMs};

pub use clean::{CleanStats, PassBudget};
pub use replica::ReplicatedAppend;
pub use state::LogOffsets;
use state::{LogState, Mark};

/// How to stamp a batch on append.
#[derive(Debug, Clone, Copy)]
pub struct AppendOptions {
    pub leader_epoch: LeaderEpoch,
    /// `Some(now)` when the topic uses LogAppendTime.
    pub log_append_time: Option<TimestampMs>,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub log_start_offset: Offset,
}

/// Counters of the work a log did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub writes: u64,
    pub syncs: u64,
    /// `appends` at the last write: the next write's group commit holds the
    /// appends since.
    pub appends_at_last_write: u64,
}

pub struct PartitionLog {
    dir: PathBuf,
    stats: Cell<LogStats>,
    config: RefCell<LogConfig>,
    state: RefCell<LogState>,
    /// One writer at a time: flushes, rolls, truncations, checkpoints and deletions.
    flush_lock: Semaphore,
    /// Appends waiting for their acknowledgement; woken whenever the flush lock is
    /// released. Bounded by the number of appends in flight.
    ack_waiters: WakeList,
    /// Held while a rolled segment is sealed in the background.
    seal_lock: Rc<Semaphore>,
    /// When the latest group commit's write and fdatasync completed, for the
    /// timelines of slow requests.
    last_flush: Cell<FlushTimes>,
}

/// When the latest group commit of a log completed its write and its fdatasync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushTimes {
    pub written: Option<Instant>,
    pub synced: Option<Instant>,
}

/// Holds the flush lock; releasing it wakes the appends waiting for an ack, so they
/// re-check their offset and one of them flushes what is still pending.
struct FlushGuard<'a> {
    _permit: Permit<'a>,
    log: &'a PartitionLog,
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.log.ack_waiters.wake_all();
    }
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        config.validate().map_err(LogError::Config)?;
        // glommio opens paths relative to no directory (EBADF): callers resolve
        // the data directory once, at start-up.
        if !dir.is_absolute() {
            return Err(LogError::Config(format!(
                "{}: a partition directory must be an absolute path",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir)?;
        crate::storage::device::probe_io_poll(dir).await?;
        let checkpointed_start =
            housekeeping::read_offset_checkpoint(dir, LOG_START_OFFSET_FILE).await?;
        let epochs = match checkpoint::read_optional(&dir.join(LEADER_EPOCH_FILE)).await? {
            Some(bytes) => checkpoint::decode_epochs(&bytes)
                .map_err(|e| LogError::Corrupt(format!("{LEADER_EPOCH_FILE}: {e}")))?,
            None => Vec::new(),
        };
        let recovered = recovery::recover(
            dir,
            &SegmentSettings::of(&config),
            checkpointed_start.unwrap_or(Offset::ZERO),
        )
        .await?;
        let segments: VecDeque<Segment> = recovered.segments.into();
        let active = segments.back().expect("recovery leaves an active segment");
        let end = Mark {
            offset: active.next_offset,
            position: active.size,
        };
        let first_base = segments.front().expect("at least one segment").base;
        let log_start = checkpointed_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(end.offset);
        let mut epochs = LeaderEpochCache::from_entries(epochs);
        // Epochs past the log end are forgotten; the checkpoint is rewritten by
        // `begin_epoch` or the next group commit, whichever comes first: an empty
        // partition drops its epoch here and gets the same one back when it opens
        // as leader, and then the file needs no rewrite at all.
        let epochs_dirty = epochs.truncate_from(end.offset);
        let mut state = LogState::opened(segments, log_start, end, epochs, epochs_dirty);
        // Only compacted logs have one: the others skip the lookup at start-up.
        if config.compaction.enabled
            && let Some(first_dirty) =
                housekeeping::read_offset_checkpoint(dir, CLEANER_OFFSET_FILE).await?
        {
            state.first_dirty = first_dirty.clamp(log_start, end.offset);
        }
        let violation = state.violation(config.durability);
        assert_eq!(violation, None, "{}: recovered log", dir.display());
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            stats: Cell::new(LogStats::default()),
            config: RefCell::new(config),
            state: RefCell::new(state),
            flush_lock: Semaphore::new(1),
            ack_waiters: WakeList::default(),
            seal_lock: Rc::new(Semaphore::new(1)),
            last_flush: Cell::new(FlushTimes::default()),
        };
        {
            let _permit = log.lock().await?;
            log.write_offset(RECOVERY_POINT_FILE, end.offset).await?;
            log.write_offset(LOG_START_OFFSET_FILE, log_start).await?;
        }
        log.load_producer_state().await?;
        Ok((log, recovered.report))
    }

    /// Flushes and syncs everything, writes the active segment's indexes and every
    /// checkpoint, and refuses further appends. The next open then only checks the
    /// data after the last index entry.
    pub async fn close(&self) -> Result<(), LogError> {
        let (_guard, _sealed) = self.lock_all().await?;
        self.flush_locked(true).await?;
        self.state.borrow_mut().closed = true;
        let filler = self
            .state
            .borrow()
            .active()
            .writer
            .as_ref()
            .map(|writer| writer.zero_filler.clone());
        if let Some(filler) = filler {
            filler.stop().await;
        }
        let (file, size, index_files, end, log_start) = {
            let mut state = self.state.borrow_mut();
            state.active_mut().indexes.finish();
            let active = state.active();
            (
                Rc::clone(&active.file),
                active.size,
                active.index_files(),
                state.log_end(),
                state.log_start,
            )
        };
        file.truncate(size).await.map_err(io)?;
        file.fdatasync().await.map_err(io)?;
        index_files.write(&self.dir).await?;
        self.write_offset(HIGH_WATERMARK_FILE, self.high_watermark())
            .await?;
        self.write_offset(LOG_START_OFFSET_FILE, log_start).await?;
        // Every index file before the snapshot: replay trusts them up to it.
        self.write_aborted_indexes_locked().await?;
        self.write_producer_snapshot(end).await?;
        self.write_offset(RECOVERY_POINT_FILE, end).await
    }

    pub fn last_flush(&self) -> FlushTimes {
        self.last_flush.get()
    }

    pub fn stats(&self) -> LogStats {
        self.stats.get()
    }

    fn count(&self, update: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A copy of the current settings.
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    /// Changes the settings a topic config change can reach (retention, segment
    /// size and age, index interval); the durability policy stays as opened.
    pub fn update_config(&self, mut config: LogConfig) -> Result<(), LogError> {
        config.validate().map_err(LogError::Config)?;
        let mut current = self.config.borrow_mut();
        config.durability = current.durability;
        *current = config;
        Ok(())
    }

    /// Offset the next appended batch gets (LEO), pending batches included.
    pub fn log_end_offset(&self) -> Offset {
        self.state.borrow().log_end()
    }

    /// The offset up to which consumers may read: the readable end, lowered to
    /// the bound [`PartitionLog::set_high_watermark_bound`] set, if any.
    pub fn high_watermark(&self) -> Offset {
        self.state.borrow().high_watermark(self.durability())
    }

    /// The end of what the durability policy acknowledged (the durable end under
    /// fsync, the written end under interval), whatever the high watermark
    /// bound: what a follower may replicate, and the leader's own contribution
    /// to the high watermark.
    pub fn readable_end(&self) -> Offset {
        self.readable().offset
    }

    /// Bounds the high watermark from now on: it becomes min(readable end,
    /// `bound`) (kept at or above the log start); `None` lifts the bound (a
    /// single replica, or a leader alone in its ISR). The bound may go down, as
    /// a follower's does when it truncates. Transactions whose marker the new
    /// high watermark passes are forgotten as decided, as a group commit does.
    pub fn set_high_watermark_bound(&self, bound: Option<Offset>) {
        let durability = self.durability();
        let mut state = self.state.borrow_mut();
        state.high_watermark_bound = bound;
        let high_watermark = state.high_watermark(durability);
        state.producers.forget_decided(high_watermark);
        drop(state);
        self.debug_check();
    }

    pub fn log_start_offset(&self) -> Offset {
        self.state.borrow().log_start
    }

    /// The offset below which every transaction is durably decided: the first
    /// offset of the earliest transaction still open or whose marker is not yet
    /// readable, else the high watermark.
    pub fn last_stable_offset(&self) -> Offset {
        let high_watermark = self.high_watermark();
        self.state
            .borrow()
            .producers
            .last_stable_offset(high_watermark)
    }

    /// Open transactions on the partition.
    pub fn open_transactions(&self) -> usize {
        self.state.borrow().producers.open_transactions()
    }

    /// Whether `producer_id` has an open transaction here.
    pub fn has_open_transaction(&self, producer_id: crate::types::ProducerId) -> bool {
        self.state
            .borrow()
            .producers
            .has_open_transaction(producer_id)
    }

    /// The producers the partition remembers (DescribeProducers).
    pub fn producers(&self) -> Vec<crate::storage::producer_state::ProducerInfo> {
        self.state.borrow().producers.describe()
    }

    /// The log's offsets now: log start, high watermark, durable, written, log end.
    pub fn offsets(&self) -> LogOffsets {
        self.state.borrow().offsets(self.durability())
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<Offset> {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|s| s.base)
            .collect()
    }

    /// Bytes of all segments, pending batches included.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.size).sum()
    }

    pub fn leader_epochs(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.state.borrow().epochs.entries().to_vec()
    }

    /// The newest leader epoch with data (or begun) in the log.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.state.borrow().epochs.latest()
    }

    /// The offset leader epoch `epoch` starts at, if the cache has that epoch.
    pub fn epoch_start_offset(&self, epoch: LeaderEpoch) -> Option<Offset> {
        self.state.borrow().epochs.start_offset(epoch)
    }

    /// The end offset of leader epoch `epoch` and the epoch found, from the
    /// leader epoch cache (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let state = self.state.borrow();
        state.epochs.end_offset_for(epoch, state.log_end())
    }

    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// The largest timestamp in the log and the batch holding it (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(TimestampMs, Offset)> {
        let state = self.state.borrow();
        state
            .segments
            .iter()
            .filter_map(|s| s.indexes.max_timestamp)
            .max_by_key(|&(ts, offset)| (ts, std::cmp::Reverse(offset)))
    }

    /// Time since the active segment took its first append (for tests and metrics).
    pub fn active_segment_age(&self) -> Option<Duration> {
        let state = self.state.borrow();
        state
            .active()
            .writer
            .as_ref()
            .and_then(|w| w.first_append_at)
            .map(|at: Instant| at.elapsed())
    }

    fn durability(&self) -> Durability {
        self.config.borrow().durability
    }

    fn readable(&self) -> Mark {
        self.state.borrow().readable(self.durability())
    }

    /// Checks the log's invariants after a change on a hot path (debug builds).
    fn debug_check(&self) {
        self.state.borrow().debug_check(self.durability());
    }

    /// Checks the log's invariants after a change off the hot path.
    fn check(&self) {
        let violation = self.state.borrow().violation(self.durability());
        assert_eq!(violation, None, "{}", self.dir.display());
    }

    /// Takes the flush lock. Every waiter is woken at each release and tries again
    /// (glommio's semaphore lets a running task take a free permit ahead of queued
    /// waiters, so queueing on it would starve).
    async fn lock(&self) -> Result<FlushGuard<'_>, LogError> {
        loop {
            if let Some(guard) = self.try_lock() {
                return Ok(guard);
            }
            self.state.borrow().check_usable_or_closing()?;
            self.next_release().await;
        }
    }

    fn try_lock(&self) -> Option<FlushGuard<'_>> {
        self.flush_lock
            .try_acquire_permit(1)
            .ok()
            .map(|permit| FlushGuard {
                _permit: permit,
                log: self,
            })
    }

    fn next_release(&self) -> Wait<'_> {
        self.ack_waiters.wait()
    }

    /// The flush lock and then the seal lock: no write, roll or seal is in progress
    /// while both are held (a roll takes the seal lock before it lets go of the
    /// flush lock).
    async fn lock_all(&self) -> Result<(FlushGuard<'_>, Permit<'_>), LogError> {
        let guard = self.lock().await?;
        let sealed = self
            .seal_lock
            .acquire_permit(1)
            .await
            .map_err(|e| LogError::Offline(format!("seal lock closed: {e}")))?;
        Ok((guard, sealed))
    }

    /// Takes the log offline after a failed write or sync: nothing about the
    /// file's state can be trusted after that.
    fn fail(&self, error: &LogError) {
        tracing::error!(dir = %self.dir.display(), %error, "log write failed; taking the log offline");
        let mut state = self.state.borrow_mut();
        if state.failed.is_none() {
            state.failed = Some(error.to_string());
        }
    }
}
