//! The cluster state every node rebuilds from the committed metadata log:
//! brokers, topics, partitions with replicas, leader, epochs and ISR, configs,
//! and the producer-id high mark. The controller decides against it; each
//! shard's [`crate::cluster::image::MetadataImage`] is built from it. Serialized
//! whole as a metadata snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{LeaderEpoch, NodeId};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The metadata log offset (Raft index) of the last batch applied.
    pub offset: u64,
    pub brokers: BTreeMap<NodeId, BrokerState>,
    pub topics: BTreeMap<String, TopicState>,
    /// The first producer id not yet handed out in a block.
    pub next_producer_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub id: NodeId,
    pub incarnation: String,
    /// The offset of its registration (Kafka's broker epoch).
    pub epoch: i64,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// The topic id, 32 hex digits.
    pub id: String,
    pub partitions: Vec<PartitionState>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// [`NodeId::NONE`] while no live replica can lead.
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}
