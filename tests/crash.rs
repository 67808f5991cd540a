//! Crash test: a child process appends with the fsync policy and reports every
//! acknowledged batch; the test SIGKILLs it at random moments, many rounds, then
//! checks that every acknowledged batch survived byte for byte and that the log
//! ends at a batch boundary.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{batch, run};
use rand::Rng;
use sluice::record::{RecordBatchMut, validate_batch};
use sluice::storage::{AppendOptions, LogConfig, PartitionLog};
use sluice::types::{LeaderEpoch, Offset};

const CHILD_DIR_ENV: &str = "SLUICE_CRASH_CHILD_DIR";
const ROUNDS: u64 = 12;
const APPENDERS: u64 = 4;

fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 10,
        index_interval_bytes: 4096,
        zero_fill_step_bytes: 128 << 10,
        ..LogConfig::default()
    }
}

/// The batch a child appends for `tag`: sizes vary so batches straddle blocks.
fn batch_for(tag: u64) -> Vec<u8> {
    let count = 1 + (tag % 7) as usize;
    let value_len = 40 + ((tag * 37) % 3000) as usize;
    batch(tag, count, value_len, 1_700_000_000_000 + tag as i64)
}

fn epoch_of(tag: u64) -> LeaderEpoch {
    LeaderEpoch((tag >> 32) as i32)
}

/// Runs in the child process only: appends forever, printing `ACK tag base`.
#[test]
#[ignore = "run by crash_at_random_moments_never_loses_an_acknowledged_batch"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var("SLUICE_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    run(move || async move {
        let (log, _) = PartitionLog::open(Path::new(&dir), crash_config())
            .await
            .unwrap();
        let log = Rc::new(log);
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|appender| {
                let log = Rc::clone(&log);
                glommio::spawn_local(async move {
                    for counter in 0u64.. {
                        let tag = (round << 32) | (counter * APPENDERS + appender);
                        let bytes = batch_for(tag);
                        let options = AppendOptions {
                            leader_epoch: epoch_of(tag),
                            log_append_time: None,
                        };
                        let info = log.append(&bytes, options).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {tag} {}", info.base_offset.0).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
}

#[test]
fn crash_at_random_moments_never_loses_an_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<i64, u64> = BTreeMap::new();
    let mut rng = rand::rng();
    for round in 1..=ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env("SLUICE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut fields = line.split_whitespace();
                if fields.next() == Some("ACK") {
                    let tag: u64 = fields.next().unwrap().parse().unwrap();
                    let base: i64 = fields.next().unwrap().parse().unwrap();
                    acks.push((base, tag));
                }
            }
            acks
        });
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(rng.random_range(150..700)));
        child.kill().unwrap();
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        assert!(
            !acks.is_empty() || round > 1,
            "first round acknowledged nothing in {:?}",
            started.elapsed()
        );
        for (base, tag) in acks {
            assert!(
                acked.insert(base, tag).is_none(),
                "offset {base} acknowledged twice"
            );
        }
        verify(dir.path(), acked.clone());
    }
    assert!(
        acked.len() > 100,
        "too few acknowledged batches to mean anything: {}",
        acked.len()
    );
}

/// Opens the log (recovering it) and checks every acknowledged batch.
fn verify(dir: &Path, acked: BTreeMap<i64, u64>) {
    let dir = dir.to_path_buf();
    run(move || async move {
        let (log, report) = PartitionLog::open(&dir, crash_config()).await.unwrap();
        assert!(
            !report.events.iter().any(|e| matches!(
                e,
                sluice::storage::RecoveryEvent::EndsBeforeRecoveryPoint { .. }
            )),
            "recovery lost checkpointed data: {:?}",
            report.events
        );
        let mut next = Offset(0);
        let mut seen = 0;
        while next < log.high_watermark() {
            let outcome = log.read(next, 1 << 20, true).await.unwrap();
            let bytes = outcome.to_vec().await.unwrap();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let header = sluice::record::BatchHeader::parse(rest).expect("whole header");
                let len = header.total_len().unwrap();
                let stored = validate_batch(&rest[..len]).expect("every batch in the log is valid");
                let base = stored.header().base_offset();
                assert_eq!(base, next, "batches are contiguous");
                if let Some(&tag) = acked.get(&base.0) {
                    let mut expected = batch_for(tag);
                    RecordBatchMut::new_unchecked(&mut expected)
                        .assign_offset_and_epoch(base, epoch_of(tag));
                    assert_eq!(stored.bytes(), &expected[..], "batch at {base} differs");
                    seen += 1;
                }
                next = stored.header().next_offset();
                rest = &rest[len..];
            }
        }
        assert_eq!(
            next,
            log.log_end_offset(),
            "the log ends at a batch boundary"
        );
        assert_eq!(seen, acked.len(), "every acknowledged batch is present");
        log.close().await.unwrap();
    });
}
