//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;

use sluice::record::batch::{Assigned, RecordBatchMut};
use sluice::record::builder::{NewRecord, build_batch};
use sluice::storage::{AppendOptions, LogConfig, PartitionLog, RecoveryReport};
use sluice::types::{LeaderEpoch, Offset};

/// Runs `make()` to completion on a fresh glommio executor.
pub fn run<F, Fut>(make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(make)
        .expect("executor starts")
        .join()
        .expect("executor finishes")
}

pub const EPOCH0: AppendOptions = AppendOptions {
    leader_epoch: LeaderEpoch(0),
    log_append_time: None,
};

/// `bytes` as the log stores them when appended at `base_offset` with `options`.
pub fn as_stored(mut bytes: Vec<u8>, base_offset: Offset, options: AppendOptions) -> Vec<u8> {
    RecordBatchMut::new_unchecked(&mut bytes).assign(&Assigned {
        base_offset,
        leader_epoch: options.leader_epoch,
        log_append_time: options.log_append_time,
    });
    bytes
}

/// A batch of `count` records tagged with `tag`, each with its own timestamp.
pub fn batch(tag: u64, count: usize, value_len: usize, timestamp_ms: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|n| {
            let mut value = format!("{tag}:{n}:").into_bytes();
            value.resize(value_len.max(value.len()), b'x');
            value
        })
        .collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(n, value)| NewRecord {
            key: Some(b"key"),
            value: Some(value),
            timestamp_ms: timestamp_ms + n as i64,
        })
        .collect();
    build_batch(&records)
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 1024,
        zero_fill_step_bytes: 64 << 10,
        tail_cache_bytes: 16 << 10,
        ..LogConfig::default()
    }
}

pub async fn open(dir: &Path, config: LogConfig) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(dir, config).await.expect("log opens")
}
