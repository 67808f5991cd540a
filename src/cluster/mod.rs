//! What the broker knows about the cluster: the metadata records and the
//! cluster state they build, the Raft quorum that replicates them, the
//! controller's decisions, the immutable metadata image each shard reads,
//! typed topic configs, and this node's identity (`meta.properties`).

pub mod bootstrap;
pub mod controller;
pub mod image;
pub mod meta_properties;
pub mod placement;
pub mod quorum;
pub mod records;
pub mod state;
pub mod topic_config;
pub mod topic_table;
