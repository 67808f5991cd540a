//! Walks the records of an uncompressed v2 batch (offset and timestamp of each).

use crate::record::batch::RecordBatch;
use crate::record::varint::read_varlong;
use crate::types::{Offset, TimestampMs};

/// What a timestamp lookup needs of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    pub offset: Offset,
    pub timestamp: TimestampMs,
}

/// Iterates the records of an uncompressed batch; stops (yields `None`) at the first
/// malformed record rather than trusting its lengths.
pub struct RecordIter<'a> {
    rest: &'a [u8],
    base_offset: Offset,
    base_timestamp: i64,
    remaining: i32,
}

impl<'a> RecordIter<'a> {
    pub fn new(batch: RecordBatch<'a>) -> RecordIter<'a> {
        let header = batch.header();
        RecordIter {
            rest: batch.records(),
            base_offset: header.base_offset(),
            base_timestamp: header.base_timestamp.get(),
            remaining: header.records_count.get(),
        }
    }
}

impl Iterator for RecordIter<'_> {
    type Item = RecordPosition;

    fn next(&mut self) -> Option<RecordPosition> {
        if self.remaining <= 0 {
            return None;
        }
        let (length, length_len) = read_varlong(self.rest)?;
        let length = usize::try_from(length).ok()?;
        let body = self.rest.get(length_len..length_len + length)?;
        // Body: attributes (1 byte), timestamp delta, offset delta, key, value, headers.
        let after_attributes = body.get(1..)?;
        let (timestamp_delta, used) = read_varlong(after_attributes)?;
        let (offset_delta, _) = read_varlong(&after_attributes[used..])?;
        self.rest = &self.rest[length_len + length..];
        self.remaining -= 1;
        Some(RecordPosition {
            offset: self.base_offset.plus(offset_delta),
            timestamp: TimestampMs(self.base_timestamp.wrapping_add(timestamp_delta)),
        })
    }
}
