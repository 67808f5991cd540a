//! Walks the records of a v2 batch: offset, timestamp and key presence of each.
//! Works on the records section as stored (uncompressed batches) or inflated
//! ([`crate::record::compression`]).

use crate::record::attributes::Compression;
use crate::record::batch::{BatchHeader, RecordBatch};
use crate::record::compression::{DecompressError, decompress};
use crate::record::varint::read_varlong;
use crate::types::{Offset, TimestampMs};

/// What the broker needs of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub offset_delta: i64,
    pub offset: Offset,
    pub timestamp: TimestampMs,
    pub has_key: bool,
}

/// The records section of a batch, inflated if the batch is compressed.
pub fn records_section(batch: RecordBatch<'_>, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = batch
        .header()
        .attributes()
        .compression()
        .unwrap_or(Compression::None);
    decompress(codec, batch.records(), limit)
}

/// Iterates records; stops (yields `None`) at the first malformed record rather
/// than trusting its lengths, and after the header's record count.
pub struct RecordIter<'a> {
    rest: &'a [u8],
    base_offset: Offset,
    base_timestamp: i64,
    remaining: i32,
}

impl<'a> RecordIter<'a> {
    /// The records of an uncompressed batch.
    pub fn new(batch: RecordBatch<'a>) -> RecordIter<'a> {
        RecordIter::over(batch.header(), batch.records())
    }

    /// `records` is the (inflated) records section of the batch `header` heads.
    pub fn over(header: &BatchHeader, records: &'a [u8]) -> RecordIter<'a> {
        RecordIter {
            rest: records,
            base_offset: header.base_offset(),
            base_timestamp: header.base_timestamp.get(),
            remaining: header.records_count.get(),
        }
    }

    /// True once every record the header counts was read and nothing is left.
    pub fn is_exhausted(&self) -> bool {
        self.remaining <= 0 && self.rest.is_empty()
    }
}

impl Iterator for RecordIter<'_> {
    type Item = RecordMeta;

    fn next(&mut self) -> Option<RecordMeta> {
        if self.remaining <= 0 {
            return None;
        }
        let (length, length_len) = read_varlong(self.rest)?;
        let length = usize::try_from(length).ok()?;
        let body = self.rest.get(length_len..length_len + length)?;
        // Body: attributes (1 byte), timestamp delta, offset delta, key, value, headers.
        let after_attributes = body.get(1..)?;
        let (timestamp_delta, used) = read_varlong(after_attributes)?;
        let after_timestamp = &after_attributes[used..];
        let (offset_delta, used) = read_varlong(after_timestamp)?;
        let (key_length, _) = read_varlong(&after_timestamp[used..])?;
        self.rest = &self.rest[length_len + length..];
        self.remaining -= 1;
        Some(RecordMeta {
            offset_delta,
            offset: self.base_offset.plus(offset_delta),
            timestamp: TimestampMs(self.base_timestamp.wrapping_add(timestamp_delta)),
            has_key: key_length >= 0,
        })
    }
}
