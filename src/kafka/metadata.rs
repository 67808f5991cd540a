//! Metadata: brokers, the cluster id, topics and their partitions (auto-creating
//! requested topics when allowed).

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::topic_table::validate_topic_name;
use crate::kafka::auto_create;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;

pub const CLUSTER_ID: &str = "sluice-single-node";

pub async fn handle(shard: &Rc<Shard>, request: MetadataRequest, version: i16) -> MetadataResponse {
    let requested: Option<Vec<String>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .filter_map(|t| t.name.map(|n| n.0.to_string()))
            .collect()
    });
    // v0-3 always auto-create; v4+ say so in the request.
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    if let Some(names) = &requested
        && allow_auto_create
    {
        let missing: Vec<String> = {
            let image = shard.image();
            names
                .iter()
                .filter(|n| !image.contains(n) && validate_topic_name(n).is_ok())
                .cloned()
                .collect()
        };
        auto_create(shard, missing).await;
    }
    let node = shard.config().node_id;
    let image = shard.image();
    let names: Vec<String> = match requested {
        Some(names) => names,
        None => image.topics().map(|(name, _)| name.clone()).collect(),
    };
    let topic_responses = names
        .into_iter()
        .map(|name| {
            let topic_name = TopicName(StrBytes::from_string(name.clone()));
            match image.topic(&name) {
                None => {
                    let error = if validate_topic_name(&name).is_err() {
                        ErrorCode::InvalidTopicException
                    } else {
                        ErrorCode::UnknownTopicOrPartition
                    };
                    MetadataResponseTopic::default()
                        .with_name(Some(topic_name))
                        .with_error_code(error.code())
                }
                Some(topic) => MetadataResponseTopic::default()
                    .with_name(Some(topic_name))
                    .with_is_internal(
                        name == crate::group::coordinator_key::OFFSETS_TOPIC
                            || name == crate::txn::TRANSACTION_STATE_TOPIC,
                    )
                    .with_topic_id(topic.id)
                    .with_partitions(
                        (0..)
                            .zip(&topic.partitions)
                            .map(|(index, partition)| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_leader_id(BrokerId(node))
                                    .with_leader_epoch(partition.leader_epoch.0)
                                    .with_replica_nodes(vec![BrokerId(node)])
                                    .with_isr_nodes(vec![BrokerId(node)])
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_string(
                    shard.config().listen.ip().to_string(),
                ))
                .with_port(i32::from(shard.config().listen.port())),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(node))
        .with_topics(topic_responses)
}
