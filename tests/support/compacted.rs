//! Reading whole partitions and looking at their files, for the log cleaner's
//! tests: what a consumer reading from the log start sees, and which segment and
//! cleaner files a partition directory holds.
//!
//! Include it after the broker harness and the clients:
//! `#[path = "support/broker.rs"] mod broker;`
//! `#[path = "support/kafka.rs"] mod kafka;`
//! `#[path = "support/compacted.rs"] mod compacted;`
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::broker::Broker;
use crate::kafka::{OP_TIMEOUT, TestContext, client_config};

/// One record as a consumer got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// A consumer that only reads what it is assigned (no group joined, no commits)
/// and reports reaching the high watermark.
fn reader(broker: &Broker) -> BaseConsumer<TestContext> {
    client_config(broker)
        .set("group.id", "sluice-test-compacted-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create consumer")
}

/// Every record of `topic`-`partition` from its log start offset up to its high
/// watermark, read by a fresh consumer, in the order it got them.
pub fn read_partition(broker: &Broker, topic: &str, partition: i32) -> Vec<Record> {
    let consumer = reader(broker);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("add partition");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut records = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition}: the end was not reached within {OP_TIMEOUT:?} ({} records read)",
            records.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => return records,
            Some(Err(error)) => panic!(
                "{topic}-{partition}: consumer error after {} records: {error}",
                records.len()
            ),
            Some(Ok(message)) => records.push(Record {
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
            }),
        }
    }
}

/// The log start offset and the high watermark of `topic`-`partition`.
pub fn watermarks(broker: &Broker, topic: &str, partition: i32) -> (i64, i64) {
    reader(broker)
        .fetch_watermarks(topic, partition, OP_TIMEOUT)
        .unwrap_or_else(|error| panic!("watermarks of {topic}-{partition}: {error}"))
}

/// `<data dir>/<topic>-<partition>`.
pub fn partition_dir(broker: &Broker, topic: &str, partition: i32) -> PathBuf {
    broker.data_dir().join(format!("{topic}-{partition}"))
}

/// The base offsets of the segments in `dir` (from their `.log` files), sorted.
pub fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = files(dir)
        .iter()
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            stem.parse()
                .unwrap_or_else(|_| panic!("segment file not named by its base offset: {path:?}"))
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Files of a cleaning in progress (`*.cleaned`, `*.swap`) in any partition
/// directory under the broker's data directory.
pub fn cleaner_leftovers(broker: &Broker) -> Vec<PathBuf> {
    files(&broker.data_dir())
        .into_iter()
        .filter(|path| path.is_dir())
        .flat_map(|dir| files(&dir))
        .filter(|path| {
            path.extension()
                .is_some_and(|e| e == "cleaned" || e == "swap")
        })
        .collect()
}

/// The entries of `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("read {dir:?}: {error}"))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    paths.sort();
    paths
}

/// Checks that offsets strictly increase, whatever cleaning removed.
pub fn assert_offsets_increase(what: &str, records: &[Record]) {
    for pair in records.windows(2) {
        assert!(
            pair[0].offset < pair[1].offset,
            "{what}: offset {} read after {}",
            pair[1].offset,
            pair[0].offset
        );
    }
}
