//! Appends and group commit.
//!
//! An append copies its batch into the active segment's write buffer (the one copy
//! of a produced batch) and assigns its offsets in that copy, then waits until the durability policy acknowledges
//! it. Whoever takes the flush lock writes and syncs everything pending at that
//! moment, so one write and one fdatasync acknowledge every append waiting on it.

use std::rc::Rc;
use std::time::Instant;

use crate::record::batch::{Assigned, BatchHeader};
use crate::record::control::MarkerKind;
use crate::storage::commit_round;
use crate::storage::config::{Durability, GroupCommit};
use crate::storage::error::{LogError, io};
use crate::storage::producer_state::{SequenceCheck, TxnMarker};
use crate::storage::summary::ProducerBatch;
use crate::storage::write_buffer::align_up;
use crate::types::{Offset, TimestampMs};

use super::state::Mark;
use super::{AppendInfo, AppendOptions, FlushTimes, PartitionLog};

/// What an append must do before it can copy its batch in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AppendGate {
    Ready,
    Roll,
    /// The active segment is being replaced or cut.
    Wait,
    /// Too many bytes wait for a write: flush first.
    Backpressure,
}

/// The gate for an append of `len` bytes when `pending` bytes wait for a write.
fn gate(
    paused: bool,
    roll_due: bool,
    pending: usize,
    len: usize,
    max_pending: usize,
) -> AppendGate {
    if paused {
        AppendGate::Wait
    } else if roll_due {
        AppendGate::Roll
    } else if pending > 0 && pending + len > max_pending {
        AppendGate::Backpressure
    } else {
        AppendGate::Ready
    }
}

impl PartitionLog {
    /// Appends one validated batch: copies it into the write buffer once, assigns
    /// its offsets (and leader epoch, and LogAppendTime if asked) in that copy, and
    /// returns once the configured durability policy acknowledges it. `batch`
    /// itself is left as it was.
    pub async fn append(
        &self,
        batch: &[u8],
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
            match self.append_gate(batch.len(), last_offset_delta)? {
                AppendGate::Ready => {
                    ready = true;
                    break;
                }
                AppendGate::Roll => self.roll(batch.len() as u64, last_offset_delta).await?,
                AppendGate::Wait => self.next_release().await,
                AppendGate::Backpressure => self.flush(false).await?,
            }
        }
        if !ready {
            return Err(LogError::Offline(
                "append could not get room in the log".into(),
            ));
        }
        // No await between the gate and the copy: nothing can pause the log or
        // fill the buffer in between.
        let (info, truncations) = self.buffer_append(batch, options)?;
        self.count(|s| s.appends += 1);
        self.wait_acknowledged(info.last_offset.plus(1), truncations)
            .await?;
        Ok(info)
    }

    pub(super) fn append_gate(
        &self,
        len: usize,
        last_offset_delta: i64,
    ) -> Result<AppendGate, LogError> {
        let state = self.state.borrow();
        state.check_usable()?;
        let pending = state
            .active()
            .writer
            .as_ref()
            .map_or(0, |w| w.buffer.pending());
        Ok(gate(
            state.paused,
            self.needs_roll(&state, len as u64, last_offset_delta),
            pending,
            len,
            self.config.borrow().max_pending_bytes,
        ))
    }

    /// Checks the producer's sequence (or, for a marker, its epochs), then copies
    /// the batch into the write buffer and assigns its offsets there. A retried
    /// batch is not copied again: its original offsets come back. Also returns
    /// the truncation count it was buffered at.
    pub(super) fn buffer_append(
        &self,
        batch: &[u8],
        options: AppendOptions,
    ) -> Result<(AppendInfo, u64), LogError> {
        let header = BatchHeader::parse(batch).expect("validated batch");
        let marker = if header.attributes().is_control() {
            Some(TxnMarker::of_batch(batch).map_err(|error| {
                LogError::Corrupt(format!("a control batch to append: {error}"))
            })?)
        } else {
            None
        };
        // LogAppendTime replaces the batch's max timestamp when it is buffered.
        let producer = ProducerBatch::of(header).map(|producer| ProducerBatch {
            max_timestamp: options.log_append_time.unwrap_or(producer.max_timestamp),
            ..producer
        });
        let mut state = self.state.borrow_mut();
        let truncations = state.truncations;
        if let Some(marker) = &marker {
            state.producers.check_marker(marker)?;
        }
        if let Some(producer) = &producer
            && let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = state.producers.check(producer)?
        {
            let info = AppendInfo {
                base_offset,
                last_offset,
                log_start_offset: state.log_start,
            };
            return Ok((info, truncations));
        }
        let base_offset = state.log_end();
        if state.epochs.assign(options.leader_epoch, base_offset) {
            state.epochs_dirty = true;
        }
        let assigned = Assigned {
            base_offset,
            leader_epoch: options.leader_epoch,
            log_append_time: options.log_append_time,
        };
        let last_offset = state.active_mut().append(batch, &assigned).last_offset;
        debug_assert_eq!(state.log_end(), last_offset.plus(1));
        if let Some(producer) = &producer {
            state.producers.record(producer, base_offset, last_offset);
        }
        if let Some(marker) = &marker {
            let segment_base = state.active().base;
            state.end_txn(marker, base_offset, segment_base);
        }
        let info = AppendInfo {
            base_offset,
            last_offset,
            log_start_offset: state.log_start,
        };
        Ok((info, truncations))
    }

    /// Appends a transaction marker: the control batch goes through the group
    /// commit as any batch; the producer's open transaction ends with it, and an
    /// abort's `.txnindex` entry is on disk before this returns its offset.
    pub async fn append_marker(
        &self,
        marker: &TxnMarker,
        options: AppendOptions,
    ) -> Result<Offset, LogError> {
        let batch = marker.build_batch(options.log_append_time.unwrap_or_else(TimestampMs::now));
        let info = self.append(&batch, options).await?;
        if marker.kind == MarkerKind::Abort {
            self.write_aborted_indexes().await?;
        }
        Ok(info.base_offset)
    }

    /// Waits until `target` is acknowledged by the durability policy. If nobody is
    /// flushing, this append flushes everything pending (its own batch and every
    /// other append's); otherwise it waits for the flush in progress to finish.
    pub(super) async fn wait_acknowledged(
        &self,
        target: Offset,
        truncations: u64,
    ) -> Result<(), LogError> {
        loop {
            if self.is_acknowledged(target, truncations)? {
                return Ok(());
            }
            match self.try_lock() {
                Some(_guard) => self.flush_locked(false).await?,
                None => self.next_release().await,
            }
        }
    }

    fn is_acknowledged(&self, target: Offset, truncations: u64) -> Result<bool, LogError> {
        let state = self.state.borrow();
        if let Some(reason) = &state.failed {
            return Err(LogError::Offline(reason.clone()));
        }
        // A truncation writes and syncs every batch buffered before it, so a batch
        // waiting across one was acknowledged by it, even if it was then cut away.
        if state.truncations != truncations {
            return Ok(true);
        }
        Ok(state.readable(self.durability()).offset >= target)
    }

    /// Writes everything pending; with `sync`, fdatasyncs it too whatever the policy.
    pub async fn flush(&self, sync: bool) -> Result<(), LogError> {
        let _permit = self.lock().await?;
        self.flush_locked(sync).await
    }

    /// `flush` for a caller holding the flush lock; a failure takes the log offline.
    pub(super) async fn flush_locked(&self, force_sync: bool) -> Result<(), LogError> {
        self.state.borrow().check_usable()?;
        let result = self.write_and_sync(force_sync).await;
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    /// One group commit: one write of everything pending, then one fdatasync if the
    /// policy (or `force_sync`) asks for it, then the leader epoch checkpoint if an
    /// append started a new epoch.
    pub(super) async fn write_and_sync(&self, force_sync: bool) -> Result<(), LogError> {
        let mut round = self.joins_shard_round().then(commit_round::join);
        if let Some(round) = &mut round {
            round.start().await;
        }
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
            let stats = self.stats.get();
            crate::metrics::shard::group_commit(
                stats.appends.saturating_sub(stats.appends_at_last_write),
                write.end - write.new_from,
            );
            self.count(|s| s.appends_at_last_write = s.appends);
            self.last_flush.set(FlushTimes {
                written: Some(Instant::now()),
                ..self.last_flush.get()
            });
            filler.maybe_start(data_end);
            let mut state = self.state.borrow_mut();
            debug_assert!(next_offset > state.written.offset);
            state.written = Mark {
                offset: next_offset,
                position: write.end,
            };
            state.unsynced_bytes += write.end - write.new_from;
            state.active_mut().writer().tail_cache.insert(&write);
        }
        self.debug_check();
        if let Some(round) = &mut round {
            round.written().await;
        }
        let sync_target = {
            let state = self.state.borrow();
            let due = match self.durability() {
                Durability::Fsync => true,
                Durability::Interval { bytes, .. } => force_sync || state.unsynced_bytes >= bytes,
            };
            (due && state.written.offset > state.durable.offset).then_some(state.written)
        };
        if let Some(target) = sync_target {
            let file = Rc::clone(&self.state.borrow().active().file);
            let syncing = Instant::now();
            file.fdatasync().await.map_err(io)?;
            crate::metrics::shard::fsynced(syncing.elapsed());
            self.count(|s| s.syncs += 1);
            self.last_flush.set(FlushTimes {
                synced: Some(Instant::now()),
                ..self.last_flush.get()
            });
            let mut state = self.state.borrow_mut();
            state.durable = target;
            state.unsynced_bytes = 0;
            drop(state);
            self.debug_check();
        }
        if let Some(round) = &mut round {
            round.synced().await;
        }
        {
            let mut state = self.state.borrow_mut();
            let high_watermark = state.high_watermark(self.durability());
            state.producers.forget_decided(high_watermark);
        }
        if self.state.borrow().epochs_dirty {
            self.write_epochs().await?;
        }
        Ok(())
    }

    /// Whether this flush goes through the shard's commit round: with fsync
    /// durability and shard-wide group commit, when there is something to write
    /// or to sync.
    fn joins_shard_round(&self) -> bool {
        let config = self.config.borrow();
        if config.durability != Durability::Fsync || config.group_commit != GroupCommit::Shard {
            return false;
        }
        let state = self.state.borrow();
        let pending = state
            .active()
            .writer
            .as_ref()
            .is_some_and(|writer| writer.buffer.pending() > 0);
        pending || state.written.offset > state.durable.offset
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::config::LogConfig;
    use crate::storage::test_support::{
        EPOCH0, batch, open_log, producer_batch, run, small_config,
    };

    #[test]
    fn the_gate_waits_for_a_pause_then_rolls_then_pushes_back() {
        assert_eq!(gate(true, true, 100, 10, 50), AppendGate::Wait);
        assert_eq!(gate(false, true, 100, 10, 50), AppendGate::Roll);
        assert_eq!(gate(false, false, 45, 10, 50), AppendGate::Backpressure);
        assert_eq!(gate(false, false, 40, 10, 50), AppendGate::Ready);
        assert_eq!(
            gate(false, false, 0, 100, 50),
            AppendGate::Ready,
            "a batch larger than the limit still goes into an empty buffer"
        );
    }

    /// The pending bytes of the active segment's write buffer from `position`.
    fn buffered_from(log: &PartitionLog, position: u64) -> Vec<u8> {
        let state = log.state.borrow();
        let writer = state.active().writer.as_ref().unwrap();
        writer.buffer.bytes_from(position).to_vec()
    }

    #[test]
    fn the_batch_is_copied_once_and_patched_in_the_write_buffer() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            log.append(&batch(2, 10, 0), EPOCH0).await.unwrap();
            let position = log.size_bytes();
            let request = batch(3, 50, 100);
            let options = AppendOptions {
                leader_epoch: crate::types::LeaderEpoch(4),
                log_append_time: Some(crate::types::TimestampMs(77_000)),
            };
            let (info, _) = log.buffer_append(&request, options).unwrap();
            assert_eq!((info.base_offset, info.last_offset), (Offset(2), Offset(4)));
            assert_eq!(
                request,
                batch(3, 50, 100),
                "the request's bytes are not written"
            );
            let stored = buffered_from(&log, position);
            let assigned = Assigned {
                base_offset: Offset(2),
                leader_epoch: options.leader_epoch,
                log_append_time: options.log_append_time,
            };
            assert!(crate::record::batch::only_assigned_fields_differ(
                &request, &stored, &assigned
            ));
            let header = BatchHeader::parse(&stored).unwrap();
            assert_eq!(header.max_timestamp().0, 77_000);
            assert!(crate::record::RecordBatch::new_unchecked(&stored).crc_is_valid());
            log.flush(true).await.unwrap();
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_retried_producer_batch_is_not_copied_again() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let first = log.buffer_append(&producer_batch(0, 3), EPOCH0).unwrap().0;
            let buffered = log.size_bytes();
            let retry = log.buffer_append(&producer_batch(0, 3), EPOCH0).unwrap().0;
            assert_eq!(retry, first);
            assert_eq!(log.size_bytes(), buffered, "nothing more was buffered");
            log.flush(true).await.unwrap();
            log.close().await.unwrap();
        });
    }

    #[test]
    fn concurrent_appends_share_one_write_and_one_sync() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = Rc::new(open_log(dir.path(), small_config()).await);
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let log = Rc::clone(&log);
                    glommio::spawn_local(async move {
                        log.append(&batch(2, 100, 0), EPOCH0).await.unwrap()
                    })
                })
                .collect();
            let mut bases = Vec::new();
            for task in tasks {
                bases.push(task.await.base_offset.0);
            }
            bases.sort();
            assert_eq!(bases, (0..20).map(|n| n * 2).collect::<Vec<_>>());
            let stats = log.stats();
            assert_eq!(stats.appends, 20);
            assert!(stats.syncs <= 2, "one group commit for all: {stats:?}");
            let offsets = log.offsets();
            assert_eq!(
                (offsets.durable, offsets.written, offsets.log_end),
                (Offset(40), Offset(40), Offset(40))
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn shard_rounds_acknowledge_the_appends_of_every_log() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                group_commit: GroupCommit::Shard,
                ..small_config()
            };
            let mut logs = Vec::new();
            for n in 0..8 {
                logs.push(Rc::new(
                    open_log(&dir.path().join(format!("p-{n}")), config.clone()).await,
                ));
            }
            let rounds_before = commit_round::completed();
            let tasks: Vec<_> = (0..40)
                .map(|n| {
                    let log = Rc::clone(&logs[n % logs.len()]);
                    glommio::spawn_local(async move {
                        log.append(&batch(1, 100, 0), EPOCH0).await.unwrap()
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
            let rounds = commit_round::completed() - rounds_before;
            let syncs: u64 = logs.iter().map(|log| log.stats().syncs).sum();
            assert!(
                (1..=2).contains(&rounds) && syncs >= 8,
                "{syncs} syncs in {rounds} rounds"
            );
            for log in &logs {
                let offsets = log.offsets();
                assert_eq!(
                    (offsets.durable, offsets.high_watermark),
                    (Offset(5), Offset(5))
                );
                let stats = log.stats();
                assert!(
                    stats.syncs <= 2,
                    "one round carried most appends: {stats:?}"
                );
                log.close().await.unwrap();
            }
        });
    }

    #[test]
    fn backpressure_writes_before_more_is_buffered() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                max_pending_bytes: 1,
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let log = Rc::new(open_log(dir.path(), config).await);
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let log = Rc::clone(&log);
                    glommio::spawn_local(async move {
                        log.append(&batch(1, 500, 0), EPOCH0).await.unwrap()
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
            assert_eq!(log.high_watermark(), Offset(10));
            assert_eq!(
                log.stats().writes,
                10,
                "each batch was written before the next was buffered"
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn the_interval_policy_acknowledges_written_data_before_it_is_synced() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                durability: Durability::Interval {
                    interval: Duration::from_secs(3600),
                    bytes: u64::MAX,
                },
                ..small_config()
            };
            let log = open_log(dir.path(), config).await;
            log.append(&batch(3, 10, 0), EPOCH0).await.unwrap();
            let offsets = log.offsets();
            assert_eq!(
                (offsets.high_watermark, offsets.written, offsets.durable),
                (Offset(3), Offset(3), Offset(0))
            );
            log.flush(true).await.unwrap();
            assert_eq!(log.offsets().durable, Offset(3));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_failed_log_refuses_appends() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            log.append(&batch(1, 10, 0), EPOCH0).await.unwrap();
            log.fail(&LogError::Offline("injected".into()));
            let refused = log.append(&batch(1, 10, 0), EPOCH0).await;
            assert!(
                matches!(refused, Err(LogError::Offline(reason)) if reason.contains("injected"))
            );
            assert!(log.flush(true).await.is_err());
        });
    }

    #[test]
    fn an_append_starting_a_new_epoch_checkpoints_it_with_the_group_commit() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let epoch = |n| AppendOptions {
                leader_epoch: crate::types::LeaderEpoch(n),
                log_append_time: None,
            };
            log.append(&batch(2, 10, 0), epoch(3)).await.unwrap();
            log.append(&batch(2, 10, 0), epoch(3)).await.unwrap();
            log.append(&batch(2, 10, 0), epoch(5)).await.unwrap();
            let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
            assert_eq!(text, "0\n2\n3 0\n5 4\n");
            log.close().await.unwrap();
        });
    }
}
