//! Replacing a range of segments by the cleaner's output, crash-safe, and
//! finishing or undoing an interrupted replacement when the log opens.
//!
//! The protocol:
//! 1. The cleaner writes and syncs every new segment's `.cleaned` files
//!    (`CleanedSegmentWriter::finish`); [`commit`] syncs the directory, so
//!    their names are durable before the marker. Each new segment has the base of the
//!    first old segment of its group, so new bases are a subset of old bases.
//! 2. [`commit`] writes a swap marker atomically (temp file, fdatasync, rename,
//!    directory fsync): `<first old base, 20 digits>.swap`, listing the old
//!    bases, the new bases, and which new segments have a `.txnindex`. Once it
//!    is durable the swap is committed; before, it never happened.
//! 3. Then, in any order (each step is idempotent, and any subset of them may
//!    reach the disk before a crash): the files of every old base that is not a
//!    new base are deleted (every suffix), every `<new base>.<suffix>.cleaned`
//!    is renamed over `<new base>.<suffix>` (a rename replaces the old file of
//!    that name atomically), and a new segment without a `.txnindex` loses the
//!    old segment's. The directory is synced, the marker removed, the directory
//!    synced again.
//!
//! At open, before segments are listed, [`recover`] runs step 3 again for every
//! marker it finds: a `.cleaned` file that is still there was not renamed yet,
//! one that is gone was. Then it deletes every remaining `.cleaned` file: a
//! pass that never committed.

use std::path::{Path, PathBuf};

use crate::storage::checkpoint;
use crate::storage::cleaned_segment::{CLEANED_SUFFIX, cleaned_file};
use crate::storage::error::LogError;
use crate::storage::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, file_name, parse_segment_name,
    segment_file,
};
use crate::types::Offset;

/// The suffix of swap markers.
pub const SWAP_SUFFIX: &str = "swap";
/// The only marker format so far.
const VERSION: &str = "0";
/// Files every segment has.
const REQUIRED_SUFFIXES: [&str; 3] = [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX];

/// What [`recover`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapEvent {
    /// A committed swap, interrupted by a crash, was finished.
    Completed { old: Vec<Offset>, new: Vec<Offset> },
    /// A file of a cleaning pass that never committed was deleted.
    CleanedFileRemoved { path: PathBuf },
}

/// The contents of a swap marker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    old: Vec<Offset>,
    new: Vec<Offset>,
    /// The new bases that come with a `.txnindex`.
    with_txn_index: Vec<Offset>,
}

impl Marker {
    /// Whether the bases make a valid swap: both lists strictly increasing, the
    /// new ones (with a `.txnindex` or not) among the old ones.
    fn is_valid(&self) -> bool {
        let increasing = |bases: &[Offset]| bases.windows(2).all(|pair| pair[0] < pair[1]);
        let among = |inner: &[Offset], outer: &[Offset]| {
            inner.iter().all(|base| outer.binary_search(base).is_ok())
        };
        !self.old.is_empty()
            && !self.new.is_empty()
            && increasing(&self.old)
            && increasing(&self.new)
            && increasing(&self.with_txn_index)
            && among(&self.new, &self.old)
            && among(&self.with_txn_index, &self.new)
    }

    fn name(&self) -> String {
        file_name(self.old[0], SWAP_SUFFIX)
    }

    /// `0\nold <bases>\nnew <bases>\ntxnindex <bases>\n`
    fn encode(&self) -> Vec<u8> {
        assert!(self.is_valid(), "invalid swap: {self:?}");
        let list = |bases: &[Offset]| {
            bases
                .iter()
                .map(|base| format!(" {}", base.0))
                .collect::<String>()
        };
        format!(
            "{VERSION}\nold{}\nnew{}\ntxnindex{}\n",
            list(&self.old),
            list(&self.new),
            list(&self.with_txn_index)
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Marker, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(VERSION) {
            return Err("unknown swap marker version".into());
        }
        let mut list = |label: &str| -> Result<Vec<Offset>, String> {
            let line = lines.next().ok_or(format!("missing {label} line"))?;
            let mut fields = line.split(' ');
            if fields.next() != Some(label) {
                return Err(format!("expected the {label} line, found {line:?}"));
            }
            fields
                .map(|field| match field.parse::<i64>() {
                    Ok(base) if base >= 0 => Ok(Offset(base)),
                    _ => Err(format!("bad base {field:?} in the {label} line")),
                })
                .collect()
        };
        let marker = Marker {
            old: list("old")?,
            new: list("new")?,
            with_txn_index: list("txnindex")?,
        };
        if lines.next().is_some() {
            return Err("trailing lines".into());
        }
        if !marker.is_valid() {
            return Err(format!("invalid swap {marker:?}"));
        }
        Ok(marker)
    }
}

/// One file operation of step 3.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Remove(PathBuf),
    Rename { from: PathBuf, to: PathBuf },
}

impl Step {
    /// Applies the step; one that already happened (its source is gone) is done.
    fn apply(&self) -> Result<(), LogError> {
        let result = match self {
            Step::Remove(path) => std::fs::remove_file(path),
            Step::Rename { from, to } => std::fs::rename(from, to),
        };
        match result {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }
}

/// Step 3 of the protocol, as file operations that commute.
fn steps(dir: &Path, marker: &Marker) -> Vec<Step> {
    let mut steps = Vec::new();
    for &old in &marker.old {
        if marker.new.binary_search(&old).is_err() {
            for suffix in REQUIRED_SUFFIXES.into_iter().chain([TXN_INDEX_SUFFIX]) {
                steps.push(Step::Remove(segment_file(dir, old, suffix)));
            }
        }
    }
    for &new in &marker.new {
        for suffix in REQUIRED_SUFFIXES {
            steps.push(Step::Rename {
                from: cleaned_file(dir, new, suffix),
                to: segment_file(dir, new, suffix),
            });
        }
        steps.push(if marker.with_txn_index.binary_search(&new).is_ok() {
            Step::Rename {
                from: cleaned_file(dir, new, TXN_INDEX_SUFFIX),
                to: segment_file(dir, new, TXN_INDEX_SUFFIX),
            }
        } else {
            Step::Remove(segment_file(dir, new, TXN_INDEX_SUFFIX))
        });
    }
    steps
}

/// Replaces the segments at `old_bases` by the cleaned ones at `new_bases`,
/// whose `.cleaned` files are written and synced. Both lists are sorted, and
/// every new base is an old base (a new segment keeps the base of the first old
/// segment of its group).
pub async fn commit(
    dir: &Path,
    old_bases: &[Offset],
    new_bases: &[Offset],
) -> Result<(), LogError> {
    let mut with_txn_index = Vec::new();
    for &base in new_bases {
        for suffix in REQUIRED_SUFFIXES {
            let path = cleaned_file(dir, base, suffix);
            if !path.exists() {
                return Err(LogError::Corrupt(format!(
                    "cannot swap in {}: it is missing",
                    path.display()
                )));
            }
        }
        if cleaned_file(dir, base, TXN_INDEX_SUFFIX).exists() {
            with_txn_index.push(base);
        }
    }
    let marker = Marker {
        old: old_bases.to_vec(),
        new: new_bases.to_vec(),
        with_txn_index,
    };
    assert!(
        marker.is_valid(),
        "a swap replaces sorted old bases by a sorted subset of them: {marker:?}"
    );
    // The `.cleaned` files' directory entries first: the marker must never be
    // durable without them.
    checkpoint::sync_dir(dir).await?;
    checkpoint::write_atomically(dir, &marker.name(), marker.encode()).await?;
    complete(dir, &marker).await
}

/// Step 3 for a committed `marker`, from wherever a crash stopped it.
async fn complete(dir: &Path, marker: &Marker) -> Result<(), LogError> {
    for step in steps(dir, marker) {
        step.apply()?;
    }
    checkpoint::sync_dir(dir).await?;
    Step::Remove(dir.join(marker.name())).apply()?;
    checkpoint::sync_dir(dir).await
}

/// At open, before segments are listed: finishes every committed swap, then
/// deletes every `.cleaned` file left (passes that never committed).
pub async fn recover(dir: &Path) -> Result<Vec<SwapEvent>, LogError> {
    let mut events = Vec::new();
    let mut markers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if parse_segment_name(&name, SWAP_SUFFIX).is_some() {
            markers.push(entry.path());
        }
    }
    markers.sort();
    for path in markers {
        let bytes = checkpoint::read_optional(&path)
            .await?
            .expect("a listed marker exists: only this shard's recovery removes it");
        let marker = Marker::decode(&bytes)
            .map_err(|error| LogError::Corrupt(format!("{}: {error}", path.display())))?;
        assert_eq!(
            dir.join(marker.name()),
            path,
            "a swap marker is named after its first old base"
        );
        complete(dir, &marker).await?;
        events.push(SwapEvent::Completed {
            old: marker.old,
            new: marker.new,
        });
    }

    let cleaned_ending = format!(".{CLEANED_SUFFIX}");
    let mut removed = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(&cleaned_ending)
        {
            std::fs::remove_file(entry.path())?;
            removed = true;
            events.push(SwapEvent::CleanedFileRemoved { path: entry.path() });
        }
    }
    if removed {
        checkpoint::sync_dir(dir).await?;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::storage::cleaned_segment::CleanedSegmentWriter;
    use crate::storage::recovery::{self, RecoveryEvent};
    use crate::storage::segment::SegmentSettings;
    use crate::storage::test_support::{batch_at, run, small_config};

    const ALL_SUFFIXES: [&str; 4] = [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ];

    /// Segments 0, 10, 20 and 30 replaced by 0 (with a `.txnindex`, which the old
    /// 0 lacks) and 20 (without, which the old 20 has); 40 outside the swap.
    fn marker() -> Marker {
        Marker {
            old: vec![Offset(0), Offset(10), Offset(20), Offset(30)],
            new: vec![Offset(0), Offset(20)],
            with_txn_index: vec![Offset(0)],
        }
    }

    /// Every file of `dir`, by name.
    fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(entry.path()).unwrap())
            })
            .collect()
    }

    fn contents(tag: &str, base: i64, suffix: &str) -> Vec<u8> {
        format!("{tag} {base} {suffix}").into_bytes()
    }

    /// The files before the swap: old segments, kept segment, cleaned files.
    fn before() -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for (base, suffixes) in [
            (0, &ALL_SUFFIXES[..3]),
            (10, &ALL_SUFFIXES[..]),
            (20, &ALL_SUFFIXES[..]),
            (30, &ALL_SUFFIXES[..3]),
        ] {
            for suffix in suffixes {
                files.insert(
                    file_name(Offset(base), suffix),
                    contents("old", base, suffix),
                );
            }
        }
        files.extend(kept());
        for (base, suffixes) in [(0, &ALL_SUFFIXES[..]), (20, &ALL_SUFFIXES[..3])] {
            for suffix in suffixes {
                let name = format!("{}.{CLEANED_SUFFIX}", file_name(Offset(base), suffix));
                files.insert(name, contents("new", base, suffix));
            }
        }
        files
    }

    fn kept() -> BTreeMap<String, Vec<u8>> {
        ALL_SUFFIXES
            .iter()
            .map(|suffix| (file_name(Offset(40), suffix), contents("kept", 40, suffix)))
            .collect()
    }

    /// The files once the swap is done.
    fn after() -> BTreeMap<String, Vec<u8>> {
        let mut files = kept();
        for (base, suffixes) in [(0, &ALL_SUFFIXES[..]), (20, &ALL_SUFFIXES[..3])] {
            for suffix in suffixes {
                files.insert(
                    file_name(Offset(base), suffix),
                    contents("new", base, suffix),
                );
            }
        }
        files
    }

    fn lay_out(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn markers_round_trip_and_bad_ones_are_refused() {
        let marker = marker();
        assert_eq!(
            String::from_utf8(marker.encode()).unwrap(),
            "0\nold 0 10 20 30\nnew 0 20\ntxnindex 0\n"
        );
        assert_eq!(Marker::decode(&marker.encode()), Ok(marker.clone()));
        assert_eq!(marker.name(), "00000000000000000000.swap");
        for bad in [
            "1\nold 0\nnew 0\ntxnindex\n",
            "0\nold 0 10\nnew 5\ntxnindex\n",
            "0\nold 10 0\nnew 10\ntxnindex\n",
            "0\nold 0\nnew\ntxnindex\n",
            "0\nold 0\nnew 0\ntxnindex 10\n",
            "0\nold 0\nnew 0\n",
            "0\nold -1\nnew -1\ntxnindex\n",
            "0\nold 0\nnew 0\ntxnindex\nmore\n",
        ] {
            assert!(Marker::decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commit_leaves_only_the_new_segments() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            lay_out(dir, &before());
            let marker = marker();
            commit(dir, &marker.old, &marker.new).await.unwrap();
            assert_eq!(listing(dir), after());
            assert_eq!(recover(dir).await.unwrap(), vec![]);
            assert_eq!(listing(dir), after());
        });
    }

    #[test]
    fn recovery_finishes_a_swap_stopped_anywhere() {
        run(|| async {
            let marker = marker();
            let plan_len = steps(Path::new("/d"), &marker).len();
            // A crash after any prefix of step 3, and (the directory was not
            // synced yet, so any subset may have reached the disk) after any
            // single step alone.
            let prefixes = (0..=plan_len).map(|done| (0..done).collect::<Vec<_>>());
            let singles = (0..plan_len).map(|only| vec![only]);
            for done in prefixes.chain(singles) {
                let dir = tempfile::tempdir().unwrap();
                let dir = dir.path();
                lay_out(dir, &before());
                std::fs::write(dir.join(marker.name()), marker.encode()).unwrap();
                let plan = steps(dir, &marker);
                for &step in &done {
                    plan[step].apply().unwrap();
                }
                let events = recover(dir).await.unwrap();
                assert_eq!(listing(dir), after(), "steps {done:?} done");
                assert_eq!(
                    events,
                    vec![SwapEvent::Completed {
                        old: marker.old.clone(),
                        new: marker.new.clone(),
                    }]
                );
            }
        });
    }

    #[test]
    fn recovery_without_a_marker_removes_the_cleaned_files() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            lay_out(dir, &before());
            // A crash while the marker was written: only its temp file exists.
            std::fs::write(dir.join("00000000000000000000.swap.tmp"), b"0\nold").unwrap();
            let events = recover(dir).await.unwrap();
            let mut expected = before();
            expected.retain(|name, _| !name.ends_with(".cleaned"));
            expected.insert("00000000000000000000.swap.tmp".into(), b"0\nold".to_vec());
            assert_eq!(listing(dir), expected, "old segments untouched");
            assert_eq!(events.len(), 7);
            assert!(
                events
                    .iter()
                    .all(|e| matches!(e, SwapEvent::CleanedFileRemoved { .. }))
            );
        });
    }

    /// Writes a segment at `base` holding `batches` under its final names.
    async fn write_segment(dir: &Path, base: i64, batches: &[Vec<u8>]) {
        let mut writer = CleanedSegmentWriter::create(dir, Offset(base), 1024)
            .await
            .unwrap();
        for batch in batches {
            writer.append(batch).await.unwrap();
        }
        writer.finish(&[]).await.unwrap();
        for suffix in REQUIRED_SUFFIXES {
            std::fs::rename(
                cleaned_file(dir, Offset(base), suffix),
                segment_file(dir, Offset(base), suffix),
            )
            .unwrap();
        }
    }

    #[test]
    fn recovery_accepts_a_swapped_in_segment() {
        run(|| async {
            // Committed and finished, or committed and then crashed.
            for crash_at_commit in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let dir = dir.path();
                // Three sealed segments of five two-record batches each, and the
                // active one; the cleaner keeps the last batch of each sealed one.
                let mut kept = Vec::new();
                for base in [0, 10, 20, 30] {
                    let batches: Vec<Vec<u8>> =
                        (0..5).map(|n| batch_at(base + 2 * n, 2, 100)).collect();
                    kept.push(batches[4].clone());
                    write_segment(dir, base, &batches).await;
                }
                kept.pop();
                let mut writer = CleanedSegmentWriter::create(dir, Offset(0), 1024)
                    .await
                    .unwrap();
                for batch in &kept {
                    writer.append(batch).await.unwrap();
                }
                let cleaned = writer.finish(&[]).await.unwrap();
                assert_eq!(cleaned.next_offset, Offset(30));
                let old = [Offset(0), Offset(10), Offset(20)];
                if crash_at_commit {
                    let marker = Marker {
                        old: old.to_vec(),
                        new: vec![Offset(0)],
                        with_txn_index: vec![],
                    };
                    checkpoint::write_atomically(dir, &marker.name(), marker.encode())
                        .await
                        .unwrap();
                } else {
                    commit(dir, &old, &[Offset(0)]).await.unwrap();
                }

                let settings = SegmentSettings::of(&small_config());
                let recovered = recovery::recover(dir, &settings, Offset::ZERO)
                    .await
                    .unwrap();
                let expected_events = if crash_at_commit {
                    vec![RecoveryEvent::SwapCompleted {
                        old: old.to_vec(),
                        new: vec![Offset(0)],
                    }]
                } else {
                    vec![]
                };
                assert_eq!(recovered.report.events, expected_events);
                let shape: Vec<_> = recovered
                    .segments
                    .iter()
                    .map(|s| (s.base, s.size, s.next_offset))
                    .collect();
                assert_eq!(
                    shape,
                    vec![
                        (Offset(0), cleaned.size, Offset(30)),
                        (Offset(30), recovered.segments[1].size, Offset(40)),
                    ]
                );
                assert_eq!(
                    cleaned.size,
                    kept.iter().map(|b| b.len() as u64).sum::<u64>()
                );
                assert!(
                    listing(dir)
                        .keys()
                        .all(|name| !name.ends_with(".cleaned") && !name.ends_with(".swap"))
                );
            }
        });
    }
}
