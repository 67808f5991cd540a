//! A zero-copy view over the 61-byte header of a v2 record batch.
//!
//! Layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//! base offset i64, batch length i32, partition leader epoch i32, magic i8,
//! crc u32, attributes i16, last offset delta i32, base timestamp i64,
//! max timestamp i64, producer id i64, producer epoch i16, base sequence i32,
//! record count i32, then the records. The CRC32C covers attributes..end.

use zerocopy::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::record::attributes::Attributes;
use crate::types::{LeaderEpoch, Offset, TimestampMs};

/// Bytes in front of every batch that `batch length` does not count (offset + length).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 header, records excluded.
pub const BATCH_HEADER_LEN: usize = 61;
/// Where the CRC-covered part of a batch starts (the attributes field).
pub const CRC_START: usize = 21;
/// The only magic Sluice stores.
pub const MAGIC_V2: i8 = 2;

/// The fixed header of a v2 record batch, read in place over its bytes.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

const _: () = assert!(size_of::<BatchHeader>() == BATCH_HEADER_LEN);

impl BatchHeader {
    /// The header at the start of `bytes`, if there are at least 61 bytes.
    pub fn parse(bytes: &[u8]) -> Option<&BatchHeader> {
        BatchHeader::ref_from_prefix(bytes)
            .ok()
            .map(|(header, _)| header)
    }

    pub fn base_offset(&self) -> Offset {
        Offset(self.base_offset.get())
    }

    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset.get() + i64::from(self.last_offset_delta.get()))
    }

    /// The offset after this batch's last one.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    /// Whole size of the batch on disk and on the wire, log overhead included.
    /// `None` when the length field is negative.
    pub fn total_len(&self) -> Option<usize> {
        usize::try_from(self.batch_length.get())
            .ok()
            .map(|len| len + LOG_OVERHEAD)
    }

    pub fn attributes(&self) -> Attributes {
        Attributes(self.attributes.get())
    }

    pub fn max_timestamp(&self) -> TimestampMs {
        TimestampMs(self.max_timestamp.get())
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.partition_leader_epoch.get())
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id.get() >= 0
    }
}

/// CRC32C of the part of a batch the header's CRC covers.
pub fn compute_crc(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= BATCH_HEADER_LEN);
    crc32c::crc32c(&batch[CRC_START..])
}

/// One whole batch, borrowed. Construct with [`crate::record::validate_batch`] or
/// [`RecordBatch::new_unchecked`] for bytes already validated (read back from disk).
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Wraps bytes whose header length already matches the slice.
    pub fn new_unchecked(bytes: &'a [u8]) -> RecordBatch<'a> {
        debug_assert!(bytes.len() >= BATCH_HEADER_LEN);
        RecordBatch { bytes }
    }

    pub fn header(&self) -> &'a BatchHeader {
        BatchHeader::parse(self.bytes).expect("a record batch holds a whole header")
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records section, after the header.
    pub fn records(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_LEN..]
    }

    pub fn crc_is_valid(&self) -> bool {
        compute_crc(self.bytes) == self.header().crc.get()
    }
}

/// One whole batch, mutable, for the fields the log assigns on append.
#[derive(Debug)]
pub struct RecordBatchMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> RecordBatchMut<'a> {
    pub fn new_unchecked(bytes: &'a mut [u8]) -> RecordBatchMut<'a> {
        debug_assert!(bytes.len() >= BATCH_HEADER_LEN);
        RecordBatchMut { bytes }
    }

    fn header_mut(&mut self) -> &mut BatchHeader {
        BatchHeader::mut_from_prefix(self.bytes)
            .expect("a record batch holds a whole header")
            .0
    }

    pub fn header(&self) -> &BatchHeader {
        BatchHeader::parse(self.bytes).expect("a record batch holds a whole header")
    }

    /// Base offset and leader epoch sit before the CRC-covered part: no CRC update.
    pub fn assign_offset_and_epoch(&mut self, base_offset: Offset, epoch: LeaderEpoch) {
        let header = self.header_mut();
        header.base_offset.set(base_offset.0);
        header.partition_leader_epoch.set(epoch.0);
    }

    /// Sets the LogAppendTime: timestamp type bit and max timestamp, then re-CRCs.
    pub fn assign_log_append_time(&mut self, now: TimestampMs) {
        let header = self.header_mut();
        let attributes = header
            .attributes()
            .with_timestamp_type(crate::record::TimestampType::LogAppendTime);
        header.attributes.set(attributes.0);
        header.max_timestamp.set(now.0);
        let crc = compute_crc(self.bytes);
        self.header_mut().crc.set(crc);
    }

    /// Writes every field the log assigns on append.
    pub fn assign(&mut self, assigned: &Assigned) {
        self.assign_offset_and_epoch(assigned.base_offset, assigned.leader_epoch);
        if let Some(now) = assigned.log_append_time {
            self.assign_log_append_time(now);
        }
    }

    pub fn as_batch(&self) -> RecordBatch<'_> {
        RecordBatch::new_unchecked(self.bytes)
    }
}

/// The fields the log assigns to a batch on append, patched where the batch is
/// stored (see [`RecordBatchMut::assign`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    pub base_offset: Offset,
    pub leader_epoch: LeaderEpoch,
    /// `Some(now)` on LogAppendTime topics: also sets the max timestamp, the
    /// timestamp type bit and the CRC.
    pub log_append_time: Option<TimestampMs>,
}

/// Whether `patched` is `original` with nothing changed but what
/// [`RecordBatchMut::assign`] writes for `assigned`.
pub fn only_assigned_fields_differ(original: &[u8], patched: &[u8], assigned: &Assigned) -> bool {
    use std::mem::offset_of;
    let (Some(before), Some(after)) = (BatchHeader::parse(original), BatchHeader::parse(patched))
    else {
        return false;
    };
    let same = |from: usize, to: usize| original.get(from..to) == patched.get(from..to);
    let batch_length = offset_of!(BatchHeader, batch_length);
    let epoch = offset_of!(BatchHeader, partition_leader_epoch);
    let magic = offset_of!(BatchHeader, magic);
    let crc = offset_of!(BatchHeader, crc);
    let last_offset_delta = offset_of!(BatchHeader, last_offset_delta);
    let max_timestamp = offset_of!(BatchHeader, max_timestamp);
    let producer_id = offset_of!(BatchHeader, producer_id);
    let untouched = original.len() == patched.len()
        && same(batch_length, epoch)
        && same(magic, crc)
        && same(last_offset_delta, max_timestamp)
        && same(producer_id, original.len());
    let assigned_here = after.base_offset() == assigned.base_offset
        && after.leader_epoch() == assigned.leader_epoch;
    let timestamps = match assigned.log_append_time {
        None => same(crc, last_offset_delta) && same(max_timestamp, producer_id),
        Some(now) => {
            let stamped = before
                .attributes()
                .with_timestamp_type(crate::record::TimestampType::LogAppendTime);
            after.max_timestamp() == now
                && after.attributes() == stamped
                && RecordBatch::new_unchecked(patched).crc_is_valid()
        }
    };
    untouched && assigned_here && timestamps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::builder::{NewRecord, build_batch};
    use crate::record::records::RecordIter;

    fn sample() -> Vec<u8> {
        build_batch(&[
            NewRecord {
                key: Some(b"a"),
                value: Some(b"1"),
                timestamp_ms: 500,
            },
            NewRecord {
                key: Some(b"b"),
                value: None,
                timestamp_ms: 490,
            },
            NewRecord {
                key: None,
                value: Some(b"333"),
                timestamp_ms: 520,
            },
        ])
    }

    #[test]
    fn header_view_reads_every_field() {
        let bytes = sample();
        let header = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(header.base_offset(), Offset(0));
        assert_eq!(header.total_len(), Some(bytes.len()));
        assert_eq!(header.magic, MAGIC_V2);
        assert_eq!(header.last_offset(), Offset(2));
        assert_eq!(header.next_offset(), Offset(3));
        assert_eq!(header.base_timestamp.get(), 500);
        assert_eq!(header.max_timestamp(), TimestampMs(520));
        assert_eq!(header.leader_epoch(), LeaderEpoch(-1));
        assert!(!header.has_producer_id());
        assert_eq!(header.records_count.get(), 3);
        assert!(RecordBatch::new_unchecked(&bytes).crc_is_valid());
        assert!(BatchHeader::parse(&bytes[..60]).is_none());
    }

    #[test]
    fn offset_and_epoch_assignment_keeps_the_crc() {
        let mut bytes = sample();
        let mut batch = RecordBatchMut::new_unchecked(&mut bytes);
        batch.assign_offset_and_epoch(Offset(1_000), LeaderEpoch(7));
        assert_eq!(batch.header().base_offset(), Offset(1_000));
        assert_eq!(batch.header().last_offset(), Offset(1_002));
        assert_eq!(batch.header().leader_epoch(), LeaderEpoch(7));
        assert!(batch.as_batch().crc_is_valid());
    }

    #[test]
    fn log_append_time_rewrites_the_crc() {
        let mut bytes = sample();
        let mut batch = RecordBatchMut::new_unchecked(&mut bytes);
        batch.assign_log_append_time(TimestampMs(9_999));
        assert_eq!(batch.header().max_timestamp(), TimestampMs(9_999));
        assert_eq!(
            batch.header().attributes().timestamp_type(),
            crate::record::TimestampType::LogAppendTime
        );
        assert!(batch.as_batch().crc_is_valid());
    }

    #[test]
    fn assigning_changes_only_the_assigned_fields() {
        let original = sample();
        let plain = Assigned {
            base_offset: Offset(1_000),
            leader_epoch: LeaderEpoch(7),
            log_append_time: None,
        };
        let mut patched = original.clone();
        RecordBatchMut::new_unchecked(&mut patched).assign(&plain);
        assert!(only_assigned_fields_differ(&original, &patched, &plain));
        assert_eq!(
            patched[21..],
            original[21..],
            "the CRC-covered part is untouched"
        );

        let stamped = Assigned {
            log_append_time: Some(TimestampMs(9_999)),
            ..plain
        };
        let mut patched = original.clone();
        RecordBatchMut::new_unchecked(&mut patched).assign(&stamped);
        assert!(only_assigned_fields_differ(&original, &patched, &stamped));
        assert!(RecordBatch::new_unchecked(&patched).crc_is_valid());
        assert_eq!(patched[BATCH_HEADER_LEN..], original[BATCH_HEADER_LEN..]);
        assert!(
            !only_assigned_fields_differ(&original, &patched, &plain),
            "a LogAppendTime patch is not a plain one"
        );

        let mut tampered = patched.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!only_assigned_fields_differ(&original, &tampered, &stamped));
        assert!(!only_assigned_fields_differ(&original, &original, &plain));
    }

    #[test]
    fn records_walk_offsets_and_timestamps() {
        let mut bytes = sample();
        RecordBatchMut::new_unchecked(&mut bytes)
            .assign_offset_and_epoch(Offset(10), LeaderEpoch(0));
        let positions: Vec<(i64, i64)> = RecordIter::new(RecordBatch::new_unchecked(&bytes))
            .map(|r| (r.offset.0, r.timestamp.0))
            .collect();
        assert_eq!(positions, vec![(10, 500), (11, 490), (12, 520)]);
    }

    #[test]
    fn crc32c_matches_the_known_vector() {
        // RFC 3720's check value for "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }
}
