//! Sluice: a Kafka-compatible streaming storage engine and broker, thread-per-core.
//!
//! The library holds every part of the broker; `main.rs` is only the command line.

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod group;
pub mod kafka;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod protocol;
pub mod record;
pub mod shard;
pub mod storage;
pub mod txn;
pub mod types;
