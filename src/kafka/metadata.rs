//! Metadata: the live brokers with their advertised endpoints, the cluster id,
//! the controller clients are given, and each topic's partitions with their
//! leader, epoch, replicas and ISR from the metadata image (auto-creating
//! requested topics when allowed).

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::image::{BrokerImage, MetadataImage, PartitionImage};
use crate::cluster::topic_table::validate_topic_name;
use crate::kafka::auto_create;
use crate::kafka::routing::live_broker;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::types::NodeId;

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
                            .map(|(index, partition)| partition_metadata(&image, index, partition))
                            .collect(),
                    ),
            }
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(image.live_brokers().map(broker_metadata).collect())
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id().to_string())))
        .with_controller_id(BrokerId(image.controller_id().0))
        .with_topics(topic_responses)
}

fn broker_metadata(broker: &BrokerImage) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.id.0))
        .with_host(StrBytes::from_string(broker.host.clone()))
        .with_port(i32::from(broker.port))
        .with_rack(broker.rack.clone().map(StrBytes::from_string))
}

/// One partition as KRaft's metadata cache answers it: a leader that is not a
/// live broker is LEADER_NOT_AVAILABLE with leader -1 (the epoch stays, so the
/// client keeps fencing older leaders), and replicas on brokers that are not
/// live are listed offline.
fn partition_metadata(
    image: &MetadataImage,
    index: i32,
    partition: &PartitionImage,
) -> MetadataResponsePartition {
    let ids = |nodes: &[NodeId]| nodes.iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
    let offline: Vec<NodeId> = partition
        .replicas
        .iter()
        .copied()
        .filter(|&replica| live_broker(image, replica).is_none())
        .collect();
    let (error, leader) = match live_broker(image, partition.leader) {
        Some(leader) => (ErrorCode::None, leader.id),
        None => (ErrorCode::LeaderNotAvailable, NodeId::NONE),
    };
    MetadataResponsePartition::default()
        .with_error_code(error.code())
        .with_partition_index(index)
        .with_leader_id(BrokerId(leader.0))
        .with_leader_epoch(partition.leader_epoch.0)
        .with_replica_nodes(ids(&partition.replicas))
        .with_isr_nodes(ids(&partition.isr))
        .with_offline_replicas(ids(&offline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::routing::three_broker_image;

    #[test]
    fn partitions_report_leaders_and_offline_replicas_from_the_image() {
        let image = three_broker_image();
        let topic = image.topic("t").unwrap();
        let led_elsewhere = partition_metadata(&image, 1, &topic.partitions[1]);
        assert_eq!(led_elsewhere.error_code, 0);
        assert_eq!(led_elsewhere.leader_id, BrokerId(1));
        assert_eq!(led_elsewhere.leader_epoch, 3);
        assert_eq!(led_elsewhere.replica_nodes, vec![BrokerId(1)]);
        assert!(led_elsewhere.offline_replicas.is_empty());
        let offline = partition_metadata(&image, 2, &topic.partitions[2]);
        assert_eq!(offline.error_code, ErrorCode::LeaderNotAvailable.code());
        assert_eq!(offline.leader_id, BrokerId(-1));
        assert_eq!(offline.leader_epoch, 5);
        assert_eq!(offline.offline_replicas, vec![BrokerId(2)]);
        let brokers: Vec<_> = image.live_brokers().map(broker_metadata).collect();
        assert_eq!(
            brokers.iter().map(|b| b.node_id).collect::<Vec<_>>(),
            vec![BrokerId(0), BrokerId(1)],
            "the fenced broker is not listed"
        );
        assert_eq!(brokers[1].host.as_str(), "10.0.0.1");
        assert_eq!(brokers[1].rack.as_deref(), Some("r1"));
    }
}
