//! One segment of a partition log: a `.log` file of record batches, named by its
//! base offset, with its sparse `.index` and `.timeindex`.
//!
//! The active (last) segment also owns a writer: the aligned write buffer, the tail
//! cache and the zero-fill state. Sealed segments are read-only.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use glommio::io::{DmaFile, OpenOptions};

use crate::record::batch::{Assigned, RecordBatchMut, only_assigned_fields_differ};
use crate::storage::checkpoint;
use crate::storage::error::{LogError, io};
use crate::storage::offset_index::OffsetIndex;
use crate::storage::scan::{HeaderScanner, SegmentSource};
use crate::storage::segment_reader::SegmentReader;
use crate::storage::summary::BatchSummary;
use crate::storage::tail_cache::TailCache;
use crate::storage::time_index::TimeIndex;
use crate::storage::write_buffer::{PendingWrite, WriteBuffer, align_down, align_up};
use crate::storage::zero_fill::{FillBudget, FillPace, ZeroFiller};
use crate::types::{Offset, TimestampMs};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// The aborted-transaction index (`storage::log::aborted`).
pub const TXN_INDEX_SUFFIX: &str = "txnindex";

/// `<dir>/<base offset, 20 digits>.<suffix>`, Kafka's file naming.
pub fn segment_file(dir: &Path, base: Offset, suffix: &str) -> PathBuf {
    dir.join(file_name(base, suffix))
}

/// Parses a segment base offset out of a file name like `00000000000000000042.log`.
pub fn parse_segment_name(name: &str, suffix: &str) -> Option<Offset> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

pub async fn open_segment_file(path: &Path, create: bool) -> Result<DmaFile, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .dma_open(path)
        .await
        .map_err(io)
}

/// The sparse indexes and running maxima of a segment, fed one batch at a time by
/// appends and by recovery alike, so both build the same index.
#[derive(Debug, Clone)]
pub struct SegmentIndexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    /// Largest timestamp in the segment and the base offset of its batch.
    pub max_timestamp: Option<(TimestampMs, Offset)>,
    bytes_since_entry: u64,
    interval: u64,
}

impl SegmentIndexes {
    pub fn new(base: Offset, interval: u64) -> SegmentIndexes {
        SegmentIndexes::from_parts(OffsetIndex::new(base), TimeIndex::new(base), interval)
    }

    pub fn from_parts(offsets: OffsetIndex, times: TimeIndex, interval: u64) -> SegmentIndexes {
        let max_timestamp = times.last();
        SegmentIndexes {
            offsets,
            times,
            max_timestamp,
            bytes_since_entry: 0,
            interval,
        }
    }

    /// Accounts for the batch `summary` appended at `summary.position`.
    pub fn on_batch(&mut self, summary: &BatchSummary) {
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| summary.max_timestamp > ts)
        {
            self.max_timestamp = Some((summary.max_timestamp, summary.base_offset));
        }
        if self.bytes_since_entry > self.interval {
            self.add_entries(summary);
        }
        self.bytes_since_entry += summary.len;
    }

    fn add_entries(&mut self, summary: &BatchSummary) {
        let position = u32::try_from(summary.position).expect("segment positions fit in u32");
        let is_new = self
            .offsets
            .last()
            .is_none_or(|last| last.offset < summary.last_offset);
        if is_new {
            self.offsets.append(summary.last_offset, position);
        }
        if let Some((ts, offset)) = self.max_timestamp {
            self.times.maybe_append(ts, offset);
        }
        self.bytes_since_entry = 0;
    }

    /// Makes the time index end with the segment's maximum, as Kafka does on roll.
    pub fn finish(&mut self) {
        if let Some((ts, offset)) = self.max_timestamp {
            self.times.maybe_append(ts, offset);
        }
    }
}

/// A segment's two index files, encoded and detached from the segment so they
/// can be written while the log goes on.
pub struct IndexFiles {
    index_name: String,
    index: Vec<u8>,
    time_index_name: String,
    time_index: Vec<u8>,
}

impl IndexFiles {
    /// Replaces both files atomically, one after the other.
    pub async fn write(self, dir: &Path) -> Result<(), LogError> {
        checkpoint::write_atomically(dir, &self.index_name, self.index).await?;
        checkpoint::write_atomically(dir, &self.time_index_name, self.time_index).await
    }
}

/// What segments need of the log's config.
#[derive(Debug, Clone)]
pub struct SegmentSettings {
    pub index_interval: u64,
    pub tail_cache_bytes: usize,
    /// How far ahead of its data the active segment zero-fills, to start with.
    pub zero_fill_pace: FillPace,
    /// Never zero-fill past this (the segment size, block-aligned).
    pub zero_fill_limit: u64,
    /// The shard's budget of zero bytes in flight.
    pub zero_fill_budget: Rc<FillBudget>,
}

impl SegmentSettings {
    /// Settings for a log that has no pace yet: zero-fill starts at the minimum step.
    pub fn of(config: &crate::storage::config::LogConfig) -> SegmentSettings {
        SegmentSettings {
            index_interval: config.index_interval_bytes,
            tail_cache_bytes: config.tail_cache_bytes,
            zero_fill_pace: FillPace::new(0, config.zero_fill_step_bytes),
            zero_fill_limit: align_up(config.segment_bytes),
            zero_fill_budget: FillBudget::shard(),
        }
    }

    /// The same settings, zero-filling in steps of `step` to start with (a rolled
    /// segment's successor keeps the partition's write rate).
    pub fn with_fill_step(self, step: u64) -> SegmentSettings {
        SegmentSettings {
            zero_fill_pace: FillPace::new(step, self.zero_fill_pace.max()),
            ..self
        }
    }
}

/// State only the active segment has.
pub struct SegmentWriter {
    pub buffer: WriteBuffer,
    pub tail_cache: TailCache,
    pub zero_filler: ZeroFiller,
    pub first_append_at: Option<Instant>,
}

pub struct Segment {
    pub base: Offset,
    pub file: Rc<DmaFile>,
    /// The same file for sends from the page cache.
    pub reader: Rc<SegmentReader>,
    pub path: PathBuf,
    /// Logical size: bytes of batches, pending ones included.
    pub size: u64,
    /// Offset after the last batch, pending ones included.
    pub next_offset: Offset,
    pub indexes: SegmentIndexes,
    pub writer: Option<SegmentWriter>,
}

impl Segment {
    /// Creates a new, empty active segment.
    pub async fn create(
        dir: &Path,
        base: Offset,
        settings: &SegmentSettings,
    ) -> Result<Segment, LogError> {
        let path = segment_file(dir, base, LOG_SUFFIX);
        let file = open_segment_file(&path, true).await?;
        let mut segment = Segment {
            base,
            file: Rc::new(file),
            reader: Rc::new(SegmentReader::new(path.clone())),
            path,
            size: 0,
            next_offset: base,
            indexes: SegmentIndexes::new(base, settings.index_interval),
            writer: None,
        };
        segment.activate(&[], settings);
        Ok(segment)
    }

    /// Gives the segment a writer; `tail` is the partial last block of its data.
    pub fn activate(&mut self, tail: &[u8], settings: &SegmentSettings) {
        self.writer = Some(SegmentWriter {
            buffer: WriteBuffer::new(&self.file, self.size, tail),
            tail_cache: TailCache::new(settings.tail_cache_bytes),
            zero_filler: ZeroFiller::new(
                Rc::clone(&self.file),
                align_up(self.size),
                settings.zero_fill_pace,
                settings.zero_fill_limit,
                Rc::clone(&settings.zero_fill_budget),
            ),
            first_append_at: None,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn writer(&mut self) -> &mut SegmentWriter {
        self.writer
            .as_mut()
            .expect("only the active segment is written")
    }

    /// Copies a validated batch into the write buffer, the only copy the log
    /// makes, assigns its offsets (and epoch, and LogAppendTime) in the buffer, and
    /// indexes it.
    pub fn append(&mut self, batch: &[u8], assigned: &Assigned) -> BatchSummary {
        debug_assert!(assigned.base_offset >= self.next_offset);
        let file = Rc::clone(&self.file);
        let writer = self.writer();
        let (position, copy) = writer.buffer.push(&file, batch);
        let mut stored = RecordBatchMut::new_unchecked(copy);
        stored.assign(assigned);
        debug_assert!(only_assigned_fields_differ(
            batch,
            stored.as_batch().bytes(),
            assigned
        ));
        let summary = BatchSummary::of(stored.header(), position, batch.len() as u64);
        writer.first_append_at.get_or_insert_with(Instant::now);
        debug_assert_eq!(position, self.size);
        self.indexes.on_batch(&summary);
        self.size += summary.len;
        self.next_offset = summary.last_offset.plus(1);
        summary
    }

    /// A source for reads: the file plus what the tail cache holds.
    pub fn source(&self) -> SegmentSource {
        SegmentSource {
            file: Rc::clone(&self.file),
            reader: Rc::clone(&self.reader),
            tail: self
                .writer
                .as_ref()
                .map(|writer| writer.tail_cache.snapshot())
                .unwrap_or_default(),
        }
    }

    /// Takes the pending bytes for a write, with the offset they end at.
    pub fn take_write(&mut self) -> Option<(PendingWrite, Offset)> {
        let next_offset = self.next_offset;
        let file = Rc::clone(&self.file);
        let size = self.size;
        let writer = self.writer();
        debug_assert_eq!(writer.buffer.end(), size);
        writer.buffer.take(&file).map(|write| (write, next_offset))
    }

    /// The indexes as they are now, to write.
    pub fn index_files(&self) -> IndexFiles {
        IndexFiles {
            index_name: file_name(self.base, INDEX_SUFFIX),
            index: self.indexes.offsets.encode(),
            time_index_name: file_name(self.base, TIME_INDEX_SUFFIX),
            time_index: self.indexes.times.encode(),
        }
    }

    /// The bytes from the last block boundary to the end of the data: an
    /// activated segment rewrites them with its next write.
    pub async fn read_tail_block(&self) -> Result<Vec<u8>, LogError> {
        read_tail_block(&self.file, self.size).await
    }

    /// Prepares cutting the segment at `position`, a batch boundary: the file work
    /// and re-indexing run on detached handles, so the log's state stays readable
    /// meanwhile; [`Segment::finish_cut`] then installs the result.
    pub fn prepare_cut(&self, position: u64) -> CutJob {
        assert!(position <= self.size, "a cut never grows a segment");
        let mut offsets = self.indexes.offsets.clone();
        offsets.truncate_to_position(position);
        let last_entry = offsets.last();
        let mut times = self.indexes.times.clone();
        times.truncate_from_offset(last_entry.map_or(self.base, |entry| entry.offset.plus(1)));
        CutJob {
            source: SegmentSource {
                file: Rc::clone(&self.file),
                reader: Rc::clone(&self.reader),
                tail: Default::default(),
            },
            base: self.base,
            position,
            scan_from: last_entry.map_or(0, |entry| u64::from(entry.position)),
            indexes: SegmentIndexes::from_parts(offsets, times, self.indexes.interval),
        }
    }

    /// Installs a finished cut and makes the segment active, with nothing pending.
    pub fn finish_cut(&mut self, cut: CutSegment, settings: &SegmentSettings) {
        assert!(
            cut.next_offset >= self.base && cut.position <= self.size,
            "a cut stays inside its segment"
        );
        self.size = cut.position;
        self.next_offset = cut.next_offset;
        self.indexes = cut.indexes;
        self.activate(&cut.tail, settings);
    }
}

/// The work of cutting a segment (see [`Segment::prepare_cut`]).
pub struct CutJob {
    source: SegmentSource,
    base: Offset,
    position: u64,
    /// The position of the last index entry kept: batches after it are indexed
    /// again, as recovery does, so the maximum timestamp is exact.
    scan_from: u64,
    indexes: SegmentIndexes,
}

/// A segment cut on disk, to install with [`Segment::finish_cut`].
pub struct CutSegment {
    position: u64,
    next_offset: Offset,
    indexes: SegmentIndexes,
    tail: Vec<u8>,
}

impl CutJob {
    /// Truncates and syncs the file, then indexes the batches after the last
    /// entry kept.
    pub async fn run(mut self) -> Result<CutSegment, LogError> {
        let file = &self.source.file;
        file.truncate(self.position).await.map_err(io)?;
        file.fdatasync().await.map_err(io)?;
        let mut scanner = HeaderScanner::new(&self.source, self.scan_from, self.position);
        let mut next_offset = self.base;
        while let Some(summary) = scanner.next().await? {
            self.indexes.on_batch(&summary);
            next_offset = summary.last_offset.plus(1);
        }
        Ok(CutSegment {
            position: self.position,
            next_offset,
            indexes: self.indexes,
            tail: read_tail_block(file, self.position).await?,
        })
    }
}

async fn read_tail_block(file: &DmaFile, size: u64) -> Result<Vec<u8>, LogError> {
    let start = align_down(size);
    let len = (size - start) as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    let tail = file.read_at(start, len).await.map_err(io)?.to_vec();
    assert_eq!(
        tail.len(),
        len,
        "the tail block of a segment must be readable"
    );
    Ok(tail)
}

pub fn file_name(base: Offset, suffix: &str) -> String {
    format!("{:020}.{suffix}", base.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        let dir = Path::new("/d");
        assert_eq!(
            segment_file(dir, Offset(42), LOG_SUFFIX),
            Path::new("/d/00000000000000000042.log")
        );
        assert_eq!(
            parse_segment_name("00000000000000000042.log", LOG_SUFFIX),
            Some(Offset(42))
        );
        assert_eq!(
            parse_segment_name("00000000000000000042.index", LOG_SUFFIX),
            None
        );
        assert_eq!(parse_segment_name("42.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_segment_name("0000000000000000004x.log", LOG_SUFFIX),
            None
        );
    }

    #[test]
    fn index_entries_every_interval() {
        let mut indexes = SegmentIndexes::new(Offset(0), 100);
        for n in 0..10u64 {
            indexes.on_batch(&BatchSummary {
                position: n * 60,
                len: 60,
                base_offset: Offset(n as i64 * 2),
                last_offset: Offset(n as i64 * 2 + 1),
                max_timestamp: TimestampMs(1000 + n as i64),
                leader_epoch: crate::types::LeaderEpoch(0),
                producer: None,
                control: false,
            });
        }
        // Entries once more than 100 bytes passed since the last: batches 2, 4, 6, 8.
        assert_eq!(indexes.offsets.len(), 4);
        assert_eq!(
            indexes.offsets.lookup(Offset(5)).map(|e| e.position),
            Some(120)
        );
        assert_eq!(indexes.max_timestamp, Some((TimestampMs(1009), Offset(18))));
        indexes.finish();
        assert_eq!(indexes.times.last(), Some((TimestampMs(1009), Offset(18))));
    }
}
