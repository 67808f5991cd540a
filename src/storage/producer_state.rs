//! Idempotent producers, per partition: the epoch of each producer id and the
//! sequence ranges and offsets of its last five batches, as Kafka's
//! ProducerStateManager keeps them. A retried batch is answered with its original
//! offsets; a gap or an old epoch is refused.
//!
//! Snapshot file `producer-state.snapshot` (text): a version line, the offset the
//! snapshot covers up to, then one line per batch:
//! `producer_id epoch first_sequence last_sequence base_offset last_offset`.

use std::collections::{HashMap, VecDeque};

use crate::storage::error::ProducerError;
use crate::storage::summary::ProducerBatch;
use crate::types::Offset;

pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";
/// Batches remembered per producer (Kafka's NUM_BATCHES_TO_RETAIN).
const BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; the least recently used go first.
const MAX_PRODUCERS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchEntry {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: Offset,
    last_offset: Offset,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchEntry>,
    /// Appends seen on this partition when the producer last wrote (for eviction).
    last_used: u64,
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
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return starts_at_zero(batch);
        };
        if batch.epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if batch.epoch > entry.epoch {
            // A new epoch starts its sequences again at 0.
            return starts_at_zero(batch);
        }
        if let Some(done) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return Ok(SequenceCheck::Duplicate {
                base_offset: done.base_offset,
                last_offset: done.last_offset,
            });
        }
        let last = entry.batches.back().map(|b| b.last_sequence);
        match last {
            Some(last) if next_sequence(last) == batch.first_sequence => Ok(SequenceCheck::Append),
            None if batch.first_sequence == 0 => Ok(SequenceCheck::Append),
            _ => Err(ProducerError::OutOfOrder {
                producer_id: batch.producer_id,
                got: batch.first_sequence,
                expected_after: last,
            }),
        }
    }

    /// Records a batch appended at `base_offset..=last_offset`.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: Offset, last_offset: Offset) {
        self.appends += 1;
        let appends = self.appends;
        if !self.producers.contains_key(&batch.producer_id) && self.producers.len() >= MAX_PRODUCERS
        {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(&id, _)| id);
            if let Some(oldest) = oldest {
                self.producers.remove(&oldest);
            }
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        entry.last_used = appends;
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

    /// Whether any remembered batch holds an offset at or after `offset`: if none
    /// does, cutting the log at `offset` leaves this state as it is (a producer's
    /// newest batches are the ones remembered).
    pub fn remembers_from(&self, offset: Offset) -> bool {
        self.producers.values().any(|entry| {
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

    pub fn encode(&self, up_to: Offset) -> Vec<u8> {
        let mut text = format!("0\n{}\n", up_to.0);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &self.producers[id];
            for batch in &entry.batches {
                text.push_str(&format!(
                    "{id} {} {} {} {} {}\n",
                    entry.epoch,
                    batch.first_sequence,
                    batch.last_sequence,
                    batch.base_offset.0,
                    batch.last_offset.0
                ));
            }
        }
        text.into_bytes()
    }

    /// Parses a snapshot: the state and the offset it covers up to.
    pub fn decode(bytes: &[u8]) -> Result<(ProducerState, Offset), String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err("unknown snapshot version".into());
        }
        let up_to: i64 = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("missing snapshot offset")?;
        let mut state = ProducerState::default();
        for line in lines {
            let fields: Vec<i64> = line
                .split_whitespace()
                .map(|f| f.parse().map_err(|_| format!("bad snapshot line {line:?}")))
                .collect::<Result<_, _>>()?;
            let [id, epoch, first, last, base, last_offset] = fields[..] else {
                return Err(format!("bad snapshot line {line:?}"));
            };
            let batch = ProducerBatch {
                producer_id: id,
                epoch: epoch as i16,
                first_sequence: first as i32,
                last_sequence: last as i32,
            };
            state.record(&batch, Offset(base), Offset(last_offset));
        }
        Ok((state, Offset(up_to)))
    }
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
}
