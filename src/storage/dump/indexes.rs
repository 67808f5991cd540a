//! A segment's `.index`, `.timeindex` and `.txnindex`: their entries, each
//! checked against the batches the segment walk found, and the verdict of the
//! decoder the broker itself opens them with (a file it refuses is rebuilt by
//! recovery).

use serde::Serialize;

use crate::storage::offset_index::{self, OffsetIndex};
use crate::storage::time_index::{self, TimeIndex};
use crate::storage::txn_index::{self, AbortedTxn};
use crate::types::Offset;

use super::segment::{BatchDump, MarkerType, SegmentDump};
use super::{Problem, ProblemKind};

/// Which index a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    Offset,
    Time,
    Txn,
}

impl IndexKind {
    /// As in the JSON: offset, time or txn.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Offset => "offset",
            IndexKind::Time => "time",
            IndexKind::Txn => "txn",
        }
    }
}

/// One index file.
#[derive(Debug, Serialize)]
pub struct IndexDump {
    pub file: String,
    pub kind: IndexKind,
    pub size: u64,
    pub entries: Vec<IndexEntry>,
    /// Why the broker's decoder refuses the file (recovery then rebuilds it);
    /// `None` when it accepts it.
    pub decoder_error: Option<String>,
    pub problems: Vec<Problem>,
}

/// One entry, with whether it agrees with the log.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum IndexEntry {
    Offset {
        offset: i64,
        position: u32,
        ok: bool,
    },
    Time {
        timestamp: i64,
        offset: i64,
        ok: bool,
    },
    Txn {
        producer_id: i64,
        first_offset: i64,
        last_offset: i64,
        last_stable_offset: i64,
        ok: bool,
    },
}

/// Decodes and checks `bytes`, the index file `name` of `kind` of the segment
/// at `base`, against `segment` (`None`: the segment's log is missing, so only
/// the file's own order is checked).
pub fn check(
    name: &str,
    kind: IndexKind,
    base: Offset,
    bytes: &[u8],
    segment: Option<&SegmentDump>,
) -> IndexDump {
    let mut dump = IndexDump {
        file: name.to_string(),
        kind,
        size: bytes.len() as u64,
        entries: Vec::new(),
        decoder_error: None,
        problems: Vec::new(),
    };
    let mut problem = |detail: String| {
        dump.problems.push(Problem {
            file: name.to_string(),
            position: None,
            offset: None,
            kind: ProblemKind::Index,
            detail,
        })
    };
    let (entry_len, decoder_error) = match kind {
        IndexKind::Offset => (
            offset_index::ENTRY_LEN,
            OffsetIndex::decode(base, bytes, segment.map_or(u64::MAX, |s| s.size))
                .err()
                .map(|e| e.to_string()),
        ),
        IndexKind::Time => (
            time_index::ENTRY_LEN,
            TimeIndex::decode(base, bytes).err().map(|e| e.to_string()),
        ),
        IndexKind::Txn => (
            txn_index::ENTRY_LEN,
            txn_index::decode_entries(bytes)
                .err()
                .map(|e| e.to_string()),
        ),
    };
    if !bytes.len().is_multiple_of(entry_len) {
        problem(format!(
            "{} bytes are not a whole number of {entry_len}-byte entries: the last one is torn",
            bytes.len()
        ));
    }
    let batches = segment.map_or(&[][..], |s| &s.batches[..]);
    let mut previous: Option<(i64, i64)> = None;
    for (number, chunk) in bytes.chunks_exact(entry_len).enumerate() {
        let (entry, wrong) = match kind {
            IndexKind::Offset => {
                let (relative, position) =
                    offset_index::decode_entry(chunk.try_into().expect("exact chunk"));
                let offset = base.0 + i64::from(relative);
                let order = (offset, i64::from(position));
                let wrong = out_of_order(previous, order, "offset and position", true)
                    .or_else(|| offset_entry_wrong(segment, batches, offset, position));
                previous = Some(order);
                let ok = wrong.is_none();
                (
                    IndexEntry::Offset {
                        offset,
                        position,
                        ok,
                    },
                    wrong,
                )
            }
            IndexKind::Time => {
                let (timestamp, relative) =
                    time_index::decode_entry(chunk.try_into().expect("exact chunk"));
                let offset = base.0 + i64::from(relative);
                let order = (timestamp, offset);
                let wrong = out_of_order(previous, order, "timestamp and offset", true)
                    .or_else(|| time_entry_wrong(segment, batches, timestamp, offset));
                previous = Some(order);
                let ok = wrong.is_none();
                (
                    IndexEntry::Time {
                        timestamp,
                        offset,
                        ok,
                    },
                    wrong,
                )
            }
            IndexKind::Txn => {
                match AbortedTxn::decode(chunk.try_into().expect("exact chunk"), number) {
                    Err(error) => {
                        problem(format!("entry {number}: {error}"));
                        continue;
                    }
                    Ok(txn) => {
                        let order = (txn.last_offset.0, txn.first_offset.0);
                        let wrong = out_of_order(previous, order, "marker and first offset", false)
                            .or_else(|| txn_entry_wrong(segment, batches, &txn));
                        previous = Some(order);
                        let ok = wrong.is_none();
                        (
                            IndexEntry::Txn {
                                producer_id: txn.producer_id.0,
                                first_offset: txn.first_offset.0,
                                last_offset: txn.last_offset.0,
                                last_stable_offset: txn.last_stable_offset.0,
                                ok,
                            },
                            wrong,
                        )
                    }
                }
            }
        };
        if let Some(wrong) = wrong {
            problem(format!("entry {number}: {wrong}"));
        }
        dump.entries.push(entry);
    }
    dump.decoder_error = decoder_error;
    dump
}

/// Why `order` does not come strictly after `previous`: its first field must
/// increase, and its second too when `both`.
fn out_of_order(
    previous: Option<(i64, i64)>,
    order: (i64, i64),
    what: &str,
    both: bool,
) -> Option<String> {
    let (before, now) = (previous?, order);
    let increasing = now.0 > before.0 && (now.1 > before.1 || !both);
    (!increasing).then(|| {
        format!(
            "{what} ({}, {}) do not increase over the entry before ({}, {})",
            now.0, now.1, before.0, before.1
        )
    })
}

/// The batch holding `offset`, by binary search over batches in offset order.
fn batch_holding(batches: &[BatchDump], offset: i64) -> Option<&BatchDump> {
    let at = batches.partition_point(|batch| batch.last_offset < offset);
    batches.get(at).filter(|batch| batch.contains(offset))
}

fn offset_entry_wrong(
    segment: Option<&SegmentDump>,
    batches: &[BatchDump],
    offset: i64,
    position: u32,
) -> Option<String> {
    let segment = segment?;
    let position = u64::from(position);
    if position >= segment.size {
        return Some(format!(
            "position {position} is past the end of the segment ({} bytes)",
            segment.size
        ));
    }
    if position >= segment.valid_bytes {
        return Some(format!(
            "position {position} is past the last valid batch (which ends at {})",
            segment.valid_bytes
        ));
    }
    let Ok(at) = batches.binary_search_by_key(&position, |batch| batch.position) else {
        return Some(format!("position {position} is at no batch boundary"));
    };
    let batch = &batches[at];
    (!batch.contains(offset)).then(|| {
        format!(
            "offset {offset} is not in the batch at position {position} (offsets {}..={})",
            batch.base_offset, batch.last_offset
        )
    })
}

fn time_entry_wrong(
    segment: Option<&SegmentDump>,
    batches: &[BatchDump],
    timestamp: i64,
    offset: i64,
) -> Option<String> {
    segment?;
    let Some(batch) = batch_holding(batches, offset) else {
        return Some(format!("offset {offset} is in no batch of the segment"));
    };
    (batch.max_timestamp != timestamp).then(|| {
        format!(
            "timestamp {timestamp} is not the max timestamp {} of the batch holding offset {offset}",
            batch.max_timestamp
        )
    })
}

fn txn_entry_wrong(
    segment: Option<&SegmentDump>,
    batches: &[BatchDump],
    txn: &AbortedTxn,
) -> Option<String> {
    segment?;
    let marker = txn.last_offset.0;
    if txn.first_offset.0 > marker {
        return Some(format!(
            "first offset {} is after the abort marker's offset {marker}",
            txn.first_offset.0
        ));
    }
    let batch = batch_holding(batches, marker);
    let is_abort = batch.is_some_and(|batch| {
        batch.producer_id == txn.producer_id.0
            && batch
                .marker
                .is_some_and(|marker| marker.kind == MarkerType::Abort)
    });
    (!is_abort).then(|| {
        format!(
            "no abort marker of producer {} at offset {marker}",
            txn.producer_id.0
        )
    })
}
