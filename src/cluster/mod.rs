//! What the broker knows about the cluster: the topic table as persisted, the
//! immutable metadata image each shard reads, typed topic configs, and the
//! controller that changes them.

pub mod controller;
pub mod image;
pub mod quorum;
pub mod records;
pub mod state;
pub mod topic_config;
pub mod topic_table;
