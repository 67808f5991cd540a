//! The admin command-line tools: `sluice topic`, `sluice group`, `sluice
//! produce`, `sluice consume` and `sluice cluster`. They are Kafka clients built
//! on librdkafka (through the `rdkafka` crate) and talk to any Kafka-compatible
//! broker over the protocol only, never to a data directory.
//!
//! Every command takes `--bootstrap` (default 127.0.0.1:9092, env
//! `SLUICE_BOOTSTRAP`), `--timeout` and `--json`, prints aligned tables or JSON,
//! and on error prints the Kafka error name and a sentence of advice to stderr
//! with the exit codes of [`errors`]. docs/operations.md documents them all.

pub mod cluster;
pub mod connect;
pub mod consume;
pub mod errors;
pub mod format;
pub mod group;
pub mod output;
pub mod produce;
pub mod reset;
pub mod topic;
