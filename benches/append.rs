//! Append throughput through a partition log with 16 KiB batches, for the fsync
//! and interval durability policies, from one appender and from 32 concurrent
//! appenders (which share writes and fdatasyncs through group commit).

use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use glommio::LocalExecutor;
use sluice::record::builder::build_filler_batch;
use sluice::storage::{AppendOptions, Durability, LogConfig, PartitionLog, background};
use sluice::types::{LeaderEpoch, TimestampMs};

const BATCH_BYTES: usize = 16 << 10;
const RECORDS_PER_BATCH: usize = 16;
const CONCURRENT_APPENDERS: u64 = 32;
const TIMESTAMP_MS: i64 = 1_700_000_000_000;

const OPTIONS: AppendOptions = AppendOptions {
    leader_epoch: LeaderEpoch(0),
    log_append_time: None,
};

fn policies() -> [(&'static str, Durability); 2] {
    [
        ("fsync", Durability::Fsync),
        (
            "interval_100ms_16MiB",
            Durability::Interval {
                interval: Duration::from_millis(100),
                bytes: 16 << 20,
            },
        ),
    ]
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        // Keep the disk use of long runs bounded; retention runs between samples.
        retention_ms: None,
        retention_bytes: Some(2 << 30),
        ..LogConfig::default()
    }
}

/// Appends `count` copies of `batch` one after the other.
async fn append_sequentially(log: &PartitionLog, batch: &mut [u8], count: u64) {
    for _ in 0..count {
        log.append(batch, OPTIONS).await.expect("append");
    }
}

/// Spreads `iters` appends over `CONCURRENT_APPENDERS` tasks and waits for all.
async fn append_concurrently(log: &Rc<PartitionLog>, template: &[u8], iters: u64) {
    let tasks: Vec<_> = (0..CONCURRENT_APPENDERS)
        .map(|task| {
            let share =
                iters / CONCURRENT_APPENDERS + u64::from(task < iters % CONCURRENT_APPENDERS);
            let log = Rc::clone(log);
            let mut batch = template.to_vec();
            glommio::spawn_local(async move {
                append_sequentially(&log, &mut batch, share).await;
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

fn append(c: &mut Criterion) {
    let ex: LocalExecutor = glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor starts");
    let template = build_filler_batch(BATCH_BYTES, RECORDS_PER_BATCH, TIMESTAMP_MS);

    let mut group = c.benchmark_group("append_16KiB");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));

    for (policy, durability) in policies() {
        for concurrent in [false, true] {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = ex.run(async {
                let (log, _) = PartitionLog::open(dir.path(), config(durability))
                    .await
                    .expect("log opens");
                let log = Rc::new(log);
                // The interval policy's periodic fdatasync, as a broker runs it.
                background::spawn(&log, None);
                log
            });
            let id = if concurrent {
                format!("{policy}/{CONCURRENT_APPENDERS}_appenders")
            } else {
                format!("{policy}/1_appender")
            };
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_custom(|iters| {
                    let elapsed = ex.run(async {
                        let start = Instant::now();
                        if concurrent {
                            append_concurrently(&log, &template, iters).await;
                        } else {
                            let mut batch = template.clone();
                            append_sequentially(&log, &mut batch, iters).await;
                        }
                        start.elapsed()
                    });
                    ex.run(log.apply_retention(TimestampMs(TIMESTAMP_MS)))
                        .expect("retention");
                    elapsed
                });
            });
            let stats = log.stats();
            eprintln!(
                "  {policy} concurrent={concurrent}: appends={} writes={} syncs={} ({:.1} appends/sync)",
                stats.appends,
                stats.writes,
                stats.syncs,
                stats.appends as f64 / stats.syncs.max(1) as f64
            );
            ex.run(log.close()).expect("log closes");
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
