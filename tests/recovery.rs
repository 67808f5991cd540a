//! Corruption on disk: recovery truncates torn or corrupt tails, rebuilds missing
//! or corrupt indexes, reports what it did, and never serves a corrupt batch.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::{EPOCH0, as_stored, batch, open, run, small_config};
use sluice::storage::{PartitionLog, RecoveryEvent};
use sluice::types::Offset;

async fn fill(log: &PartitionLog, count: u64) -> Vec<Vec<u8>> {
    let mut stored = Vec::new();
    for n in 0..count {
        let bytes = batch(n, 5, 300, 1_000 + n as i64);
        let info = log.append(&bytes, EPOCH0).await.unwrap();
        stored.push(as_stored(bytes, info.base_offset, EPOCH0));
    }
    stored
}

async fn read_all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    for _ in 0..100_000 {
        let outcome = log.read(next, 1 << 20, true).await.unwrap();
        if outcome.bytes == 0 {
            return out;
        }
        out.extend(outcome.to_vec().await.unwrap());
        next = outcome.next_offset;
    }
    panic!("read did not reach the end");
}

fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}

fn flip_byte(path: &Path, position: u64) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    std::io::Read::read_exact(
        &mut { file.try_clone().unwrap() }.by_ref_at(position),
        &mut byte,
    )
    .unwrap();
    file.seek(SeekFrom::Start(position)).unwrap();
    file.write_all(&[byte[0] ^ 0x40]).unwrap();
    file.sync_all().unwrap();
}

trait ByRefAt {
    fn by_ref_at(&mut self, position: u64) -> &mut Self;
}

impl ByRefAt for std::fs::File {
    fn by_ref_at(&mut self, position: u64) -> &mut Self {
        self.seek(SeekFrom::Start(position)).unwrap();
        self
    }
}

/// The bytes of the last segment that hold batches (its file may be longer:
/// segments are zero-filled ahead of the writes).
fn logical_len(path: &Path, stored: &[Vec<u8>]) -> u64 {
    let base: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    stored
        .iter()
        .filter(|b| {
            sluice::record::BatchHeader::parse(b)
                .unwrap()
                .base_offset()
                .0
                >= base
        })
        .map(|b| b.len() as u64)
        .sum()
}

/// Writes `count` batches, then stops without `close` (as a crash would).
async fn write_and_crash(dir: &Path, count: u64) -> Vec<Vec<u8>> {
    let (log, _) = open(dir, small_config()).await;
    let stored = fill(&log, count).await;
    drop(log);
    stored
}

fn truncations(events: &[RecoveryEvent]) -> Vec<(Offset, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RecoveryEvent::Truncated {
                segment, reason, ..
            } => Some((*segment, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_flipped_byte_in_the_tail_batch_is_truncated_after_a_crash() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_and_crash(dir.path(), 50).await;
        let last = segment_files(dir.path(), "log").pop().unwrap();
        let len = logical_len(&last, &stored);
        let tail_len = stored.last().unwrap().len() as u64;
        flip_byte(&last, len - tail_len / 2);

        let (log, report) = open(dir.path(), small_config()).await;
        let cut = truncations(&report.events);
        assert_eq!(cut.len(), 1, "{:?}", report.events);
        assert!(cut[0].1.contains("CRC32C"), "{}", cut[0].1);
        assert_eq!(log.log_end_offset(), Offset(49 * 5));
        assert_eq!(read_all(&log).await, stored[..49].concat());
        let again = batch(7, 5, 10, 0);
        assert_eq!(
            log.append(&again, EPOCH0).await.unwrap().base_offset,
            Offset(245)
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_flipped_byte_in_the_tail_batch_is_found_after_a_clean_shutdown_too() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 30).await;
        log.close().await.unwrap();
        let last = segment_files(dir.path(), "log").pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        flip_byte(&last, len - 3);

        let (log, report) = open(dir.path(), small_config()).await;
        assert_eq!(truncations(&report.events).len(), 1, "{:?}", report.events);
        assert!(
            report
                .events
                .iter()
                .any(|e| matches!(e, RecoveryEvent::EndsBeforeRecoveryPoint { .. }))
        );
        assert_eq!(read_all(&log).await, stored[..29].concat());
        log.close().await.unwrap();
    });
}

#[test]
fn a_file_cut_mid_batch_is_truncated_to_the_last_whole_batch() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_and_crash(dir.path(), 40).await;
        let last = segment_files(dir.path(), "log").pop().unwrap();
        let len = logical_len(&last, &stored);
        let file = OpenOptions::new().write(true).open(&last).unwrap();
        file.set_len(len - 100).unwrap();
        drop(file);

        let (log, report) = open(dir.path(), small_config()).await;
        let cut = truncations(&report.events);
        assert_eq!(cut.len(), 1, "{:?}", report.events);
        assert!(cut[0].1.contains("torn"), "{}", cut[0].1);
        assert_eq!(read_all(&log).await, stored[..39].concat());
        log.close().await.unwrap();
        let (log, report) = open(dir.path(), small_config()).await;
        assert!(
            report.events.is_empty(),
            "second open is clean: {:?}",
            report.events
        );
        log.close().await.unwrap();
    });
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_and_crash(dir.path(), 10).await;
        let last = segment_files(dir.path(), "log").pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(&last).unwrap();
        file.write_all(&[0xAB; 700]).unwrap();
        drop(file);

        let (log, report) = open(dir.path(), small_config()).await;
        assert_eq!(truncations(&report.events).len(), 1, "{:?}", report.events);
        assert_eq!(read_all(&log).await, stored.concat());
        assert_eq!(
            std::fs::metadata(&last).unwrap().len(),
            logical_len(&last, &stored)
        );
        log.close().await.unwrap();
    });
}

#[test]
fn deleted_or_corrupt_indexes_are_rebuilt() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 150).await;
        log.close().await.unwrap();
        let indexes = segment_files(dir.path(), "index");
        assert!(indexes.len() >= 3);
        std::fs::remove_file(&indexes[0]).unwrap();
        std::fs::write(&indexes[1], b"not an index").unwrap();
        std::fs::remove_file(indexes.last().unwrap()).unwrap();

        let (log, report) = open(dir.path(), small_config()).await;
        assert_eq!(report.index_rebuilds(), 3, "{:?}", report.events);
        assert_eq!(truncations(&report.events).len(), 0);
        for offset in (0..750).step_by(7) {
            let bytes = log
                .read(Offset(offset), 1, true)
                .await
                .unwrap()
                .to_vec()
                .await
                .unwrap();
            assert_eq!(bytes, stored[offset as usize / 5], "offset {offset}");
        }
        log.close().await.unwrap();
        for index in &indexes {
            assert!(index.exists(), "{} rewritten", index.display());
        }
        let (log, report) = open(dir.path(), small_config()).await;
        assert_eq!(report.index_rebuilds(), 0, "{:?}", report.events);
        log.close().await.unwrap();
    });
}

#[test]
fn corruption_in_an_older_segment_drops_everything_after_it() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_and_crash(dir.path(), 150).await;
        let logs = segment_files(dir.path(), "log");
        assert!(logs.len() >= 3);
        // Without the recovery point every segment is validated.
        std::fs::remove_file(dir.path().join("recovery-point.checkpoint")).unwrap();
        flip_byte(&logs[1], 5_000);

        let (log, report) = open(dir.path(), small_config()).await;
        let cut = truncations(&report.events);
        assert_eq!(cut.len(), 1, "{:?}", report.events);
        let deleted = report
            .events
            .iter()
            .filter(|e| matches!(e, RecoveryEvent::SegmentDeleted { .. }))
            .count();
        assert_eq!(deleted, logs.len() - 2);
        let kept = read_all(&log).await;
        assert!(!kept.is_empty() && kept.len() < stored.concat().len());
        assert!(
            stored.concat().starts_with(&kept),
            "what is kept is an exact prefix"
        );
        assert_eq!(log.segment_count(), 2);
        log.close().await.unwrap();
    });
}
