//! The typed calls shards make of each other, one module per family of
//! operations: each request type carries all of one API request's work for the
//! receiving shard and names its own reply type.

pub mod alter_partition;
pub mod describe_producers;
pub mod elect_leaders;
pub mod fetch;
pub mod group;
pub mod leader_epoch;
pub mod metrics;
pub mod offsets;
pub mod produce;
pub mod producer_id;
pub mod topics;
pub mod txn;
pub mod txn_markers;
pub mod txn_verify;
