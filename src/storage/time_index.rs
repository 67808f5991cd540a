//! The sparse time index of a segment: max timestamp so far -> offset.
//!
//! On disk it is Kafka's `.timeindex` format: 12-byte entries of (timestamp: i64 BE,
//! offset relative to the segment base: u32 BE), timestamps strictly increasing.

use crate::types::{Offset, TimestampMs};

/// Bytes of one entry on disk.
pub const ENTRY_LEN: usize = 12;

#[derive(Debug, Clone)]
pub struct TimeIndex {
    base: Offset,
    entries: Vec<(i64, u32)>,
}

/// Why a time index file could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeIndexFileError {
    #[error("size {0} is not a multiple of the entry size")]
    TornEntry(usize),
    #[error("entry {0} does not increase in timestamp and offset")]
    NotIncreasing(usize),
}

impl TimeIndex {
    pub fn new(base: Offset) -> TimeIndex {
        TimeIndex {
            base,
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `offset` holds the largest timestamp seen so far, if it is larger
    /// than the last entry's (the index only ever grows in timestamp).
    pub fn maybe_append(&mut self, timestamp: TimestampMs, offset: Offset) {
        let relative = u32::try_from(offset.0 - self.base.0).expect("offset within u32 of base");
        match self.entries.last() {
            Some(&(last_ts, last_rel)) if timestamp.0 <= last_ts || relative <= last_rel => {}
            _ => self.entries.push((timestamp.0, relative)),
        }
    }

    /// The entry with the largest timestamp at most `target`: records before its
    /// offset are all older than `target`, so a search may start there.
    pub fn lookup(&self, target: TimestampMs) -> Option<(TimestampMs, Offset)> {
        let after = self.entries.partition_point(|&(ts, _)| ts <= target.0);
        after.checked_sub(1).map(|index| self.entry(index))
    }

    pub fn last(&self) -> Option<(TimestampMs, Offset)> {
        self.entries
            .len()
            .checked_sub(1)
            .map(|index| self.entry(index))
    }

    fn entry(&self, index: usize) -> (TimestampMs, Offset) {
        let (ts, relative) = self.entries[index];
        (TimestampMs(ts), self.base.plus(i64::from(relative)))
    }

    /// Drops entries whose offset is at or past `offset`.
    pub fn truncate_from_offset(&mut self, offset: Offset) {
        let keep = self
            .entries
            .partition_point(|&(_, relative)| self.base.plus(i64::from(relative)) < offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for &(ts, relative) in &self.entries {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&relative.to_be_bytes());
        }
        out
    }

    pub fn decode(base: Offset, bytes: &[u8]) -> Result<TimeIndex, TimeIndexFileError> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return Err(TimeIndexFileError::TornEntry(bytes.len()));
        }
        let mut index = TimeIndex::new(base);
        for (entry_number, chunk) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
            let (ts, relative) = decode_entry(chunk.try_into().expect("exact chunk"));
            if let Some(&(last_ts, last_rel)) = index.entries.last()
                && (ts <= last_ts || relative <= last_rel)
            {
                return Err(TimeIndexFileError::NotIncreasing(entry_number));
            }
            index.entries.push((ts, relative));
        }
        Ok(index)
    }
}

/// One entry as stored: (timestamp, offset relative to the segment base).
/// Unchecked; [`TimeIndex::decode`] checks a whole file.
pub fn decode_entry(entry: &[u8; ENTRY_LEN]) -> (i64, u32) {
    let (timestamp, relative) = entry.split_at(8);
    (
        i64::from_be_bytes(timestamp.try_into().expect("8 bytes")),
        u32::from_be_bytes(relative.try_into().expect("4 bytes")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_monotonic_append() {
        let mut index = TimeIndex::new(Offset(10));
        index.maybe_append(TimestampMs(1000), Offset(10));
        index.maybe_append(TimestampMs(900), Offset(20));
        index.maybe_append(TimestampMs(2000), Offset(30));
        assert_eq!(index.len(), 2);
        assert_eq!(index.lookup(TimestampMs(999)), None);
        assert_eq!(
            index.lookup(TimestampMs(1500)),
            Some((TimestampMs(1000), Offset(10)))
        );
        assert_eq!(
            index.lookup(TimestampMs(2000)),
            Some((TimestampMs(2000), Offset(30)))
        );
        let decoded = TimeIndex::decode(Offset(10), &index.encode()).unwrap();
        assert_eq!(decoded.entries, index.entries);
        index.truncate_from_offset(Offset(30));
        assert_eq!(index.last(), Some((TimestampMs(1000), Offset(10))));
        assert_eq!(
            TimeIndex::decode(Offset(10), &[0u8; 13]).unwrap_err(),
            TimeIndexFileError::TornEntry(13)
        );
    }
}
