//! The metadata records: what the controller writes to the replicated metadata
//! log, one committed batch per Raft entry, applied in order by every node
//! ([`crate::cluster::state::ClusterState::apply`]). Kafka's KRaft record types,
//! named as Kafka names them, encoded as JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{LeaderEpoch, NodeId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker (re)registers: fenced until it has caught up with the log. Its
    /// broker epoch is the offset of the batch holding this record.
    RegisterBroker {
        id: NodeId,
        /// Random per process start: a new one means the broker restarted.
        incarnation: String,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    FenceBroker {
        id: NodeId,
        epoch: i64,
    },
    UnfenceBroker {
        id: NodeId,
        epoch: i64,
    },
    Topic {
        name: String,
        id: String,
    },
    /// A new partition with its replicas and first leader.
    Partition {
        topic: String,
        partition: i32,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader: NodeId,
        leader_epoch: LeaderEpoch,
    },
    /// Changes what is given; a new leader bumps the leader epoch, and every
    /// change bumps the partition epoch.
    PartitionChange {
        topic: String,
        partition: i32,
        leader: Option<NodeId>,
        isr: Option<Vec<NodeId>>,
        replicas: Option<Vec<NodeId>>,
    },
    RemoveTopic {
        name: String,
    },
    /// Replaces every config override of the topic.
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A block of producer ids handed to `broker`: the next block starts at `next`.
    ProducerIds {
        broker: NodeId,
        next: i64,
    },
}

/// One Raft entry: records applied together or not at all.
pub fn encode(records: &[MetadataRecord]) -> Vec<u8> {
    serde_json::to_vec(records).expect("metadata records always serialize")
}

pub fn decode(bytes: &[u8]) -> Result<Vec<MetadataRecord>, serde_json::Error> {
    serde_json::from_slice(bytes)
}
