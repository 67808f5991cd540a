use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::record::batch::RecordBatchMut;
use crate::record::builder::{BatchWriter, NewRecord, build_batch, build_batch_with};
use crate::record::control::{EndTxnMarker, MarkerKind};
use crate::storage::checkpoint::{encode_epochs, encode_offset};
use crate::storage::offset_index::OffsetIndex;
use crate::storage::time_index::TimeIndex;
use crate::types::{LeaderEpoch, ProducerEpoch, ProducerId, TimestampMs};

const LOG: &str = "00000000000000000000.log";

/// A partition directory with three batches (offsets 0-1, 2, 3: a
/// transactional record and its commit marker), its indexes and checkpoints.
struct Fixture {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    /// Where each batch starts in the log.
    positions: Vec<u64>,
    log_len: u64,
}

fn at(mut batch: Vec<u8>, offset: i64) -> Vec<u8> {
    RecordBatchMut::new_unchecked(&mut batch)
        .assign_offset_and_epoch(Offset(offset), LeaderEpoch(3));
    batch
}

fn fixture() -> Fixture {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("orders-0");
    std::fs::create_dir(&dir).unwrap();
    let plain = build_batch(&[
        NewRecord {
            key: Some(b"k0"),
            value: Some(b"v0"),
            timestamp_ms: 1_000,
        },
        NewRecord {
            key: None,
            value: Some(&[0xff, 0x00]),
            timestamp_ms: 1_005,
        },
    ]);
    let writer = BatchWriter {
        attributes: crate::record::Attributes(0).with_transactional(),
        producer_id: ProducerId(7),
        producer_epoch: ProducerEpoch(1),
        base_sequence: 0,
    };
    let transactional = build_batch_with(
        &[NewRecord {
            key: Some(b"t"),
            value: None,
            timestamp_ms: 1_010,
        }],
        writer,
    );
    let commit = EndTxnMarker {
        kind: MarkerKind::Commit,
        coordinator_epoch: 4,
    }
    .build_batch(ProducerId(7), ProducerEpoch(1), TimestampMs(1_020));
    let batches = [at(plain, 0), at(transactional, 2), at(commit, 3)];
    let mut log = Vec::new();
    let mut positions = Vec::new();
    for batch in &batches {
        positions.push(log.len() as u64);
        log.extend_from_slice(batch);
    }
    std::fs::write(dir.join(LOG), &log).unwrap();
    let mut index = OffsetIndex::new(Offset(0));
    index.append(Offset(1), 0);
    index.append(Offset(2), positions[1] as u32);
    std::fs::write(dir.join("00000000000000000000.index"), index.encode()).unwrap();
    let mut times = TimeIndex::new(Offset(0));
    times.maybe_append(TimestampMs(1_005), Offset(0));
    times.maybe_append(TimestampMs(1_020), Offset(3));
    std::fs::write(dir.join("00000000000000000000.timeindex"), times.encode()).unwrap();
    std::fs::write(
        dir.join("recovery-point.checkpoint"),
        encode_offset(Offset(4)),
    )
    .unwrap();
    std::fs::write(
        dir.join("high-watermark.checkpoint"),
        encode_offset(Offset(4)),
    )
    .unwrap();
    std::fs::write(
        dir.join("leader-epoch-checkpoint"),
        encode_epochs(&[(LeaderEpoch(3), Offset(0))]),
    )
    .unwrap();
    crate::storage::partition_metadata::write(&dir, "topic-id-1").unwrap();
    Fixture {
        _temp: temp,
        dir,
        positions,
        log_len: log.len() as u64,
    }
}

fn json(dir: &Path, records: bool) -> (Value, Summary) {
    let mut out = Vec::new();
    let summary = dump(dir, Options { records }, &mut Json::new(&mut out)).unwrap();
    let text = String::from_utf8(out).unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (value, summary)
}

fn text(dir: &Path, records: bool) -> String {
    let mut out = Vec::new();
    dump(dir, Options { records }, &mut Text::new(&mut out)).unwrap();
    String::from_utf8(out).unwrap()
}

fn patch(path: &Path, position: u64, edit: impl FnOnce(&mut Vec<u8>, usize)) {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes, position as usize);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_sound_directory_is_dumped_whole_and_consistent() {
    let fixture = fixture();
    let (dump, summary) = json(&fixture.dir, true);
    assert!(summary.consistent, "{:?}", summary.problems);
    assert_eq!(
        (dump["topic"].as_str(), dump["partition"].as_i64()),
        (Some("orders"), Some(0))
    );
    let segment = &dump["segments"][0];
    assert_eq!(segment["file"], LOG);
    assert_eq!(segment["size"], fixture.log_len);
    assert_eq!(segment["next_offset"], 4);
    let batches = segment["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0]["base_offset"], 0);
    assert_eq!(batches[0]["last_offset"], 1);
    assert_eq!(batches[0]["count"], 2);
    assert_eq!(batches[0]["crc_ok"], true);
    assert_eq!(batches[0]["partition_leader_epoch"], 3);
    assert_eq!(batches[0]["compression"], "none");
    assert_eq!(batches[0]["records"][0]["key"], "k0");
    assert_eq!(batches[0]["records"][1]["key"], Value::Null);
    assert_eq!(batches[0]["records"][1]["value"]["hex"], "ff00");
    assert_eq!(batches[1]["position"], fixture.positions[1]);
    assert_eq!(batches[1]["transactional"], true);
    assert_eq!(batches[1]["producer_id"], 7);
    assert_eq!(batches[1]["records"][0]["value"], Value::Null);
    assert_eq!(batches[2]["control"], true);
    assert_eq!(batches[2]["marker"]["type"], "COMMIT");
    assert_eq!(batches[2]["records"][0]["marker"]["coordinator_epoch"], 4);
    let indexes = segment["indexes"].as_array().unwrap();
    assert_eq!(indexes[0]["kind"], "offset");
    assert_eq!(indexes[0]["entries"][1]["position"], fixture.positions[1]);
    assert_eq!(indexes[1]["kind"], "time");
    assert!(indexes.iter().all(|i| i["decoder_error"].is_null()));
    let files: Vec<&str> = dump["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "high-watermark.checkpoint",
            "leader-epoch-checkpoint",
            "partition.metadata",
            "recovery-point.checkpoint"
        ]
    );
    assert_eq!(dump["checkpoints"][2]["content"]["topic_id"], "topic-id-1");
    assert_eq!(dump["summary"]["batches"], 3);
    assert_eq!(dump["summary"]["records"], 4);

    let text = text(&fixture.dir, true);
    assert!(
        text.contains("| offset=3 timestamp=1020 COMMIT coordinator_epoch=4"),
        "{text}"
    );
    assert!(
        text.contains(r#"| offset=0 timestamp=1000 key="k0" value="v0""#),
        "{text}"
    );
    assert!(
        text.ends_with("Summary: consistent: 1 segments, 3 batches, 4 records, offsets 0..4\n"),
        "{text}"
    );
}

#[test]
fn a_flipped_byte_is_a_crc_mismatch_and_the_walk_goes_on() {
    let fixture = fixture();
    let position = fixture.positions[1];
    patch(&fixture.dir.join(LOG), position + 63, |bytes, at| {
        bytes[at] ^= 0x01
    });
    let (dump, summary) = json(&fixture.dir, true);
    assert!(!summary.consistent);
    let first = &summary.problems[0];
    assert_eq!(first.kind, ProblemKind::CrcMismatch);
    assert_eq!((first.position, first.offset), (Some(position), Some(2)));
    assert_eq!(first.file, LOG);
    let batches = dump["segments"][0]["batches"].as_array().unwrap();
    assert_eq!(
        batches.len(),
        3,
        "the batch after the bad one is still shown"
    );
    assert_eq!(batches[1]["crc_ok"], false);
    assert!(batches[1].get("records").is_none());
    assert_eq!(batches[2]["crc_ok"], true);
    let text = text(&fixture.dir, false);
    assert!(
        text.contains(&format!(
            "CORRUPT {LOG} position {position} offset 2: crc_mismatch"
        )),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("Summary: CORRUPT: 1 problems"),
        "{text}"
    );
}

#[test]
fn a_torn_tail_bad_magic_and_bad_length_end_the_walk() {
    let fixture = fixture();
    let log = fixture.dir.join(LOG);
    patch(&log, fixture.log_len - 5, |bytes, at| bytes.truncate(at));
    let (_, summary) = json(&fixture.dir, false);
    let problem = &summary.problems[0];
    assert_eq!(problem.kind, ProblemKind::TornTail);
    assert_eq!(
        (problem.position, problem.offset),
        (Some(fixture.positions[2]), Some(3))
    );

    let fixture = self::fixture();
    let log = fixture.dir.join(LOG);
    patch(&log, fixture.positions[1] + 16, |bytes, at| bytes[at] = 9);
    let (dump, summary) = json(&fixture.dir, false);
    assert_eq!(summary.problems[0].kind, ProblemKind::BadMagic);
    assert_eq!(dump["segments"][0]["batches"].as_array().unwrap().len(), 1);
    assert_eq!(dump["segments"][0]["valid_bytes"], fixture.positions[1]);

    let fixture = self::fixture();
    let log = fixture.dir.join(LOG);
    patch(&log, fixture.positions[1] + 8, |bytes, at| {
        bytes[at..at + 4].copy_from_slice(&7i32.to_be_bytes())
    });
    let (_, summary) = json(&fixture.dir, false);
    assert_eq!(summary.problems[0].kind, ProblemKind::BadLength);

    let fixture = self::fixture();
    let log = fixture.dir.join(LOG);
    patch(&log, fixture.positions[1] + 8, |bytes, at| {
        bytes[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes())
    });
    let (_, summary) = json(&fixture.dir, false);
    assert_eq!(
        summary.problems[0].kind,
        ProblemKind::TornTail,
        "a huge length is not read"
    );
}

#[test]
fn zero_fill_is_not_data_but_bytes_after_it_are_reported() {
    let fixture = fixture();
    let log = fixture.dir.join(LOG);
    patch(&log, 0, |bytes, _| bytes.resize(bytes.len() + 200_000, 0));
    let (dump, summary) = json(&fixture.dir, false);
    assert!(summary.consistent, "{:?}", summary.problems);
    assert_eq!(dump["segments"][0]["zero_filled_bytes"], 200_000);
    patch(&log, fixture.log_len + 150_000, |bytes, at| bytes[at] = 1);
    let (_, summary) = json(&fixture.dir, false);
    assert_eq!(summary.problems[0].kind, ProblemKind::StrayBytes);
    assert_eq!(summary.problems[0].position, Some(fixture.log_len));
}

#[test]
fn index_entries_are_checked_against_the_log() {
    let fixture = fixture();
    let mut index = OffsetIndex::new(Offset(0));
    index.append(Offset(1), 0);
    index.append(Offset(2), fixture.positions[1] as u32 + 1);
    index.append(Offset(3), fixture.log_len as u32 + 10);
    std::fs::write(
        fixture.dir.join("00000000000000000000.index"),
        index.encode(),
    )
    .unwrap();
    let mut times = TimeIndex::new(Offset(0));
    times.maybe_append(TimestampMs(999), Offset(0));
    std::fs::write(
        fixture.dir.join("00000000000000000000.timeindex"),
        times.encode(),
    )
    .unwrap();
    std::fs::write(fixture.dir.join("00000000000000000000.txnindex"), [0u8; 5]).unwrap();
    let (dump, summary) = json(&fixture.dir, false);
    let details: Vec<&str> = summary.problems.iter().map(|p| p.detail.as_str()).collect();
    assert_eq!(summary.problems.len(), 4, "{details:?}");
    assert!(
        details[0].contains("is at no batch boundary"),
        "{details:?}"
    );
    assert!(
        details[1].contains("past the end of the segment"),
        "{details:?}"
    );
    assert!(details[2].contains("not the max timestamp"), "{details:?}");
    assert!(details[3].contains("torn"), "{details:?}");
    let indexes = &dump["segments"][0]["indexes"];
    assert_eq!(indexes[0]["entries"][0]["ok"], true);
    assert_eq!(indexes[0]["entries"][1]["ok"], false);
    assert!(
        indexes[0]["decoder_error"]
            .as_str()
            .unwrap()
            .contains("past the segment end")
    );
    assert!(
        indexes[2]["decoder_error"]
            .as_str()
            .unwrap()
            .contains("torn")
    );
}

#[test]
fn checkpoints_past_the_log_end_are_reported() {
    let fixture = fixture();
    std::fs::write(
        fixture.dir.join("recovery-point.checkpoint"),
        encode_offset(Offset(9)),
    )
    .unwrap();
    std::fs::write(fixture.dir.join("high-watermark.checkpoint"), b"0\nx\n").unwrap();
    std::fs::write(
        fixture.dir.join("00000000000000000000.swap"),
        b"0\nold 0\nnew 0\ntxnindex\n",
    )
    .unwrap();
    let (dump, summary) = json(&fixture.dir, false);
    let kinds: Vec<(&str, ProblemKind)> = summary
        .problems
        .iter()
        .map(|p| (p.file.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("high-watermark.checkpoint", ProblemKind::Checkpoint),
            ("recovery-point.checkpoint", ProblemKind::Checkpoint)
        ]
    );
    assert_eq!(dump["checkpoints"][0]["content"]["type"], "unreadable");
    assert!(
        dump["other_files"][0]["note"]
            .as_str()
            .unwrap()
            .contains("swap")
    );
}

#[test]
fn a_directory_that_is_no_partition_is_a_usage_error() {
    let temp = tempfile::tempdir().unwrap();
    let plain = temp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let mut out = Vec::new();
    let error = dump(&plain, Options::default(), &mut Text::new(&mut out)).unwrap_err();
    assert!(matches!(error, DumpError::NotAPartition(_)), "{error}");
    let error = dump(
        &temp.path().join("gone-0"),
        Options::default(),
        &mut Text::new(&mut out),
    )
    .unwrap_err();
    assert!(matches!(error, DumpError::Io { .. }), "{error}");
    assert!(out.is_empty());
}

#[test]
fn txn_index_entries_must_point_at_abort_markers() {
    let fixture = fixture();
    let abort = EndTxnMarker {
        kind: MarkerKind::Abort,
        coordinator_epoch: 4,
    }
    .build_batch(ProducerId(7), ProducerEpoch(1), TimestampMs(1_030));
    patch(&fixture.dir.join(LOG), 0, |bytes, _| {
        bytes.extend_from_slice(&at(abort, 4))
    });
    let entry = |producer: i64, first: i64, last: i64| crate::storage::txn_index::AbortedTxn {
        producer_id: ProducerId(producer),
        first_offset: Offset(first),
        last_offset: Offset(last),
        last_stable_offset: Offset(first),
    };
    let entries = [entry(7, 2, 4), entry(7, 2, 3), entry(8, 2, 4)];
    std::fs::write(
        fixture.dir.join("00000000000000000000.txnindex"),
        crate::storage::txn_index::encode_entries(&entries),
    )
    .unwrap();
    let (dump, summary) = json(&fixture.dir, false);
    assert_eq!(dump["segments"][0]["batches"][3]["marker"]["type"], "ABORT");
    let txn = &dump["segments"][0]["indexes"][2];
    assert_eq!(txn["kind"], "txn");
    let ok: Vec<bool> = txn["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(ok, [true, false, false]);
    let details: Vec<&str> = summary.problems.iter().map(|p| p.detail.as_str()).collect();
    assert!(details[0].contains("do not increase"), "{details:?}");
    assert!(
        details[1].contains("no abort marker of producer 8"),
        "{details:?}"
    );
}

#[test]
fn offsets_going_back_are_reported_and_the_walk_goes_on() {
    let fixture = fixture();
    let again = at(
        build_batch(&[NewRecord {
            key: None,
            value: Some(b"again"),
            timestamp_ms: 1_040,
        }]),
        1,
    );
    patch(&fixture.dir.join(LOG), 0, |bytes, _| {
        bytes.extend_from_slice(&again)
    });
    let (dump, summary) = json(&fixture.dir, false);
    let problem = &summary.problems[0];
    assert_eq!(problem.kind, ProblemKind::OffsetsBackwards);
    assert_eq!(
        (problem.position, problem.offset),
        (Some(fixture.log_len), Some(1))
    );
    assert!(
        problem.detail.contains("expected offsets from 4 on"),
        "{}",
        problem.detail
    );
    assert_eq!(dump["segments"][0]["batches"].as_array().unwrap().len(), 4);
}
