//! `sluice log dump DIR`: an offline look at one partition directory, as
//! Kafka's `kafka-dump-log` gives, and a consistency check: the first tool to
//! reach for after a crash.
//!
//! It owns no format. Segments are walked with the batch header view and
//! CRC32C of `record::batch`, records read with the log cleaner's record
//! reader (`record::compaction`, which inflates compressed batches, bounded),
//! markers with `record::control`, indexes and checkpoints with the decoders
//! the broker opens them with. What it adds is the reporting: every batch and
//! entry, and every place where the files disagree with themselves or with
//! each other, as a [`Problem`].
//!
//! It runs without the broker and without a glommio executor: files are opened
//! read-only with `std::fs`, never written. Segments are handled one at a time
//! (their batches, records and indexes in memory, then rendered and dropped),
//! so memory follows the largest segment, not the partition.
//!
//! The report's numbers (offsets, epochs, producer ids) are plain integers:
//! it is printed, not passed around the broker.

mod checkpoints;
mod indexes;
mod report;
mod segment;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::storage::cleaned_segment::CLEANED_SUFFIX;
use crate::storage::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, parse_segment_name,
};
use crate::storage::swap::SWAP_SUFFIX;
use crate::types::Offset;

pub use checkpoints::{CheckpointDump, Content, EpochEntry, ProducerDump};
pub use indexes::{IndexDump, IndexEntry, IndexKind};
pub use report::{Json, Render, Text};
pub use segment::{BatchDump, HeaderDump, MarkerDump, MarkerType, RecordDump, SegmentDump};

/// Small files shown whole (a swap marker); anything larger is only listed.
const SHOWN_FILE_LIMIT: u64 = 64 << 10;

/// What to print beyond the batch headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Every record of every batch whose CRC is right.
    pub records: bool,
}

/// Why the dump could not run at all (exit code 2), as opposed to what it found.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("{0}: not a partition directory (its name is not <topic>-<partition>)")]
    NotAPartition(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Something in the directory that is not consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    /// Byte position in the file, where that means something.
    pub position: Option<u64>,
    /// The base offset of the batch concerned.
    pub offset: Option<i64>,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    CrcMismatch,
    /// A header or batch cut short by the end of the file.
    TornTail,
    BadLength,
    BadMagic,
    OffsetsBackwards,
    /// Non-zero bytes after the zero fill that follows the last batch.
    StrayBytes,
    /// A batch whose CRC matches but whose records do not decode.
    BadRecords,
    /// A segment starting below the end of the one before it.
    SegmentOverlap,
    Index,
    Checkpoint,
}

/// Bytes of a key, value or header: a JSON string when they are UTF-8, else
/// `{"hex": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Bytes {
    Utf8(String),
    Hex { hex: String },
}

impl Bytes {
    pub fn of(bytes: &[u8]) -> Bytes {
        match std::str::from_utf8(bytes) {
            Ok(text) => Bytes::Utf8(text.to_string()),
            Err(_) => Bytes::Hex {
                hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            },
        }
    }
}

/// The directory dumped.
#[derive(Debug, Serialize)]
pub struct Head {
    pub dir: String,
    pub topic: String,
    pub partition: i32,
}

/// One segment with its indexes.
#[derive(Debug, Serialize)]
pub struct SegmentReport {
    #[serde(flatten)]
    pub log: SegmentDump,
    pub indexes: Vec<IndexDump>,
    /// Remarks that are not problems (a missing index recovery rebuilds).
    pub notes: Vec<String>,
}

/// A file that is neither a segment, an index of one, nor a checkpoint.
#[derive(Debug, Serialize)]
pub struct OtherFile {
    pub file: String,
    pub size: u64,
    pub note: String,
}

/// Everything after the segments.
#[derive(Debug, Serialize)]
pub struct Tail {
    pub checkpoints: Vec<CheckpointDump>,
    pub other_files: Vec<OtherFile>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    /// No problem found: the exit code is 0.
    pub consistent: bool,
    pub segments: usize,
    pub batches: u64,
    /// The sum of the batches' record counts.
    pub records: u64,
    /// The first segment's base offset.
    pub first_offset: Option<i64>,
    /// The offset after the last valid batch (the log end recovery would find).
    pub next_offset: Option<i64>,
    /// Every problem, in the order found; a segment's first is its first bad batch.
    pub problems: Vec<Problem>,
}

/// Runs `sluice log dump`: the report on stdout, as JSON with `json`; returns
/// the exit code: 0 consistent, 1 something is corrupt, 2 the dump could not
/// run (reason on stderr).
pub fn main(dir: &Path, options: Options, json: bool) -> u8 {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = if json {
        dump(dir, options, &mut Json::new(&mut out))
    } else {
        dump(dir, options, &mut Text::new(&mut out))
    };
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(summary), Ok(())) => u8::from(!summary.consistent),
        (Err(error), _) => {
            eprintln!("sluice log dump: {error}");
            2
        }
        (Ok(_), Err(error)) => {
            eprintln!("sluice log dump: writing the report: {error}");
            2
        }
    }
}

/// The files of a partition directory, by role.
#[derive(Default)]
struct Listing {
    logs: BTreeMap<Offset, String>,
    indexes: BTreeMap<Offset, Vec<(IndexKind, String)>>,
    checkpoints: Vec<String>,
    others: Vec<String>,
}

/// Dumps `dir` through `render`; returns the summary it rendered last.
pub fn dump(dir: &Path, options: Options, render: &mut dyn Render) -> Result<Summary, DumpError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DumpError::Io { path, source }
    };
    let metadata = std::fs::metadata(dir).map_err(io(dir))?;
    if !metadata.is_dir() {
        return Err(DumpError::NotADirectory(dir.to_path_buf()));
    }
    let head = partition_of(dir).ok_or_else(|| DumpError::NotAPartition(dir.to_path_buf()))?;
    let listing = list(dir).map_err(io(dir))?;
    render.begin(&head).map_err(io(Path::new("<stdout>")))?;

    let mut problems = Vec::new();
    let (mut batches, mut records) = (0u64, 0u64);
    let mut previous_end: Option<(String, i64)> = None;
    for (&base, name) in &listing.logs {
        let path = dir.join(name);
        let file = File::open(&path).map_err(io(&path))?;
        let mut log = segment::scan(&file, name, base, options.records).map_err(io(&path))?;
        if let Some((previous, end)) = &previous_end
            && base.0 < *end
        {
            log.problems.push(Problem {
                file: name.clone(),
                position: None,
                offset: Some(base.0),
                kind: ProblemKind::SegmentOverlap,
                detail: format!("the segment starts below the end {end} of {previous}"),
            });
        }
        let mut notes = Vec::new();
        if log.zero_filled_bytes > 0 {
            notes.push(format!(
                "{} zero bytes after the last batch: the zero fill ahead of the writes (the \
                 segment was not closed cleanly, or is the active one of a running broker)",
                log.zero_filled_bytes
            ));
        }
        let mut segment_indexes = Vec::new();
        let files = listing.indexes.get(&base).map_or(&[][..], Vec::as_slice);
        for kind in [IndexKind::Offset, IndexKind::Time] {
            if !files.iter().any(|(k, _)| *k == kind) {
                notes.push(format!("no {} file: recovery rebuilds it", suffix_of(kind)));
            }
        }
        for (kind, index_name) in files {
            let index_path = dir.join(index_name);
            // Read whole: how much is read is the file's size, never a field in it.
            let bytes = std::fs::read(&index_path).map_err(io(&index_path))?;
            segment_indexes.push(indexes::check(index_name, *kind, base, &bytes, Some(&log)));
        }
        batches += log.batches.len() as u64;
        records += log
            .batches
            .iter()
            .map(|b| u64::try_from(b.count).unwrap_or(0))
            .sum::<u64>();
        previous_end = Some((name.clone(), log.next_offset.unwrap_or(base.0)));
        problems.extend(log.problems.iter().cloned());
        for index in &segment_indexes {
            problems.extend(index.problems.iter().cloned());
        }
        let report = SegmentReport {
            log,
            indexes: segment_indexes,
            notes,
        };
        render.segment(&report).map_err(io(Path::new("<stdout>")))?;
    }

    let first_offset = listing.logs.keys().next().map(|base| base.0);
    let next_offset = previous_end.map(|(_, end)| end);
    let mut decoded: Vec<(String, Content)> = Vec::new();
    for name in &listing.checkpoints {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        decoded.push((name.clone(), checkpoints::decode(name, &bytes)));
    }
    let checkpointed_start = decoded.iter().find_map(|(name, content)| match content {
        Content::Offset { offset } if name == crate::storage::checkpoint::LOG_START_OFFSET_FILE => {
            Some(*offset)
        }
        _ => None,
    });
    let bounds = next_offset.map(|end| checkpoints::LogBounds {
        end,
        start: checkpointed_start.or(first_offset).unwrap_or(end),
    });
    let checkpoints: Vec<CheckpointDump> = decoded
        .into_iter()
        .map(|(name, content)| checkpoints::check(&name, content, bounds))
        .collect();
    for checkpoint in &checkpoints {
        problems.extend(checkpoint.problems.iter().cloned());
    }

    let mut other_files = Vec::new();
    for (base, files) in &listing.indexes {
        if !listing.logs.contains_key(base) {
            for (_, name) in files {
                other_files.push(other_file(
                    dir,
                    name,
                    "an index without its segment: recovery removes it".into(),
                )?);
            }
        }
    }
    for name in &listing.others {
        other_files.push(describe_other(dir, name)?);
    }

    let summary = Summary {
        consistent: problems.is_empty(),
        segments: listing.logs.len(),
        batches,
        records,
        first_offset,
        next_offset,
        problems,
    };
    let tail = Tail {
        checkpoints,
        other_files,
        summary,
    };
    render.finish(&tail).map_err(io(Path::new("<stdout>")))?;
    Ok(tail.summary)
}

/// `<topic>-<partition>`, as Kafka names partition directories.
fn partition_of(dir: &Path) -> Option<Head> {
    let canonical = dir.canonicalize().ok()?;
    let name = canonical.file_name()?.to_str()?;
    let (topic, partition) = name.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok().filter(|p| *p >= 0)?;
    (!topic.is_empty()).then(|| Head {
        dir: dir.display().to_string(),
        topic: topic.to_string(),
        partition,
    })
}

fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    for name in names {
        if let Some(base) = parse_segment_name(&name, LOG_SUFFIX) {
            listing.logs.insert(base, name);
        } else if let Some((base, kind)) = index_of(&name) {
            listing.indexes.entry(base).or_default().push((kind, name));
        } else if checkpoints::FILES.contains(&name.as_str()) {
            listing.checkpoints.push(name);
        } else {
            listing.others.push(name);
        }
    }
    for files in listing.indexes.values_mut() {
        files.sort_by_key(|(kind, _)| *kind as u8);
    }
    Ok(listing)
}

fn suffix_of(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Offset => INDEX_SUFFIX,
        IndexKind::Time => TIME_INDEX_SUFFIX,
        IndexKind::Txn => TXN_INDEX_SUFFIX,
    }
}

fn index_of(name: &str) -> Option<(Offset, IndexKind)> {
    [IndexKind::Offset, IndexKind::Time, IndexKind::Txn]
        .into_iter()
        .find_map(|kind| parse_segment_name(name, suffix_of(kind)).map(|base| (base, kind)))
}

fn other_file(dir: &Path, name: &str, note: String) -> Result<OtherFile, DumpError> {
    let path = dir.join(name);
    let size = std::fs::symlink_metadata(&path)
        .map_err(|source| DumpError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    Ok(OtherFile {
        file: name.to_string(),
        size,
        note,
    })
}

/// What a file the broker leaves behind in passing is.
fn describe_other(dir: &Path, name: &str) -> Result<OtherFile, DumpError> {
    let mut file = other_file(dir, name, String::new())?;
    file.note = if name.ends_with(&format!(".{SWAP_SUFFIX}")) {
        let text = if file.size <= SHOWN_FILE_LIMIT {
            std::fs::read(dir.join(name))
                .map(|bytes| String::from_utf8_lossy(&bytes).replace('\n', "; "))
                .unwrap_or_default()
        } else {
            String::new()
        };
        format!(
            "a log cleaner swap interrupted by a crash; the next open finishes it ({})",
            text.trim_end_matches("; ")
        )
    } else if name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
        "output of a log cleaner pass: the next open swaps it in or deletes it".into()
    } else if name.ends_with(".tmp") {
        "a temp file of an interrupted checkpoint write: the next open removes it".into()
    } else {
        "not a file Sluice writes".into()
    };
    Ok(file)
}

#[cfg(test)]
mod tests;
