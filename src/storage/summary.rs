//! What the storage engine keeps of one stored batch: where it is, its offsets,
//! its largest timestamp and its idempotent-producer fields. Plain data, read from
//! a batch header; appends, recovery, reads and producer state all use it.

use crate::record::batch::BatchHeader;
use crate::types::{LeaderEpoch, Offset, TimestampMs};

/// One batch of a segment, as its header describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub position: u64,
    pub len: u64,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: TimestampMs,
    pub leader_epoch: LeaderEpoch,
    pub producer: Option<ProducerBatch>,
    /// A control batch (a transaction marker): its record says which.
    pub control: bool,
}

/// The idempotence fields of a data batch written by a producer with an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// Part of the producer's transaction on this partition.
    pub transactional: bool,
    /// The batch's largest timestamp (DescribeProducers' last timestamp).
    pub max_timestamp: TimestampMs,
}

impl ProducerBatch {
    /// Kafka's NO_SEQUENCE: a batch the broker wrote for the producer (the group
    /// coordinator's transactional offset commits); a client's batch with a
    /// producer id always has a sequence (`record::validate` refuses it otherwise).
    pub const NO_SEQUENCE: i32 = -1;

    /// Whether sequence checks apply (a client's batch, not the broker's).
    pub fn has_sequence(&self) -> bool {
        self.first_sequence != ProducerBatch::NO_SEQUENCE
    }

    /// `None` for batches without a producer id and for control batches (markers
    /// carry no sequence; they end a transaction instead).
    pub fn of(header: &BatchHeader) -> Option<ProducerBatch> {
        let attributes = header.attributes();
        if !header.has_producer_id() || attributes.is_control() {
            return None;
        }
        let first_sequence = header.base_sequence.get();
        let count = header.last_offset_delta.get();
        Some(ProducerBatch {
            producer_id: header.producer_id.get(),
            epoch: header.producer_epoch.get(),
            first_sequence,
            // Sequences wrap from i32::MAX to 0, as in Kafka's DefaultRecordBatch.
            last_sequence: ((i64::from(first_sequence) + i64::from(count))
                % (i64::from(i32::MAX) + 1)) as i32,
            transactional: attributes.is_transactional(),
            max_timestamp: header.max_timestamp(),
        })
    }
}

impl BatchSummary {
    pub fn of(header: &BatchHeader, position: u64, len: u64) -> BatchSummary {
        BatchSummary {
            position,
            len,
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp(),
            leader_epoch: header.leader_epoch(),
            producer: ProducerBatch::of(header),
            control: header.attributes().is_control(),
        }
    }

    pub fn end(&self) -> u64 {
        self.position + self.len
    }
}
