//! The workload: what a run does (topics, clients, records, rate, timing and
//! producer settings), its defaults, its TOML form, the command-line overrides
//! laid over it, and the limits a workload must respect.
//!
//! The fields follow OpenMessaging Benchmark's workload files, in snake_case.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::payload::HEADER_LEN;

/// Producer and consumer threads per run, all topics together: each is an OS
/// thread with its own librdkafka client, and a 2-core machine drowns long
/// before this.
pub const MAX_CLIENTS: u32 = 256;
/// Largest record the tool builds (librdkafka's own `message.max.bytes` default
/// is 1 MB; raising it is the user's business through `-X`).
pub const MAX_MESSAGE_SIZE: u32 = 64 << 20;
/// Records per transaction at most: librdkafka keeps a transaction's records
/// queued until they are acknowledged, and a commit waits for all of them.
pub const MAX_TRANSACTION_RECORDS: u32 = 1_000_000;

/// How consumers get their partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerMode {
    /// Each consumer assigns itself a share of the partitions (no group
    /// coordinator involved).
    Assign,
    /// All consumers of a topic subscribe in one consumer group.
    Group,
}

/// Which key each record carries. The key decides the partition through
/// librdkafka's partitioner (by default `consistent_random`: a CRC32 hash of
/// the key); records without a key go to a sticky partition that changes every
/// `sticky.partitioning.linger.ms` (10 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    /// No key.
    None,
    /// Keys `0, 1, .., partitions - 1, 0, ..` in turn, 8 bytes each.
    RoundRobin,
    /// A random 8-byte key per record.
    Random,
}

/// The producer's `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Acks {
    #[serde(rename = "0")]
    #[value(name = "0")]
    None,
    #[serde(rename = "1")]
    #[value(name = "1")]
    Leader,
    #[serde(rename = "all")]
    #[value(name = "all")]
    All,
}

impl Acks {
    /// The value librdkafka's `acks` property takes.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// The producer's `compression.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The value librdkafka's `compression.type` property takes.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// One benchmark workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    pub topics: u32,
    pub partitions_per_topic: u32,
    /// Replicas of each partition of the run's topics.
    pub replication_factor: u16,
    pub producers_per_topic: u32,
    pub consumers_per_topic: u32,
    pub consumer_mode: ConsumerMode,
    /// Bytes per record value (the key is extra).
    pub message_size: u32,
    pub key_distribution: KeyDistribution,
    /// With random keys: how many distinct keys (0: any 8-byte key), so a
    /// compacted topic has updates to clean.
    pub key_space: u64,
    /// Topic configs the run's topics are created with (e.g. cleanup.policy).
    pub topic_configs: std::collections::BTreeMap<String, String>,
    /// Records per second, all producers together; 0 sends as fast as possible.
    pub producer_rate: u64,
    /// Seconds at the start whose records are verified but not measured.
    pub warmup_secs: u64,
    /// Measured seconds after the warm-up.
    pub duration_secs: u64,
    pub acks: Acks,
    pub compression: Compression,
    pub linger_ms: u32,
    /// librdkafka's `batch.size` in bytes.
    pub batch_size: u32,
    /// Records per transaction: each producer commits a transaction every this
    /// many records and consumers read committed; 0 produces without
    /// transactions.
    pub transaction_records: u32,
}

impl Default for Workload {
    /// One topic of 8 partitions, one producer and one consumer, 1 KiB records
    /// without keys at maximum rate, acks=all, no compression, librdkafka's
    /// default batching (linger.ms 5, batch.size 1,000,000), 5 s warm-up and a
    /// 60 s measurement.
    fn default() -> Workload {
        Workload {
            topics: 1,
            partitions_per_topic: 8,
            replication_factor: 1,
            producers_per_topic: 1,
            consumers_per_topic: 1,
            consumer_mode: ConsumerMode::Group,
            message_size: 1024,
            key_distribution: KeyDistribution::None,
            key_space: 0,
            topic_configs: std::collections::BTreeMap::new(),
            producer_rate: 0,
            warmup_secs: 5,
            duration_secs: 60,
            acks: Acks::All,
            compression: Compression::None,
            linger_ms: 5,
            batch_size: 1_000_000,
            transaction_records: 0,
        }
    }
}

/// Command-line values that replace the workload file's (or the default's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub topics: Option<u32>,
    pub partitions_per_topic: Option<u32>,
    pub replication_factor: Option<u16>,
    pub producers_per_topic: Option<u32>,
    pub consumers_per_topic: Option<u32>,
    pub consumer_mode: Option<ConsumerMode>,
    pub message_size: Option<u32>,
    pub key_distribution: Option<KeyDistribution>,
    pub key_space: Option<u64>,
    pub topic_configs: Vec<(String, String)>,
    pub producer_rate: Option<u64>,
    pub warmup_secs: Option<u64>,
    pub duration_secs: Option<u64>,
    pub acks: Option<Acks>,
    pub compression: Option<Compression>,
    pub linger_ms: Option<u32>,
    pub batch_size: Option<u32>,
    pub transaction_records: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("read the workload file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parse the workload file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid workload: {0}")]
    Invalid(String),
}

impl Workload {
    /// The workload from `file` (or the defaults), with `overrides` on top,
    /// checked against the limits.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Workload, WorkloadError> {
        let mut workload = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Workload::from_toml(&text).map_err(|source| WorkloadError::Parse {
                    path: path.display().to_string(),
                    source: Box::new(source),
                })?
            }
            None => Workload::default(),
        };
        workload.apply(overrides);
        workload.validate()?;
        Ok(workload)
    }

    /// Parses a workload file; missing fields take their default.
    pub fn from_toml(text: &str) -> Result<Workload, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn apply(&mut self, o: &Overrides) {
        fn set<T: Copy>(field: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *field = value;
            }
        }
        set(&mut self.topics, o.topics);
        set(&mut self.partitions_per_topic, o.partitions_per_topic);
        set(&mut self.replication_factor, o.replication_factor);
        set(&mut self.producers_per_topic, o.producers_per_topic);
        set(&mut self.consumers_per_topic, o.consumers_per_topic);
        set(&mut self.consumer_mode, o.consumer_mode);
        set(&mut self.message_size, o.message_size);
        set(&mut self.key_distribution, o.key_distribution);
        set(&mut self.key_space, o.key_space);
        self.topic_configs.extend(o.topic_configs.iter().cloned());
        set(&mut self.producer_rate, o.producer_rate);
        set(&mut self.warmup_secs, o.warmup_secs);
        set(&mut self.duration_secs, o.duration_secs);
        set(&mut self.acks, o.acks);
        set(&mut self.compression, o.compression);
        set(&mut self.linger_ms, o.linger_ms);
        set(&mut self.batch_size, o.batch_size);
        set(&mut self.transaction_records, o.transaction_records);
    }

    pub fn validate(&self) -> Result<(), WorkloadError> {
        let invalid = |why: String| Err(WorkloadError::Invalid(why));
        if self.topics == 0 || self.partitions_per_topic == 0 || self.producers_per_topic == 0 {
            return invalid("topics, partitions and producers must be at least 1".into());
        }
        let clients =
            u64::from(self.topics) * u64::from(self.producers_per_topic + self.consumers_per_topic);
        if clients > u64::from(MAX_CLIENTS) {
            return invalid(format!(
                "{clients} producers and consumers in all; at most {MAX_CLIENTS}"
            ));
        }
        if self.key_space > 0 && self.key_distribution != KeyDistribution::Random {
            return invalid("a key space needs random keys (--keys random)".into());
        }
        if self.consumers_per_topic > self.partitions_per_topic {
            return invalid(format!(
                "{} consumers per topic for {} partitions would leave consumers idle",
                self.consumers_per_topic, self.partitions_per_topic
            ));
        }
        let size = self.message_size as usize;
        if size < HEADER_LEN || self.message_size > MAX_MESSAGE_SIZE {
            return invalid(format!(
                "message_size {size}: records carry a {HEADER_LEN}-byte header, at most {MAX_MESSAGE_SIZE} bytes"
            ));
        }
        if self.duration_secs == 0 {
            return invalid("duration must be at least 1 s".into());
        }
        if self.transactional() && self.acks != Acks::All {
            return invalid("transactions need acks=all (an idempotent producer)".into());
        }
        if self.transaction_records > MAX_TRANSACTION_RECORDS {
            return invalid(format!(
                "{} records per transaction; at most {MAX_TRANSACTION_RECORDS}",
                self.transaction_records
            ));
        }
        if self.producer_rate != 0 && self.producer_rate < self.total_producers() {
            return invalid(format!(
                "rate {} msg/s is less than one message per second per producer ({} producers)",
                self.producer_rate,
                self.total_producers()
            ));
        }
        Ok(())
    }

    /// Producers commit transactions and consumers read committed.
    pub fn transactional(&self) -> bool {
        self.transaction_records > 0
    }

    pub fn total_producers(&self) -> u64 {
        u64::from(self.topics) * u64::from(self.producers_per_topic)
    }

    /// The rate of producer `index` (of `total_producers`): the total split
    /// evenly, the remainder going to the first producers. 0 = maximum rate.
    pub fn rate_of_producer(&self, index: u64) -> u64 {
        let n = self.total_producers();
        self.producer_rate / n + u64::from(index < self.producer_rate % n)
    }

    /// Partitions consumer `index` (of a topic's consumers) reads in assign
    /// mode: every `consumers_per_topic`-th partition, starting at `index`.
    pub fn partitions_of_consumer(&self, index: u32) -> Vec<i32> {
        (index..self.partitions_per_topic)
            .step_by(self.consumers_per_topic as usize)
            .map(|p| p as i32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default_workload() {
        let workload = Workload::from_toml("").unwrap();
        assert_eq!(workload, Workload::default());
        assert_eq!(workload.partitions_per_topic, 8);
        assert_eq!(workload.message_size, 1024);
        assert_eq!(workload.producer_rate, 0);
        assert_eq!(workload.acks, Acks::All);
        assert_eq!(workload.consumer_mode, ConsumerMode::Group);
        workload.validate().unwrap();
    }

    #[test]
    fn a_file_sets_fields_and_leaves_the_rest_at_their_defaults() {
        let workload = Workload::from_toml(
            r#"
            topics = 2
            partitions_per_topic = 16
            consumer_mode = "assign"
            key_distribution = "round-robin"
            producer_rate = 50000
            acks = "1"
            compression = "zstd"
            "#,
        )
        .unwrap();
        assert_eq!(workload.topics, 2);
        assert_eq!(workload.partitions_per_topic, 16);
        assert_eq!(workload.consumer_mode, ConsumerMode::Assign);
        assert_eq!(workload.key_distribution, KeyDistribution::RoundRobin);
        assert_eq!(workload.producer_rate, 50_000);
        assert_eq!(workload.acks, Acks::Leader);
        assert_eq!(workload.compression, Compression::Zstd);
        assert_eq!(workload.message_size, 1024);
        assert_eq!(workload.linger_ms, 5);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(Workload::from_toml("partitions = 3").is_err());
        assert!(Workload::from_toml("acks = \"2\"").is_err());
        assert!(Workload::from_toml("compression = \"brotli\"").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(
            &path,
            "partitions_per_topic = 4\nmessage_size = 100\nlinger_ms = 1\n",
        )
        .unwrap();
        let overrides = Overrides {
            message_size: Some(512),
            duration_secs: Some(3),
            acks: Some(Acks::None),
            ..Overrides::default()
        };
        let workload = Workload::load(Some(&path), &overrides).unwrap();
        assert_eq!(workload.partitions_per_topic, 4, "from the file");
        assert_eq!(workload.linger_ms, 1, "from the file");
        assert_eq!(workload.message_size, 512, "the flag wins");
        assert_eq!(workload.duration_secs, 3, "flag only");
        assert_eq!(workload.acks, Acks::None, "flag only");
        assert_eq!(workload.batch_size, 1_000_000, "default");
    }

    #[test]
    fn limits_are_checked_after_the_overrides() {
        let load = |o: Overrides| Workload::load(None, &o);
        assert!(
            load(Overrides {
                message_size: Some(HEADER_LEN as u32 - 1),
                ..Overrides::default()
            })
            .is_err()
        );
        assert!(
            load(Overrides {
                consumers_per_topic: Some(9),
                ..Overrides::default()
            })
            .is_err()
        );
        assert!(
            load(Overrides {
                duration_secs: Some(0),
                ..Overrides::default()
            })
            .is_err()
        );
        assert!(
            load(Overrides {
                producers_per_topic: Some(2),
                producer_rate: Some(1),
                ..Overrides::default()
            })
            .is_err()
        );
        assert!(
            load(Overrides {
                transaction_records: Some(10),
                acks: Some(Acks::Leader),
                ..Overrides::default()
            })
            .is_err(),
            "transactions need acks=all"
        );
        assert!(
            load(Overrides {
                transaction_records: Some(MAX_TRANSACTION_RECORDS + 1),
                ..Overrides::default()
            })
            .is_err()
        );
        let transactional = load(Overrides {
            transaction_records: Some(100),
            ..Overrides::default()
        })
        .unwrap();
        assert!(transactional.transactional());
        assert!(
            crate::report::describe(&transactional)
                .ends_with("transactions of 100 records per producer, read_committed")
        );
        let missing = Workload::load(
            Some(Path::new("/nonexistent/w.toml")),
            &Overrides::default(),
        );
        assert!(matches!(missing, Err(WorkloadError::Read { .. })));
    }

    #[test]
    fn the_rate_is_split_among_producers() {
        let workload = Workload {
            topics: 2,
            producers_per_topic: 2,
            producer_rate: 10,
            ..Workload::default()
        };
        let rates: Vec<u64> = (0..4).map(|i| workload.rate_of_producer(i)).collect();
        assert_eq!(rates, [3, 3, 2, 2]);
        assert_eq!(
            Workload::default().rate_of_producer(0),
            0,
            "max rate stays max"
        );
    }

    #[test]
    fn partitions_are_split_among_consumers() {
        let workload = Workload {
            partitions_per_topic: 8,
            consumers_per_topic: 3,
            ..Workload::default()
        };
        assert_eq!(workload.partitions_of_consumer(0), [0, 3, 6]);
        assert_eq!(workload.partitions_of_consumer(1), [1, 4, 7]);
        assert_eq!(workload.partitions_of_consumer(2), [2, 5]);
    }
}
