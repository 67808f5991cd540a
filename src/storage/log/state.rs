//! The mutable state of one partition log and the order its offsets keep: the
//! segments, the log start offset, how far data is written and synced, and what
//! the log refuses while it is paused, failed or closed.

use std::collections::VecDeque;

use crate::storage::config::Durability;
use crate::storage::error::LogError;
use crate::storage::leader_epoch::LeaderEpochCache;
use crate::storage::producer_state::{ProducerState, TxnMarker};
use crate::storage::segment::Segment;

use super::aborted::{AbortedIndexes, apply_marker};
use crate::types::Offset;

/// A point in the active segment: the offset after some batch and its end position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub offset: Offset,
    pub position: u64,
}

impl Mark {
    /// The start of an empty segment at `base`.
    pub fn start_of(base: Offset) -> Mark {
        Mark {
            offset: base,
            position: 0,
        }
    }
}

pub(super) struct LogState {
    /// In offset order; the back one is active.
    pub segments: VecDeque<Segment>,
    pub log_start: Offset,
    /// End of the data written to the active segment file.
    pub written: Mark,
    /// End of the data fdatasynced.
    pub durable: Mark,
    pub unsynced_bytes: u64,
    /// Set while the active segment is being replaced or cut; appends wait.
    pub paused: bool,
    /// Truncations so far: an append that waited across one had its batch synced
    /// by it (see `truncate_to`).
    pub truncations: u64,
    /// Set after a failed write or sync: the log refuses all work.
    pub failed: Option<String>,
    pub closed: bool,
    /// A bound on the high watermark from outside the log: with replication, the
    /// ISR's replication progress (`None`: no bound, the acknowledged end is the
    /// high watermark).
    pub high_watermark_bound: Option<Offset>,
    pub epochs: LeaderEpochCache,
    pub epochs_dirty: bool,
    pub producers: ProducerState,
    pub aborted: AbortedIndexes,
    /// The first offset the log cleaner has not mapped yet: below it every key's
    /// duplicates are gone (Kafka's cleaner checkpoint). Clamped into the log
    /// where it is used.
    pub first_dirty: Offset,
    /// The latest delete horizon a cleaner pass left on a batch, if it has not
    /// passed then: once it does, a pass is due to drop the tombstones and
    /// markers it guards even without new dirty records (Kafka's
    /// `latestDeleteHorizon`, KIP-534). Not kept across restarts, as in Kafka.
    pub pending_horizon: Option<crate::types::TimestampMs>,
}

impl LogState {
    /// The state of a log just opened, whose data ends at `end`.
    pub fn opened(
        segments: VecDeque<Segment>,
        log_start: Offset,
        end: Mark,
        epochs: LeaderEpochCache,
        epochs_dirty: bool,
    ) -> LogState {
        LogState {
            segments,
            log_start,
            written: end,
            durable: end,
            unsynced_bytes: 0,
            paused: false,
            truncations: 0,
            failed: None,
            closed: false,
            high_watermark_bound: None,
            epochs,
            epochs_dirty,
            producers: ProducerState::default(),
            aborted: AbortedIndexes::default(),
            first_dirty: log_start,
            pending_horizon: None,
        }
    }

    /// Applies a marker appended at `offset` in the segment at `segment_base`.
    pub fn end_txn(&mut self, marker: &TxnMarker, offset: Offset, segment_base: Offset) {
        apply_marker(
            &mut self.producers,
            &mut self.aborted,
            marker,
            offset,
            segment_base,
        );
    }

    pub fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    pub fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("a log always has an active segment")
    }

    pub fn check_usable(&self) -> Result<(), LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Offline(reason.clone()));
        }
        if self.closed {
            return Err(LogError::Offline("the log is closed".into()));
        }
        Ok(())
    }

    /// Failed logs refuse waiters; closed ones still let them finish.
    pub fn check_usable_or_closing(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(reason) => Err(LogError::Offline(reason.clone())),
            None => Ok(()),
        }
    }

    pub fn log_end(&self) -> Offset {
        self.active().next_offset
    }

    /// The end of what the durability policy acknowledges and readers may see.
    pub fn readable(&self, durability: Durability) -> Mark {
        match durability {
            Durability::Fsync => self.durable,
            Durability::Interval { .. } => self.written,
        }
    }

    /// The acknowledged end, lowered to the bound if one is set; never below the
    /// log start (a follower restarted past its leader's high watermark keeps
    /// the order log start <= high watermark, as Kafka's `updateHighWatermark`).
    pub fn high_watermark(&self, durability: Durability) -> Offset {
        let readable = self.readable(durability).offset;
        self.high_watermark_bound
            .map_or(readable, |bound| bound.max(self.log_start).min(readable))
    }

    pub fn offsets(&self, durability: Durability) -> LogOffsets {
        LogOffsets {
            log_start: self.log_start,
            high_watermark: self.high_watermark(durability),
            durable: self.durable.offset,
            written: self.written.offset,
            log_end: self.log_end(),
        }
    }

    /// Checks the offsets' order and that the marks lie inside the active segment.
    pub fn violation(&self, durability: Durability) -> Option<String> {
        if let Some(broken) = self.offsets(durability).violation(durability) {
            return Some(format!("{broken}: {:?}", self.offsets(durability)));
        }
        let active = self.active();
        let inside = active.base <= self.durable.offset
            && self.durable.position <= self.written.position
            && self.written.position <= active.size;
        (!inside).then(|| {
            format!(
                "marks outside the active segment (base {}, size {}): durable {:?}, written {:?}",
                active.base, active.size, self.durable, self.written
            )
        })
    }

    /// Checks the invariants where they change on hot paths (debug builds).
    pub fn debug_check(&self, durability: Durability) {
        debug_assert_eq!(self.violation(durability), None);
    }
}

/// The log's offsets at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start: Offset,
    pub high_watermark: Offset,
    pub durable: Offset,
    pub written: Offset,
    pub log_end: Offset,
}

impl LogOffsets {
    /// The first invariant that does not hold, if any: log start <= high watermark
    /// <= written <= log end, durable <= written, and under the fsync policy high
    /// watermark <= durable.
    pub fn violation(&self, durability: Durability) -> Option<&'static str> {
        if self.log_start > self.high_watermark {
            Some("the log start is above the high watermark")
        } else if self.high_watermark > self.written {
            Some("the high watermark is above the written offset")
        } else if self.written > self.log_end {
            Some("the written offset is above the log end")
        } else if self.durable > self.written {
            Some("the durable offset is above the written offset")
        } else if durability == Durability::Fsync && self.high_watermark > self.durable {
            Some("the high watermark is above the durable offset under the fsync policy")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const INTERVAL: Durability = Durability::Interval {
        interval: Duration::from_millis(100),
        bytes: 1 << 20,
    };

    fn offsets(
        log_start: i64,
        high_watermark: i64,
        durable: i64,
        written: i64,
        log_end: i64,
    ) -> LogOffsets {
        LogOffsets {
            log_start: Offset(log_start),
            high_watermark: Offset(high_watermark),
            durable: Offset(durable),
            written: Offset(written),
            log_end: Offset(log_end),
        }
    }

    #[test]
    fn offsets_in_order_hold() {
        assert_eq!(offsets(0, 5, 5, 8, 10).violation(Durability::Fsync), None);
        assert_eq!(offsets(3, 3, 3, 3, 3).violation(Durability::Fsync), None);
        assert_eq!(offsets(0, 8, 5, 8, 10).violation(INTERVAL), None);
    }

    #[test]
    fn each_broken_invariant_is_named() {
        assert!(
            offsets(6, 5, 5, 8, 10)
                .violation(Durability::Fsync)
                .unwrap()
                .contains("log start")
        );
        assert!(
            offsets(0, 9, 9, 8, 10)
                .violation(INTERVAL)
                .unwrap()
                .contains("high watermark is above the written")
        );
        assert!(
            offsets(0, 5, 5, 11, 10)
                .violation(INTERVAL)
                .unwrap()
                .contains("above the log end")
        );
        assert!(
            offsets(0, 5, 9, 8, 10)
                .violation(INTERVAL)
                .unwrap()
                .contains("durable offset is above")
        );
        assert!(
            offsets(0, 8, 5, 8, 10)
                .violation(Durability::Fsync)
                .unwrap()
                .contains("fsync policy")
        );
    }
}
