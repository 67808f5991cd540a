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

/// Iterates whole batches, header and bytes, from `position` up to `end` (a batch
/// boundary), reading at least `window` bytes at a time: the cleaner reads every
/// byte of the segments it rewrites.
pub struct BatchReader<'a> {
    source: &'a SegmentSource,
    position: u64,
    end: u64,
    window_len: usize,
    window: Option<(u64, Bytes)>,
}

impl<'a> BatchReader<'a> {
    pub fn new(source: &'a SegmentSource, position: u64, end: u64, window_len: usize) -> Self {
        BatchReader {
            source,
            position,
            end,
            window_len: window_len.max(BATCH_HEADER_LEN),
            window: None,
        }
    }

    /// Whether the window holds `[position, position + len)`.
    fn holds(&self, position: u64, len: u64) -> bool {
        self.window.as_ref().is_some_and(|(start, bytes)| {
            position >= *start && position + len <= start + bytes.len() as u64
        })
    }

    /// Reads a window from `position` that holds at least `len` bytes.
    async fn load(&mut self, position: u64, len: u64) -> Result<(), LogError> {
        let want = (self.end - position).min(len.max(self.window_len as u64));
        let bytes = self.source.read(position, want as usize).await?;
        if (bytes.len() as u64) < len {
            return Err(LogError::Corrupt(format!(
                "short read at {position}: {} of {len} bytes",
                bytes.len()
            )));
        }
        self.window = Some((position, bytes));
        Ok(())
    }

    /// The next batch and its bytes.
    pub async fn next(&mut self) -> Result<Option<(BatchSummary, &[u8])>, LogError> {
        let position = self.position;
        if position >= self.end {
            return Ok(None);
        }
        let header_len = BATCH_HEADER_LEN as u64;
        if self.end - position < header_len {
            return Err(LogError::Corrupt(format!(
                "{} bytes at {position} before the end {} are less than a batch header",
                self.end - position,
                self.end
            )));
        }
        if !self.holds(position, header_len) {
            self.load(position, header_len).await?;
        }
        let len = {
            let (start, bytes) = self.window.as_ref().expect("window just loaded");
            let header = BatchHeader::parse(&bytes[(position - start) as usize..])
                .expect("the window holds the header");
            let len = header.total_len().unwrap_or(0) as u64;
            if header.magic != MAGIC_V2 || len < header_len || position + len > self.end {
                return Err(LogError::Corrupt(format!(
                    "bad batch header at position {position} (magic {}, length {len}, end {})",
                    header.magic, self.end
                )));
            }
            len
        };
        if !self.holds(position, len) {
            self.load(position, len).await?;
        }
        let (start, bytes) = self.window.as_ref().expect("window just loaded");
        let at = (position - start) as usize;
        let batch = &bytes[at..at + len as usize];
        let header = BatchHeader::parse(batch).expect("the batch holds its header");
        self.position += len;
        Ok(Some((BatchSummary::of(header, position, len), batch)))
    }
}
