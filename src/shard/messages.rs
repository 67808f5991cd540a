//! What shards ask of each other over the channel mesh. Each request carries all
//! of one API request's work for the receiving shard.

use crate::net::outgoing::Pieces;
use bytes::Bytes;

use crate::cluster::topic_table::TopicTable;
use crate::protocol::error_code::ErrorCode;

/// A partition by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug)]
pub struct ProduceItem {
    pub key: PartitionKey,
    pub records: Option<Bytes>,
}

#[derive(Debug, Clone, Copy)]
pub struct ProduceResult {
    pub error: ErrorCode,
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone)]
pub struct FetchItem {
    pub key: PartitionKey,
    pub offset: i64,
    pub max_bytes: i32,
}

#[derive(Debug, Clone)]
pub struct FetchResult {
    pub error: ErrorCode,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Copied from memory, or ranges of segment files to send zero-copy.
    pub records: Pieces,
}

#[derive(Debug, Clone, Copy)]
pub struct OffsetResult {
    pub error: ErrorCode,
    pub offset: i64,
    pub timestamp: i64,
}

/// A topic to create (validated by the controller shard).
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, Option<String>)>,
    pub validate_only: bool,
}

#[derive(Debug, Clone)]
pub struct TopicChangeResult {
    pub name: String,
    pub error: ErrorCode,
    pub message: Option<String>,
}

#[derive(Debug)]
pub enum ShardRequest {
    Produce {
        /// zstd batches need Produce v7+ (older clients cannot read them back).
        zstd_allowed: bool,
        items: Vec<ProduceItem>,
    },
    Fetch {
        items: Vec<FetchItem>,
        /// Wait up to this long for `min_bytes` to be available.
        max_wait_ms: u64,
        min_bytes: usize,
        max_bytes: usize,
    },
    ListOffsets {
        items: Vec<(PartitionKey, i64)>,
    },
    /// Move log start offsets (-1: to the high watermark).
    DeleteRecords {
        items: Vec<(PartitionKey, i64)>,
    },
    /// To the controller shard (0): create topics.
    CreateTopics(Vec<NewTopic>),
    /// To the controller shard (0): grow topics to this many partitions.
    CreatePartitions {
        topics: Vec<(String, i32)>,
        validate_only: bool,
    },
    /// To the controller shard (0): replace a topic's config overrides.
    SetTopicConfigs {
        topic: String,
        configs: std::collections::BTreeMap<String, String>,
        validate_only: bool,
    },
    /// To the controller shard (0): delete topics by name.
    DeleteTopics(Vec<String>),
    /// From the controller to every shard: the new topic table.
    ApplyTopics(TopicTable),
    /// To the controller shard: a new producer id.
    AllocateProducerId,
    /// To the shard coordinating the groups (owner of their offsets partition).
    Group(crate::group::requests::GroupRequest),
}

#[derive(Debug)]
pub enum ShardResponse {
    Produce(Vec<ProduceResult>),
    Fetch(Vec<FetchResult>),
    ListOffsets(Vec<OffsetResult>),
    /// The new low watermark of each partition, in `offset`.
    DeleteRecords(Vec<OffsetResult>),
    TopicsChanged(Vec<TopicChangeResult>),
    Applied,
    /// `None` when the allocation could not be made durable.
    ProducerId(Option<i64>),
    Group(crate::group::requests::GroupResponse),
}
