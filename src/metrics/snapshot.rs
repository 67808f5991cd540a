//! What one shard reports to a scrape: its counters and histograms, its
//! partitions' offsets, sizes and traffic, and its consumer groups' states and
//! committed offsets. Plain data, so it crosses the mesh to the shard serving
//! the scrape.

use crate::metrics::partition::TrafficSample;
use crate::metrics::shard::ShardSample;
use crate::types::ShardId;

#[derive(Debug, Clone)]
pub struct PartitionSample {
    pub topic: String,
    pub partition: i32,
    pub leader: bool,
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub traffic: TrafficSample,
}

#[derive(Debug, Clone)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone)]
pub struct ShardSnapshot {
    pub shard: ShardId,
    pub sample: ShardSample,
    /// Bytes held by the shard's tail caches.
    pub tail_cache_bytes: u64,
    pub partitions: Vec<PartitionSample>,
    /// The state name of each group this shard coordinates.
    pub group_states: Vec<&'static str>,
    pub committed: Vec<CommittedOffset>,
}
