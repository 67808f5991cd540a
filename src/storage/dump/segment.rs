//! One `.log` file, batch by batch: every header field, the stored and the
//! computed CRC32C, optionally the records, and where the file stops making
//! sense.
//!
//! Each frame is judged by recovery's own check (`recovery::check_frame`:
//! magic 2, a length of at least a header that fits in the file, offsets that
//! only go up from the segment base), then the CRC32C; zero bytes after the
//! last batch are the zero fill, not data. Unlike recovery it does not stop at
//! a CRC mismatch or at offsets going back: the length field is outside the
//! CRC, so the next batch is still found, and every later one is shown. Only a
//! broken frame (magic, length, a torn tail) ends the walk, since nothing
//! after it can be located.
//!
//! Reads are `pread`s of one header, then of one batch whose length was first
//! checked against the bytes left in the file: a corrupt length cannot make
//! the walk allocate more than the segment holds.

use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::Serialize;

use crate::record::attributes::{Compression, TimestampType};
use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, RecordBatch, compute_crc};
use crate::record::compaction::BatchRecords;
use crate::record::control::{EndTxnMarker, MarkerKind};
use crate::storage::recovery::{FrameFault, check_frame};
use crate::types::Offset;

use super::{Bytes, Problem, ProblemKind};

/// Bytes read at once while checking that the space after the last batch is
/// all zeros.
const ZERO_CHECK_CHUNK: usize = 64 << 10;
/// The most a compressed batch may inflate to, as for the log cleaner: a
/// corrupt or hostile batch cannot claim more memory than this.
const INFLATE_LIMIT: usize = 64 << 20;

/// What one segment file holds.
#[derive(Debug, Serialize)]
pub struct SegmentDump {
    pub file: String,
    /// From the file name.
    pub base_offset: i64,
    pub size: u64,
    pub batches: Vec<BatchDump>,
    /// Where the last batch whose frame could be read ends.
    pub valid_bytes: u64,
    /// Zero bytes after the last batch: space the broker filled ahead of its
    /// writes (a segment that was not closed cleanly still has it).
    pub zero_filled_bytes: u64,
    /// The offset after the last batch; `None` without batches.
    pub next_offset: Option<i64>,
    pub problems: Vec<Problem>,
}

/// One batch, every header field as stored.
#[derive(Debug, Serialize)]
pub struct BatchDump {
    pub position: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub count: i32,
    pub size: u64,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub computed_crc: u32,
    pub crc_ok: bool,
    /// none, gzip, snappy, lz4, zstd, or `unknown(N)`.
    pub compression: String,
    /// create_time or log_append_time.
    pub timestamp_type: &'static str,
    pub transactional: bool,
    pub control: bool,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// The transaction marker of a control batch whose CRC is right.
    pub marker: Option<MarkerDump>,
    /// With `--records`, for a batch whose CRC is right.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<RecordDump>>,
}

/// A COMMIT or ABORT control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MarkerDump {
    #[serde(rename = "type")]
    pub kind: MarkerType,
    pub coordinator_epoch: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MarkerType {
    Commit,
    Abort,
}

impl MarkerType {
    /// As in the JSON: COMMIT or ABORT.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerType::Commit => "COMMIT",
            MarkerType::Abort => "ABORT",
        }
    }
}

/// One record of a batch.
#[derive(Debug, Serialize)]
pub struct RecordDump {
    pub offset: i64,
    /// As a consumer sees it: the batch's max timestamp in a LogAppendTime batch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<HeaderDump>,
    /// Set on the record of a transaction marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<MarkerDump>,
}

#[derive(Debug, Serialize)]
pub struct HeaderDump {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

impl BatchDump {
    /// Whether `offset` lies in this batch.
    pub fn contains(&self, offset: i64) -> bool {
        (self.base_offset..=self.last_offset).contains(&offset)
    }
}

/// Walks the segment `file` (named `name`, based at `base`); `records` also
/// decodes each batch's records.
pub fn scan(file: &File, name: &str, base: Offset, records: bool) -> std::io::Result<SegmentDump> {
    let size = file.metadata()?.len();
    let mut dump = SegmentDump {
        file: name.to_string(),
        base_offset: base.0,
        size,
        batches: Vec::new(),
        valid_bytes: 0,
        zero_filled_bytes: 0,
        next_offset: None,
        problems: Vec::new(),
    };
    let mut position = 0u64;
    let mut min_offset = base.0;
    let mut bytes = Vec::new();
    // Every turn moves `position` forward by at least a header, or ends the walk.
    while position < size {
        let remaining = size - position;
        let mut head = [0u8; BATCH_HEADER_LEN];
        let head_len = remaining.min(BATCH_HEADER_LEN as u64) as usize;
        file.read_exact_at(&mut head[..head_len], position)?;
        let head = &head[..head_len];
        let problem = |kind: ProblemKind, offset: Option<i64>, detail: String| Problem {
            file: name.to_string(),
            position: Some(position),
            offset,
            kind,
            detail,
        };
        if head.iter().all(|&b| b == 0) {
            match first_non_zero(file, position, size)? {
                None => dump.zero_filled_bytes = remaining,
                Some(at) => dump.problems.push(problem(
                    ProblemKind::StrayBytes,
                    None,
                    format!(
                        "zero bytes after the last batch, then non-zero bytes at position {at} \
                         (data never acknowledged, or stray writes; recovery cuts them off)"
                    ),
                )),
            }
            break;
        }
        let offset = BatchHeader::parse(head).map(|header| header.base_offset.get());
        let len = match check_frame(head, remaining, Some(Offset(min_offset))) {
            Ok(len) => len,
            Err(fault) => {
                let kind = match fault {
                    FrameFault::TornHeader { .. } | FrameFault::TornBatch { .. } => {
                        ProblemKind::TornTail
                    }
                    FrameFault::BadMagic(_) => ProblemKind::BadMagic,
                    FrameFault::BadLength(_) => ProblemKind::BadLength,
                    FrameFault::OffsetsBackwards { .. } => ProblemKind::OffsetsBackwards,
                };
                let detail = match fault {
                    FrameFault::OffsetsBackwards { .. } => {
                        format!("{fault}: expected offsets from {min_offset} on")
                    }
                    _ => fault.to_string(),
                };
                dump.problems.push(problem(kind, offset, detail));
                match fault {
                    // The frame is sound, only its offsets are wrong: the walk goes on.
                    FrameFault::OffsetsBackwards { len, .. } => len,
                    _ => break,
                }
            }
        };
        // `len` is at most what is left of the file: the allocation is bounded.
        bytes.resize(len as usize, 0);
        file.read_exact_at(&mut bytes, position)?;
        let batch = RecordBatch::new_unchecked(&bytes);
        let last_offset = batch.header().last_offset().0;
        let mut entry = describe(batch, position, len);
        if !entry.crc_ok {
            dump.problems.push(problem(
                ProblemKind::CrcMismatch,
                offset,
                format!(
                    "CRC32C mismatch: stored {:#010x}, computed {:#010x}",
                    entry.crc, entry.computed_crc
                ),
            ));
        } else {
            entry.marker = marker_of(batch);
            if records {
                match read_records(batch, entry.marker) {
                    Ok(read) => entry.records = Some(read),
                    Err(detail) => dump.problems.push(problem(
                        ProblemKind::BadRecords,
                        offset,
                        format!("the CRC matches but the records do not decode: {detail}"),
                    )),
                }
            }
        }
        dump.batches.push(entry);
        position += len;
        dump.valid_bytes = position;
        min_offset = min_offset.max(last_offset.saturating_add(1));
        dump.next_offset = Some(min_offset);
    }
    Ok(dump)
}

/// The header fields of a batch, its CRC checked.
fn describe(batch: RecordBatch<'_>, position: u64, len: u64) -> BatchDump {
    let header = batch.header();
    let attributes = header.attributes();
    let computed_crc = compute_crc(batch.bytes());
    BatchDump {
        position,
        base_offset: header.base_offset().0,
        last_offset: header.last_offset().0,
        count: header.records_count.get(),
        size: len,
        partition_leader_epoch: header.leader_epoch().0,
        magic: header.magic,
        crc: header.crc.get(),
        computed_crc,
        crc_ok: computed_crc == header.crc.get(),
        compression: match attributes.compression() {
            Some(Compression::None) => "none".into(),
            Some(Compression::Gzip) => "gzip".into(),
            Some(Compression::Snappy) => "snappy".into(),
            Some(Compression::Lz4) => "lz4".into(),
            Some(Compression::Zstd) => "zstd".into(),
            None => format!("unknown({})", attributes.0 & 0x07),
        },
        timestamp_type: match attributes.timestamp_type() {
            TimestampType::CreateTime => "create_time",
            TimestampType::LogAppendTime => "log_append_time",
        },
        transactional: attributes.is_transactional(),
        control: attributes.is_control(),
        base_timestamp: header.base_timestamp.get(),
        max_timestamp: header.max_timestamp().0,
        producer_id: header.producer_id.get(),
        producer_epoch: header.producer_epoch.get(),
        base_sequence: header.base_sequence.get(),
        marker: None,
        records: None,
    }
}

/// The marker of a control batch; `None` for data batches and for control
/// records that are not transaction markers (KRaft's, in a metadata log).
fn marker_of(batch: RecordBatch<'_>) -> Option<MarkerDump> {
    if !batch.header().attributes().is_control() {
        return None;
    }
    EndTxnMarker::from_batch(batch)
        .ok()
        .map(|marker| MarkerDump {
            kind: match marker.kind {
                MarkerKind::Commit => MarkerType::Commit,
                MarkerKind::Abort => MarkerType::Abort,
            },
            coordinator_epoch: marker.coordinator_epoch,
        })
}

/// Every record of `batch`, inflated if compressed.
fn read_records(
    batch: RecordBatch<'_>,
    marker: Option<MarkerDump>,
) -> Result<Vec<RecordDump>, String> {
    let records = BatchRecords::new(batch, INFLATE_LIMIT).map_err(|e| e.to_string())?;
    records
        .iter()
        .map(|record| {
            let record = record.map_err(|e| e.to_string())?;
            Ok(RecordDump {
                offset: record.offset.0,
                timestamp: record.timestamp.0,
                key: record.key.map(Bytes::of),
                value: record.value.map(Bytes::of),
                headers: record
                    .headers
                    .iter()
                    .map(|(key, value)| HeaderDump {
                        key: Bytes::of(key),
                        value: value.map(Bytes::of),
                    })
                    .collect(),
                marker,
            })
        })
        .collect()
}

/// The position of the first non-zero byte in `[position, size)`, if any.
fn first_non_zero(file: &File, mut position: u64, size: u64) -> std::io::Result<Option<u64>> {
    let mut chunk = vec![0u8; ZERO_CHECK_CHUNK];
    while position < size {
        let len = (size - position).min(ZERO_CHECK_CHUNK as u64) as usize;
        file.read_exact_at(&mut chunk[..len], position)?;
        if let Some(at) = chunk[..len].iter().position(|&b| b != 0) {
            return Ok(Some(position + at as u64));
        }
        position += len as u64;
    }
    Ok(None)
}
