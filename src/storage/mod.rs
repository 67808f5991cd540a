//! The per-partition log storage engine: segments on O_DIRECT files, sparse
//! indexes, group commit, checkpoints, recovery, retention and truncation.
//!
//! Modules depend on each other one way (a test keeps it so): `error`,
//! `config`, `summary`, the indexes, the write buffer, `checkpoint` and the log
//! cleaner's `offset_map` and `throttle` at the bottom; the tail cache, `scan`,
//! `zero_fill` and `segment` above them; `cleaned_segment` above `segment`,
//! and `swap` above it; then `recovery`; then `log`, the facade the rest of the
//! broker uses; then `background`. `dump` (`sluice log dump`) reads a
//! directory offline with the decoders below it, and nothing uses it.
//!
//! Everything here belongs to exactly one shard: types are `!Send`, shared with
//! `Rc`, and never hold a `RefCell` borrow across an `.await`.

pub mod background;
pub mod checkpoint;
pub mod cleaned_segment;
pub mod cleaner;
pub mod commit_round;
pub mod compaction_rules;
pub mod config;
#[cfg(test)]
mod dependencies;
pub mod device;
pub mod dir_lock;
pub mod dump;
pub mod error;
pub mod leader_epoch;
pub mod log;
pub mod offset_index;
pub mod offset_map;
pub mod partition_metadata;
pub mod producer_state;
pub mod read;
pub mod recovery;
pub mod retention;
pub mod scan;
pub mod segment;
pub mod segment_reader;
pub mod summary;
pub mod swap;
pub mod tail_cache;
#[cfg(test)]
pub(crate) mod test_support;
pub mod throttle;
pub mod time_index;
pub mod time_slice;
pub mod txn_index;
pub mod wake_list;
pub mod write_buffer;
pub mod zero_fill;

pub use config::{Compaction, Durability, GroupCommit, LogConfig};
pub use error::LogError;
pub use log::{AppendInfo, AppendOptions, LogOffsets, LogStats, PartitionLog, ReplicatedAppend};
pub use read::{Isolation, ReadChunk, ReadOutcome};
pub use recovery::{RecoveryEvent, RecoveryReport};
