//! Helpers for the storage engine's unit tests.

use std::future::Future;
use std::path::Path;

use glommio::io::{DmaFile, OpenOptions};

use zerocopy::FromBytes;

use crate::record::batch::{BatchHeader, compute_crc};
use crate::record::builder::{NewRecord, build_batch};
use crate::storage::config::LogConfig;
use crate::storage::log::{AppendOptions, PartitionLog};
use crate::types::LeaderEpoch;

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

/// A new, empty O_DIRECT file `f` in `dir`, readable and writable.
pub async fn new_file(dir: &Path) -> DmaFile {
    crate::storage::device::probe_io_poll(dir)
        .await
        .expect("device probed");
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .dma_open(dir.join("f"))
        .await
        .expect("file created")
}

pub const EPOCH0: AppendOptions = AppendOptions {
    leader_epoch: LeaderEpoch(0),
    log_append_time: None,
};

/// Small segments and indexes, so a few hundred batches roll several times.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 1024,
        zero_fill_step_bytes: 64 << 10,
        tail_cache_bytes: 16 << 10,
        ..LogConfig::default()
    }
}

pub async fn open_log(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).await.expect("log opens").0
}

/// A batch of `count` records of `value_len` bytes, timestamps from `timestamp_ms`
/// one millisecond apart.
pub fn batch(count: usize, value_len: usize, timestamp_ms: i64) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let records: Vec<NewRecord<'_>> = (0..count)
        .map(|n| NewRecord {
            key: Some(b"key"),
            value: Some(&value),
            timestamp_ms: timestamp_ms + n as i64,
        })
        .collect();
    build_batch(&records)
}

/// A batch of `count` records from producer 42 (epoch 0) with sequences from
/// `first_sequence`.
pub fn producer_batch(first_sequence: i32, count: usize) -> Vec<u8> {
    let mut bytes = batch(count, 20, 0);
    let (header, _) = BatchHeader::mut_from_prefix(&mut bytes).expect("a whole header");
    header.producer_id.set(42);
    header.producer_epoch.set(0);
    header.base_sequence.set(first_sequence);
    let crc = compute_crc(&bytes);
    let (header, _) = BatchHeader::mut_from_prefix(&mut bytes).expect("a whole header");
    header.crc.set(crc);
    bytes
}

/// A transactional batch of `count` records from `producer` (epoch 0) whose
/// sequences start at `first_sequence`.
pub fn txn_batch(producer: i64, first_sequence: i32, count: usize) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = (0..count)
        .map(|_| NewRecord {
            key: None,
            value: Some(b"txn"),
            timestamp_ms: 0,
        })
        .collect();
    crate::record::builder::build_batch_with(
        &records,
        crate::record::builder::BatchWriter {
            attributes: crate::record::attributes::Attributes(0).with_transactional(),
            producer_id: crate::types::ProducerId(producer),
            producer_epoch: crate::types::ProducerEpoch(0),
            base_sequence: first_sequence,
        },
    )
}

/// The `.log` files in `dir`, by name.
pub fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir readable")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            name.ends_with(".log").then_some(name)
        })
        .collect();
    names.sort();
    names
}

/// A batch of `count` records of `value_len` bytes with its offsets from `base`
/// (timestamps from `base` too), as the log would have stored it.
pub fn batch_at(base: i64, count: usize, value_len: usize) -> Vec<u8> {
    let mut bytes = batch(count, value_len, base);
    crate::record::batch::RecordBatchMut::new_unchecked(&mut bytes)
        .assign_offset_and_epoch(crate::types::Offset(base), LeaderEpoch(0));
    bytes
}
