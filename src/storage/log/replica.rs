//! The follower's append: the batches a leader sent in a Fetch response go into
//! the log as the leader stored them (Kafka's `appendAsFollower`).
//!
//! Nothing is assigned: every batch keeps its base offset and partition leader
//! epoch, and no byte the CRC covers is touched, so the follower's log is the
//! leader's byte for byte. A compacted leader's log has offset gaps between
//! batches, so a batch may start past the log end. Producer state takes each
//! batch without sequence checks (the leader made them) so a follower that
//! becomes leader goes on deduplicating retries; markers end transactions as on
//! the leader. All batches are copied into the write buffer first, then one
//! group commit acknowledges them together.

use crate::record::batch::{Assigned, BATCH_HEADER_LEN, BatchHeader, compute_crc};
use crate::record::validate::check_frame;
use crate::storage::error::LogError;
use crate::storage::producer_state::TxnMarker;
use crate::storage::summary::ProducerBatch;
use crate::types::Offset;

use super::PartitionLog;
use super::appender::AppendGate;

/// What [`PartitionLog::append_replicated`] appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicatedAppend {
    /// Batches appended (those the log already had are not counted).
    pub batches: usize,
    /// Their bytes.
    pub bytes: usize,
    /// The log end offset after them.
    pub log_end: Offset,
}

/// What to do with one batch of a leader's Fetch response, given the log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// The log has it already (a fetch that raced a previous one).
    Have,
    /// It starts at or past the log end (past it: a compacted gap).
    Append,
    /// It starts below the log end and ends at or past it: the follower's log
    /// and the leader's disagree, and only a truncation can reconcile them.
    Overlaps,
}

fn place(base_offset: Offset, last_offset: Offset, log_end: Offset) -> Placement {
    if last_offset < log_end {
        Placement::Have
    } else if base_offset >= log_end {
        Placement::Append
    } else {
        Placement::Overlaps
    }
}

/// The whole batch at the front of `bytes`, its frame and CRC checked; `None`
/// when `bytes` ends before the batch does (a Fetch response may end with a
/// partial batch).
fn next_batch(bytes: &[u8]) -> Result<Option<&[u8]>, LogError> {
    let Some(header) = BatchHeader::parse(bytes) else {
        return Ok(None);
    };
    let corrupt = |reason: String| {
        LogError::Corrupt(format!(
            "replicated batch at offset {}: {reason}",
            header.base_offset()
        ))
    };
    let len = header
        .total_len()
        .ok_or_else(|| corrupt(format!("bad length {}", header.batch_length.get())))?;
    let Some(batch) = bytes.get(..len) else {
        return Ok(None);
    };
    check_frame(header, batch.len()).map_err(|error| corrupt(error.to_string()))?;
    if header.base_offset.get() < 0 || header.last_offset_delta.get() < 0 {
        return Err(corrupt(format!(
            "offsets {}..={}",
            header.base_offset(),
            header.last_offset()
        )));
    }
    let crc = compute_crc(batch);
    if crc != header.crc.get() {
        return Err(corrupt(format!(
            "CRC32C mismatch: header says {:#010x}, records hash to {crc:#010x}",
            header.crc.get()
        )));
    }
    Ok(Some(batch))
}

/// The length of the run of whole batches at the front of `batches` (a partial
/// batch after them is left out), each checked by [`next_batch`], in rising
/// offsets, and placed against a log ending at `log_end`: an overlapping batch
/// is refused, and so is one to append that no segment of `segment_bytes` can
/// hold or that ends too far past the log end for a segment's index.
fn checked_prefix(
    batches: &[u8],
    mut log_end: Offset,
    log_start: Offset,
    segment_bytes: u64,
) -> Result<usize, LogError> {
    let mut whole = 0;
    let mut previous_end: Option<Offset> = None;
    for _ in 0..=batches.len() / BATCH_HEADER_LEN {
        let Some(batch) = next_batch(&batches[whole..])? else {
            break;
        };
        let header = BatchHeader::parse(batch).expect("a checked batch");
        if previous_end.is_some_and(|end| header.base_offset() < end) {
            return Err(LogError::Corrupt(format!(
                "replicated batch at offset {} is below the previous batch's end",
                header.base_offset()
            )));
        }
        previous_end = Some(header.next_offset());
        match place(header.base_offset(), header.last_offset(), log_end) {
            Placement::Have => {}
            Placement::Append => {
                check_fits(
                    batch.len(),
                    header.last_offset().0 - log_end.0,
                    segment_bytes,
                )?;
                log_end = header.next_offset();
            }
            Placement::Overlaps => return Err(overlap(header, log_start, log_end)),
        }
        whole += batch.len();
    }
    Ok(whole)
}

/// Whether a batch of `len` bytes whose last offset is `last_offset_delta` past
/// the log end fits in a segment. A segment rolled for it starts at the log end
/// and its index holds offsets relative to that in 32 bits, so a compacted gap
/// wider than that cannot be appended.
fn check_fits(len: usize, last_offset_delta: i64, segment_bytes: u64) -> Result<(), LogError> {
    if len as u64 > segment_bytes {
        return Err(LogError::BatchTooLarge {
            size: len,
            segment_bytes,
        });
    }
    if last_offset_delta > i64::from(i32::MAX) {
        return Err(LogError::Corrupt(format!(
            "a replicated batch ends {last_offset_delta} offsets past the log end"
        )));
    }
    Ok(())
}

/// The error for a batch that starts below the log end and ends at or past it.
fn overlap(header: &BatchHeader, log_start: Offset, log_end: Offset) -> LogError {
    LogError::OffsetOutOfRange {
        requested: header.base_offset(),
        log_start,
        log_end,
    }
}

impl PartitionLog {
    /// Appends the records field of a leader's Fetch response: zero or more whole
    /// v2 batches back to back, maybe ending with a partial batch, which is
    /// ignored. Every batch is checked first (frame, offsets, CRC32C): a corrupt
    /// one is `LogError::Corrupt`, and one that starts below the log end but
    /// ends at or past it `OffsetOutOfRange`; then nothing is appended. Each
    /// batch keeps its offsets and leader epoch; batches the log already has are
    /// skipped. The leader epoch cache, producer state (without sequence
    /// checks) and open transactions follow each batch; an abort marker's
    /// `.txnindex` entry is on disk before this returns. Returns once the
    /// durability policy acknowledged the last batch: one group commit for all
    /// of them.
    pub async fn append_replicated(&self, batches: &[u8]) -> Result<ReplicatedAppend, LogError> {
        let start_end = self.log_end_offset();
        // Every batch is checked before any is copied, as Kafka's follower does:
        // a corrupt response leaves the log as it was.
        let segment_bytes = self.config.borrow().segment_bytes;
        let whole = checked_prefix(batches, start_end, self.log_start_offset(), segment_bytes)?;
        let mut appended = ReplicatedAppend {
            batches: 0,
            bytes: 0,
            log_end: start_end,
        };
        let mut truncations = None;
        let mut aborts = false;
        let mut rest = &batches[..whole];
        // Each round takes one batch of at least a header's length.
        for _ in 0..=whole / BATCH_HEADER_LEN {
            let Some(header) = BatchHeader::parse(rest) else {
                break;
            };
            let (batch, after) = rest.split_at(header.total_len().expect("a checked batch"));
            rest = after;
            let log_end = self.log_end_offset();
            match place(header.base_offset(), header.last_offset(), log_end) {
                Placement::Have => continue,
                // Only a truncation or an append racing this one moves the log
                // end back or past a batch checked against it.
                Placement::Overlaps => {
                    return Err(overlap(header, self.log_start_offset(), log_end));
                }
                Placement::Append => {}
            }
            self.make_room(batch.len(), header.last_offset().0 - log_end.0)
                .await?;
            // No await between the gate and the copy. A truncation since the
            // first batch would leave this one after a hole: refused.
            let buffered = self.buffer_replicated(batch, truncations)?;
            truncations = Some(buffered.truncations);
            aborts |= buffered.abort;
            appended.batches += 1;
            appended.bytes += batch.len();
        }
        debug_assert!(rest.is_empty());
        let Some(truncations) = truncations else {
            return Ok(appended);
        };
        appended.log_end = self.log_end_offset();
        debug_assert!(appended.log_end > start_end, "the log end only grows");
        self.count(|s| s.appends += appended.batches as u64);
        self.wait_acknowledged(appended.log_end, truncations)
            .await?;
        if aborts {
            self.write_aborted_indexes().await?;
        }
        Ok(appended)
    }

    /// Waits, rolls or flushes until a batch of `len` bytes whose last offset is
    /// `last_offset_delta` past the log end can be copied in (`check_fits`
    /// passed).
    async fn make_room(&self, len: usize, last_offset_delta: i64) -> Result<(), LogError> {
        const MAX_GATE_ROUNDS: usize = 1024;
        for _ in 0..MAX_GATE_ROUNDS {
            match self.append_gate(len, last_offset_delta)? {
                AppendGate::Ready => return Ok(()),
                AppendGate::Roll => self.roll(len as u64, last_offset_delta).await?,
                AppendGate::Wait => self.next_release().await,
                AppendGate::Backpressure => self.flush(false).await?,
            }
        }
        Err(LogError::Offline(
            "append could not get room in the log".into(),
        ))
    }

    /// Copies a checked batch into the write buffer as it is, and applies it to
    /// the leader epochs, producer state and open transactions. `truncations`:
    /// the count the run's first batch was buffered at, if this is not the first.
    fn buffer_replicated(
        &self,
        batch: &[u8],
        truncations: Option<u64>,
    ) -> Result<Buffered, LogError> {
        let header = BatchHeader::parse(batch).expect("a checked batch");
        let marker = if header.attributes().is_control() {
            Some(TxnMarker::of_batch(batch).map_err(|error| {
                LogError::Corrupt(format!(
                    "replicated control batch at offset {}: {error}",
                    header.base_offset()
                ))
            })?)
        } else {
            None
        };
        let producer = ProducerBatch::of(header);
        let mut state = self.state.borrow_mut();
        let log_end = state.log_end();
        if truncations.is_some_and(|count| count != state.truncations) {
            return Err(overlap(header, state.log_start, log_end));
        }
        let base_offset = header.base_offset();
        // An append racing this run may have passed the batch meanwhile.
        if base_offset < log_end {
            return Err(overlap(header, state.log_start, log_end));
        }
        if state.epochs.assign(header.leader_epoch(), base_offset) {
            state.epochs_dirty = true;
        }
        // The leader's own values: assigning them changes no byte.
        let assigned = Assigned {
            base_offset,
            leader_epoch: header.leader_epoch(),
            log_append_time: None,
        };
        let last_offset = state.active_mut().append(batch, &assigned).last_offset;
        debug_assert_eq!(last_offset, header.last_offset());
        debug_assert_eq!(state.log_end(), last_offset.plus(1));
        if let Some(producer) = &producer {
            state.producers.record(producer, base_offset, last_offset);
        }
        let mut abort = false;
        if let Some(marker) = &marker {
            let segment_base = state.active().base;
            state.end_txn(marker, base_offset, segment_base);
            abort = marker.kind == crate::record::control::MarkerKind::Abort;
        }
        Ok(Buffered {
            truncations: state.truncations,
            abort,
        })
    }
}

/// A batch copied into the write buffer.
struct Buffered {
    /// The truncation count it was buffered at.
    truncations: u64,
    /// It is an abort marker: its `.txnindex` entry must be written.
    abort: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::batch::RecordBatchMut;
    use crate::record::control::MarkerKind;
    use crate::storage::checkpoint::{self, HIGH_WATERMARK_FILE};
    use crate::storage::read::Isolation;
    use crate::storage::segment::{TXN_INDEX_SUFFIX, segment_file};
    use crate::storage::test_support::{
        EPOCH0, batch, open_log, producer_batch, run, small_config, txn_batch,
    };
    use crate::storage::txn_index::{self, AbortedTxn};
    use crate::types::{LeaderEpoch, ProducerEpoch, ProducerId, TimestampMs};

    /// `bytes` as a leader stored them at `base` in leader epoch `epoch`.
    fn stamped(mut bytes: Vec<u8>, base: i64, epoch: i32) -> Vec<u8> {
        RecordBatchMut::new_unchecked(&mut bytes)
            .assign_offset_and_epoch(Offset(base), LeaderEpoch(epoch));
        bytes
    }

    /// Every batch from the log start up to the readable end, as a follower
    /// fetch reads them.
    async fn read_all(log: &PartitionLog) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = log.log_start_offset();
        for _ in 0..10_000 {
            let outcome = log
                .read_isolated(next, 1 << 20, true, Isolation::LogEnd)
                .await
                .unwrap();
            if outcome.bytes == 0 {
                break;
            }
            out.extend(outcome.to_vec().await.unwrap());
            next = outcome.next_offset;
        }
        out
    }

    fn marker(producer: i64, kind: MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: ProducerId(producer),
            producer_epoch: ProducerEpoch(0),
            coordinator_epoch: 1,
            kind,
        }
    }

    #[test]
    fn places_batches_against_the_log_end() {
        assert_eq!(place(Offset(0), Offset(4), Offset(5)), Placement::Have);
        assert_eq!(place(Offset(5), Offset(6), Offset(5)), Placement::Append);
        assert_eq!(place(Offset(9), Offset(9), Offset(5)), Placement::Append);
        assert_eq!(place(Offset(3), Offset(6), Offset(5)), Placement::Overlaps);
        assert_eq!(place(Offset(4), Offset(4), Offset(5)), Placement::Have);
    }

    #[test]
    fn a_leaders_batches_keep_their_offsets_and_epochs_in_one_sync() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let first = stamped(batch(3, 10, 100), 0, 1);
            let second = stamped(batch(2, 10, 200), 3, 1);
            // A compacted leader's gap: offsets 5..=9 are gone.
            let after_gap = stamped(batch(2, 10, 300), 10, 3);
            let next = stamped(batch(1, 10, 400), 12, 3);
            let fetched = [&first[..], &second, &after_gap, &next[..40]].concat();
            let syncs = log.stats().syncs;
            let appended = log.append_replicated(&fetched).await.unwrap();
            let bytes = first.len() + second.len() + after_gap.len();
            assert_eq!(
                appended,
                ReplicatedAppend {
                    batches: 3,
                    bytes,
                    log_end: Offset(12),
                }
            );
            assert_eq!(log.stats().syncs, syncs + 1, "one sync for the whole run");
            let stored = [&first[..], &second, &after_gap].concat();
            assert_eq!(read_all(&log).await, stored, "byte for byte the leader's");
            assert_eq!(
                log.leader_epochs(),
                [(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(10))]
            );
            assert_eq!(log.latest_epoch(), Some(LeaderEpoch(3)));
            assert_eq!(log.epoch_start_offset(LeaderEpoch(3)), Some(Offset(10)));
            assert_eq!(log.epoch_start_offset(LeaderEpoch(2)), None);
            let in_gap = log.read(Offset(6), 1 << 20, true).await.unwrap();
            assert_eq!(in_gap.to_vec().await.unwrap(), after_gap);

            // A fetch that repeats what the log has: only the new batch goes in.
            let again = [&second[..], &after_gap, &next].concat();
            let appended = log.append_replicated(&again).await.unwrap();
            assert_eq!((appended.batches, appended.log_end), (1, Offset(13)));
            let nothing = log.append_replicated(&first[..30]).await.unwrap();
            assert_eq!((nothing.batches, nothing.log_end), (0, Offset(13)));

            // A batch straddling the log end cannot be reconciled by appending.
            let straddling = stamped(batch(3, 10, 500), 12, 3);
            assert!(matches!(
                log.append_replicated(&straddling).await,
                Err(LogError::OffsetOutOfRange { .. })
            ));
            let stored = [stored, next].concat();
            log.close().await.unwrap();

            let log = open_log(dir.path(), small_config()).await;
            assert_eq!(read_all(&log).await, stored);
            assert_eq!(log.log_end_offset(), Offset(13));
            assert_eq!(
                log.leader_epochs(),
                [(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(10))]
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_corrupt_or_backwards_batch_refuses_the_whole_fetch() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let good = stamped(batch(2, 10, 0), 0, 1);
            let mut corrupt = stamped(batch(2, 10, 0), 2, 1);
            let last = corrupt.len() - 1;
            corrupt[last] ^= 0x01;
            let after = stamped(batch(2, 10, 0), 4, 1);
            let refused = log
                .append_replicated(&[&good[..], &corrupt, &after].concat())
                .await;
            assert!(
                matches!(&refused, Err(LogError::Corrupt(reason)) if reason.contains("CRC32C")),
                "{refused:?}"
            );
            assert_eq!(log.log_end_offset(), Offset(0), "nothing was appended");
            let backwards = stamped(batch(2, 10, 0), 1, 1);
            assert!(matches!(
                log.append_replicated(&[&good[..], &backwards].concat())
                    .await,
                Err(LogError::Corrupt(_))
            ));
            assert_eq!(log.log_end_offset(), Offset(0));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn replicated_producer_state_deduplicates_a_later_leaders_retries() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let fetched = [
                stamped(producer_batch(0, 3), 0, 1),
                stamped(producer_batch(3, 2), 3, 1),
            ]
            .concat();
            log.append_replicated(&fetched).await.unwrap();
            // This follower became the leader: the producer goes on, and retries.
            let retry = log.append(&producer_batch(3, 2), EPOCH0).await.unwrap();
            assert_eq!(
                (retry.base_offset, retry.last_offset),
                (Offset(3), Offset(4))
            );
            assert_eq!(
                log.log_end_offset(),
                Offset(5),
                "the retry was not appended"
            );
            let next = log.append(&producer_batch(5, 1), EPOCH0).await.unwrap();
            assert_eq!(next.base_offset, Offset(5));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn replicated_markers_end_transactions_and_index_aborts() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let data = [
                stamped(batch(1, 10, 0), 0, 1),
                stamped(txn_batch(1, 0, 2), 1, 1),
                stamped(txn_batch(2, 0, 1), 3, 1),
            ]
            .concat();
            log.append_replicated(&data).await.unwrap();
            assert_eq!(
                (log.last_stable_offset(), log.open_transactions()),
                (Offset(1), 2)
            );
            let markers = [
                stamped(
                    marker(1, MarkerKind::Abort).build_batch(TimestampMs(0)),
                    4,
                    1,
                ),
                stamped(
                    marker(2, MarkerKind::Commit).build_batch(TimestampMs(0)),
                    5,
                    1,
                ),
            ]
            .concat();
            log.append_replicated(&markers).await.unwrap();
            assert_eq!(
                (log.last_stable_offset(), log.open_transactions()),
                (Offset(6), 0)
            );
            let index = std::fs::read(segment_file(dir.path(), Offset(0), TXN_INDEX_SUFFIX));
            let expected = AbortedTxn {
                producer_id: ProducerId(1),
                first_offset: Offset(1),
                last_offset: Offset(4),
                last_stable_offset: Offset(3),
            };
            assert_eq!(
                txn_index::decode_entries(&index.unwrap()).unwrap(),
                vec![expected],
                "on disk before the append returned"
            );
            let committed = log
                .read_isolated(Offset(0), 1 << 20, true, Isolation::ReadCommitted)
                .await
                .unwrap();
            assert_eq!(committed.aborted, Some(vec![expected]));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn replicated_runs_roll_segments_and_survive_a_reopen() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let mut stored = Vec::new();
            let mut base = 0;
            while log.segment_count() < 3 {
                let fetched: Vec<u8> = (0..8)
                    .flat_map(|n| stamped(batch(5, 300, base + n * 5), base + n * 5, 2))
                    .collect();
                let appended = log.append_replicated(&fetched).await.unwrap();
                assert_eq!(appended.batches, 8);
                base += 40;
                assert_eq!(appended.log_end, Offset(base));
                stored.extend(fetched);
            }
            assert_eq!(read_all(&log).await, stored);
            // Let the background seal finish before the reopen.
            drop(log.lock_all().await.unwrap());
            log.close().await.unwrap();
            let log = open_log(dir.path(), small_config()).await;
            assert_eq!(log.segment_count(), 3);
            assert_eq!(read_all(&log).await, stored);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn the_high_watermark_bound_limits_consumer_reads_but_not_replica_fetches() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            for _ in 0..5 {
                log.append(&batch(2, 10, 0), EPOCH0).await.unwrap();
            }
            log.append(&txn_batch(7, 0, 1), EPOCH0).await.unwrap();
            assert_eq!(log.high_watermark(), Offset(11));
            log.set_high_watermark_bound(Some(Offset(4)));
            assert_eq!(
                (log.high_watermark(), log.readable_end()),
                (Offset(4), Offset(11))
            );
            assert_eq!(log.offsets().high_watermark, Offset(4));
            let consumer = log.read(Offset(0), 1 << 20, true).await.unwrap();
            assert_eq!(
                (consumer.next_offset, consumer.high_watermark),
                (Offset(4), Offset(4))
            );
            let at_bound = log.read(Offset(4), 1 << 20, true).await.unwrap();
            assert_eq!(at_bound.bytes, 0);
            let replica = log
                .read_isolated(Offset(0), 1 << 20, true, Isolation::LogEnd)
                .await
                .unwrap();
            assert_eq!(
                (replica.next_offset, replica.high_watermark),
                (Offset(11), Offset(4))
            );
            assert!(replica.last_stable_offset <= Offset(4));
            assert_eq!(log.last_stable_offset(), Offset(4));
            log.set_high_watermark_bound(Some(Offset(11)));
            assert_eq!(log.last_stable_offset(), Offset(10), "the open transaction");
            // A bound may go down; it never takes the high watermark below the
            // log start.
            log.delete_records(Offset(6)).await.unwrap();
            log.set_high_watermark_bound(Some(Offset(2)));
            assert_eq!(log.high_watermark(), Offset(6));
            assert!(log.delete_records(Offset(8)).await.is_err());
            log.set_high_watermark_bound(Some(Offset(8)));
            log.close().await.unwrap();
            let checkpoint = std::fs::read(dir.path().join(HIGH_WATERMARK_FILE)).unwrap();
            assert_eq!(
                checkpoint::decode_offset(&checkpoint),
                Ok(Offset(8)),
                "the bounded high watermark is checkpointed"
            );

            let log = open_log(dir.path(), small_config()).await;
            log.set_high_watermark_bound(Some(Offset(8)));
            log.set_high_watermark_bound(None);
            assert_eq!(
                log.high_watermark(),
                Offset(11),
                "no bound: the readable end"
            );
            let all = log.read(Offset(6), 1 << 20, true).await.unwrap();
            assert_eq!(all.next_offset, Offset(11));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_log_restarted_at_an_offset_appends_there_and_keeps_it_across_a_reopen() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            let fetched = [
                stamped(producer_batch(0, 3), 0, 1),
                stamped(batch(2, 10, 0), 3, 2),
            ]
            .concat();
            log.append_replicated(&fetched).await.unwrap();
            log.truncate_fully_and_start_at(Offset(100)).await.unwrap();
            let offsets = log.offsets();
            assert_eq!(
                (offsets.log_start, offsets.high_watermark, offsets.log_end),
                (Offset(100), Offset(100), Offset(100))
            );
            assert_eq!(log.latest_epoch(), None);
            assert!(log.producers().is_empty());
            assert_eq!(log.segment_bases(), [Offset(100)]);
            let next = stamped(batch(2, 10, 0), 100, 4);
            let appended = log.append_replicated(&next).await.unwrap();
            assert_eq!(appended.log_end, Offset(102));
            log.close().await.unwrap();

            let log = open_log(dir.path(), small_config()).await;
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset()),
                (Offset(100), Offset(102))
            );
            assert_eq!(log.leader_epochs(), [(LeaderEpoch(4), Offset(100))]);
            assert_eq!(read_all(&log).await, next);
            log.close().await.unwrap();
        });
    }
}
