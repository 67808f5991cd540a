//! The sparse offset index of a segment: relative offset -> file position.
//!
//! On disk it is Kafka's `.index` format: 8-byte entries of (offset relative to the
//! segment base: u32 BE, position: u32 BE). In memory it is a sorted vector; the
//! active segment's index is written to disk when the segment is sealed or closed.

use crate::types::Offset;

/// One index entry: the batch at `position` contains `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: Offset,
    pub position: u32,
}

/// Bytes of one entry on disk.
pub const ENTRY_LEN: usize = 8;

#[derive(Debug, Clone)]
pub struct OffsetIndex {
    base: Offset,
    relative: Vec<(u32, u32)>,
}

/// Why an index file could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexFileError {
    #[error("size {0} is not a multiple of the entry size")]
    TornEntry(usize),
    #[error("entry {0} is not after the one before it")]
    NotIncreasing(usize),
    #[error("entry {index} points at position {position}, past the segment end {segment_len}")]
    PastSegmentEnd {
        index: usize,
        position: u32,
        segment_len: u64,
    },
}

impl OffsetIndex {
    pub fn new(base: Offset) -> OffsetIndex {
        OffsetIndex {
            base,
            relative: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.relative.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relative.is_empty()
    }

    /// Adds an entry; entries must come in increasing offset and position order.
    pub fn append(&mut self, offset: Offset, position: u32) {
        let relative = self.relative_offset(offset);
        if let Some(&(last_offset, last_position)) = self.relative.last() {
            // The file format requires it; a broken one would be rebuilt on open.
            assert!(
                relative > last_offset && position > last_position,
                "offset index entries must increase"
            );
        }
        self.relative.push((relative, position));
    }

    fn relative_offset(&self, offset: Offset) -> u32 {
        let delta = offset.0 - self.base.0;
        u32::try_from(delta).expect("offset within u32 of the segment base")
    }

    fn entry(&self, (relative, position): (u32, u32)) -> IndexEntry {
        IndexEntry {
            offset: self.base.plus(i64::from(relative)),
            position,
        }
    }

    /// The last entry whose offset is at most `target`: the place to start scanning.
    /// `None` means scan from the start of the segment.
    pub fn lookup(&self, target: Offset) -> Option<IndexEntry> {
        if target < self.base {
            return None;
        }
        let relative = u32::try_from(target.0 - self.base.0).unwrap_or(u32::MAX);
        let after = self
            .relative
            .partition_point(|&(offset, _)| offset <= relative);
        after
            .checked_sub(1)
            .map(|index| self.entry(self.relative[index]))
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.relative.last().map(|&raw| self.entry(raw))
    }

    /// Drops every entry at or past `position` (after a truncation of the segment).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .relative
            .partition_point(|&(_, entry_position)| u64::from(entry_position) < position);
        self.relative.truncate(keep);
    }

    /// Drops every entry whose offset is past `offset`.
    pub fn truncate_after_offset(&mut self, offset: Offset) {
        let keep = self
            .relative
            .partition_point(|&(relative, _)| self.base.plus(i64::from(relative)) <= offset);
        self.relative.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.relative.len() * ENTRY_LEN);
        for &(relative, position) in &self.relative {
            out.extend_from_slice(&relative.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        out
    }

    /// Parses and checks an index file against the length of its segment.
    pub fn decode(
        base: Offset,
        bytes: &[u8],
        segment_len: u64,
    ) -> Result<OffsetIndex, IndexFileError> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return Err(IndexFileError::TornEntry(bytes.len()));
        }
        let mut index = OffsetIndex::new(base);
        for (entry_number, chunk) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
            let (relative, position) = decode_entry(chunk.try_into().expect("exact chunk"));
            if let Some(&(last_relative, last_position)) = index.relative.last()
                && (relative <= last_relative || position <= last_position)
            {
                return Err(IndexFileError::NotIncreasing(entry_number));
            }
            if u64::from(position) >= segment_len {
                return Err(IndexFileError::PastSegmentEnd {
                    index: entry_number,
                    position,
                    segment_len,
                });
            }
            index.relative.push((relative, position));
        }
        Ok(index)
    }
}

/// One entry as stored: (offset relative to the segment base, position).
/// Unchecked; [`OffsetIndex::decode`] checks a whole file.
pub fn decode_entry(entry: &[u8; ENTRY_LEN]) -> (u32, u32) {
    let relative = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
    let position = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
    (relative, position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OffsetIndex {
        let mut index = OffsetIndex::new(Offset(100));
        index.append(Offset(100), 0);
        index.append(Offset(150), 4096);
        index.append(Offset(210), 8300);
        index
    }

    #[test]
    fn lookup_finds_the_floor_entry() {
        let index = sample();
        assert_eq!(index.lookup(Offset(99)), None);
        assert_eq!(index.lookup(Offset(100)).map(|e| e.position), Some(0));
        assert_eq!(index.lookup(Offset(149)).map(|e| e.position), Some(0));
        assert_eq!(index.lookup(Offset(150)).map(|e| e.position), Some(4096));
        assert_eq!(index.lookup(Offset(209)).map(|e| e.position), Some(4096));
        assert_eq!(
            index.lookup(Offset(10_000)).map(|e| e.offset),
            Some(Offset(210))
        );
        assert_eq!(OffsetIndex::new(Offset(0)).lookup(Offset(5)), None);
    }

    #[test]
    fn round_trips_through_bytes() {
        let index = sample();
        let decoded = OffsetIndex::decode(Offset(100), &index.encode(), 9000).unwrap();
        assert_eq!(decoded.relative, index.relative);
    }

    #[test]
    fn refuses_bad_files() {
        let bytes = sample().encode();
        assert_eq!(
            OffsetIndex::decode(Offset(100), &bytes[..10], 9000).unwrap_err(),
            IndexFileError::TornEntry(10)
        );
        assert!(matches!(
            OffsetIndex::decode(Offset(100), &bytes, 8000),
            Err(IndexFileError::PastSegmentEnd { index: 2, .. })
        ));
        let mut swapped = bytes.clone();
        swapped[8..16].copy_from_slice(&bytes[16..24]);
        swapped[16..24].copy_from_slice(&bytes[8..16]);
        assert_eq!(
            OffsetIndex::decode(Offset(100), &swapped, 9000).unwrap_err(),
            IndexFileError::NotIncreasing(2)
        );
    }

    #[test]
    fn truncation_drops_the_tail() {
        let mut index = sample();
        index.truncate_to_position(4096);
        assert_eq!(index.len(), 1);
        let mut index = sample();
        index.truncate_after_offset(Offset(150));
        assert_eq!(index.last().map(|e| e.offset), Some(Offset(150)));
    }
}
