//! Opening a partition directory: find the segments, trust what the last clean
//! checkpoint covers, validate every batch after it (header and CRC32C), truncate a
//! torn or corrupt tail, rebuild missing or corrupt indexes, and say so loudly.
//! First of all, a log cleaner swap a crash interrupted is finished or undone
//! (`storage::swap`).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::DmaFile;

use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, MAGIC_V2, compute_crc};
use crate::storage::checkpoint::{self, RECOVERY_POINT_FILE};
use crate::storage::error::{LogError, io};
use crate::storage::offset_index::OffsetIndex;
use crate::storage::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, Segment, SegmentIndexes, SegmentSettings, TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX, open_segment_file, parse_segment_name, segment_file,
};
use crate::storage::segment_reader::SegmentReader;
use crate::storage::summary::BatchSummary;
use crate::storage::swap::{self, SwapEvent};
use crate::storage::time_index::TimeIndex;
use crate::types::Offset;

/// Bytes read at once while validating.
const WINDOW: usize = 1 << 20;

/// Something recovery did that an operator should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryEvent {
    /// Invalid bytes at the end of a segment were cut off.
    Truncated {
        segment: Offset,
        position: u64,
        dropped_bytes: u64,
        reason: String,
    },
    /// An index could not be used and was rebuilt by scanning the segment.
    IndexRebuilt { segment: Offset, reason: String },
    /// A whole segment after a truncation point was deleted.
    SegmentDeleted { segment: Offset, reason: String },
    /// A leftover file (temp file, index without a log) was removed.
    StrayFileRemoved { path: PathBuf },
    /// The log ends before the offset an earlier run checkpointed as durable.
    EndsBeforeRecoveryPoint {
        recovery_point: Offset,
        log_end: Offset,
    },
    /// A committed cleaner swap, interrupted by a crash, was finished: the
    /// segments at `new` replace those at `old`.
    SwapCompleted { old: Vec<Offset>, new: Vec<Offset> },
    /// A file of a cleaning pass that never committed was removed.
    UncommittedCleanedFileRemoved { path: PathBuf },
}

impl From<SwapEvent> for RecoveryEvent {
    fn from(event: SwapEvent) -> RecoveryEvent {
        match event {
            SwapEvent::Completed { old, new } => RecoveryEvent::SwapCompleted { old, new },
            SwapEvent::CleanedFileRemoved { path } => {
                RecoveryEvent::UncommittedCleanedFileRemoved { path }
            }
        }
    }
}

/// What recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub events: Vec<RecoveryEvent>,
    pub segments: usize,
    pub batches_validated: u64,
    pub bytes_validated: u64,
}

impl RecoveryReport {
    pub fn truncations(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, RecoveryEvent::Truncated { .. }))
            .count()
    }

    pub fn index_rebuilds(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, RecoveryEvent::IndexRebuilt { .. }))
            .count()
    }

    fn record(&mut self, dir: &Path, event: RecoveryEvent) {
        match &event {
            RecoveryEvent::StrayFileRemoved { path } => {
                tracing::info!(path = %path.display(), "removed a stray file");
            }
            RecoveryEvent::IndexRebuilt { segment, reason } => {
                tracing::warn!(dir = %dir.display(), segment = segment.0, %reason, "rebuilt segment index");
            }
            RecoveryEvent::SwapCompleted { old, new } => {
                tracing::warn!(
                    dir = %dir.display(), ?old, ?new,
                    "finished a log cleaner swap interrupted by a crash"
                );
            }
            RecoveryEvent::UncommittedCleanedFileRemoved { path } => {
                tracing::info!(
                    path = %path.display(),
                    "removed a file of a log cleaner pass that never committed"
                );
            }
            RecoveryEvent::Truncated {
                segment,
                position,
                dropped_bytes,
                reason,
            } => {
                tracing::error!(
                    dir = %dir.display(), segment = segment.0, position, dropped_bytes, %reason,
                    "log recovery dropped data: segment truncated at its first invalid batch"
                );
            }
            RecoveryEvent::SegmentDeleted { segment, reason } => {
                tracing::error!(
                    dir = %dir.display(), segment = segment.0, %reason,
                    "log recovery dropped data: segment after the corrupt one deleted"
                );
            }
            RecoveryEvent::EndsBeforeRecoveryPoint {
                recovery_point,
                log_end,
            } => {
                tracing::error!(
                    dir = %dir.display(), recovery_point = recovery_point.0, log_end = log_end.0,
                    "log recovery dropped data: the log ends before its recovery point"
                );
            }
        }
        self.events.push(event);
    }
}

/// A log as recovery leaves it: segments in order, the last one active.
pub struct RecoveredLog {
    pub segments: Vec<Segment>,
    pub report: RecoveryReport,
}

/// Why validation stopped.
enum Stop {
    /// End of file, or zero-filled space after the last batch.
    CleanEnd,
    Invalid(String),
}

/// Recovers every segment of `dir`, creating an empty first segment at
/// `empty_base` when there is none.
pub async fn recover(
    dir: &Path,
    settings: &SegmentSettings,
    empty_base: Offset,
) -> Result<RecoveredLog, LogError> {
    let index_interval = settings.index_interval;
    let mut report = RecoveryReport::default();
    for event in swap::recover(dir).await? {
        report.record(dir, event.into());
    }
    let bases = list_segments(dir, &mut report)?;
    let recovery_point = match checkpoint::read_optional(&dir.join(RECOVERY_POINT_FILE)).await? {
        Some(bytes) => checkpoint::decode_offset(&bytes)
            .map_err(|e| LogError::Corrupt(format!("{RECOVERY_POINT_FILE}: {e}")))?,
        None => Offset::ZERO,
    };

    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (position, &base) in bases.iter().enumerate() {
        let fully_below = bases
            .get(position + 1)
            .is_some_and(|&next| next <= recovery_point);
        let (segment, stop, index_stale) = recover_segment(
            dir,
            base,
            fully_below,
            recovery_point,
            index_interval,
            &mut report,
        )
        .await?;
        if let Some(previous) = segments.last()
            && segment.base < previous.next_offset
        {
            return Err(LogError::Corrupt(format!(
                "{}: segment {} starts below the end {} of the segment before it",
                dir.display(),
                segment.base,
                previous.next_offset
            )));
        }
        segments.push(segment);
        let is_last = position + 1 == bases.len() || matches!(stop, Stop::Invalid(_));
        if index_stale && !is_last {
            let sealed = segments.last_mut().expect("just pushed");
            sealed.indexes.finish();
            sealed.index_files().write(dir).await?;
        }
        if let Stop::Invalid(reason) = stop {
            for &later in &bases[position + 1..] {
                remove_segment_files(dir, later).await?;
                report.record(
                    dir,
                    RecoveryEvent::SegmentDeleted {
                        segment: later,
                        reason: format!("after the corrupt segment {base}: {reason}"),
                    },
                );
            }
            break;
        }
    }

    if segments.is_empty() {
        segments.push(Segment::create(dir, empty_base, settings).await?);
    }
    let last = segments.last_mut().expect("at least one segment");
    let log_end = last.next_offset;
    if recovery_point > log_end {
        report.record(
            dir,
            RecoveryEvent::EndsBeforeRecoveryPoint {
                recovery_point,
                log_end,
            },
        );
    }
    let tail = last.read_tail_block().await?;
    last.activate(&tail, settings);
    last.index_files().write(dir).await?;
    checkpoint::sync_dir(dir).await?;
    for segment in &segments {
        assert!(
            segment.next_offset >= segment.base,
            "a segment ends before its base"
        );
    }
    for pair in segments.windows(2) {
        assert!(
            pair[0].base < pair[1].base && pair[0].next_offset <= pair[1].base,
            "recovered segments overlap"
        );
    }
    report.segments = segments.len();
    Ok(RecoveredLog { segments, report })
}

/// Segment base offsets in `dir`, sorted; removes temp files and orphan indexes.
/// Runs after `swap::recover`, so no `.cleaned` file or swap marker is left
/// (their names parse as no segment file either).
fn list_segments(dir: &Path, report: &mut RecoveryReport) -> Result<Vec<Offset>, LogError> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = parse_segment_name(&name, LOG_SUFFIX) {
            bases.push(base);
        } else if name.ends_with(".tmp") {
            std::fs::remove_file(entry.path())?;
            report.record(dir, RecoveryEvent::StrayFileRemoved { path: entry.path() });
        } else if let Some(base) = parse_segment_name(&name, INDEX_SUFFIX)
            .or_else(|| parse_segment_name(&name, TIME_INDEX_SUFFIX))
            .or_else(|| parse_segment_name(&name, TXN_INDEX_SUFFIX))
        {
            indexes.push((base, entry.path()));
        }
    }
    bases.sort();
    for (base, path) in indexes {
        if bases.binary_search(&base).is_err() {
            std::fs::remove_file(&path)?;
            report.record(dir, RecoveryEvent::StrayFileRemoved { path });
        }
    }
    Ok(bases)
}

async fn recover_segment(
    dir: &Path,
    base: Offset,
    fully_below: bool,
    recovery_point: Offset,
    index_interval: u64,
    report: &mut RecoveryReport,
) -> Result<(Segment, Stop, bool), LogError> {
    let path = segment_file(dir, base, LOG_SUFFIX);
    let file = open_segment_file(&path, false).await?;
    let file_size = file.file_size().await.map_err(io)?;

    let loaded = load_indexes(dir, base, file_size).await?;
    let (mut indexes, start, rebuilt) = match loaded {
        Ok((mut offsets, mut times)) => {
            if !fully_below {
                offsets.truncate_after_offset(Offset(recovery_point.0 - 1));
            }
            let start = offsets.last();
            if let Some(entry) = start {
                times.truncate_from_offset(entry.offset.plus(1));
            } else {
                times = TimeIndex::new(base);
            }
            (
                SegmentIndexes::from_parts(offsets, times, index_interval),
                start,
                None,
            )
        }
        Err(reason) => (
            SegmentIndexes::new(base, index_interval),
            None,
            Some(reason),
        ),
    };
    let (start_position, min_offset) = match start {
        Some(entry) => (u64::from(entry.position), None),
        None => (0, Some(base)),
    };
    let mut scan = validate(
        &file,
        file_size,
        start_position,
        min_offset,
        &mut indexes,
        report,
    )
    .await?;
    if start.is_some() && scan.next_offset.is_none() {
        // Not even the batch the index points at is valid: its offsets cannot be
        // trusted either, so validate the whole segment from its first batch.
        indexes = SegmentIndexes::new(base, index_interval);
        scan = validate(&file, file_size, 0, Some(base), &mut indexes, report).await?;
    }
    let index_stale = !fully_below || rebuilt.is_some() || matches!(scan.stop, Stop::Invalid(_));
    if let Some(reason) = rebuilt {
        report.record(
            dir,
            RecoveryEvent::IndexRebuilt {
                segment: base,
                reason,
            },
        );
    }
    let next_offset = scan.next_offset.unwrap_or(base);
    if let Stop::Invalid(reason) = &scan.stop {
        report.record(
            dir,
            RecoveryEvent::Truncated {
                segment: base,
                position: scan.end,
                dropped_bytes: file_size - scan.end,
                reason: reason.clone(),
            },
        );
    }
    if file_size != scan.end {
        file.truncate(scan.end).await.map_err(io)?;
        file.fdatasync().await.map_err(io)?;
    }
    let segment = Segment {
        base,
        file: Rc::new(file),
        reader: Rc::new(SegmentReader::new(path.clone())),
        path,
        size: scan.end,
        next_offset,
        indexes,
        writer: None,
    };
    Ok((segment, scan.stop, index_stale))
}

/// Reads and checks both index files; `Err(reason)` if either cannot be used.
async fn load_indexes(
    dir: &Path,
    base: Offset,
    segment_len: u64,
) -> Result<Result<(OffsetIndex, TimeIndex), String>, LogError> {
    let index_path = segment_file(dir, base, INDEX_SUFFIX);
    let time_path = segment_file(dir, base, TIME_INDEX_SUFFIX);
    let Some(index_bytes) = checkpoint::read_optional(&index_path).await? else {
        return Ok(Err("offset index missing".into()));
    };
    let Some(time_bytes) = checkpoint::read_optional(&time_path).await? else {
        return Ok(Err("time index missing".into()));
    };
    let offsets = match OffsetIndex::decode(base, &index_bytes, segment_len) {
        Ok(offsets) => offsets,
        Err(error) => return Ok(Err(format!("offset index corrupt: {error}"))),
    };
    let times = match TimeIndex::decode(base, &time_bytes) {
        Ok(times) => times,
        Err(error) => return Ok(Err(format!("time index corrupt: {error}"))),
    };
    Ok(Ok((offsets, times)))
}

pub async fn remove_segment_files(dir: &Path, base: Offset) -> Result<(), LogError> {
    for suffix in [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ] {
        match std::fs::remove_file(segment_file(dir, base, suffix)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Why a batch's frame cannot be trusted: where recovery ends a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameFault {
    #[error("torn batch header: {remaining} bytes left")]
    TornHeader { remaining: u64 },
    #[error("bad magic {0}")]
    BadMagic(i8),
    #[error("bad batch length {0}")]
    BadLength(i32),
    #[error("torn batch: {declared} bytes declared, {remaining} on disk")]
    TornBatch { declared: u64, remaining: u64 },
    /// `len`: the batch's length, which is sound.
    #[error("offsets {base}..={last} go backwards")]
    OffsetsBackwards {
        base: Offset,
        last: Offset,
        len: u64,
    },
}

/// Checks the frame of the batch starting with `head` (its first bytes, up to
/// a header's worth), `remaining` bytes before the end of the file: magic,
/// length, that it fits, and that its offsets go up from `min_offset`.
/// Returns its whole length. Pure, so `sluice log dump` judges batches as
/// recovery does.
pub fn check_frame(
    head: &[u8],
    remaining: u64,
    min_offset: Option<Offset>,
) -> Result<u64, FrameFault> {
    let header = BatchHeader::parse(head).ok_or(FrameFault::TornHeader { remaining })?;
    if header.magic != MAGIC_V2 {
        return Err(FrameFault::BadMagic(header.magic));
    }
    let len = match header.total_len() {
        Some(len) if len >= BATCH_HEADER_LEN => len as u64,
        _ => return Err(FrameFault::BadLength(header.batch_length.get())),
    };
    if len > remaining {
        return Err(FrameFault::TornBatch {
            declared: len,
            remaining,
        });
    }
    let (base, last) = (header.base_offset(), header.last_offset());
    if last < base || min_offset.is_some_and(|min| base < min) {
        return Err(FrameFault::OffsetsBackwards { base, last, len });
    }
    Ok(len)
}

struct Scan {
    end: u64,
    next_offset: Option<Offset>,
    stop: Stop,
}

/// Validates batches from `position` to the end of the file: framing, offsets that
/// only go up, and CRC32C. Feeds each valid batch to `indexes`.
async fn validate(
    file: &DmaFile,
    file_size: u64,
    mut position: u64,
    mut min_offset: Option<Offset>,
    indexes: &mut SegmentIndexes,
    report: &mut RecoveryReport,
) -> Result<Scan, LogError> {
    let mut next_offset = None;
    let mut window: Option<(u64, Vec<u8>)> = None;
    loop {
        let remaining = file_size - position;
        if remaining == 0 {
            return Ok(Scan {
                end: position,
                next_offset,
                stop: Stop::CleanEnd,
            });
        }
        let header_len = remaining.min(BATCH_HEADER_LEN as u64) as usize;
        let header_bytes = read_range(file, &mut window, position, header_len).await?;
        if header_bytes.iter().all(|&b| b == 0) {
            let stop = match first_non_zero(file, &mut window, position, file_size).await? {
                None => Stop::CleanEnd,
                Some(at) => Stop::Invalid(format!(
                    "non-zero bytes at {at} after the last batch (unacknowledged or stray data)"
                )),
            };
            return Ok(Scan {
                end: position,
                next_offset,
                stop,
            });
        }
        let len = match check_frame(&header_bytes, remaining, min_offset) {
            Ok(len) => len,
            Err(fault) => {
                return Ok(Scan {
                    end: position,
                    next_offset,
                    stop: Stop::Invalid(fault.to_string()),
                });
            }
        };
        let batch = read_range(file, &mut window, position, len as usize).await?;
        let header = BatchHeader::parse(&batch).expect("batch holds its header");
        let (base, last) = (header.base_offset(), header.last_offset());
        let crc = compute_crc(&batch);
        if crc != header.crc.get() {
            return Ok(Scan {
                end: position,
                next_offset,
                stop: Stop::Invalid(format!(
                    "CRC32C mismatch in batch {base}: stored {:#010x}, computed {crc:#010x}",
                    header.crc.get()
                )),
            });
        }
        indexes.on_batch(&BatchSummary::of(header, position, len));
        report.batches_validated += 1;
        report.bytes_validated += len;
        position += len;
        next_offset = Some(last.plus(1));
        min_offset = Some(last.plus(1));
    }
}

/// The position of the first non-zero byte in `[position, file_size)`, if any.
async fn first_non_zero(
    file: &DmaFile,
    window: &mut Option<(u64, Vec<u8>)>,
    mut position: u64,
    file_size: u64,
) -> Result<Option<u64>, LogError> {
    while position < file_size {
        let len = (file_size - position).min(WINDOW as u64) as usize;
        let bytes = read_range(file, window, position, len).await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if let Some(at) = bytes.iter().position(|&b| b != 0) {
            return Ok(Some(position + at as u64));
        }
        position += bytes.len() as u64;
    }
    Ok(None)
}

/// `len` bytes at `position`, served from a large read-ahead window.
async fn read_range(
    file: &DmaFile,
    window: &mut Option<(u64, Vec<u8>)>,
    position: u64,
    len: usize,
) -> Result<Vec<u8>, LogError> {
    let held = |(start, bytes): &(u64, Vec<u8>)| {
        position >= *start && position + len as u64 <= start + bytes.len() as u64
    };
    if !window.as_ref().is_some_and(held) {
        let bytes = file.read_at(position, len.max(WINDOW)).await.map_err(io)?;
        *window = Some((position, bytes.to_vec()));
    }
    let (start, bytes) = window.as_ref().expect("window loaded");
    let from = (position - start) as usize;
    let available = bytes.len().saturating_sub(from).min(len);
    Ok(bytes[from..from + available].to_vec())
}
