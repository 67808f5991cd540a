//! Idempotent and transactional producers, per partition, as Kafka's
//! ProducerStateManager keeps them: the epoch of each producer id, the sequence
//! ranges and offsets of its last five batches, the epoch of the coordinator
//! that last wrote a marker for it, and the first offset of its open
//! transaction. A retried batch is answered with its original offsets; a gap or
//! an old epoch is refused.
//!
//! Transactions: a producer's first transactional batch on the partition opens
//! its transaction at that batch's base offset; a marker (control batch) closes
//! it. The last stable offset is the first offset of the earliest transaction
//! that is still open, or whose marker is not yet readable (below the high
//! watermark), else the high watermark: a `read_committed` reader never sees
//! data whose fate is not durably decided.
//!
//! Snapshot file `producer-state.snapshot` (text), version 2: a version line,
//! the offset the snapshot covers up to, the offset of the latest marker (-1:
//! none), then per producer a line `p producer_id epoch coordinator_epoch
//! txn_first_offset last_timestamp` (-1: no open transaction, no timestamp)
//! followed by its batches, one line each: `b first_sequence last_sequence
//! base_offset last_offset`. Version 1 (the same without `last_timestamp`) and
//! version 0 (one line per batch: `producer_id epoch first_sequence
//! last_sequence base_offset last_offset`, no transactions) are still read. A
//! snapshot is only written with every marker readable, so it holds no
//! undecided completions.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::record::batch::RecordBatch;
use crate::record::control::{ControlError, EndTxnMarker, MarkerKind};
use crate::storage::error::ProducerError;
use crate::storage::summary::ProducerBatch;
use crate::types::{Offset, ProducerEpoch, ProducerId, TimestampMs};

pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";
/// Batches remembered per producer (Kafka's NUM_BATCHES_TO_RETAIN).
const BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; the least recently used without an open
/// transaction go first (an open transaction pins the LSO, so it is never
/// forgotten: it ends with its marker, written by the coordinator at the latest
/// when the transaction times out).
const MAX_PRODUCERS: usize = 100_000;
/// No coordinator has written a marker for the producer yet.
const NO_COORDINATOR_EPOCH: i32 = -1;

/// A transaction marker, as the coordinator sends it (WriteTxnMarkers) and as
/// the partition appends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub coordinator_epoch: i32,
    pub kind: MarkerKind,
}

impl TxnMarker {
    /// The marker a control batch holds (frame and CRC already checked).
    pub fn of_batch(batch: &[u8]) -> Result<TxnMarker, ControlError> {
        let batch = RecordBatch::new_unchecked(batch);
        let header = batch.header();
        let end = EndTxnMarker::from_batch(batch)?;
        Ok(TxnMarker {
            producer_id: ProducerId(header.producer_id.get()),
            producer_epoch: ProducerEpoch(header.producer_epoch.get()),
            coordinator_epoch: end.coordinator_epoch,
            kind: end.kind,
        })
    }

    /// The control batch of this marker, at base offset 0 (the log assigns the
    /// offset and leader epoch).
    pub fn build_batch(&self, timestamp: crate::types::TimestampMs) -> Vec<u8> {
        let end = EndTxnMarker {
            kind: self.kind,
            coordinator_epoch: self.coordinator_epoch,
        };
        end.build_batch(self.producer_id, self.producer_epoch, timestamp)
    }
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The last sequence of its newest batch remembered (-1: none).
    pub last_sequence: i32,
    /// The largest timestamp of its newest batch (NONE: not known, as after
    /// a restart from a version 0 or 1 snapshot).
    pub last_timestamp: TimestampMs,
    /// -1 until a marker for it was written.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here.
    pub current_txn_start_offset: Option<Offset>,
}

/// The newest batch of a producer, as the log cleaner must keep it (Kafka's
/// `lastRecordsOfActiveProducers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastBatch {
    pub epoch: ProducerEpoch,
    /// The last offset of its newest data batch remembered; `None` when the
    /// producer's newest entry is a marker.
    pub last_data_offset: Option<Offset>,
}

/// A transaction a marker ended on this partition (only transactions that had
/// data here: a marker for a producer with nothing open ends nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub kind: MarkerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchEntry {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: Offset,
    last_offset: Offset,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    coordinator_epoch: i32,
    /// The first offset of the producer's open transaction here.
    txn_first_offset: Option<Offset>,
    batches: VecDeque<BatchEntry>,
    /// The largest timestamp of its newest batch.
    last_timestamp: TimestampMs,
    /// Appends seen on this partition when the producer last wrote (for eviction).
    last_used: u64,
}

impl Default for ProducerEntry {
    fn default() -> ProducerEntry {
        ProducerEntry {
            epoch: 0,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            txn_first_offset: None,
            batches: VecDeque::new(),
            last_timestamp: TimestampMs::NONE,
            last_used: 0,
        }
    }
}

impl ProducerEntry {
    /// A new epoch forgets the old epoch's batches (sequences restart at 0).
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// A retry of a batch already in the log, at these offsets.
    Duplicate {
        base_offset: Offset,
        last_offset: Offset,
    },
}

#[derive(Debug, Clone, Default)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    appends: u64,
    /// Open transactions: first offset -> producer id. One per producer at most,
    /// so bounded like `producers`.
    ongoing: BTreeMap<Offset, i64>,
    /// Ended transactions whose marker may not be readable yet: first offset ->
    /// marker offset. Forgotten once the marker is below the high watermark.
    undecided: BTreeMap<Offset, Offset>,
    /// The offset of the latest marker appended (truncation must know whether it
    /// cuts one away).
    last_marker: Option<Offset>,
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

/// A producer Sluice has no state for, or one in a new epoch, starts at sequence 0.
fn starts_at_zero(batch: &ProducerBatch) -> Result<SequenceCheck, ProducerError> {
    if batch.first_sequence == 0 {
        Ok(SequenceCheck::Append)
    } else {
        Err(ProducerError::OutOfOrder {
            producer_id: batch.producer_id,
            got: batch.first_sequence,
            expected_after: None,
        })
    }
}

impl ProducerState {
    /// Kafka's checks of a producer's data batch: its epoch, then (for a
    /// client's batch) its sequence, then that it is transactional if the
    /// producer's transaction here is open.
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            if !batch.has_sequence() {
                return Ok(SequenceCheck::Append);
            }
            return starts_at_zero(batch);
        };
        if batch.epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        let check = if !batch.has_sequence() {
            SequenceCheck::Append
        } else if batch.epoch > entry.epoch {
            // A new epoch starts its sequences again at 0.
            starts_at_zero(batch)?
        } else if let Some(done) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return Ok(SequenceCheck::Duplicate {
                base_offset: done.base_offset,
                last_offset: done.last_offset,
            });
        } else {
            let last = entry.batches.back().map(|b| b.last_sequence);
            match last {
                Some(last) if next_sequence(last) == batch.first_sequence => SequenceCheck::Append,
                None if batch.first_sequence == 0 => SequenceCheck::Append,
                _ => {
                    return Err(ProducerError::OutOfOrder {
                        producer_id: batch.producer_id,
                        got: batch.first_sequence,
                        expected_after: last,
                    });
                }
            }
        };
        // Kafka's appendDataBatch: a plain write inside an open transaction.
        if entry.txn_first_offset.is_some() && !batch.transactional {
            return Err(ProducerError::NotTransactional {
                producer_id: batch.producer_id,
            });
        }
        Ok(check)
    }

    /// Each producer's newest batch: the cleaner keeps those batches, emptied if
    /// need be, so sequence checks still find them after a restart replays the log.
    pub fn last_batches(&self) -> HashMap<ProducerId, LastBatch> {
        self.producers
            .iter()
            .map(|(&id, entry)| {
                let last = LastBatch {
                    epoch: ProducerEpoch(entry.epoch),
                    last_data_offset: entry.batches.back().map(|b| b.last_offset),
                };
                (ProducerId(id), last)
            })
            .collect()
    }

    /// Records a batch appended at `base_offset..=last_offset`; a transactional
    /// one opens the producer's transaction if none is open. A batch without a
    /// sequence (the broker's) is not remembered for duplicate detection.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: Offset, last_offset: Offset) {
        self.appends += 1;
        self.make_room_for(batch.producer_id);
        let appends = self.appends;
        let entry = self.producers.entry(batch.producer_id).or_default();
        entry.set_epoch(batch.epoch);
        entry.last_used = appends;
        entry.last_timestamp = batch.max_timestamp;
        if batch.has_sequence() {
            entry.batches.push_back(BatchEntry {
                first_sequence: batch.first_sequence,
                last_sequence: batch.last_sequence,
                base_offset,
                last_offset,
            });
            while entry.batches.len() > BATCHES_KEPT {
                entry.batches.pop_front();
            }
        }
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
            let previous = self.ongoing.insert(base_offset, batch.producer_id);
            debug_assert_eq!(previous, None, "two transactions open at one offset");
        }
    }

    /// Forgets the least recently used producer without an open transaction when
    /// a new one would pass the bound.
    fn make_room_for(&mut self, producer_id: i64) {
        if self.producers.contains_key(&producer_id) || self.producers.len() < MAX_PRODUCERS {
            return;
        }
        let oldest = self
            .producers
            .iter()
            .filter(|(_, entry)| entry.txn_first_offset.is_none())
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(&id, _)| id);
        if let Some(oldest) = oldest {
            self.producers.remove(&oldest);
        }
    }

    /// Kafka's appendEndTxnMarker checks: the producer epoch may not go back and
    /// neither may the coordinator epoch (a zombie coordinator is fenced).
    pub fn check_marker(&self, marker: &TxnMarker) -> Result<(), ProducerError> {
        let Some(entry) = self.producers.get(&marker.producer_id.0) else {
            return Ok(());
        };
        if marker.producer_epoch.0 < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: marker.producer_id.0,
                epoch: marker.producer_epoch.0,
                current: entry.epoch,
            });
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced {
                producer_id: marker.producer_id.0,
                got: marker.coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker appended at `offset`: the producer takes its epoch and
    /// coordinator epoch, and its open transaction, if any, ends (returned).
    pub fn end_txn(&mut self, marker: &TxnMarker, offset: Offset) -> Option<CompletedTxn> {
        debug_assert!(self.last_marker.is_none_or(|last| last < offset));
        self.appends += 1;
        self.last_marker = Some(offset);
        self.make_room_for(marker.producer_id.0);
        let appends = self.appends;
        let entry = self.producers.entry(marker.producer_id.0).or_default();
        entry.set_epoch(marker.producer_epoch.0);
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_used = appends;
        let first_offset = entry.txn_first_offset.take()?;
        debug_assert!(first_offset < offset);
        let removed = self.ongoing.remove(&first_offset);
        debug_assert_eq!(removed, Some(marker.producer_id.0));
        self.undecided.insert(first_offset, offset);
        Some(CompletedTxn {
            producer_id: marker.producer_id,
            first_offset,
            last_offset: offset,
            kind: marker.kind,
        })
    }

    /// The LSO a completed transaction's index entry records (Kafka's
    /// `lastStableOffset(completedTxn)`): the first offset of the earliest
    /// transaction still open, else the offset after the marker.
    pub fn stable_offset_after(&self, completed: &CompletedTxn) -> Offset {
        debug_assert!(!self.ongoing.contains_key(&completed.first_offset));
        self.ongoing
            .keys()
            .next()
            .copied()
            .unwrap_or(completed.last_offset.plus(1))
    }

    /// The first offset no `read_committed` reader may pass while the log is
    /// readable up to `high_watermark`, if a transaction holds one back.
    pub fn first_unstable_offset(&self, high_watermark: Offset) -> Option<Offset> {
        let open = self.ongoing.keys().next().copied();
        let undecided = self
            .undecided
            .iter()
            .find(|(_, marker)| **marker >= high_watermark)
            .map(|(first, _)| *first);
        match (open, undecided) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// min(first unstable offset, high watermark).
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        self.first_unstable_offset(high_watermark)
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Forgets ended transactions whose marker is readable below `high_watermark`.
    pub fn forget_decided(&mut self, high_watermark: Offset) {
        self.undecided.retain(|_, marker| *marker >= high_watermark);
    }

    /// Whether any remembered batch, open transaction or marker lies at or after
    /// `offset`: if none does, cutting the log at `offset` leaves this state as it
    /// is (a producer's newest batches are the ones remembered).
    pub fn remembers_from(&self, offset: Offset) -> bool {
        self.last_marker.is_some_and(|marker| marker >= offset)
            || self.ongoing.range(offset..).next().is_some()
            || self.producers.values().any(|entry| {
                entry
                    .batches
                    .back()
                    .is_some_and(|b| b.last_offset >= offset)
            })
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Open transactions on the partition.
    pub fn open_transactions(&self) -> usize {
        self.ongoing.len()
    }

    /// Whether `producer_id` has an open transaction here (KIP-890's
    /// verification asks the coordinator only before a producer's first
    /// transactional batch on a partition).
    pub fn has_open_transaction(&self, producer_id: ProducerId) -> bool {
        self.producers
            .get(&producer_id.0)
            .is_some_and(|entry| entry.txn_first_offset.is_some())
    }

    /// Every producer remembered, by id (DescribeProducers).
    pub fn describe(&self) -> Vec<ProducerInfo> {
        let mut producers: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(&id, entry)| ProducerInfo {
                producer_id: ProducerId(id),
                producer_epoch: ProducerEpoch(entry.epoch),
                last_sequence: entry.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp: entry.last_timestamp,
                coordinator_epoch: entry.coordinator_epoch,
                current_txn_start_offset: entry.txn_first_offset,
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        producers
    }

    pub fn encode(&self, up_to: Offset) -> Vec<u8> {
        debug_assert!(
            self.first_unstable_offset(up_to) == self.ongoing.keys().next().copied(),
            "a snapshot is written with every marker readable"
        );
        let last_marker = self.last_marker.map_or(-1, |offset| offset.0);
        let mut text = format!("2\n{}\n{last_marker}\n", up_to.0);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &self.producers[id];
            let txn_first = entry.txn_first_offset.map_or(-1, |offset| offset.0);
            text.push_str(&format!(
                "p {id} {} {} {txn_first} {}\n",
                entry.epoch, entry.coordinator_epoch, entry.last_timestamp.0
            ));
            for batch in &entry.batches {
                text.push_str(&format!(
                    "b {} {} {} {}\n",
                    batch.first_sequence,
                    batch.last_sequence,
                    batch.base_offset.0,
                    batch.last_offset.0
                ));
            }
        }
        text.into_bytes()
    }

    /// Parses a snapshot (version 2, or the older versions 1 and 0): the state
    /// and the offset it covers up to.
    pub fn decode(bytes: &[u8]) -> Result<(ProducerState, Offset), String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        let version = lines.next();
        let up_to: i64 = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("missing snapshot offset")?;
        let state = match version {
            Some("0") => decode_v0(lines)?,
            Some("1") => decode_v1(lines, false)?,
            Some("2") => decode_v1(lines, true)?,
            _ => return Err("unknown snapshot version".into()),
        };
        Ok((state, Offset(up_to)))
    }
}

fn numbers(line: &str) -> Result<Vec<i64>, String> {
    line.split_whitespace()
        .map(|f| f.parse().map_err(|_| format!("bad snapshot line {line:?}")))
        .collect()
}

fn decode_v0<'a>(lines: impl Iterator<Item = &'a str>) -> Result<ProducerState, String> {
    let mut state = ProducerState::default();
    for line in lines {
        let [id, epoch, first, last, base, last_offset] = numbers(line)?[..] else {
            return Err(format!("bad snapshot line {line:?}"));
        };
        let batch = ProducerBatch {
            producer_id: id,
            epoch: epoch as i16,
            first_sequence: first as i32,
            last_sequence: last as i32,
            transactional: false,
            max_timestamp: TimestampMs::NONE,
        };
        state.record(&batch, Offset(base), Offset(last_offset));
    }
    Ok(state)
}

/// Versions 1 and 2; `with_timestamp`: version 2, whose producer lines end
/// with the last timestamp.
fn decode_v1<'a>(
    mut lines: impl Iterator<Item = &'a str>,
    with_timestamp: bool,
) -> Result<ProducerState, String> {
    let mut state = ProducerState::default();
    let last_marker: i64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("missing snapshot marker offset")?;
    state.last_marker = (last_marker >= 0).then_some(Offset(last_marker));
    let mut current: Option<i64> = None;
    for line in lines {
        let bad = || format!("bad snapshot line {line:?}");
        if let Some(rest) = line.strip_prefix("p ") {
            let fields = numbers(rest)?;
            let (id, epoch, coordinator_epoch, txn_first, last_timestamp) =
                match (with_timestamp, &fields[..]) {
                    (false, &[id, epoch, coordinator, first]) => {
                        (id, epoch, coordinator, first, TimestampMs::NONE)
                    }
                    (true, &[id, epoch, coordinator, first, timestamp]) => {
                        (id, epoch, coordinator, first, TimestampMs(timestamp))
                    }
                    _ => return Err(bad()),
                };
            state.appends += 1;
            let txn_first_offset = (txn_first >= 0).then_some(Offset(txn_first));
            if let Some(first) = txn_first_offset
                && state.ongoing.insert(first, id).is_some()
            {
                return Err(bad());
            }
            let entry = ProducerEntry {
                epoch: i16::try_from(epoch).map_err(|_| bad())?,
                coordinator_epoch: i32::try_from(coordinator_epoch).map_err(|_| bad())?,
                txn_first_offset,
                batches: VecDeque::new(),
                last_timestamp,
                last_used: state.appends,
            };
            if state.producers.insert(id, entry).is_some() {
                return Err(bad());
            }
            current = Some(id);
        } else if let Some(rest) = line.strip_prefix("b ") {
            let [first, last, base, last_offset] = numbers(rest)?[..] else {
                return Err(bad());
            };
            let entry = current
                .and_then(|id| state.producers.get_mut(&id))
                .ok_or_else(bad)?;
            if entry.batches.len() >= BATCHES_KEPT {
                return Err(bad());
            }
            entry.batches.push_back(BatchEntry {
                first_sequence: i32::try_from(first).map_err(|_| bad())?,
                last_sequence: i32::try_from(last).map_err(|_| bad())?,
                base_offset: Offset(base),
                last_offset: Offset(last_offset),
            });
        } else {
            return Err(bad());
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error_code::ErrorCode;

    fn batch(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: last,
            transactional: false,
            max_timestamp: TimestampMs(1_000 + i64::from(last)),
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut state = ProducerState::default();
        assert_eq!(
            state.check(&batch(0, 3, 4)).unwrap_err().error_code(),
            ErrorCode::OutOfOrderSequenceNumber
        );
        assert_eq!(state.check(&batch(0, 0, 4)), Ok(SequenceCheck::Append));
        state.record(&batch(0, 0, 4), Offset(100), Offset(104));
        assert_eq!(state.check(&batch(0, 5, 9)), Ok(SequenceCheck::Append));
        assert_eq!(
            state.check(&batch(0, 0, 4)),
            Ok(SequenceCheck::Duplicate {
                base_offset: Offset(100),
                last_offset: Offset(104)
            })
        );
        assert!(matches!(
            state.check(&batch(0, 7, 9)),
            Err(ProducerError::OutOfOrder { .. })
        ));
        for n in 1..=6 {
            state.record(
                &batch(0, n * 5, n * 5 + 4),
                Offset(100 + i64::from(n) * 5),
                Offset(104 + i64::from(n) * 5),
            );
        }
        // Only the last five batches are remembered.
        assert!(matches!(
            state.check(&batch(0, 5, 9)),
            Err(ProducerError::OutOfOrder { .. })
        ));
        assert!(matches!(
            state.check(&batch(0, 10, 14)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        assert_eq!(state.check(&batch(1, 0, 0)), Ok(SequenceCheck::Append));
        assert!(state.check(&batch(1, 3, 3)).is_err());
        state.record(&batch(1, 0, 0), Offset(200), Offset(200));
        assert_eq!(
            state.check(&batch(0, 35, 35)).unwrap_err().error_code(),
            ErrorCode::InvalidProducerEpoch
        );
        let (decoded, up_to) = ProducerState::decode(&state.encode(Offset(201))).unwrap();
        assert_eq!(up_to, Offset(201));
        assert_eq!(decoded.check(&batch(1, 1, 1)), Ok(SequenceCheck::Append));
        assert!(matches!(
            decoded.check(&batch(1, 0, 0)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
    }

    #[test]
    fn remembers_batches_up_to_their_last_offset() {
        let mut state = ProducerState::default();
        assert!(!state.remembers_from(Offset(0)));
        state.record(&batch(0, 0, 4), Offset(100), Offset(104));
        assert!(state.remembers_from(Offset(104)));
        assert!(!state.remembers_from(Offset(105)));
    }

    #[test]
    fn sequences_wrap_around() {
        let mut state = ProducerState::default();
        state.record(&batch(0, 0, i32::MAX), Offset(0), Offset(0));
        assert_eq!(state.check(&batch(0, 0, 3)), Ok(SequenceCheck::Append));
    }

    fn txn_batch(producer: i64, epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: producer,
            epoch,
            first_sequence: first,
            last_sequence: last,
            transactional: true,
            max_timestamp: TimestampMs(1_000 + i64::from(last)),
        }
    }

    fn marker(producer: i64, epoch: i16, coordinator_epoch: i32, kind: MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: ProducerId(producer),
            producer_epoch: ProducerEpoch(epoch),
            coordinator_epoch,
            kind,
        }
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_hold_the_lso_until_their_marker_is_readable() {
        let mut state = ProducerState::default();
        state.record(&batch(0, 0, 1), Offset(0), Offset(1));
        assert_eq!(state.last_stable_offset(Offset(2)), Offset(2));
        state.record(&txn_batch(1, 0, 0, 1), Offset(2), Offset(3));
        state.record(&txn_batch(2, 0, 0, 0), Offset(4), Offset(4));
        state.record(&txn_batch(1, 0, 2, 2), Offset(5), Offset(5));
        assert_eq!(state.open_transactions(), 2);
        assert!(state.has_open_transaction(ProducerId(2)));
        assert!(!state.has_open_transaction(ProducerId(7)));
        assert_eq!(state.last_stable_offset(Offset(6)), Offset(2));
        assert_eq!(state.last_stable_offset(Offset(1)), Offset(1));

        let done = state
            .end_txn(&marker(1, 0, 0, MarkerKind::Abort), Offset(6))
            .unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: ProducerId(1),
                first_offset: Offset(2),
                last_offset: Offset(6),
                kind: MarkerKind::Abort
            }
        );
        assert_eq!(state.stable_offset_after(&done), Offset(4));
        assert_eq!(
            state.last_stable_offset(Offset(6)),
            Offset(2),
            "the marker is not readable yet"
        );
        assert_eq!(state.last_stable_offset(Offset(7)), Offset(4));
        let done = state
            .end_txn(&marker(2, 0, 0, MarkerKind::Commit), Offset(7))
            .unwrap();
        assert_eq!(state.stable_offset_after(&done), Offset(8));
        state.forget_decided(Offset(8));
        assert_eq!(state.last_stable_offset(Offset(8)), Offset(8));
        assert_eq!(state.first_unstable_offset(Offset(8)), None);
        assert_eq!(
            state.end_txn(&marker(2, 0, 0, MarkerKind::Commit), Offset(8)),
            None,
            "a marker for a producer with nothing open ends nothing"
        );
    }

    #[test]
    fn markers_refuse_old_producer_and_coordinator_epochs_and_take_new_ones() {
        let mut state = ProducerState::default();
        assert_eq!(
            state.check_marker(&marker(1, 3, 5, MarkerKind::Abort)),
            Ok(())
        );
        state.record(&txn_batch(1, 2, 0, 0), Offset(0), Offset(0));
        state.end_txn(&marker(1, 2, 5, MarkerKind::Abort), Offset(1));
        assert_eq!(
            state
                .check_marker(&marker(1, 1, 5, MarkerKind::Commit))
                .unwrap_err()
                .error_code(),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            state
                .check_marker(&marker(1, 2, 4, MarkerKind::Commit))
                .unwrap_err()
                .error_code(),
            ErrorCode::TransactionCoordinatorFenced
        );
        assert_eq!(
            state.check_marker(&marker(1, 3, 6, MarkerKind::Commit)),
            Ok(())
        );
        // A marker with a bumped epoch (an abort on timeout) restarts sequences.
        state.end_txn(&marker(1, 3, 6, MarkerKind::Abort), Offset(2));
        assert!(state.check(&txn_batch(1, 3, 1, 1)).is_err());
        assert_eq!(
            state.check(&txn_batch(1, 3, 0, 0)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn a_plain_batch_inside_an_open_transaction_is_refused() {
        let mut state = ProducerState::default();
        state.record(&txn_batch(7, 0, 0, 0), Offset(0), Offset(0));
        assert_eq!(
            state.check(&batch(0, 1, 1)).unwrap_err().error_code(),
            ErrorCode::InvalidTxnState
        );
        assert_eq!(
            state.check(&txn_batch(7, 0, 1, 1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn snapshots_keep_open_transactions_and_read_version_0() {
        let mut state = ProducerState::default();
        state.record(&txn_batch(1, 0, 0, 1), Offset(0), Offset(1));
        state.record(&txn_batch(2, 4, 0, 0), Offset(2), Offset(2));
        state.end_txn(&marker(2, 4, 9, MarkerKind::Commit), Offset(3));
        state.record(&batch(0, 0, 0), Offset(4), Offset(4));
        let text = state.encode(Offset(5));
        assert!(text.starts_with(b"2\n5\n3\n"));
        let (decoded, up_to) = ProducerState::decode(&text).unwrap();
        assert_eq!(up_to, Offset(5));
        assert_eq!(decoded.last_stable_offset(Offset(5)), Offset(0));
        assert_eq!(decoded.encode(Offset(5)), text);
        assert_eq!(decoded.describe(), state.describe());
        assert_eq!(decoded.describe()[0].last_timestamp, TimestampMs(1_001));
        assert!(decoded.remembers_from(Offset(3)), "the marker at 3");
        assert_eq!(
            decoded
                .check_marker(&marker(2, 4, 8, MarkerKind::Commit))
                .unwrap_err()
                .error_code(),
            ErrorCode::TransactionCoordinatorFenced
        );
        assert!(matches!(
            decoded.check(&txn_batch(1, 0, 0, 1)),
            Ok(SequenceCheck::Duplicate { .. })
        ));

        let (old, up_to) = ProducerState::decode(b"0\n9\n7 1 0 4 5 9\n").unwrap();
        assert_eq!((old.len(), up_to), (1, Offset(9)));
        assert_eq!(old.check(&batch(1, 5, 5)), Ok(SequenceCheck::Append));
        assert_eq!(old.last_stable_offset(Offset(9)), Offset(9));
        assert!(ProducerState::decode(b"1\n9\n-1\nb 0 0 1 1\n").is_err());
        assert!(ProducerState::decode(b"3\n9\n").is_err());
        let (v1, _) = ProducerState::decode(b"1\n9\n-1\np 7 1 -1 -1\nb 0 4 5 9\n").unwrap();
        assert_eq!(v1.describe()[0].last_timestamp, TimestampMs::NONE);
        assert_eq!(v1.check(&batch(1, 5, 5)), Ok(SequenceCheck::Append));
        assert!(ProducerState::decode(b"2\n9\n-1\np 7 1 -1 -1\n").is_err());
    }

    #[test]
    fn the_brokers_own_transactional_batches_skip_sequence_checks_but_open_the_transaction() {
        let mut state = ProducerState::default();
        let offsets = txn_batch(9, 1, ProducerBatch::NO_SEQUENCE, ProducerBatch::NO_SEQUENCE);
        assert_eq!(state.check(&offsets), Ok(SequenceCheck::Append));
        state.record(&offsets, Offset(3), Offset(3));
        assert_eq!(state.check(&offsets), Ok(SequenceCheck::Append));
        state.record(&offsets, Offset(4), Offset(4));
        assert_eq!(state.last_stable_offset(Offset(5)), Offset(3));
        assert_eq!(
            state
                .check(&txn_batch(
                    9,
                    0,
                    ProducerBatch::NO_SEQUENCE,
                    ProducerBatch::NO_SEQUENCE
                ))
                .unwrap_err()
                .error_code(),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            state.describe(),
            vec![ProducerInfo {
                producer_id: ProducerId(9),
                producer_epoch: ProducerEpoch(1),
                last_sequence: -1,
                last_timestamp: TimestampMs(999),
                coordinator_epoch: NO_COORDINATOR_EPOCH,
                current_txn_start_offset: Some(Offset(3)),
            }]
        );
        let done = state.end_txn(&marker(9, 1, 0, MarkerKind::Commit), Offset(5));
        assert_eq!(done.map(|t| t.first_offset), Some(Offset(3)));
        assert_eq!(state.describe()[0].current_txn_start_offset, None);
    }
}
