//! What nodes ask the active controller over the controller listener, and its
//! answers: broker registration and heartbeats (Kafka's BrokerRegistration and
//! BrokerHeartbeat), metadata changes forwarded from any broker, producer-id
//! blocks, and the committed metadata for broker-only nodes. JSON bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::controller::{
    AlterPartitionRequest, BrokerRegistration, Election, ElectionResult, NewTopic, PartitionGrowth,
    TopicChangeResult,
};
use crate::cluster::state::ClusterState;
use crate::protocol::error_code::ErrorCode;
use crate::types::NodeId;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    RegisterBroker(BrokerRegistration),
    Heartbeat {
        id: NodeId,
        epoch: i64,
        /// The metadata offset the broker has applied.
        applied: u64,
        shutting_down: bool,
    },
    CreateTopics(Vec<NewTopic>),
    CreatePartitions {
        topics: Vec<PartitionGrowth>,
        validate_only: bool,
    },
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopics(Vec<String>),
    AllocateProducerIds {
        broker: NodeId,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition).
    AlterPartition(AlterPartitionRequest),
    /// An administrator moves leaderships (Kafka's ElectLeaders): of
    /// `partitions`, or of every partition when `None`.
    ElectLeaders {
        election: Election,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// A broker-only node following the metadata: answered when the state is
    /// newer than `after` (or empty after a while).
    FetchMetadata {
        after: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// Ask `leader` instead (if known).
    NotController {
        leader: Option<NodeId>,
    },
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
    },
    /// The heartbeat's broker epoch is not the registered one: register again.
    StaleBrokerEpoch,
    /// Results of a metadata change, committed at `offset`.
    Topics {
        results: Vec<TopicChangeResult>,
        offset: u64,
    },
    ProducerIds {
        first: i64,
        count: i64,
        offset: u64,
    },
    /// An AlterPartition's outcome; on success the change (if any) is
    /// committed at or before `offset`.
    AlterPartition {
        error: ErrorCode,
        offset: u64,
    },
    /// An ElectLeaders' results per partition, committed at `offset`.
    ElectLeaders {
        results: Vec<ElectionResult>,
        offset: u64,
    },
    Metadata {
        state: Option<Box<ClusterState>>,
    },
    /// The change could not be committed.
    Failed(String),
}

pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("controller messages always serialize")
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed controller message: {e}"))
}
