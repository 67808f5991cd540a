//! The partition log through its public API: appends, reads, rolls, indexes,
//! timestamps, retention, DeleteRecords, durability policies and reopening.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{EPOCH0, as_stored, batch, open, run, small_config};
use sluice::record::BatchHeader;
use sluice::storage::{AppendOptions, Durability, LogConfig, LogError, PartitionLog};
use sluice::types::{LeaderEpoch, Offset, TimestampMs};
use zerocopy::FromBytes;

/// Appends `count` batches of 5 records; returns the bytes as stored.
async fn fill(log: &PartitionLog, count: u64, value_len: usize, first_ts: i64) -> Vec<Vec<u8>> {
    let mut stored = Vec::new();
    for n in 0..count {
        let bytes = batch(n, 5, value_len, first_ts + n as i64 * 10);
        let info = log.append(&bytes, EPOCH0).await.unwrap();
        assert_eq!(info.last_offset.0 - info.base_offset.0, 4);
        stored.push(as_stored(bytes, info.base_offset, EPOCH0));
    }
    stored
}

async fn read_all(log: &PartitionLog, from: Offset) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = from;
    for _ in 0..100_000 {
        let outcome = log.read(next, 1 << 20, true).await.unwrap();
        if outcome.bytes == 0 {
            break;
        }
        out.extend(outcome.to_vec().await.unwrap());
        next = outcome.next_offset;
    }
    out
}

#[test]
fn appends_assign_offsets_and_read_back_byte_identical() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, report) = open(dir.path(), small_config()).await;
        assert!(report.events.is_empty());
        let stored = fill(&log, 40, 100, 1_000).await;
        assert_eq!(log.log_end_offset(), Offset(200));
        assert_eq!(log.high_watermark(), Offset(200));
        for (n, bytes) in stored.iter().enumerate() {
            let header = BatchHeader::parse(bytes).unwrap();
            assert_eq!(header.base_offset(), Offset(n as i64 * 5));
            assert_eq!(header.leader_epoch(), LeaderEpoch(0));
        }
        assert_eq!(read_all(&log, Offset(0)).await, stored.concat());
        log.close().await.unwrap();
    });
}

#[test]
fn a_read_returns_the_whole_batch_holding_the_offset_from_any_index_entry() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 60, 200, 0).await;
        for offset in 0..300 {
            let outcome = log.read(Offset(offset), 1, true).await.unwrap();
            let bytes = outcome.to_vec().await.unwrap();
            let expected = &stored[offset as usize / 5];
            assert_eq!(&bytes, expected, "offset {offset}");
            assert_eq!(outcome.next_offset, Offset((offset / 5 + 1) * 5));
        }
        log.close().await.unwrap();
    });
}

#[test]
fn reads_honour_max_bytes_and_min_one_batch() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 10, 100, 0).await;
        let one = stored[0].len() as u64;
        let outcome = log.read(Offset(0), one * 3 + 10, false).await.unwrap();
        assert_eq!(outcome.bytes, one * 3);
        assert_eq!(outcome.next_offset, Offset(15));
        let none = log.read(Offset(0), one - 1, false).await.unwrap();
        assert_eq!(none.bytes, 0);
        let forced = log.read(Offset(0), 1, true).await.unwrap();
        assert_eq!(forced.bytes, one);
        let at_end = log.read(Offset(50), 1 << 20, true).await.unwrap();
        assert_eq!((at_end.bytes, at_end.next_offset), (0, Offset(50)));
        match log.read(Offset(51), 1 << 20, true).await {
            Err(LogError::OffsetOutOfRange { log_end, .. }) => assert_eq!(log_end, Offset(50)),
            other => panic!("expected out of range, got {other:?}"),
        }
        log.close().await.unwrap();
    });
}

#[test]
fn segments_roll_on_size_and_reads_cross_them() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 200, 300, 0).await;
        let bases = log.segment_bases();
        assert!(bases.len() >= 4, "expected several segments, got {bases:?}");
        assert_eq!(read_all(&log, Offset(0)).await, stored.concat());
        log.close().await.unwrap();
        for base in &bases {
            let name = format!("{:020}.log", base.0);
            let len = std::fs::metadata(dir.path().join(&name)).unwrap().len();
            assert!(len <= 64 << 10, "{name} exceeds segment.bytes");
            assert!(dir.path().join(format!("{:020}.index", base.0)).exists());
            assert!(
                dir.path()
                    .join(format!("{:020}.timeindex", base.0))
                    .exists()
            );
        }
    });
}

#[test]
fn segments_roll_on_age() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: Duration::from_millis(50),
            ..small_config()
        };
        let (log, _) = open(dir.path(), config).await;
        fill(&log, 2, 10, 0).await;
        assert_eq!(log.segment_count(), 1);
        glommio::timer::sleep(Duration::from_millis(60)).await;
        fill(&log, 1, 10, 0).await;
        assert_eq!(log.segment_bases(), vec![Offset(0), Offset(10)]);
        log.close().await.unwrap();
    });
}

#[test]
fn timestamp_lookup_finds_the_first_record_at_or_after() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        // Batch n holds records with timestamps 10_000 + 10n .. + 4, offsets 5n .. 5n+4.
        fill(&log, 300, 200, 10_000).await;
        assert!(log.segment_count() > 2);
        for (target, expected) in [
            (0, 0),
            (10_000, 0),
            (10_003, 3),
            (10_005, 5),
            (10_010, 5),
            (12_000, 1000),
            (12_991, 1496),
        ] {
            let found = log.offset_for_timestamp(TimestampMs(target)).await.unwrap();
            assert_eq!(
                found.map(|(o, _)| o),
                Some(Offset(expected)),
                "target {target}"
            );
        }
        let found = log.offset_for_timestamp(TimestampMs(12_003)).await.unwrap();
        assert_eq!(found, Some((Offset(1003), TimestampMs(12_003))));
        assert_eq!(
            log.offset_for_timestamp(TimestampMs(99_999)).await.unwrap(),
            None
        );
        assert_eq!(
            log.max_timestamp(),
            Some((TimestampMs(12_994), Offset(1495)))
        );
        log.close().await.unwrap();
    });
}

#[test]
fn log_append_time_is_stamped_on_the_batch() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let bytes = batch(0, 3, 10, 5);
        let options = AppendOptions {
            leader_epoch: LeaderEpoch(2),
            log_append_time: Some(TimestampMs(77_000)),
        };
        log.append(&bytes, options).await.unwrap();
        let read = log
            .read(Offset(0), 1 << 20, true)
            .await
            .unwrap()
            .to_vec()
            .await
            .unwrap();
        let batch = sluice::record::validate_batch(&read).unwrap();
        assert_eq!(batch.header().max_timestamp(), TimestampMs(77_000));
        assert_eq!(batch.header().leader_epoch(), LeaderEpoch(2));
        let found = log.offset_for_timestamp(TimestampMs(76_000)).await.unwrap();
        assert_eq!(found, Some((Offset(0), TimestampMs(77_000))));
        log.close().await.unwrap();
    });
}

#[test]
fn retention_by_size_and_time_deletes_whole_old_segments() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: Some(200 << 10),
            retention_ms: None,
            ..small_config()
        };
        let (log, _) = open(dir.path(), config).await;
        fill(&log, 400, 300, 1_000).await;
        let before = log.segment_count();
        let deleted = log.apply_retention(TimestampMs::now()).await.unwrap();
        assert!(deleted > 0 && log.segment_count() == before - deleted);
        assert!(log.size_bytes() >= 200 << 10);
        assert!(log.size_bytes() - (64 << 10) < 200 << 10);
        let start = log.log_start_offset();
        assert_eq!(start, log.segment_bases()[0]);
        assert!(!dir.path().join("00000000000000000000.log").exists());
        assert!(matches!(
            log.read(Offset(0), 100, true).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(log.read(start, 100, true).await.unwrap().bytes > 0);
        log.close().await.unwrap();

        let by_time = LogConfig {
            retention_ms: Some(Duration::from_millis(1_000)),
            ..small_config()
        };
        let (log, _) = open(dir.path(), by_time).await;
        assert_eq!(
            log.log_start_offset(),
            start,
            "log start survives a restart"
        );
        let deleted = log.apply_retention(TimestampMs(1_000_000)).await.unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), 1, "only the active segment is kept");
        log.close().await.unwrap();
    });
}

#[test]
fn delete_records_moves_the_log_start_and_drops_segments_below_it() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        fill(&log, 200, 300, 0).await;
        let segments = log.segment_bases();
        assert_eq!(log.delete_records(Offset(7)).await.unwrap(), Offset(7));
        let outcome = log.read(Offset(7), 1, true).await.unwrap();
        assert_eq!(outcome.log_start_offset, Offset(7));
        assert!(outcome.bytes > 0);
        let cut = segments[3];
        log.delete_records(cut.plus(2)).await.unwrap();
        assert_eq!(log.segment_bases()[0], cut);
        assert!(matches!(
            log.delete_records(Offset(1_000_000)).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records(Offset(3)).await.unwrap(), cut.plus(2));
        log.close().await.unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        assert_eq!(log.log_start_offset(), cut.plus(2));
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_appends_share_writes_and_syncs() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 16 << 20,
            ..small_config()
        };
        let (log, _) = open(dir.path(), config).await;
        let log = Rc::new(log);
        let tasks: Vec<_> = (0..200u64)
            .map(|n| {
                let log = Rc::clone(&log);
                glommio::spawn_local(async move {
                    let bytes = batch(n, 2, 500, 0);
                    log.append(&bytes, EPOCH0).await.unwrap()
                })
            })
            .collect();
        let mut bases = Vec::new();
        for task in tasks {
            bases.push(task.await.base_offset.0);
        }
        bases.sort();
        assert_eq!(bases, (0..200).map(|n| n * 2).collect::<Vec<_>>());
        let stats = log.stats();
        assert_eq!(stats.appends, 200);
        assert!(
            stats.syncs < 50,
            "group commit should share syncs: {stats:?}"
        );
        assert_eq!(log.high_watermark(), Offset(400));
        log.close().await.unwrap();
    });
}

#[test]
fn interval_durability_acknowledges_after_the_write() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Interval {
                interval: Duration::from_secs(3600),
                bytes: u64::MAX,
            },
            ..small_config()
        };
        let (log, _) = open(dir.path(), config).await;
        let stored = fill(&log, 10, 100, 0).await;
        let stats = log.stats();
        assert_eq!(stats.writes, 10);
        assert_eq!(stats.syncs, 0, "interval policy acks without fdatasync");
        assert_eq!(log.high_watermark(), Offset(50));
        assert_eq!(read_all(&log, Offset(0)).await, stored.concat());
        log.flush(true).await.unwrap();
        assert_eq!(log.stats().syncs, 1);
        log.close().await.unwrap();
    });
}

#[test]
fn close_and_reopen_finds_everything_without_recovery_work() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 150, 300, 0).await;
        let epochs = [(LeaderEpoch(0), Offset(0)), (LeaderEpoch(4), Offset(750))];
        let extra = batch(999, 5, 10, 0);
        let four = AppendOptions {
            leader_epoch: LeaderEpoch(4),
            log_append_time: None,
        };
        log.append(&extra, four).await.unwrap();
        let segments = log.segment_bases();
        log.close().await.unwrap();
        assert!(log.append(&batch(0, 1, 1, 0), EPOCH0).await.is_err());

        let (log, report) = open(dir.path(), small_config()).await;
        assert!(
            report.events.is_empty(),
            "clean reopen: {:?}",
            report.events
        );
        assert!(
            report.bytes_validated < 16 << 10,
            "only the tail is rescanned: {report:?}"
        );
        assert_eq!(log.segment_bases(), segments);
        assert_eq!(log.log_end_offset(), Offset(755));
        assert_eq!(log.leader_epochs(), epochs.to_vec());
        let mut all = stored.concat();
        all.extend_from_slice(&as_stored(extra, Offset(750), four));
        assert_eq!(read_all(&log, Offset(0)).await, all);
        fill(&log, 3, 10, 0).await;
        assert_eq!(log.log_end_offset(), Offset(770));
        log.close().await.unwrap();
    });
}

#[test]
fn reopening_without_close_rebuilds_the_active_index_and_keeps_acknowledged_data() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let stored = {
            let (log, _) = open(dir.path(), small_config()).await;
            let stored = fill(&log, 100, 300, 0).await;
            drop(log);
            stored
        };
        let (log, report) = open(dir.path(), small_config()).await;
        assert_eq!(report.truncations(), 0, "{:?}", report.events);
        assert!(report.index_rebuilds() >= 1, "{:?}", report.events);
        assert_eq!(read_all(&log, Offset(0)).await, stored.concat());
        for offset in [0, 123, 499] {
            let bytes = log
                .read(Offset(offset), 1, true)
                .await
                .unwrap()
                .to_vec()
                .await
                .unwrap();
            assert_eq!(bytes, stored[offset as usize / 5]);
        }
        log.close().await.unwrap();
    });
}

#[test]
fn background_tasks_sync_on_the_interval_and_apply_retention() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Interval {
                interval: Duration::from_millis(20),
                bytes: u64::MAX,
            },
            retention_bytes: Some(100 << 10),
            retention_ms: None,
            retention_check_interval: Duration::from_millis(20),
            ..small_config()
        };
        let (log, _) = open(dir.path(), config).await;
        let log = Rc::new(log);
        sluice::storage::background::spawn(&log, None);
        fill(&log, 300, 300, 0).await;
        let synced = log.stats().syncs;
        log.append(&batch(1, 1, 10, 0), EPOCH0).await.unwrap();
        glommio::timer::sleep(Duration::from_millis(150)).await;
        assert!(log.stats().syncs > synced, "{:?}", log.stats());
        assert!(
            log.log_start_offset() > Offset(0),
            "retention ran in the background"
        );
        assert!(log.size_bytes() < (100 << 10) + (64 << 10));
        assert!(dir.path().join("high-watermark.checkpoint").exists());
        log.close().await.unwrap();
    });
}

/// A batch from producer 42 (epoch 0) with sequences `first..first+count`.
fn producer_batch(first_sequence: i32, count: usize) -> Vec<u8> {
    let mut bytes = batch(first_sequence as u64, count, 20, 0);
    {
        let header = sluice::record::BatchHeader::mut_from_prefix(&mut bytes)
            .unwrap()
            .0;
        header.producer_id.set(42);
        header.producer_epoch.set(0);
        header.base_sequence.set(first_sequence);
    }
    let crc = sluice::record::batch::compute_crc(&bytes);
    sluice::record::BatchHeader::mut_from_prefix(&mut bytes)
        .unwrap()
        .0
        .crc
        .set(crc);
    bytes
}

#[test]
fn idempotent_retries_get_their_original_offsets_and_survive_restarts() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let first = log.append(&producer_batch(0, 3), EPOCH0).await.unwrap();
        let second = log.append(&producer_batch(3, 2), EPOCH0).await.unwrap();
        assert_eq!(
            (second.base_offset, second.last_offset),
            (Offset(3), Offset(4))
        );
        let retry = log.append(&producer_batch(0, 3), EPOCH0).await.unwrap();
        assert_eq!(retry, first);
        assert_eq!(
            log.log_end_offset(),
            Offset(5),
            "a retry is not written twice"
        );
        let gap = log.append(&producer_batch(9, 1), EPOCH0).await.unwrap_err();
        assert_eq!(
            gap.error_code(),
            sluice::protocol::error_code::ErrorCode::OutOfOrderSequenceNumber
        );
        log.close().await.unwrap();

        // Clean restart: from the snapshot.
        let (log, _) = open(dir.path(), small_config()).await;
        assert_eq!(
            log.append(&producer_batch(3, 2), EPOCH0).await.unwrap(),
            second
        );
        log.append(&producer_batch(5, 1), EPOCH0).await.unwrap();
        drop(log);

        // Crash: the snapshot is stale, the batch after it is replayed from the log.
        let (log, _) = open(dir.path(), small_config()).await;
        let replayed = log.append(&producer_batch(5, 1), EPOCH0).await.unwrap();
        assert_eq!(replayed.base_offset, Offset(5));
        std::fs::remove_file(dir.path().join("producer-state.snapshot")).unwrap();
        log.close().await.unwrap();
        std::fs::remove_file(dir.path().join("producer-state.snapshot")).unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        assert_eq!(
            log.append(&producer_batch(0, 3), EPOCH0).await.unwrap(),
            first
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_thousand_idle_partitions_keep_one_small_step_ahead_of_their_data() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let params = sluice::bench::log::IdleParams {
            dir: dir.path().to_path_buf(),
            partitions: 1_000,
            batch_bytes: 1024,
            config: LogConfig::default(),
        };
        let report = sluice::bench::log::idle_partitions(&params).await.unwrap();
        println!("{}", report.render());
        // One data block and at most one minimum zero-fill step ahead of it.
        let step = sluice::storage::zero_fill::MIN_STEP;
        assert!(
            report.allocated_ahead_per_partition() <= step + 4096,
            "{}",
            report.render()
        );
        assert!(report.apparent_bytes <= 1_000 * (step + 4096));
        assert_eq!(
            sluice::storage::zero_fill::FillBudget::shard().in_flight(),
            0,
            "every fill synced and gave its budget back"
        );
    });
}

#[test]
fn truncate_to_drops_the_tail_across_segments_and_appends_go_on_after_a_reopen() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_config()).await;
        let stored = fill(&log, 200, 300, 0).await;
        let bases = log.segment_bases();
        assert!(bases.len() >= 4, "{bases:?}");
        // Inside a batch of the second segment: the whole batch goes.
        let target = bases[1].plus(7);
        let end = log.truncate_to(target).await.unwrap();
        assert_eq!(end, bases[1].plus(5));
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.high_watermark(), end);
        assert_eq!(log.segment_bases(), bases[..2]);
        let kept = stored[..end.0 as usize / 5].concat();
        assert_eq!(read_all(&log, Offset(0)).await, kept);
        // Few enough not to roll: a seal would still run in the background when
        // the log is reopened below, on the same executor.
        let more = fill(&log, 5, 300, 0).await;
        assert_eq!(log.segment_bases(), bases[..2]);
        assert_eq!(log.log_end_offset(), end.plus(25));
        drop(log);

        let (log, report) = open(dir.path(), small_config()).await;
        assert_eq!(report.truncations(), 0, "{:?}", report.events);
        let all = [kept, more.concat()].concat();
        assert_eq!(read_all(&log, Offset(0)).await, all);
        log.close().await.unwrap();
        let (log, report) = open(dir.path(), small_config()).await;
        assert!(report.events.is_empty(), "{:?}", report.events);
        assert_eq!(log.log_end_offset(), end.plus(25));
        log.close().await.unwrap();
    });
}
