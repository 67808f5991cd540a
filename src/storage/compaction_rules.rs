//! The decisions of a cleaner pass, as pure functions over what it reads: which
//! records survive (Kafka's `shouldRetainRecord`), which batches of
//! transactions go (Kafka's `CleanedTransactionMetadata`), and how segments are
//! grouped into cleaned ones. `storage::log::clean` does the I/O around them.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::record::compaction::RecordView;
use crate::record::control::MarkerKind;
use crate::storage::offset_map::OffsetMap;
use crate::storage::producer_state::LastBatch;
use crate::storage::txn_index::AbortedTxn;
use crate::types::{Offset, ProducerEpoch, ProducerId, TimestampMs};

/// Whether a data record survives: it has a key, no later record of its key was
/// mapped, and if it is a tombstone, its batch's delete horizon (if the cleaner
/// stamped one) has not passed. Records at or past `map_end` were not mapped and
/// always stay.
pub fn keep_record(
    record: &RecordView<'_>,
    map: &OffsetMap,
    map_end: Offset,
    horizon: Option<TimestampMs>,
    now: TimestampMs,
) -> bool {
    let Some(key) = record.key else {
        // A keyless record has no place in a compacted log (produce refuses them).
        return false;
    };
    if record.offset >= map_end {
        return true;
    }
    if map.get(key).is_some_and(|latest| latest > record.offset) {
        return false;
    }
    record.has_value || horizon.is_none_or(|horizon| now < horizon)
}

/// Whether a batch is its producer's newest, kept (emptied if need be) so the
/// producer's sequence survives a restart.
pub fn is_last_of_producer(
    last: &HashMap<ProducerId, LastBatch>,
    producer_id: ProducerId,
    epoch: ProducerEpoch,
    last_offset: Offset,
    control: bool,
) -> bool {
    last.get(&producer_id)
        .is_some_and(|last| match last.last_data_offset {
            Some(offset) => offset == last_offset,
            None => control && last.epoch == epoch,
        })
}

/// The transactions a pass walks through, batch by batch in offset order: data
/// of aborted transactions goes; a marker may go once no data of its
/// transaction is left, which a pass knows when it saw none of it.
#[derive(Debug, Default)]
pub struct TxnTracker {
    /// Aborted transactions with data in the pass's range, by first offset, not
    /// reached yet.
    pending: VecDeque<AbortedTxn>,
    /// Aborted transactions reached and not ended by their marker yet, and
    /// whether the pass saw any of their data.
    aborted: HashMap<ProducerId, (AbortedTxn, bool)>,
    /// Producers whose committed transaction's data the pass saw.
    committed: HashSet<ProducerId>,
}

/// What a pass does with a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerFate {
    /// No data of its transaction is left: it goes once its delete horizon passed.
    pub removable: bool,
    /// The `.txnindex` entry the kept marker needs (an abort with data left).
    pub index_entry: Option<AbortedTxn>,
}

impl TxnTracker {
    /// A tracker over `aborted`, Kafka's collectAbortedTransactions of the range.
    pub fn new(mut aborted: Vec<AbortedTxn>) -> TxnTracker {
        aborted.sort_by_key(|txn| txn.first_offset);
        TxnTracker {
            pending: aborted.into(),
            ..TxnTracker::default()
        }
    }

    fn reach(&mut self, offset: Offset) {
        // Each iteration pops one: bounded by the transactions given.
        while self
            .pending
            .front()
            .is_some_and(|txn| txn.first_offset <= offset)
        {
            let txn = self.pending.pop_front().expect("front exists");
            self.aborted.entry(txn.producer_id).or_insert((txn, false));
        }
    }

    /// A data batch: `true` when it belongs to an aborted transaction and goes.
    pub fn on_data(
        &mut self,
        producer_id: ProducerId,
        transactional: bool,
        last_offset: Offset,
    ) -> bool {
        self.reach(last_offset);
        if !transactional {
            return false;
        }
        match self.aborted.get_mut(&producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committed.insert(producer_id);
                false
            }
        }
    }

    /// A marker of `kind` (`None`: a control batch emptied by an earlier pass).
    pub fn on_marker(
        &mut self,
        producer_id: ProducerId,
        kind: Option<MarkerKind>,
        last_offset: Offset,
    ) -> MarkerFate {
        self.reach(last_offset);
        match kind {
            Some(MarkerKind::Abort) => match self.aborted.remove(&producer_id) {
                Some((txn, true)) => MarkerFate {
                    removable: false,
                    index_entry: Some(txn),
                },
                _ => MarkerFate {
                    removable: true,
                    index_entry: None,
                },
            },
            Some(MarkerKind::Commit) => MarkerFate {
                removable: !self.committed.remove(&producer_id),
                index_entry: None,
            },
            None => MarkerFate {
                removable: true,
                index_entry: None,
            },
        }
    }
}

/// A sealed segment a pass may rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    pub base: Offset,
    /// The base of the segment after it: its offsets end before this.
    pub next_base: Offset,
    pub size: u64,
    /// Bytes of its offset index and of its time index.
    pub index_bytes: (u64, u64),
}

/// The most bytes either index of a cleaned segment may hold: Kafka's default
/// `segment.index.bytes`.
pub const MAX_INDEX_BYTES: u64 = 10 << 20;

/// Groups consecutive segments into cleaned ones, as Kafka's
/// `groupSegmentsBySize`: a group's input fits in `max_bytes` (a segment too
/// large for it is a group alone), each of its indexes in [`MAX_INDEX_BYTES`],
/// and its offsets span less than 2^31 so the indexes' 4-byte relative offsets
/// hold. Returns the number of segments of each group, in order.
pub fn group_segments(segments: &[SegmentSpan], max_bytes: u64) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut rest = segments;
    while let Some(first) = rest.first() {
        let mut size = first.size;
        let (mut offsets, mut times) = first.index_bytes;
        let mut count = 1;
        for next in &rest[1..] {
            let span = next.next_base.0 - 1 - first.base.0;
            let too_big = size + next.size > max_bytes
                || offsets + next.index_bytes.0 > MAX_INDEX_BYTES
                || times + next.index_bytes.1 > MAX_INDEX_BYTES;
            if too_big || span >= i64::from(i32::MAX) {
                break;
            }
            size += next.size;
            offsets += next.index_bytes.0;
            times += next.index_bytes.1;
            count += 1;
        }
        groups.push(count);
        rest = &rest[count..];
    }
    groups
}

/// Where a log stands for its cleaner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Below it every key's duplicates are gone.
    pub first_dirty: Offset,
    /// The end of what a pass may rewrite: the least of the last stable offset,
    /// the active segment's base and the `min.compaction.lag.ms` bound, rounded
    /// down to a segment boundary.
    pub clean_end: Offset,
    /// Bytes of the cleanable segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the cleanable segments from the one holding the first dirty offset.
    pub dirty_bytes: u64,
    /// Dirty records older than `max.compaction.lag.ms`: cleaned whatever the ratio.
    pub overdue: bool,
    /// The delete horizon a pass left has passed: tombstones or markers are due
    /// to go, whatever the ratio.
    pub horizon_passed: bool,
}

impl Cleanable {
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether a pass is due (Kafka's `LogCleanerManager.grabFilthiestCompactedLog`).
    pub fn is_due(&self, min_ratio: f64) -> bool {
        let dirty = self.dirty_bytes > 0 && (self.overdue || self.dirty_ratio() >= min_ratio);
        dirty || (self.horizon_passed && self.clean_bytes > 0)
    }
}

/// The cleanable segments (sealed, wholly below `uncleanable`) and how many
/// bytes of them are clean and dirty.
pub fn cleanable_spans(
    sealed: &[SegmentSpan],
    uncleanable: Offset,
    first_dirty: Offset,
) -> (Vec<SegmentSpan>, u64, u64) {
    let spans: Vec<SegmentSpan> = sealed
        .iter()
        .take_while(|span| span.next_base <= uncleanable)
        .copied()
        .collect();
    let clean = spans
        .iter()
        .filter(|span| span.next_base <= first_dirty)
        .map(|span| span.size)
        .sum();
    let dirty = spans
        .iter()
        .filter(|span| span.next_base > first_dirty)
        .map(|span| span.size)
        .sum();
    (spans, clean, dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer: i64, first: i64, marker: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(producer),
            first_offset: Offset(first),
            last_offset: Offset(marker),
            last_stable_offset: Offset(marker),
        }
    }

    fn view(offset: i64, key: Option<&[u8]>, has_value: bool) -> RecordView<'_> {
        RecordView {
            offset: Offset(offset),
            timestamp: TimestampMs(0),
            key,
            has_value,
            value: has_value.then_some(&b"v"[..]),
            headers: Default::default(),
        }
    }

    #[test]
    fn the_latest_record_per_key_stays_and_tombstones_until_their_horizon() {
        let mut map = OffsetMap::with_memory(1 << 16);
        map.put(b"a", Offset(5)).unwrap();
        map.put(b"b", Offset(7)).unwrap();
        let now = TimestampMs(1_000);
        let end = Offset(8);
        assert!(!keep_record(
            &view(1, Some(b"a"), true),
            &map,
            end,
            None,
            now
        ));
        assert!(keep_record(
            &view(5, Some(b"a"), true),
            &map,
            end,
            None,
            now
        ));
        assert!(
            keep_record(&view(3, Some(b"c"), true), &map, end, None, now),
            "unmapped key"
        );
        assert!(
            !keep_record(&view(3, None, true), &map, end, None, now),
            "keyless"
        );
        assert!(
            keep_record(&view(9, Some(b"a"), true), &map, end, None, now),
            "past the map"
        );
        // A tombstone: kept until its batch's horizon passes.
        assert!(keep_record(
            &view(7, Some(b"b"), false),
            &map,
            end,
            None,
            now
        ));
        let future = Some(TimestampMs(2_000));
        assert!(keep_record(
            &view(7, Some(b"b"), false),
            &map,
            end,
            future,
            now
        ));
        let past = Some(TimestampMs(500));
        assert!(!keep_record(
            &view(7, Some(b"b"), false),
            &map,
            end,
            past,
            now
        ));
    }

    #[test]
    fn aborted_data_goes_and_its_marker_stays_while_the_pass_saw_data() {
        let mut tracker = TxnTracker::new(vec![txn(1, 10, 20)]);
        assert!(
            !tracker.on_data(ProducerId(1), false, Offset(5)),
            "not transactional"
        );
        assert!(
            tracker.on_data(ProducerId(1), true, Offset(12)),
            "aborted data goes"
        );
        assert!(
            !tracker.on_data(ProducerId(2), true, Offset(14)),
            "committed data stays"
        );
        let fate = tracker.on_marker(ProducerId(1), Some(MarkerKind::Abort), Offset(20));
        assert_eq!(
            fate,
            MarkerFate {
                removable: false,
                index_entry: Some(txn(1, 10, 20))
            }
        );
        let commit = tracker.on_marker(ProducerId(2), Some(MarkerKind::Commit), Offset(21));
        assert!(!commit.removable, "its data is still there");
        // The next pass: no aborted data is left, and the commit marker of a
        // transaction whose data the pass did not see may go.
        let mut next = TxnTracker::new(vec![txn(1, 10, 20)]);
        let fate = next.on_marker(ProducerId(1), Some(MarkerKind::Abort), Offset(20));
        assert_eq!(
            fate,
            MarkerFate {
                removable: true,
                index_entry: None
            }
        );
        assert!(
            next.on_marker(ProducerId(3), Some(MarkerKind::Commit), Offset(30))
                .removable
        );
        assert!(next.on_marker(ProducerId(3), None, Offset(31)).removable);
    }

    #[test]
    fn producers_keep_their_newest_batch() {
        let last: HashMap<ProducerId, LastBatch> = [
            (
                ProducerId(1),
                LastBatch {
                    epoch: ProducerEpoch(0),
                    last_data_offset: Some(Offset(9)),
                },
            ),
            (
                ProducerId(2),
                LastBatch {
                    epoch: ProducerEpoch(3),
                    last_data_offset: None,
                },
            ),
        ]
        .into_iter()
        .collect();
        let epoch = ProducerEpoch(0);
        assert!(is_last_of_producer(
            &last,
            ProducerId(1),
            epoch,
            Offset(9),
            false
        ));
        assert!(!is_last_of_producer(
            &last,
            ProducerId(1),
            epoch,
            Offset(8),
            false
        ));
        assert!(is_last_of_producer(
            &last,
            ProducerId(2),
            ProducerEpoch(3),
            Offset(4),
            true
        ));
        assert!(!is_last_of_producer(
            &last,
            ProducerId(2),
            ProducerEpoch(3),
            Offset(4),
            false
        ));
        assert!(!is_last_of_producer(
            &last,
            ProducerId(7),
            epoch,
            Offset(4),
            false
        ));
    }

    #[test]
    fn segments_group_by_size_index_size_and_offset_span() {
        let span = |base: i64, next: i64, size: u64| SegmentSpan {
            base: Offset(base),
            next_base: Offset(next),
            size,
            index_bytes: (8, 12),
        };
        let spans = [
            span(0, 10, 40),
            span(10, 20, 40),
            span(20, 30, 40),
            span(30, 40, 100),
        ];
        assert_eq!(group_segments(&spans, 100), vec![2, 1, 1]);
        assert_eq!(group_segments(&spans, 1000), vec![4]);
        let wide = [span(0, 10, 1), span(10, 1 << 32, 1)];
        assert_eq!(group_segments(&wide, 1000), vec![1, 1]);
        assert!(group_segments(&[], 10).is_empty());
        assert_eq!(group_segments(&spans, 0), vec![1, 1, 1, 1], "no grouping");
        let indexed = |index_bytes| SegmentSpan {
            index_bytes,
            ..span(0, 10, 1)
        };
        let half = MAX_INDEX_BYTES / 2;
        let by_offsets = [indexed((half, 0)), indexed((half, 0)), indexed((1, 0))];
        assert_eq!(
            group_segments(&by_offsets, 1000),
            vec![2, 1],
            "offset index bound"
        );
        let by_times = [indexed((0, half + 1)), indexed((0, half))];
        assert_eq!(
            group_segments(&by_times, 1000),
            vec![1, 1],
            "time index bound"
        );
    }

    #[test]
    fn dirty_ratio_counts_the_cleanable_segments_only() {
        let span = |base: i64, next: i64, size: u64| SegmentSpan {
            base: Offset(base),
            next_base: Offset(next),
            size,
            index_bytes: (0, 0),
        };
        let sealed = [span(0, 10, 100), span(10, 20, 100), span(20, 30, 100)];
        let (spans, clean, dirty) = cleanable_spans(&sealed, Offset(25), Offset(10));
        assert_eq!((spans.len(), clean, dirty), (2, 100, 100));
        let cleanable = Cleanable {
            first_dirty: Offset(10),
            clean_end: Offset(20),
            clean_bytes: clean,
            dirty_bytes: dirty,
            overdue: false,
            horizon_passed: false,
        };
        assert_eq!(cleanable.dirty_ratio(), 0.5);
        assert!(cleanable.is_due(0.5));
        assert!(!cleanable.is_due(0.6));
        assert!(
            Cleanable {
                overdue: true,
                ..cleanable
            }
            .is_due(0.9)
        );
        let clean_only = Cleanable {
            dirty_bytes: 0,
            ..cleanable
        };
        assert!(!clean_only.is_due(0.0));
        assert!(
            Cleanable {
                horizon_passed: true,
                ..clean_only
            }
            .is_due(0.9),
            "expired tombstones make a pass due"
        );
    }
}
