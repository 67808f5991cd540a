//! Newtypes shared by every layer: offsets, leader epochs and timestamps.

use std::fmt;

/// A Kafka record offset within one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset `delta` records after this one.
    pub fn plus(self, delta: i64) -> Offset {
        debug_assert!(delta >= 0);
        Offset(self.0 + delta)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The leader epoch of a partition, stamped into each batch it appends.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// Kafka's "no epoch" marker (-1).
    pub const NONE: LeaderEpoch = LeaderEpoch(-1);
}

/// Milliseconds since the Unix epoch, as Kafka stores timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampMs(pub i64);

impl TimestampMs {
    /// Kafka's "no timestamp" marker (-1).
    pub const NONE: TimestampMs = TimestampMs(-1);

    pub fn now() -> TimestampMs {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        TimestampMs(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A shard: one executor pinned to a core, owning its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub usize);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A producer id handed out by InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// Kafka's "no producer" marker (-1).
    pub const NONE: ProducerId = ProducerId(-1);
}

/// A producer epoch: bumped by InitProducerId (and, with `transaction.version` 2,
/// by every EndTxn) so an older instance of the same producer is fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerEpoch(pub i16);

impl ProducerEpoch {
    /// Kafka's "no epoch" marker (-1).
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

/// A node of the cluster (Kafka's `node.id`): a broker, a controller, or both.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub i32);

impl NodeId {
    /// Kafka's "no node" marker (-1): no leader, no controller.
    pub const NONE: NodeId = NodeId(-1);
}

impl Default for NodeId {
    fn default() -> NodeId {
        NodeId::NONE
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
