//! A partition log: ordered segments, offsets, group commit, reads, timestamp
//! lookups, the log start offset, retention and checkpoints.
//!
//! Group commit: an append copies its batch into the active segment's write
//! buffer, then waits until the durable (or written) offset passes it. Whoever
//! takes the flush lock writes and syncs everything pending at that moment, so one
//! write and one fdatasync acknowledge every append waiting on it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::{Permit, Semaphore};

use crate::record::batch::{BatchHeader, RecordBatch, RecordBatchMut};
use crate::record::records::{RecordIter, records_section};
use crate::record::{Compression, TimestampType};
use crate::storage::checkpoint::{
    self, HIGH_WATERMARK_FILE, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::storage::config::{Durability, LogConfig};
use crate::storage::error::{LogError, io};
use crate::storage::leader_epoch::LeaderEpochCache;
use crate::storage::producer_state::{ProducerState, SNAPSHOT_FILE, SequenceCheck};
use crate::storage::read::{ReadChunk, ReadOutcome};
use crate::storage::recovery::{self, RecoveryReport};
use crate::storage::retention::{SegmentStats, segments_to_delete};
use crate::storage::scan::{HeaderScanner, SegmentSource};
use crate::storage::segment::{Segment, SegmentSettings};
use crate::storage::summary::{BatchSummary, ProducerBatch};
use crate::storage::wake_list::{Wait, WakeList};
use crate::storage::write_buffer::align_up;
use crate::storage::zero_fill::ZeroFiller;
use crate::types::{LeaderEpoch, Offset, TimestampMs};

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

/// A point in the active segment: the offset after some batch and its end position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    offset: Offset,
    position: u64,
}

struct LogState {
    /// In offset order; the back one is active.
    segments: VecDeque<Segment>,
    log_start: Offset,
    /// End of the data written to the active segment file.
    written: Mark,
    /// End of the data fdatasynced.
    durable: Mark,
    unsynced_bytes: u64,
    /// Set while the active segment is being replaced; appends wait.
    rolling: bool,
    /// Set after a failed write or sync: the log refuses all work.
    failed: Option<String>,
    closed: bool,
    epochs: LeaderEpochCache,
    epochs_dirty: bool,
    producers: ProducerState,
}

impl LogState {
    fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("a log always has an active segment")
    }

    fn check_usable(&self) -> Result<(), LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Offline(reason.clone()));
        }
        if self.closed {
            return Err(LogError::Offline("the log is closed".into()));
        }
        Ok(())
    }

    /// Failed logs refuse waiters; closed ones still let them finish.
    fn check_usable_or_closing(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(reason) => Err(LogError::Offline(reason.clone())),
            None => Ok(()),
        }
    }

    fn log_end(&self) -> Offset {
        self.active().next_offset
    }
}

/// What an append must do before it can copy its batch in.
enum AppendGate {
    Ready,
    Roll,
    WaitForRoll,
    Backpressure,
}

/// Counters of the work a log did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub writes: u64,
    pub syncs: u64,
}

pub struct PartitionLog {
    dir: PathBuf,
    stats: std::cell::Cell<LogStats>,
    config: RefCell<LogConfig>,
    state: RefCell<LogState>,
    /// One writer at a time: flushes, rolls, checkpoints and deletions.
    flush_lock: Semaphore,
    /// Appends waiting for their acknowledgement; woken whenever the flush lock is
    /// released. Bounded by the number of appends in flight.
    ack_waiters: WakeList,
    /// Held while a rolled segment is sealed in the background.
    seal_lock: Rc<Semaphore>,
}

/// What is left to do for a segment once it stops being active.
struct SealJob {
    filler: Option<ZeroFiller>,
    dir: PathBuf,
    file: Rc<glommio::io::DmaFile>,
    size: u64,
    index_name: String,
    time_index_name: String,
    index_bytes: Vec<u8>,
    time_index_bytes: Vec<u8>,
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
        checkpoint::write_atomically(&self.dir, &self.index_name, self.index_bytes).await?;
        checkpoint::write_atomically(&self.dir, &self.time_index_name, self.time_index_bytes)
            .await?;
        checkpoint::write_atomically(
            &self.dir,
            RECOVERY_POINT_FILE,
            checkpoint::encode_offset(self.next_base),
        )
        .await
    }
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
        let checkpointed_start = read_offset_checkpoint(dir, LOG_START_OFFSET_FILE).await?;
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
        let epochs_dirty = epochs.truncate_from(end.offset);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            stats: std::cell::Cell::new(LogStats::default()),
            config: RefCell::new(config),
            state: RefCell::new(LogState {
                segments,
                log_start,
                written: end,
                durable: end,
                unsynced_bytes: 0,
                rolling: false,
                failed: None,
                closed: false,
                epochs,
                epochs_dirty,
                producers: ProducerState::default(),
            }),
            flush_lock: Semaphore::new(1),
            ack_waiters: WakeList::default(),
            seal_lock: Rc::new(Semaphore::new(1)),
        };
        {
            let _permit = log.lock().await?;
            if epochs_dirty {
                log.write_epochs().await?;
            }
            log.write_offset(RECOVERY_POINT_FILE, end.offset).await?;
            log.write_offset(LOG_START_OFFSET_FILE, log_start).await?;
        }
        log.load_producer_state().await?;
        Ok((log, recovered.report))
    }

    pub fn stats(&self) -> LogStats {
        self.stats.get()
    }

    fn count(&self, update: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    /// Loads the producer snapshot and replays the batches after it (all of the log
    /// if there is no usable snapshot).
    async fn load_producer_state(&self) -> Result<(), LogError> {
        let snapshot = checkpoint::read_optional(&self.dir.join(SNAPSHOT_FILE)).await?;
        let log_end = self.log_end_offset();
        let (mut producers, mut next) = match snapshot.map(|bytes| ProducerState::decode(&bytes)) {
            Some(Ok((state, up_to))) if up_to <= log_end => (state, up_to),
            Some(Err(error)) => {
                tracing::warn!(dir = %self.dir.display(), %error, "producer snapshot unreadable; rebuilding from the log");
                (ProducerState::default(), Offset::ZERO)
            }
            _ => (ProducerState::default(), Offset::ZERO),
        };
        next = next.max(self.log_start_offset());
        let mut after_base = None;
        let segments = self.segment_count();
        for _ in 0..=segments {
            if next >= log_end {
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
                next = summary.last_offset.plus(1);
            }
            after_base = Some(view.base);
        }
        self.state.borrow_mut().producers = producers;
        Ok(())
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

    /// The offset up to which data is acknowledged and readable.
    pub fn high_watermark(&self) -> Offset {
        self.readable().offset
    }

    pub fn log_start_offset(&self) -> Offset {
        self.state.borrow().log_start
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

    fn readable(&self) -> Mark {
        let state = self.state.borrow();
        match self.config.borrow().durability {
            Durability::Fsync => state.durable,
            Durability::Interval { .. } => state.written,
        }
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

    /// Appends one validated batch: assigns its offsets (and leader epoch, and
    /// LogAppendTime if asked) in place, and returns once the configured
    /// durability policy acknowledges it.
    pub async fn append(
        &self,
        batch: &mut [u8],
        options: AppendOptions,
    ) -> Result<AppendInfo, LogError> {
        let header = BatchHeader::parse(batch)
            .ok_or(crate::record::BatchError::TooShort { len: batch.len() })?;
        crate::record::validate::check_frame(header, batch.len())?;
        let last_offset_delta = i64::from(header.last_offset_delta.get());
        let segment_bytes = self.config.borrow().segment_bytes;
        if batch.len() as u64 > segment_bytes {
            return Err(LogError::BatchTooLarge {
                size: batch.len(),
                segment_bytes,
            });
        }
        const MAX_GATE_ROUNDS: usize = 1024;
        let mut ready = false;
        for _ in 0..MAX_GATE_ROUNDS {
            match self.append_gate(batch.len() as u64, last_offset_delta)? {
                AppendGate::Ready => {
                    ready = true;
                    break;
                }
                AppendGate::Roll => self.roll(batch.len() as u64, last_offset_delta).await?,
                AppendGate::WaitForRoll => self.next_release().await,
                AppendGate::Backpressure => self.flush(false).await?,
            }
        }
        if !ready {
            return Err(LogError::Offline(
                "append could not get room in the log".into(),
            ));
        }
        let info = self.buffer_append(batch, options)?;
        self.count(|s| s.appends += 1);
        self.wait_acknowledged(info.last_offset.plus(1)).await?;
        Ok(info)
    }

    fn append_gate(&self, len: u64, last_offset_delta: i64) -> Result<AppendGate, LogError> {
        let state = self.state.borrow();
        state.check_usable()?;
        if state.rolling {
            return Ok(AppendGate::WaitForRoll);
        }
        if self.needs_roll(&state, len, last_offset_delta) {
            return Ok(AppendGate::Roll);
        }
        let active = state.active();
        let pending = active.writer.as_ref().map_or(0, |w| w.buffer.pending());
        if pending > 0 && pending + len as usize > self.config.borrow().max_pending_bytes {
            return Ok(AppendGate::Backpressure);
        }
        Ok(AppendGate::Ready)
    }

    fn needs_roll(&self, state: &LogState, len: u64, last_offset_delta: i64) -> bool {
        let active = state.active();
        if active.is_empty() {
            return false;
        }
        let config = self.config.borrow();
        let too_big = active.size + len > config.segment_bytes;
        let too_old = active
            .writer
            .as_ref()
            .and_then(|w| w.first_append_at)
            .is_some_and(|at| at.elapsed() >= config.segment_ms);
        let relative_end = active.next_offset.0 + last_offset_delta - active.base.0;
        too_big || too_old || relative_end > i64::from(i32::MAX)
    }

    /// Checks the producer's sequence, then assigns offsets and copies the batch
    /// into the write buffer. A retried batch is not copied again: its original
    /// offsets come back.
    fn buffer_append(
        &self,
        batch: &mut [u8],
        options: AppendOptions,
    ) -> Result<AppendInfo, LogError> {
        let mut state = self.state.borrow_mut();
        let producer = ProducerBatch::of(BatchHeader::parse(batch).expect("validated batch"));
        if let Some(producer) = &producer
            && let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = state.producers.check(producer)?
        {
            return Ok(AppendInfo {
                base_offset,
                last_offset,
                log_start_offset: state.log_start,
            });
        }
        let base_offset = state.log_end();
        let mut view = RecordBatchMut::new_unchecked(batch);
        view.assign_offset_and_epoch(base_offset, options.leader_epoch);
        if let Some(now) = options.log_append_time {
            view.assign_log_append_time(now);
        }
        let last_offset = view.header().last_offset();
        if state.epochs.assign(options.leader_epoch, base_offset) {
            state.epochs_dirty = true;
        }
        state.active_mut().append(batch);
        if let Some(producer) = &producer {
            state.producers.record(producer, base_offset, last_offset);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_start_offset: state.log_start,
        })
    }

    /// Waits until `target` is acknowledged by the durability policy. If nobody is
    /// flushing, this append flushes everything pending (its own batch and every
    /// other append's); otherwise it waits for the flush in progress to finish.
    async fn wait_acknowledged(&self, target: Offset) -> Result<(), LogError> {
        loop {
            if self.is_acknowledged(target)? {
                return Ok(());
            }
            match self.try_lock() {
                Some(_guard) => self.flush_locked(false).await?,
                None => self.next_release().await,
            }
        }
    }

    fn is_acknowledged(&self, target: Offset) -> Result<bool, LogError> {
        let state = self.state.borrow();
        if let Some(reason) = &state.failed {
            return Err(LogError::Offline(reason.clone()));
        }
        let acknowledged = match self.config.borrow().durability {
            Durability::Fsync => state.durable.offset,
            Durability::Interval { .. } => state.written.offset,
        };
        Ok(acknowledged >= target)
    }

    /// Writes everything pending; with `sync`, fdatasyncs it too whatever the policy.
    pub async fn flush(&self, sync: bool) -> Result<(), LogError> {
        let _permit = self.lock().await?;
        self.flush_locked(sync).await
    }

    async fn flush_locked(&self, force_sync: bool) -> Result<(), LogError> {
        self.state.borrow().check_usable()?;
        let result = self.write_and_sync(force_sync).await;
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    fn fail(&self, error: &LogError) {
        tracing::error!(dir = %self.dir.display(), %error, "log write failed; taking the log offline");
        let mut state = self.state.borrow_mut();
        if state.failed.is_none() {
            state.failed = Some(error.to_string());
        }
    }

    async fn write_and_sync(&self, force_sync: bool) -> Result<(), LogError> {
        let taken = {
            let mut state = self.state.borrow_mut();
            let active = state.active_mut();
            let file = Rc::clone(&active.file);
            let filler = active.writer().zero_filler.clone();
            active
                .take_write()
                .map(|(write, next_offset)| (file, filler, write, next_offset))
        };
        if let Some((file, filler, write, next_offset)) = taken {
            let data_end = align_up(write.end);
            filler.before_write(data_end).await;
            let written = file
                .write_rc_at(Rc::clone(&write.buf), write.start)
                .await
                .map_err(io)?;
            check_write(written, write.buf.len(), write.start)?;
            self.count(|s| s.writes += 1);
            filler.maybe_start(data_end);
            let mut state = self.state.borrow_mut();
            state.written = Mark {
                offset: next_offset,
                position: write.end,
            };
            state.unsynced_bytes += write.end - write.new_from;
            state.active_mut().writer().tail_cache.insert(&write);
        }
        let sync_target = {
            let state = self.state.borrow();
            let due = match self.config.borrow().durability {
                Durability::Fsync => true,
                Durability::Interval { bytes, .. } => force_sync || state.unsynced_bytes >= bytes,
            };
            (due && state.written.offset > state.durable.offset).then_some(state.written)
        };
        if let Some(target) = sync_target {
            let file = Rc::clone(&self.state.borrow().active().file);
            file.fdatasync().await.map_err(io)?;
            self.count(|s| s.syncs += 1);
            let mut state = self.state.borrow_mut();
            state.durable = target;
            state.unsynced_bytes = 0;
        }
        if self.state.borrow().epochs_dirty {
            self.write_epochs().await?;
        }
        Ok(())
    }

    async fn roll(&self, len: u64, last_offset_delta: i64) -> Result<(), LogError> {
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
        self.state.borrow_mut().rolling = true;
        let result = self.roll_locked().await;
        self.state.borrow_mut().rolling = false;
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
        let new_base = self.log_end_offset();
        let step = self
            .state
            .borrow()
            .active()
            .writer
            .as_ref()
            .map_or(0, |writer| writer.zero_filler.pace().step());
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
                index_name: name_of(&old.index_path()),
                time_index_name: name_of(&old.time_index_path()),
                index_bytes: old.indexes.offsets.encode(),
                time_index_bytes: old.indexes.times.encode(),
                next_base: new_base,
            };
            state.segments.push_back(segment);
            let start = Mark {
                offset: new_base,
                position: 0,
            };
            state.written = start;
            state.durable = start;
            state.rolling = false;
            job
        };
        Ok(job)
    }

    /// Reads whole batches from `start`, up to `max_bytes` (at least one batch when
    /// `min_one_batch`, as Kafka does for the first partition of a fetch), never past
    /// the high watermark.
    pub async fn read(
        &self,
        start: Offset,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadOutcome, LogError> {
        let high_watermark = self.high_watermark();
        let (log_start, log_end) = {
            let state = self.state.borrow();
            (state.log_start, state.log_end())
        };
        let mut outcome = ReadOutcome {
            chunks: Vec::new(),
            bytes: 0,
            next_offset: start,
            high_watermark,
            log_start_offset: log_start,
        };
        if start < log_start || start > log_end {
            return Err(LogError::OffsetOutOfRange {
                requested: start,
                log_start,
                log_end,
            });
        }
        let mut after_base = None;
        const MAX_SEGMENTS_PER_READ: usize = 64;
        for _ in 0..MAX_SEGMENTS_PER_READ {
            if start >= high_watermark {
                break;
            }
            let Some(view) = self.segment_view(start, after_base) else {
                break;
            };
            let found =
                read_segment(&view, start, high_watermark, max_bytes, min_one_batch).await?;
            if let Some((from, to, next_offset)) = found {
                outcome.chunks = match view.source.tail.chunks(from, to) {
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
                break;
            }
            after_base = Some(view.base);
        }
        Ok(outcome)
    }

    /// The segment to read `start` from (or the first one after `after_base`).
    fn segment_view(&self, start: Offset, after_base: Option<Offset>) -> Option<SegmentView> {
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
        if offset > high_watermark || offset.0 < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start,
                log_end,
            });
        }
        if offset <= log_start {
            return Ok(log_start);
        }
        self.state.borrow_mut().log_start = offset;
        self.write_offset(LOG_START_OFFSET_FILE, offset).await?;
        self.delete_oldest_locked(
            TimestampMs::now(),
            &LogConfig {
                retention_ms: None,
                retention_bytes: None,
                ..self.config()
            },
        )
        .await?;
        Ok(offset)
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
                .active()
                .base
                .min(state.segments.front().expect("active remains").base);
            let new_start = state.log_start.max(first_base);
            let moved = new_start != state.log_start;
            state.log_start = new_start;
            (removed, moved.then_some(new_start))
        };
        if removed.is_empty() {
            return Ok(0);
        }
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

    /// Flushes and syncs everything, writes the active segment's indexes and every
    /// checkpoint, and refuses further appends. The next open then only checks the
    /// data after the last index entry.
    pub async fn close(&self) -> Result<(), LogError> {
        let (_guard, _sealed) = self.lock_all().await?;
        self.flush_locked(true).await?;
        self.state.borrow_mut().closed = true;
        let filler = self
            .state
            .borrow_mut()
            .active_mut()
            .writer
            .as_ref()
            .map(|writer| writer.zero_filler.clone());
        if let Some(filler) = filler {
            filler.stop().await;
        }
        let (file, size, index_path, time_path, index_bytes, time_bytes, end, log_start) = {
            let state = self.state.borrow();
            let active = state.active();
            let mut indexes = active.indexes.clone();
            indexes.finish();
            (
                Rc::clone(&active.file),
                active.size,
                active.index_path(),
                active.time_index_path(),
                indexes.offsets.encode(),
                indexes.times.encode(),
                state.log_end(),
                state.log_start,
            )
        };
        file.truncate(size).await.map_err(io)?;
        file.fdatasync().await.map_err(io)?;
        checkpoint::write_atomically(&self.dir, &name_of(&index_path), index_bytes).await?;
        checkpoint::write_atomically(&self.dir, &name_of(&time_path), time_bytes).await?;
        self.write_offset(HIGH_WATERMARK_FILE, self.high_watermark())
            .await?;
        self.write_offset(LOG_START_OFFSET_FILE, log_start).await?;
        let snapshot = self.state.borrow().producers.encode(end);
        checkpoint::write_atomically(&self.dir, SNAPSHOT_FILE, snapshot).await?;
        self.write_offset(RECOVERY_POINT_FILE, end).await
    }

    async fn write_offset(&self, name: &str, offset: Offset) -> Result<(), LogError> {
        checkpoint::write_atomically(&self.dir, name, checkpoint::encode_offset(offset)).await
    }

    async fn write_epochs(&self) -> Result<(), LogError> {
        let bytes = {
            let mut state = self.state.borrow_mut();
            state.epochs_dirty = false;
            checkpoint::encode_epochs(state.epochs.entries())
        };
        checkpoint::write_atomically(&self.dir, LEADER_EPOCH_FILE, bytes).await
    }

    /// Time since the active segment took its first append (for tests and metrics).
    pub fn active_segment_age(&self) -> Option<std::time::Duration> {
        let state = self.state.borrow();
        state
            .active()
            .writer
            .as_ref()
            .and_then(|w| w.first_append_at)
            .map(|at: Instant| at.elapsed())
    }
}

/// A segment detached for a read.
struct SegmentView {
    base: Offset,
    source: SegmentSource,
    from: u64,
    end: u64,
}

/// Finds the run of whole batches to return from one segment:
/// `(from position, to position, next offset)`, or `None` if the segment holds
/// no batch at or after `start`.
async fn read_segment(
    view: &SegmentView,
    start: Offset,
    high_watermark: Offset,
    max_bytes: u64,
    min_one_batch: bool,
) -> Result<Option<(u64, u64, Offset)>, LogError> {
    let mut scanner = HeaderScanner::new(&view.source, view.from, view.end);
    let mut found: Option<(u64, u64, Offset)> = None;
    while let Some(summary) = scanner.next().await? {
        if summary.last_offset < start {
            continue;
        }
        if summary.base_offset >= high_watermark {
            break;
        }
        let (from, to) = found.map_or((summary.position, summary.position), |(from, to, _)| {
            (from, to)
        });
        let would_be = summary.end() - from;
        let fits = would_be <= max_bytes || (found.is_none() && min_one_batch);
        if !fits {
            break;
        }
        debug_assert!(found.is_none() || to == summary.position);
        found = Some((from, summary.end(), summary.last_offset.plus(1)));
        if would_be >= max_bytes {
            break;
        }
    }
    Ok(found)
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

async fn read_offset_checkpoint(dir: &Path, name: &str) -> Result<Option<Offset>, LogError> {
    match checkpoint::read_optional(&dir.join(name)).await? {
        Some(bytes) => checkpoint::decode_offset(&bytes)
            .map(Some)
            .map_err(|e| LogError::Corrupt(format!("{name}: {e}"))),
        None => Ok(None),
    }
}

fn check_write(written: usize, expected: usize, position: u64) -> Result<(), LogError> {
    if written == expected {
        Ok(())
    } else {
        Err(LogError::Io(std::io::Error::other(format!(
            "short write at {position}: {written} of {expected} bytes"
        ))))
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("segment files have names")
        .to_string_lossy()
        .into_owned()
}
