//! Walks batch headers through a segment without reading whole batches: the read
//! path and timestamp lookups use it to find batch boundaries.

use std::ops::Deref;
use std::rc::Rc;

use glommio::io::{DmaFile, ReadResult};

use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, MAGIC_V2};
use crate::storage::error::{LogError, io};
use crate::storage::segment_reader::SegmentReader;
use crate::storage::summary::BatchSummary;
use crate::storage::tail_cache::TailSnapshot;

/// Bytes read at once while walking headers.
const WINDOW: usize = 64 << 10;

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
