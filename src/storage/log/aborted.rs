//! The aborted-transaction index of a log: one `.txnindex` file per segment
//! (entry format in `storage::txn_index`), holding an entry for each abort
//! marker of the segment, in marker order.
//!
//! The entries are also kept in memory, per segment (34 bytes per aborted
//! transaction the log still holds), so a `read_committed` fetch lists its
//! aborted transactions without reading a file. An abort marker adds its entry
//! to memory when it is buffered; the segment's file is rewritten (atomically,
//! synced) after the marker is acknowledged and before `write_txn_marker`
//! answers. A crash between the two loses at most entries for markers after the
//! last producer snapshot (a snapshot is written only at close, after every
//! file), and the producer-state replay at the next open passes every such
//! marker and adds what the file lacks, loudly. Entries for markers that
//! recovery cut away (a torn tail) are dropped at open, and a torn or corrupt
//! file makes the open rebuild every entry from the whole log.

use std::collections::{BTreeMap, BTreeSet};

use crate::record::control::MarkerKind;
use crate::storage::checkpoint;
use crate::storage::error::LogError;
use crate::storage::producer_state::{CompletedTxn, ProducerState, TxnMarker};
use crate::storage::segment::{TXN_INDEX_SUFFIX, file_name, segment_file};
use crate::storage::txn_index::{self, AbortedTxn, collect_aborted, entries_kept_after_truncation};
use crate::types::Offset;

use super::PartitionLog;

/// The entries of every segment that has any, and the segments whose file is
/// behind memory.
#[derive(Debug, Default)]
pub(super) struct AbortedIndexes {
    segments: BTreeMap<Offset, Vec<AbortedTxn>>,
    dirty: BTreeSet<Offset>,
}

impl AbortedIndexes {
    /// Adds the entry of an abort marker in the segment at `base`.
    pub fn add(&mut self, base: Offset, entry: AbortedTxn) {
        let entries = self.segments.entry(base).or_default();
        debug_assert!(
            entries
                .last()
                .is_none_or(|last| last.last_offset < entry.last_offset)
        );
        debug_assert!(base <= entry.last_offset);
        entries.push(entry);
        self.dirty.insert(base);
    }

    /// Whether the segment at `base` has the entry of the marker at `marker`.
    pub fn has_marker(&self, base: Offset, marker: Offset) -> bool {
        self.segments.get(&base).is_some_and(|entries| {
            // In marker order (`add`), so sorted by last offset.
            entries
                .binary_search_by_key(&marker, |e| e.last_offset)
                .is_ok()
        })
    }

    /// Kafka's collectAbortedTransactions: the aborted transactions with data in
    /// `[start, upper_bound)`, searched from the segment holding `start` on.
    pub fn collect(
        &self,
        start_segment: Offset,
        start: Offset,
        upper_bound: Offset,
    ) -> Vec<AbortedTxn> {
        let mut aborted = Vec::new();
        for entries in self.segments.range(start_segment..).map(|(_, e)| e) {
            let search = collect_aborted(entries, start, upper_bound);
            aborted.extend(search.aborted);
            if search.complete {
                break;
            }
        }
        aborted
    }

    /// Replaces the entries of the segments at `old_bases` by those of the
    /// cleaned segments that replaced them, whose files the swap already wrote.
    pub fn replace(&mut self, old_bases: &[Offset], cleaned: Vec<(Offset, Vec<AbortedTxn>)>) {
        for base in old_bases {
            self.segments.remove(base);
            self.dirty.remove(base);
        }
        for (base, entries) in cleaned {
            debug_assert!(entries.iter().all(|e| e.last_offset >= base));
            if !entries.is_empty() {
                self.segments.insert(base, entries);
            }
        }
    }

    /// Forgets the segments deleted from the front of the log (their files go
    /// with them).
    pub fn drop_below(&mut self, first_base: Offset) {
        self.segments = self.segments.split_off(&first_base);
        self.dirty = self.dirty.split_off(&first_base);
    }

    /// Drops the entries of markers at or after `offset` (a truncation).
    pub fn truncate(&mut self, offset: Offset) {
        for (&base, entries) in self.segments.iter_mut() {
            let kept = entries_kept_after_truncation(entries, offset);
            if kept < entries.len() {
                entries.truncate(kept);
                self.dirty.insert(base);
            }
        }
    }

    /// No entries, every segment's file to be rewritten (after a torn one).
    fn rebuilding(bases: &[Offset]) -> AbortedIndexes {
        AbortedIndexes {
            segments: BTreeMap::new(),
            dirty: bases.iter().copied().collect(),
        }
    }

    pub fn clear(&mut self) {
        self.dirty.extend(self.segments.keys().copied());
        for entries in self.segments.values_mut() {
            entries.clear();
        }
    }

    /// The segments whose files need writing, with their entries.
    fn take_dirty(&mut self) -> Vec<(Offset, Vec<AbortedTxn>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|base| (base, self.segments.get(&base).cloned().unwrap_or_default()))
            .collect()
    }
}

/// Applies a marker at `offset` in the segment at `segment_base` (an append or
/// a replay): the producer's transaction ends, and an abort gets its
/// `.txnindex` entry unless the index has it already. Returns the ended
/// transaction and whether an entry was added.
pub(super) fn apply_marker(
    producers: &mut ProducerState,
    aborted: &mut AbortedIndexes,
    marker: &TxnMarker,
    offset: Offset,
    segment_base: Offset,
) -> (Option<CompletedTxn>, bool) {
    let Some(completed) = producers.end_txn(marker, offset) else {
        return (None, false);
    };
    let indexed = completed.kind == MarkerKind::Abort && !aborted.has_marker(segment_base, offset);
    if indexed {
        let entry = AbortedTxn {
            producer_id: completed.producer_id,
            first_offset: completed.first_offset,
            last_offset: completed.last_offset,
            last_stable_offset: producers.stable_offset_after(&completed),
        };
        aborted.add(segment_base, entry);
    }
    (Some(completed), indexed)
}

impl PartitionLog {
    /// Loads every segment's `.txnindex`; `false` when one is torn or corrupt
    /// (the caller rebuilds them all from the log). Entries past the log end
    /// (markers recovery cut away) are dropped.
    pub(super) async fn load_aborted_indexes(&self) -> Result<bool, LogError> {
        let (bases, end) = {
            let state = self.state.borrow();
            let bases: Vec<Offset> = state.segments.iter().map(|s| s.base).collect();
            (bases, state.log_end())
        };
        let mut indexes = AbortedIndexes::default();
        for &base in &bases {
            let path = segment_file(&self.dir, base, TXN_INDEX_SUFFIX);
            let Some(bytes) = checkpoint::read_optional(&path).await? else {
                continue;
            };
            match txn_index::decode_entries(&bytes) {
                Ok(entries) => {
                    indexes.segments.insert(base, entries);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "transaction index unreadable; rebuilding every one from the log");
                    self.state.borrow_mut().aborted = AbortedIndexes::rebuilding(&bases);
                    return Ok(false);
                }
            }
        }
        indexes.truncate(end);
        self.state.borrow_mut().aborted = indexes;
        Ok(true)
    }

    /// Writes the `.txnindex` files that are behind memory (an empty one is
    /// removed); the caller holds the flush lock, so a segment cannot be deleted
    /// meanwhile.
    pub(super) async fn write_aborted_indexes_locked(&self) -> Result<(), LogError> {
        let dirty = self.state.borrow_mut().aborted.take_dirty();
        for (base, entries) in dirty {
            if entries.is_empty() {
                match std::fs::remove_file(segment_file(&self.dir, base, TXN_INDEX_SUFFIX)) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        return Err(error.into());
                    }
                    _ => checkpoint::sync_dir(&self.dir).await?,
                }
            } else {
                let name = file_name(base, TXN_INDEX_SUFFIX);
                checkpoint::write_atomically(&self.dir, &name, txn_index::encode_entries(&entries))
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the `.txnindex` files behind memory.
    pub(super) async fn write_aborted_indexes(&self) -> Result<(), LogError> {
        let _permit = self.lock().await?;
        self.write_aborted_indexes_locked().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ProducerId;

    fn entry(producer: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(producer),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn entries_are_searched_from_the_start_segment_and_cut_by_truncation() {
        let mut indexes = AbortedIndexes::default();
        indexes.add(Offset(0), entry(1, 2, 5, 6));
        indexes.add(Offset(10), entry(2, 8, 12, 13));
        indexes.add(Offset(10), entry(3, 14, 16, 17));
        assert_eq!(indexes.collect(Offset(0), Offset(0), Offset(9)).len(), 2);
        assert_eq!(
            indexes.collect(Offset(10), Offset(10), Offset(13)),
            vec![entry(2, 8, 12, 13)]
        );
        assert!(indexes.has_marker(Offset(10), Offset(16)));
        assert_eq!(indexes.take_dirty().len(), 2);
        indexes.truncate(Offset(16));
        assert!(!indexes.has_marker(Offset(10), Offset(16)));
        assert_eq!(
            indexes.take_dirty(),
            vec![(Offset(10), vec![entry(2, 8, 12, 13)])]
        );
        indexes.drop_below(Offset(10));
        assert!(!indexes.has_marker(Offset(0), Offset(5)));
        assert_eq!(indexes.collect(Offset(0), Offset(0), Offset(20)).len(), 1);
    }

    use crate::record::control::MarkerKind;
    use crate::storage::read::Isolation;
    use crate::storage::segment::TXN_INDEX_SUFFIX;
    use crate::storage::test_support::{EPOCH0, batch, open_log, run, small_config, txn_batch};
    use crate::types::ProducerEpoch;

    fn marker(producer: i64, kind: MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: ProducerId(producer),
            producer_epoch: ProducerEpoch(0),
            coordinator_epoch: 1,
            kind,
        }
    }

    /// Offsets 0-1 plain, 2-3 producer 1 (aborted at 7), 4 producer 2
    /// (committed at 8), 5-6 producer 1 again.
    async fn two_transactions(log: &PartitionLog) {
        log.append(&batch(2, 10, 0), EPOCH0).await.unwrap();
        log.append(&txn_batch(1, 0, 2), EPOCH0).await.unwrap();
        log.append(&txn_batch(2, 0, 1), EPOCH0).await.unwrap();
        log.append(&txn_batch(1, 2, 2), EPOCH0).await.unwrap();
        assert_eq!(log.last_stable_offset(), Offset(2));
        assert_eq!(
            log.append_marker(&marker(1, MarkerKind::Abort), EPOCH0)
                .await
                .unwrap(),
            Offset(7)
        );
        assert_eq!(log.last_stable_offset(), Offset(4));
        assert_eq!(
            log.append_marker(&marker(2, MarkerKind::Commit), EPOCH0)
                .await
                .unwrap(),
            Offset(8)
        );
        assert_eq!(log.last_stable_offset(), Offset(9));
    }

    fn index_path(dir: &std::path::Path) -> std::path::PathBuf {
        segment_file(dir, Offset(0), TXN_INDEX_SUFFIX)
    }

    #[test]
    fn markers_end_transactions_move_the_lso_and_index_aborts_on_disk() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            two_transactions(&log).await;
            let on_disk =
                txn_index::decode_entries(&std::fs::read(index_path(dir.path())).unwrap());
            assert_eq!(on_disk.unwrap(), vec![entry(1, 2, 7, 4)]);
            let refused = log
                .append_marker(
                    &TxnMarker {
                        coordinator_epoch: 0,
                        ..marker(1, MarkerKind::Commit)
                    },
                    EPOCH0,
                )
                .await;
            assert_eq!(
                refused.unwrap_err().error_code(),
                crate::protocol::error_code::ErrorCode::TransactionCoordinatorFenced
            );
            log.close().await.unwrap();
        });
    }

    #[test]
    fn read_committed_stops_at_the_lso_and_lists_the_aborted_transactions() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            log.append(&batch(2, 10, 0), EPOCH0).await.unwrap();
            log.append(&txn_batch(1, 0, 2), EPOCH0).await.unwrap();
            let open = log
                .read_isolated(Offset(0), 1 << 20, true, Isolation::ReadCommitted)
                .await
                .unwrap();
            assert_eq!(
                (
                    open.next_offset,
                    open.last_stable_offset,
                    open.high_watermark
                ),
                (Offset(2), Offset(2), Offset(4))
            );
            assert_eq!(open.aborted, Some(vec![]));
            let all = log.read(Offset(0), 1 << 20, true).await.unwrap();
            assert_eq!((all.next_offset, all.aborted), (Offset(4), None));

            log.append_marker(&marker(1, MarkerKind::Abort), EPOCH0)
                .await
                .unwrap();
            let done = log
                .read_isolated(Offset(0), 1 << 20, true, Isolation::ReadCommitted)
                .await
                .unwrap();
            assert_eq!(done.next_offset, Offset(5));
            assert_eq!(done.aborted, Some(vec![entry(1, 2, 4, 5)]));
            let after = log
                .read_isolated(Offset(5), 1 << 20, true, Isolation::ReadCommitted)
                .await
                .unwrap();
            assert_eq!((after.bytes, after.aborted), (0, Some(vec![])));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_restart_rebuilds_open_transactions_and_lost_or_torn_indexes() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            two_transactions(&log).await;
            log.append(&txn_batch(3, 0, 1), EPOCH0).await.unwrap();
            assert_eq!(log.last_stable_offset(), Offset(9));
            log.close().await.unwrap();

            // From the snapshot: producer 3's transaction is still open.
            let log = open_log(dir.path(), small_config()).await;
            assert_eq!(
                (log.last_stable_offset(), log.open_transactions()),
                (Offset(9), 1)
            );
            log.append(&txn_batch(4, 0, 1), EPOCH0).await.unwrap();
            log.append_marker(&marker(3, MarkerKind::Abort), EPOCH0)
                .await
                .unwrap();
            assert_eq!(log.last_stable_offset(), Offset(10));
            let expected = vec![entry(1, 2, 7, 4), entry(3, 9, 11, 10)];
            drop(log);

            // A crash that lost the index write: replayed from the snapshot.
            std::fs::remove_file(index_path(dir.path())).unwrap();
            let log = open_log(dir.path(), small_config()).await;
            assert_eq!(log.last_stable_offset(), Offset(10));
            assert_eq!(
                log.state.borrow().aborted.segments[&Offset(0)],
                expected[1..]
            );
            log.close().await.unwrap();

            // A torn index: everything rebuilt from the whole log.
            let mut torn = txn_index::encode_entries(&expected);
            torn.pop();
            std::fs::write(index_path(dir.path()), torn).unwrap();
            let log = open_log(dir.path(), small_config()).await;
            assert_eq!(log.last_stable_offset(), Offset(10));
            assert_eq!(log.state.borrow().aborted.segments[&Offset(0)], expected);
            let on_disk = std::fs::read(index_path(dir.path())).unwrap();
            assert_eq!(txn_index::decode_entries(&on_disk).unwrap(), expected);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn truncation_reopens_a_transaction_whose_marker_it_cuts() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), small_config()).await;
            two_transactions(&log).await;
            assert_eq!(log.truncate_to(Offset(7)).await.unwrap(), Offset(7));
            assert_eq!(log.last_stable_offset(), Offset(2));
            assert_eq!(log.open_transactions(), 2);
            assert!(!index_path(dir.path()).exists());
            log.close().await.unwrap();
        });
    }
}
