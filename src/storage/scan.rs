//! Walks batch headers through a segment without reading whole batches: the read
//! path and timestamp lookups use it to find batch boundaries.

use std::ops::Deref;
use std::rc::Rc;

use glommio::io::{DmaFile, ReadResult};

use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, MAGIC_V2};
use crate::storage::error::{LogError, io};
use crate::storage::segment_reader::SegmentReader;
use crate::storage::tail_cache::TailSnapshot;
use crate::types::{LeaderEpoch, Offset, TimestampMs};

/// Bytes read at once while walking headers.
const WINDOW: usize = 64 << 10;

/// What the read path needs of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub position: u64,
    pub len: u64,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: TimestampMs,
    pub leader_epoch: LeaderEpoch,
    pub producer: Option<ProducerBatch>,
}

/// The idempotence fields of a batch written by a producer with an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

impl ProducerBatch {
    pub fn of(header: &BatchHeader) -> Option<ProducerBatch> {
        if !header.has_producer_id() {
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
        }
    }

    pub fn end(&self) -> u64 {
        self.position + self.len
    }
}

/// Bytes read from disk or copied from the tail cache.
pub enum Bytes {
    Disk(ReadResult),
    Memory(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Disk(result) => result,
            Bytes::Memory(vec) => vec,
        }
    }
}

/// One segment's file and cached tail, detached from the log so a read can await.
#[derive(Clone)]
pub struct SegmentSource {
    pub file: Rc<DmaFile>,
    pub reader: Rc<SegmentReader>,
    pub tail: TailSnapshot,
}

impl SegmentSource {
    /// Up to `len` bytes from `position`: from the tail cache when it holds them.
    pub async fn read(&self, position: u64, len: usize) -> Result<Bytes, LogError> {
        let mut copy = Vec::new();
        if self.tail.copy(position, position + len as u64, &mut copy) {
            return Ok(Bytes::Memory(copy));
        }
        let bytes = self.file.read_at(position, len).await.map_err(io)?;
        Ok(Bytes::Disk(bytes))
    }
}

/// Iterates batch summaries from `position` up to `end` (a batch boundary).
pub struct HeaderScanner<'a> {
    source: &'a SegmentSource,
    position: u64,
    end: u64,
    window: Option<(u64, Bytes)>,
}

impl<'a> HeaderScanner<'a> {
    pub fn new(source: &'a SegmentSource, position: u64, end: u64) -> HeaderScanner<'a> {
        HeaderScanner {
            source,
            position,
            end,
            window: None,
        }
    }

    pub async fn next(&mut self) -> Result<Option<BatchSummary>, LogError> {
        if self.position >= self.end {
            return Ok(None);
        }
        let position = self.position;
        if self.end - position < BATCH_HEADER_LEN as u64 {
            return Err(LogError::Corrupt(format!(
                "{} bytes at {position} before the end {} are less than a batch header",
                self.end - position,
                self.end
            )));
        }
        let in_window = |(start, bytes): &(u64, Bytes)| {
            position >= *start && position + BATCH_HEADER_LEN as u64 <= start + bytes.len() as u64
        };
        if !self.window.as_ref().is_some_and(in_window) {
            let len = (self.end - position).min(WINDOW as u64) as usize;
            let bytes = self.source.read(position, len).await?;
            self.window = Some((position, bytes));
        }
        let (start, bytes) = self.window.as_ref().expect("window just loaded");
        let at = (position - start) as usize;
        let header = BatchHeader::parse(&bytes[at..]).ok_or_else(|| {
            LogError::Corrupt(format!("short read of the batch header at {position}"))
        })?;
        let len = header.total_len().unwrap_or(0) as u64;
        if header.magic != MAGIC_V2 || len < BATCH_HEADER_LEN as u64 || position + len > self.end {
            return Err(LogError::Corrupt(format!(
                "bad batch header at position {position} (magic {}, length {len}, end {})",
                header.magic, self.end
            )));
        }
        let summary = BatchSummary::of(header, position, len);
        self.position += len;
        Ok(Some(summary))
    }
}
